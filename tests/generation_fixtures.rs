//! The forward pass against llama.cpp's greedy generations and full logits
//! (`tests/fixtures/generation/`, `tests/fixtures/logits/`).

mod common;

use std::path::Path;

use common::agreement::{agreement, load_cases, Case};
use hearth::engine::{Engine, LoadOptions};
use hearth_models::model::Logits;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1";
const QWEN2: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn cases(model: &str) -> Vec<Case> {
    load_cases(&common::fixture(&format!("generation/{model}.json")))
}

fn load(path: &Path) -> Engine {
    let opts = LoadOptions {
        threads: 2,
        ctx_size: Some(512),
        ..LoadOptions::default()
    };
    Engine::load(path, &opts).expect("model loads")
}

/// Every step of every fixture prompt, and the full softmax after each prompt, against llama.cpp.
fn check_agreement(model: &str) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let engine = load(&path);
    let logits = common::fixture(&format!("logits/{model}"));
    agreement(&engine, &cases(model), Some(&logits)).check(model);
}

#[test]
fn smollm2_agrees_with_llama_cpp() {
    check_agreement(SMOLLM2);
}

#[test]
fn qwen2_agrees_with_llama_cpp() {
    check_agreement(QWEN2);
}

/// One token at a time through the KV cache gives the batch's logits.
fn check_incremental(model: &str) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let engine = load(&path);
    let vocab = engine.model.hp.n_vocab;
    let case = &cases(model)[0];
    let mut tokens = case.prompt_ids.clone();
    tokens.extend_from_slice(&case.greedy_ids[..8]);
    let mut batch = engine.new_session();
    let all = engine
        .eval(&mut batch, &tokens, Logits::All)
        .expect("batch");
    let mut single = engine.new_session();
    let mut worst = 0.0f32;
    for (i, &t) in tokens.iter().enumerate() {
        let one = engine
            .eval(&mut single, &[t], Logits::Last)
            .expect("one token");
        for (a, b) in one.iter().zip(&all[i * vocab..(i + 1) * vocab]) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst <= 1e-3,
        "{model}: token-by-token differs from the batch by {worst}"
    );
}

/// A prompt split over several batches gives the logits of one batch (the last token's and all).
#[test]
fn smollm2_small_batches_equal_one_batch() {
    let Some(path) = common::require_model("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let one = load(&path);
    let small = Engine::load(
        &path,
        &LoadOptions {
            threads: 2,
            ctx_size: Some(512),
            batch: 3,
            ..LoadOptions::default()
        },
    )
    .expect("model loads");
    let case = &cases(SMOLLM2)[1];
    for want in [Logits::Last, Logits::All] {
        let mut a = one.new_session();
        let expected = one
            .eval(&mut a, &case.prompt_ids, want)
            .expect("one batch")
            .to_vec();
        let mut b = small.new_session();
        let got = small
            .eval(&mut b, &case.prompt_ids, want)
            .expect("small batches");
        assert_eq!(got.len(), expected.len(), "{want:?}");
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-3, "{want:?}: batches of 3 differ by {worst}");
    }
}

#[test]
fn smollm2_incremental_equals_batch() {
    check_incremental(SMOLLM2);
}

#[test]
fn qwen2_incremental_equals_batch() {
    check_incremental(QWEN2);
}

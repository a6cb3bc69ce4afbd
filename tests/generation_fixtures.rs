//! The forward pass against llama.cpp's greedy generations and full logits
//! (`tests/fixtures/generation/`, `tests/fixtures/logits/`).

mod common;

use std::path::Path;

use hearth::engine::{Engine, LoadOptions};
use hearth_models::model::Logits;
use serde_json::Value;

struct Case {
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    /// Per step, llama.cpp's top-10 `(id, logit)`.
    top: Vec<Vec<(u32, f32)>>,
}

fn cases(model: &str) -> Vec<Case> {
    let path = common::fixture(&format!("generation/{model}.json"));
    let text = std::fs::read_to_string(&path).expect("generation fixture");
    let json: Value = serde_json::from_str(&text).expect("fixture json");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("id array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    json.as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            prompt_ids: ids(&c["prompt_ids"]),
            greedy_ids: ids(&c["greedy_ids"]),
            top: c["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| {
                    s["top"]
                        .as_array()
                        .expect("top")
                        .iter()
                        .map(|p| {
                            (
                                p[0].as_u64().expect("id") as u32,
                                p[1].as_f64().expect("logit") as f32,
                            )
                        })
                        .collect()
                })
                .collect(),
        })
        .collect()
}

fn load(path: &Path) -> Engine {
    let opts = LoadOptions {
        threads: 2,
        ctx_size: Some(512),
        ..LoadOptions::default()
    };
    Engine::load(path, &opts).expect("model loads")
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Feed prompt + greedy tokens in one batch and hold every step to llama.cpp's top-10 logits.
fn check_steps(model: &str) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let engine = load(&path);
    let vocab = engine.model.hp.n_vocab;
    let mut worst = 0.0f32;
    for (ci, case) in cases(model).iter().enumerate() {
        let mut tokens = case.prompt_ids.clone();
        tokens.extend_from_slice(&case.greedy_ids[..case.greedy_ids.len() - 1]);
        let mut session = engine.new_session();
        let logits = engine
            .eval(&mut session, &tokens, Logits::All)
            .expect("forward");
        for (s, top) in case.top.iter().enumerate() {
            let row = case.prompt_ids.len() - 1 + s;
            let ours = &logits[row * vocab..(row + 1) * vocab];
            for &(id, want) in top {
                let diff = (ours[id as usize] - want).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 0.1,
                    "{model} case {ci} step {s}: logit of {id} is {} here, {want} in llama.cpp",
                    ours[id as usize]
                );
            }
            if top[0].1 - top[1].1 >= 0.1 {
                assert_eq!(
                    argmax(ours),
                    top[0].0,
                    "{model} case {ci} step {s}: argmax differs"
                );
            }
        }
    }
    eprintln!("{model}: max top-10 logit difference {worst:.4}");
}

/// KL(llama.cpp || hearth) over the whole vocabulary after each prompt.
fn check_kl(model: &str) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let engine = load(&path);
    let mut worst = 0.0f64;
    for (i, case) in cases(model).iter().enumerate() {
        let bytes = std::fs::read(common::fixture(&format!("logits/{model}/logits_p{i}.f32")))
            .expect("logits fixture");
        let reference: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut session = engine.new_session();
        let ours = engine
            .eval(&mut session, &case.prompt_ids, Logits::Last)
            .expect("forward");
        assert_eq!(ours.len(), reference.len());
        let kl = kl_divergence(&reference, ours);
        worst = worst.max(kl);
        assert!(kl < 1e-3, "{model} prompt {i}: KL divergence {kl}");
    }
    eprintln!("{model}: max KL divergence {worst:.2e}");
}

fn log_softmax(l: &[f32]) -> Vec<f64> {
    let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = l.iter().map(|&x| (x as f64 - max).exp()).sum();
    l.iter().map(|&x| x as f64 - max - sum.ln()).collect()
}

fn kl_divergence(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum()
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
    let case = &cases("SmolLM2-135M-Instruct.Q4_1")[1];
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
#[ignore = "issue 3 in progress: hearth is within ~0.4 of llama.cpp logits, not yet 0.1 (see the issue 3 notes)"]
fn smollm2_steps_match_llama_cpp() {
    check_steps("SmolLM2-135M-Instruct.Q4_1");
}

#[test]
#[ignore = "issue 3 in progress: hearth is within ~0.4 of llama.cpp logits, not yet 0.1 (see the issue 3 notes)"]
fn qwen2_steps_match_llama_cpp() {
    check_steps("qwen2.5-coder-0.5b-instruct-q4_k_m");
}

#[test]
#[ignore = "issue 3 in progress: hearth is within ~0.4 of llama.cpp logits, not yet 0.1 (see the issue 3 notes)"]
fn smollm2_kl_divergence() {
    check_kl("SmolLM2-135M-Instruct.Q4_1");
}

#[test]
#[ignore = "issue 3 in progress: hearth is within ~0.4 of llama.cpp logits, not yet 0.1 (see the issue 3 notes)"]
fn qwen2_kl_divergence() {
    check_kl("qwen2.5-coder-0.5b-instruct-q4_k_m");
}

#[test]
fn smollm2_incremental_equals_batch() {
    check_incremental("SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn qwen2_incremental_equals_batch() {
    check_incremental("qwen2.5-coder-0.5b-instruct-q4_k_m");
}

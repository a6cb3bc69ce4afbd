//! The GPU forward pass (feature `vulkan`) against llama.cpp's fixtures, as the CPU is held in
//! tests/generation_fixtures.rs: every layer on the GPU, and half of them (partial offload).
//! Without a GPU adapter these tests print why and pass, except under CI (`CI` set), where
//! they fail: CI installs Mesa's lavapipe.
#![cfg(feature = "vulkan")]

mod common;

use std::path::Path;

use common::agreement::{agreement, argmax, kl_divergence, load_cases, Case};
use hearth::engine::{Engine, LoadOptions};
use hearth_models::model::Logits;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1";
const QWEN2: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn cases(model: &str) -> Vec<Case> {
    load_cases(&common::fixture(&format!("generation/{model}.json")))
}

/// The engine with `layers` on the GPU, or `None` (skip) when no GPU could be used.
fn load(path: &Path, layers: usize) -> Option<Engine> {
    let opts = LoadOptions {
        threads: 2,
        ctx_size: Some(512),
        gpu_layers: Some(layers),
        ..LoadOptions::default()
    };
    let engine = Engine::load(path, &opts).expect("model loads");
    if engine.backend() == "CPU" {
        if std::env::var_os("CI").is_some() {
            panic!("CI needs a GPU adapter (Mesa's lavapipe), the engine fell back to the CPU");
        }
        eprintln!("skipped: no usable GPU");
        return None;
    }
    eprintln!("backend: {}", engine.backend());
    Some(engine)
}

/// Greedy decoding of fixture prompt `case` one token at a time through the GPU KV cache for
/// `steps` tokens: the prompt's logits close to the CPU's, every token equal to llama.cpp's
/// outside near-ties. With `teacher_forced`, also every fixture prompt and greedy sequence in
/// one batch against llama.cpp's top-10 logits and full softmax (the tolerances of
/// tests/generation_fixtures.rs, which count argmax slips over all the prompts' steps). Lavapipe emulates the GPU on the
/// CPU at a few tokens a second, so the tests take one prompt and a few steps each.
fn check(
    model: &str,
    layers: impl Fn(usize) -> usize,
    case_index: usize,
    steps: usize,
    teacher_forced: bool,
) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let cpu = Engine::load(
        &path,
        &LoadOptions {
            threads: 2,
            ctx_size: Some(512),
            ..LoadOptions::default()
        },
    )
    .expect("model loads");
    let Some(engine) = load(&path, layers(cpu.model.hp.n_layer)) else {
        return;
    };
    let cases = cases(model);
    if teacher_forced {
        let logits = common::fixture(&format!("logits/{model}"));
        agreement(&engine, &cases, Some(&logits)).check(&format!("{model} on the GPU"));
    }
    let case = &cases[case_index];
    let mut s = engine.new_session();
    let mut out = engine
        .eval(&mut s, &case.prompt_ids, Logits::Last)
        .expect("prompt")
        .to_vec();
    let mut cs = cpu.new_session();
    let want = cpu
        .eval(&mut cs, &case.prompt_ids, Logits::Last)
        .expect("cpu prompt");
    let kl = kl_divergence(want, &out);
    assert!(kl <= 1e-2, "{model}: KL(CPU || GPU) {kl} after the prompt");
    for (step, &want) in case.greedy_ids.iter().take(steps).enumerate() {
        let got = argmax(&out);
        if got != want {
            let top = &case.top[step];
            let margin = top[0].1 - top[1].1;
            assert!(
                margin < 0.5,
                "{model} step {step}: GPU greedy token {got}, llama.cpp {want} (margin {margin})"
            );
            eprintln!("{model} step {step}: near-tie (margin {margin}), stopping the comparison");
            break;
        }
        out = engine
            .eval(&mut s, &[got], Logits::Last)
            .expect("token")
            .to_vec();
    }
}

#[test]
fn smollm2_full_offload_agrees_with_llama_cpp() {
    check(SMOLLM2, |n| n, 1, 8, true);
}

#[test]
fn smollm2_partial_offload_agrees_with_llama_cpp() {
    check(SMOLLM2, |n| n / 2, 2, 8, false);
}

#[test]
fn qwen2_full_offload_agrees_with_llama_cpp() {
    check(QWEN2, |n| n, 0, 4, false);
}

#[test]
fn qwen2_partial_offload_agrees_with_llama_cpp() {
    check(QWEN2, |n| n / 2, 2, 4, false);
}

//! The GPU forward pass (feature `vulkan`) against llama.cpp's fixtures, as the CPU is held in
//! tests/generation_fixtures.rs: every layer on the GPU, and half of them (partial offload).
//! Without a GPU adapter these tests print why and pass, except under CI (`CI` set), where
//! they fail: CI installs Mesa's lavapipe.
#![cfg(feature = "vulkan")]

mod common;

use std::path::Path;

use common::agreement::{agreement, argmax, load_cases, Case};
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

/// Teacher-forced agreement with llama.cpp over every fixture step, then greedy decoding one
/// token at a time through the GPU KV cache, equal to the fixture outside near-ties.
fn check(model: &str, layers: impl Fn(usize) -> usize) {
    let Some(path) = common::require_model(&format!("{model}.gguf")) else {
        return;
    };
    let n_layer = {
        let cpu = Engine::load(&path, &LoadOptions::default()).expect("model loads");
        cpu.model.hp.n_layer
    };
    let Some(engine) = load(&path, layers(n_layer)) else {
        return;
    };
    let logits = common::fixture(&format!("logits/{model}"));
    let cases = cases(model);
    agreement(&engine, &cases, Some(&logits)).check(&format!("{model} on the GPU"));
    let case = &cases[0];
    let mut s = engine.new_session();
    let mut out = engine
        .eval(&mut s, &case.prompt_ids, Logits::Last)
        .expect("prompt");
    for (step, &want) in case.greedy_ids.iter().enumerate() {
        let got = argmax(out);
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
        out = engine.eval(&mut s, &[got], Logits::Last).expect("token");
    }
}

#[test]
fn smollm2_full_offload_agrees_with_llama_cpp() {
    check(SMOLLM2, |n| n);
}

#[test]
fn smollm2_partial_offload_agrees_with_llama_cpp() {
    check(SMOLLM2, |n| n / 2);
}

#[test]
fn qwen2_full_offload_agrees_with_llama_cpp() {
    check(QWEN2, |n| n);
}

#[test]
fn qwen2_partial_offload_agrees_with_llama_cpp() {
    check(QWEN2, |n| n / 2);
}

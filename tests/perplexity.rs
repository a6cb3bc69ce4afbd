//! `hearth perplexity` against llama-perplexity's figures (`tests/fixtures/perplexity.json`) on
//! the GNU GPL v3 text (a copy of Debian's `/usr/share/common-licenses/GPL-3` is in
//! `tests/fixtures/text/`). The bar is 0.5%; llama.cpp's own figure moves by a few tenths of a
//! percent between CPUs, so this is as close as two runs of llama.cpp itself.
//!
//! Both models at n_ctx 256 (16 chunks) and 2048 (3 chunks). The 2048 figures are the ones that
//! catch attention's rounding over long contexts (ggml's tiled flash-attention path): they take a
//! few minutes on two cores.

mod common;

use std::process::Command;

use serde_json::Value;

fn llama_cpp_ppl(model: &str, n_ctx: u64) -> f64 {
    let text = std::fs::read_to_string(common::fixture("perplexity.json")).expect("fixture");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["model"] == model && r["n_ctx"] == n_ctx)
        .and_then(|r| r["ppl"].as_f64())
        .unwrap_or_else(|| panic!("no llama.cpp figure for {model} at {n_ctx}"))
}

fn check(model: &str, n_ctx: u64, chunks: u64) {
    let Some(path) = common::require_model(model) else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["perplexity", "--json", "-t", "2", "-c"])
        .arg(n_ctx.to_string())
        .arg("--chunks")
        .arg(chunks.to_string())
        .arg("-f")
        .arg(common::fixture("text/GPL-3"))
        .arg("-m")
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let json: Value = serde_json::from_str(text.trim()).expect("json output");
    let ours = json["ppl"].as_f64().expect("ppl");
    let theirs = llama_cpp_ppl(model, n_ctx);
    let rel = (ours - theirs).abs() / theirs;
    eprintln!(
        "{model} n_ctx {n_ctx}: hearth {ours:.4}, llama.cpp {theirs:.4} ({:+.3}%)",
        100.0 * (ours - theirs) / theirs
    );
    assert_eq!(json["chunks"].as_u64(), Some(chunks));
    assert!(
        rel <= 0.005,
        "{model} n_ctx {n_ctx}: perplexity {ours} vs llama.cpp's {theirs}"
    );
}

#[test]
fn smollm2_perplexity_at_256_matches_llama_cpp() {
    check("SmolLM2-135M-Instruct.Q4_1.gguf", 256, 16);
}

#[test]
fn qwen2_perplexity_at_256_matches_llama_cpp() {
    check("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 256, 16);
}

#[test]
fn smollm2_perplexity_at_2048_matches_llama_cpp() {
    check("SmolLM2-135M-Instruct.Q4_1.gguf", 2048, 3);
}

#[test]
fn qwen2_perplexity_at_2048_matches_llama_cpp() {
    check("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 2048, 3);
}

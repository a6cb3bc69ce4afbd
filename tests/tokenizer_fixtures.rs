//! The tokenizer against llama.cpp's own tokenization of the same strings
//! (`tests/fixtures/tokenizer/*.json`, made by `shared/reference/refdump.cpp`).
//!
//! For every string: raw tokenization (no BOS, special-token text left as text), prompt
//! tokenization (BOS as the vocabulary wants, special tokens parsed), and the concatenated
//! pieces of the raw ids must all be identical to llama.cpp's. `hard/` holds about 200 more
//! strings per model, chosen to break tokenizers (see `tests/fixtures/tokenizer/README.md`).

mod common;

use std::path::Path;

use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;
use serde_json::Value;

struct Case {
    text: String,
    ids: Vec<u32>,
    ids_prompt: Vec<u32>,
    /// The raw ids' pieces concatenated.
    detok: Vec<u8>,
}

fn cases(rel: &str) -> Vec<Case> {
    let path = common::fixture(&format!("tokenizer/{rel}.json"));
    let text = std::fs::read_to_string(&path).expect("tokenizer fixture");
    let json: Value = serde_json::from_str(&text).expect("fixture json");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("id array")
            .iter()
            .map(|x| u32::try_from(x.as_u64().expect("id")).expect("id fits u32"))
            .collect()
    };
    json.as_array()
        .expect("fixture array")
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").to_string(),
            ids: ids(&c["ids"]),
            ids_prompt: ids(&c["ids_add_special_parse_special"]),
            detok: match c.get("detok_hex") {
                Some(hex) => unhex(hex.as_str().expect("hex")),
                None => c["detok"].as_str().expect("detok").as_bytes().to_vec(),
            },
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte"))
        .collect()
}

/// Checks every string of one fixture file, reporting all mismatches at once.
fn check_cases(tok: &Tokenizer, rel: &str, expected_len: Option<usize>) {
    let cases = cases(rel);
    if let Some(n) = expected_len {
        assert_eq!(cases.len(), n, "{rel}: number of fixture strings");
    }
    assert!(!cases.is_empty(), "{rel}: no cases");
    let mut failures = Vec::new();
    for c in &cases {
        let raw = tok.encode(&c.text, false, false).expect("encode raw");
        if raw != c.ids {
            failures.push(format!("raw {:?}: got {raw:?}, want {:?}", c.text, c.ids));
        }
        let prompt = tok.encode(&c.text, true, true).expect("encode prompt");
        if prompt != c.ids_prompt {
            failures.push(format!(
                "prompt {:?}: got {prompt:?}, want {:?}",
                c.text, c.ids_prompt
            ));
        }
        let pieces: Vec<u8> = c
            .ids
            .iter()
            .flat_map(|&id| tok.token_to_piece(id, true))
            .collect();
        if pieces != c.detok {
            failures.push(format!(
                "detok {:?}: got {:?}",
                String::from_utf8_lossy(&c.detok),
                String::from_utf8_lossy(&pieces)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{rel}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Loads the tokenizer once and checks both fixture files of one model.
fn check(model: &Path, fixture: &str) {
    let file = GgufFile::open(model).expect("open model");
    let tok = Tokenizer::from_gguf(&file).expect("build tokenizer");
    check_cases(&tok, fixture, Some(20));
    check_cases(&tok, &format!("hard/{fixture}"), None);
}

#[test]
fn smollm2_matches_llama_cpp() {
    if let Some(path) = common::require_model("SmolLM2-135M-Instruct.Q4_1.gguf") {
        check(&path, "SmolLM2-135M-Instruct.Q4_1");
    }
}

#[test]
fn qwen25_coder_matches_llama_cpp() {
    if let Some(path) = common::require_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") {
        check(&path, "qwen2.5-coder-0.5b-instruct-q4_k_m");
    }
}

#[test]
fn gemma3_matches_llama_cpp() {
    if let Some(path) = common::require_model("gemma-3-270m-q4_k_m.gguf") {
        check(&path, "gemma-3-270m-q4_k_m");
    }
}

#[test]
fn deepseek_r1_distill_qwen_matches_llama_cpp() {
    let path = common::fixture("vocab/deepseek-r1-distill-qwen-vocab.gguf");
    check(&path, "deepseek-r1-distill-qwen-vocab");
}

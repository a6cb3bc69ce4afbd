//! Building tokenizers from GGUF metadata: which keys are read, and errors that name the key.

use hearth_models::gguf::{Array, Metadata, Value};
use hearth_models::tokenizer::{Tokenizer, TokenizerError};

/// A byte-level BPE vocabulary's metadata: every byte character, "ab", one merge, one control
/// token; `edit` may change or remove keys before the metadata is assembled.
fn bpe_metadata(edit: impl FnOnce(&mut Vec<(&'static str, Value)>)) -> Metadata {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| gpt2_char(b).to_string()).collect();
    tokens.push("ab".into());
    tokens.push("<|im_end|>".into());
    let mut types = vec![1i32; tokens.len()];
    types[257] = 3;
    let mut kv: Vec<(&'static str, Value)> = vec![
        ("general.name", "Tiny".into()),
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "qwen2".into()),
        ("tokenizer.ggml.tokens", Array::String(tokens).into()),
        ("tokenizer.ggml.token_type", Array::I32(types).into()),
        ("tokenizer.ggml.merges", vec!["a b"].into()),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    edit(&mut kv);
    let mut md = Metadata::new();
    for (k, v) in kv {
        md.insert(k.to_string(), v).expect("unique keys");
    }
    md
}

fn gpt2_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("valid")
}

fn set(kv: &mut Vec<(&'static str, Value)>, key: &'static str, value: Option<Value>) {
    kv.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        kv.push((key, v));
    }
}

fn error_of(md: &Metadata) -> String {
    match Tokenizer::from_metadata(md) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_the_tokenizer_keys() {
    let tok = Tokenizer::from_metadata(&bpe_metadata(|_| {})).expect("tokenizer");
    assert_eq!(tok.n_vocab(), 258);
    assert_eq!(tok.pre(), Some("qwen2"));
    assert_eq!(tok.eos(), Some(257));
    assert!(tok.is_eog(257));
    assert!(!tok.add_bos());
    assert_eq!(tok.encode("ab", true, true).unwrap(), [256]);
    assert_eq!(tok.encode("<|im_end|>", false, true).unwrap(), [257]);
}

#[test]
fn missing_keys_are_named() {
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.tokens", None));
    assert!(error_of(&md).contains("tokenizer.ggml.tokens"));
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.model", None));
    assert!(error_of(&md).contains("tokenizer.ggml.model"));
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.merges", None));
    assert!(error_of(&md).contains("tokenizer.ggml.merges"));
}

#[test]
fn wrong_types_and_lengths_are_named() {
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.scores", Some("x".into())));
    assert!(error_of(&md).contains("tokenizer.ggml.scores"));
    let md = bpe_metadata(|kv| {
        set(
            kv,
            "tokenizer.ggml.token_type",
            Some(Array::I32(vec![1; 3]).into()),
        )
    });
    assert!(error_of(&md).contains("tokenizer.ggml.token_type"));
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.bos_token_id", Some(Value::U32(9999))));
    assert!(error_of(&md).contains("tokenizer.ggml.bos_token_id"));
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.pre", Some("klingon".into())));
    let err = Tokenizer::from_metadata(&md).unwrap_err();
    assert!(matches!(err, TokenizerError::UnknownPre(ref p) if p == "klingon"));
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.model", Some("rwkv".into())));
    assert!(error_of(&md).contains("`rwkv`"));
}

#[test]
fn integer_scores_are_accepted() {
    // llama.cpp accepts i32 scores as well as f32 ones.
    let md = bpe_metadata(|kv| {
        set(
            kv,
            "tokenizer.ggml.scores",
            Some(Array::I32(vec![0; 258]).into()),
        )
    });
    assert!(Tokenizer::from_metadata(&md).is_ok());
}

#[test]
fn missing_pre_uses_the_default_pre_tokenizer() {
    let md = bpe_metadata(|kv| set(kv, "tokenizer.ggml.pre", None));
    let tok = Tokenizer::from_metadata(&md).expect("tokenizer");
    assert_eq!(tok.pre(), None);
    assert_eq!(
        tok.decode(&tok.encode("a, b 1234", false, false).unwrap(), false),
        "a, b 1234"
    );
}

#[test]
fn tokenizers_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
}

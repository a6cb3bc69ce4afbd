//! The committed vocabulary-only GGUF (DeepSeek-R1-Distill-Qwen's tokenizer, no tensors),
//! a real file written by llama.cpp's converter. Expected values checked with gguf-py.

use hearth_models::gguf::{GgufFile, Value};

const VOCAB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/vocab/deepseek-r1-distill-qwen-vocab.gguf"
);

#[test]
fn reads_the_deepseek_qwen_vocab() {
    let f = GgufFile::open(VOCAB).unwrap();
    let m = f.metadata();
    assert_eq!(f.version(), 3);
    assert!(f.tensors().is_empty());
    assert_eq!(f.paths().len(), 1);
    assert_eq!(f.file_size(), std::fs::metadata(VOCAB).unwrap().len());
    assert_eq!(m.len(), 27);
    assert_eq!(m.architecture(), Ok("qwen2"));
    assert_eq!(m.arch_u32("block_count"), Ok(28));
    assert_eq!(m.arch_u32("attention.head_count_kv"), Ok(4));
    assert_eq!(m.arch_f32("rope.freq_base"), Ok(10000.0));
    assert_eq!(m.get_str("general.name"), Ok("DeepSeek R1 Distill Qwen 7B"));
    assert_eq!(m.get_str("tokenizer.ggml.model"), Ok("gpt2"));
    assert_eq!(m.get_str("tokenizer.ggml.pre"), Ok("deepseek-r1-qwen"));

    let tokens = m.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 152064);
    assert_eq!(&tokens[..3], ["!", "\"", "#"]);
    let types = m.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), 152064);
    let merges = m.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 151387);
    assert_eq!(merges[0], "Ġ Ġ");

    assert_eq!(m.get_u32("tokenizer.ggml.bos_token_id"), Ok(151646));
    assert_eq!(m.get_u32("tokenizer.ggml.eos_token_id"), Ok(151643));
    assert_eq!(m.get_bool("tokenizer.ggml.add_bos_token"), Ok(true));
    assert_eq!(m.get_bool("tokenizer.ggml.add_eos_token"), Ok(false));
    let template = m.get_str("tokenizer.chat_template").unwrap();
    assert!(template.contains("add_generation_prompt"), "{template}");
    assert!(template.contains("<｜Assistant｜>"));
    // File order is kept.
    let keys: Vec<_> = m.iter().map(|(k, _)| k).take(2).collect();
    assert_eq!(keys, ["general.architecture", "general.type"]);
    assert!(matches!(m.get("general.file_type"), Some(Value::U32(15))));
}

#[test]
fn from_bytes_agrees_with_open() {
    let bytes = std::fs::read(VOCAB).unwrap();
    let a = GgufFile::from_bytes(bytes).unwrap();
    let b = GgufFile::open(VOCAB).unwrap();
    assert_eq!(a.metadata(), b.metadata());
}

//! hearth-models: GGUF files, tokenizers and model architectures.
pub mod gguf;
pub mod tokenizer;

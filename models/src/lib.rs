//! hearth-models: GGUF files, tokenizers and model architectures.
pub mod gguf;
pub mod tokenizer;
pub mod arch;
mod error;
pub mod kv_cache;
pub mod model;
pub mod ops;

pub use error::ModelError;

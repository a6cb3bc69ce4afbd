//! hearth-models: GGUF files, tokenizers and model architectures.
pub mod arch;
mod error;
pub mod gguf;
#[cfg(feature = "vulkan")]
pub mod gpu;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod requantize;
pub mod tokenizer;

pub use error::ModelError;

//! Errors of loading and running a model.

use hearth_quant::GgmlType;

use crate::gguf::{GgufError, MetadataError};

/// Why a model could not be loaded or run. Every variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("unknown architecture `{arch}` (hearth knows: {known})")]
    UnknownArchitecture { arch: String, known: String },
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        tensor: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("bad model shape: {0}")]
    BadShape(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("tensor `{0}` has type {1}, which hearth cannot compute with")]
    UnsupportedType(String, GgmlType),
    #[error("quantized data: {0}")]
    Quant(String),
    #[error("the context is full: {needed} positions needed, the context holds {n_ctx}")]
    ContextFull { n_ctx: usize, needed: usize },
    #[error("token id {token} is outside the vocabulary of {n_vocab}")]
    BadToken { token: u32, n_vocab: usize },
    /// The GPU failed while running (feature `vulkan`); the CPU can take over.
    #[error("GPU: {0}")]
    Gpu(String),
}

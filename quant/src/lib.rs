//! hearth-quant: what a ggml block means.
//!
//! The single source of truth for every tensor type hearth reads: the type ids, the
//! `#[repr(C)]` block layouts, and the scalar reference code (dequantize, quantize, dot)
//! that every fast kernel in `hearth-simd` is tested against.

pub mod types;

pub use types::{GgmlType, UnknownType};

//! hearth-quant: what a ggml block means.
//!
//! The single source of truth for every tensor type hearth reads: the type ids, the
//! `#[repr(C)]` block layouts, and the scalar reference code (dequantize, quantize, dot)
//! that every fast kernel in `hearth-simd` is tested against.
//!
//! Two ways in:
//! - typed: every block struct implements [`QuantBlock`]; generic code calls
//!   `B::dequantize`, `B::vec_dot`, `B::quantize` on `&[B]` views made with
//!   [`blocks_from_bytes`];
//! - by type id: [`dequantize_row`], [`quantize_row`] and [`vec_dot_row`] take a [`GgmlType`]
//!   and raw bytes, match once on the type ([`visit_block_type`]) and hand off to the
//!   generic code. They return errors, never panic, on bad lengths or unsupported types.
//!
//! The reference code mirrors ggml's portable C (`ggml-quants.c` for (de)quantization,
//! `ggml-cpu/quants.c` `*_generic` for dot products) operation for operation, so its results
//! are bit-identical to ggml's reference path, not merely close (`tests/golden.rs` holds them
//! to ggml's own C, byte for byte and bit for bit).
//!
//! ```
//! use hearth_quant::{dequantize_row, quantize_row, vec_dot_row, vec_dot_type, GgmlType};
//!
//! let weights: Vec<f32> = (0..256).map(|i| (i as f32 * 0.1).sin()).collect();
//! let mut q4k = vec![0u8; 144];
//! quantize_row(GgmlType::Q4K, &weights, &mut q4k)?;
//!
//! let mut back = vec![0f32; 256];
//! dequantize_row(GgmlType::Q4K, &q4k, &mut back)?;
//! assert!(back.iter().zip(&weights).all(|(a, b)| (a - b).abs() < 0.1));
//!
//! // Activations go to the type ggml pairs with the weights (Q8_K for the K-quants).
//! let act_ty = vec_dot_type(GgmlType::Q4K);
//! let mut act = vec![0u8; act_ty.block_bytes()];
//! quantize_row(act_ty, &weights, &mut act)?;
//! let dot = vec_dot_row(GgmlType::Q4K, &q4k, &act)?;
//! assert!((dot - weights.iter().map(|w| w * w).sum::<f32>()).abs() < 1.0);
//! # Ok::<(), hearth_quant::QuantError>(())
//! ```

mod blocks;
mod float;
mod iquants;
mod kquantize;
mod kquants;
mod legacy;
mod quantize;
mod row;
mod traits;
pub mod types;

pub use blocks::{
    blocks_as_bytes, blocks_as_bytes_mut, blocks_from_bytes, blocks_from_bytes_mut, BlockIq4Nl,
    BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
    BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, F16Le, Pod, QK4_0, QK4_1, QK4_NL, QK5_0, QK5_1,
    QK8_0, QK8_1, QK_K,
};
pub use float::{bf16_from_f32_ggml, Bf16Le};
pub use iquants::{quantize_iq4_nl_chunk, KVALUES_IQ4NL};
pub use kquants::{q3k_scales, scale_min_k4};
pub use quantize::nearest_int;
pub use row::{
    can_quantize, dequantize_row, quantize_row, vec_dot_row, vec_dot_type, visit_block_type,
    BlockVisitor,
};
pub use traits::QuantBlock;
pub use types::{GgmlType, UnknownType};

/// Why a row could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The reference code has no (de)quantizer or dot product for this type.
    #[error("tensor type {0} is not supported by hearth-quant for this operation")]
    Unsupported(GgmlType),
    /// A byte slice that is not a whole number of blocks.
    #[error("{ty}: {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    RaggedBytes {
        ty: GgmlType,
        len: usize,
        block_bytes: usize,
    },
    /// An element count that is not a whole number of blocks.
    #[error("{ty}: {len} elements is not a whole number of {block_elems}-element blocks")]
    RaggedElems {
        ty: GgmlType,
        len: usize,
        block_elems: usize,
    },
    /// Two buffers that must describe the same number of elements do not.
    #[error("{ty}: {what} has length {got}, expected {expected}")]
    LengthMismatch {
        ty: GgmlType,
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A typed view was asked of bytes not aligned for the block type (only `F32` and `Q8_K`
    /// blocks need alignment; the row functions copy instead of failing).
    #[error("{ty}: byte slice is not aligned to {align} bytes")]
    Misaligned { ty: GgmlType, align: usize },
}

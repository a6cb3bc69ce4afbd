//! hearth-simd: the CPU kernels, chosen once at run time.
//!
//! The contract (after ggml's `type_traits_cpu`): for each weight type, a [`MatKernels`] entry
//! names the activation type it pairs with (`vec_dot_type`), a function that quantizes a row of
//! f32 activations to it, and a function that takes the dot product of one weight row with one
//! activation row, both as raw bytes. The forward pass only ever calls through this table.
//!
//! Today the table holds the portable scalar set ([`scalar`]), which calls hearth-quant's
//! reference code; the AVX2, AVX-512 and NEON sets of the kernels issue slot in beside it with
//! the same signatures and are picked at start-up from what the CPU reports.

pub mod scalar;

use hearth_quant::GgmlType;

/// The kernels for one weight type.
#[derive(Clone, Copy, Debug)]
pub struct MatKernels {
    /// The weight type.
    pub ty: GgmlType,
    /// The activation type the weights are multiplied with.
    pub vec_dot_type: GgmlType,
    /// Quantize one row of activations into `vec_dot_type` blocks. `dst` holds exactly the
    /// row's bytes and is aligned to 16 bytes.
    pub quantize_act: fn(src: &[f32], dst: &mut [u8]),
    /// Dot product of one weight row with one activation row of the same length (raw bytes,
    /// whole blocks; the activation row aligned to 16 bytes, the weight row as mapped).
    pub vec_dot: fn(weights: &[u8], act: &[u8]) -> f32,
}

/// The kernel set in use (`scalar` until the SIMD sets land).
pub fn kernel_set() -> &'static str {
    "scalar"
}

/// The kernels for weights of type `ty`, or `None` when hearth cannot multiply by it.
pub fn mat_kernels(ty: GgmlType) -> Option<&'static MatKernels> {
    scalar::TABLE.iter().find(|k| k.ty == ty)
}

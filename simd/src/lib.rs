//! hearth-simd: the fast CPU kernels, chosen once at run time.
//!
//! Filled by the kernels work; for now the crate only re-exports the scalar reference so the
//! rest of the workspace can depend on the final crate layout.

pub use hearth_quant as reference;

//! The x86-64 kernel sets.

pub mod avx2;
pub mod avx2_gemm;
pub mod avx2_gemv;
pub mod avx2_vec;
mod avx512_gemm;
mod dot;
pub mod vnni;

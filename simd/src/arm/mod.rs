//! The aarch64 kernel sets: `neon` (every 64-bit ARM CPU) and `neon-dotprod` (the same kernels
//! with the `sdot` byte dot product of ARMv8.2+, Apple M1 and later, Cortex-A76/Neoverse N1 and
//! later, the Raspberry Pi 5).

mod neon_k;

pub mod neon;
pub mod neon_vec;

//! The VNNI kernel sets, `avx512` and `avxvnni`: the AVX2 set with `vpdpbusd` (`acc + Σ₄ u8·s8`
//! in one instruction, [`super::dot`]) in place of `vpmaddubsw` + `vpmaddwd` where the integer
//! work dominates: the single-token and eight-row prompt paths of the 32-element types and the
//! Q4_K prompt path. Everything else is the AVX2 set's (both sets' CPUs run AVX2).
//!
//! - `avx512`: AVX-512 F, BW, VL and VNNI (Ice Lake and later Xeons and laptops, Zen 4 and 5):
//!   the EVEX `vpdpbusd` on 256-bit registers in the single-token paths, and prompt paths of
//!   its own in 512-bit registers, sixteen rows per call ([`super::avx512_gemm`]).
//! - `avxvnni`: AVX-VNNI (Alder Lake and later Intel cores, which lack AVX-512; Zen 5): the VEX
//!   `vpdpbusd`.
//!
//! The integer sums are the same exact integers as the AVX2 kernels' (no i16 step that could
//! saturate), so each result differs from the AVX2 set's only where the AVX2 kernel's f32
//! additions ran in another order: none of these paths changes its f32 arithmetic.
//!
//! Safety: the tables are only handed out by [`crate::select`] after [`detected_avx512`] or
//! [`detected_avxvnni`] (which include AVX2, FMA and F16C) returned true.

use hearth_quant::{BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, GgmlType};

use super::dot::{Avx512Vnni, AvxVnni, ByteDot};
use super::{avx2, avx2_gemm, avx2_gemv, avx512_gemm};
use crate::{Gemm, MatKernels};

/// The CPU features of the `avx512` set.
pub fn detected_avx512() -> bool {
    avx2::detected()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// The CPU features of the `avxvnni` set.
pub fn detected_avxvnni() -> bool {
    avx2::detected() && is_x86_feature_detected!("avxvnni")
}

/// The AVX2 entry `base` with the `D` forms of its paths.
const fn with_dot<D: ByteDot>(base: MatKernels) -> MatKernels {
    let (gemm, gemv) = match base.ty {
        GgmlType::Q4_0 => (
            &const { avx2_gemm::eight_row_path::<BlockQ4_0, D>() },
            &const { avx2_gemv::path::<BlockQ4_0, D>() },
        ),
        GgmlType::Q4_1 => (
            &const { avx2_gemm::eight_row_path::<BlockQ4_1, D>() },
            &const { avx2_gemv::path::<BlockQ4_1, D>() },
        ),
        GgmlType::Q5_0 => (
            &const { avx2_gemm::eight_row_path::<BlockQ5_0, D>() },
            &const { avx2_gemv::path::<BlockQ5_0, D>() },
        ),
        GgmlType::Q5_1 => (
            &const { avx2_gemm::eight_row_path::<BlockQ5_1, D>() },
            &const { avx2_gemv::path::<BlockQ5_1, D>() },
        ),
        GgmlType::Q8_0 => (
            &const { avx2_gemm::eight_row_path::<BlockQ8_0, D>() },
            &const { avx2_gemv::path::<BlockQ8_0, D>() },
        ),
        GgmlType::Iq4Nl => (
            &const { avx2_gemm::eight_row_path::<BlockIq4Nl, D>() },
            &const { avx2_gemv::path::<BlockIq4Nl, D>() },
        ),
        GgmlType::Q4K => {
            return MatKernels {
                gemm: Some(&const { avx2_gemm::q4_k_path::<D>() }),
                ..base
            };
        }
        _ => return base,
    };
    MatKernels {
        gemm: Some(gemm),
        gemv: Some(gemv),
        ..base
    }
}

/// Every entry of the AVX2 table with the `D` forms.
const fn table<D: ByteDot>() -> [MatKernels; 15] {
    let mut t = avx2::TABLE;
    let mut i = 0;
    while i < t.len() {
        t[i] = with_dot::<D>(t[i]);
        i += 1;
    }
    t
}

/// The `avx512` set's entries: [`table`]'s, with the sixteen-row 512-bit prompt paths.
const fn avx512_table() -> [MatKernels; 15] {
    let mut t = table::<Avx512Vnni>();
    let mut i = 0;
    while i < t.len() {
        let gemm: &'static Gemm = match t[i].ty {
            GgmlType::Q4K => &avx512_gemm::Q4_K,
            GgmlType::Q6K => {
                // A single token keeps the AVX2 one-row path, the fastest Q6_K matrix-vector
                // kernel (a token alone then gives the AVX2 set's bits, in a batch this path's).
                t[i] = MatKernels {
                    gemm: Some(&avx512_gemm::Q6_K),
                    gemv: Some(&avx2_gemm::Q6_K),
                    ..t[i]
                };
                i += 1;
                continue;
            }
            GgmlType::Q4_0 => &const { avx512_gemm::path::<BlockQ4_0>() },
            GgmlType::Q4_1 => &const { avx512_gemm::path::<BlockQ4_1>() },
            GgmlType::Q5_0 => &const { avx512_gemm::path::<BlockQ5_0>() },
            GgmlType::Q5_1 => &const { avx512_gemm::path::<BlockQ5_1>() },
            GgmlType::Q8_0 => &const { avx512_gemm::path::<BlockQ8_0>() },
            GgmlType::Iq4Nl => &const { avx512_gemm::path::<BlockIq4Nl>() },
            _ => {
                i += 1;
                continue;
            }
        };
        t[i] = MatKernels {
            gemm: Some(gemm),
            ..t[i]
        };
        i += 1;
    }
    t
}

/// The `avx512` set's entries.
pub static TABLE_AVX512: [MatKernels; 15] = avx512_table();

/// The `avxvnni` set's entries.
pub static TABLE_AVXVNNI: [MatKernels; 15] = table::<AvxVnni>();

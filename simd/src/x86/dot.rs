//! The byte dot product at the heart of every x86 integer kernel, in the three forms x86 CPUs
//! offer, so that one kernel body serves three kernel sets.
//!
//! Each form computes `acc + Σ₄ u·s` per i32 lane: four unsigned bytes of `u` times the four
//! signed bytes of `s` in the same lane, summed exactly, added to `acc`.
//!
//! - [`Madd`] (the `avx2` set): `vpmaddubsw` (byte pairs into saturating i16) then `vpmaddwd`
//!   against ones. Exact only while each pair's sum fits an i16, which every caller ensures
//!   (4-bit and 5-bit weights, or Q8_0 weights taken as `|w|` with the sign moved onto the
//!   activation, whose bytes are at most 127 in magnitude). Kernels may also add several
//!   `vpmaddubsw` results in i16 before one `vpmaddwd` ([`ByteDot::VNNI`] is false).
//! - [`AvxVnni`] (the `avxvnni` set: Alder Lake and later Intel cores, Zen 5): the VEX-encoded
//!   `vpdpbusd`, one instruction for the same sum, without the i16 step.
//! - [`Avx512Vnni`] (the `avx512` set: AVX-512 with VNNI, Ice Lake and later Xeons, Zen 4 and
//!   5): the EVEX-encoded `vpdpbusd` on the same 256-bit registers.
//!
//! The VNNI forms are written as inline assembly, so that the kernel bodies keep their
//! `avx2,fma,f16c` target features and inline them (an intrinsic needing `avxvnni` or
//! `avx512vnni` would not inline into a body compiled without it). The sets that use them are
//! only selected once the CPU reports the instruction ([`super::vnni`]).

use std::arch::x86_64::*;

/// One form of the byte dot product.
pub(super) trait ByteDot {
    /// Whether [`ByteDot::dpbusd`] is one instruction (no i16 intermediate to batch).
    const VNNI: bool;

    /// `acc + Σ₄ u·s` per i32 lane (see the module doc for [`Madd`]'s i16 limit).
    ///
    /// # Safety
    /// The CPU runs this form's instruction (AVX2 for [`Madd`]).
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
}

/// `vpmaddubsw` + `vpmaddwd` (AVX2).
pub(super) struct Madd;

/// VEX `vpdpbusd` (AVX-VNNI).
pub(super) struct AvxVnni;

/// EVEX `vpdpbusd` on 256-bit registers (AVX-512 VNNI + VL).
pub(super) struct Avx512Vnni;

impl ByteDot for Madd {
    const VNNI: bool = false;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
        _mm256_add_epi32(acc, p)
    }
}

/// A VNNI form: `vpdpbusd` with the encoding prefix `$enc` (`{vex}` or `{evex}`), on registers
/// only (ymm0-15, which both encodings reach).
macro_rules! vnni_form {
    ($form:ty, $enc:literal) => {
        impl ByteDot for $form {
            const VNNI: bool = true;

            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn dpbusd(mut acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
                // SAFETY: the caller's contract (the CPU runs this encoding); registers only.
                unsafe {
                    std::arch::asm!(
                        concat!($enc, " vpdpbusd {acc}, {u}, {s}"),
                        acc = inout(ymm_reg) acc,
                        u = in(ymm_reg) u,
                        s = in(ymm_reg) s,
                        options(pure, nomem, nostack, preserves_flags),
                    );
                }
                acc
            }
        }
    };
}

vnni_form!(AvxVnni, "{{vex}}");
vnni_form!(Avx512Vnni, "{{evex}}");

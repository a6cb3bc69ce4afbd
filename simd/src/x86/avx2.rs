//! The AVX2 + FMA + F16C kernel set: the x86-64 laptop baseline (Haswell and later, every Zen).
//!
//! Each weight block is unpacked to bytes in registers and multiplied with the activation bytes
//! by `vpmaddubsw` (unsigned × signed byte pairs into i16) and `vpmaddwd` (i16 pairs into i32),
//! exact integer sums per block as in the scalar reference, then scaled and accumulated in f32
//! lanes. Only the order of the f32 additions differs from `hearth-quant`'s reference, which
//! `simd/tests/kernels.rs` holds each kernel to.
//!
//! Activations are quantized to Q8_0/Q8_1 as ggml's x86 code does (`127 / amax` and round half
//! to even, where the portable reference multiplies by `1 / d` and rounds half away from zero),
//! for every weight type, so that hearth's activations are llama.cpp's on the same CPU.
//!
//! Safety: every `unsafe fn` here needs AVX2, FMA and F16C. [`TABLE`] is only handed out by
//! [`crate::select`] after `is_x86_feature_detected!` has confirmed all three, which is what
//! makes the safe wrappers sound.

use std::arch::x86_64::*;

use hearth_quant::{
    blocks_from_bytes, blocks_from_bytes_mut, Bf16Le, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K,
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0,
    BlockQ8_1, F16Le, GgmlType, QuantBlock, QK_K,
};

use super::{avx2_gemm, avx2_gemv};
pub(super) use crate::k4_scales_mins;
use crate::scalar;
use crate::{Gemm, MatKernels, VecDotN};

/// The CPU features this set needs.
pub fn detected() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// The four f16 values in `bits` (here one or two) widened, with `vmovd` from a general register
/// (which zeroes the rest of the vector) and `vcvtph2ps`. Left to itself, LLVM loads a 16-bit
/// scale with a merging `vpinsrw` into whichever vector register is free, often a loop's
/// accumulator, and the false dependency serialises the block loop.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_f16_bits(bits: u32) -> __m128 {
    let v: __m128;
    // SAFETY: two register-only instructions of AVX and F16C, which this set requires.
    unsafe {
        std::arch::asm!(
            "vmovd {x}, {b:e}",
            "vcvtph2ps {x}, {x}",
            b = in(reg) bits,
            x = out(xmm_reg) v,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    v
}

/// One f16 widened (see [`widen_f16_bits`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_to_f32(h: F16Le) -> f32 {
    _mm_cvtss_f32(widen_f16_bits(u32::from(h.to_bits())))
}

/// The first two f16 fields of a block (`d` and the `m`, `s` or `dmin` after it), widened from
/// one 32-bit load.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16x2<T: QuantBlock>(block: &T) -> (f32, f32) {
    const { assert!(size_of::<T>() >= 4) };
    // SAFETY: `block` is a reference to at least four bytes (checked above).
    let bits = unsafe { std::ptr::read_unaligned((block as *const T).cast::<u32>()) };
    let v = widen_f16_bits(bits);
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// How far ahead of the weights in hand the matrix-vector loops prefetch: the hardware
/// prefetcher alone leaves a single-token matmul short of the memory bandwidth (tg128 at 1
/// thread: 1.5B Q4_K_M +28%, Q4_0 +14%, SmolLM2 Q4_1 +22%; 4, 8 and 16 KiB measured alike).
const PREFETCH: usize = 8192;

/// Asks for the cache lines of the `bytes` bytes [`PREFETCH`] bytes past `p` (a hint: the
/// address is never dereferenced, and one past the end of the weights is harmless).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn prefetch_ahead<T>(p: *const T, bytes: usize) {
    let at = p.cast::<i8>().wrapping_add(PREFETCH);
    for l in 0..bytes.div_ceil(64) {
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64 * l));
    }
}

/// The activation rows' first blocks, after checking that each holds `n` blocks: the block loops
/// then index without bounds checks (which cost a tenth of the prompt kernels' time).
#[inline(always)]
fn row_ptrs<A, const N: usize>(y: [&[A]; N], n: usize) -> [*const A; N] {
    let mut p = [std::ptr::null(); N];
    for c in 0..N {
        assert!(
            y[c].len() >= n,
            "activation row shorter than the weight row"
        );
        p[c] = y[c].as_ptr();
    }
    p
}

/// Sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 bytes → 32 nibbles: low nibbles in the low 128 bits, high nibbles in the high 128 bits
/// (ggml's element order for the 32-element blocks).
///
/// # Safety
/// `p` must point at 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes.
    let b = unsafe { _mm_loadu_si128(p.cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Sixteen i16 lanes of pairwise sums of `x * y` for signed bytes (ggml's `mul_add_epi8`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_add_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// Eight i32 lanes holding the pairwise sums of `x * y` for signed bytes (x, y > -128 or x = -128
/// with |y| ≤ 127, which every activation satisfies).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}

/// Eight i32 lanes of pairwise sums of `x * y`, x unsigned bytes below 64, y signed bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// # Safety
/// `p` must point at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

// Each kernel takes one weight row and N activation rows (N = 1 for generation, 4 while
// processing a prompt): a weight block is unpacked once and multiplied with the matching block
// of every activation row. The arithmetic of each (weight row, activation row) pair is the same
// whatever N is, so batch and single-token results agree bit for bit.

#[target_feature(enable = "avx2,fma,f16c")]
fn q4_0_q8_0<const N: usize>(x: &[BlockQ4_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, x) in x.iter().enumerate() {
        let dx = f16_to_f32(x.d);
        // SAFETY: qs is 16 bytes long.
        let q = _mm256_sub_epi8(unsafe { nibbles_32(x.qs.as_ptr()) }, _mm256_set1_epi8(8));
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let d = _mm256_set1_ps(dx * f16_to_f32(y.d));
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, a)), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q4_1_q8_1<const N: usize>(x: &[BlockQ4_1], y: [&[BlockQ8_1]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut mins = [0.0f32; N];
    for (i, x) in x.iter().enumerate() {
        let (dx, mx) = f16x2(x);
        // SAFETY: qs is 16 bytes long.
        let q = unsafe { nibbles_32(x.qs.as_ptr()) };
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let (dy, sy) = f16x2(y);
            let d = _mm256_set1_ps(dx * dy);
            mins[c] = mx.mul_add(sy, mins[c]);
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8(q, a)), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]) + mins[c];
    }
    out
}

/// 32 bits → 32 bytes, 0xFF where bit i of `bits` is set (byte i ↔ element i).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn bits_to_bytes(bits: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(bits));
    // Byte i takes byte i / 8 of the word...
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    // ...and is all ones exactly when its bit i % 8 is set.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_0_q8_0<const N: usize>(x: &[BlockQ5_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, x) in x.iter().enumerate() {
        let dx = f16_to_f32(x.d);
        // SAFETY: qs is 16 bytes long.
        let q = unsafe { nibbles_32(x.qs.as_ptr()) };
        // q - 16 with q = nibble + 16 * bit: set the high nibble to 0xF where the bit is clear.
        let high = _mm256_andnot_si256(bits_to_bytes(x.qh), _mm256_set1_epi8(0xf0u8 as i8));
        let q = _mm256_or_si256(q, high);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let d = _mm256_set1_ps(dx * f16_to_f32(y.d));
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, a)), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_1_q8_1<const N: usize>(x: &[BlockQ5_1], y: [&[BlockQ8_1]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut mins = [0.0f32; N];
    for (i, x) in x.iter().enumerate() {
        let (dx, mx) = f16x2(x);
        // SAFETY: qs is 16 bytes long.
        let q = unsafe { nibbles_32(x.qs.as_ptr()) };
        let high = _mm256_and_si256(bits_to_bytes(x.qh), _mm256_set1_epi8(0x10));
        let q = _mm256_or_si256(q, high);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let (dy, sy) = f16x2(y);
            let d = _mm256_set1_ps(dx * dy);
            mins[c] = mx.mul_add(sy, mins[c]);
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8(q, a)), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]) + mins[c];
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_q8_0<const N: usize>(x: &[BlockQ8_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, x) in x.iter().enumerate() {
        let dx = f16_to_f32(x.d);
        // SAFETY: qs is 32 bytes long.
        let q = unsafe { load32(x.qs.as_ptr()) };
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let d = _mm256_set1_ps(dx * f16_to_f32(y.d));
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, a)), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

/// Q4_K as ggml's AVX2 `ggml_vec_dot_q4_K_q8_K`: the scale part in eight i32 lanes per block,
/// the min part in four f32 lanes (`mins · pairwise bsums`, times `-dy·dmin`), added at the end.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_q8_k<const N: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [_mm_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    for (i, x) in x.iter().enumerate() {
        prefetch_ahead(x, size_of_val(x));
        let u = k4_scales_mins(&x.scales);
        let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
            u[3] as i32,
            u[2] as i32,
            u[1] as i32,
            u[0] as i32,
        ));
        let mins = _mm256_extracti128_si256(mins_and_scales, 1);
        let sc = u[0].to_le_bytes().into_iter().chain(u[1].to_le_bytes());
        let sc: [i16; 8] = {
            let mut a = [0i16; 8];
            for (d, s) in a.iter_mut().zip(sc) {
                *d = i16::from(s);
            }
            a
        };
        let (dx, dmin_x) = f16x2(x);
        let mut q_lo = [_mm256_setzero_si256(); 4];
        let mut q_hi = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            // SAFETY: 32 bytes of qs at 32 * j (qs is 128 long).
            let q = unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()) };
            q_lo[j] = _mm256_and_si256(q, low);
            q_hi[j] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            // SAFETY: bsums is 16 i16 (32 bytes).
            let q8sums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
            let q8s = _mm_hadd_epi16(
                _mm256_castsi256_si128(q8sums),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(mins, q8s);
            let dmin = -y.d * dmin_x;
            acc_m[c] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[c]);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                // SAFETY: 64 bytes of y.qs at 64 * j (qs is 256 long).
                let (a_lo, a_hi) = unsafe {
                    (
                        load32(y.qs.as_ptr().add(64 * j)),
                        load32(y.qs.as_ptr().add(64 * j + 32)),
                    )
                };
                let p_lo = _mm256_maddubs_epi16(q_lo[j], a_lo);
                let p_hi = _mm256_maddubs_epi16(q_hi[j], a_hi);
                let p_lo = _mm256_madd_epi16(p_lo, _mm256_set1_epi16(sc[2 * j]));
                let p_hi = _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sc[2 * j + 1]));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
            }
            let d = y.d * dx;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        let m = _mm_add_ps(acc_m[c], _mm_movehl_ps(acc_m[c], acc_m[c]));
        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[c] = hsum(acc[c]) + _mm_cvtss_f32(m);
    }
    out
}

/// Q5_K as ggml's AVX2 `ggml_vec_dot_q5_K_q8_K`: Q4_K's scale part with the fifth bit of each
/// quant from `qh`, and the min part summed to one integer per block and added in f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_k_q8_k<const N: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summs = [0f32; N];
    let low = _mm256_set1_epi8(0x0f);
    let one = _mm256_set1_epi8(1);
    for (i, x) in x.iter().enumerate() {
        prefetch_ahead(x, size_of_val(x));
        let u = k4_scales_mins(&x.scales);
        let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
            u[3] as i32,
            u[2] as i32,
            u[1] as i32,
            u[0] as i32,
        ));
        let mins = _mm256_extracti128_si256(mins_and_scales, 1);
        let mut sc = [0i16; 8];
        for (d, s) in sc
            .iter_mut()
            .zip(u[0].to_le_bytes().into_iter().chain(u[1].to_le_bytes()))
        {
            *d = i16::from(s);
        }
        let (dx, dmin_x) = f16x2(x);
        // SAFETY: qh is 32 bytes long.
        let hbits = unsafe { _mm256_loadu_si256(x.qh.as_ptr().cast()) };
        let mut q = [_mm256_setzero_si256(); 8];
        for j in 0..4 {
            // SAFETY: 32 bytes of qs at 32 * j (qs is 128 long).
            let bits = unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()) };
            let high = |bit: usize| {
                let h = _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(bit as i32));
                _mm256_slli_epi16::<4>(_mm256_and_si256(h, one))
            };
            q[2 * j] = _mm256_add_epi8(_mm256_and_si256(bits, low), high(2 * j));
            q[2 * j + 1] = _mm256_add_epi8(
                _mm256_and_si256(_mm256_srli_epi16::<4>(bits), low),
                high(2 * j + 1),
            );
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            // SAFETY: bsums is 16 i16 (32 bytes).
            let q8sums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
            let q8s = _mm_hadd_epi16(
                _mm256_castsi256_si128(q8sums),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(mins, q8s);
            let zero = _mm_setzero_si128();
            let hs = _mm_cvtsi128_si32(_mm_hadd_epi32(_mm_hadd_epi32(prod, zero), zero));
            summs[c] = (-y.d * dmin_x).mul_add(hs as f32, summs[c]);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                // SAFETY: 64 bytes of y.qs at 64 * j (qs is 256 long).
                let (a0, a1) = unsafe {
                    (
                        load32(y.qs.as_ptr().add(64 * j)),
                        load32(y.qs.as_ptr().add(64 * j + 32)),
                    )
                };
                let p0 = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j]),
                    _mm256_maddubs_epi16(q[2 * j], a0),
                );
                let p1 = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j + 1]),
                    _mm256_maddubs_epi16(q[2 * j + 1], a1),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
            }
            let d = y.d * dx;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]) + summs[c];
    }
    out
}

/// IQ4 nibbles → codebook values (ggml's `kvalues_iq4nl`), low nibbles in the low 128 bits.
///
/// # Safety
/// `p` must point at 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn iq4_values(p: *const u8) -> __m256i {
    // SAFETY: the codebook is 16 bytes; `p` by the caller's contract.
    let (book, bits) = unsafe {
        (
            _mm_loadu_si128(hearth_quant::KVALUES_IQ4NL.as_ptr().cast()),
            _mm_loadu_si128(p.cast()),
        )
    };
    let m4 = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(
        _mm_shuffle_epi8(book, _mm_and_si128(_mm_srli_epi16::<4>(bits), m4)),
        _mm_shuffle_epi8(book, _mm_and_si128(bits, m4)),
    )
}

/// IQ4_NL as ggml's AVX2 `ggml_vec_dot_iq4_nl_q8_0`: even and odd blocks in two accumulators,
/// added at the end; an odd last block in scalar code.
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4_nl_q8_0<const N: usize>(x: &[BlockIq4Nl], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let pairs = x.len() / 2 * 2;
    for (i, xb) in x[..pairs].iter().enumerate() {
        // SAFETY: qs is 16 bytes long.
        let q = unsafe { iq4_values(xb.qs.as_ptr()) };
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            // SAFETY: qs is 32 bytes long.
            let a = unsafe { load32(y.qs.as_ptr()) };
            let d = _mm256_set1_ps(f16_to_f32(y.d) * dx);
            acc[c][i % 2] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, a)), acc[c][i % 2]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(_mm256_add_ps(acc[c][0], acc[c][1]));
        if let Some(xb) = x.get(pairs) {
            // SAFETY: row c holds x.len() > pairs blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(pairs) };
            let (mut s1, mut s2) = (0i32, 0i32);
            for j in 0..16 {
                let q = xb.qs[j];
                s1 += i32::from(y.qs[j])
                    * i32::from(hearth_quant::KVALUES_IQ4NL[usize::from(q & 0xf)]);
                s2 += i32::from(y.qs[j + 16])
                    * i32::from(hearth_quant::KVALUES_IQ4NL[usize::from(q >> 4)]);
            }
            let d = f16_to_f32(y.d) * f16_to_f32(xb.d);
            out[c] = d.mul_add((s1 + s2) as f32, out[c]);
        }
    }
    out
}

/// IQ4_XS as ggml's AVX2 `ggml_vec_dot_iq4_xs_q8_K`: per super-block, the 32-value sub-blocks'
/// products scaled by their six-bit scales in two i32 accumulators, then one f32 multiply-add.
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4_xs_q8_k<const N: usize>(x: &[BlockIq4Xs], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, xb) in x.iter().enumerate() {
        let mut q = [_mm256_setzero_si256(); 8];
        let mut ls = [0i16; 8];
        let mut sh = u16::from_le_bytes(xb.scales_h);
        for ib in (0..8).step_by(2) {
            // SAFETY: 16 bytes of qs at 16 * ib (qs is 128 long).
            q[ib] = unsafe { iq4_values(xb.qs.as_ptr().add(16 * ib)) };
            // SAFETY: as above, at 16 * (ib + 1).
            q[ib + 1] = unsafe { iq4_values(xb.qs.as_ptr().add(16 * (ib + 1))) };
            let l = xb.scales_l[ib / 2];
            ls[ib] = (i16::from(l & 0xf) | ((sh << 4) & 0x30) as i16) - 32;
            ls[ib + 1] = (i16::from(l >> 4) | ((sh << 2) & 0x30) as i16) - 32;
            sh >>= 4;
        }
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let (mut sumi1, mut sumi2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for ib in (0..8).step_by(2) {
                // SAFETY: 64 bytes of y.qs at 32 * ib (qs is 256 long).
                let (a1, a2) = unsafe {
                    (
                        load32(y.qs.as_ptr().add(32 * ib)),
                        load32(y.qs.as_ptr().add(32 * ib + 32)),
                    )
                };
                let p1 = _mm256_madd_epi16(mul_add_i8(q[ib], a1), _mm256_set1_epi16(ls[ib]));
                let p2 =
                    _mm256_madd_epi16(mul_add_i8(q[ib + 1], a2), _mm256_set1_epi16(ls[ib + 1]));
                sumi1 = _mm256_add_epi32(p1, sumi1);
                sumi2 = _mm256_add_epi32(p2, sumi2);
            }
            let d = _mm256_set1_ps(dx * y.d);
            acc[c] = _mm256_fmadd_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_add_epi32(sumi1, sumi2)),
                acc[c],
            );
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_q8_k<const N: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    for (i, x) in x.iter().enumerate() {
        prefetch_ahead(x, size_of_val(x));
        let mut sumi = [_mm256_setzero_si256(); N];
        for half in 0..2 {
            let (ql, qh) = (&x.ql[64 * half..], &x.qh[32 * half..]);
            // SAFETY: ql has 64 bytes from 64 * half, qh 32 bytes from 32 * half.
            let (l0, l1, h) = unsafe {
                (
                    _mm256_loadu_si256(ql.as_ptr().cast()),
                    _mm256_loadu_si256(ql.as_ptr().add(32).cast()),
                    _mm256_loadu_si256(qh.as_ptr().cast()),
                )
            };
            // Elements n + l, n + l + 32, n + l + 64, n + l + 96 for l in 0..32.
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(l0, low),
                    _mm256_slli_epi16(_mm256_and_si256(h, three), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(l1, low),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4),
                ),
            ];
            for (k, &q) in q.iter().enumerate() {
                let base = 128 * half + 32 * k;
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(x.scales[base / 16 + 1])),
                    _mm_set1_epi16(i16::from(x.scales[base / 16])),
                );
                for c in 0..N {
                    // SAFETY: 32 activation bytes at base < 256.
                    let a = unsafe { load32((*y[c].add(i)).qs.as_ptr().add(base)) };
                    // (q - 32) * a = q * a - 32 * a, both within i16 for q < 64.
                    let p =
                        _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), _mm256_maddubs_epi16(m32, a));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, s));
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let d = f16_to_f32(x.d) * unsafe { (*y[c].add(i)).d };
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

/// For sub-blocks `2k` and `2k + 1` of a 128-element half: the i16 scale of sub-block `2k` in
/// the low 128-bit lane, of `2k + 1` in the high one, taken from eight i16 scales repeated in
/// both lanes (ggml's `get_scale_shuffle_q3k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pair(scales: __m256i, k: usize) -> __m256i {
    let (lo, hi) = ((4 * k) as i8, (4 * k + 2) as i8);
    let shuffle = _mm256_setr_epi8(
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        lo,
        lo + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
        hi,
        hi + 1,
    );
    _mm256_shuffle_epi8(scales, shuffle)
}

/// Sixteen i8 scales → two registers of eight i16 scales (sub-blocks 0..8 and 8..16), each
/// repeated in both 128-bit lanes for [`scale_pair`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_by_half(scales8: __m128i) -> [__m256i; 2] {
    let all = _mm256_cvtepi8_epi16(scales8);
    let (l, h) = (
        _mm256_castsi256_si128(all),
        _mm256_extracti128_si256(all, 1),
    );
    [_mm256_set_m128i(l, l), _mm256_set_m128i(h, h)]
}

/// Q2_K as ggml's AVX2 `ggml_vec_dot_q2_K_q8_K`: per block, the mins times the activation
/// sums (`vpmaddwd` over the sixteen bsums) go into the f32 lanes with `-dy·dmin`, then the
/// 2-bit quants times the activations, scaled per sub-block of 16, with `dy·d`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q2_k_q8_k<const N: usize>(x: &[BlockQ2K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0f);
    for (i, x) in x.iter().enumerate() {
        // SAFETY: scales is 16 bytes.
        let mins_and_scales = unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) };
        let scales = scales_by_half(_mm_and_si128(mins_and_scales, m4));
        let mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4));
        let (dx, dmin_x) = (f16_to_f32(x.d), f16_to_f32(x.dmin));
        let mut q = [[_mm256_setzero_si256(); 4]; 2];
        for (half, q) in q.iter_mut().enumerate() {
            // SAFETY: 32 bytes of qs at 32 * half (qs is 64 long).
            let bits = unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(32 * half).cast()) };
            for (k, q) in q.iter_mut().enumerate() {
                *q = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * k as i32)), m3);
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            // SAFETY: bsums is 16 i16 (32 bytes).
            let bsums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
            let prod = _mm256_madd_epi16(mins, bsums);
            let dmin = -y.d * dmin_x;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[c]);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let mut p = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    // SAFETY: 32 bytes of y.qs at 128 * half + 32 * k < 256.
                    let a = unsafe { load32(y.qs.as_ptr().add(128 * half + 32 * k)) };
                    p[k] = _mm256_madd_epi16(
                        scale_pair(scales[half], k),
                        _mm256_maddubs_epi16(q[half][k], a),
                    );
                }
                let p01 = _mm256_add_epi32(p[0], p[1]);
                let p23 = _mm256_add_epi32(p[2], p[3]);
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p01, p23));
            }
            let d = y.d * dx;
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

/// Q3_K as ggml's AVX2 `ggml_vec_dot_q3_K_q8_K`: the two low bits times the activations minus
/// `4 · a` where the element's high bit is clear (both by `vpmaddubsw`), scaled per sub-block
/// of 16 by the signed 6-bit scales, times `dy·d`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q3_k_q8_k<const N: usize>(x: &[BlockQ3K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [_mm256_setzero_ps(); N];
    let m3 = _mm256_set1_epi8(3);
    let one = _mm256_set1_epi8(1);
    for (i, x) in x.iter().enumerate() {
        let sc = hearth_quant::q3k_scales(&x.scales);
        // SAFETY: sc is 16 bytes.
        let scales = scales_by_half(unsafe { _mm_loadu_si128(sc.as_ptr().cast()) });
        // SAFETY: hmask is 32 bytes.
        let hbits = unsafe { _mm256_loadu_si256(x.hmask.as_ptr().cast()) };
        let mut low = [[_mm256_setzero_si256(); 4]; 2];
        let mut high = [[_mm256_setzero_si256(); 4]; 2];
        for half in 0..2 {
            // SAFETY: 32 bytes of qs at 32 * half (qs is 64 long).
            let bits = unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(32 * half).cast()) };
            for k in 0..4 {
                let shift = _mm_cvtsi32_si128(2 * k as i32);
                low[half][k] = _mm256_and_si256(_mm256_srl_epi16(bits, shift), m3);
                // 4 where the element's high bit (bit 4 * half + k of its hmask byte) is clear.
                let bit = _mm_cvtsi32_si128((4 * half + k) as i32);
                let clear = _mm256_andnot_si256(hbits, _mm256_sll_epi16(one, bit));
                high[half][k] = _mm256_slli_epi16(_mm256_srl_epi16(clear, bit), 2);
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let y = unsafe { &*y[c].add(i) };
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let mut p = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    // SAFETY: 32 bytes of y.qs at 128 * half + 32 * k < 256.
                    let a = unsafe { load32(y.qs.as_ptr().add(128 * half + 32 * k)) };
                    let p16 = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(low[half][k], a),
                        _mm256_maddubs_epi16(high[half][k], a),
                    );
                    p[k] = _mm256_madd_epi16(scale_pair(scales[half], k), p16);
                }
                let p01 = _mm256_add_epi32(p[0], p[1]);
                let p23 = _mm256_add_epi32(p[2], p[3]);
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p01, p23));
            }
            let d = y.d * f16_to_f32(x.d);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    let mut out = [0f32; N];
    for c in 0..N {
        out[c] = hsum(acc[c]);
    }
    out
}

/// F16 weights against F16 activations: `ggml_vec_dot_f16`, the arithmetic attention uses too.
fn vec_dot_f16(weights: &[u8], act: &[u8]) -> f32 {
    let w = blocks_from_bytes::<F16Le>(weights).expect("weight row layout");
    let a = blocks_from_bytes::<F16Le>(act).expect("activation row layout");
    assert_eq!(
        w.len(),
        a.len(),
        "weight and activation rows differ in length"
    );
    // SAFETY: CPU features as for every kernel here; both rows hold `w.len()` f16 values
    // (`F16Le` is two bytes with alignment 1, which `dot_f16_raw` accepts).
    unsafe { super::avx2_vec::dot_f16_raw(w.as_ptr().cast(), a.as_ptr().cast(), w.len()) }
}

fn vec_dot_n_f16(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = vec_dot_f16(weights, &act[i * stride..i * stride + weights.len()]);
    }
}

/// BF16 weights against BF16 activations as ggml's AVX2 `ggml_vec_dot_bf16`: four f32
/// accumulators of products (multiply, then add: no fused multiply-add), the tail in f64.
fn vec_dot_bf16(weights: &[u8], act: &[u8]) -> f32 {
    let w = blocks_from_bytes::<Bf16Le>(weights).expect("weight row layout");
    let a = blocks_from_bytes::<Bf16Le>(act).expect("activation row layout");
    assert_eq!(
        w.len(),
        a.len(),
        "weight and activation rows differ in length"
    );
    // SAFETY: CPU features as for every kernel here; both rows hold `w.len()` values.
    unsafe { dot_bf16_raw(w.as_ptr().cast(), a.as_ptr().cast(), w.len()) }
}

/// # Safety
/// AVX2; `x` and `y` readable for `n` bf16 values each (no alignment needed).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_bf16_raw(x: *const u16, y: *const u16, n: usize) -> f32 {
    // SAFETY (both closures): the caller's contract covers p..p + 8.
    let load = |p: *const u16| unsafe {
        _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
            16,
        ))
    };
    let np = n & !31;
    let mut c = [_mm256_setzero_ps(); 4];
    for i in (0..np).step_by(32) {
        for (j, c) in c.iter_mut().enumerate() {
            // SAFETY: i + 8 j + 8 ≤ np ≤ n.
            let (vx, vy) = unsafe { (load(x.add(i + 8 * j)), load(y.add(i + 8 * j))) };
            *c = _mm256_add_ps(_mm256_mul_ps(vx, vy), *c);
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(c[0], c[2]), _mm256_add_ps(c[1], c[3]));
    let g = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
    let g = _mm_add_ps(g, _mm_movehl_ps(g, g));
    let g = _mm_add_ss(g, _mm_movehdup_ps(g));
    let mut sum = f64::from(_mm_cvtss_f32(g));
    for i in np..n {
        // SAFETY: i < n.
        let (a, b) = unsafe { (x.add(i).read_unaligned(), y.add(i).read_unaligned()) };
        sum += f64::from(f32::from_bits(u32::from(a) << 16) * f32::from_bits(u32::from(b) << 16));
    }
    sum as f32
}

fn vec_dot_n_bf16(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = vec_dot_bf16(weights, &act[i * stride..i * stride + weights.len()]);
    }
}

/// Activation rows a prompt kernel takes at once.
const COLS: usize = 4;

/// Safe entry points with the [`MatKernels`] signatures: `vec_dot` (one activation row) and
/// `vec_dot_n` (several, [`COLS`] at a time).
macro_rules! entry {
    ($one:ident, $many:ident, $w:ty, $f:ident) => {
        fn $one(weights: &[u8], act: &[u8]) -> f32 {
            let w = blocks_from_bytes::<$w>(weights).expect("weight row layout");
            let a = blocks_from_bytes::<<$w as QuantBlock>::VecDot>(act)
                .expect("activation row layout");
            assert_eq!(
                w.len(),
                a.len(),
                "weight and activation rows differ in length"
            );
            // SAFETY: this set is only selected once AVX2, FMA and F16C are detected (module doc).
            let [dot] = unsafe { $f::<1>(w, [a]) };
            dot
        }

        fn $many(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
            type A = <$w as QuantBlock>::VecDot;
            let w = blocks_from_bytes::<$w>(weights).expect("weight row layout");
            let len = w.len() * size_of::<A>();
            let row = |i: usize| {
                blocks_from_bytes::<A>(&act[i * stride..i * stride + len])
                    .expect("activation row layout")
            };
            let mut chunks = out.chunks_exact_mut(COLS);
            let mut first = 0;
            for dst in &mut chunks {
                let rows: [&[A]; COLS] = std::array::from_fn(|c| row(first + c));
                // SAFETY: as above; every row holds as many blocks as the weight row.
                dst.copy_from_slice(&unsafe { $f::<COLS>(w, rows) });
                first += COLS;
            }
            for (c, o) in chunks.into_remainder().iter_mut().enumerate() {
                // SAFETY: as above.
                let [dot] = unsafe { $f::<1>(w, [row(first + c)]) };
                *o = dot;
            }
        }
    };
}

entry!(vec_dot_q4_0, vec_dot_n_q4_0, BlockQ4_0, q4_0_q8_0);
entry!(vec_dot_q4_1, vec_dot_n_q4_1, BlockQ4_1, q4_1_q8_1);
entry!(vec_dot_q5_0, vec_dot_n_q5_0, BlockQ5_0, q5_0_q8_0);
entry!(vec_dot_q5_1, vec_dot_n_q5_1, BlockQ5_1, q5_1_q8_1);
entry!(vec_dot_q8_0, vec_dot_n_q8_0, BlockQ8_0, q8_0_q8_0);
entry!(vec_dot_q2_k, vec_dot_n_q2_k, BlockQ2K, q2_k_q8_k);
entry!(vec_dot_q3_k, vec_dot_n_q3_k, BlockQ3K, q3_k_q8_k);
entry!(vec_dot_q4_k, vec_dot_n_q4_k, BlockQ4K, q4_k_q8_k);
entry!(vec_dot_q5_k, vec_dot_n_q5_k, BlockQ5K, q5_k_q8_k);
entry!(vec_dot_q6_k, vec_dot_n_q6_k, BlockQ6K, q6_k_q8_k);
entry!(vec_dot_iq4_nl, vec_dot_n_iq4_nl, BlockIq4Nl, iq4_nl_q8_0);
entry!(vec_dot_iq4_xs, vec_dot_n_iq4_xs, BlockIq4Xs, iq4_xs_q8_k);

/// 32 activations → 32 signed bytes with ggml's x86 `quantize_row_q8_0`/`q8_1` arithmetic:
/// `d = amax / 127`, the values multiplied by `127 / amax` (not by `1 / d`, as the portable
/// reference does) and rounded half to even. Returns `d` and the sum of the quants.
///
/// # Safety
/// `x` holds 32 floats, `q` 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_32(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert!(x.len() >= 32 && q.len() >= 32);
    // SAFETY: 32 floats by the caller's contract.
    let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
    let sign = _mm256_set1_ps(-0.0);
    let mut amax = _mm256_andnot_ps(sign, v[0]);
    for &vi in &v[1..] {
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, vi));
    }
    let m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    let amax = _mm_cvtss_f32(m4);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let i: [__m256i; 4] = std::array::from_fn(|k| {
        _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
            v[k], id,
        )))
    });
    let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256(sum, 1),
    );
    let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<0b10_11_00_01>(s2));
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(i[0], i[1]),
        _mm256_packs_epi32(i[2], i[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: 32 bytes by the caller's contract.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
    (d, _mm_cvtsi128_si32(s1))
}

/// One Q8_K block, the same bytes as hearth-quant's (ggml's `quantize_row_q8_K_ref`): the
/// first value of the largest magnitude is `max`, the quants `min(round(-127/max · x), 127)`
/// rounded half to even, `d = 1 / iscale`. A block with a NaN or an infinity, or whose `iscale`
/// overflows, takes hearth-quant's code (its casts of NaN and ±inf differ from `vcvtps2dq`'s).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_k_block(x: &[f32], y: &mut BlockQ8K) {
    assert_eq!(x.len(), QK_K, "one block");
    // SAFETY: 256 floats.
    let v: [__m256; 32] =
        std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
    let sign = _mm256_set1_ps(-0.0);
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut amax = _mm256_setzero_ps();
    let mut odd = _mm256_setzero_ps();
    for &vi in &v {
        let a = _mm256_andnot_ps(sign, vi);
        amax = _mm256_max_ps(amax, a);
        // NaN (unordered) or infinite.
        odd = _mm256_or_ps(odd, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
    }
    if _mm256_movemask_ps(odd) != 0 {
        BlockQ8K::quantize(x, std::slice::from_mut(y))
            .expect("Q8_K quantizes any finite or infinite input");
        return;
    }
    let m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    if amax == 0.0 {
        y.d = 0.0;
        y.qs = [0; QK_K];
        y.bsums = [0; QK_K / 16];
        return;
    }
    let am = _mm256_set1_ps(amax);
    let mut max = amax;
    for (k, &vi) in v.iter().enumerate() {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, vi), am));
        if hit != 0 {
            max = x[8 * k + hit.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = -127.0 / max;
    if !iscale.is_finite() {
        // A tiny subnormal max: the products overflow, and Rust's casts of ±inf differ from
        // `vcvtps2dq`'s.
        BlockQ8K::quantize(x, std::slice::from_mut(y))
            .expect("Q8_K quantizes any finite or infinite input");
        return;
    }
    let is = _mm256_set1_ps(iscale);
    let top = _mm256_set1_epi32(127);
    let ones = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (part, v) in v.chunks_exact(4).enumerate() {
        let i: [__m256i; 4] = std::array::from_fn(|k| {
            let r = _mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(v[k], is));
            _mm256_min_epi32(_mm256_cvtps_epi32(r), top)
        });
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(i[0], i[1]),
            _mm256_packs_epi32(i[2], i[3]),
        );
        let q = _mm256_permutevar8x32_epi32(packed, order);
        // SAFETY: 32 bytes of qs at 32 · part (qs is 256 long).
        unsafe { _mm256_storeu_si256(y.qs.as_mut_ptr().add(32 * part).cast(), q) };
        // Sums of four quants in i32 lanes, then of each sixteen (lanes 0 and 4).
        let s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), ones16);
        let s = _mm256_hadd_epi32(s, s);
        let s = _mm256_hadd_epi32(s, s);
        y.bsums[2 * part] = _mm256_cvtsi256_si32(s) as i16;
        y.bsums[2 * part + 1] = _mm256_extract_epi32::<4>(s) as i16;
    }
    y.d = 1.0 / iscale;
}

/// Q8_K rows ([`quantize_q8_k_block`]).
fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    let blocks = blocks_from_bytes_mut::<BlockQ8K>(dst).expect("activation row layout");
    assert_eq!(src.len(), blocks.len() * QK_K, "Q8_K rows are whole blocks");
    for (x, y) in src.chunks_exact(QK_K).zip(blocks) {
        // SAFETY: this set is only selected once AVX2, FMA and F16C are detected.
        unsafe { quantize_q8_k_block(x, y) };
    }
}

fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    let blocks = blocks_from_bytes_mut::<BlockQ8_0>(dst).expect("activation row layout");
    assert_eq!(src.len(), blocks.len() * 32, "Q8_0 rows are whole blocks");
    for (x, y) in src.chunks_exact(32).zip(blocks) {
        // SAFETY: 32 floats and 32 bytes; the CPU features as for every kernel here.
        let (d, _) = unsafe { quantize_32(x, &mut y.qs) };
        y.d = F16Le::from_f32(d);
    }
}

fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    let blocks = blocks_from_bytes_mut::<BlockQ8_1>(dst).expect("activation row layout");
    assert_eq!(src.len(), blocks.len() * 32, "Q8_1 rows are whole blocks");
    for (x, y) in src.chunks_exact(32).zip(blocks) {
        // SAFETY: 32 floats and 32 bytes; the CPU features as for every kernel here.
        let (d, sum) = unsafe { quantize_32(x, &mut y.qs) };
        y.d = F16Le::from_f32(d);
        y.s = F16Le::from_f32(d * sum as f32);
    }
}

/// An entry of this set: `base` (a scalar entry) with the x86 activation quantizer for its
/// `vec_dot_type`, and the given dot products (or the base's).
/// A set's own dot products for one type: `vec_dot` and `vec_dot_n`.
type Dots = (fn(&[u8], &[u8]) -> f32, VecDotN);

const fn avx2(base: MatKernels, dots: Option<Dots>) -> MatKernels {
    let quantize_act = match base.vec_dot_type {
        GgmlType::Q8_0 => quantize_q8_0 as fn(&[f32], &mut [u8]),
        GgmlType::Q8_1 => quantize_q8_1,
        GgmlType::Q8K => quantize_q8_k,
        _ => base.quantize_act,
    };
    let (vec_dot, vec_dot_n) = match dots {
        Some(d) => d,
        None => (base.vec_dot, base.vec_dot_n),
    };
    MatKernels {
        quantize_act,
        vec_dot,
        vec_dot_n,
        ..base
    }
}

const fn with_gemv(base: MatKernels, gemv: &'static Gemm) -> MatKernels {
    MatKernels {
        gemv: Some(gemv),
        ..base
    }
}

const fn with_gemm(base: MatKernels, gemm: &'static Gemm) -> MatKernels {
    MatKernels {
        gemm: Some(gemm),
        ..base
    }
}

/// Every weight type: the ones this set speeds up with its own dots, the rest with the scalar
/// dots but this set's activation quantizers (ggml quantizes activations with the x86 code
/// whatever the weight type).
pub static TABLE: [MatKernels; 15] = [
    avx2(scalar::entry::<f32>(), None),
    avx2(scalar::entry::<F16Le>(), Some((vec_dot_f16, vec_dot_n_f16))),
    avx2(
        scalar::entry::<Bf16Le>(),
        Some((vec_dot_bf16, vec_dot_n_bf16)),
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockQ4_0>(),
                Some((vec_dot_q4_0, vec_dot_n_q4_0)),
            ),
            &avx2_gemm::Q4_0,
        ),
        &avx2_gemv::Q4_0,
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockQ4_1>(),
                Some((vec_dot_q4_1, vec_dot_n_q4_1)),
            ),
            &avx2_gemm::Q4_1,
        ),
        &avx2_gemv::Q4_1,
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockQ5_0>(),
                Some((vec_dot_q5_0, vec_dot_n_q5_0)),
            ),
            &avx2_gemm::Q5_0,
        ),
        &avx2_gemv::Q5_0,
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockQ5_1>(),
                Some((vec_dot_q5_1, vec_dot_n_q5_1)),
            ),
            &avx2_gemm::Q5_1,
        ),
        &avx2_gemv::Q5_1,
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockQ8_0>(),
                Some((vec_dot_q8_0, vec_dot_n_q8_0)),
            ),
            &avx2_gemm::Q8_0,
        ),
        &avx2_gemv::Q8_0,
    ),
    avx2(
        scalar::entry::<BlockQ2K>(),
        Some((vec_dot_q2_k, vec_dot_n_q2_k)),
    ),
    avx2(
        scalar::entry::<BlockQ3K>(),
        Some((vec_dot_q3_k, vec_dot_n_q3_k)),
    ),
    with_gemm(
        avx2(
            scalar::entry::<BlockQ4K>(),
            Some((vec_dot_q4_k, vec_dot_n_q4_k)),
        ),
        &avx2_gemm::Q4_K,
    ),
    avx2(
        scalar::entry::<BlockQ5K>(),
        Some((vec_dot_q5_k, vec_dot_n_q5_k)),
    ),
    with_gemm(
        avx2(
            scalar::entry::<BlockQ6K>(),
            Some((vec_dot_q6_k, vec_dot_n_q6_k)),
        ),
        &avx2_gemm::Q6_K,
    ),
    with_gemv(
        with_gemm(
            avx2(
                scalar::entry::<BlockIq4Nl>(),
                Some((vec_dot_iq4_nl, vec_dot_n_iq4_nl)),
            ),
            &avx2_gemm::IQ4_NL,
        ),
        &avx2_gemv::IQ4_NL,
    ),
    avx2(
        scalar::entry::<BlockIq4Xs>(),
        Some((vec_dot_iq4_xs, vec_dot_n_iq4_xs)),
    ),
];

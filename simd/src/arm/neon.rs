//! The NEON kernel sets, `neon` ([`TABLE`]) and `neon-dotprod` ([`TABLE_DOTPROD`]).
//!
//! Each weight block is unpacked to signed bytes in registers (nibbles by mask and shift, fifth
//! bits by `tbl` + `cmtst`, IQ4 codebook values by `tbl`) and multiplied with the activation
//! bytes into four i32 lanes: with `sdot` where the CPU has the dot-product extension, else with
//! `smull` + `sadalp` (ggml's `ggml_vdotq_s32` fallback). Both are exact, so the two sets differ
//! only in how the integer sum of a block is spread over the lanes. The block sums are then
//! scaled and accumulated in f32 lanes; only the order of those f32 additions differs from
//! `hearth-quant`'s reference, which `simd/tests/kernels.rs` holds each kernel to.
//!
//! Every kernel is written once, generic over the byte dot product ([`Dot`]): [`Plain`] runs
//! on any aarch64 CPU, [`Sdot`] is instantiated inside a `#[target_feature(enable = "dotprod")]`
//! function (the assembler accepts `sdot` only there).
//!
//! Activations are quantized to Q8_0/Q8_1 as ggml's NEON `quantize_row_q8_0`/`q8_1` do:
//! multiplied by `1 / d` as the portable reference, but rounded half to even (`fcvtns`) where
//! the reference rounds half away from zero, so the two differ on exact ties only. Q8_K
//! activations (which ggml quantizes with its portable code on ARM) come from the reference.
//!
//! Safety: NEON is part of the aarch64 baseline. `sdot` is not: [`TABLE_DOTPROD`] is only
//! handed out by [`crate::select`] after `is_aarch64_feature_detected!("dotprod")`, which is
//! what makes its safe wrappers sound.

use std::arch::aarch64::*;
use std::arch::asm;

use hearth_quant::{
    blocks_from_bytes, blocks_from_bytes_mut, BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0,
    BlockQ5_1, BlockQ8_0, BlockQ8_1, F16Le, GgmlType, QuantBlock, KVALUES_IQ4NL,
};

use super::neon_k::{Iq4Xs, Q2K, Q3K, Q4K, Q5K, Q6K};
use crate::scalar;
use crate::MatKernels;

/// The plain NEON set: every aarch64 CPU.
pub fn detected() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

/// The dot-product set: NEON plus `sdot` (FEAT_DotProd).
pub fn detected_dotprod() -> bool {
    detected() && std::arch::is_aarch64_feature_detected!("dotprod")
}

/// A byte dot product: sixteen signed byte products summed into four i32 lanes.
pub(super) trait Dot {
    /// `acc` plus the products `a[i] * b[i]`, each lane taking four of them (which four depends
    /// on the implementation; the sum over the lanes does not).
    ///
    /// # Safety
    /// The CPU has this implementation's instructions.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;

    /// `K`'s kernel instantiated with this dot product, compiled with the CPU features it needs.
    ///
    /// # Safety
    /// As for [`Dot::dot`].
    unsafe fn run<K: Kernel, const N: usize>(x: &[K::W], y: [&[Act<K>]; N]) -> [f32; N];
}

/// `smull` + `sadalp`: the products widened to i16 (exact even for -128 · -128), pairs added
/// into the i32 lanes.
pub(super) struct Plain;

impl Dot for Plain {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }

    unsafe fn run<K: Kernel, const N: usize>(x: &[K::W], y: [&[Act<K>]; N]) -> [f32; N] {
        // SAFETY: `Plain` needs NEON only, the aarch64 baseline.
        unsafe { K::run::<Self, N>(x, y) }
    }
}

/// `sdot` (ARMv8.2 FEAT_DotProd): lane `i` gains the products of bytes `4i..4i + 4`.
pub(super) struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: a register-only instruction; the caller guarantees FEAT_DotProd. `vdotq_s32`
        // is not stable, hence the assembly.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    #[target_feature(enable = "neon,dotprod")]
    unsafe fn run<K: Kernel, const N: usize>(x: &[K::W], y: [&[Act<K>]; N]) -> [f32; N] {
        // SAFETY: the caller guarantees FEAT_DotProd, which this function is compiled for.
        unsafe { K::run::<Self, N>(x, y) }
    }
}

/// The activation block type of a kernel.
pub(super) type Act<K> = <<K as Kernel>::W as QuantBlock>::VecDot;

/// One weight type's kernel: one weight row against `N` activation rows.
pub(super) trait Kernel {
    type W: QuantBlock;

    /// The `N` dot products. Always inlined, so that [`Sdot::run`]'s features reach `sdot`.
    ///
    /// # Safety
    /// `D`'s instructions are available; every row of `y` holds at least `x.len()` blocks.
    unsafe fn run<D: Dot, const N: usize>(x: &[Self::W], y: [&[Act<Self>]; N]) -> [f32; N];
}

/// Declares a [`Kernel`] for weight type `$w` that calls `$f::<D, N>`.
macro_rules! kernel {
    ($name:ident, $w:ty, $f:ident) => {
        pub(super) struct $name;

        impl Kernel for $name {
            type W = $w;

            #[inline(always)]
            unsafe fn run<D: Dot, const N: usize>(
                x: &[$w],
                y: [&[<$w as QuantBlock>::VecDot]; N],
            ) -> [f32; N] {
                // SAFETY: forwarded from the caller.
                unsafe { $f::<D, N>(x, y) }
            }
        }
    };
}
pub(super) use kernel;

kernel!(Q4_0, BlockQ4_0, q4_0_q8_0);
kernel!(Q4_1, BlockQ4_1, q4_1_q8_1);
kernel!(Q5_0, BlockQ5_0, q5_0_q8_0);
kernel!(Q5_1, BlockQ5_1, q5_1_q8_1);
kernel!(Q8_0, BlockQ8_0, q8_0_q8_0);
kernel!(Iq4Nl, BlockIq4Nl, iq4_nl_q8_0);

/// f16 → f32, exact (`fcvt`, base ARMv8 floating point; `vcvt_f32_f16` is not stable).
#[inline(always)]
pub(super) fn f16_to_f32(h: F16Le) -> f32 {
    widen(h.to_bits())
}

#[inline(always)]
pub(super) fn widen(bits: u16) -> f32 {
    let out: f32;
    // SAFETY: a register-only instruction of the aarch64 baseline.
    unsafe {
        asm!(
            "fcvt {o:s}, {i:h}",
            i = in(vreg) bits,
            o = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// The activation rows' first blocks, after checking that each holds `n` blocks: the block loops
/// then index without bounds checks.
#[inline(always)]
pub(super) fn row_ptrs<A, const N: usize>(y: [&[A]; N], n: usize) -> [*const A; N] {
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

/// # Safety
/// `p` points at 16 readable bytes.
#[inline(always)]
pub(super) unsafe fn load_u8(p: *const u8) -> uint8x16_t {
    // SAFETY: by the caller's contract (`ld1` has no alignment requirement).
    unsafe { vld1q_u8(p) }
}

/// # Safety
/// `p` points at 16 readable bytes.
#[inline(always)]
pub(super) unsafe fn load_i8(p: *const i8) -> int8x16_t {
    // SAFETY: by the caller's contract.
    unsafe { vld1q_s8(p) }
}

/// Low nibbles as signed bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn low_nibbles(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f)))
}

/// High nibbles as signed bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn high_nibbles(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(vshrq_n_u8::<4>(v))
}

/// The 32 bytes of a 32-element block, as two registers.
#[inline]
#[target_feature(enable = "neon")]
fn act32(q: &[i8; 32]) -> (int8x16_t, int8x16_t) {
    // SAFETY: `q` is 32 bytes.
    unsafe { (load_i8(q.as_ptr()), load_i8(q.as_ptr().add(16))) }
}

/// The two dots of a 32-element block: `lo · a0 + hi · a1` in four i32 lanes.
///
/// # Safety
/// `D`'s instructions are available.
#[inline(always)]
unsafe fn dot32<D: Dot>(lo: int8x16_t, hi: int8x16_t, a: &[i8; 32]) -> int32x4_t {
    // SAFETY: `D` by the caller's contract; `a` is 32 bytes.
    unsafe {
        let (a0, a1) = act32(a);
        D::dot(D::dot(vdupq_n_s32(0), lo, a0), hi, a1)
    }
}

// Each kernel takes one weight row and N activation rows (N = 1 for generation, 4 while
// processing a prompt): a weight block is unpacked once and multiplied with the matching block
// of every activation row. The arithmetic of each (weight row, activation row) pair is the same
// whatever N is, so batch and single-token results agree bit for bit.

/// Q4_0 as ggml's NEON `ggml_vec_dot_q4_0_q8_0`: `(q - 8) · a` per block, times `dx·dy`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q4_0_q8_0<D: Dot, const N: usize>(x: &[BlockQ4_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let eight = vdupq_n_s8(8);
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: qs is 16 bytes.
        let v = unsafe { load_u8(xb.qs.as_ptr()) };
        let (lo, hi) = (
            vsubq_s8(low_nibbles(v), eight),
            vsubq_s8(high_nibbles(v), eight),
        );
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

/// Q4_1 as ggml's NEON `ggml_vec_dot_q4_1_q8_1`: `q · a` times `dx·dy`, plus `mx·sy` per block.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q4_1_q8_1<D: Dot, const N: usize>(x: &[BlockQ4_1], y: [&[BlockQ8_1]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let mut mins = [0f32; N];
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: qs is 16 bytes.
        let v = unsafe { load_u8(xb.qs.as_ptr()) };
        let (lo, hi) = (low_nibbles(v), high_nibbles(v));
        let (dx, mx) = (f16_to_f32(xb.d), f16_to_f32(xb.m));
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            mins[c] = mx.mul_add(f16_to_f32(yb.s), mins[c]);
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    std::array::from_fn(|c| vaddvq_f32(acc[c]) + mins[c])
}

/// The fifth bits of a Q5 block as two byte masks, 0xFF where the bit of the element is set
/// (elements 0..16 and 16..32): each byte takes the byte of `qh` its bit lives in (`tbl`),
/// then tests its bit (`cmtst`).
#[inline]
#[target_feature(enable = "neon")]
fn fifth_bits(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    const SPREAD: [u8; 32] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    ];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let word = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
    // SAFETY: the constants are 32 and 16 bytes.
    let (s0, s1, bit) = unsafe {
        (
            load_u8(SPREAD.as_ptr()),
            load_u8(SPREAD.as_ptr().add(16)),
            load_u8(BIT.as_ptr()),
        )
    };
    (
        vtstq_u8(vqtbl1q_u8(word, s0), bit),
        vtstq_u8(vqtbl1q_u8(word, s1), bit),
    )
}

/// Q5_0 as ggml's NEON `ggml_vec_dot_q5_0_q8_0`: `q - 16` is the nibble with the high nibble
/// set to 0xF where the fifth bit is clear.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q5_0_q8_0<D: Dot, const N: usize>(x: &[BlockQ5_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let f0 = vdupq_n_u8(0xf0);
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: qs is 16 bytes.
        let v = unsafe { load_u8(xb.qs.as_ptr()) };
        let (m0, m1) = fifth_bits(xb.qh);
        let lo = vorrq_s8(low_nibbles(v), vreinterpretq_s8_u8(vbicq_u8(f0, m0)));
        let hi = vorrq_s8(high_nibbles(v), vreinterpretq_s8_u8(vbicq_u8(f0, m1)));
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

/// Q5_1 as ggml's NEON `ggml_vec_dot_q5_1_q8_1`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q5_1_q8_1<D: Dot, const N: usize>(x: &[BlockQ5_1], y: [&[BlockQ8_1]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let mut mins = [0f32; N];
    let b4 = vdupq_n_u8(0x10);
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: qs is 16 bytes.
        let v = unsafe { load_u8(xb.qs.as_ptr()) };
        let (m0, m1) = fifth_bits(xb.qh);
        let lo = vorrq_s8(low_nibbles(v), vreinterpretq_s8_u8(vandq_u8(b4, m0)));
        let hi = vorrq_s8(high_nibbles(v), vreinterpretq_s8_u8(vandq_u8(b4, m1)));
        let (dx, mx) = (f16_to_f32(xb.d), f16_to_f32(xb.m));
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            mins[c] = mx.mul_add(f16_to_f32(yb.s), mins[c]);
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    std::array::from_fn(|c| vaddvq_f32(acc[c]) + mins[c])
}

/// Q8_0 as ggml's NEON `ggml_vec_dot_q8_0_q8_0`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q8_0_q8_0<D: Dot, const N: usize>(x: &[BlockQ8_0], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    for (i, xb) in x.iter().enumerate() {
        let (lo, hi) = act32(&xb.qs);
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

/// The IQ4 codebook values of 16 packed bytes: elements 0..16 (low nibbles) and 16..32.
///
/// # Safety
/// `p` points at 16 readable bytes.
#[inline(always)]
pub(super) unsafe fn iq4_values(p: *const u8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the codebook is 16 bytes; `p` by the caller's contract.
    let (book, v) = unsafe { (load_i8(KVALUES_IQ4NL.as_ptr()), load_u8(p)) };
    (
        vqtbl1q_s8(book, vandq_u8(v, vdupq_n_u8(0x0f))),
        vqtbl1q_s8(book, vshrq_n_u8::<4>(v)),
    )
}

/// IQ4_NL as ggml's NEON `ggml_vec_dot_iq4_nl_q8_0`: codebook values by `tbl`, then as Q8_0.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn iq4_nl_q8_0<D: Dot, const N: usize>(x: &[BlockIq4Nl], y: [&[BlockQ8_0]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: qs is 16 bytes.
        let (lo, hi) = unsafe { iq4_values(xb.qs.as_ptr()) };
        let dx = f16_to_f32(xb.d);
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            // SAFETY: `D` by the caller's contract.
            let p = unsafe { dot32::<D>(lo, hi, &yb.qs) };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(p), dx * f16_to_f32(yb.d));
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

/// Activation rows a prompt kernel takes at once.
const COLS: usize = 4;

fn vec_dot<K: Kernel, D: Dot>(weights: &[u8], act: &[u8]) -> f32 {
    let w = blocks_from_bytes::<K::W>(weights).expect("weight row layout");
    let a = blocks_from_bytes::<Act<K>>(act).expect("activation row layout");
    assert_eq!(
        w.len(),
        a.len(),
        "weight and activation rows differ in length"
    );
    // SAFETY: a table holding `D`'s kernels is only selected once the CPU reported `D`'s
    // features (module doc); the row lengths are equal.
    let [dot] = unsafe { D::run::<K, 1>(w, [a]) };
    dot
}

fn vec_dot_n<K: Kernel, D: Dot>(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
    let w = blocks_from_bytes::<K::W>(weights).expect("weight row layout");
    let len = w.len() * size_of::<Act<K>>();
    let row = |i: usize| {
        blocks_from_bytes::<Act<K>>(&act[i * stride..i * stride + len])
            .expect("activation row layout")
    };
    let mut chunks = out.chunks_exact_mut(COLS);
    let mut first = 0;
    for dst in &mut chunks {
        let rows: [&[Act<K>]; COLS] = std::array::from_fn(|c| row(first + c));
        // SAFETY: as in `vec_dot`; every row holds as many blocks as the weight row.
        dst.copy_from_slice(&unsafe { D::run::<K, COLS>(w, rows) });
        first += COLS;
    }
    for (c, o) in chunks.into_remainder().iter_mut().enumerate() {
        // SAFETY: as above.
        let [dot] = unsafe { D::run::<K, 1>(w, [row(first + c)]) };
        *o = dot;
    }
}

/// 32 activations → 32 signed bytes as ggml's NEON `quantize_row_q8_0`/`q8_1`: `d = amax / 127`,
/// the values times `1 / d`, rounded half to even. Returns `d` and the sum of the quants.
#[target_feature(enable = "neon")]
fn quantize_32(x: &[f32], q: &mut [i8; 32]) -> (f32, i32) {
    assert!(x.len() >= 32);
    // SAFETY: x holds 32 floats (checked above).
    let v: [float32x4_t; 8] = std::array::from_fn(|i| unsafe { vld1q_f32(x.as_ptr().add(4 * i)) });
    let mut amax = vabsq_f32(v[0]);
    for &vi in &v[1..] {
        amax = vmaxq_f32(amax, vabsq_f32(vi));
    }
    let d = vmaxvq_f32(amax) / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let i: [int32x4_t; 8] = v.map(|v| vcvtnq_s32_f32(vmulq_n_f32(v, id)));
    let sum = vaddq_s32(
        vaddq_s32(vaddq_s32(i[0], i[1]), vaddq_s32(i[2], i[3])),
        vaddq_s32(vaddq_s32(i[4], i[5]), vaddq_s32(i[6], i[7])),
    );
    let h: [int16x8_t; 4] =
        std::array::from_fn(|k| vcombine_s16(vmovn_s32(i[2 * k]), vmovn_s32(i[2 * k + 1])));
    let b0 = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
    let b1 = vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3]));
    // SAFETY: q is 32 bytes.
    unsafe {
        vst1q_s8(q.as_mut_ptr(), b0);
        vst1q_s8(q.as_mut_ptr().add(16), b1);
    }
    (d, vaddvq_s32(sum))
}

fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    let blocks = blocks_from_bytes_mut::<BlockQ8_0>(dst).expect("activation row layout");
    assert_eq!(src.len(), blocks.len() * 32, "Q8_0 rows are whole blocks");
    for (x, y) in src.chunks_exact(32).zip(blocks) {
        // SAFETY: NEON is the aarch64 baseline.
        let (d, _) = unsafe { quantize_32(x, &mut y.qs) };
        y.d = F16Le::from_f32(d);
    }
}

fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    let blocks = blocks_from_bytes_mut::<BlockQ8_1>(dst).expect("activation row layout");
    assert_eq!(src.len(), blocks.len() * 32, "Q8_1 rows are whole blocks");
    for (x, y) in src.chunks_exact(32).zip(blocks) {
        // SAFETY: NEON is the aarch64 baseline.
        let (d, sum) = unsafe { quantize_32(x, &mut y.qs) };
        y.d = F16Le::from_f32(d);
        y.s = F16Le::from_f32(d * sum as f32);
    }
}

/// The activation quantizer of this set for `ty`: NEON for Q8_0/Q8_1, else the reference.
const fn quantizer(ty: GgmlType, base: fn(&[f32], &mut [u8])) -> fn(&[f32], &mut [u8]) {
    match ty {
        GgmlType::Q8_0 => quantize_q8_0,
        GgmlType::Q8_1 => quantize_q8_1,
        _ => base,
    }
}

/// The entry for `K` with the byte dot product `D`.
const fn entry<K: Kernel, D: Dot>() -> MatKernels {
    let base = scalar::entry::<K::W>();
    MatKernels {
        quantize_act: quantizer(base.vec_dot_type, base.quantize_act),
        vec_dot: vec_dot::<K, D>,
        vec_dot_n: vec_dot_n::<K, D>,
        ..base
    }
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
    // SAFETY: both rows hold `w.len()` f16 values, read bytewise (no alignment needed).
    unsafe { super::neon_vec::dot_f16_raw(w.as_ptr().cast(), a.as_ptr().cast(), w.len()) }
}

fn vec_dot_n_f16(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = vec_dot_f16(weights, &act[i * stride..i * stride + weights.len()]);
    }
}

const F16: MatKernels = MatKernels {
    vec_dot: vec_dot_f16,
    vec_dot_n: vec_dot_n_f16,
    ..scalar::entry::<F16Le>()
};

/// The types these sets speed up (every other one falls back to the scalar entry).
const fn table<D: Dot>() -> [MatKernels; 13] {
    [
        F16,
        entry::<Q4_0, D>(),
        entry::<Q4_1, D>(),
        entry::<Q5_0, D>(),
        entry::<Q5_1, D>(),
        entry::<Q8_0, D>(),
        entry::<Q2K, D>(),
        entry::<Q3K, D>(),
        entry::<Q4K, D>(),
        entry::<Q5K, D>(),
        entry::<Q6K, D>(),
        entry::<Iq4Nl, D>(),
        entry::<Iq4Xs, D>(),
    ]
}

/// The `neon` set: every aarch64 CPU.
pub static TABLE: [MatKernels; 13] = table::<Plain>();

/// The `neon-dotprod` set: only valid where [`detected_dotprod`] holds.
pub static TABLE_DOTPROD: [MatKernels; 13] = table::<Sdot>();

/// The unpacking helpers give the reference's quants.
#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: int8x16_t) -> [i8; 16] {
        let mut out = [0i8; 16];
        // SAFETY: out is 16 bytes.
        unsafe { vst1q_s8(out.as_mut_ptr(), v) };
        out
    }

    #[test]
    fn fifth_bits_follow_qh() {
        for qh in [0u32, u32::MAX, 0x8000_0001, 0x1234_5678, 0x0001_8000] {
            // SAFETY: NEON is the aarch64 baseline.
            let (m0, m1) = unsafe { fifth_bits(qh.to_le_bytes()) };
            // SAFETY: as above.
            let (m0, m1) = unsafe { (vreinterpretq_s8_u8(m0), vreinterpretq_s8_u8(m1)) };
            let m: Vec<i8> = bytes(m0).into_iter().chain(bytes(m1)).collect();
            for (j, &b) in m.iter().enumerate() {
                assert_eq!(b == -1, (qh >> j) & 1 == 1, "qh {qh:#x} bit {j}");
                assert!(b == 0 || b == -1);
            }
        }
    }

    #[test]
    fn f16_widening_is_exact() {
        for bits in (0..=u16::MAX).step_by(7) {
            let h = F16Le::from_bits(bits);
            let (got, want) = (f16_to_f32(h), h.to_f32());
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }

    #[test]
    fn both_dots_sum_the_same() {
        let a: [i8; 16] = std::array::from_fn(|i| if i % 3 == 0 { -128 } else { 127 - i as i8 });
        let b: [i8; 16] = std::array::from_fn(|i| if i % 2 == 0 { -128 } else { i as i8 - 100 });
        let want: i32 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        // SAFETY: 16 bytes each; `Plain` needs NEON only, the aarch64 baseline.
        let plain = unsafe {
            let (va, vb) = (load_i8(a.as_ptr()), load_i8(b.as_ptr()));
            vaddvq_s32(Plain::dot(vdupq_n_s32(5), va, vb))
        };
        assert_eq!(plain, want + 20);
        if detected_dotprod() {
            // SAFETY: FEAT_DotProd was detected; `sum_sdot` is compiled for it.
            let s = unsafe { sum_sdot(&a, &b) };
            assert_eq!(s, want + 20);
        }
    }

    #[target_feature(enable = "neon,dotprod")]
    unsafe fn sum_sdot(a: &[i8; 16], b: &[i8; 16]) -> i32 {
        // SAFETY: 16 bytes each; FEAT_DotProd by the caller's contract.
        unsafe {
            let (va, vb) = (load_i8(a.as_ptr()), load_i8(b.as_ptr()));
            vaddvq_s32(Sdot::dot(vdupq_n_s32(5), va, vb))
        }
    }
}

//! The AVX2 set's single-token paths ([`MatKernels::gemv`](crate::MatKernels::gemv)) for the
//! 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL).
//!
//! The matrix-vector kernels of [`super::avx2`] spend most of each block on its two f16 scales
//! and the float multiply-add: widening the weight's and the activation's scale, their product,
//! a broadcast, a conversion of the integer sum and a multiply-add, for only 32 products. Here
//! a row is taken eight blocks at a time: each block leaves its integer sum in eight i32 lanes
//! (`vpmaddubsw` + `vpmaddwd`), the eight blocks' lanes are reduced together into one register
//! (block `j` in lane `j`: six `vphaddd`, two lane swaps and an add), and one conversion, one
//! widening of the eight weight scales and one multiply-add serve all eight blocks. The
//! activation scales were widened to f32 once, when the activations were quantized, since
//! every weight row uses them.
//!
//! Activation layout: per group of eight blocks (320 bytes), the eight blocks' 32 quants
//! (256 bytes, the set's Q8_0/Q8_1 quantizer), their scales as f32 (rounded to f16 first, as
//! the plain blocks hold them), then their quant sums as i32 (Q8_0) or Q8_1's `s` as f32. A last,
//! partial group is padded with zero blocks. Each block's integer sum is the matrix-vector
//! kernel's exact integer; only the order of the f32 additions differs.

use std::arch::x86_64::*;

use hearth_quant::{
    blocks_from_bytes, BlockIq4Nl, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, F16Le,
};

use super::avx2::{hsum, prefetch_ahead};
use super::avx2_gemm::{quantize_block, widen8, Block32, Term};
use crate::Gemm;

/// Blocks per group.
const GROUP: usize = 8;
/// Bytes of one activation group.
const ACT_GROUP: usize = GROUP * 40;
/// Offsets of the scales and of the sums or `s` in a group.
const D_AT: usize = GROUP * 32;
const EXTRA_AT: usize = D_AT + 4 * GROUP;

fn act_bytes(cols: usize) -> usize {
    (cols / 32).div_ceil(GROUP) * ACT_GROUP
}

/// Quantize a row into this layout; `extra(d, Σq)` gives a block's extra field (d before its
/// rounding to f16).
fn quantize_with(src: &[f32], dst: &mut [u8], extra: fn(f32, i32) -> [u8; 4]) {
    assert!(
        src.len() % 32 == 0 && dst.len() >= act_bytes(src.len()),
        "activation row layout"
    );
    let dst = &mut dst[..act_bytes(src.len())];
    dst.fill(0);
    for (b, x) in src.chunks_exact(32).enumerate() {
        let (g, j) = (b / GROUP * ACT_GROUP, b % GROUP);
        let (q, d, e) = quantize_block(x, extra);
        for (o, q) in dst[g + 32 * j..g + 32 * (j + 1)].iter_mut().zip(q) {
            *o = q as u8;
        }
        let at = g + D_AT + 4 * j;
        dst[at..at + 4].copy_from_slice(&d.to_le_bytes());
        let at = g + EXTRA_AT + 4 * j;
        dst[at..at + 4].copy_from_slice(&e);
    }
}

/// Q8_0 tokens, with the quants' sums.
fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    quantize_with(src, dst, |_, sum| sum.to_le_bytes());
}

/// Q8_1 tokens, with `s` (`d · Σq` rounded to f16, as the plain Q8_1 blocks hold it).
fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    quantize_with(src, dst, |d, sum| {
        F16Le::from_f32(d * sum as f32).to_f32().to_le_bytes()
    });
}

/// Eight i32 lanes whose sum is block `x`'s integer dot product with the 32 quants at `y`.
///
/// # Safety
/// AVX2, FMA and F16C are available; `y` points at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_sum<B: Block32>(x: &B, y: *const u8) -> __m256i {
    // SAFETY: by the caller's contract.
    let (q, a) = unsafe { (x.quants(), _mm256_loadu_si256(y.cast())) };
    let p = if B::SIGNED {
        _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q))
    } else {
        _mm256_maddubs_epi16(q, a)
    };
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Lane `j` of the result: the sum of the eight lanes of `p[j]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce8(p: [__m256i; 8]) -> __m256i {
    let a = _mm256_hadd_epi32(p[0], p[1]);
    let b = _mm256_hadd_epi32(p[2], p[3]);
    let c = _mm256_hadd_epi32(p[4], p[5]);
    let d = _mm256_hadd_epi32(p[6], p[7]);
    // Per 128-bit half: blocks 0-3, then 4-7, each half holding its half's partial sums.
    let lo = _mm256_hadd_epi32(a, b);
    let hi = _mm256_hadd_epi32(c, d);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(lo, hi),
        _mm256_permute2x128_si256::<0x31>(lo, hi),
    )
}

/// One weight row against one token of this layout.
///
/// # Safety
/// AVX2, FMA and F16C are available; `y` holds `act_bytes(32 · x.len())` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row<B: Block32>(x: &[B], y: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = _mm256_setzero_ps();
    let zero = _mm256_setzero_si256();
    for (g, blocks) in x.chunks(GROUP).enumerate() {
        let y = &y[g * ACT_GROUP..(g + 1) * ACT_GROUP];
        prefetch_ahead(blocks.as_ptr(), size_of_val(blocks));
        let mut p = [zero; GROUP];
        let mut d = [F16Le::from_bits(0); GROUP];
        let mut m = [F16Le::from_bits(0); GROUP];
        let mut put = |j: usize, b: &B| {
            // SAFETY: block j's 32 quants lie within the group; the CPU features as above.
            p[j] = unsafe { block_sum(b, y[32 * j..].as_ptr()) };
            (d[j], m[j]) = b.scales();
        };
        // A whole group as an array, so that its loop unrolls.
        match <&[B; GROUP]>::try_from(blocks) {
            Ok(full) => full.iter().enumerate().for_each(|(j, b)| put(j, b)),
            Err(_) => blocks.iter().enumerate().for_each(|(j, b)| put(j, b)),
        }
        let mut sums = reduce8(p);
        // SAFETY: the group's scales and extra fields, 32 bytes each.
        let (dy, extra) = unsafe {
            (
                _mm256_loadu_ps(y[D_AT..].as_ptr().cast()),
                _mm256_loadu_si256(y[EXTRA_AT..].as_ptr().cast()),
            )
        };
        if let Term::Offset(k) = B::TERM {
            sums = _mm256_sub_epi32(sums, _mm256_mullo_epi32(extra, _mm256_set1_epi32(k)));
        }
        let dx = widen8(d);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(sums), acc);
        if B::TERM == Term::Min {
            mins = _mm256_fmadd_ps(widen8(m), _mm256_castsi256_ps(extra), mins);
        }
    }
    hsum(_mm256_add_ps(acc, mins))
}

/// The [`Gemm::kernel`] of these paths: one weight row, each token in turn.
fn gemv<B: Block32>(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert_eq!(rows, 1, "one weight row per call");
    let x = blocks_from_bytes::<B>(weights).expect("weight row layout");
    let bytes = act_bytes(32 * x.len());
    for t in 0..n {
        let y = &act[t * stride..t * stride + bytes];
        // SAFETY: this set is only selected once AVX2, FMA and F16C are detected; `y` holds
        // the row's activation groups.
        out[t * out_stride] = unsafe { row(x, y) };
    }
}

macro_rules! path {
    ($name:ident, $block:ty, $quantize:ident, $doc:literal) => {
        #[doc = $doc]
        pub static $name: Gemm = Gemm {
            act_bytes,
            quantize_act: $quantize,
            rows: 1,
            kernel: gemv::<$block>,
        };
    };
}

path!(
    Q4_0,
    BlockQ4_0,
    quantize_q8_0,
    "The single-token path for Q4_0 weights."
);
path!(
    Q4_1,
    BlockQ4_1,
    quantize_q8_1,
    "The single-token path for Q4_1 weights."
);
path!(
    Q5_0,
    BlockQ5_0,
    quantize_q8_0,
    "The single-token path for Q5_0 weights."
);
path!(
    Q5_1,
    BlockQ5_1,
    quantize_q8_1,
    "The single-token path for Q5_1 weights."
);
path!(
    Q8_0,
    BlockQ8_0,
    quantize_q8_0,
    "The single-token path for Q8_0 weights."
);
path!(
    IQ4_NL,
    BlockIq4Nl,
    quantize_q8_0,
    "The single-token path for IQ4_NL weights."
);

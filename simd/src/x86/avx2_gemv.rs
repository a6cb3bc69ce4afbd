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
use super::dot::{ByteDot, Madd};
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
        src.len().is_multiple_of(32) && dst.len() >= act_bytes(src.len()),
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
/// AVX2, FMA and F16C are available, and `D`'s instruction; `y` points at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_sum<B: Block32, D: ByteDot>(x: &B, y: *const u8) -> __m256i {
    // SAFETY: by the caller's contract.
    let (q, a) = unsafe { (x.quants(), _mm256_loadu_si256(y.cast())) };
    let zero = _mm256_setzero_si256();
    // SAFETY: the set of `D` is only selected where the CPU runs it.
    unsafe {
        if B::SIGNED {
            D::dpbusd(zero, _mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q))
        } else {
            D::dpbusd(zero, q, a)
        }
    }
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

/// Weight rows one call takes: they share each activation group's loads and the final
/// reduction of their accumulators.
const ROWS: usize = 4;

/// The group's f32 accumulation of one weight row: `acc += d_x·d_y · Σ` (block `j` in lane
/// `j`), and for [`Term::Min`] `mins += m_x · s_y`.
///
/// # Safety
/// AVX2, FMA and F16C are available; `y` is one whole activation group.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_row<B: Block32, D: ByteDot>(
    blocks: &[B],
    y: &[u8],
    acc: &mut __m256,
    mins: &mut __m256,
) {
    let zero = _mm256_setzero_si256();
    prefetch_ahead(blocks.as_ptr(), size_of_val(blocks));
    let mut p = [zero; GROUP];
    let mut d = [F16Le::from_bits(0); GROUP];
    let mut m = [F16Le::from_bits(0); GROUP];
    let mut put = |j: usize, b: &B| {
        // SAFETY: block j's 32 quants lie within the group; the CPU features as above.
        p[j] = unsafe { block_sum::<B, D>(b, y[32 * j..].as_ptr()) };
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
    *acc = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(sums), *acc);
    if B::TERM == Term::Min {
        *mins = _mm256_fmadd_ps(widen8(m), _mm256_castsi256_ps(extra), *mins);
    }
}

/// `R` weight rows of equal length against one token of this layout: each row's eight lanes,
/// to be summed.
///
/// # Safety
/// AVX2, FMA and F16C are available; `y` holds `act_bytes(32 · x[r].len())` bytes and every
/// row has the same number of blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<B: Block32, D: ByteDot, const R: usize>(x: [&[B]; R], y: &[u8]) -> [__m256; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    let mut mins = [_mm256_setzero_ps(); R];
    let groups = x[0].len().div_ceil(GROUP);
    for g in 0..groups {
        let y = &y[g * ACT_GROUP..(g + 1) * ACT_GROUP];
        let (b0, b1) = (g * GROUP, (g * GROUP + GROUP).min(x[0].len()));
        for r in 0..R {
            // SAFETY: by the caller's contract.
            unsafe { group_row::<B, D>(&x[r][b0..b1], y, &mut acc[r], &mut mins[r]) };
        }
    }
    std::array::from_fn(|r| _mm256_add_ps(acc[r], mins[r]))
}

/// The sums of the lanes of four registers, each added in [`hsum`]'s order (so a row's result
/// has the same bits whether it was reduced alone or with three others).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum4(v: [__m256; 4]) -> __m128 {
    // Lanes i and i + 4 of each register.
    let s = v.map(|v| _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
    // [s0[0] + s0[2], s1[0] + s1[2], s0[1] + s0[3], s1[1] + s1[3]], and so for rows 2, 3.
    let a = _mm_add_ps(_mm_unpacklo_ps(s[0], s[1]), _mm_unpackhi_ps(s[0], s[1]));
    let b = _mm_add_ps(_mm_unpacklo_ps(s[2], s[3]), _mm_unpackhi_ps(s[2], s[3]));
    _mm_add_ps(_mm_movelh_ps(a, b), _mm_movehl_ps(b, a))
}

/// The [`Gemm::kernel`] of these paths: up to [`ROWS`] weight rows, each token in turn.
fn gemv<B: Block32, D: ByteDot>(
    weights: &[u8],
    nrows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(
        (1..=ROWS).contains(&nrows),
        "one to {ROWS} weight rows per call"
    );
    let x = blocks_from_bytes::<B>(weights).expect("weight row layout");
    let per_row = x.len() / nrows;
    assert_eq!(per_row * nrows, x.len(), "whole weight rows");
    let bytes = act_bytes(32 * per_row);
    for t in 0..n {
        let y = &act[t * stride..t * stride + bytes];
        let out = &mut out[t * out_stride..t * out_stride + nrows];
        // SAFETY: this set is only selected once AVX2, FMA and F16C are detected; `y` holds
        // the rows' activation groups and the rows are of one length.
        unsafe {
            if nrows == ROWS {
                let v =
                    rows::<B, D, ROWS>(std::array::from_fn(|r| &x[r * per_row..][..per_row]), y);
                _mm_storeu_ps(out.as_mut_ptr(), hsum4(v));
            } else {
                for (o, x) in out.iter_mut().zip(x.chunks_exact(per_row)) {
                    *o = hsum(rows::<B, D, 1>([x], y)[0]);
                }
            }
        }
    }
}

/// The single-token path of weight type `B` with the byte dot product `D`.
pub(super) const fn path<B: Block32, D: ByteDot>() -> Gemm {
    Gemm {
        act_bytes,
        quantize_act: match B::TERM {
            Term::Min => quantize_q8_1,
            Term::None | Term::Offset(_) => quantize_q8_0,
        },
        rows: ROWS,
        kernel: gemv::<B, D>,
    }
}

/// The single-token path for Q4_0 weights.
pub static Q4_0: Gemm = path::<BlockQ4_0, Madd>();
/// The single-token path for Q4_1 weights.
pub static Q4_1: Gemm = path::<BlockQ4_1, Madd>();
/// The single-token path for Q5_0 weights.
pub static Q5_0: Gemm = path::<BlockQ5_0, Madd>();
/// The single-token path for Q5_1 weights.
pub static Q5_1: Gemm = path::<BlockQ5_1, Madd>();
/// The single-token path for Q8_0 weights.
pub static Q8_0: Gemm = path::<BlockQ8_0, Madd>();
/// The single-token path for IQ4_NL weights.
pub static IQ4_NL: Gemm = path::<BlockIq4Nl, Madd>();

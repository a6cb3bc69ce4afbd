//! The AVX2 set's prompt paths ([`Gemm`]): weights times several tokens, with the activations
//! in layouts of these paths' own.
//!
//! **Q6_K** (one weight row per call). The matrix-vector kernels of [`super::avx2`] pay one `vpmaddwd` (the sub-block scale) for
//! every `vpmaddubsw` (32 products), because every 32-byte register of quants belongs to one
//! sub-block. Here each pair of 32-byte activation rows (elements `64k .. 64k + 64`) is stored
//! interleaved by 8-byte quarters (`vpunpcklqdq` / `vpunpckhqdq` of the two rows), and the
//! weights are interleaved the same way once per block, for every token of the tile. The two
//! products of a pair then share their i16 lanes' sub-blocks, add in i16 (no overflow: at most
//! 4 · 63 · 128), and take one `vpmaddwd` with the per-lane scales. The integer sum of each
//! block is the same exact integer as in the matrix-vector kernel; only the order of the f32
//! additions differs (the tests hold it to 1e-5 of `Σ|w·a|`).
//!
//! Activation block (320 bytes, 32-byte aligned within the row): the 256 Q8_K quants
//! interleaved as above, the 16 Q8_K `bsums` (i16, natural order), the f32 scale, padding.
//!
//! **Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL** (eight weight rows per call). A 32-element block
//! has one f16 scale, so a one-row kernel pays a conversion and a multiply-add in f32 for every
//! 32 products. Here the blocks of eight rows are unpacked to one byte per element and
//! transposed by 4-byte groups once (register `v` holds elements `4v .. 4v + 4` of all eight
//! rows), each token's 4-byte group is broadcast against it, the `vpmaddubsw` of a block add up
//! in i16 and `vpmaddwd` leaves each row's exact block sum in its own i32 lane: one conversion and
//! one multiply-add per block serve eight rows, and the results come out eight rows at a time.
//! One block loop ([`eight_rows`]) serves every type; a type ([`EightRows`]) gives its unpacking
//! and three constants:
//!
//! - unsigned quants (Q4: nibbles, Q5: `nibble + 16·bit`, 0 to 31) multiply the activations
//!   directly; Q4_0 and Q5_0 store `q + 8` and `q + 16` and subtract `8·Σa` or `16·Σa` from the
//!   integer sum, Q4_1 and Q5_1 add `m·s` (Q8_1's `s`) after the scale term;
//! - signed weights (Q8_0's quants, IQ4_NL's codebook values looked up by `vpshufb`) take
//!   `|w| · sign(a, w)` (`vpsignb`, as the matrix-vector kernels);
//! - products add up in i16 before widening as long as they cannot overflow: all eight groups
//!   for Q4 (8 · 2 · 15 · 127), four for Q5 (4 · 2 · 31 · 127), one for the signed weights (two
//!   of their products can already fill an i16).
//!
//! Tokens go eight per call, then four, then the last one to three ([`tiles`], which the
//! one-row kernels share with four per call).
//!
//! Activation block (40 bytes): the 32 quants of the set's Q8_0/Q8_1 quantizer (the one its
//! matrix-vector path uses for the weight type), the scale as f32, and the sum of the quants
//! (i32, Q8_0) or Q8_1's `s` (as f32).
//!
//! **Q4_K** (eight weight rows per call): the same per 32-element sub-block, the rows' six-bit
//! scales applied by the `vpmaddwd` that widens each sub-block's i16 sums, and the mins by four
//! `vpmaddwd` per block against the token's sub-block sums ([`q4_k_eight_rows`]). Against the
//! one-row kernel: 9 instead of 12 multiplies per 256 products, and no f32 work per sub-block.

use std::arch::x86_64::*;

use hearth_quant::{
    blocks_from_bytes, BlockIq4Nl, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, F16Le, Pod, QuantBlock, QK_K,
};

use super::avx2::{
    bits_to_bytes, f16_to_f32, hsum, iq4_values, k4_scales_mins, nibbles_32, prefetch_ahead,
    quantize_32, quantize_q8_k_block,
};
use super::dot::{ByteDot, Madd};
use crate::Gemm;

/// Bytes of one activation block of this layout.
const ACT_BLOCK: usize = 320;
const BSUMS_AT: usize = 256;
const D_AT: usize = 288;

fn act_bytes_k(cols: usize) -> usize {
    cols / QK_K * ACT_BLOCK
}

/// Q8_K quantization of a row (the set's, byte for byte hearth-quant's, as the matrix-vector
/// path uses), each block then laid out by `lay` into its `block_bytes` bytes of `dst`.
pub(super) fn quantize_k_with(
    src: &[f32],
    dst: &mut [u8],
    block_bytes: usize,
    lay: fn(&BlockQ8K, &mut [u8]),
) {
    assert!(
        src.len().is_multiple_of(QK_K) && dst.len() >= src.len() / QK_K * block_bytes,
        "activation row layout"
    );
    let mut q = BlockQ8K::zeroed();
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(block_bytes))
    {
        // SAFETY: the CPU features as for every kernel here.
        unsafe { quantize_q8_k_block(x, &mut q) };
        lay(&q, out);
    }
}

/// The one-row layout: the quants interleaved, the 16-element sums, the scale.
fn quantize_act_k(src: &[f32], dst: &mut [u8]) {
    quantize_k_with(src, dst, ACT_BLOCK, |q, out| {
        for (pair, o) in q.qs.chunks_exact(64).zip(out.chunks_exact_mut(64)) {
            let (a, b) = pair.split_at(32);
            for lane in 0..2 {
                // Per 128-bit lane: a's and b's first quarters, then their second quarters.
                let (src_lo, dst) = (16 * lane, &mut o[16 * lane..]);
                for (k, part) in [&a[src_lo..], &b[src_lo..]].into_iter().enumerate() {
                    for j in 0..8 {
                        dst[8 * k + j] = part[j] as u8;
                        dst[32 + 8 * k + j] = part[8 + j] as u8;
                    }
                }
            }
        }
        for (o, s) in out[BSUMS_AT..D_AT].chunks_exact_mut(2).zip(q.bsums) {
            o.copy_from_slice(&s.to_le_bytes());
        }
        out[D_AT..D_AT + 4].copy_from_slice(&q.d.to_le_bytes());
        out[D_AT + 4..].fill(0);
    });
}

/// The start of activation row `row` (at `row * stride` in `act`), checked to hold `bytes`.
pub(super) fn row_ptr(act: &[u8], stride: usize, row: usize, bytes: usize) -> *const u8 {
    let start = row * stride;
    assert!(
        start + bytes <= act.len(),
        "activation row shorter than the weight row"
    );
    act[start..].as_ptr()
}

/// The interleaved pair of 32-byte registers `(lo, hi)`: per 128-bit lane, the first quarters
/// of both, then the second quarters of both.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn interleave(lo: __m256i, hi: __m256i) -> (__m256i, __m256i) {
    (_mm256_unpacklo_epi64(lo, hi), _mm256_unpackhi_epi64(lo, hi))
}

/// # Safety
/// `p` points at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: by the caller's contract.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// # Safety
/// Every `y[c]` points at `x.len()` activation blocks of this layout.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const N: usize>(x: &[BlockQ6K], y: [*const u8; N]) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    // After broadcasting the four scales of pair t (sub-blocks of 16: 4t .. 4t + 4): lanes 0-3
    // of the low half take 4t, 4-7 take 4t + 2; of the high half 4t + 1 and 4t + 3.
    let pick = _mm256_setr_epi8(
        0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5, 2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7,
        6, 7,
    );
    for (i, x) in x.iter().enumerate() {
        prefetch_ahead(x, size_of_val(x));
        // SAFETY: scales is 16 bytes.
        let sc8 = unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) };
        let scales = _mm256_cvtepi8_epi16(sc8);
        let mut isum = [_mm256_setzero_si256(); N];
        for half in 0..2 {
            let (ql, qh) = (&x.ql[64 * half..], &x.qh[32 * half..]);
            // SAFETY: ql has 64 bytes from 64 * half, qh 32 bytes from 32 * half.
            let (l0, l1, h) = unsafe {
                (
                    load(ql.as_ptr()),
                    load(ql.as_ptr().add(32)),
                    load(qh.as_ptr()),
                )
            };
            let bits = |l: __m256i, hs: __m256i| {
                _mm256_or_si256(
                    _mm256_and_si256(l, low),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(hs, three)),
                )
            };
            // Elements 128·half + 32·j + l for j = 0..4, l in 0..32.
            let q = [
                bits(l0, h),
                bits(l1, _mm256_srli_epi16::<2>(h)),
                bits(_mm256_srli_epi16::<4>(l0), _mm256_srli_epi16::<4>(h)),
                bits(_mm256_srli_epi16::<4>(l1), _mm256_srli_epi16::<6>(h)),
            ];
            for j in 0..2 {
                let t = 2 * half + j;
                let (p, r) = interleave(q[2 * j], q[2 * j + 1]);
                let s = _mm256_shuffle_epi8(
                    match t {
                        0 => _mm256_permute4x64_epi64::<0x00>(scales),
                        1 => _mm256_permute4x64_epi64::<0x55>(scales),
                        2 => _mm256_permute4x64_epi64::<0xaa>(scales),
                        _ => _mm256_permute4x64_epi64::<0xff>(scales),
                    },
                    pick,
                );
                for c in 0..N {
                    // SAFETY: block i of row c holds 256 quant bytes (the caller's contract).
                    let (a0, a1) = unsafe {
                        let b = y[c].add(i * ACT_BLOCK + 64 * t);
                        (load(b), load(b.add(32)))
                    };
                    let prod =
                        _mm256_add_epi16(_mm256_maddubs_epi16(p, a0), _mm256_maddubs_epi16(r, a1));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(prod, s));
                }
            }
        }
        let dx = f16_to_f32(x.d);
        for c in 0..N {
            // SAFETY: as above; bsums and d lie within the block.
            let (bsums, d) = unsafe {
                let b = y[c].add(i * ACT_BLOCK);
                (
                    load(b.add(BSUMS_AT)),
                    std::ptr::read_unaligned(b.add(D_AT).cast::<f32>()),
                )
            };
            // The quants are stored as q + 32: Σ s·(q + 32)·a − 32·Σ s·bsum.
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(scales, bsums));
            let sumi = _mm256_sub_epi32(isum[c], offset);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * d), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    acc.map(|a| hsum(a))
}

/// Tokens per call of the one-row kernels (and the second tile size of the eight-row ones).
const COLS: usize = 4;

/// A kernel run over the tokens `first .. first + N`, its results stored.
pub(super) trait Tile {
    fn run<const N: usize>(&mut self, first: usize);
}

/// Runs `t` over `n` tokens: `W` at a time, then (if `W` is wider) eight and four at a time,
/// then the last one to three.
pub(super) fn tiles<const W: usize>(n: usize, t: &mut impl Tile) {
    let mut first = 0;
    while first + W <= n {
        t.run::<W>(first);
        first += W;
    }
    if W > 8 && first + 8 <= n {
        t.run::<8>(first);
        first += 8;
    }
    while W > COLS && first + COLS <= n {
        t.run::<COLS>(first);
        first += COLS;
    }
    debug_assert!(n - first < COLS);
    match n - first {
        0 => {}
        1 => t.run::<1>(first),
        2 => t.run::<2>(first),
        _ => t.run::<3>(first),
    }
}

/// A weight type of the one-row kernels.
trait OneRow: QuantBlock {
    /// Dot products of the weight row `x` with `N` tokens.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and every `y[c]` points at `x.len()` activation blocks
    /// of this layout.
    unsafe fn dots<const N: usize>(x: &[Self], y: [*const u8; N]) -> [f32; N];
}

impl OneRow for BlockQ6K {
    unsafe fn dots<const N: usize>(x: &[Self], y: [*const u8; N]) -> [f32; N] {
        // SAFETY: by the caller's contract.
        unsafe { q6_k(x, y) }
    }
}

/// One weight row against the tokens of a call.
struct OneRowTiles<'a, B> {
    w: &'a [B],
    act: &'a [u8],
    stride: usize,
    out: &'a mut [f32],
    out_stride: usize,
}

impl<B: OneRow> Tile for OneRowTiles<'_, B> {
    fn run<const N: usize>(&mut self, first: usize) {
        let bytes = self.w.len() * ACT_BLOCK;
        let y = std::array::from_fn(|c| row_ptr(self.act, self.stride, first + c, bytes));
        // SAFETY: this set is only selected once AVX2, FMA and F16C are detected, and `row_ptr`
        // checked that every token holds the weight row's blocks.
        let dots = unsafe { B::dots::<N>(self.w, y) };
        for (c, d) in dots.into_iter().enumerate() {
            self.out[(first + c) * self.out_stride] = d;
        }
    }
}

/// The [`Gemm::kernel`] of a one-row type.
fn gemm_one_row<B: OneRow>(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert_eq!(rows, 1, "one weight row per call");
    let w = blocks_from_bytes::<B>(weights).expect("weight row layout");
    tiles::<COLS>(
        n,
        &mut OneRowTiles {
            w,
            act,
            stride,
            out,
            out_stride,
        },
    );
}

/// The prompt path for Q6_K weights.
pub static Q6_K: Gemm = Gemm {
    act_bytes: act_bytes_k,
    quantize_act: quantize_act_k,
    rows: 1,
    kernel: gemm_one_row::<BlockQ6K>,
};

// ---- Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL: eight weight rows per call ----

/// Bytes of one activation block of the 32-element layout.
pub(super) const ACT32: usize = 40;
/// Weight rows per call of the 32-element kernels.
pub(super) const ROWS: usize = 8;
/// Tokens per call of the eight-row kernels: the unpacked block (eight registers) serves
/// sixteen tokens; LLVM keeps it in registers and runs the token loop rolled, its accumulators
/// in memory. Four tokens per call (unrolled, accumulators in registers) measured a fifth
/// slower than eight, and sixteen 10% (Q4_0) to 15% (Q4_K) faster than eight.
pub(super) const WIDE: usize = 16;

pub(super) fn act_bytes_32(cols: usize) -> usize {
    cols / 32 * ACT32
}

/// The set's Q8_0/Q8_1 quantization (x86 rounding): the quants, the f16 scale widened, and
/// `extra(d, Σq)` (d before its rounding to f16).
fn quantize_32_with(src: &[f32], dst: &mut [u8], extra: fn(f32, i32) -> [u8; 4]) {
    assert!(
        src.len().is_multiple_of(32) && dst.len() >= act_bytes_32(src.len()),
        "activation row layout"
    );
    for (x, out) in src.chunks_exact(32).zip(dst.chunks_exact_mut(ACT32)) {
        let (q, d, e) = quantize_block(x, extra);
        for (o, q) in out.iter_mut().zip(q) {
            *o = q as u8;
        }
        out[32..36].copy_from_slice(&d.to_le_bytes());
        out[36..40].copy_from_slice(&e);
    }
}

/// One 32-element block by the set's Q8_0/Q8_1 quantizer: the quants, the scale as the plain
/// blocks hold it (rounded to f16, widened), and `extra(d, Σq)` (d before its rounding).
pub(super) fn quantize_block(
    x: &[f32],
    extra: fn(f32, i32) -> [u8; 4],
) -> ([i8; 32], f32, [u8; 4]) {
    assert_eq!(x.len(), 32, "one block");
    let mut q = [0i8; 32];
    // SAFETY: 32 floats and 32 bytes; the CPU features as for every kernel here.
    let (d, sum) = unsafe { quantize_32(x, &mut q) };
    (q, F16Le::from_f32(d).to_f32(), extra(d, sum))
}

/// Q8_0, with the quants' sum.
pub(super) fn quantize_act_q8_0(src: &[f32], dst: &mut [u8]) {
    quantize_32_with(src, dst, |_, sum| sum.to_le_bytes());
}

/// Q8_1, with its `s` (`d · Σq` rounded to f16, as the plain Q8_1 rows hold it).
pub(super) fn quantize_act_q8_1(src: &[f32], dst: &mut [u8]) {
    quantize_32_with(src, dst, |d, sum| {
        F16Le::from_f32(d * sum as f32).to_f32().to_le_bytes()
    });
}

/// `r[v]` becomes the eight rows' 4-byte groups `v` (row `k` in lane `k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
    let t = [
        _mm256_unpacklo_epi32(r[0], r[1]),
        _mm256_unpackhi_epi32(r[0], r[1]),
        _mm256_unpacklo_epi32(r[2], r[3]),
        _mm256_unpackhi_epi32(r[2], r[3]),
        _mm256_unpacklo_epi32(r[4], r[5]),
        _mm256_unpackhi_epi32(r[4], r[5]),
        _mm256_unpacklo_epi32(r[6], r[7]),
        _mm256_unpackhi_epi32(r[6], r[7]),
    ];
    let u = [
        _mm256_unpacklo_epi64(t[0], t[2]),
        _mm256_unpackhi_epi64(t[0], t[2]),
        _mm256_unpacklo_epi64(t[1], t[3]),
        _mm256_unpackhi_epi64(t[1], t[3]),
        _mm256_unpacklo_epi64(t[4], t[6]),
        _mm256_unpackhi_epi64(t[4], t[6]),
        _mm256_unpacklo_epi64(t[5], t[7]),
        _mm256_unpackhi_epi64(t[5], t[7]),
    ];
    [
        _mm256_permute2x128_si256::<0x20>(u[0], u[4]),
        _mm256_permute2x128_si256::<0x20>(u[1], u[5]),
        _mm256_permute2x128_si256::<0x20>(u[2], u[6]),
        _mm256_permute2x128_si256::<0x20>(u[3], u[7]),
        _mm256_permute2x128_si256::<0x31>(u[0], u[4]),
        _mm256_permute2x128_si256::<0x31>(u[1], u[5]),
        _mm256_permute2x128_si256::<0x31>(u[2], u[6]),
        _mm256_permute2x128_si256::<0x31>(u[3], u[7]),
    ]
}

/// Eight f16 values widened.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn widen8(h: [F16Le; 8]) -> __m256 {
    let bits: [u16; 8] = h.map(|h| h.to_bits());
    // SAFETY: 16 bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(bits.as_ptr().cast()) })
}

/// The 4-byte group `v` of an activation block, broadcast.
///
/// # Safety
/// `y` points at block `i` of a row of this layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn group(y: *const u8, v: usize) -> __m256i {
    // SAFETY: by the caller's contract, 4 bytes at 4v < 32.
    _mm256_set1_epi32(unsafe { std::ptr::read_unaligned(y.add(4 * v).cast::<i32>()) })
}

/// An activation block's scale and its extra field (the sum of its quants, or Q8_1's `s`).
///
/// # Safety
/// `y` points at an activation block of this layout.
#[inline]
pub(super) unsafe fn scale_and_extra(y: *const u8) -> (f32, [u8; 4]) {
    // SAFETY: by the caller's contract, bytes 32..40 of the block.
    unsafe {
        (
            std::ptr::read_unaligned(y.add(32).cast::<f32>()),
            std::ptr::read_unaligned(y.add(36).cast::<[u8; 4]>()),
        )
    }
}

/// What a block adds besides `d · dy · Σ q·a`.
#[derive(PartialEq, Eq)]
pub(super) enum Term {
    /// Nothing (signed weights).
    None,
    /// The quants are stored as `q + k`: `k · Σ a` comes off the integer sum.
    Offset(i32),
    /// A min `m` per block (Q8_1 tokens): `m · s`.
    Min,
}

/// A 32-element weight block of the eight-row prompt paths and of the single-token paths
/// ([`super::avx2_gemv`]).
pub(super) trait Block32: QuantBlock {
    /// Signed quants (multiplied as `|w| · sign(a, w)`); otherwise unsigned bytes.
    const SIGNED: bool;
    const TERM: Term;
    /// The block's 32 quants in element order.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available.
    unsafe fn quants(&self) -> __m256i;
    /// The scale and (for [`Term::Min`]) the min, as f16.
    fn scales(&self) -> (F16Le, F16Le);
}

impl Block32 for BlockQ4_0 {
    const SIGNED: bool = false;
    const TERM: Term = Term::Offset(8);
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 16 bytes.
        unsafe { nibbles_32(self.qs.as_ptr()) }
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.d)
    }
}

impl Block32 for BlockQ4_1 {
    const SIGNED: bool = false;
    const TERM: Term = Term::Min;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 16 bytes.
        unsafe { nibbles_32(self.qs.as_ptr()) }
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.m)
    }
}

impl Block32 for BlockQ5_0 {
    const SIGNED: bool = false;
    const TERM: Term = Term::Offset(16);
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 16 bytes.
        let low = unsafe { nibbles_32(self.qs.as_ptr()) };
        _mm256_or_si256(
            low,
            _mm256_and_si256(bits_to_bytes(self.qh), _mm256_set1_epi8(0x10)),
        )
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.d)
    }
}

impl Block32 for BlockQ5_1 {
    const SIGNED: bool = false;
    const TERM: Term = Term::Min;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 16 bytes.
        let low = unsafe { nibbles_32(self.qs.as_ptr()) };
        _mm256_or_si256(
            low,
            _mm256_and_si256(bits_to_bytes(self.qh), _mm256_set1_epi8(0x10)),
        )
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.m)
    }
}

impl Block32 for BlockQ8_0 {
    const SIGNED: bool = true;
    const TERM: Term = Term::None;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 32 bytes.
        unsafe { _mm256_loadu_si256(self.qs.as_ptr().cast()) }
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.d)
    }
}

impl Block32 for BlockIq4Nl {
    const SIGNED: bool = true;
    const TERM: Term = Term::None;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(&self) -> __m256i {
        // SAFETY: 16 bytes.
        unsafe { iq4_values(self.qs.as_ptr()) }
    }
    fn scales(&self) -> (F16Le, F16Le) {
        (self.d, self.d)
    }
}

/// A weight type of the eight-row kernels.
pub(super) trait EightRows: QuantBlock {
    /// Bytes of one activation block of the type's layout.
    const ACT: usize;
    /// Eight weight rows (`x`, each `blocks` blocks) against `N` tokens, each row's dot product
    /// in its own lane.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and `D`'s instruction; every row of `x` holds
    /// `blocks` blocks and every `y[c]` that many activation blocks.
    unsafe fn dots<D: ByteDot, const N: usize>(
        x: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m256; N];
}

/// A 32-element type of the eight-row kernels.
pub(super) trait Widen: Block32 {
    /// Groups whose `vpmaddubsw` products add up in i16 before one `vpmaddwd` widens them:
    /// `WIDEN · 2 · max|w| · 127` must fit in an i16 (the VNNI forms need no such step).
    const WIDEN: usize;
}

impl Widen for BlockQ4_0 {
    const WIDEN: usize = 8; // 8 · 2 · 15 · 127 < 2^15
}
impl Widen for BlockQ4_1 {
    const WIDEN: usize = 8;
}
impl Widen for BlockQ5_0 {
    const WIDEN: usize = 4; // 4 · 2 · 31 · 127 < 2^15 (eight groups would not fit)
}
impl Widen for BlockQ5_1 {
    const WIDEN: usize = 4;
}
impl Widen for BlockQ8_0 {
    const WIDEN: usize = 1; // two products of 127 · 127 nearly fill an i16
}
impl Widen for BlockIq4Nl {
    const WIDEN: usize = 1; // codebook values up to 127 in magnitude, as Q8_0
}

impl<B: Widen> EightRows for B {
    const ACT: usize = ACT32;
    unsafe fn dots<D: ByteDot, const N: usize>(
        x: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m256; N] {
        // SAFETY: by the caller's contract.
        unsafe { eight_rows::<B, D, N>(x, blocks, y) }
    }
}

/// The eight rows' quants of one block transposed ([`transpose`]), their scales and (for
/// [`Term::Min`]) their mins.
///
/// # Safety
/// AVX2, FMA and F16C are available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn eight_blocks<B: Block32>(b: [&B; ROWS]) -> ([__m256i; 8], __m256, __m256) {
    // SAFETY: the CPU features by the caller's contract.
    let w = transpose(b.map(|b| unsafe { b.quants() }));
    let (d, m) = (b.map(|b| b.scales().0), b.map(|b| b.scales().1));
    (w, widen8(d), widen8(m))
}

/// The eight rows' blocks by index, the rows' lengths checked once. Indexing the rows in the
/// block loop (`x.map(|row| &row[i])`) costs an out-of-line call per block, with a `vzeroupper`
/// and the constants reloaded after it.
pub(super) struct EightRowBlocks<'a, B> {
    rows: [*const B; ROWS],
    blocks: usize,
    _rows: std::marker::PhantomData<&'a [B]>,
}

impl<'a, B> EightRowBlocks<'a, B> {
    pub(super) fn new(x: [&'a [B]; ROWS], blocks: usize) -> Self {
        for row in x {
            assert!(row.len() >= blocks, "weight rows of `blocks` blocks");
        }
        EightRowBlocks {
            rows: x.map(|row| row.as_ptr()),
            blocks,
            _rows: std::marker::PhantomData,
        }
    }

    /// Block `i` of every row.
    #[inline(always)]
    pub(super) fn at(&self, i: usize) -> [&'a B; ROWS] {
        assert!(i < self.blocks, "block within the rows");
        // SAFETY: every row holds `blocks` > i blocks (checked in `new`), borrowed for 'a.
        self.rows.map(|p| unsafe { &*p.add(i) })
    }
}

/// Eight weight rows (`x`, each `blocks` blocks) against `N` tokens, each row's dot product in
/// its own lane. Per block and token: the eight groups' `vpmaddubsw` (for signed weights on
/// `|w|` and `sign(a, w)`), added in i16 `B::WIDEN` at a time and widened by `vpmaddwd` (or
/// eight `vpdpbusd`), the offset or min term, one conversion and one multiply-add.
///
/// # Safety
/// AVX2, FMA and F16C are available, and `D`'s instruction; every row of `x` holds `blocks`
/// blocks and every `y[c]` that many activation blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn eight_rows<B: Widen, D: ByteDot, const N: usize>(
    x: [&[B]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m256; N] {
    const { assert!(B::WIDEN >= 1 && 8 % B::WIDEN == 0) };
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi16(1);
    let rows = EightRowBlocks::new(x, blocks);
    for i in 0..blocks {
        let b = rows.at(i);
        // SAFETY: the CPU features by the caller's contract.
        let (w, dx, mx) = unsafe { eight_blocks(b) };
        let aw = if B::SIGNED {
            w.map(|w| _mm256_sign_epi8(w, w))
        } else {
            w
        };
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT32) };
            let mut sumi = _mm256_setzero_si256();
            for part in 0..if D::VNNI { 0 } else { 8 / B::WIDEN } {
                let mut s16 = _mm256_setzero_si256();
                for v in part * B::WIDEN..(part + 1) * B::WIDEN {
                    // SAFETY: as above.
                    let a = unsafe { group(y, v) };
                    let a = if B::SIGNED {
                        _mm256_sign_epi8(a, w[v])
                    } else {
                        a
                    };
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(aw[v], a));
                }
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s16, ones));
            }
            if D::VNNI {
                // Two chains of four (`vpdpbusd` has a latency of five cycles).
                let mut part = [_mm256_setzero_si256(); 2];
                for v in 0..8 {
                    // SAFETY: as above; `D`'s instruction by the caller's contract.
                    unsafe {
                        let a = group(y, v);
                        let a = if B::SIGNED {
                            _mm256_sign_epi8(a, w[v])
                        } else {
                            a
                        };
                        part[v % 2] = D::dpbusd(part[v % 2], aw[v], a);
                    }
                }
                sumi = _mm256_add_epi32(part[0], part[1]);
            }
            // SAFETY: as above.
            let (dy, extra) = unsafe { scale_and_extra(y) };
            let d = _mm256_mul_ps(dx, _mm256_set1_ps(dy));
            acc[c] = match B::TERM {
                Term::None => _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c]),
                Term::Offset(k) => {
                    let sumi =
                        _mm256_sub_epi32(sumi, _mm256_set1_epi32(k * i32::from_le_bytes(extra)));
                    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c])
                }
                Term::Min => {
                    let a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c]);
                    _mm256_fmadd_ps(mx, _mm256_set1_ps(f32::from_le_bytes(extra)), a)
                }
            };
        }
    }
    acc
}

/// Up to eight weight rows against the tokens of a call.
struct EightRowTiles<'a, B, D> {
    x: [&'a [B]; ROWS],
    rows: usize,
    act: &'a [u8],
    stride: usize,
    out: &'a mut [f32],
    out_stride: usize,
    dot: std::marker::PhantomData<D>,
}

impl<B: EightRows, D: ByteDot> Tile for EightRowTiles<'_, B, D> {
    fn run<const N: usize>(&mut self, first: usize) {
        let blocks = self.x[0].len();
        let y = std::array::from_fn(|c| row_ptr(self.act, self.stride, first + c, blocks * B::ACT));
        // SAFETY: this set is only selected once AVX2, FMA and F16C (and `D`'s instruction) are
        // detected; every weight row holds `blocks` blocks and `row_ptr` checked the tokens.
        let acc = unsafe { B::dots::<D, N>(self.x, blocks, y) };
        for (c, a) in acc.into_iter().enumerate() {
            // A bit cast, not `_mm256_storeu_ps` (outside a function with AVX enabled, the
            // intrinsic is an out-of-line call: 2% of a prompt).
            // SAFETY: __m256 and [f32; 8] have the same size, and every bit pattern is valid.
            let lanes: [f32; ROWS] = unsafe { std::mem::transmute::<__m256, [f32; ROWS]>(a) };
            store_lanes(self.out, (first + c) * self.out_stride, self.rows, &lanes);
        }
    }
}

/// The first `rows` of a token's `R` row lanes into `out` at `at`.
#[inline(always)]
pub(super) fn store_lanes<const R: usize>(
    out: &mut [f32],
    at: usize,
    rows: usize,
    lanes: &[f32; R],
) {
    if rows == R {
        // A fixed length: one vector store, not a call to `memcpy` (1% of a prompt).
        out[at..at + R].copy_from_slice(lanes);
    } else {
        out[at..at + rows].copy_from_slice(&lanes[..rows]);
    }
}

/// The `R` weight rows of a kernel call over `rows` consecutive rows (1 ≤ `rows` ≤ `R`); rows
/// past `rows` repeat the first (their lanes are never stored).
pub(super) fn weight_rows<B: QuantBlock, const R: usize>(weights: &[u8], rows: usize) -> [&[B]; R] {
    assert!((1..=R).contains(&rows), "1 to {R} weight rows per call");
    assert!(
        weights.len().is_multiple_of(rows),
        "weight rows of one length"
    );
    let rb = weights.len() / rows;
    std::array::from_fn(|r| {
        let r = if r < rows { r } else { 0 };
        blocks_from_bytes::<B>(&weights[r * rb..(r + 1) * rb]).expect("weight row layout")
    })
}

/// The [`Gemm::kernel`] of an eight-row type.
fn gemm_eight_rows<B: EightRows, D: ByteDot>(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    tiles::<WIDE>(
        n,
        &mut EightRowTiles {
            x: weight_rows::<B, ROWS>(weights, rows),
            rows,
            act,
            stride,
            out,
            out_stride,
            dot: std::marker::PhantomData::<D>,
        },
    );
}

/// The eight-row prompt path of the 32-element type `B` with the byte dot product `D`.
pub(super) const fn eight_row_path<B: Widen, D: ByteDot>() -> Gemm {
    Gemm {
        act_bytes: act_bytes_32,
        quantize_act: match B::TERM {
            Term::Min => quantize_act_q8_1,
            Term::None | Term::Offset(_) => quantize_act_q8_0,
        },
        rows: ROWS,
        kernel: gemm_eight_rows::<B, D>,
    }
}

/// The prompt path for Q4_0 weights.
pub static Q4_0: Gemm = eight_row_path::<BlockQ4_0, Madd>();

/// The prompt path for Q4_1 weights.
pub static Q4_1: Gemm = eight_row_path::<BlockQ4_1, Madd>();

/// The prompt path for Q5_0 weights.
pub static Q5_0: Gemm = eight_row_path::<BlockQ5_0, Madd>();

/// The prompt path for Q5_1 weights.
pub static Q5_1: Gemm = eight_row_path::<BlockQ5_1, Madd>();

/// The prompt path for Q8_0 weights.
pub static Q8_0: Gemm = eight_row_path::<BlockQ8_0, Madd>();

/// The prompt path for IQ4_NL weights.
pub static IQ4_NL: Gemm = eight_row_path::<BlockIq4Nl, Madd>();

// ---- Q4_K: eight weight rows per call ----

/// Bytes of one activation block of the eight-row Q4_K layout: the 256 Q8_K quants in element
/// order, the eight sums of the quants of each 32-element sub-block (i16), the f32 scale,
/// padding.
pub(super) const ACT_K8: usize = 288;
pub(super) const K8_SUMS_AT: usize = 256;
pub(super) const K8_D_AT: usize = 272;

pub(super) fn act_bytes_k8(cols: usize) -> usize {
    cols / QK_K * ACT_K8
}

/// The eight-row Q4_K layout: the quants, the 32-element sums, the scale.
pub(super) fn quantize_act_k8(src: &[f32], dst: &mut [u8]) {
    quantize_k_with(src, dst, ACT_K8, |q, out| {
        for (o, &v) in out[..QK_K].iter_mut().zip(&q.qs) {
            *o = v as u8;
        }
        let sums = out[K8_SUMS_AT..K8_D_AT].chunks_exact_mut(2);
        for (o, pair) in sums.zip(q.bsums.chunks_exact(2)) {
            // At most 32 · 128 in magnitude.
            o.copy_from_slice(&(pair[0] + pair[1]).to_le_bytes());
        }
        out[K8_D_AT..K8_D_AT + 4].copy_from_slice(&q.d.to_le_bytes());
        out[K8_D_AT + 4..].fill(0);
    });
}

impl EightRows for BlockQ4K {
    const ACT: usize = ACT_K8;
    unsafe fn dots<D: ByteDot, const N: usize>(
        x: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m256; N] {
        // SAFETY: by the caller's contract.
        unsafe { q4_k_eight_rows::<D, N>(x, blocks, y) }
    }
}

/// Eight Q4_K rows against `N` tokens, as [`eight_rows`] does a 32-element type, per 32-element
/// sub-block `j`: the eight rows' quants transposed, each token's eight `vpmaddubsw` added in i16
/// (8 · 2 · 15 · 128 < 2^15), one `vpmaddwd` with the rows' scales of `j` (each row's in both i16
/// lanes of its i32 lane) adds the scaled sum of every row to its lane. The rows' six-bit scales
/// and mins, widened to i16 and transposed the same way, give per block the scale pairs and,
/// by four `vpmaddwd` with the token's pairs of sub-block sums, each row's `Σ min · sum`. With
/// VNNI, eight `vpdpbusd` per sub-block and token and one `vpmulld` by the rows' scales (as
/// i32: at most 32 · 15 · 128 · 63 per sub-block).
///
/// # Safety
/// AVX2, FMA and F16C are available, and `D`'s instruction; every row of `x` holds `blocks`
/// blocks and every `y[c]` that many activation blocks of this layout.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_eight_rows<D: ByteDot, const N: usize>(
    x: [&[BlockQ4K]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m256; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    // Within each row's i32 lane (the i16 pair of scales 2k, 2k + 1): the first or the second
    // i16 in both halves.
    let dup = |b: i8| {
        let l = [b, b + 1, b, b + 1];
        let mut m = [0i8; 32];
        for (r, c) in m.chunks_exact_mut(4).enumerate() {
            for (o, &v) in c.iter_mut().zip(&l) {
                *o = v + 4 * (r % 4) as i8;
            }
        }
        // SAFETY: 32 bytes.
        unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
    };
    let (first, second) = (dup(0), dup(2));
    let rows = EightRowBlocks::new(x, blocks);
    for i in 0..blocks {
        let b = rows.at(i);
        // Register v: the i16 pair (scale 2v, scale 2v + 1) of every row for v < 4, the pair
        // (min 2v − 8, min 2v − 7) for v ≥ 4.
        let sm = transpose(b.map(|b| {
            let u = k4_scales_mins(&b.scales);
            _mm256_cvtepu8_epi16(_mm_set_epi32(
                u[3] as i32,
                u[2] as i32,
                u[1] as i32,
                u[0] as i32,
            ))
        }));
        let dx = widen8(b.map(|b| b.d));
        let mx = widen8(b.map(|b| b.dmin));
        let mut isum = [_mm256_setzero_si256(); N];
        for (k, &pair) in sm[..4].iter().enumerate() {
            for half in 0..2 {
                let w = transpose(b.map(|b| {
                    // SAFETY: 32 bytes of qs at 32 · k (qs is 128 long).
                    let q = unsafe { load(b.qs.as_ptr().add(32 * k)) };
                    let q = if half == 0 {
                        q
                    } else {
                        _mm256_srli_epi16::<4>(q)
                    };
                    _mm256_and_si256(q, low)
                }));
                let s = _mm256_shuffle_epi8(pair, if half == 0 { first } else { second });
                let j = 2 * k + half;
                for c in 0..N {
                    // SAFETY: sub-block j of block i of token c (the caller's contract).
                    let y = unsafe { y[c].add(i * ACT_K8 + 32 * j) };
                    if D::VNNI {
                        // Two chains of four (`vpdpbusd` has a latency of five cycles).
                        let mut sub = [_mm256_setzero_si256(); 2];
                        for (v, &w) in w.iter().enumerate() {
                            // SAFETY: as above; `D`'s instruction by the caller's contract.
                            sub[v % 2] = unsafe { D::dpbusd(sub[v % 2], w, group(y, v)) };
                        }
                        let sub = _mm256_add_epi32(sub[0], sub[1]);
                        // Each row's scale is in both i16 halves of its lane: the low one.
                        let s32 = _mm256_and_si256(s, _mm256_set1_epi32(0xffff));
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(sub, s32));
                        continue;
                    }
                    let mut s16 = _mm256_setzero_si256();
                    for (v, &w) in w.iter().enumerate() {
                        // SAFETY: as above.
                        let a = unsafe { group(y, v) };
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w, a));
                    }
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(s16, s));
                }
            }
        }
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT_K8) };
            let mut m = _mm256_setzero_si256();
            for (p, &mins) in sm[4..].iter().enumerate() {
                // SAFETY: the sums lie within the block.
                let sums = unsafe { group(y.add(K8_SUMS_AT), p) };
                m = _mm256_add_epi32(m, _mm256_madd_epi16(mins, sums));
            }
            // SAFETY: as above.
            let dy = _mm256_set1_ps(unsafe { std::ptr::read_unaligned(y.add(K8_D_AT).cast()) });
            let a = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(mx, dy), _mm256_cvtepi32_ps(m), a);
        }
    }
    acc
}

/// The eight-row Q4_K prompt path with the byte dot product `D`.
pub(super) const fn q4_k_path<D: ByteDot>() -> Gemm {
    Gemm {
        act_bytes: act_bytes_k8,
        quantize_act: quantize_act_k8,
        rows: ROWS,
        kernel: gemm_eight_rows::<BlockQ4K, D>,
    }
}

/// The prompt path for Q4_K weights.
pub static Q4_K: Gemm = q4_k_path::<Madd>();

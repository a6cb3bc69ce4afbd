//! The AVX2 set's prompt paths ([`Gemm`]): weights times several tokens, with the activations
//! in layouts of these paths' own.
//!
//! **Q4_K, Q6_K** (one weight row per call). The matrix-vector kernels of [`super::avx2`] pay one `vpmaddwd` (the sub-block scale) for
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
//! **Q4_0, Q4_1, Q8_0** (eight weight rows per call). A 32-element block has one f16 scale, so
//! a one-row kernel pays a conversion and a multiply-add in f32 for every 32 products. Here the
//! blocks of eight rows are transposed by 4-byte groups once (register `v` holds elements
//! `4v .. 4v + 4` of all eight rows), each token's 4-byte group is broadcast against it, the
//! eight `vpmaddubsw` of a block add up in i16 (at most 8 · 2 · 15 · 127 for nibbles) and one
//! `vpmaddwd` leaves each row's exact block sum in its own i32 lane: one conversion and one
//! multiply-add per block serve eight rows, and the results come out eight rows at a time.
//! Q8_0's signed weights take `vpsignb` (as the matrix-vector kernel) and one `vpmaddwd` per
//! group, since two of their products can already fill an i16.
//!
//! Activation block (40 bytes): the 32 quants of the set's Q8_0/Q8_1 quantizer, the scale as
//! f32, and the sum of the quants (i32, Q8_0) or Q8_1's `s` (as f32).

use std::arch::x86_64::*;

use hearth_quant::{
    blocks_from_bytes, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K, BlockQ8K, BlockQ8_0, F16Le, Pod,
    QuantBlock, QK_K,
};

use super::avx2::{f16_to_f32, f16x2, hsum, k4_scales_mins, nibbles_32, quantize_32};
use crate::Gemm;

/// Bytes of one activation block of this layout.
const ACT_BLOCK: usize = 320;
const BSUMS_AT: usize = 256;
const D_AT: usize = 288;

fn act_bytes_k(cols: usize) -> usize {
    cols / QK_K * ACT_BLOCK
}

/// Q8_K quantization (hearth-quant's, as the matrix-vector path uses), then the interleaving.
fn quantize_act_k(src: &[f32], dst: &mut [u8]) {
    assert!(
        src.len() % QK_K == 0 && dst.len() >= act_bytes_k(src.len()),
        "activation row layout"
    );
    let mut q = [BlockQ8K::zeroed()];
    for (x, out) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(ACT_BLOCK)) {
        BlockQ8K::quantize(x, &mut q).expect("Q8_K quantizes any finite or infinite input");
        let q = &q[0];
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
    }
}

/// The start of activation row `row` (at `row * stride` in `act`), checked to hold `bytes`.
fn row_ptr(act: &[u8], stride: usize, row: usize, bytes: usize) -> *const u8 {
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
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: by the caller's contract.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// # Safety
/// Every `y[c]` points at `x.len()` activation blocks of this layout.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const N: usize>(x: &[BlockQ4K], y: [*const u8; N]) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    // Pair k's i16 lanes: 0-3 (and 8-11) from sub-block 2k, 4-7 (and 12-15) from 2k + 1.
    let pick = |k: i8| {
        let (a, b) = (4 * k, 4 * k + 2);
        _mm256_setr_epi8(
            a,
            a + 1,
            a,
            a + 1,
            a,
            a + 1,
            a,
            a + 1,
            b,
            b + 1,
            b,
            b + 1,
            b,
            b + 1,
            b,
            b + 1,
            a,
            a + 1,
            a,
            a + 1,
            a,
            a + 1,
            a,
            a + 1,
            b,
            b + 1,
            b,
            b + 1,
            b,
            b + 1,
            b,
            b + 1,
        )
    };
    let picks = [pick(0), pick(1), pick(2), pick(3)];
    for (i, x) in x.iter().enumerate() {
        let u = k4_scales_mins(&x.scales);
        let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(
            0,
            0,
            u[1] as i32,
            u[0] as i32,
        )));
        let m8 = _mm_set_epi32(0, 0, u[3] as i32, u[2] as i32);
        let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        let (dx, dmin) = f16x2(x);
        let mut isum = [_mm256_setzero_si256(); N];
        for (k, &pick) in picks.iter().enumerate() {
            // SAFETY: 32 bytes of qs at 32 * k (qs is 128 long).
            let q = unsafe { load(x.qs.as_ptr().add(32 * k)) };
            let (p, r) = interleave(
                _mm256_and_si256(q, low),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), low),
            );
            let s = _mm256_shuffle_epi8(scales, pick);
            for c in 0..N {
                // SAFETY: block i of row c holds 256 quant bytes (the caller's contract).
                let (a0, a1) = unsafe {
                    let b = y[c].add(i * ACT_BLOCK + 64 * k);
                    (load(b), load(b.add(32)))
                };
                let t = _mm256_add_epi16(_mm256_maddubs_epi16(p, a0), _mm256_maddubs_epi16(r, a1));
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(t, s));
            }
        }
        for c in 0..N {
            // SAFETY: as above; bsums and d lie within the block.
            let (bsums, d) = unsafe {
                let b = y[c].add(i * ACT_BLOCK);
                (
                    load(b.add(BSUMS_AT)),
                    std::ptr::read_unaligned(b.add(D_AT).cast::<f32>()),
                )
            };
            let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bsums));
            let a = _mm256_fmadd_ps(_mm256_set1_ps(dx * d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * d), m, a);
        }
    }
    acc.map(|a| hsum(a))
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

/// Tokens per call of a kernel.
const COLS: usize = 4;

macro_rules! one_row {
    ($name:ident, $w:ty, $f:ident) => {
        fn $name(
            weights: &[u8],
            rows: usize,
            act: &[u8],
            stride: usize,
            n: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            assert_eq!(rows, 1, "one weight row per call");
            let w = blocks_from_bytes::<$w>(weights).expect("weight row layout");
            let p = |i: usize| row_ptr(act, stride, i, w.len() * ACT_BLOCK);
            let mut put = |first: usize, dots: &[f32]| {
                for (c, &d) in dots.iter().enumerate() {
                    out[(first + c) * out_stride] = d;
                }
            };
            let mut first = 0;
            while first + COLS <= n {
                // SAFETY: this set is only selected once AVX2, FMA and F16C are detected, and
                // `row_ptr` checked that every row holds the weight row's blocks.
                let dots = unsafe { $f::<COLS>(w, std::array::from_fn(|c| p(first + c))) };
                put(first, &dots);
                first += COLS;
            }
            // SAFETY: as above.
            match n - first {
                0 => {}
                1 => put(first, &unsafe { $f::<1>(w, [p(first)]) }),
                2 => put(first, &unsafe { $f::<2>(w, [p(first), p(first + 1)]) }),
                _ => put(first, &unsafe {
                    $f::<3>(w, [p(first), p(first + 1), p(first + 2)])
                }),
            }
        }
    };
}

one_row!(gemm_q4_k, BlockQ4K, q4_k);
one_row!(gemm_q6_k, BlockQ6K, q6_k);

/// The prompt path for Q4_K weights.
pub static Q4_K: Gemm = Gemm {
    act_bytes: act_bytes_k,
    quantize_act: quantize_act_k,
    rows: 1,
    kernel: gemm_q4_k,
};

/// The prompt path for Q6_K weights.
pub static Q6_K: Gemm = Gemm {
    act_bytes: act_bytes_k,
    quantize_act: quantize_act_k,
    rows: 1,
    kernel: gemm_q6_k,
};

// ---- Q4_0, Q4_1, Q8_0: eight weight rows per call ----

/// Bytes of one activation block of the 32-element layout.
const ACT32: usize = 40;
/// Weight rows per call of the 32-element kernels.
const ROWS: usize = 8;
/// Tokens per call of the 32-element kernels (their accumulators and the broadcast activation
/// take ten registers; the transposed weights are read back from the stack).
const WIDE: usize = 8;

fn act_bytes_32(cols: usize) -> usize {
    cols / 32 * ACT32
}

/// The set's Q8_0/Q8_1 quantization (x86 rounding): the quants, the f16 scale widened, and
/// `extra(d, Σq)` (d before its rounding to f16).
fn quantize_32_with(src: &[f32], dst: &mut [u8], extra: fn(f32, i32) -> [u8; 4]) {
    assert!(
        src.len() % 32 == 0 && dst.len() >= act_bytes_32(src.len()),
        "activation row layout"
    );
    for (x, out) in src.chunks_exact(32).zip(dst.chunks_exact_mut(ACT32)) {
        let mut q = [0i8; 32];
        // SAFETY: 32 floats and 32 bytes; the CPU features as for every kernel here.
        let (d, sum) = unsafe { quantize_32(x, &mut q) };
        for (o, q) in out.iter_mut().zip(q) {
            *o = q as u8;
        }
        out[32..36].copy_from_slice(&F16Le::from_f32(d).to_f32().to_le_bytes());
        out[36..40].copy_from_slice(&extra(d, sum));
    }
}

/// Q8_0, with the quants' sum.
fn quantize_act_q8_0(src: &[f32], dst: &mut [u8]) {
    quantize_32_with(src, dst, |_, sum| sum.to_le_bytes());
}

/// Q8_1, with its `s` (`d · Σq` rounded to f16, as the plain Q8_1 rows hold it).
fn quantize_act_q8_1(src: &[f32], dst: &mut [u8]) {
    quantize_32_with(src, dst, |d, sum| {
        F16Le::from_f32(d * sum as f32).to_f32().to_le_bytes()
    });
}

/// `r[v]` becomes the eight rows' 4-byte groups `v` (row `k` in lane `k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
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
fn widen8(h: [F16Le; 8]) -> __m256 {
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
unsafe fn group(y: *const u8, v: usize) -> __m256i {
    // SAFETY: by the caller's contract, 4 bytes at 4v < 32.
    _mm256_set1_epi32(unsafe { std::ptr::read_unaligned(y.add(4 * v).cast::<i32>()) })
}

/// An activation block's scale and its extra field (the sum of its quants, or Q8_1's `s`).
///
/// # Safety
/// `y` points at an activation block of this layout.
#[inline]
unsafe fn scale_and_extra(y: *const u8) -> (f32, [u8; 4]) {
    // SAFETY: by the caller's contract, bytes 32..40 of the block.
    unsafe {
        (
            std::ptr::read_unaligned(y.add(32).cast::<f32>()),
            std::ptr::read_unaligned(y.add(36).cast::<[u8; 4]>()),
        )
    }
}

/// The eight rows' quants of one block as unsigned nibbles, transposed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibble_groups(qs: [&[u8; 16]; 8]) -> [__m256i; 8] {
    // SAFETY: 16 bytes each.
    transpose(qs.map(|q| unsafe { nibbles_32(q.as_ptr()) }))
}

/// Q4_0 (`x` the eight rows' blocks) against `N` tokens: `Σ (q − 8)·a = Σ q·a − 8·Σ a`.
///
/// # Safety
/// Every row of `x` holds `blocks` blocks and every `y[c]` that many activation blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0<const N: usize>(
    x: [&[BlockQ4_0]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m256; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi16(1);
    for i in 0..blocks {
        let b = x.map(|row| &row[i]);
        let w = nibble_groups(b.map(|b| &b.qs));
        let dx = widen8(b.map(|b| b.d));
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT32) };
            let mut s16 = _mm256_setzero_si256();
            for (v, &w) in w.iter().enumerate() {
                // SAFETY: as above.
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w, unsafe { group(y, v) }));
            }
            // SAFETY: as above.
            let (dy, sum) = unsafe { scale_and_extra(y) };
            let sumi = _mm256_sub_epi32(
                _mm256_madd_epi16(s16, ones),
                _mm256_set1_epi32(8 * i32::from_le_bytes(sum)),
            );
            let d = _mm256_mul_ps(dx, _mm256_set1_ps(dy));
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    acc
}

/// Q4_1 against `N` Q8_1 tokens: `Σ (d·q + m)·a = d·dy·Σ q·a + m·s`.
///
/// # Safety
/// As [`q4_0`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1<const N: usize>(
    x: [&[BlockQ4_1]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m256; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi16(1);
    for i in 0..blocks {
        let b = x.map(|row| &row[i]);
        let w = nibble_groups(b.map(|b| &b.qs));
        let (dx, mx) = (widen8(b.map(|b| b.d)), widen8(b.map(|b| b.m)));
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT32) };
            let mut s16 = _mm256_setzero_si256();
            for (v, &w) in w.iter().enumerate() {
                // SAFETY: as above.
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w, unsafe { group(y, v) }));
            }
            // SAFETY: as above.
            let (dy, s) = unsafe { scale_and_extra(y) };
            let sumi = _mm256_madd_epi16(s16, ones);
            let d = _mm256_mul_ps(dx, _mm256_set1_ps(dy));
            let a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c]);
            acc[c] = _mm256_fmadd_ps(mx, _mm256_set1_ps(f32::from_le_bytes(s)), a);
        }
    }
    acc
}

/// Q8_0 against `N` Q8_0 tokens: `|w| · sign(a, w)` as the matrix-vector kernel does, one
/// `vpmaddwd` per group.
///
/// # Safety
/// As [`q4_0`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const N: usize>(
    x: [&[BlockQ8_0]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m256; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi16(1);
    for i in 0..blocks {
        let b = x.map(|row| &row[i]);
        // SAFETY: 32 bytes each.
        let w = transpose(b.map(|b| unsafe { _mm256_loadu_si256(b.qs.as_ptr().cast()) }));
        let aw = w.map(|w| _mm256_sign_epi8(w, w));
        let dx = widen8(b.map(|b| b.d));
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT32) };
            let mut sumi = _mm256_setzero_si256();
            for v in 0..8 {
                // SAFETY: as above.
                let a = _mm256_sign_epi8(unsafe { group(y, v) }, w[v]);
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_madd_epi16(_mm256_maddubs_epi16(aw[v], a), ones),
                );
            }
            // SAFETY: as above.
            let (dy, _) = unsafe { scale_and_extra(y) };
            let d = _mm256_mul_ps(dx, _mm256_set1_ps(dy));
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    acc
}

macro_rules! eight_rows {
    ($name:ident, $w:ty, $f:ident) => {
        fn $name(
            weights: &[u8],
            rows: usize,
            act: &[u8],
            stride: usize,
            n: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            assert!(
                (1..=ROWS).contains(&rows),
                "1 to {ROWS} weight rows per call"
            );
            assert!(weights.len() % rows == 0, "weight rows of one length");
            let rb = weights.len() / rows;
            let row = |r: usize| {
                // Rows past `rows` repeat the first; their lanes are never stored.
                let r = if r < rows { r } else { 0 };
                blocks_from_bytes::<$w>(&weights[r * rb..(r + 1) * rb]).expect("weight row layout")
            };
            let x: [&[$w]; ROWS] = std::array::from_fn(row);
            let blocks = x[0].len();
            let p = |i: usize| row_ptr(act, stride, i, blocks * ACT32);
            let mut put = |first: usize, acc: &[__m256]| {
                for (c, a) in acc.iter().enumerate() {
                    let mut lanes = [0f32; ROWS];
                    // SAFETY: 32 bytes of `lanes`; AVX as everywhere in this set.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
                    let at = (first + c) * out_stride;
                    out[at..at + rows].copy_from_slice(&lanes[..rows]);
                }
            };
            let mut first = 0;
            while first + WIDE <= n {
                // SAFETY: this set is only selected once AVX2, FMA and F16C are detected; every
                // weight row holds `blocks` blocks and `row_ptr` checked the activations.
                let acc = unsafe { $f::<WIDE>(x, blocks, std::array::from_fn(|c| p(first + c))) };
                put(first, &acc);
                first += WIDE;
            }
            if first + COLS <= n {
                // SAFETY: as above.
                let acc = unsafe { $f::<COLS>(x, blocks, std::array::from_fn(|c| p(first + c))) };
                put(first, &acc);
                first += COLS;
            }
            // SAFETY: as above.
            match n - first {
                0 => {}
                1 => put(first, &unsafe { $f::<1>(x, blocks, [p(first)]) }),
                2 => put(first, &unsafe {
                    $f::<2>(x, blocks, [p(first), p(first + 1)])
                }),
                _ => put(first, &unsafe {
                    $f::<3>(x, blocks, [p(first), p(first + 1), p(first + 2)])
                }),
            }
        }
    };
}

eight_rows!(gemm_q4_0, BlockQ4_0, q4_0);
eight_rows!(gemm_q4_1, BlockQ4_1, q4_1);
eight_rows!(gemm_q8_0, BlockQ8_0, q8_0);

/// The prompt path for Q4_0 weights.
pub static Q4_0: Gemm = Gemm {
    act_bytes: act_bytes_32,
    quantize_act: quantize_act_q8_0,
    rows: ROWS,
    kernel: gemm_q4_0,
};

/// The prompt path for Q4_1 weights.
pub static Q4_1: Gemm = Gemm {
    act_bytes: act_bytes_32,
    quantize_act: quantize_act_q8_1,
    rows: ROWS,
    kernel: gemm_q4_1,
};

/// The prompt path for Q8_0 weights.
pub static Q8_0: Gemm = Gemm {
    act_bytes: act_bytes_32,
    quantize_act: quantize_act_q8_0,
    rows: ROWS,
    kernel: gemm_q8_0,
};

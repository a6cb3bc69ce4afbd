//! The AVX2 set's prompt path for Q4_K and Q6_K weights: one weight row times several tokens,
//! with the activations in a layout of this path's own ([`Gemm`]).
//!
//! The matrix-vector kernels of [`super::avx2`] pay one `vpmaddwd` (the sub-block scale) for
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

use std::arch::x86_64::*;

use hearth_quant::{blocks_from_bytes, BlockQ4K, BlockQ6K, BlockQ8K, Pod, QuantBlock, QK_K};

use super::avx2::{f16_to_f32, f16x2, hsum, k4_scales_mins};
use crate::Gemm;

/// Bytes of one activation block of this layout.
const ACT_BLOCK: usize = 320;
const BSUMS_AT: usize = 256;
const D_AT: usize = 288;

fn act_bytes(cols: usize) -> usize {
    cols / QK_K * ACT_BLOCK
}

/// Q8_K quantization (hearth-quant's, as the matrix-vector path uses), then the interleaving.
fn quantize_act(src: &[f32], dst: &mut [u8]) {
    assert!(
        src.len() % QK_K == 0 && dst.len() >= act_bytes(src.len()),
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

/// The start of activation row `row` (at `row * stride` in `act`), checked to hold `blocks`
/// blocks.
fn row_ptr(act: &[u8], stride: usize, row: usize, blocks: usize) -> *const u8 {
    let start = row * stride;
    assert!(
        start + blocks * ACT_BLOCK <= act.len(),
        "activation row shorter than the weight row"
    );
    act[start..].as_ptr()
}

/// The interleaved pair of 32-byte registers `(lo, hi)`: per 128-bit lane, the first quarters
/// of both, then the second quarters of both.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn interleave(lo: __m256i, hi: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_unpacklo_epi64(lo, hi),
        _mm256_unpackhi_epi64(lo, hi),
    )
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
                let t = _mm256_add_epi16(
                    _mm256_maddubs_epi16(p, a0),
                    _mm256_maddubs_epi16(r, a1),
                );
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
                    let prod = _mm256_add_epi16(
                        _mm256_maddubs_epi16(p, a0),
                        _mm256_maddubs_epi16(r, a1),
                    );
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

macro_rules! gemm {
    ($name:ident, $w:ty, $f:ident) => {
        fn $name(weights: &[u8], act: &[u8], stride: usize, out: &mut [f32]) {
            let w = blocks_from_bytes::<$w>(weights).expect("weight row layout");
            // Row `first + c` for the first `count` columns (the others are never read).
            let rows = |first: usize, count: usize| -> [*const u8; COLS] {
                std::array::from_fn(|c| {
                    if c < count {
                        row_ptr(act, stride, first + c, w.len())
                    } else {
                        std::ptr::null()
                    }
                })
            };
            let mut chunks = out.chunks_exact_mut(COLS);
            let mut first = 0;
            for dst in &mut chunks {
                // SAFETY: this set is only selected once AVX2, FMA and F16C are detected, and
                // `row_ptr` checked that every row holds the weight row's blocks.
                dst.copy_from_slice(&unsafe { $f::<COLS>(w, rows(first, COLS)) });
                first += COLS;
            }
            let rest = chunks.into_remainder();
            let p = rows(first, rest.len());
            // SAFETY: as above, for the first `rest.len()` pointers, the only ones passed.
            match rest.len() {
                0 => {}
                1 => rest.copy_from_slice(&unsafe { $f::<1>(w, [p[0]]) }),
                2 => rest.copy_from_slice(&unsafe { $f::<2>(w, [p[0], p[1]]) }),
                _ => rest.copy_from_slice(&unsafe { $f::<3>(w, [p[0], p[1], p[2]]) }),
            }
        }
    };
}

gemm!(gemm_q4_k, BlockQ4K, q4_k);
gemm!(gemm_q6_k, BlockQ6K, q6_k);

/// The prompt path for Q4_K weights.
pub static Q4_K: Gemm = Gemm {
    act_bytes,
    quantize_act,
    vec_dot_n: gemm_q4_k,
};

/// The prompt path for Q6_K weights.
pub static Q6_K: Gemm = Gemm {
    act_bytes,
    quantize_act,
    vec_dot_n: gemm_q6_k,
};

//! The `avx512` set's own Q4_K prompt path: sixteen weight rows per call in 512-bit registers.
//!
//! The eight-row Q4_K kernel of [`super::avx2_gemm`] with `vpdpbusd` is bound by its chains of
//! dependent instructions (five cycles per `vpdpbusd`, ten per `vpmulld`), not by the multiply
//! ports. Here two groups of eight rows sit side by side in one 512-bit register (rows 0-7 in
//! the low half, 8-15 in the high half, each half laid out as the eight-row kernel lays out its
//! rows), so every instruction of a chain does twice the work: the 512-bit `vpdpbusd` runs
//! nearly as often per cycle as the 256-bit one on the AVX-512 cores that have two 512-bit
//! units. Per 32-element sub-block and token: eight `vpdpbusd` in two chains against the
//! token's broadcast 4-byte groups, one `vpmulld` by the rows' six-bit scales; per block and
//! token, four `vpmaddwd` for the mins against the token's sub-block sums, then one conversion
//! and two multiply-adds in f32 for sixteen rows.
//!
//! The activations are the eight-row Q4_K layout (Q8_K quants, sub-block sums, f32 scale), and
//! every lane's integer sums and f32 operations are those of the eight-row kernel, so a row's
//! results are the same bits as there.

use std::arch::x86_64::*;

use hearth_quant::{blocks_from_bytes, BlockQ4K};

use super::avx2::k4_scales_mins;
use super::avx2_gemm::{
    act_bytes_k8, load, quantize_act_k8, row_ptr, tiles, transpose, widen8, EightRowBlocks, Tile,
    ACT_K8, K8_D_AT, K8_SUMS_AT, ROWS, WIDE,
};
use crate::Gemm;

/// Weight rows per call.
const ROWS16: usize = 2 * ROWS;

/// Two eight-row halves as one register (`lo` in bits 0-255).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Two eight-row halves of f32 as one register.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn join_ps(lo: __m256, hi: __m256) -> __m512 {
    _mm512_castsi512_ps(join(_mm256_castps_si256(lo), _mm256_castps_si256(hi)))
}

/// The 4-byte group `v` at `y`, broadcast.
///
/// # Safety
/// 4 readable bytes at `y + 4v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn group16(y: *const u8, v: usize) -> __m512i {
    // SAFETY: by the caller's contract.
    _mm512_set1_epi32(unsafe { std::ptr::read_unaligned(y.add(4 * v).cast::<i32>()) })
}

/// Sixteen Q4_K rows (`lo` rows 0-7, `hi` rows 8-15, each `blocks` blocks) against `N` tokens,
/// each row's dot product in its own lane.
///
/// # Safety
/// AVX2, FMA, F16C and AVX-512 F, BW, VL and VNNI are available; every row holds `blocks`
/// blocks and every `y[c]` that many activation blocks of the eight-row Q4_K layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_sixteen_rows<const N: usize>(
    lo: [&[BlockQ4K]; ROWS],
    hi: [&[BlockQ4K]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m512; N] {
    let mut acc = [_mm512_setzero_ps(); N];
    let low = _mm256_set1_epi8(0x0f);
    let low16 = _mm512_set1_epi32(0xffff);
    let (lo, hi) = (
        EightRowBlocks::new(lo, blocks),
        EightRowBlocks::new(hi, blocks),
    );
    // An eight-row half's (scale, min) i16 pairs, transposed: register v holds every row's
    // pair (scale 2v, scale 2v + 1) for v < 4, (min 2v − 8, min 2v − 7) for v ≥ 4.
    let scales_mins = |b: [&BlockQ4K; ROWS]| {
        transpose(b.map(|b| {
            let u = k4_scales_mins(&b.scales);
            _mm256_cvtepu8_epi16(_mm_set_epi32(
                u[3] as i32,
                u[2] as i32,
                u[1] as i32,
                u[0] as i32,
            ))
        }))
    };
    for i in 0..blocks {
        let (bl, bh) = (lo.at(i), hi.at(i));
        let (sl, sh) = (scales_mins(bl), scales_mins(bh));
        let sm: [__m512i; 8] = std::array::from_fn(|v| join(sl[v], sh[v]));
        let dx = join_ps(widen8(bl.map(|b| b.d)), widen8(bh.map(|b| b.d)));
        let mx = join_ps(widen8(bl.map(|b| b.dmin)), widen8(bh.map(|b| b.dmin)));
        let mut isum = [_mm512_setzero_si512(); N];
        for (k, &pair) in sm[..4].iter().enumerate() {
            for half in 0..2 {
                let quants = |b: [&BlockQ4K; ROWS]| {
                    transpose(b.map(|b| {
                        // SAFETY: 32 bytes of qs at 32 · k (qs is 128 long).
                        let q = unsafe { load(b.qs.as_ptr().add(32 * k)) };
                        let q = if half == 0 {
                            q
                        } else {
                            _mm256_srli_epi16::<4>(q)
                        };
                        _mm256_and_si256(q, low)
                    }))
                };
                let (wl, wh) = (quants(bl), quants(bh));
                let w: [__m512i; 8] = std::array::from_fn(|v| join(wl[v], wh[v]));
                // Each row's scale of sub-block 2k + half, as i32.
                let s = if half == 0 {
                    _mm512_and_si512(pair, low16)
                } else {
                    _mm512_srli_epi32::<16>(pair)
                };
                let j = 2 * k + half;
                for c in 0..N {
                    // SAFETY: sub-block j of block i of token c (the caller's contract).
                    let y = unsafe { y[c].add(i * ACT_K8 + 32 * j) };
                    // Two chains of four.
                    let mut sub = [_mm512_setzero_si512(); 2];
                    for (v, &w) in w.iter().enumerate() {
                        // SAFETY: as above.
                        let a = unsafe { group16(y, v) };
                        sub[v % 2] = _mm512_dpbusd_epi32(sub[v % 2], w, a);
                    }
                    let sub = _mm512_add_epi32(sub[0], sub[1]);
                    isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub, s));
                }
            }
        }
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT_K8) };
            let mut m = _mm512_setzero_si512();
            for (p, &mins) in sm[4..].iter().enumerate() {
                // SAFETY: the sums lie within the block.
                let sums = unsafe { group16(y.add(K8_SUMS_AT), p) };
                m = _mm512_add_epi32(m, _mm512_madd_epi16(mins, sums));
            }
            // SAFETY: as above.
            let dy = _mm512_set1_ps(unsafe { std::ptr::read_unaligned(y.add(K8_D_AT).cast()) });
            let a = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(isum[c]), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(mx, dy), _mm512_cvtepi32_ps(m), a);
        }
    }
    acc
}

/// Up to sixteen Q4_K rows against the tokens of a call.
struct SixteenRowTiles<'a> {
    lo: [&'a [BlockQ4K]; ROWS],
    hi: [&'a [BlockQ4K]; ROWS],
    rows: usize,
    act: &'a [u8],
    stride: usize,
    out: &'a mut [f32],
    out_stride: usize,
}

impl Tile for SixteenRowTiles<'_> {
    fn run<const N: usize>(&mut self, first: usize) {
        let blocks = self.lo[0].len();
        let y = std::array::from_fn(|c| row_ptr(self.act, self.stride, first + c, blocks * ACT_K8));
        // SAFETY: this set is only selected once AVX2, FMA, F16C and AVX-512 F, BW, VL and
        // VNNI are detected; every weight row holds `blocks` blocks and `row_ptr` checked the
        // tokens.
        let acc = unsafe { q4_k_sixteen_rows::<N>(self.lo, self.hi, blocks, y) };
        for (c, a) in acc.into_iter().enumerate() {
            // SAFETY: __m512 and [f32; 16] have the same size, and every bit pattern is valid.
            let lanes: [f32; ROWS16] = unsafe { std::mem::transmute::<__m512, [f32; ROWS16]>(a) };
            let at = (first + c) * self.out_stride;
            if self.rows == ROWS16 {
                self.out[at..at + ROWS16].copy_from_slice(&lanes);
            } else {
                self.out[at..at + self.rows].copy_from_slice(&lanes[..self.rows]);
            }
        }
    }
}

/// The [`Gemm::kernel`] of the sixteen-row Q4_K path.
fn gemm_q4_k(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(
        (1..=ROWS16).contains(&rows),
        "1 to {ROWS16} weight rows per call"
    );
    assert!(
        weights.len().is_multiple_of(rows),
        "weight rows of one length"
    );
    let rb = weights.len() / rows;
    let row = |r: usize| {
        // Rows past `rows` repeat the first; their lanes are never stored.
        let r = if r < rows { r } else { 0 };
        blocks_from_bytes::<BlockQ4K>(&weights[r * rb..(r + 1) * rb]).expect("weight row layout")
    };
    tiles::<WIDE>(
        n,
        &mut SixteenRowTiles {
            lo: std::array::from_fn(row),
            hi: std::array::from_fn(|r| row(ROWS + r)),
            rows,
            act,
            stride,
            out,
            out_stride,
        },
    );
}

/// The `avx512` set's prompt path for Q4_K weights.
pub static Q4_K: Gemm = Gemm {
    act_bytes: act_bytes_k8,
    quantize_act: quantize_act_k8,
    rows: ROWS16,
    kernel: gemm_q4_k,
};

//! The `avx512` set's own prompt paths: sixteen weight rows per call in 512-bit registers, for
//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K and Q6_K.
//!
//! The eight-row kernels of [`super::avx2_gemm`] with `vpdpbusd` are bound by their chains of
//! dependent instructions (five cycles per `vpdpbusd`, ten per `vpmulld`) and their transposes,
//! not by the multiply ports (measured on a Xeon of the Emerald Rapids generation: 512-bit
//! `vpdpbusd` issues about 1.7 times a cycle, the 256-bit one twice). Here two groups of eight rows
//! sit side by side in one 512-bit register (rows 0-7 in the low half, 8-15 in the high half,
//! each half laid out as the eight-row kernels lay out theirs), so each instruction does twice
//! the work, and [`transpose16`] transposes both halves with the same 24 instructions.
//!
//! - **32-element types** ([`sixteen_rows`]): per block and token, eight `vpdpbusd` in two
//!   chains against the token's broadcast 4-byte groups, the offset or min term, one
//!   conversion and one multiply-add. AVX-512 has no `vpsignb`, so the signed weights (Q8_0,
//!   IQ4_NL) are biased to `w + 128` and `128·Σa` comes off, as Q4_0's `8·Σa` does.
//!   Activations: the eight-row layout.
//! - **Q4_K** ([`q4_k_sixteen_rows`]): per block, the sixteen rows' scales, mins and `d`,
//!   `dmin` by four gathers and a few lane-parallel instructions (no per-row unpacking), and
//!   the weights transposed once for all tokens; per 32-element sub-block and token, two chains
//!   of four `vpdpbusd` (the sub-block's halves, each sum within an i16), each half scaled by
//!   the rows' six-bit scales into the token's sums by one `vpdpwssd`; per block and token,
//!   four `vpdpwssd` for the mins against the token's sub-block sums. Tokens go four at a
//!   time, their sums in registers. Activations: the eight-row Q4_K layout.
//! - **Q6_K** ([`q6_k_sixteen_rows`]): per block, the rows' scales and `d` by gathers, and
//!   their `ql`, `qh` bytes transposed before they are unpacked; per 32-element chunk and
//!   token, two chains of four `vpdpbusd` (one per 16-element sub-block), each converted and
//!   multiplied by its f32 `d·scale` (a sub-block's sum can exceed an i16, so `vpdpwssd` cannot
//!   scale it, and this is cheaper than `vpmulld`); per block and token, eight `vpdpwssd` of
//!   the scales with the token's 16-element sums for the stored `q + 32`. Activations: a layout
//!   of its own (Q8_K quants in order, the 16-element sums, the scale). A single token keeps
//!   the AVX2 one-row Q6_K path.
//!
//! Every integer sum is the exact integer of the matrix-vector kernels; only the f32 additions
//! run in another order (for Q6_K, per 16-element sub-block rather than per block).

use std::arch::x86_64::*;

use hearth_quant::{BlockQ4K, BlockQ6K, QuantBlock, QK_K};

use super::avx2_gemm::{
    act_bytes_32, act_bytes_k8, load, quantize_act_k8, quantize_act_q8_0, quantize_act_q8_1,
    quantize_k_with, row_ptr, scale_and_extra, store_lanes, tiles, weight_rows, widen8,
    EightRowBlocks, Term, Tile, Widen, ACT32, ACT_K8, K8_D_AT, K8_SUMS_AT, ROWS, WIDE,
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

/// The eight-row kernels' `transpose` of both 256-bit halves at once: `r[v]` becomes the 4-byte groups `v` of rows
/// 0-7 (from the low halves) and of rows 8-15 (from the high halves).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn transpose16(r: [__m512i; 8]) -> [__m512i; 8] {
    let t = [
        _mm512_unpacklo_epi32(r[0], r[1]),
        _mm512_unpackhi_epi32(r[0], r[1]),
        _mm512_unpacklo_epi32(r[2], r[3]),
        _mm512_unpackhi_epi32(r[2], r[3]),
        _mm512_unpacklo_epi32(r[4], r[5]),
        _mm512_unpackhi_epi32(r[4], r[5]),
        _mm512_unpacklo_epi32(r[6], r[7]),
        _mm512_unpackhi_epi32(r[6], r[7]),
    ];
    let u = [
        _mm512_unpacklo_epi64(t[0], t[2]),
        _mm512_unpackhi_epi64(t[0], t[2]),
        _mm512_unpacklo_epi64(t[1], t[3]),
        _mm512_unpackhi_epi64(t[1], t[3]),
        _mm512_unpacklo_epi64(t[4], t[6]),
        _mm512_unpackhi_epi64(t[4], t[6]),
        _mm512_unpacklo_epi64(t[5], t[7]),
        _mm512_unpackhi_epi64(t[5], t[7]),
    ];
    // Per 256-bit half, as `vperm2i128` 0x20 and 0x31 do for one: the first (or second)
    // 128-bit lanes of u[a] and u[a + 4].
    let first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    std::array::from_fn(|v| {
        let idx = if v < 4 { first } else { second };
        _mm512_permutex2var_epi64(u[v % 4], idx, u[v % 4 + 4])
    })
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

/// The dot products of a 32-element chunk's two halves (groups 0-3 and 4-7 of the transposed
/// weights `w`) with the token's chunk at `y`, each half's sum in its own register (two
/// independent chains of four `vpdpbusd`).
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI are available; 32 readable bytes at `y`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn half_sums(w: &[__m512i; 8], y: *const u8) -> [__m512i; 2] {
    let mut part = [_mm512_setzero_si512(); 2];
    for (v, &w) in w.iter().enumerate() {
        // SAFETY: by the caller's contract.
        let a = unsafe { group16(y, v) };
        part[v / 4] = _mm512_dpbusd_epi32(part[v / 4], w, a);
    }
    part
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
    let low = _mm512_set1_epi8(0x0f);
    let (base, offsets) = row_offsets(lo, hi);
    let (lo, hi) = (
        EightRowBlocks::new(lo, blocks),
        EightRowBlocks::new(hi, blocks),
    );
    let sixes = _mm512_set1_epi8(0x3f);
    let high2 = _mm512_set1_epi8(0x30);
    // Byte choices within each lane: scale j of a lane's four packed scales, and the i16 pair
    // of mins (2p, 2p + 1) of its four packed mins.
    let scale_of: [__m512i; 4] = std::array::from_fn(|j| lane_bytes([j as i8, -1, -1, -1]));
    let pair_of: [__m512i; 2] =
        std::array::from_fn(|p| lane_bytes([2 * p as i8, -1, 2 * p as i8 + 1, -1]));
    for i in 0..blocks {
        let (bl, bh) = (lo.at(i), hi.at(i));
        // SAFETY: every row holds `blocks` > i blocks (checked by `EightRowBlocks::new`); each
        // gather reads the 4 bytes at `at` < 16 of block i of every row.
        let field = |at: usize| unsafe {
            _mm512_i32gather_epi32::<1>(offsets, base.add(i * size_of::<BlockQ4K>() + at).cast())
        };
        let (dd, u0, u1, u2) = (field(0), field(4), field(8), field(12));
        // Every row's six-bit scales and mins, four to a lane, as `k4_scales_mins` unpacks one
        // row's: lanes of `sc` hold scales 0-3 and 4-7, of `mn` mins 0-3 and 4-7.
        let sc = [
            _mm512_and_si512(u0, sixes),
            _mm512_or_si512(
                _mm512_and_si512(u2, low),
                _mm512_and_si512(_mm512_srli_epi32::<2>(u0), high2),
            ),
        ];
        let mn = [
            _mm512_and_si512(u1, sixes),
            _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32::<4>(u2), low),
                _mm512_and_si512(_mm512_srli_epi32::<2>(u1), high2),
            ),
        ];
        // Every row's scale of sub-block j in the low i16 of its lane (the high one zero), and
        // its mins 2p, 2p + 1 as an i16 pair.
        let s: [__m512i; 8] =
            std::array::from_fn(|j| _mm512_shuffle_epi8(sc[j / 4], scale_of[j % 4]));
        let mins: [__m512i; 4] =
            std::array::from_fn(|p| _mm512_shuffle_epi8(mn[p / 2], pair_of[p % 2]));
        let dx = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        let mx = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(dd)));
        // Sub-block j's weights, transposed: chunk k's low nibbles are sub-block 2k, its high
        // nibbles sub-block 2k + 1.
        // Written in place (built by value, the 4 KiB array was copied by a call to `memcpy`).
        let mut w = std::mem::MaybeUninit::<[[[__m512i; 8]; 2]; 4]>::uninit();
        for k in 0..4 {
            // Register r: the 32 bytes at 32·k of row r (low half) and of row r + 8.
            let q: [__m512i; ROWS] = std::array::from_fn(|r| {
                // SAFETY: 32 bytes of qs at 32 · k (qs is 128 long).
                unsafe {
                    join(
                        load(bl[r].qs.as_ptr().add(32 * k)),
                        load(bh[r].qs.as_ptr().add(32 * k)),
                    )
                }
            });
            let pair = [
                transpose16(q.map(|q| _mm512_and_si512(q, low))),
                transpose16(q.map(|q| _mm512_and_si512(_mm512_srli_epi16::<4>(q), low))),
            ];
            // SAFETY: k < 4, within the array.
            unsafe {
                w.as_mut_ptr()
                    .cast::<[[__m512i; 8]; 2]>()
                    .add(k)
                    .write(pair)
            };
        }
        // SAFETY: all four pairs were written above.
        let w = unsafe { w.assume_init_ref() };
        // Tokens four at a time, their integer sums in registers, then any left one by one.
        let mut c = 0;
        while c + 4 <= N {
            // SAFETY: block i of tokens c .. c + 4 (the caller's contract).
            let yi: [*const u8; 4] = std::array::from_fn(|t| unsafe { y[c + t].add(i * ACT_K8) });
            // SAFETY: as above.
            let isum = unsafe { q4_k_tokens::<4>(w, &s, yi) };
            for t in 0..4 {
                // SAFETY: as above.
                acc[c + t] = unsafe { q4_k_finish(acc[c + t], isum[t], &mins, (dx, mx), yi[t]) };
            }
            c += 4;
        }
        while c < N {
            // SAFETY: block i of token c (the caller's contract).
            let yi = unsafe { y[c].add(i * ACT_K8) };
            // SAFETY: as above.
            let isum = unsafe { q4_k_tokens::<1>(w, &s, [yi]) };
            // SAFETY: as above.
            acc[c] = unsafe { q4_k_finish(acc[c], isum[0], &mins, (dx, mx), yi) };
            c += 1;
        }
    }
    acc
}

/// The sixteen rows' starts as row 0's and a byte offset from it per lane, for gathers of a
/// field of every row's block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn row_offsets<B>(lo: [&[B]; ROWS], hi: [&[B]; ROWS]) -> (*const u8, __m512i) {
    let base = lo[0].as_ptr().cast::<u8>();
    let offsets: [i32; ROWS16] = std::array::from_fn(|r| {
        let row = if r < ROWS { lo[r] } else { hi[r - ROWS] };
        i32::try_from(row.as_ptr() as isize - base as isize).expect("weight rows within 2 GiB")
    });
    // SAFETY: 64 bytes.
    (base, unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) })
}

/// A byte shuffle that picks, in every i32 lane, the lane's bytes `pick` (−1: zero).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_bytes(pick: [i8; 4]) -> __m512i {
    let b: [i8; 64] = std::array::from_fn(|i| match pick[i % 4] {
        p if p < 0 => i8::MIN,
        p => p + (i % 16 / 4 * 4) as i8,
    });
    // SAFETY: 64 bytes.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// `vpdpwssd`, kept as one instruction (LLVM would split it into `vpmaddwd` and `vpaddd`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dpwssd(mut acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: AVX-512 VNNI by the target features; registers only.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// The integer sums of one Q4_K block of the sixteen rows against `G` tokens: per sub-block
/// `j` and token, the two half sums of the transposed weights `w[j / 2][j % 2]` ([`half_sums`]), each
/// times the rows' scales `s[j]` by one `vpdpwssd`.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI are available; every `y[t]` points at a block of the eight-row
/// Q4_K layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_tokens<const G: usize>(
    w: &[[[__m512i; 8]; 2]; 4],
    s: &[__m512i; 8],
    y: [*const u8; G],
) -> [__m512i; G] {
    let mut isum = [_mm512_setzero_si512(); G];
    for (j, (w, &s)) in w.as_flattened().iter().zip(s).enumerate() {
        for (isum, y) in isum.iter_mut().zip(y) {
            // SAFETY: sub-block j of the token's block (the caller's contract).
            let part = unsafe { half_sums(w, y.add(32 * j)) };
            // Each half sum fits an i16 (16 · 15 · 128), so as an i16 pair its high half is
            // its sign, which the scale pair (s, 0) leaves out.
            *isum = dpwssd(dpwssd(*isum, part[0], s), part[1], s);
        }
    }
    isum
}

/// A token's block: `acc + d·dy·isum − dmin·dy·Σ min·sum`, from the block's integer sums
/// `isum`, the rows' min pairs `mins`, scales `dx` and min scales `mx`.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI are available; `y` points at a block of the eight-row Q4_K
/// layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_finish(
    acc: __m512,
    isum: __m512i,
    mins: &[__m512i; 4],
    (dx, mx): (__m512, __m512),
    y: *const u8,
) -> __m512 {
    let mut m = _mm512_setzero_si512();
    for (p, &pair) in mins.iter().enumerate() {
        // SAFETY: the sums lie within the block (the caller's contract).
        m = dpwssd(m, pair, unsafe { group16(y.add(K8_SUMS_AT), p) });
    }
    // SAFETY: as above.
    let dy = _mm512_set1_ps(unsafe { std::ptr::read_unaligned(y.add(K8_D_AT).cast()) });
    let a = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(isum), acc);
    _mm512_fnmadd_ps(_mm512_mul_ps(mx, dy), _mm512_cvtepi32_ps(m), a)
}

/// A weight type of the sixteen-row kernels.
trait SixteenRows: QuantBlock {
    /// Bytes of one activation block of the type's layout.
    const ACT: usize;
    /// Sixteen weight rows (`lo` rows 0-7, `hi` rows 8-15, each `blocks` blocks) against `N`
    /// tokens, each row's dot product in its own lane.
    ///
    /// # Safety
    /// AVX2, FMA, F16C and AVX-512 F, BW, VL and VNNI are available; every row holds `blocks`
    /// blocks and every `y[c]` that many activation blocks.
    unsafe fn dots<const N: usize>(
        lo: [&[Self]; ROWS],
        hi: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m512; N];
}

impl SixteenRows for BlockQ4K {
    const ACT: usize = ACT_K8;
    unsafe fn dots<const N: usize>(
        lo: [&[Self]; ROWS],
        hi: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m512; N] {
        // SAFETY: by the caller's contract.
        unsafe { q4_k_sixteen_rows::<N>(lo, hi, blocks, y) }
    }
}

impl<B: Widen> SixteenRows for B {
    const ACT: usize = ACT32;
    unsafe fn dots<const N: usize>(
        lo: [&[Self]; ROWS],
        hi: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m512; N] {
        // SAFETY: by the caller's contract.
        unsafe { sixteen_rows::<B, N>(lo, hi, blocks, y) }
    }
}

/// Sixteen rows of a 32-element type against `N` tokens, as the eight-row kernel's VNNI form
/// does eight: per block, the rows' quants transposed by 4-byte groups (signed ones biased by
/// 128); per block and token, eight `vpdpbusd` in two chains, the offset (or bias) or min term,
/// one conversion and one multiply-add.
///
/// # Safety
/// AVX2, FMA, F16C and AVX-512 F, BW, VL and VNNI are available; every row holds `blocks`
/// blocks and every `y[c]` that many activation blocks of the 32-element layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sixteen_rows<B: Widen, const N: usize>(
    lo: [&[B]; ROWS],
    hi: [&[B]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m512; N] {
    // The signed types are exactly those without an offset or min of their own.
    const { assert!(B::SIGNED == matches!(B::TERM, Term::None)) };
    let mut acc = [_mm512_setzero_ps(); N];
    let (lo, hi) = (
        EightRowBlocks::new(lo, blocks),
        EightRowBlocks::new(hi, blocks),
    );
    for i in 0..blocks {
        let (bl, bh) = (lo.at(i), hi.at(i));
        // SAFETY: the CPU features by the caller's contract.
        let w = transpose16(std::array::from_fn(|r| unsafe {
            join(bl[r].quants(), bh[r].quants())
        }));
        // Signed weights biased to unsigned bytes (`w + 128`); the bias comes off with the
        // token's quant sum, as Q4_0's and Q5_0's do (AVX-512 has no `vpsignb`).
        let w = if B::SIGNED {
            w.map(|w| _mm512_xor_si512(w, _mm512_set1_epi8(i8::MIN)))
        } else {
            w
        };
        let dx = join_ps(
            widen8(bl.map(|b| b.scales().0)),
            widen8(bh.map(|b| b.scales().0)),
        );
        let mx = join_ps(
            widen8(bl.map(|b| b.scales().1)),
            widen8(bh.map(|b| b.scales().1)),
        );
        for c in 0..N {
            // SAFETY: block i of token c (the caller's contract).
            let y = unsafe { y[c].add(i * ACT32) };
            // SAFETY: as above.
            let part = unsafe { half_sums(&w, y) };
            let sumi = _mm512_add_epi32(part[0], part[1]);
            // SAFETY: as above.
            let (dy, extra) = unsafe { scale_and_extra(y) };
            let d = _mm512_mul_ps(dx, _mm512_set1_ps(dy));
            acc[c] = match B::TERM {
                Term::None | Term::Offset(_) => {
                    let k = if let Term::Offset(k) = B::TERM {
                        k
                    } else {
                        128
                    };
                    let sumi =
                        _mm512_sub_epi32(sumi, _mm512_set1_epi32(k * i32::from_le_bytes(extra)));
                    _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[c])
                }
                Term::Min => {
                    let a = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[c]);
                    _mm512_fmadd_ps(mx, _mm512_set1_ps(f32::from_le_bytes(extra)), a)
                }
            };
        }
    }
    acc
}

// ---- Q6_K ----

/// Bytes of one activation block of the sixteen-row Q6_K layout: the 256 Q8_K quants in
/// element order, the sixteen 16-element sums (i16), the f32 scale, padding.
const ACT_K16: usize = 320;
const K16_SUMS_AT: usize = 256;
const K16_D_AT: usize = 288;

fn act_bytes_k16(cols: usize) -> usize {
    cols / QK_K * ACT_K16
}

/// The sixteen-row Q6_K layout: the quants, the 16-element sums, the scale.
fn quantize_act_k16(src: &[f32], dst: &mut [u8]) {
    quantize_k_with(src, dst, ACT_K16, |q, out| {
        for (o, &v) in out[..QK_K].iter_mut().zip(&q.qs) {
            *o = v as u8;
        }
        for (o, s) in out[K16_SUMS_AT..K16_D_AT].chunks_exact_mut(2).zip(q.bsums) {
            o.copy_from_slice(&s.to_le_bytes());
        }
        out[K16_D_AT..K16_D_AT + 4].copy_from_slice(&q.d.to_le_bytes());
        out[K16_D_AT + 4..].fill(0);
    });
}

impl SixteenRows for BlockQ6K {
    const ACT: usize = ACT_K16;
    unsafe fn dots<const N: usize>(
        lo: [&[Self]; ROWS],
        hi: [&[Self]; ROWS],
        blocks: usize,
        y: [*const u8; N],
    ) -> [__m512; N] {
        // SAFETY: by the caller's contract.
        unsafe { q6_k_sixteen_rows::<N>(lo, hi, blocks, y) }
    }
}

/// Sixteen Q6_K rows against `N` tokens.
///
/// Per block: the rows' scales and `d` by five gathers, as f32 `d·scale` per 16-element
/// sub-block and as i16 pairs; the rows' `ql` and `qh` bytes transposed by 4-byte groups (three
/// transposes per half block instead of one per 32-element chunk, since the unpacking is
/// bytewise), then unpacked to `q + 32` bytes. Per chunk and token: two chains of four
/// `vpdpbusd` (one per sub-block), each sum converted and multiplied by its `d·scale` into
/// the token's f32 sum. Per block and token: eight `vpdpwssd` of the scale pairs with the
/// token's 16-element sums for the `32·Σ scale·sum` that the stored `q + 32` adds.
///
/// # Safety
/// AVX2, FMA, F16C and AVX-512 F, BW, VL and VNNI are available; every row holds `blocks`
/// blocks and every `y[c]` that many activation blocks of the sixteen-row Q6_K layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_sixteen_rows<const N: usize>(
    lo: [&[BlockQ6K]; ROWS],
    hi: [&[BlockQ6K]; ROWS],
    blocks: usize,
    y: [*const u8; N],
) -> [__m512; N] {
    let mut acc = [_mm512_setzero_ps(); N];
    let (base, offsets) = row_offsets(lo, hi);
    let (lo, hi) = (
        EightRowBlocks::new(lo, blocks),
        EightRowBlocks::new(hi, blocks),
    );
    let low = _mm512_set1_epi8(0x0f);
    let six = _mm512_set1_epi8(0x3f);
    // Byte choices within each lane of four packed scales: scale b in the top byte (for an
    // arithmetic shift to i32), and scales (2p, 2p + 1) in the top bytes of an i16 pair.
    let scale_of: [__m512i; 4] = std::array::from_fn(|b| lane_bytes([-1, -1, -1, b as i8]));
    let pair_of: [__m512i; 2] =
        std::array::from_fn(|p| lane_bytes([-1, 2 * p as i8, -1, 2 * p as i8 + 1]));
    for i in 0..blocks {
        let (bl, bh) = (lo.at(i), hi.at(i));
        // SAFETY: every row holds `blocks` > i blocks (checked by `EightRowBlocks::new`); each
        // gather reads the 4 bytes at `at` ≤ 206 of block i (210 bytes) of every row.
        let field = |at: usize| unsafe {
            _mm512_i32gather_epi32::<1>(offsets, base.add(i * size_of::<BlockQ6K>() + at).cast())
        };
        // Lane q of `sc`: every row's scales 4q .. 4q + 4; `d` in the top half of the 4 bytes
        // at 206 (the last two scales, then d).
        let sc: [__m512i; 4] = std::array::from_fn(|q| field(192 + 4 * q));
        let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(field(206))));
        let dsc: [__m512; 16] = std::array::from_fn(|j| {
            let s = _mm512_srai_epi32::<24>(_mm512_shuffle_epi8(sc[j / 4], scale_of[j % 4]));
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(s))
        });
        let pairs: [__m512i; 8] = std::array::from_fn(|p| {
            _mm512_srai_epi16::<8>(_mm512_shuffle_epi8(sc[p / 2], pair_of[p % 2]))
        });
        // Chunk c = 4·half + j: the low (j < 2) or high nibbles of ql[64·half + 32·(j % 2)..]
        // and bits 2j, 2j + 1 of qh[32·half..], as `q + 32` bytes, transposed.
        let w: [[[__m512i; 8]; 4]; 2] = std::array::from_fn(|half| {
            let rows = |at: fn(&BlockQ6K) -> *const u8| {
                transpose16(std::array::from_fn(|r| {
                    // SAFETY: 32 bytes at `at` (within ql or qh, see the calls).
                    unsafe { join(load(at(bl[r])), load(at(bh[r]))) }
                }))
            };
            let (ql0, ql1, qh) = if half == 0 {
                (
                    rows(|b| b.ql.as_ptr()),
                    rows(|b| b.ql[32..].as_ptr()),
                    rows(|b| b.qh.as_ptr()),
                )
            } else {
                (
                    rows(|b| b.ql[64..].as_ptr()),
                    rows(|b| b.ql[96..].as_ptr()),
                    rows(|b| b.qh[32..].as_ptr()),
                )
            };
            std::array::from_fn(|j| {
                std::array::from_fn(|v| {
                    let l = match j {
                        0 => ql0[v],
                        1 => ql1[v],
                        2 => _mm512_srli_epi16::<4>(ql0[v]),
                        _ => _mm512_srli_epi16::<4>(ql1[v]),
                    };
                    // The two bits of chunk j at bits 4 and 5.
                    let h = match j {
                        0 => _mm512_slli_epi16::<4>(qh[v]),
                        1 => _mm512_slli_epi16::<2>(qh[v]),
                        2 => qh[v],
                        _ => _mm512_srli_epi16::<2>(qh[v]),
                    };
                    // (l & 0x0f) | (h & 0xf0), then the top two bits cleared.
                    _mm512_and_si512(_mm512_ternarylogic_epi32::<0xd8>(h, l, low), six)
                })
            })
        });
        let d32 = _mm512_mul_ps(d, _mm512_set1_ps(32.0));
        // Tokens four at a time, their sums in registers, then any left one by one.
        let mut c = 0;
        while c + 4 <= N {
            // SAFETY: block i of tokens c .. c + 4 (the caller's contract).
            let yi: [*const u8; 4] = std::array::from_fn(|t| unsafe { y[c + t].add(i * ACT_K16) });
            // SAFETY: as above.
            let f = unsafe { q6_k_tokens::<4>(&w, &dsc, yi) };
            for t in 0..4 {
                // SAFETY: as above.
                acc[c + t] = unsafe { q6_k_finish(acc[c + t], f[t], &pairs, d32, yi[t]) };
            }
            c += 4;
        }
        while c < N {
            // SAFETY: block i of token c (the caller's contract).
            let yi = unsafe { y[c].add(i * ACT_K16) };
            // SAFETY: as above.
            let f = unsafe { q6_k_tokens::<1>(&w, &dsc, [yi]) };
            // SAFETY: as above.
            acc[c] = unsafe { q6_k_finish(acc[c], f[0], &pairs, d32, yi) };
            c += 1;
        }
    }
    acc
}

/// `Σ_j d·scale_j · Σ a·(q + 32)` over one Q6_K block of the sixteen rows for `G` tokens:
/// per 32-element chunk `c` and token, the two sub-block sums of the transposed weights
/// `w[c / 4][c % 4]`
/// ([`half_sums`]), converted and multiplied by the rows' `dsc[2c]`, `dsc[2c + 1]`.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI are available; every `y[t]` points at a block of the sixteen-row
/// Q6_K layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_tokens<const G: usize>(
    w: &[[[__m512i; 8]; 4]; 2],
    dsc: &[__m512; 16],
    y: [*const u8; G],
) -> [__m512; G] {
    let mut f = [_mm512_setzero_ps(); G];
    for (c, w) in w.as_flattened().iter().enumerate() {
        for (f, y) in f.iter_mut().zip(y) {
            // SAFETY: chunk c of the token's block (the caller's contract).
            let part = unsafe { half_sums(w, y.add(32 * c)) };
            *f = _mm512_fmadd_ps(dsc[2 * c], _mm512_cvtepi32_ps(part[0]), *f);
            *f = _mm512_fmadd_ps(dsc[2 * c + 1], _mm512_cvtepi32_ps(part[1]), *f);
        }
    }
    f
}

/// A token's block: `acc + dy·(f − 32·d·Σ scale·sum)`, from the block's scaled sums `f`, the
/// rows' scale pairs and `32·d`.
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI are available; `y` points at a block of the sixteen-row Q6_K
/// layout.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_finish(
    acc: __m512,
    f: __m512,
    pairs: &[__m512i; 8],
    d32: __m512,
    y: *const u8,
) -> __m512 {
    let mut m = _mm512_setzero_si512();
    for (p, &pair) in pairs.iter().enumerate() {
        // SAFETY: the sums lie within the block (the caller's contract).
        m = dpwssd(m, pair, unsafe { group16(y.add(K16_SUMS_AT), p) });
    }
    // SAFETY: as above.
    let dy = _mm512_set1_ps(unsafe { std::ptr::read_unaligned(y.add(K16_D_AT).cast()) });
    _mm512_fmadd_ps(dy, _mm512_fnmadd_ps(d32, _mm512_cvtepi32_ps(m), f), acc)
}

/// The `avx512` set's prompt path for Q6_K weights.
pub static Q6_K: Gemm = Gemm {
    act_bytes: act_bytes_k16,
    quantize_act: quantize_act_k16,
    rows: ROWS16,
    kernel: gemm_sixteen_rows::<BlockQ6K>,
};

/// Up to sixteen weight rows against the tokens of a call.
struct SixteenRowTiles<'a, B> {
    lo: [&'a [B]; ROWS],
    hi: [&'a [B]; ROWS],
    rows: usize,
    act: &'a [u8],
    stride: usize,
    out: &'a mut [f32],
    out_stride: usize,
}

impl<B: SixteenRows> Tile for SixteenRowTiles<'_, B> {
    fn run<const N: usize>(&mut self, first: usize) {
        let blocks = self.lo[0].len();
        let y = std::array::from_fn(|c| row_ptr(self.act, self.stride, first + c, blocks * B::ACT));
        // SAFETY: this set is only selected once AVX2, FMA, F16C and AVX-512 F, BW, VL and
        // VNNI are detected; every weight row holds `blocks` blocks and `row_ptr` checked the
        // tokens.
        let acc = unsafe { B::dots::<N>(self.lo, self.hi, blocks, y) };
        for (c, a) in acc.into_iter().enumerate() {
            // SAFETY: __m512 and [f32; 16] have the same size, and every bit pattern is valid.
            let lanes: [f32; ROWS16] = unsafe { std::mem::transmute::<__m512, [f32; ROWS16]>(a) };
            store_lanes(self.out, (first + c) * self.out_stride, self.rows, &lanes);
        }
    }
}

/// The [`Gemm::kernel`] of a sixteen-row type.
fn gemm_sixteen_rows<B: SixteenRows>(
    weights: &[u8],
    rows: usize,
    act: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let x: [&[B]; ROWS16] = weight_rows(weights, rows);
    tiles::<WIDE>(
        n,
        &mut SixteenRowTiles {
            lo: std::array::from_fn(|r| x[r]),
            hi: std::array::from_fn(|r| x[ROWS + r]),
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
    kernel: gemm_sixteen_rows::<BlockQ4K>,
};

/// The `avx512` set's sixteen-row prompt path of the 32-element type `B`.
pub(super) const fn path<B: Widen>() -> Gemm {
    Gemm {
        act_bytes: act_bytes_32,
        quantize_act: match B::TERM {
            Term::Min => quantize_act_q8_1,
            Term::None | Term::Offset(_) => quantize_act_q8_0,
        },
        rows: ROWS16,
        kernel: gemm_sixteen_rows::<B>,
    }
}

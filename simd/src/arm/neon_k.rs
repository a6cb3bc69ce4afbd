//! The NEON kernels of the super-block types (Q2_K..Q6_K, IQ4_XS) against Q8_K activations.
//!
//! Each 256-element block is unpacked sixteen or thirty-two elements at a time into signed
//! bytes, dotted with the activations ([`Dot`]) and scaled by its sub-block's integer scale in
//! i32 lanes; the min terms (Q2_K, Q4_K, Q5_K) use the activations' `bsums`. One f32
//! multiply-add per block and row then applies `dy · d`. Safety: see [`super::neon`].

use std::arch::aarch64::*;

use hearth_quant::{
    BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QuantBlock,
};

use super::neon::{
    f16_to_f32, high_nibbles, iq4_values, kernel, load_i8, load_u8, low_nibbles, row_ptrs, Dot,
    Kernel,
};

kernel!(Q2K, BlockQ2K, q2_k_q8_k);
kernel!(Q3K, BlockQ3K, q3_k_q8_k);
kernel!(Q4K, BlockQ4K, q4_k_q8_k);
kernel!(Q5K, BlockQ5K, q5_k_q8_k);
kernel!(Q6K, BlockQ6K, q6_k_q8_k);
kernel!(Iq4Xs, BlockIq4Xs, iq4_xs_q8_k);

/// 16 activation bytes at element `e` of a Q8_K block.
///
/// # Safety
/// `e + 16 <= 256`.
#[inline(always)]
unsafe fn act16(y: &BlockQ8K, e: usize) -> int8x16_t {
    debug_assert!(e + 16 <= 256);
    // SAFETY: by the caller's contract, inside qs.
    unsafe { load_i8(y.qs.as_ptr().add(e)) }
}

/// `sumi + scale · (q · a)` for one sub-block of 16 at element `e`.
///
/// # Safety
/// `D`'s instructions are available; `e + 16 <= 256`.
#[inline(always)]
unsafe fn scaled16<D: Dot>(
    sumi: int32x4_t,
    q: int8x16_t,
    y: &BlockQ8K,
    e: usize,
    scale: i32,
) -> int32x4_t {
    // SAFETY: by the caller's contract.
    let p = unsafe { D::dot(vdupq_n_s32(0), q, act16(y, e)) };
    vmlaq_n_s32(sumi, p, scale)
}

/// `sumi + scale · (q0 · a[e..e+16] + q1 · a[e+16..e+32])` for one sub-block of 32.
///
/// # Safety
/// `D`'s instructions are available; `e + 32 <= 256`.
#[inline(always)]
unsafe fn scaled32<D: Dot>(
    sumi: int32x4_t,
    q: [int8x16_t; 2],
    y: &BlockQ8K,
    e: usize,
    scale: i32,
) -> int32x4_t {
    // SAFETY: by the caller's contract.
    let p = unsafe {
        D::dot(
            D::dot(vdupq_n_s32(0), q[0], act16(y, e)),
            q[1],
            act16(y, e + 16),
        )
    };
    vmlaq_n_s32(sumi, p, scale)
}

/// `Σ bsums[k] · mins[k]` over sixteen i16 pairs, exact in i32.
#[inline]
#[target_feature(enable = "neon")]
fn mins_dot(bsums: int16x8_t, bsums_hi: int16x8_t, mins: int16x8_t, mins_hi: int16x8_t) -> i32 {
    let p = vmull_s16(vget_low_s16(bsums), vget_low_s16(mins));
    let p = vmlal_high_s16(p, bsums, mins);
    let p = vmlal_s16(p, vget_low_s16(bsums_hi), vget_low_s16(mins_hi));
    vaddvq_s32(vmlal_high_s16(p, bsums_hi, mins_hi))
}

/// The sixteen `bsums` of a Q8_K block.
#[inline]
#[target_feature(enable = "neon")]
fn bsums(y: &BlockQ8K) -> (int16x8_t, int16x8_t) {
    // SAFETY: bsums is sixteen i16, aligned (BlockQ8K has alignment 4 and bsums an even offset).
    unsafe {
        (
            vld1q_s16(y.bsums.as_ptr()),
            vld1q_s16(y.bsums.as_ptr().add(8)),
        )
    }
}

/// Each row's f32 lanes summed, plus its separately kept min terms.
#[inline]
#[target_feature(enable = "neon")]
fn finish<const N: usize>(acc: [float32x4_t; N], summs: [f32; N]) -> [f32; N] {
    std::array::from_fn(|c| vaddvq_f32(acc[c]) + summs[c])
}

/// Q2_K as ggml's NEON `ggml_vec_dot_q2_K_q8_K`: the 2-bit quants of each sub-block of 16
/// times its 4-bit scale, `dy·d`; the 4-bit mins times the `bsums`, `-dy·dmin`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q2_k_q8_k<D: Dot, const N: usize>(x: &[BlockQ2K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let mut summs = [0f32; N];
    let m3 = vdupq_n_u8(3);
    for (i, xb) in x.iter().enumerate() {
        // SAFETY: scales is 16 bytes.
        let sm = unsafe { load_u8(xb.scales.as_ptr()) };
        let m = vshrq_n_u8::<4>(sm);
        let mins = (
            vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m))),
            vreinterpretq_s16_u16(vmovl_high_u8(m)),
        );
        let sc = xb.scales.map(|s| i32::from(s & 0x0f));
        let (dx, dmin_x) = (f16_to_f32(xb.d), f16_to_f32(xb.dmin));
        let mut sumi = [vdupq_n_s32(0); N];
        for n in 0..2 {
            // SAFETY: 32 bytes of qs at 32 * n (qs is 64 long).
            let (b0, b1) = unsafe {
                (
                    load_u8(xb.qs.as_ptr().add(32 * n)),
                    load_u8(xb.qs.as_ptr().add(32 * n + 16)),
                )
            };
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                let q0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(b0, shift), m3));
                let q1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(b1, shift), m3));
                let (e, sub) = (128 * n + 32 * j, 8 * n + 2 * j);
                for c in 0..N {
                    // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); e + 32 <= 256; `D`
                    // by the caller's contract.
                    unsafe {
                        let yb = &*y[c].add(i);
                        sumi[c] = scaled16::<D>(sumi[c], q0, yb, e, sc[sub]);
                        sumi[c] = scaled16::<D>(sumi[c], q1, yb, e + 16, sc[sub + 1]);
                    }
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            let (b_lo, b_hi) = bsums(yb);
            let m = mins_dot(b_lo, b_hi, mins.0, mins.1);
            summs[c] = (-yb.d * dmin_x).mul_add(m as f32, summs[c]);
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), yb.d * dx);
        }
    }
    finish(acc, summs)
}

/// Q3_K as ggml's NEON `ggml_vec_dot_q3_K_q8_K`: two low bits minus 4 where the element's
/// `hmask` bit is clear, times the signed 6-bit scale of its sub-block of 16, `dy·d`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q3_k_q8_k<D: Dot, const N: usize>(x: &[BlockQ3K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let m3 = vdupq_n_u8(3);
    let four = vdupq_n_u8(4);
    for (i, xb) in x.iter().enumerate() {
        let sc = hearth_quant::q3k_scales(&xb.scales).map(i32::from);
        // SAFETY: hmask is 32 bytes.
        let (h0, h1) = unsafe {
            (
                load_u8(xb.hmask.as_ptr()),
                load_u8(xb.hmask.as_ptr().add(16)),
            )
        };
        let dx = f16_to_f32(xb.d);
        let mut sumi = [vdupq_n_s32(0); N];
        for n in 0..2 {
            // SAFETY: 32 bytes of qs at 32 * n (qs is 64 long).
            let (b0, b1) = unsafe {
                (
                    load_u8(xb.qs.as_ptr().add(32 * n)),
                    load_u8(xb.qs.as_ptr().add(32 * n + 16)),
                )
            };
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                let bit = vdupq_n_u8(1 << (4 * n + j));
                let q = |b: uint8x16_t, h: uint8x16_t| {
                    let low = vandq_u8(vshlq_u8(b, shift), m3);
                    vreinterpretq_s8_u8(vsubq_u8(low, vbicq_u8(four, vtstq_u8(h, bit))))
                };
                let (q0, q1) = (q(b0, h0), q(b1, h1));
                let (e, sub) = (128 * n + 32 * j, 8 * n + 2 * j);
                for c in 0..N {
                    // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); e + 32 <= 256; `D`
                    // by the caller's contract.
                    unsafe {
                        let yb = &*y[c].add(i);
                        sumi[c] = scaled16::<D>(sumi[c], q0, yb, e, sc[sub]);
                        sumi[c] = scaled16::<D>(sumi[c], q1, yb, e + 16, sc[sub + 1]);
                    }
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let dy = unsafe { (*y[c].add(i)).d };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), dy * dx);
        }
    }
    finish(acc, [0.0; N])
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K/Q5_K block (ggml's `utmp` unpacking).
#[inline]
#[target_feature(enable = "neon")]
fn k4_scales_mins(packed: &[u8; 12]) -> ([i32; 8], int16x8_t) {
    let [s0, s1, m0, m1] = crate::k4_scales_mins(packed);
    let scales = u64::from(s0) | u64::from(s1) << 32;
    let mins = u64::from(m0) | u64::from(m1) << 32;
    let sc = scales.to_le_bytes().map(i32::from);
    (sc, vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(mins))))
}

/// `Σ mins[k] · (bsums[2k] + bsums[2k + 1])` for the eight sub-blocks of 32.
#[inline]
#[target_feature(enable = "neon")]
fn k4_mins_dot(y: &BlockQ8K, mins: int16x8_t) -> i32 {
    let (b_lo, b_hi) = bsums(y);
    let pairs = vpaddq_s16(b_lo, b_hi);
    let p = vmull_s16(vget_low_s16(pairs), vget_low_s16(mins));
    vaddvq_s32(vmlal_high_s16(p, pairs, mins))
}

/// Q4_K as ggml's NEON `ggml_vec_dot_q4_K_q8_K`: per 64 elements, low nibbles (sub-block 2j)
/// and high nibbles (2j + 1) times their six-bit scales, `dy·d`; the mins against the pair
/// sums of `bsums`, `-dy·dmin`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q4_k_q8_k<D: Dot, const N: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let mut summs = [0f32; N];
    for (i, xb) in x.iter().enumerate() {
        let (sc, mins) = k4_scales_mins(&xb.scales);
        let (dx, dmin_x) = (f16_to_f32(xb.d), f16_to_f32(xb.dmin));
        let mut sumi = [vdupq_n_s32(0); N];
        for j in 0..4 {
            // SAFETY: 32 bytes of qs at 32 * j (qs is 128 long).
            let (b0, b1) = unsafe {
                (
                    load_u8(xb.qs.as_ptr().add(32 * j)),
                    load_u8(xb.qs.as_ptr().add(32 * j + 16)),
                )
            };
            let lo = [low_nibbles(b0), low_nibbles(b1)];
            let hi = [high_nibbles(b0), high_nibbles(b1)];
            for c in 0..N {
                // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); 64 j + 64 <= 256; `D`
                // by the caller's contract.
                unsafe {
                    let yb = &*y[c].add(i);
                    sumi[c] = scaled32::<D>(sumi[c], lo, yb, 64 * j, sc[2 * j]);
                    sumi[c] = scaled32::<D>(sumi[c], hi, yb, 64 * j + 32, sc[2 * j + 1]);
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            let m = k4_mins_dot(yb, mins);
            summs[c] = (-yb.d * dmin_x).mul_add(m as f32, summs[c]);
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), yb.d * dx);
        }
    }
    finish(acc, summs)
}

/// Q5_K as ggml's NEON `ggml_vec_dot_q5_K_q8_K`: Q4_K with the fifth bit of element
/// `32 s + l` from bit `s` of `qh[l]`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q5_k_q8_k<D: Dot, const N: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let mut summs = [0f32; N];
    let b4 = vdupq_n_u8(0x10);
    for (i, xb) in x.iter().enumerate() {
        let (sc, mins) = k4_scales_mins(&xb.scales);
        let (dx, dmin_x) = (f16_to_f32(xb.d), f16_to_f32(xb.dmin));
        // SAFETY: qh is 32 bytes.
        let (h0, h1) = unsafe { (load_u8(xb.qh.as_ptr()), load_u8(xb.qh.as_ptr().add(16))) };
        let mut sumi = [vdupq_n_s32(0); N];
        for j in 0..4 {
            // SAFETY: 32 bytes of qs at 32 * j (qs is 128 long).
            let (b0, b1) = unsafe {
                (
                    load_u8(xb.qs.as_ptr().add(32 * j)),
                    load_u8(xb.qs.as_ptr().add(32 * j + 16)),
                )
            };
            let high = |h: uint8x16_t, s: usize| {
                vreinterpretq_s8_u8(vandq_u8(vtstq_u8(h, vdupq_n_u8(1 << s)), b4))
            };
            let lo = [
                vorrq_s8(low_nibbles(b0), high(h0, 2 * j)),
                vorrq_s8(low_nibbles(b1), high(h1, 2 * j)),
            ];
            let hi = [
                vorrq_s8(high_nibbles(b0), high(h0, 2 * j + 1)),
                vorrq_s8(high_nibbles(b1), high(h1, 2 * j + 1)),
            ];
            for c in 0..N {
                // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); 64 j + 64 <= 256; `D`
                // by the caller's contract.
                unsafe {
                    let yb = &*y[c].add(i);
                    sumi[c] = scaled32::<D>(sumi[c], lo, yb, 64 * j, sc[2 * j]);
                    sumi[c] = scaled32::<D>(sumi[c], hi, yb, 64 * j + 32, sc[2 * j + 1]);
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let yb = unsafe { &*y[c].add(i) };
            let m = k4_mins_dot(yb, mins);
            summs[c] = (-yb.d * dmin_x).mul_add(m as f32, summs[c]);
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), yb.d * dx);
        }
    }
    finish(acc, summs)
}

/// Q6_K as ggml's NEON `ggml_vec_dot_q6_K_q8_K`: per 128 elements, the low nibbles of `ql` and
/// two bits of `qh` per element, minus 32, times the signed scale of each sub-block of 16.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn q6_k_q8_k<D: Dot, const N: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    let m3 = vdupq_n_u8(3);
    let m32 = vdupq_n_s8(32);
    for (i, xb) in x.iter().enumerate() {
        let sc = xb.scales.map(i32::from);
        let dx = f16_to_f32(xb.d);
        let mut sumi = [vdupq_n_s32(0); N];
        for half in 0..2 {
            // SAFETY: ql has 64 bytes from 64 * half, qh 32 bytes from 32 * half.
            let (l, h) = unsafe {
                let ql = xb.ql.as_ptr().add(64 * half);
                let qh = xb.qh.as_ptr().add(32 * half);
                (
                    [
                        load_u8(ql),
                        load_u8(ql.add(16)),
                        load_u8(ql.add(32)),
                        load_u8(ql.add(48)),
                    ],
                    [load_u8(qh), load_u8(qh.add(16))],
                )
            };
            for k in 0..4 {
                // Elements 128 half + 32 k + (0..16, 16..32): ql bytes (k % 2) 32 + (0..32),
                // low nibbles for k < 2; qh bits 2k, 2k + 1.
                let q = |m: usize| {
                    let lb = l[2 * (k % 2) + m];
                    let low = if k < 2 {
                        vandq_u8(lb, vdupq_n_u8(0x0f))
                    } else {
                        vshrq_n_u8::<4>(lb)
                    };
                    let hb = vandq_u8(vshlq_u8(h[m], vdupq_n_s8(-2 * k as i8)), m3);
                    vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(low, vshlq_n_u8::<4>(hb))), m32)
                };
                let (q0, q1) = (q(0), q(1));
                let (e, sub) = (128 * half + 32 * k, 8 * half + 2 * k);
                for c in 0..N {
                    // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); e + 32 <= 256; `D`
                    // by the caller's contract.
                    unsafe {
                        let yb = &*y[c].add(i);
                        sumi[c] = scaled16::<D>(sumi[c], q0, yb, e, sc[sub]);
                        sumi[c] = scaled16::<D>(sumi[c], q1, yb, e + 16, sc[sub + 1]);
                    }
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let dy = unsafe { (*y[c].add(i)).d };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), dx * dy);
        }
    }
    finish(acc, [0.0; N])
}

/// IQ4_XS as ggml's NEON `ggml_vec_dot_iq4_xs_q8_K`: codebook values by `tbl`, per sub-block
/// of 32 times its signed six-bit scale, `dy·d`.
///
/// # Safety
/// As [`Kernel::run`].
#[inline(always)]
unsafe fn iq4_xs_q8_k<D: Dot, const N: usize>(x: &[BlockIq4Xs], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let y = row_ptrs(y, x.len());
    let mut acc = [vdupq_n_f32(0.0); N];
    for (i, xb) in x.iter().enumerate() {
        let sh = u16::from_le_bytes(xb.scales_h);
        let ls: [i32; 8] = std::array::from_fn(|ib| {
            let low = (xb.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            let high = (sh >> (2 * ib)) & 3;
            (i32::from(low) | (i32::from(high) << 4)) - 32
        });
        let dx = f16_to_f32(xb.d);
        let mut sumi = [vdupq_n_s32(0); N];
        for (ib, &scale) in ls.iter().enumerate() {
            // SAFETY: 16 bytes of qs at 16 * ib (qs is 128 long).
            let (lo, hi) = unsafe { iq4_values(xb.qs.as_ptr().add(16 * ib)) };
            for c in 0..N {
                // SAFETY: row c holds x.len() > i blocks (`row_ptrs`); 32 ib + 32 <= 256; `D`
                // by the caller's contract.
                unsafe {
                    let yb = &*y[c].add(i);
                    sumi[c] = scaled32::<D>(sumi[c], [lo, hi], yb, 32 * ib, scale);
                }
            }
        }
        for c in 0..N {
            // SAFETY: row c holds x.len() > i blocks (`row_ptrs`).
            let dy = unsafe { (*y[c].add(i)).d };
            acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(sumi[c]), dx * dy);
        }
    }
    finish(acc, [0.0; N])
}

//! The NEON vector operations, lane for lane the arithmetic of the scalar set (which is ggml's
//! vector code: `simd_gemm`, `ggml_v_expf`, `ggml_vec_soft_max_f32`, `ggml_vec_dot_f16`,
//! `ggml_vec_mad_f16`), so that `simd/tests/kernels.rs` can hold them to it bit for bit.
//!
//! f16 values are widened with `fcvtl` and narrowed with `fcvtn` (base ARMv8 floating point,
//! round to nearest even as the reference; the `float16x4_t` intrinsics are not stable).
//!
//! Safety: NEON is part of the aarch64 baseline, so these run on every aarch64 CPU. Every
//! pointer access stays inside the slices, whose lengths are checked by the safe wrappers.

use std::arch::aarch64::*;
use std::arch::asm;

use hearth_quant::F16Le;

use crate::VecKernels;

/// The NEON vector operations.
pub static VEC: VecKernels = VecKernels {
    gemm_f32,
    softmax_exp,
    dot_f16,
    mad_f32,
    mad_f16,
    scale_f16,
    f16_to_f32,
};

/// Rows of `C` one micro-kernel keeps in registers.
const RM: usize = 6;
/// Columns of `C` (four vectors of four) one micro-kernel keeps in registers.
const RN: usize = 16;

fn gemm_f32(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    let (cp, ap, bp) = (c.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i < m {
        let rows = RM.min(m - i);
        let mut j = 0;
        while j + RN <= n {
            // SAFETY: rows i..i+rows < m, columns j..j+16 ≤ n (lengths checked above).
            unsafe { tile::<4>(cp.add(i * n + j), ap.add(i * k), bp.add(j), rows, k, n) };
            j += RN;
        }
        while j + 4 <= n {
            // SAFETY: as above, columns j..j+4 ≤ n.
            unsafe { tile::<1>(cp.add(i * n + j), ap.add(i * k), bp.add(j), rows, k, n) };
            j += 4;
        }
        for r in i..i + rows {
            for jj in j..n {
                let mut acc = c[r * n + jj];
                for kk in 0..k {
                    acc = a[r * k + kk].mul_add(b[kk * n + jj], acc);
                }
                c[r * n + jj] = acc;
            }
        }
        i += rows;
    }
}

/// `rows` (≤ RM) rows by `V` vectors of four columns of `C += A·B`, each element a chain of
/// fused multiply-adds in `k` order.
///
/// # Safety
/// `c` and `b` point at column `j` of their matrices (row strides `n`), `a` at the first row of
/// the block (row stride `k`); all `rows × 4V` elements are in bounds.
#[inline]
unsafe fn tile<const V: usize>(
    c: *mut f32,
    a: *const f32,
    b: *const f32,
    rows: usize,
    k: usize,
    n: usize,
) {
    let mut acc = [[vdupq_n_f32(0.0); V]; RM];
    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
        for (v, x) in acc_r.iter_mut().enumerate() {
            // SAFETY: in bounds by the caller's contract.
            *x = unsafe { vld1q_f32(c.add(r * n + v * 4)) };
        }
    }
    for kk in 0..k {
        // SAFETY: row kk of B, columns j..j+4V.
        let bv: [float32x4_t; V] =
            std::array::from_fn(|v| unsafe { vld1q_f32(b.add(kk * n + v * 4)) });
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            // SAFETY: element (r, kk) of A.
            let p = unsafe { *a.add(r * k + kk) };
            for (x, bv) in acc_r.iter_mut().zip(&bv) {
                *x = vfmaq_n_f32(*x, *bv, p);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (v, x) in acc_r.iter().enumerate() {
            // SAFETY: in bounds by the caller's contract.
            unsafe { vst1q_f32(c.add(r * n + v * 4), *x) };
        }
    }
}

/// ggml's `ggml_v_expf` on four lanes: lane for lane [`crate::scalar::v_expf`].
#[inline]
#[target_feature(enable = "neon")]
fn v_expf(x: float32x4_t) -> float32x4_t {
    let c = |bits: u32| vdupq_n_f32(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = vfmaq_f32(r, x, c(0x3fb8_aa3b));
    let n = vsubq_f32(z, r);
    let b = vfmsq_f32(vfmsq_f32(x, n, c(0x3f31_7200)), n, c(0x35bf_be8e));
    let e = vshlq_n_u32::<23>(vreinterpretq_u32_f32(z));
    let k = vreinterpretq_f32_u32(vaddq_u32(e, vreinterpretq_u32_f32(vdupq_n_f32(1.0))));
    let u = vmulq_f32(b, b);
    let j = vfmaq_f32(
        vfmaq_f32(c(0x3eff_fedb), c(0x3e2a_af33), b),
        vfmaq_f32(c(0x3d2b_9f17), c(0x3c07_2010), b),
        u,
    );
    let j = vfmaq_f32(vmulq_f32(c(0x3f7f_fff6), b), j, u);
    let normal = vfmaq_f32(k, j, k);
    let cm = vcagtq_f32(n, vdupq_n_f32(126.0));
    if vmaxvq_u32(cm) == 0 {
        return normal;
    }
    let g = vandq_u32(vcleq_f32(n, vdupq_n_f32(0.0)), vdupq_n_u32(0x8200_0000));
    let s1 = vreinterpretq_f32_u32(vaddq_u32(g, vdupq_n_u32(0x7f00_0000)));
    let s2 = vreinterpretq_f32_u32(vsubq_u32(e, g));
    let d = vcagtq_f32(n, vdupq_n_f32(192.0));
    vbslq_f32(
        d,
        vmulq_f32(s1, s1),
        vbslq_f32(cm, vmulq_f32(vfmaq_f32(s2, s2, j), s1), normal),
    )
}

fn softmax_exp(x: &mut [f32], max: f32) -> f64 {
    // SAFETY: NEON is the aarch64 baseline.
    unsafe { softmax_exp_neon(x, max) }
}

#[target_feature(enable = "neon")]
fn softmax_exp_neon(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    let mut chunks = x.chunks_exact_mut(8);
    let m = vdupq_n_f32(max);
    for ch in &mut chunks {
        let p = ch.as_mut_ptr();
        // SAFETY: `ch` holds eight floats.
        let (lo, hi) = unsafe { (vld1q_f32(p), vld1q_f32(p.add(4))) };
        let (lo, hi) = (v_expf(vsubq_f32(lo, m)), v_expf(vsubq_f32(hi, m)));
        // SAFETY: as above.
        unsafe {
            vst1q_f32(p, lo);
            vst1q_f32(p.add(4), hi);
        }
        // The eight lanes summed in the order of ggml's AVX2 `hsum` (the scalar set's order).
        let s = vaddq_f32(lo, hi);
        let t = vaddq_f32(s, vextq_f32::<2>(s, s));
        sum += f64::from(vgetq_lane_f32::<0>(t) + vgetq_lane_f32::<1>(t));
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    sum
}

/// Eight f16 values widened (`fcvtl`, `fcvtl2`).
#[inline(always)]
fn widen8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: register-only instructions of the aarch64 baseline; `lo` is an early output, so
    // it never shares a register with `h`, which the second instruction still reads.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = lateout(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (lo, hi)
}

/// Eight f32 values rounded to f16, to nearest even (`fcvtn`, `fcvtn2`).
#[inline(always)]
fn narrow8(lo: float32x4_t, hi: float32x4_t) -> uint16x8_t {
    let out: uint16x8_t;
    // SAFETY: register-only instructions of the aarch64 baseline; `out` is an early output, so
    // writing its low half leaves `hi` intact for the second instruction.
    unsafe {
        asm!(
            "fcvtn {o:v}.4h, {lo:v}.4s",
            "fcvtn2 {o:v}.8h, {hi:v}.4s",
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            o = out(vreg) out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// Eight f16 values at `p`, widened.
///
/// # Safety
/// `p` points at eight readable u16 (any alignment: loaded as bytes).
#[inline(always)]
unsafe fn load_f16x8(p: *const u16) -> (float32x4_t, float32x4_t) {
    // SAFETY: by the caller's contract.
    widen8(vreinterpretq_u16_u8(unsafe { vld1q_u8(p.cast()) }))
}

/// # Safety
/// `p` points at eight writable u16 (any alignment).
#[inline(always)]
unsafe fn store_f16x8(p: *mut u16, lo: float32x4_t, hi: float32x4_t) {
    // SAFETY: by the caller's contract.
    unsafe { vst1q_u8(p.cast(), vreinterpretq_u8_u16(narrow8(lo, hi))) }
}

fn f16(bits: u16) -> f32 {
    F16Le::from_bits(bits).to_f32()
}

fn to_f16(x: f32) -> u16 {
    F16Le::from_f32(x).to_bits()
}

fn dot_f16(x: &[u16], y: &[u16]) -> f32 {
    assert_eq!(x.len(), y.len());
    // SAFETY: both slices hold `x.len()` values.
    unsafe { dot_f16_raw(x.as_ptr(), y.as_ptr(), x.len()) }
}

/// `ggml_vec_dot_f16` over `n` f16 values at `x` and `y`, in the scalar set's order: four
/// accumulators of eight lanes over steps of 32, reduced pairwise, the tail in f64. The pointers
/// need no alignment (the matmul kernels pass weight rows straight from the file).
///
/// # Safety
/// `x` and `y` readable for `n` values each.
pub(crate) unsafe fn dot_f16_raw(x: *const u16, y: *const u16, n: usize) -> f32 {
    let np = n & !31;
    let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
    for i in (0..np).step_by(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            let at = i + j * 8;
            // SAFETY: at + 8 ≤ np ≤ n, readable by the caller's contract.
            let ((xl, xh), (yl, yh)) = unsafe { (load_f16x8(x.add(at)), load_f16x8(y.add(at))) };
            a[0] = vfmaq_f32(a[0], xl, yl);
            a[1] = vfmaq_f32(a[1], xh, yh);
        }
    }
    let lanes: [float32x4_t; 2] = std::array::from_fn(|h| {
        vaddq_f32(
            vaddq_f32(acc[0][h], acc[2][h]),
            vaddq_f32(acc[1][h], acc[3][h]),
        )
    });
    let t0 = vaddq_f32(lanes[0], lanes[1]);
    let t1 = vpaddq_f32(t0, t0);
    let mut sum = f64::from(vpadds_f32(vget_low_f32(t1)));
    for i in np..n {
        // SAFETY: i < n.
        let (a, b) = unsafe { (x.add(i).read_unaligned(), y.add(i).read_unaligned()) };
        sum += f64::from(f16(a) * f16(b));
    }
    sum as f32
}

fn mad_f32(y: &mut [f32], x: &[f32], v: f32) {
    assert_eq!(x.len(), y.len());
    let np = y.len() & !3;
    for i in (0..np).step_by(4) {
        // SAFETY: i + 4 ≤ len of both.
        unsafe {
            let r = vfmaq_n_f32(
                vld1q_f32(y.as_ptr().add(i)),
                vld1q_f32(x.as_ptr().add(i)),
                v,
            );
            vst1q_f32(y.as_mut_ptr().add(i), r);
        }
    }
    for i in np..y.len() {
        y[i] = x[i].mul_add(v, y[i]);
    }
}

fn mad_f16(y: &mut [u16], x: &[u16], v: f32) {
    assert_eq!(x.len(), y.len());
    let np = y.len() & !7;
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len of both.
        unsafe {
            let (xl, xh) = load_f16x8(x.as_ptr().add(i));
            let (yl, yh) = load_f16x8(y.as_ptr().add(i));
            store_f16x8(
                y.as_mut_ptr().add(i),
                vfmaq_n_f32(yl, xl, v),
                vfmaq_n_f32(yh, xh, v),
            );
        }
    }
    for i in np..y.len() {
        y[i] = to_f16(f16(x[i]).mul_add(v, f16(y[i])));
    }
}

fn scale_f16(y: &mut [u16], v: f32) {
    let np = y.len() & !7;
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len.
        unsafe {
            let (lo, hi) = load_f16x8(y.as_ptr().add(i));
            store_f16x8(
                y.as_mut_ptr().add(i),
                vmulq_n_f32(lo, v),
                vmulq_n_f32(hi, v),
            );
        }
    }
    for h in &mut y[np..] {
        *h = to_f16(f16(*h) * v);
    }
}

fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    let np = src.len() & !7;
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len of both.
        unsafe {
            let (lo, hi) = load_f16x8(src.as_ptr().add(i));
            vst1q_f32(dst.as_mut_ptr().add(i), lo);
            vst1q_f32(dst.as_mut_ptr().add(i + 4), hi);
        }
    }
    for i in np..src.len() {
        dst[i] = f16(src[i]);
    }
}

/// The vector `expf` is lane for lane [`crate::scalar::v_expf`]; the f16 conversions are the
/// reference's, on every bit pattern.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar;

    #[test]
    fn vector_expf_is_the_scalar_port() {
        let xs: Vec<f32> = (-2000..2000)
            .map(|i| i as f32 * 0.0913)
            .chain([
                f32::NEG_INFINITY,
                -0.0,
                0.0,
                88.0,
                89.0,
                -103.0,
                -150.0,
                0.5,
            ])
            .collect();
        for ch in xs.chunks(4) {
            let mut lanes = [0f32; 4];
            lanes[..ch.len()].copy_from_slice(ch);
            let mut out = [0f32; 4];
            // SAFETY: four floats each.
            unsafe { vst1q_f32(out.as_mut_ptr(), v_expf(vld1q_f32(lanes.as_ptr()))) };
            for (x, y) in lanes.iter().zip(out) {
                assert_eq!(y.to_bits(), scalar::v_expf(*x).to_bits(), "exp({x})");
            }
        }
    }

    #[test]
    fn f16_conversions_match_the_reference() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut wide = vec![0f32; all.len()];
        f16_to_f32(&all, &mut wide);
        for (&h, &w) in all.iter().zip(&wide) {
            let want = f16(h);
            assert!(
                w.to_bits() == want.to_bits() || (w.is_nan() && want.is_nan()),
                "{h:#x}"
            );
        }
        // Narrowing: values around every f16, ties and overflow included.
        let xs: Vec<f32> = (0..=0x7bffu16)
            .step_by(3)
            .flat_map(|h| {
                let v = f16(h);
                let next = f16(h + 1);
                [v, -v, (v + next) / 2.0, -(v + next) / 2.0, v * 1.0001]
            })
            .chain([65504.0, 65519.0, 65520.0, 1e9, -1e9, 1e-8, 3e-8, 0.0, -0.0])
            .collect();
        for ch in xs.chunks_exact(8) {
            let mut got = [0u16; 8];
            // SAFETY: eight values each.
            unsafe {
                let (lo, hi) = (vld1q_f32(ch.as_ptr()), vld1q_f32(ch.as_ptr().add(4)));
                store_f16x8(got.as_mut_ptr(), lo, hi);
            }
            for (x, g) in ch.iter().zip(got) {
                assert_eq!(g, to_f16(*x), "{x}");
            }
        }
    }
}

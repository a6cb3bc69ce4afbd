//! The AVX2 + FMA + F16C vector operations, lane for lane the arithmetic of ggml's AVX2 build
//! (`simd_gemm`, `ggml_v_expf`, `ggml_vec_soft_max_f32`, `ggml_vec_dot_f16`, `ggml_vec_mad_f16`),
//! which `simd/tests/kernels.rs` holds to the scalar set.
//!
//! Safety: as in [`super::avx2`], the `unsafe fn`s need AVX2, FMA and F16C, and [`VEC`] is only
//! handed out after `is_x86_feature_detected!` confirmed them. Every pointer access stays inside
//! the slices, whose lengths are checked by the safe wrappers.

use std::arch::x86_64::*;

use crate::VecKernels;

/// The AVX2 vector operations.
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
/// Columns of `C` (two vectors of eight) one micro-kernel keeps in registers.
const RN: usize = 16;

fn gemm_f32(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    // SAFETY: lengths checked above; the CPU features are guaranteed by `VEC`'s use.
    unsafe { gemm_f32_avx2(c, a, b, m, k, n) }
}

/// # Safety
/// AVX2/FMA, `c`: `m×n`, `a`: `m×k`, `b`: `k×n` (checked by the caller).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_f32_avx2(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    let (cp, ap, bp) = (c.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i < m {
        let rows = RM.min(m - i);
        let mut j = 0;
        while j + RN <= n {
            // SAFETY: rows i..i+rows < m, columns j..j+16 ≤ n.
            unsafe { tile::<2>(cp.add(i * n + j), ap.add(i * k), bp.add(j), rows, k, n) };
            j += RN;
        }
        while j + 8 <= n {
            // SAFETY: as above, columns j..j+8 ≤ n.
            unsafe { tile::<1>(cp.add(i * n + j), ap.add(i * k), bp.add(j), rows, k, n) };
            j += 8;
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

/// `rows` (≤ RM) rows by `V` vectors of eight columns of `C += A·B`.
///
/// # Safety
/// `c` and `b` point at column `j` of their matrices (row strides `n`), `a` at the first row of
/// the block (row stride `k`); all `rows × 8V` elements are in bounds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const V: usize>(
    c: *mut f32,
    a: *const f32,
    b: *const f32,
    rows: usize,
    k: usize,
    n: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); V]; RM];
    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
        for (v, x) in acc_r.iter_mut().enumerate() {
            // SAFETY: in bounds by the caller's contract.
            *x = unsafe { _mm256_loadu_ps(c.add(r * n + v * 8)) };
        }
    }
    for kk in 0..k {
        // SAFETY: row kk of B, columns j..j+8V.
        let bv: [__m256; V] =
            std::array::from_fn(|v| unsafe { _mm256_loadu_ps(b.add(kk * n + v * 8)) });
        for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
            // SAFETY: element (r, kk) of A.
            let p = _mm256_set1_ps(unsafe { *a.add(r * k + kk) });
            for (x, bv) in acc_r.iter_mut().zip(&bv) {
                *x = _mm256_fmadd_ps(*bv, p, *x);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (v, x) in acc_r.iter().enumerate() {
            // SAFETY: in bounds by the caller's contract.
            unsafe { _mm256_storeu_ps(c.add(r * n + v * 8), *x) };
        }
    }
}

/// ggml's `ggml_v_expf` on eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn v_expf(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    let k = _mm256_castsi256_ps(_mm256_add_epi32(
        e,
        _mm256_castps_si256(_mm256_set1_ps(1.0)),
    ));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let cm = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0), _CMP_GT_OQ);
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm256_mul_ps(c(0x3f7f_fff6), b),
    );
    if _mm256_movemask_ps(cm) == 0 {
        return _mm256_fmadd_ps(j, k, k);
    }
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let d = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0), _CMP_GT_OQ);
    _mm256_or_ps(
        _mm256_and_ps(d, _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(
            d,
            _mm256_or_ps(
                _mm256_and_ps(cm, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                _mm256_andnot_ps(cm, _mm256_fmadd_ps(k, j, k)),
            ),
        ),
    )
}

fn softmax_exp(x: &mut [f32], max: f32) -> f64 {
    // SAFETY: CPU features guaranteed by `VEC`'s use; accesses stay in `x`.
    unsafe { softmax_exp_avx2(x, max) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_exp_avx2(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    let mut chunks = x.chunks_exact_mut(8);
    let m = _mm256_set1_ps(max);
    for ch in &mut chunks {
        // SAFETY: `ch` holds eight floats.
        let v = v_expf(_mm256_sub_ps(unsafe { _mm256_loadu_ps(ch.as_ptr()) }, m));
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), v) };
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        sum += f64::from(_mm_cvtss_f32(s));
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    sum
}

/// Eight f16 values at `p`, widened.
///
/// # Safety
/// `p` points at eight readable u16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_f16x8(p: *const u16) -> __m256 {
    // SAFETY: by the caller's contract.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

fn dot_f16(x: &[u16], y: &[u16]) -> f32 {
    assert_eq!(x.len(), y.len());
    // SAFETY: CPU features guaranteed by `VEC`'s use; both slices hold `x.len()` values.
    unsafe { dot_f16_raw(x.as_ptr(), y.as_ptr(), x.len()) }
}

/// `ggml_vec_dot_f16` over `n` f16 values at `x` and `y`, which need no alignment (the matmul
/// kernels pass weight rows straight from the file).
///
/// # Safety
/// AVX2, FMA and F16C; `x` and `y` readable for `n` values each.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16_raw(x: *const u16, y: *const u16, n: usize) -> f32 {
    let np = n & !31;
    let mut acc = [_mm256_setzero_ps(); 4];
    for i in (0..np).step_by(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            let at = i + j * 8;
            // SAFETY: at + 8 ≤ np ≤ n, readable by the caller's contract.
            let (vx, vy) = unsafe { (load_f16x8(x.add(at)), load_f16x8(y.add(at))) };
            *a = _mm256_fmadd_ps(vx, vy, *a);
        }
    }
    let s0 = _mm256_add_ps(acc[0], acc[2]);
    let s1 = _mm256_add_ps(acc[1], acc[3]);
    let s = _mm256_add_ps(s0, s1);
    let t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    let t1 = _mm_hadd_ps(t0, t0);
    let mut sum = f64::from(_mm_cvtss_f32(_mm_hadd_ps(t1, t1)));
    for i in np..n {
        // SAFETY: i < n.
        let (a, b) = unsafe { (x.add(i).read_unaligned(), y.add(i).read_unaligned()) };
        sum += f64::from(scalar_f16(a) * scalar_f16(b));
    }
    sum as f32
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scalar_f16(h: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scalar_to_f16(x: f32) -> u16 {
    _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x), _MM_FROUND_TO_NEAREST_INT), 0) as u16
}

fn mad_f32(y: &mut [f32], x: &[f32], v: f32) {
    assert_eq!(x.len(), y.len());
    // SAFETY: CPU features guaranteed by `VEC`'s use; lengths equal.
    unsafe { mad_f32_avx2(y, x, v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mad_f32_avx2(y: &mut [f32], x: &[f32], v: f32) {
    let np = y.len() & !7;
    let vv = _mm256_set1_ps(v);
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len of both.
        unsafe {
            let r = _mm256_fmadd_ps(
                _mm256_loadu_ps(x.as_ptr().add(i)),
                vv,
                _mm256_loadu_ps(y.as_ptr().add(i)),
            );
            _mm256_storeu_ps(y.as_mut_ptr().add(i), r);
        }
    }
    for i in np..y.len() {
        y[i] = x[i].mul_add(v, y[i]);
    }
}

fn mad_f16(y: &mut [u16], x: &[u16], v: f32) {
    assert_eq!(x.len(), y.len());
    // SAFETY: CPU features guaranteed by `VEC`'s use; lengths equal.
    unsafe { mad_f16_avx2(y, x, v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mad_f16_avx2(y: &mut [u16], x: &[u16], v: f32) {
    let np = y.len() & !7;
    let vv = _mm256_set1_ps(v);
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len of both.
        unsafe {
            let r = _mm256_fmadd_ps(
                load_f16x8(x.as_ptr().add(i)),
                vv,
                load_f16x8(y.as_ptr().add(i)),
            );
            let h = _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), h);
        }
    }
    for i in np..y.len() {
        y[i] = scalar_to_f16(scalar_f16(x[i]).mul_add(v, scalar_f16(y[i])));
    }
}

fn scale_f16(y: &mut [u16], v: f32) {
    // SAFETY: CPU features guaranteed by `VEC`'s use.
    unsafe { scale_f16_avx2(y, v) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_f16_avx2(y: &mut [u16], v: f32) {
    let np = y.len() & !7;
    let vv = _mm256_set1_ps(v);
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len.
        unsafe {
            let r = _mm256_mul_ps(load_f16x8(y.as_ptr().add(i)), vv);
            _mm_storeu_si128(
                y.as_mut_ptr().add(i).cast(),
                _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT),
            );
        }
    }
    for h in &mut y[np..] {
        *h = scalar_to_f16(scalar_f16(*h) * v);
    }
}

fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: CPU features guaranteed by `VEC`'s use; lengths equal.
    unsafe { f16_to_f32_avx2(src, dst) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_to_f32_avx2(src: &[u16], dst: &mut [f32]) {
    let np = src.len() & !7;
    for i in (0..np).step_by(8) {
        // SAFETY: i + 8 ≤ len of both.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i), load_f16x8(src.as_ptr().add(i))) };
    }
    for i in np..src.len() {
        dst[i] = scalar_f16(src[i]);
    }
}

/// The vector `expf` is lane for lane [`scalar::v_expf`].
#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar;

    #[test]
    fn vector_expf_is_the_scalar_port() {
        if !super::super::avx2::detected() {
            return;
        }
        let xs: Vec<f32> = (-2000..2000)
            .map(|i| i as f32 * 0.0913)
            .chain([f32::NEG_INFINITY, -0.0, 0.0, 88.0, 89.0, -103.0, -150.0])
            .collect();
        for ch in xs.chunks(8) {
            let mut lanes = [0f32; 8];
            lanes[..ch.len()].copy_from_slice(ch);
            let mut out = [0f32; 8];
            // SAFETY: AVX2 detected above.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v_expf(_mm256_loadu_ps(lanes.as_ptr()))) };
            for (x, y) in lanes.iter().zip(out) {
                assert_eq!(y.to_bits(), scalar::v_expf(*x).to_bits(), "exp({x})");
            }
        }
    }
}

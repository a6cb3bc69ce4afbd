//! Reference quantizers for the K-quants, mirroring ggml's `quantize_row_q{2..6}_K_ref`
//! (the paths llama-quantize takes without an importance matrix).
//!
//! They search per sub-block for the scale (and min) that minimises a weighted error
//! (`make_qkx2_quants`, `make_q3_quants`, `make_qx_quants`), quantize those scales to 4, 6 or
//! 8 bits against an f16 super-scale, then requantize every weight with the rounded scales.
//! Float operations are kept in ggml's order so the output bytes equal ggml's.

use crate::quantize::{check_lengths, nearest_int, signed_absmax};
use crate::{scale_min_k4, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, F16Le};
use crate::{Pod, QuantError, QK_K};

/// ggml's `GROUP_MAX_EPS`: below this absolute maximum a group counts as all zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// The search settings of one `make_qkx2_quants` call.
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

impl Qkx2 {
    fn error(&self, diff: f32) -> f32 {
        if self.use_mad {
            diff.abs()
        } else {
            diff * diff
        }
    }

    /// `make_qkx2_quants`: fits `x ~ scale * l + min` (min <= 0) with `l` in `0..=nmax`, trying
    /// `nstep + 1` slightly different inverse scales and keeping the weighted least-squares fit
    /// with the lowest error. Writes `l` and returns `(scale, -min)`.
    fn quantize(&self, x: &[f32], weights: &[f32], out: &mut [u8]) -> (f32, f32) {
        let n = x.len();
        let (mut min, mut max) = (x[0], x[0]);
        let mut sum_w = weights[0];
        let mut sum_x = sum_w * x[0];
        for i in 1..n {
            min = if x[i] < min { x[i] } else { min };
            max = if x[i] > max { x[i] } else { max };
            sum_w += weights[i];
            sum_x += weights[i] * x[i];
        }
        if min > 0.0 {
            min = 0.0;
        }
        if max == min {
            out[..n].fill(0);
            return (0.0, -min);
        }
        let nmax = self.nmax as f32;
        let mut iscale = nmax / (max - min);
        let mut scale = 1.0 / iscale;
        let mut best_error = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, self.nmax);
            out[i] = l as u8;
            best_error += weights[i] * self.error(scale * l as f32 + min - x[i]);
        }
        let mut laux = [0u8; 32];
        for is in 0..=self.nstep {
            iscale = (self.rmin + self.rdelta * is as f32 + nmax) / (max - min);
            let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
            for i in 0..n {
                let l = nearest_int(iscale * (x[i] - min)).clamp(0, self.nmax);
                laux[i] = l as u8;
                let (w, l) = (weights[i], l as f32);
                sum_l += w * l;
                sum_l2 += w * l * l;
                sum_xl += w * l * x[i];
            }
            let det = sum_w * sum_l2 - sum_l * sum_l;
            if det > 0.0 {
                let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
                let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
                if this_min > 0.0 {
                    this_min = 0.0;
                    this_scale = sum_xl / sum_l2;
                }
                let mut cur_error = 0.0f32;
                for i in 0..n {
                    let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                    cur_error += weights[i] * self.error(diff);
                }
                if cur_error < best_error {
                    out[..n].copy_from_slice(&laux[..n]);
                    best_error = cur_error;
                    scale = this_scale;
                    min = this_min;
                }
            }
        }
        (scale, -min)
    }
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: symmetric quants in `-nmax..nmax`, refined
/// one weight at a time (5 passes at most) to maximise `sumlx^2 / suml2` with weights `x^2`.
/// Writes `l + nmax` and returns the scale.
fn make_q3_quants(x: &[f32], nmax: i32, out: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        out[..x.len()].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (&v, o) in x.iter().zip(out.iter_mut()) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (&v, o) in x.iter().zip(out.iter_mut()) {
            let w = v * v;
            let old = f32::from(*o);
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*o) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for o in out[..x.len()].iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)`: symmetric quants in `-nmax..nmax`,
/// trying 18 inverse scales around `-nmax / max` and keeping the best `x^2`-weighted fit.
/// Writes `l + nmax` and returns the scale.
fn make_qx_quants(x: &[f32], nmax: i32, out: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        out[..x.len()].fill(0);
        return 0.0;
    }
    // The sums for one inverse scale, optionally writing the quants.
    let fit = |iscale: f32, out: Option<&mut [i8]>| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        let mut out = out;
        for (i, &v) in x.iter().enumerate() {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            if let Some(out) = out.as_deref_mut() {
                out[i] = (l + nmax) as i8;
            }
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        (sumlx, suml2)
    };
    let (sumlx, suml2) = fit(-(nmax as f32) / max, Some(&mut *out));
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale, None);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fit(iscale, Some(&mut *out));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Packs 256 2-bit quants as Q2_K/Q3_K store them (see `kquants::two_bits`).
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (n, chunk) in l.chunks_exact(128).enumerate() {
        for i in 0..32 {
            qs[32 * n + i] =
                chunk[i] | (chunk[i + 32] << 2) | (chunk[i + 64] << 4) | (chunk[i + 96] << 6);
        }
    }
    qs
}

/// `quantize_row_q2_K_ref`.
pub(crate) fn q2_k(src: &[f32], dst: &mut [BlockQ2K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    let search = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
            (scales[j], mins[j]) = search.quantize(xs, &weights, &mut l[16 * j..16 * j + 16]);
        }
        let max_scale = scales
            .iter()
            .fold(0.0f32, |m, &s| if s > m { s } else { m });
        let max_min = mins.iter().fold(0.0f32, |m, &s| if s > m { s } else { m });
        *y = BlockQ2K::zeroed();
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (sc, &s) in y.scales.iter_mut().zip(&scales) {
                *sc = nearest_int(iscale * s) as u8;
            }
            y.d = F16Le::from_f32(max_scale / 15.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (sc, &m) in y.scales.iter_mut().zip(&mins) {
                *sc |= (nearest_int(iscale * m) << 4) as u8;
            }
            y.dmin = F16Le::from_f32(max_min / 15.0);
        }
        for j in 0..16 {
            let d = y.d.to_f32() * f32::from(y.scales[j] & 0x0f);
            if d == 0.0 {
                continue;
            }
            let dm = y.dmin.to_f32() * f32::from(y.scales[j] >> 4);
            for i in 16 * j..16 * j + 16 {
                l[i] = nearest_int((x[i] + dm) / d).clamp(0, 3) as u8;
            }
        }
        y.qs = pack_2bit(&l);
    }
    Ok(())
}

/// Packs the sixteen 6-bit Q3_K scales (`l` in 0..64) into 12 bytes.
fn pack_q3k_scales(ls: &[u8; 16]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for (j, &l) in ls.iter().enumerate() {
        if j < 8 {
            q[j] = l & 0x0f;
        } else {
            q[j - 8] |= (l & 0x0f) << 4;
        }
        q[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
    }
    q
}

/// `quantize_row_q3_K_ref`.
pub(crate) fn q3_k(src: &[f32], dst: &mut [BlockQ3K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        *y = BlockQ3K::zeroed();
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let ls: [u8; 16] = std::array::from_fn(|j| {
                let l = nearest_int(iscale * scales[j]) as i8;
                (l.clamp(-32, 31) + 32) as u8
            });
            y.scales = pack_q3k_scales(&ls);
            y.d = F16Le::from_f32(1.0 / iscale);
        }
        for (j, sc) in crate::q3k_scales(&y.scales).into_iter().enumerate() {
            let d = y.d.to_f32() * f32::from(sc);
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = nearest_int(x[i] / d).clamp(-4, 3) as i8 + 4;
            }
        }
        // Bit e / 32 of hmask[e % 32] holds the high bit of element e.
        let mut low = [0u8; QK_K];
        for (e, &v) in l.iter().enumerate() {
            let v = v as u8;
            if v > 3 {
                y.hmask[e % 32] |= 1 << (e / 32);
            }
            low[e] = if v > 3 { v - 4 } else { v };
        }
        y.qs = pack_2bit(&low);
    }
    Ok(())
}

/// The sub-block scales and mins of a Q4_K/Q5_K super-block, searched with `search` using
/// ggml's weights `sqrt(mean(x^2)) + |x|`, then packed to 6 bits. Returns the packed
/// `(d, dmin, scales)` and leaves the search's quants in `l`.
fn kx_scales(x: &[f32], search: &Qkx2, l: &mut [u8; QK_K]) -> (F16Le, F16Le, [u8; 12]) {
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2: f32 = xs.iter().fold(0.0, |s, &v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = search.quantize(xs, &weights, &mut l[32 * j..32 * j + 32]);
    }
    let max_scale = scales
        .iter()
        .fold(0.0f32, |m, &s| if s > m { s } else { m });
    let max_min = mins.iter().fold(0.0f32, |m, &s| if s > m { s } else { m });
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = F16Le::from_f32(max_scale / 63.0);
    let dmin = F16Le::from_f32(max_min / 63.0);
    (d, dmin, packed)
}

/// Requantizes with the rounded Q4_K/Q5_K scales: `l = clamp(round((x + dmin m) / (d sc)))`.
/// Sub-blocks whose scale rounded to 0 keep the search's quants, as in ggml.
fn kx_requantize(x: &[f32], d: F16Le, dmin: F16Le, packed: &[u8; 12], nmax: i32, l: &mut [u8]) {
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, packed);
        let d = d.to_f32() * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
}

/// `quantize_row_q4_K_ref`.
pub(crate) fn q4_k(src: &[f32], dst: &mut [BlockQ4K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    let search = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0u8; QK_K];
        let (d, dmin, scales) = kx_scales(x, &search, &mut l);
        kx_requantize(x, d, dmin, &scales, 15, &mut l);
        (y.d, y.dmin, y.scales) = (d, dmin, scales);
        for (n, chunk) in l.chunks_exact(64).enumerate() {
            for i in 0..32 {
                y.qs[32 * n + i] = chunk[i] | (chunk[i + 32] << 4);
            }
        }
    }
    Ok(())
}

/// `quantize_row_q5_K_ref`.
pub(crate) fn q5_k(src: &[f32], dst: &mut [BlockQ5K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    let search = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0u8; QK_K];
        let (d, dmin, scales) = kx_scales(x, &search, &mut l);
        kx_requantize(x, d, dmin, &scales, 31, &mut l);
        (y.d, y.dmin, y.scales) = (d, dmin, scales);
        y.qh = [0; QK_K / 8];
        for (e, &v) in l.iter().enumerate() {
            // Bit e / 32 of qh[e % 32] is the fifth bit; nibbles as in Q4_K.
            y.qh[e % 32] |= (v >> 4) << (e / 32);
            let byte = &mut y.qs[32 * (e / 64) + e % 32];
            if e % 64 < 32 {
                *byte = v & 0x0f;
            } else {
                *byte |= (v & 0x0f) << 4;
            }
        }
    }
    Ok(())
}

/// `quantize_row_q6_K_ref`.
pub(crate) fn q6_k(src: &[f32], dst: &mut [BlockQ6K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_qx_quants(&x[16 * j..16 * j + 16], 32, &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > max_abs_scale {
                max_abs_scale = scales[j].abs();
                max_scale = scales[j];
            }
        }
        *y = BlockQ6K::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            continue;
        }
        let iscale = -128.0 / max_scale;
        y.d = F16Le::from_f32(1.0 / iscale);
        for (sc, &s) in y.scales.iter_mut().zip(&scales) {
            *sc = nearest_int(iscale * s).min(127) as i8;
        }
        for j in 0..16 {
            let d = y.d.to_f32() * f32::from(y.scales[j]);
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(x[i] / d).clamp(-32, 31) + 32) as i8;
            }
        }
        pack_q6k(&l, y);
    }
    Ok(())
}

/// Packs 256 six-bit quants (0..64) into Q6_K's `ql`/`qh` (see `BlockQ6K::quants`).
fn pack_q6k(l: &[i8; QK_K], y: &mut BlockQ6K) {
    for (n, chunk) in l.chunks_exact(128).enumerate() {
        let (ql, qh) = (
            &mut y.ql[64 * n..64 * n + 64],
            &mut y.qh[32 * n..32 * n + 32],
        );
        for i in 0..32 {
            let q = [chunk[i], chunk[i + 32], chunk[i + 64], chunk[i + 96]].map(|v| v as u8);
            ql[i] = (q[0] & 0x0f) | ((q[2] & 0x0f) << 4);
            ql[i + 32] = (q[1] & 0x0f) | ((q[3] & 0x0f) << 4);
            qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

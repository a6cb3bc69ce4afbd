//! Reference quantizers for the legacy types and the activation types Q8_0, Q8_1, Q8_K.
//!
//! Each mirrors ggml's `quantize_row_<type>_ref`, which is what ggml's CPU backend uses as
//! `from_float` on every platform without a SIMD version, and what llama-quantize writes. The
//! rounding differs from type to type and is kept exactly (see each function):
//! - Q8_0 / Q8_1 round with `roundf` (half away from zero) after multiplying by `1/d`;
//! - Q4_0 / Q4_1 / Q5_0 / Q5_1 add 8.5 / 0.5 / 16.5 / 0.5 and truncate toward zero;
//! - Q8_K and the K-quants use [`nearest_int`] (half to even) on `x * iscale`.

use crate::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8K, BlockQ8_0, BlockQ8_1, F16Le, GgmlType,
    QuantBlock, QuantError, QK_K,
};

/// ggml's `nearest_int`: round half to even. ggml adds 1.5 * 2^23 and reads the mantissa,
/// which equals `round_ties_even` for |x| < 2^22 (ggml asserts that range); outside it we
/// saturate instead of returning garbage.
pub fn nearest_int(x: f32) -> i32 {
    if x.abs() < 4_194_304.0 {
        // ggml's trick, which the compiler keeps inline (`round_ties_even` is a libm call
        // without SSE4.1, a tenth of a Q8_K quantization's time).
        let v = x + 12_582_912.0;
        (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
    } else {
        x.round_ties_even() as i32
    }
}

/// ggml's `MAX(a, b)` macro: `a > b ? a : b` (so a NaN `b` wins, unlike `f32::max`).
fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Checks that `src` fills `dst` exactly.
pub(crate) fn check_lengths<B: QuantBlock>(src: &[f32], dst: &[B]) -> Result<(), QuantError> {
    if !src.len().is_multiple_of(B::BLOCK_ELEMS) {
        return Err(QuantError::RaggedElems {
            ty: B::TYPE,
            len: src.len(),
            block_elems: B::BLOCK_ELEMS,
        });
    }
    if src.len() != dst.len() * B::BLOCK_ELEMS {
        return Err(QuantError::LengthMismatch {
            ty: B::TYPE,
            what: "destination",
            expected: src.len(),
            got: dst.len() * B::BLOCK_ELEMS,
        });
    }
    Ok(())
}

/// The signed value of largest magnitude (the first one on ties) and that magnitude; both 0.0
/// for an all-zero block. NaNs never win a comparison, as in ggml.
pub(crate) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// `(min, max)` starting from `(FLT_MAX, -FLT_MAX)`, as the Q4_1/Q5_1 quantizers do.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 when `d` is 0 (an all-zero block then quantizes to the zero point).
pub(crate) fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Packs 32 five-bit quants: low nibbles into `qs` (j / j + 16 paired), fifth bits into `qh`.
fn pack_5bit(q: &[u8; 32]) -> ([u8; 16], [u8; 4]) {
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for j in 0..16 {
        qs[j] = (q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4);
        qh |= u32::from((q[j] & 0x10) >> 4) << j;
        qh |= u32::from((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    (qs, qh.to_le_bytes())
}

/// `quantize_row_q4_0_ref`: `d = max / -8`, `q = min(15, trunc(x / d + 8.5))`.
pub(crate) fn q4_0(src: &[f32], dst: &mut [BlockQ4_0]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let d = signed_absmax(x).0 / -8.0;
        let id = inverse(d);
        y.d = F16Le::from_f32(d);
        for j in 0..16 {
            let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
            y.qs[j] = (q0 & 0x0f) | (q1 << 4);
        }
    }
    Ok(())
}

/// `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `q = min(15, trunc((x - min) / d + 0.5))`.
pub(crate) fn q4_1(src: &[f32], dst: &mut [BlockQ4_1]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        y.d = F16Le::from_f32(d);
        y.m = F16Le::from_f32(min);
        for j in 0..16 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
            y.qs[j] = (q0 & 0x0f) | (q1 << 4);
        }
    }
    Ok(())
}

/// `quantize_row_q5_0_ref`: `d = max / -16`, `q = min(31, trunc(x / d + 16.5))`.
pub(crate) fn q5_0(src: &[f32], dst: &mut [BlockQ5_0]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let d = signed_absmax(x).0 / -16.0;
        let id = inverse(d);
        y.d = F16Le::from_f32(d);
        let q: [u8; 32] = std::array::from_fn(|j| ((x[j] * id + 16.5) as i8).min(31) as u8);
        (y.qs, y.qh) = pack_5bit(&q);
    }
    Ok(())
}

/// `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `q = trunc((x - min) / d + 0.5)` (no clamp).
pub(crate) fn q5_1(src: &[f32], dst: &mut [BlockQ5_1]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        y.d = F16Le::from_f32(d);
        y.m = F16Le::from_f32(min);
        let q: [u8; 32] = std::array::from_fn(|j| ((x[j] - min) * id + 0.5) as u8);
        (y.qs, y.qh) = pack_5bit(&q);
    }
    Ok(())
}

/// The common core of Q8_0 and Q8_1: `d = amax / 127`, `q = roundf(x * (1/d))`.
fn q8_block(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0.0f32, |m, v| c_max(m, v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    (d, std::array::from_fn(|j| (x[j] * id).round() as i8))
}

/// `quantize_row_q8_0_ref`. Note `roundf`: ties go away from zero. ggml's AVX2/NEON
/// `quantize_row_q8_0` round ties to even instead; the two differ only on exact ties.
pub(crate) fn q8_0(src: &[f32], dst: &mut [BlockQ8_0]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let (d, qs) = q8_block(x);
        y.d = F16Le::from_f32(d);
        y.qs = qs;
    }
    Ok(())
}

/// `quantize_row_q8_1_ref`: as Q8_0, plus `s = sum(q) * d` (the f32 `d`, before its f16 rounding).
pub(crate) fn q8_1(src: &[f32], dst: &mut [BlockQ8_1]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(32).zip(dst) {
        let (d, qs) = q8_block(x);
        let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
        y.d = F16Le::from_f32(d);
        y.s = F16Le::from_f32(sum as f32 * d);
        y.qs = qs;
    }
    Ok(())
}

/// `quantize_row_q8_K_ref`: `iscale = -127 / max` (max the signed value of largest magnitude),
/// `q = min(127, nearest_int(x * iscale))`, `d = 1 / iscale`, `bsums` the sums of each 16.
/// An all-zero block gets `d = 0` and zero quants and sums (ggml leaves `bsums` unwritten).
pub(crate) fn q8_k(src: &[f32], dst: &mut [BlockQ8K]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let (max, amax) = signed_absmax(x);
        if amax == 0.0 {
            y.d = 0.0;
            y.qs = [0; QK_K];
            y.bsums = [0; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (sum, qs) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *sum = qs.iter().map(|&q| i16::from(q)).sum();
        }
        y.d = 1.0 / iscale;
    }
    Ok(())
}

impl QuantBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q8_K`: `d * q`.
    fn dequantize_block(&self, out: &mut [f32]) {
        for (o, &q) in out[..QK_K].iter_mut().zip(&self.qs) {
            *o = self.d * f32::from(q);
        }
    }

    /// ggml has no Q8_K x Q8_K dot; this one (`sumi * (dx * dy)` per block) keeps the trait
    /// total and serves tests.
    fn vec_dot(blocks: &[Self], act: &[Self]) -> f32 {
        crate::traits::assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut sumf = 0.0f32;
        for (x, y) in blocks.iter().zip(act) {
            let sumi: i32 =
                x.qs.iter()
                    .zip(&y.qs)
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum();
            sumf += sumi as f32 * (x.d * y.d);
        }
        sumf
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        q8_k(src, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pod;

    #[test]
    fn nearest_int_is_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.4999998), -2);
        assert_eq!(nearest_int(4194303.0), 4194303);
        assert_eq!(nearest_int(1e10), i32::MAX);
        assert_eq!(nearest_int(-1e10), i32::MIN);
        assert_eq!(nearest_int(f32::NAN), 0);
        // The fast path is round_ties_even wherever it applies.
        let mut bits = 0x3f00_0000u32;
        for _ in 0..200_000 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = f32::from_bits(bits & 0x4a7f_ffff | bits & 0x8000_0000);
            if x.is_finite() {
                assert_eq!(nearest_int(x), x.round_ties_even() as i32, "{x}");
            }
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut dst = [BlockQ8_0::zeroed(); 2];
        assert!(matches!(
            q8_0(&[0.0; 63], &mut dst),
            Err(QuantError::RaggedElems { len: 63, .. })
        ));
        assert!(matches!(
            q8_0(&[0.0; 32], &mut dst),
            Err(QuantError::LengthMismatch {
                expected: 32,
                got: 64,
                ..
            })
        ));
    }
}

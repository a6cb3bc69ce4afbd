//! The plain float types F32, F16 and BF16 as one-element "blocks".
//!
//! ggml pairs F16 weights with F16 activations and BF16 with BF16 (`vec_dot_type`), converts
//! both sides to f32, multiplies in f32 and accumulates in f64 (`ggml_float`) in its scalar
//! `ggml_vec_dot_f16` / `ggml_vec_dot_bf16` / `ggml_vec_dot_f32`. We mirror that.

use crate::traits::{assert_dot_len, assert_row_len};
use crate::{F16Le, GgmlType, Pod, QuantBlock, QuantError};

/// A bfloat16 stored as its two little-endian bytes (alignment 1, like [`F16Le`]).
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bf16Le(pub [u8; 2]);

// SAFETY: repr(transparent) over `[u8; 2]`: no padding, every bit pattern valid.
unsafe impl Pod for Bf16Le {}

impl Bf16Le {
    pub fn from_bits(bits: u16) -> Self {
        Bf16Le(bits.to_le_bytes())
    }

    pub fn to_bits(self) -> u16 {
        u16::from_le_bytes(self.0)
    }

    /// Rounds as ggml does ([`bf16_from_f32_ggml`]).
    pub fn from_f32(x: f32) -> Self {
        Self::from_bits(bf16_from_f32_ggml(x))
    }

    /// Exact widening: a bf16 is the top half of an f32.
    pub fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

impl std::fmt::Debug for Bf16Le {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}bf16", self.to_f32())
    }
}

/// f32 -> bf16 bits as ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, and NaNs
/// keep their sign and top payload bits with the quiet bit forced on (never rounded to inf).
pub fn bf16_from_f32_ggml(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// `sum(x[i] * y[i])` with f32 products and an f64 accumulator, as ggml's scalar float dots.
fn dot_f64_acc(x: impl Iterator<Item = f32>, y: impl Iterator<Item = f32>) -> f32 {
    x.zip(y).map(|(a, b)| f64::from(a * b)).sum::<f64>() as f32
}

/// Checks lengths for the float quantizers (which are infallible otherwise).
fn check_convert(ty: GgmlType, src: usize, dst: usize) -> Result<(), QuantError> {
    if src != dst {
        return Err(QuantError::LengthMismatch {
            ty,
            what: "destination",
            expected: src,
            got: dst,
        });
    }
    Ok(())
}

impl QuantBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const BLOCK_ELEMS: usize = 1;
    type VecDot = f32;
    const CAN_QUANTIZE: bool = true;

    fn dequantize_block(&self, out: &mut [f32]) {
        out[0] = *self;
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }

    /// Mirrors the scalar branch of `ggml_vec_dot_f32`.
    fn vec_dot(blocks: &[Self], act: &[f32]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        dot_f64_acc(blocks.iter().copied(), act.iter().copied())
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        check_convert(Self::TYPE, src.len(), dst.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }
}

impl QuantBlock for F16Le {
    const TYPE: GgmlType = GgmlType::F16;
    const BLOCK_ELEMS: usize = 1;
    type VecDot = F16Le;
    const CAN_QUANTIZE: bool = true;

    fn dequantize_block(&self, out: &mut [f32]) {
        out[0] = self.to_f32();
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        assert_row_len(Self::TYPE, blocks.len(), 1, out.len());
        for (x, y) in blocks.iter().zip(out) {
            *y = x.to_f32();
        }
    }

    /// Mirrors the scalar branch of `ggml_vec_dot_f16`.
    fn vec_dot(blocks: &[Self], act: &[F16Le]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        dot_f64_acc(
            blocks.iter().map(|h| h.to_f32()),
            act.iter().map(|h| h.to_f32()),
        )
    }

    /// `ggml_cpu_fp32_to_fp16`: round to nearest even.
    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        check_convert(Self::TYPE, src.len(), dst.len())?;
        for (x, y) in src.iter().zip(dst) {
            *y = F16Le::from_f32(*x);
        }
        Ok(())
    }
}

impl QuantBlock for Bf16Le {
    const TYPE: GgmlType = GgmlType::Bf16;
    const BLOCK_ELEMS: usize = 1;
    type VecDot = Bf16Le;
    const CAN_QUANTIZE: bool = true;

    fn dequantize_block(&self, out: &mut [f32]) {
        out[0] = self.to_f32();
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        assert_row_len(Self::TYPE, blocks.len(), 1, out.len());
        for (x, y) in blocks.iter().zip(out) {
            *y = x.to_f32();
        }
    }

    /// Mirrors the scalar tail of `ggml_vec_dot_bf16`.
    fn vec_dot(blocks: &[Self], act: &[Bf16Le]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        dot_f64_acc(
            blocks.iter().map(|h| h.to_f32()),
            act.iter().map(|h| h.to_f32()),
        )
    }

    /// `ggml_cpu_fp32_to_bf16`.
    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        check_convert(Self::TYPE, src.len(), dst.len())?;
        for (x, y) in src.iter().zip(dst) {
            *y = Bf16Le::from_f32(*x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_ggml() {
        assert_eq!(bf16_from_f32_ggml(1.0), 0x3f80);
        // 1 + 2^-8 is a tie between 1.0 (even) and 1 + 2^-7: rounds to even.
        assert_eq!(bf16_from_f32_ggml(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3 * 2^-8 is a tie between odd 0x3f81 and even 0x3f82.
        assert_eq!(bf16_from_f32_ggml(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(bf16_from_f32_ggml(f32::INFINITY), 0x7f80);
        assert_eq!(bf16_from_f32_ggml(f32::MAX), 0x7f80);
        // A signalling NaN whose payload is all below bit 16 stays a NaN.
        assert_eq!(bf16_from_f32_ggml(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(bf16_from_f32_ggml(f32::from_bits(0xffc0_0000)), 0xffc0);
        assert_eq!(Bf16Le::from_bits(0xc000).to_f32(), -2.0);
    }

    #[test]
    fn float_dots_accumulate_in_f64() {
        // In f32, 1e8 + 1 - 1e8 would lose the 1.
        let x = [1e8f32, 1.0, -1e8];
        let y = [1.0f32, 1.0, 1.0];
        assert_eq!(f32::vec_dot(&x, &y), 1.0);
        let h: Vec<F16Le> = [1.0f32, 2.0, 3.0].map(F16Le::from_f32).to_vec();
        assert_eq!(F16Le::vec_dot(&h, &h), 14.0);
        let b: Vec<Bf16Le> = [1.0f32, -2.0].map(Bf16Le::from_f32).to_vec();
        assert_eq!(Bf16Le::vec_dot(&b, &b), 5.0);
    }
}

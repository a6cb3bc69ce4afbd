//! The legacy 32-element types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: dequantize and dot.
//!
//! In every one of them element `j` of the first half sits in the low nibble of `qs[j]` and
//! element `j + 16` in the high nibble (Q8 types store plain bytes). The dot products sum
//! integer products per block and accumulate `sumi * scales` in f32, block after block, with the
//! multiplications in ggml's order (see the per-type comments: they differ).

use crate::traits::assert_dot_len;
use crate::{quantize, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::{GgmlType, QuantBlock, QuantError, QK4_0};

/// Splits packed nibbles into their 32 values (low nibbles first).
fn unpack_nibbles(qs: &[u8; 16]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for (j, &byte) in qs.iter().enumerate() {
        q[j] = byte & 0x0f;
        q[j + 16] = byte >> 4;
    }
    q
}

/// Adds the fifth bits from ggml's little-endian `qh` word: bit j belongs to element j.
fn unpack_5bit(qs: &[u8; 16], qh: [u8; 4]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = unpack_nibbles(qs);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> j) & 1) as u8) << 4;
    }
    q
}

/// The integer dot product of one block's quants with an activation block's.
fn isum<T: Copy + Into<i32>>(q: &[T; 32], act: &[i8; 32]) -> i32 {
    q.iter()
        .zip(act)
        .map(|(&a, &b)| a.into() * i32::from(b))
        .sum()
}

impl BlockQ4_0 {
    /// The signed quants `q - 8`, in element order.
    pub fn quants(&self) -> [i8; 32] {
        unpack_nibbles(&self.qs).map(|q| q as i8 - 8)
    }
}

impl BlockQ4_1 {
    /// The unsigned quants, in element order.
    pub fn quants(&self) -> [u8; 32] {
        unpack_nibbles(&self.qs)
    }
}

impl BlockQ5_0 {
    /// The signed quants `q - 16`, in element order.
    pub fn quants(&self) -> [i8; 32] {
        unpack_5bit(&self.qs, self.qh).map(|q| q as i8 - 16)
    }
}

impl BlockQ5_1 {
    /// The unsigned quants, in element order.
    pub fn quants(&self) -> [u8; 32] {
        unpack_5bit(&self.qs, self.qh)
    }
}

/// Implements `QuantBlock` for a legacy type: dequantize as `d * q (+ m)`, the given dot.
macro_rules! legacy_block {
    ($block:ty, $ty:expr, $vec_dot:ty, quantize = $quantize:path,
     dequant = |$b:ident, $q:ident| $value:expr,
     dot = |$x:ident, $y:ident, $sumi:ident| $term:expr) => {
        impl QuantBlock for $block {
            const TYPE: GgmlType = $ty;
            const BLOCK_ELEMS: usize = QK4_0;
            type VecDot = $vec_dot;
            const CAN_QUANTIZE: bool = true;

            fn dequantize_block(&self, out: &mut [f32]) {
                let $b = self;
                for (o, $q) in out[..QK4_0].iter_mut().zip(self.quants()) {
                    *o = $value;
                }
            }

            fn vec_dot(blocks: &[Self], act: &[$vec_dot]) -> f32 {
                assert_dot_len(Self::TYPE, blocks.len(), act.len());
                let mut sumf = 0.0f32;
                for ($x, $y) in blocks.iter().zip(act) {
                    let $sumi = isum(&$x.quants(), &$y.qs);
                    sumf += $term;
                }
                sumf
            }

            fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
                $quantize(src, dst)
            }
        }
    };
}

// dequantize_row_q4_0; ggml_vec_dot_q4_0_q8_0_generic multiplies (sumi * dx) * dy.
legacy_block!(
    BlockQ4_0,
    GgmlType::Q4_0,
    BlockQ8_0,
    quantize = quantize::q4_0,
    dequant = |b, q| f32::from(q) * b.d.to_f32(),
    dot = |x, y, sumi| sumi as f32 * x.d.to_f32() * y.d.to_f32()
);

// dequantize_row_q4_1; ggml_vec_dot_q4_1_q8_1_generic: (dx * dy) * sumi + mx * sy.
legacy_block!(
    BlockQ4_1,
    GgmlType::Q4_1,
    BlockQ8_1,
    quantize = quantize::q4_1,
    dequant = |b, q| f32::from(q) * b.d.to_f32() + b.m.to_f32(),
    dot = |x, y, sumi| (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32()
);

// dequantize_row_q5_0; ggml_vec_dot_q5_0_q8_0_generic: (dx * dy) * sumi.
legacy_block!(
    BlockQ5_0,
    GgmlType::Q5_0,
    BlockQ8_0,
    quantize = quantize::q5_0,
    dequant = |b, q| f32::from(q) * b.d.to_f32(),
    dot = |x, y, sumi| (x.d.to_f32() * y.d.to_f32()) * sumi as f32
);

// dequantize_row_q5_1; ggml_vec_dot_q5_1_q8_1_generic: (dx * dy) * sumi + mx * sy.
legacy_block!(
    BlockQ5_1,
    GgmlType::Q5_1,
    BlockQ8_1,
    quantize = quantize::q5_1,
    dequant = |b, q| f32::from(q) * b.d.to_f32() + b.m.to_f32(),
    dot = |x, y, sumi| (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32()
);

// dequantize_row_q8_0; ggml_vec_dot_q8_0_q8_0_generic: sumi * (dx * dy).
legacy_block!(
    BlockQ8_0,
    GgmlType::Q8_0,
    BlockQ8_0,
    quantize = quantize::q8_0,
    dequant = |b, q| f32::from(q) * b.d.to_f32(),
    dot = |x, y, sumi| sumi as f32 * (x.d.to_f32() * y.d.to_f32())
);

// Q8_1 has no dot of its own in ggml (it is only ever the activation side); we give it the
// Q8_0 formula so the trait is total. `s` plays no part in its values.
legacy_block!(
    BlockQ8_1,
    GgmlType::Q8_1,
    BlockQ8_1,
    quantize = quantize::q8_1,
    dequant = |b, q| f32::from(q) * b.d.to_f32(),
    dot = |x, y, sumi| sumi as f32 * (x.d.to_f32() * y.d.to_f32())
);

impl BlockQ8_0 {
    /// The quants, in element order (for symmetry with the other legacy blocks).
    pub fn quants(&self) -> [i8; 32] {
        self.qs
    }
}

impl BlockQ8_1 {
    /// The quants, in element order.
    pub fn quants(&self) -> [i8; 32] {
        self.qs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::F16Le;

    #[test]
    fn q5_0_bit_layout() {
        // Element 3 gets its fifth bit from qh bit 3, element 20 from bit 20 (high nibble of qs[4]).
        let mut b = BlockQ5_0 {
            d: F16Le::from_f32(1.0),
            qh: 0u32.to_le_bytes(),
            qs: [0; 16],
        };
        b.qh = ((1u32 << 3) | (1 << 20)).to_le_bytes();
        b.qs[3] = 0x0f;
        b.qs[4] = 0x20;
        let q = b.quants();
        assert_eq!(q[3], 31 - 16);
        assert_eq!(q[20], 0x12 - 16);
        assert_eq!(q[0], -16);
        let mut out = [0.0; 32];
        b.dequantize_block(&mut out);
        assert_eq!(out[3], 15.0);
        assert_eq!(out[20], 2.0);
    }

    #[test]
    fn q4_1_min_term_uses_q8_1_sum() {
        let w = BlockQ4_1 {
            d: F16Le::from_f32(0.5),
            m: F16Le::from_f32(-1.0),
            qs: [0x21; 16], // low nibbles 1, high nibbles 2
        };
        let mut a = BlockQ8_1 {
            d: F16Le::from_f32(0.25),
            s: F16Le::ZERO,
            qs: [4; 32],
        };
        a.s = F16Le::from_f32(0.25 * 4.0 * 32.0);
        // Values w: 16 x (0.5 - 1) and 16 x (1 - 1); activations all 1.0.
        assert_eq!(BlockQ4_1::vec_dot(&[w], &[a]), -8.0);
    }
}

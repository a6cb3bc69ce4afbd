//! The non-linear 4-bit types IQ4_NL (blocks of 32, Q8_0 activations) and IQ4_XS (super-blocks
//! of 256 with 6-bit sub-block scales, Q8_K activations).
//!
//! Both map each nibble through the same 16-entry codebook [`KVALUES_IQ4NL`] instead of using it
//! as a number, so the dots multiply codebook values, not quants, with the activations.

use crate::traits::assert_dot_len;
use crate::{BlockIq4Nl, BlockIq4Xs, BlockQ8K, BlockQ8_0};
use crate::{GgmlType, QuantBlock, QK4_NL, QK_K};

/// ggml's `kvalues_iq4nl`: the codebook of IQ4_NL and IQ4_XS.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Codebook values of 16 packed bytes: low nibbles are elements 0..16, high nibbles 16..32.
fn lookup32(qs: &[u8]) -> [i8; 32] {
    std::array::from_fn(|e| {
        let byte = qs[e % 16];
        let nib = if e < 16 { byte & 0x0f } else { byte >> 4 };
        KVALUES_IQ4NL[usize::from(nib)]
    })
}

/// `sum(a[i] * b[i])` over 32 bytes, in i32.
fn isum32(a: &[i8; 32], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

impl BlockIq4Nl {
    /// The codebook values (not the nibbles) in element order.
    pub fn values(&self) -> [i8; 32] {
        lookup32(&self.qs)
    }
}

impl BlockIq4Xs {
    /// The codebook values of all 256 elements, in element order (each 32 use 16 bytes of `qs`).
    pub fn values(&self) -> [i8; QK_K] {
        let mut out = [0i8; QK_K];
        for (sub, chunk) in out.chunks_exact_mut(32).enumerate() {
            chunk.copy_from_slice(&lookup32(&self.qs[16 * sub..16 * sub + 16]));
        }
        out
    }

    /// The signed scale (`6-bit value - 32`) of sub-block `ib` (0..8): low four bits from the
    /// nibbles of `scales_l`, top two bits from `scales_h` bits `2 ib`.
    pub fn scale(&self, ib: usize) -> i32 {
        let low = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
        let high = (u16::from_le_bytes(self.scales_h) >> (2 * ib)) & 3;
        (i32::from(low) | (i32::from(high) << 4)) - 32
    }
}

impl QuantBlock for BlockIq4Nl {
    const TYPE: GgmlType = GgmlType::Iq4Nl;
    const BLOCK_ELEMS: usize = QK4_NL;
    type VecDot = BlockQ8_0;

    /// `dequantize_row_iq4_nl`: `d * KVALUES_IQ4NL[q]`.
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, v) in out[..QK4_NL].iter_mut().zip(self.values()) {
            *o = d * f32::from(v);
        }
    }

    /// `ggml_vec_dot_iq4_nl_q8_0_generic`: `(dy * dx) * sumi` per block.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8_0]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut sumf = 0.0f32;
        for (x, y) in blocks.iter().zip(act) {
            let d = y.d.to_f32() * x.d.to_f32();
            sumf += d * isum32(&x.values(), &y.qs) as f32;
        }
        sumf
    }
}

impl QuantBlock for BlockIq4Xs {
    const TYPE: GgmlType = GgmlType::Iq4Xs;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;

    /// `dequantize_row_iq4_xs`: `d * (sc - 32) * KVALUES_IQ4NL[q]` per sub-block of 32.
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let values = self.values();
        for (ib, (o, v)) in out[..QK_K]
            .chunks_exact_mut(32)
            .zip(values.chunks_exact(32))
            .enumerate()
        {
            let dl = d * self.scale(ib) as f32;
            for (o, &v) in o.iter_mut().zip(v) {
                *o = dl * f32::from(v);
            }
        }
    }

    /// `ggml_vec_dot_iq4_xs_q8_K_generic`: `(dx * dy * (sc - 32)) * sumi` per sub-block of 32,
    /// accumulated straight into one f32.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut sumf = 0.0f32;
        for (x, y) in blocks.iter().zip(act) {
            let d4d8 = x.d.to_f32() * y.d;
            let values = x.values();
            for ib in 0..QK_K / 32 {
                let range = 32 * ib..32 * ib + 32;
                let mut v = [0i8; 32];
                v.copy_from_slice(&values[range.clone()]);
                let dl = d4d8 * x.scale(ib) as f32;
                sumf += dl * isum32(&v, &y.qs[range]) as f32;
            }
        }
        sumf
    }
}

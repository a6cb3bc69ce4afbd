//! The K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: dequantize and dot against Q8_K.
//!
//! Each block is a super-block of 256 elements in sub-blocks of 16 or 32, with a per-sub-block
//! integer scale (and min) times an f16 super-scale. The bit layouts are irregular, so every
//! block type first unpacks its quants into element order ([`BlockQ4K::quants`] & co.); the
//! dequantize and dot code then reads as the formula it implements.
//!
//! ggml's generic dots for Q3_K..Q6_K keep eight i32 lanes per block (lane `l` sums the
//! elements `e` with `e % 8 == l`) and eight f32 lane totals across the whole row, added up only
//! at the end ([`LaneAcc`]); Q2_K sums per sub-block. We keep those shapes, so the results match
//! ggml's scalar path bit for bit.

use crate::traits::assert_dot_len;
use crate::{kquantize, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::{GgmlType, QuantBlock, QuantError, QK_K};

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K
/// block. Sub-blocks 0..4 use the low six bits of bytes `j` and `j + 4`; sub-blocks 4..8 take
/// their low four bits from byte `j + 4` and their top two bits from the spare top bits of
/// bytes `j - 4` (scale) and `j` (min).
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The sixteen signed scales (`6-bit value - 32`) of a Q3_K block: low four bits in the nibbles
/// of bytes 0..8 (sub-blocks 0..8 low nibbles, 8..16 high nibbles), top two bits in bytes 8..12.
pub fn q3k_scales(q: &[u8; 12]) -> [i8; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 { q[j] & 0x0f } else { q[j - 8] >> 4 };
        let high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

/// The 2-bit field of element `e` in the Q2_K/Q3_K `qs` layout: each 128 elements use 32 bytes,
/// element `128 n + 32 j + l` sits at bits `2j` of byte `32 n + l`.
fn two_bits(qs: &[u8; 64], e: usize) -> u8 {
    let (n, j, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[32 * n + l] >> (2 * j)) & 3
}

/// The 4-bit field of element `e` in the Q4_K/Q5_K `qs` layout: each 64 elements use 32 bytes,
/// the first 32 in the low nibbles, the next 32 in the high nibbles.
fn nibble(qs: &[u8; 128], e: usize) -> u8 {
    let byte = qs[32 * (e / 64) + e % 32];
    if e % 64 < 32 {
        byte & 0x0f
    } else {
        byte >> 4
    }
}

impl BlockQ2K {
    /// The 2-bit quants (0..4) in element order.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|e| two_bits(&self.qs, e) as i8)
    }
}

impl BlockQ3K {
    /// The signed quants (-4..4) in element order: two low bits, minus 4 unless the element's
    /// bit in `hmask` is set (bit `e / 32` of byte `e % 32`).
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|e| {
            let high = (self.hmask[e % 32] >> (e / 32)) & 1;
            two_bits(&self.qs, e) as i8 - if high == 1 { 0 } else { 4 }
        })
    }
}

impl BlockQ4K {
    /// The 4-bit quants (0..16) in element order.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|e| nibble(&self.qs, e) as i8)
    }
}

impl BlockQ5K {
    /// The 5-bit quants (0..32) in element order: a nibble plus bit `e / 32` of `qh[e % 32]`.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|e| {
            let high = (self.qh[e % 32] >> (e / 32)) & 1;
            (nibble(&self.qs, e) | (high << 4)) as i8
        })
    }
}

impl BlockQ6K {
    /// The signed quants (-32..32) in element order. Per 128 elements: `ql` has 64 bytes (low
    /// nibbles: elements 0..64, high nibbles: 64..128), `qh` 32 bytes of four 2-bit fields.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|e| {
            let (n, r) = (e / 128, e % 128);
            let l = r % 32;
            let low_byte = self.ql[64 * n + r % 64];
            let low = if r < 64 {
                low_byte & 0x0f
            } else {
                low_byte >> 4
            };
            let high = (self.qh[32 * n + l] >> (2 * (r / 32))) & 3;
            (low | (high << 4)) as i8 - 32
        })
    }
}

/// ggml's eight-lane accumulator for the K-quant dots: per block, `d * lanes[l]` goes into lane
/// total `l`; the min corrections go straight into `sumf`; the lanes are added at the end.
struct LaneAcc {
    sums: [f32; 8],
    sumf: f32,
}

impl LaneAcc {
    fn new() -> Self {
        LaneAcc {
            sums: [0.0; 8],
            sumf: 0.0,
        }
    }

    fn add_lanes(&mut self, d: f32, lanes: [i32; 8]) {
        for (s, &v) in self.sums.iter_mut().zip(&lanes) {
            *s += d * v as f32;
        }
    }

    fn finish(self) -> f32 {
        self.sums.iter().fold(self.sumf, |acc, &s| acc + s)
    }
}

/// `lanes[e % 8] += scale(e) * q[e] * q8[e]` over one super-block, in i32 like ggml's `aux32`
/// (its i16 `aux16` products cannot overflow: |q| <= 32 and |q8| <= 128).
fn scaled_lanes(q: &[i8; QK_K], q8: &[i8; QK_K], scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (e, (&a, &b)) in q.iter().zip(q8).enumerate() {
        lanes[e % 8] += scale(e) * (i32::from(a) * i32::from(b));
    }
    lanes
}

/// `sum(bsums[j] * mins[j / 2])`: the Q8_K sums of 16 times the weight mins of 32.
fn min_correction(bsums: &[i16; 16], mins: &[u8; 8]) -> i32 {
    bsums
        .iter()
        .enumerate()
        .map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2]))
        .sum()
}

impl QuantBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q2_K`: `d * (sc & 15) * q - dmin * (sc >> 4)` per sub-block of 16.
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        for (e, (o, q)) in out[..QK_K].iter_mut().zip(self.quants()).enumerate() {
            let sc = self.scales[e / 16];
            let (dl, ml) = (d * f32::from(sc & 0x0f), min * f32::from(sc >> 4));
            *o = dl * f32::from(q) - ml;
        }
    }

    /// `ggml_vec_dot_q2_K_q8_K_generic`.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut sumf = 0.0f32;
        for (x, y) in blocks.iter().zip(act) {
            let summs: i32 = y
                .bsums
                .iter()
                .zip(&x.scales)
                .map(|(&s, &sc)| i32::from(s) * i32::from(sc >> 4))
                .sum();
            let dall = y.d * x.d.to_f32();
            let dmin = y.d * x.dmin.to_f32();
            let q = x.quants();
            let mut isum = 0i32;
            for (sub, sc) in x.scales.iter().enumerate() {
                let range = 16 * sub..16 * sub + 16;
                let isuml: i32 = q[range.clone()]
                    .iter()
                    .zip(&y.qs[range])
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum();
                isum += i32::from(sc & 0x0f) * isuml;
            }
            sumf += dall * isum as f32 - dmin * summs as f32;
        }
        sumf
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        kquantize::q2_k(src, dst)
    }
}

impl QuantBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q3_K`: `d * (sc - 32) * q` per sub-block of 16.
    fn dequantize_block(&self, out: &mut [f32]) {
        let d_all = self.d.to_f32();
        let scales = q3k_scales(&self.scales);
        for (e, (o, q)) in out[..QK_K].iter_mut().zip(self.quants()).enumerate() {
            let dl = d_all * f32::from(scales[e / 16]);
            *o = dl * f32::from(q);
        }
    }

    /// `ggml_vec_dot_q3_K_q8_K_generic`.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut acc = LaneAcc::new();
        for (x, y) in blocks.iter().zip(act) {
            let scales = q3k_scales(&x.scales);
            let lanes = scaled_lanes(&x.quants(), &y.qs, |e| i32::from(scales[e / 16]));
            acc.add_lanes(x.d.to_f32() * y.d, lanes);
        }
        acc.finish()
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        kquantize::q3_k(src, dst)
    }
}

/// Dequantizes a Q4_K/Q5_K block: `d * sc * q - dmin * m` per sub-block of 32.
fn dequantize_4k5k(d: f32, min: f32, scales: &[u8; 12], q: &[i8; QK_K], out: &mut [f32]) {
    for (e, (o, &q)) in out[..QK_K].iter_mut().zip(q).enumerate() {
        let (sc, m) = scale_min_k4(e / 32, scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        *o = d1 * f32::from(q) - m1;
    }
}

/// The Q4_K/Q5_K dot of ggml's `ggml_vec_dot_q{4,5}_K_q8_K_generic`, given the unpacker.
fn vec_dot_4k5k<B>(
    blocks: &[B],
    act: &[BlockQ8K],
    parts: impl Fn(&B) -> (f32, f32, [u8; 12], [i8; QK_K]),
) -> f32 {
    let mut acc = LaneAcc::new();
    for (x, y) in blocks.iter().zip(act) {
        let (d, dmin, packed, q) = parts(x);
        let (mut scales, mut mins) = ([0u8; 8], [0u8; 8]);
        for j in 0..8 {
            (scales[j], mins[j]) = scale_min_k4(j, &packed);
        }
        let sumi = min_correction(&y.bsums, &mins);
        let lanes = scaled_lanes(&q, &y.qs, |e| i32::from(scales[e / 32]));
        acc.add_lanes(d * y.d, lanes);
        acc.sumf -= dmin * y.d * sumi as f32;
    }
    acc.finish()
}

impl QuantBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q4_K`.
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        dequantize_4k5k(d, min, &self.scales, &self.quants(), out);
    }

    /// `ggml_vec_dot_q4_K_q8_K_generic`.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        vec_dot_4k5k(blocks, act, |x| {
            (x.d.to_f32(), x.dmin.to_f32(), x.scales, x.quants())
        })
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        kquantize::q4_k(src, dst)
    }
}

impl QuantBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q5_K`.
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        dequantize_4k5k(d, min, &self.scales, &self.quants(), out);
    }

    /// `ggml_vec_dot_q5_K_q8_K_generic`.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        vec_dot_4k5k(blocks, act, |x| {
            (x.d.to_f32(), x.dmin.to_f32(), x.scales, x.quants())
        })
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        kquantize::q5_k(src, dst)
    }
}

impl QuantBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6K;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

    /// `dequantize_row_q6_K`: `(d * sc) * q` per sub-block of 16, sc a signed byte.
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (e, (o, q)) in out[..QK_K].iter_mut().zip(self.quants()).enumerate() {
            *o = d * f32::from(self.scales[e / 16]) * f32::from(q);
        }
    }

    /// `ggml_vec_dot_q6_K_q8_K_generic`.
    fn vec_dot(blocks: &[Self], act: &[BlockQ8K]) -> f32 {
        assert_dot_len(Self::TYPE, blocks.len(), act.len());
        let mut acc = LaneAcc::new();
        for (x, y) in blocks.iter().zip(act) {
            let lanes = scaled_lanes(&x.quants(), &y.qs, |e| i32::from(x.scales[e / 16]));
            acc.add_lanes(x.d.to_f32() * y.d, lanes);
        }
        acc.finish()
    }

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        kquantize::q6_k(src, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's word-level unpacking of the Q3_K scales (`kmask1`/`kmask2`), for comparison.
    fn q3k_scales_ggml(q: &[u8; 12]) -> [i8; 16] {
        let mut aux = [0u32; 4];
        for (i, w) in aux.iter_mut().take(3).enumerate() {
            *w = u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
        }
        let (k1, k2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
        let tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
        aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
        aux[0] = (aux[0] & k2) | ((tmp & k1) << 4);
        aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
        let bytes: Vec<u8> = aux.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::array::from_fn(|j| bytes[j] as i8 - 32)
    }

    /// ggml's word-level unpacking of the Q4_K scales and mins (`kmask1..3`), for comparison.
    fn k4_scales_ggml(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
        let mut u = [0u32; 4];
        for (i, w) in u.iter_mut().take(3).enumerate() {
            *w = u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
        }
        let (k1, k2, k3) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
        u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
        let uaux = u[1] & k1;
        u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
        u[2] = uaux;
        u[0] &= k1;
        let b: Vec<u8> = u.iter().flat_map(|w| w.to_le_bytes()).collect();
        (
            std::array::from_fn(|j| b[j]),
            std::array::from_fn(|j| b[8 + j]),
        )
    }

    #[test]
    fn scale_unpacking_matches_ggml_word_tricks() {
        let mut state = 0x1234_5678u32;
        for _ in 0..1000 {
            let q: [u8; 12] = std::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            });
            assert_eq!(q3k_scales(&q), q3k_scales_ggml(&q));
            let (sc, m) = k4_scales_ggml(&q);
            for j in 0..8 {
                assert_eq!(scale_min_k4(j, &q), (sc[j], m[j]));
            }
        }
    }
}

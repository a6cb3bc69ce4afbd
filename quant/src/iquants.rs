//! The non-linear 4-bit types IQ4_NL (blocks of 32, Q8_0 activations) and IQ4_XS (super-blocks
//! of 256 with 6-bit sub-block scales, Q8_K activations).
//!
//! Both map each nibble through the same 16-entry codebook [`KVALUES_IQ4NL`] instead of using it
//! as a number, so the dots multiply codebook values, not quants, with the activations.

use crate::kquantize::GROUP_MAX_EPS;
use crate::quantize::{check_lengths, inverse, nearest_int, signed_absmax};
use crate::traits::assert_dot_len;
use crate::{BlockIq4Nl, BlockIq4Xs, BlockQ8K, BlockQ8_0, F16Le};
use crate::{GgmlType, QuantBlock, QuantError, QK4_NL, QK_K};

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
    const CAN_QUANTIZE: bool = true;

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

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        quantize_iq4_nl(src, dst)
    }
}

impl QuantBlock for BlockIq4Xs {
    const TYPE: GgmlType = GgmlType::Iq4Xs;
    const BLOCK_ELEMS: usize = QK_K;
    type VecDot = BlockQ8K;
    const CAN_QUANTIZE: bool = true;

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

    fn quantize(src: &[f32], dst: &mut [Self]) -> Result<(), QuantError> {
        quantize_iq4_xs(src, dst)
    }
}

/// ggml's `best_index_int8` over the codebook: the index of the nearest value, the upper one on
/// ties (a NaN lands on the last index).
fn best_index(x: f32) -> u8 {
    let v = |i: usize| f32::from(KVALUES_IQ4NL[i]);
    if x <= v(0) {
        return 0;
    }
    if x >= v(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < v(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - v(mu - 1) < v(mu) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// `(sum w q x, sum w q^2)` with `w = x^2` and `q` the codebook value nearest `id * x`.
fn iq4_fit(xb: &[f32], id: f32, mut out: Option<&mut [u8]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for (j, &x) in xb.iter().enumerate() {
        let idx = best_index(id * x);
        if let Some(out) = out.as_deref_mut() {
            out[j] = idx;
        }
        let q = f32::from(KVALUES_IQ4NL[usize::from(idx)]);
        let w = x * x;
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The per-32 scale search of ggml's `quantize_row_iq4_nl_impl` (without importance weights):
/// start from `max / -127` (sign flipped when `ntry > 0`), take the least-squares scale for the
/// resulting indices, then try `2 ntry + 1` other inverse scales keeping the best scale (but not
/// their indices). An all-zero block returns 0 and leaves `l` untouched, as ggml does.
fn iq4_block_scale(xb: &[f32], ntry: i32, l: &mut [u8]) -> f32 {
    let (max, amax) = signed_absmax(xb);
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = KVALUES_IQ4NL[0];
    let d = if ntry > 0 {
        -max / f32::from(v0)
    } else {
        max / f32::from(v0)
    };
    let (sumqx, sumq2) = iq4_fit(xb, 1.0 / d, Some(l));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -ntry..=ntry {
        let id = (itry + i32::from(v0)) as f32 / max;
        let (sumqx, sumq2) = iq4_fit(xb, id, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs 32 indices: low nibbles elements 0..16, high nibbles 16..32.
fn pack_nibbles(l: &[u8]) -> [u8; 16] {
    std::array::from_fn(|j| l[j] | (l[j + 16] << 4))
}

/// `quantize_row_iq4_nl_ref`. The index buffer lives across blocks: ggml does not rewrite it
/// for an all-zero block, whose (irrelevant, since d = 0) nibbles repeat the previous block's.
fn quantize_iq4_nl(src: &[f32], dst: &mut [BlockIq4Nl]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    let mut l = [0u8; QK4_NL];
    for (x, y) in src.chunks_exact(QK4_NL).zip(dst) {
        let d = iq4_block_scale(x, -1, &mut l);
        y.d = F16Le::from_f32(d);
        y.qs = pack_nibbles(&l);
    }
    Ok(())
}

/// ggml's `quantize_iq4_nl` without importance weights (`quantize_row_iq4_nl_impl` with
/// `ntry = 7`), which `ggml_quantize_chunk`, hence llama-quantize, uses for IQ4_NL weights: the
/// scale search of [`iq4_block_scale`] 7 tries each way, then every index chosen again with the
/// found scale. The row function `quantize_row_iq4_nl_ref` (the trait's `quantize`) searches none,
/// so the two give different bytes. `dst` holds exactly the row's blocks.
pub fn quantize_iq4_nl_chunk(src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let dst = crate::blocks_from_bytes_mut::<BlockIq4Nl>(dst)?;
    check_lengths(src, dst)?;
    let mut l = [0u8; QK4_NL];
    for (x, y) in src.chunks_exact(QK4_NL).zip(dst) {
        let d = iq4_block_scale(x, 7, &mut l);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (l, &v) in l.iter_mut().zip(x) {
            *l = best_index(id * v);
        }
        y.d = F16Le::from_f32(d);
        y.qs = pack_nibbles(&l);
    }
    Ok(())
}

/// `quantize_row_iq4_xs_ref`: per-32 scales as IQ4_NL (with 7 tries each way), quantized to six
/// bits against `d = -max_scale / 32`, then every index chosen again with its rounded scale.
fn quantize_iq4_xs(src: &[f32], dst: &mut [BlockIq4Xs]) -> Result<(), QuantError> {
    check_lengths(src, dst)?;
    for (x, y) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 32];
        let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
        for (ib, s) in scales.iter_mut().enumerate() {
            *s = iq4_block_scale(&x[32 * ib..32 * ib + 32], 7, &mut l[32 * ib..32 * ib + 32]);
            if s.abs() > amax_scale {
                amax_scale = s.abs();
                max_scale = *s;
            }
        }
        let d = -max_scale / 32.0;
        let id = inverse(d);
        let (mut scales_h, mut scales_l) = (0u16, [0u8; QK_K / 64]);
        for (ib, &s) in scales.iter().enumerate() {
            let ls = nearest_int(id * s).clamp(-32, 31);
            let idl = inverse(d * ls as f32);
            for j in 32 * ib..32 * ib + 32 {
                l[j] = best_index(idl * x[j]);
            }
            let ls = (ls + 32) as u8;
            scales_l[ib / 2] |= (ls & 0x0f) << (4 * (ib % 2));
            scales_h |= u16::from(ls >> 4) << (2 * ib);
        }
        y.d = F16Le::from_f32(d);
        y.scales_h = scales_h.to_le_bytes();
        y.scales_l = scales_l;
        for (i, chunk) in l.chunks_exact(32).enumerate() {
            y.qs[16 * i..16 * i + 16].copy_from_slice(&pack_nibbles(chunk));
        }
    }
    Ok(())
}

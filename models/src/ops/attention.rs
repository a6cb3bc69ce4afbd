//! Causal multi-head attention over the KV cache, with grouped-query heads.
//!
//! Mirrors what llama.cpp computes on the CPU: the query is rounded to the cache's element type
//! before the `q·k` dot (ggml converts it to the K type's `vec_dot_type`), scores are scaled by
//! `1/sqrt(head_dim)`, the softmax is in f32 with the max subtracted, and values are summed in f32.
//! Batch and single-token paths run the very same code per (token, head), so a prompt processed in
//! one batch and the same tokens fed one by one give the same numbers.

use half::f16;
use rayon::prelude::*;

use crate::kv_cache::Rows;

/// Head layout of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

impl AttnShape {
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// `out[t] = softmax(q[t]·K[..=pos0+t] * scale) · V[..=pos0+t]` for each token `t` of the batch.
///
/// `q` holds `n_tokens` rows of `q_dim`; the cache rows for positions `0..pos0 + n_tokens` must
/// already be written. `out` has the shape of `q`.
///
/// The softmax is computed online, one key at a time, as ggml's CPU flash attention
/// (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`) does; with an f16 cache the running
/// value sum is kept in f16 exactly as there, so hearth lands on llama.cpp's numbers.
pub fn attention(
    q: &[f32],
    keys: &Rows,
    values: &Rows,
    shape: AttnShape,
    pos0: usize,
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let group = shape.n_head / shape.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(hd)
        .zip(q.par_chunks(hd))
        .enumerate()
        .for_each_init(
            || (vec![0.0f32; hd], vec![f16::ZERO; hd]),
            |(qh, acc16), (idx, (out_h, q_h))| {
                let (t, h) = (idx / shape.n_head, idx % shape.n_head);
                let kv_off = (h / group) * hd;
                let n_kv = pos0 + t + 1;
                round_like(keys, q_h, qh);
                let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
                out_h.fill(0.0);
                acc16.fill(f16::ZERO);
                for p in 0..n_kv {
                    let at = p * shape.kv_dim() + kv_off;
                    let s = dot_row(keys, at, qh) * scale;
                    let (mut ms, mut vs) = (1.0f32, 1.0f32);
                    if s > max {
                        ms = (max - s).exp();
                        max = s;
                        scale_acc(values, out_h, acc16, ms);
                    } else {
                        vs = (s - max).exp();
                    }
                    mad_acc(values, at, vs, out_h, acc16);
                    sum = sum * ms + vs;
                }
                if let Rows::F16(_) = values {
                    for (o, a) in out_h.iter_mut().zip(acc16.iter()) {
                        *o = a.to_f32();
                    }
                }
                let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                for o in out_h.iter_mut() {
                    *o *= inv;
                }
            },
        );
}

/// Scale the running value sum by `ms` (a new maximum was found).
fn scale_acc(values: &Rows, acc32: &mut [f32], acc16: &mut [f16], ms: f32) {
    match values {
        Rows::F32(_) => acc32.iter_mut().for_each(|a| *a *= ms),
        Rows::F16(_) => acc16
            .iter_mut()
            .for_each(|a| *a = f16::from_f32(a.to_f32() * ms)),
    }
}

/// `acc += vs * v[at..]`, in the accumulator matching the cache type.
fn mad_acc(values: &Rows, at: usize, vs: f32, acc32: &mut [f32], acc16: &mut [f16]) {
    let n = acc32.len();
    match values {
        Rows::F32(v) => {
            for (a, x) in acc32.iter_mut().zip(&v[at..at + n]) {
                *a += x * vs;
            }
        }
        Rows::F16(v) => {
            for (a, x) in acc16.iter_mut().zip(&v[at..at + n]) {
                *a = f16::from_f32(a.to_f32() + x.to_f32() * vs);
            }
        }
    }
}

/// Round the query to the precision of the stored keys, as ggml's `from_float` does.
fn round_like(keys: &Rows, q: &[f32], dst: &mut [f32]) {
    match keys {
        Rows::F32(_) => dst.copy_from_slice(q),
        Rows::F16(_) => {
            for (d, &s) in dst.iter_mut().zip(q) {
                *d = f16::from_f32(s).to_f32();
            }
        }
    }
}

fn dot_row(rows: &Rows, at: usize, q: &[f32]) -> f32 {
    match rows {
        Rows::F32(v) => v[at..at + q.len()].iter().zip(q).map(|(a, b)| a * b).sum(),
        Rows::F16(v) => v[at..at + q.len()]
            .iter()
            .zip(q)
            .map(|(a, b)| a.to_f32() * b)
            .sum(),
    }
}

/// Numerically stable softmax in f32.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut x = vec![1.0f32, 2.0, 3.0, -1e9];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[3] == 0.0);
    }

    #[test]
    fn single_position_returns_its_value_and_groups_share_kv() {
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 2,
        };
        let keys = Rows::F32(vec![1.0, 0.0, 0.0, 1.0]);
        let values = Rows::F32(vec![5.0, 6.0, 7.0, 8.0]);
        let q = vec![0.3f32; 8];
        let mut out = vec![0.0; 8];
        attention(&q, &keys, &values, shape, 0, &mut out);
        assert_eq!(out, vec![5.0, 6.0, 5.0, 6.0, 7.0, 8.0, 7.0, 8.0]);
    }

    #[test]
    fn causal_mask_in_a_batch() {
        let shape = AttnShape {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 1,
        };
        // Two positions; the first token must not see the second value.
        let keys = Rows::F32(vec![1.0, 1.0]);
        let values = Rows::F32(vec![2.0, 4.0]);
        let mut out = vec![0.0; 2];
        attention(&[1.0, 1.0], &keys, &values, shape, 0, &mut out);
        assert_eq!(out[0], 2.0);
        assert!((out[1] - 3.0).abs() < 1e-6);
    }
}

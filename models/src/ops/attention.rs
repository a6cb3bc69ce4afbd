//! Causal multi-head attention over the KV cache, with grouped-query heads.
//!
//! Mirrors what llama.cpp computes on the CPU: the query is converted to the K type's
//! `vec_dot_type` before the `q·k` dot (f16 for an f16 cache, Q8_0 blocks for a Q8_0 cache, where
//! the dot is `vec_dot_q8_0_q8_0` through hearth-simd's kernel table), scores are scaled by
//! `1/sqrt(head_dim)`, the softmax is in f32 with the max subtracted, and values are summed in f32
//! (f16 for an f16 cache; Q8_0 values are dequantized to f32 first). A rotated Q8_0 cache (see
//! `kv_cache`) gets the query rotated like its keys and the output rotated back like its values,
//! as llama.cpp's `build_attn` does around the attention. Batch and single-token paths
//! run the very same code per (token, head), so a prompt processed in one batch and the same
//! tokens fed one by one give the same numbers.

use half::f16;
use hearth_quant::{blocks_as_bytes, GgmlType, QK8_0};
use hearth_simd::MatKernels;
use rayon::prelude::*;

use crate::kv_cache::{hadamard, Rows};

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

/// Alignment hearth-simd asks of an activation row.
const ACT_ALIGN: usize = 16;

/// One worker's buffers, reused across the (token, head) pairs it takes.
struct Work {
    /// The query rounded like the keys (f32 and f16 caches).
    qh: Vec<f32>,
    /// The running value sum of an f16 cache (ggml's `VKQ16`).
    acc16: Vec<f16>,
    /// A dequantized value row (ggml's `V32`).
    v32: Vec<f32>,
    /// The query as Q8_0 blocks, at a 16-byte aligned offset (ggml's `Q_q`).
    qq: Vec<u8>,
}

impl Work {
    fn new(hd: usize) -> Work {
        Work {
            qh: vec![0.0; hd],
            acc16: vec![f16::ZERO; hd],
            v32: vec![0.0; hd],
            qq: vec![0; q8_0_bytes(hd) + ACT_ALIGN],
        }
    }

    /// The rotated query and the aligned query-blocks slice, borrowed together.
    fn rotated_query(&mut self, hd: usize) -> (&[f32], &mut [u8]) {
        let off = self.qq.as_ptr().align_offset(ACT_ALIGN);
        (&self.qh, &mut self.qq[off..off + q8_0_bytes(hd)])
    }

    /// The aligned query-blocks slice of `qq`.
    fn qq(&mut self, hd: usize) -> &mut [u8] {
        let off = self.qq.as_ptr().align_offset(ACT_ALIGN);
        &mut self.qq[off..off + q8_0_bytes(hd)]
    }
}

fn q8_0_bytes(n: usize) -> usize {
    n.div_ceil(QK8_0) * GgmlType::Q8_0.block_bytes()
}

/// The Q8_0·Q8_0 kernels, whose `vec_dot_type` is Q8_0 itself (as in ggml).
fn q8_0_kernels() -> &'static MatKernels {
    let k = hearth_simd::mat_kernels(GgmlType::Q8_0).expect("hearth-simd multiplies Q8_0");
    debug_assert_eq!(k.vec_dot_type, GgmlType::Q8_0);
    k
}

/// `out[t] = softmax(q[t]·K[..=pos0+t] * scale) · V[..=pos0+t]` for each token `t` of the batch.
///
/// `q` holds `n_tokens` rows of `q_dim`; the cache rows for positions `0..pos0 + n_tokens` must
/// already be written. `out` has the shape of `q`. A Q8_0 cache needs `head_dim` a multiple of 32
/// (see `KvCache::check`).
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
    let q8 = matches!(keys, Rows::Q8_0 { .. }).then(q8_0_kernels);
    let (k_rot, v_rot) = (keys.rotation(), values.rotation());
    if matches!(keys, Rows::Q8_0 { .. }) || matches!(values, Rows::Q8_0 { .. }) {
        assert_eq!(hd % QK8_0, 0, "Q8_0 cache with head size {hd}");
    }
    out.par_chunks_mut(hd)
        .zip(q.par_chunks(hd))
        .enumerate()
        .for_each_init(
            || Work::new(hd),
            |w, (idx, (out_h, q_h))| {
                let (t, h) = (idx / shape.n_head, idx % shape.n_head);
                let kv_off = (h / group) * hd;
                let n_kv = pos0 + t + 1;
                match q8 {
                    Some(k) if k_rot > 0 => {
                        w.qh.copy_from_slice(q_h);
                        hadamard(&mut w.qh, k_rot);
                        let (qh, qq) = w.rotated_query(hd);
                        (k.quantize_act)(qh, qq);
                    }
                    Some(k) => (k.quantize_act)(q_h, w.qq(hd)),
                    None => round_like(keys, q_h, &mut w.qh),
                }
                let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
                out_h.fill(0.0);
                w.acc16.fill(f16::ZERO);
                for p in 0..n_kv {
                    let at = p * shape.kv_dim() + kv_off;
                    let s = match (q8, keys) {
                        (Some(k), Rows::Q8_0 { blocks: b, .. }) => {
                            let row = blocks_as_bytes(&b[at / QK8_0..(at + hd) / QK8_0]);
                            (k.vec_dot)(row, w.qq(hd))
                        }
                        _ => dot_row(keys, at, &w.qh),
                    } * scale;
                    let (mut ms, mut vs) = (1.0f32, 1.0f32);
                    if s > max {
                        ms = (max - s).exp();
                        max = s;
                        scale_acc(values, out_h, &mut w.acc16, ms);
                    } else {
                        vs = (s - max).exp();
                    }
                    mad_acc(values, at, vs, out_h, &mut w.acc16, &mut w.v32);
                    sum = sum * ms + vs;
                }
                if let Rows::F16(_) = values {
                    for (o, a) in out_h.iter_mut().zip(w.acc16.iter()) {
                        *o = a.to_f32();
                    }
                }
                let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                for o in out_h.iter_mut() {
                    *o *= inv;
                }
                if v_rot > 0 {
                    hadamard(out_h, v_rot);
                }
            },
        );
}

/// Scale the running value sum by `ms` (a new maximum was found).
fn scale_acc(values: &Rows, acc32: &mut [f32], acc16: &mut [f16], ms: f32) {
    match values {
        Rows::F32(_) | Rows::Q8_0 { .. } => acc32.iter_mut().for_each(|a| *a *= ms),
        Rows::F16(_) => acc16
            .iter_mut()
            .for_each(|a| *a = f16::from_f32(a.to_f32() * ms)),
    }
}

/// `acc += vs * v[at..]`, in the accumulator matching the cache type (`v32`: scratch for a
/// dequantized row).
fn mad_acc(
    values: &Rows,
    at: usize,
    vs: f32,
    acc32: &mut [f32],
    acc16: &mut [f16],
    v32: &mut [f32],
) {
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
        Rows::Q8_0 { .. } => {
            values.read(at, v32);
            for (a, x) in acc32.iter_mut().zip(v32.iter()) {
                *a += x * vs;
            }
        }
    }
}

/// Round the query to the precision of the stored keys, as ggml's `from_float` does (f32 and
/// f16 caches; a Q8_0 cache quantizes the query to blocks instead).
fn round_like(keys: &Rows, q: &[f32], dst: &mut [f32]) {
    match keys {
        Rows::F32(_) | Rows::Q8_0 { .. } => dst.copy_from_slice(q),
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
        Rows::Q8_0 { .. } => unreachable!("Q8_0 keys go through the Q8_0 kernels"),
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
    use crate::kv_cache::CacheType;

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

    /// Deterministic pseudo-random values in [-amp, amp).
    fn noise(n: usize, seed: u64, amp: f32) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    fn cache_of(ty: CacheType, data: &[f32]) -> Rows {
        let mut r = Rows::new(ty, data.len());
        r.write(0, data);
        r
    }

    /// A Q8_0 cache lands near the f32 cache on random data (batch of 3 after 5 cached positions).
    #[test]
    fn q8_0_cache_close_to_f32_cache() {
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
        };
        let (pos0, n) = (5, 3);
        let kv = (pos0 + n) * shape.kv_dim();
        let (k, v) = (noise(kv, 1, 1.0), noise(kv, 2, 1.0));
        let q = noise(n * shape.q_dim(), 3, 2.0);
        let run = |ty| {
            let mut out = vec![0.0; q.len()];
            attention(
                &q,
                &cache_of(ty, &k),
                &cache_of(ty, &v),
                shape,
                pos0,
                &mut out,
            );
            out
        };
        let (exact, q8, half) = (
            run(CacheType::F32),
            run(CacheType::Q8_0),
            run(CacheType::F16),
        );
        let worst = |a: &[f32]| {
            exact
                .iter()
                .zip(a)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(worst(&q8) < 0.02, "q8_0 off by {}", worst(&q8));
        assert!(worst(&half) < 2e-3, "f16 off by {}", worst(&half));
        assert!(worst(&q8) > 0.0, "q8_0 should not be exact");
    }

    /// The Q8_0 path is ggml's arithmetic: scores from `vec_dot_q8_0_q8_0` of the quantized query
    /// with the stored key blocks, values dequantized to f32; checked against a two-pass softmax
    /// built from hearth-quant's reference functions.
    #[test]
    fn q8_0_cache_is_quantized_dot_and_dequantized_values() {
        let shape = AttnShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 32,
        };
        let n_kv = 6;
        let (k, v) = (noise(n_kv * 32, 4, 1.5), noise(n_kv * 32, 5, 1.0));
        let q = noise(64, 6, 3.0);
        let (kc, vc) = (cache_of(CacheType::Q8_0, &k), cache_of(CacheType::Q8_0, &v));
        let mut out = vec![0.0; 64];
        attention(&q, &kc, &vc, shape, n_kv - 1, &mut out);
        for h in 0..2 {
            let qh = &q[h * 32..(h + 1) * 32];
            let mut qq = vec![0u8; 34];
            hearth_quant::quantize_row(GgmlType::Q8_0, qh, &mut qq).unwrap();
            let scores: Vec<f32> = (0..n_kv)
                .map(|p| {
                    let mut kq = vec![0u8; 34];
                    hearth_quant::quantize_row(GgmlType::Q8_0, &k[p * 32..(p + 1) * 32], &mut kq)
                        .unwrap();
                    hearth_quant::vec_dot_row(GgmlType::Q8_0, &kq, &qq).unwrap() / (32f32).sqrt()
                })
                .collect();
            let mut w = scores.clone();
            softmax_in_place(&mut w);
            for d in 0..32 {
                let want: f32 = (0..n_kv)
                    .map(|p| {
                        let mut row = vec![0.0; 32];
                        vc.read(p * 32, &mut row);
                        w[p] * row[d]
                    })
                    .sum();
                let got = out[h * 32 + d];
                assert!(
                    (got - want).abs() < 1e-5,
                    "head {h} dim {d}: {got} vs {want}"
                );
            }
        }
    }

    /// Rotated Q8_0 rows (as `KvCache::new` makes them for 64-wide heads) still land near the
    /// f32 cache: the query and the output are rotated to match; with a key outlier per head the
    /// rotation makes the result closer than unrotated blocks.
    #[test]
    fn rotated_q8_0_cache_close_to_f32_cache() {
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
        };
        let (pos0, n) = (6, 2);
        let kv = (pos0 + n) * shape.kv_dim();
        let mut k = noise(kv, 7, 1.0);
        for head in k.chunks_mut(64) {
            head[5] = 150.0; // a Qwen2-like key outlier
        }
        let v = noise(kv, 8, 1.0);
        let mut q = noise(n * shape.q_dim(), 9, 1.0);
        for head in q.chunks_mut(64) {
            head[5] = 0.05;
        }
        let mut exact = vec![0.0; q.len()];
        let f32c = |x: &[f32]| cache_of(CacheType::F32, x);
        attention(&q, &f32c(&k), &f32c(&v), shape, pos0, &mut exact);
        let run = |rot: usize| {
            let rows = |x: &[f32]| {
                let mut r = Rows::with_rotation(CacheType::Q8_0, x.len(), rot);
                r.write(0, x);
                r
            };
            let mut out = vec![0.0; q.len()];
            attention(&q, &rows(&k), &rows(&v), shape, pos0, &mut out);
            exact
                .iter()
                .zip(&out)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let (plain, rotated) = (run(0), run(64));
        assert!(rotated < 0.05, "rotated q8_0 off by {rotated}");
        assert!(
            rotated < plain,
            "rotation should help: {rotated} vs {plain}"
        );
    }

    #[test]
    #[should_panic(expected = "Q8_0 cache with head size 48")]
    fn q8_0_cache_rejects_partial_blocks_per_head() {
        let shape = AttnShape {
            n_head: 2,
            n_head_kv: 2,
            head_dim: 48,
        };
        let rows = Rows::new(CacheType::Q8_0, 96);
        let mut out = vec![0.0; 96];
        attention(&[0.0; 96], &rows, &rows, shape, 0, &mut out);
    }
}

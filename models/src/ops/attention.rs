//! Causal multi-head attention over the KV cache, with grouped-query heads.
//!
//! Mirrors what llama.cpp's CPU flash attention (`ggml_compute_forward_flash_attn_ext_f16`)
//! computes, including which of its three paths a call takes, because each rounds differently:
//!
//! - **tiled** (a batch of at least [`TILE_Q`] tokens, f16 or f32 cache): the query stays f32,
//!   keys and values are widened to f32 in tiles of [`TILE_KV`] positions, `q·k` and `p·v` are f32
//!   GEMMs of fused multiply-adds, and the softmax is online over tiles with ggml's vector `expf`;
//! - **split** (one token, f16 or f32 cache, at least 512 padded positions): the positions are cut
//!   into one chunk per thread, each chunk runs the one-chunk arithmetic below and the partial
//!   results are merged in f32;
//! - **one chunk** (everything else, and every Q8_0 cache): the query is converted to the K type's
//!   `vec_dot_type` (f16, or Q8_0 blocks dotted by `vec_dot_q8_0_q8_0` through hearth-simd's table),
//!   the softmax is online one position at a time, and values are summed in f16 for an f16 cache
//!   (f32 otherwise, Q8_0 values dequantized first).
//!
//! Scores are scaled by `1/sqrt(head_dim)` and the softmax is in f32 with the maximum subtracted.
//! A rotated Q8_0 cache (see `kv_cache`) gets the query rotated like its keys and the output
//! rotated back like its values, as llama.cpp's `build_attn` does. The vector arithmetic goes
//! through hearth-simd's [`VecKernels`]. Every path computes each (token, head) on its own, so a
//! prompt's logits do not depend on how the work is split over threads.

use std::cell::RefCell;
use std::thread::LocalKey;

use half::f16;
use half::slice::HalfFloatSliceExt;
use hearth_quant::{blocks_as_bytes, GgmlType, QK8_0};
use hearth_simd::{MatKernels, VecKernels};

use crate::kv_cache::{hadamard, Rows};
use crate::ops::pool::{current_threads, for_each_chunk};

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

/// Query tokens from which ggml takes the tiled path (`GGML_FA_TILE_Q`), and the most it puts in
/// one tile.
pub const TILE_Q: usize = 64;
/// Positions per key/value tile of the tiled path (`GGML_FA_TILE_KV`); tiles start at position 0.
pub const TILE_KV: usize = 64;
/// llama.cpp pads the attended length to a multiple of this (`llama_kv_cache::get_n_kv`).
const KV_PAD: usize = 256;
/// Padded lengths from which a single token takes the split path.
const SPLIT_MIN_KV: usize = 512;

/// Alignment hearth-simd asks of an activation row.
const ACT_ALIGN: usize = 16;

/// One worker's buffers for the one-chunk arithmetic, reused across the heads it takes.
struct Work {
    /// The query, rotated or rounded as the keys need.
    qh: Vec<f32>,
    /// The query as f16 bits (f16 keys).
    q16: Vec<u16>,
    /// The running value sum of an f16 cache (ggml's `VKQ16`).
    acc16: Vec<u16>,
    /// The running value sum in f32 (ggml's `VKQ32`); the result once a chunk is done.
    acc32: Vec<f32>,
    /// A dequantized value row (ggml's `V32`).
    v32: Vec<f32>,
    /// The query as Q8_0 blocks, at a 16-byte aligned offset (ggml's `Q_q`).
    qq: Vec<u8>,
}

impl Work {
    fn new(hd: usize) -> Work {
        Work {
            qh: vec![0.0; hd],
            q16: vec![0; hd],
            acc16: vec![0; hd],
            acc32: vec![0.0; hd],
            v32: vec![0.0; hd],
            qq: vec![0; q8_0_bytes(hd) + ACT_ALIGN],
        }
    }

    /// Run `f` with this thread's buffers for heads of `hd` values, made once per worker thread
    /// (and again only when the head size changes), so that generation allocates nothing here.
    fn with<R>(hd: usize, f: impl FnOnce(&mut Work) -> R) -> R {
        thread_local! {
            static WORK: RefCell<Option<Work>> = const { RefCell::new(None) };
        }
        with_local(&WORK, |w| w.qh.len() == hd, || Work::new(hd), f)
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

/// The attended length llama.cpp's graph has for `n_kv` used positions.
fn padded_kv(n_kv: usize) -> usize {
    n_kv.div_ceil(KV_PAD).max(1) * KV_PAD
}

/// `out[t] = softmax(q[t]·K[..=pos0+t] * scale) · V[..=pos0+t]` for each token `t` of the batch.
///
/// `q` holds `n_tokens` rows of `q_dim`; the cache rows for positions `0..pos0 + n_tokens` must
/// already be written. `out` has the shape of `q`. A Q8_0 cache needs `head_dim` a multiple of 32
/// (see `KvCache::check`). The split path cuts the positions into one chunk per thread of the
/// current pool ([`crate::ops::pool`]), as ggml does per thread of its own. `scratch` holds the split path's
/// partial results and the tiled path's head-major output between calls.
pub fn attention(
    q: &[f32],
    keys: &Rows,
    values: &Rows,
    shape: AttnShape,
    pos0: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let hd = shape.head_dim;
    if matches!(keys, Rows::Q8_0 { .. }) || matches!(values, Rows::Q8_0 { .. }) {
        assert_eq!(hd % QK8_0, 0, "Q8_0 cache with head size {hd}");
    }
    let n_tokens = q.len() / shape.q_dim();
    let floats = matches!(
        (keys, values),
        (Rows::F16(_), Rows::F16(_)) | (Rows::F32(_), Rows::F32(_))
    );
    let c = Call {
        keys,
        values,
        shape,
        pos0,
        scale: 1.0 / (hd as f32).sqrt(),
        vec: hearth_simd::vec_kernels(),
        q8: matches!(keys, Rows::Q8_0 { .. }).then(q8_0_kernels),
    };
    if floats && n_tokens >= TILE_Q {
        tiled(&c, q, out, scratch);
    } else if floats && n_tokens == 1 && padded_kv(pos0 + 1) >= SPLIT_MIN_KV {
        split(&c, q, out, scratch);
    } else {
        for_each_chunk(out, hd, |idx, out_h| {
            let q_h = &q[idx * hd..(idx + 1) * hd];
            Work::with(hd, |w| {
                let (t, h) = (idx / shape.n_head, idx % shape.n_head);
                let kv_off = (h / (shape.n_head / shape.n_head_kv)) * hd;
                let n_kv = pos0 + t + 1;
                let (_, sum) = one_chunk(&c, q_h, kv_off, 0..n_kv, w);
                let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                for (o, a) in out_h.iter_mut().zip(&w.acc32) {
                    *o = a * inv;
                }
                if values.rotation() > 0 {
                    hadamard(out_h, values.rotation());
                }
            })
        });
    }
}

/// What every (token, head) of one attention call shares.
struct Call<'a> {
    keys: &'a Rows,
    values: &'a Rows,
    shape: AttnShape,
    pos0: usize,
    /// `1/sqrt(head_dim)`.
    scale: f32,
    vec: &'static VecKernels,
    /// The Q8_0·Q8_0 kernels, for a Q8_0 key cache.
    q8: Option<&'static MatKernels>,
}

/// ggml's `one_chunk` for one (token, head) over the positions `range`: leaves the unnormalised
/// value sum in `w.acc32` and returns the running maximum and the sum of weights.
fn one_chunk(
    c: &Call,
    q_h: &[f32],
    kv_off: usize,
    range: std::ops::Range<usize>,
    w: &mut Work,
) -> (f32, f32) {
    let Call {
        keys,
        values,
        shape,
        scale,
        vec,
        q8,
        ..
    } = *c;
    let hd = shape.head_dim;
    match (q8, keys) {
        (Some(k), _) => {
            w.qh.copy_from_slice(q_h);
            if keys.rotation() > 0 {
                hadamard(&mut w.qh, keys.rotation());
            }
            let off = w.qq.as_ptr().align_offset(ACT_ALIGN);
            (k.quantize_act)(&w.qh, &mut w.qq[off..off + q8_0_bytes(hd)]);
        }
        (None, Rows::F16(_)) => {
            for (d, &s) in w.q16.iter_mut().zip(q_h) {
                *d = f16::from_f32(s).to_bits();
            }
        }
        (None, _) => w.qh.copy_from_slice(q_h),
    }
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    w.acc32.fill(0.0);
    w.acc16.fill(0);
    for p in range {
        let at = p * shape.kv_dim() + kv_off;
        let s = match keys {
            Rows::Q8_0 { blocks: b, .. } => {
                let k = q8.expect("Q8_0 kernels");
                let row = blocks_as_bytes(&b[at / QK8_0..(at + hd) / QK8_0]);
                (k.vec_dot)(row, w.qq(hd))
            }
            Rows::F16(k) => (vec.dot_f16)(k[at..at + hd].reinterpret_cast(), &w.q16),
            Rows::F32(k) => k[at..at + hd].iter().zip(&w.qh).map(|(a, b)| a * b).sum(),
        } * scale;
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        let new_max = s > max;
        if new_max {
            ms = (max - s).exp();
            max = s;
        } else {
            vs = (s - max).exp();
        }
        match values {
            Rows::F16(v) => {
                if new_max {
                    (vec.scale_f16)(&mut w.acc16, ms);
                }
                (vec.mad_f16)(&mut w.acc16, v[at..at + hd].reinterpret_cast(), vs);
            }
            Rows::F32(v) => {
                if new_max {
                    w.acc32.iter_mut().for_each(|a| *a *= ms);
                }
                (vec.mad_f32)(&mut w.acc32, &v[at..at + hd], vs);
            }
            Rows::Q8_0 { .. } => {
                if new_max {
                    w.acc32.iter_mut().for_each(|a| *a *= ms);
                }
                values.read(at, &mut w.v32);
                (vec.mad_f32)(&mut w.acc32, &w.v32, vs);
            }
        }
        sum = sum * ms + vs;
    }
    if let Rows::F16(_) = values {
        (vec.f16_to_f32)(&w.acc16, &mut w.acc32);
    }
    (max, sum)
}

/// ggml's split-KV path for one token: one chunk of positions per thread, each chunk through
/// [`one_chunk`], the partial results merged in chunk order in f32.
fn split(c: &Call, q: &[f32], out: &mut [f32], partials: &mut Vec<f32>) {
    let shape = c.shape;
    let hd = shape.head_dim;
    let n_kv = c.pos0 + 1;
    let nth = current_threads();
    let chunk = padded_kv(n_kv).div_ceil(nth);
    let n_chunks = n_kv.div_ceil(chunk);
    let group = shape.n_head / shape.n_head_kv;
    // Per (head, chunk): the maximum, the weight sum, the value sum.
    let stride = 2 + hd;
    partials.clear();
    partials.resize(shape.n_head * n_chunks * stride, 0.0);
    for_each_chunk(partials, stride, |idx, part| {
        Work::with(hd, |w| {
            let (h, k) = (idx / n_chunks, idx % n_chunks);
            let range = k * chunk..((k + 1) * chunk).min(n_kv);
            let q_h = &q[h * hd..(h + 1) * hd];
            let (m, s) = one_chunk(c, q_h, (h / group) * hd, range, w);
            part[0] = m;
            part[1] = s;
            part[2..].copy_from_slice(&w.acc32);
        })
    });
    for (h, out_h) in out.chunks_mut(hd).enumerate() {
        let (mut m, mut s) = (f32::NEG_INFINITY, 0f32);
        out_h.fill(0.0);
        for part in partials[h * n_chunks * stride..(h + 1) * n_chunks * stride].chunks(stride) {
            let (mc, sc) = (part[0], part[1]);
            if sc == 0.0 {
                continue;
            }
            let m_new = m.max(mc);
            let (old, new) = ((m - m_new).exp(), (mc - m_new).exp());
            for (o, v) in out_h.iter_mut().zip(&part[2..]) {
                *o = *o * old + v * new;
            }
            s = s * old + sc * new;
            m = m_new;
        }
        if s != 0.0 {
            let inv = 1.0 / s;
            out_h.iter_mut().for_each(|o| *o *= inv);
        }
    }
}

/// Run `f` with this thread's buffers in `key`, made by `make` on first use and again when they
/// do not `fit` (another head size).
fn with_local<T: 'static, R>(
    key: &'static LocalKey<RefCell<Option<T>>>,
    fits: impl FnOnce(&T) -> bool,
    make: impl FnOnce() -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| {
        let mut slot = cell.borrow_mut();
        let w = match &mut *slot {
            Some(w) if fits(w) => w,
            other => other.insert(make()),
        };
        f(w)
    })
}

/// One worker's buffers for the tiled path.
struct Tile {
    /// The query tile, `TILE_Q × hd`.
    q: Vec<f32>,
    /// Keys of a tile, transposed: `hd × TILE_KV`.
    kt: Vec<f32>,
    /// One key row widened to f32.
    k_row: Vec<f32>,
    /// Scores, then weights: `TILE_Q × TILE_KV`.
    kq: Vec<f32>,
    /// Values of a tile widened to f32: `TILE_KV × hd`.
    v: Vec<f32>,
    /// Running maximum and weight sum per query row.
    m: [f32; TILE_Q],
    s: [f32; TILE_Q],
}

impl Tile {
    fn new(hd: usize) -> Tile {
        Tile {
            q: vec![0.0; TILE_Q * hd],
            kt: vec![0.0; hd * TILE_KV],
            k_row: vec![0.0; hd],
            kq: vec![0.0; TILE_Q * TILE_KV],
            v: vec![0.0; TILE_KV * hd],
            m: [f32::NEG_INFINITY; TILE_Q],
            s: [0.0; TILE_Q],
        }
    }

    /// Run `f` with this thread's tile buffers for heads of `hd` values (made once per thread,
    /// as [`Work::with`]).
    fn with<R>(hd: usize, f: impl FnOnce(&mut Tile) -> R) -> R {
        thread_local! {
            static TILE: RefCell<Option<Tile>> = const { RefCell::new(None) };
        }
        with_local(&TILE, |w| w.k_row.len() == hd, || Tile::new(hd), f)
    }
}

/// Row `p` of a float cache at element offset `at`, widened to f32.
fn widen(rows: &Rows, at: usize, dst: &mut [f32], vec: &VecKernels) {
    match rows {
        Rows::F16(v) => (vec.f16_to_f32)(v[at..at + dst.len()].reinterpret_cast(), dst),
        Rows::F32(v) => dst.copy_from_slice(&v[at..at + dst.len()]),
        Rows::Q8_0 { .. } => unreachable!("the tiled path takes float caches only"),
    }
}

/// ggml's tiled path: per head, tiles of up to [`TILE_Q`] tokens against tiles of [`TILE_KV`]
/// positions. The result is computed head-major and then laid out token-major in `out`.
fn tiled(c: &Call, q: &[f32], out: &mut [f32], by_head: &mut Vec<f32>) {
    let Call {
        keys,
        values,
        shape,
        pos0,
        scale,
        vec,
        ..
    } = *c;
    let hd = shape.head_dim;
    let n_tokens = q.len() / shape.q_dim();
    let group = shape.n_head / shape.n_head_kv;
    // Head-major, each head padded to whole tiles so that every task owns one tile.
    let tiles = n_tokens.div_ceil(TILE_Q);
    by_head.clear();
    by_head.resize(shape.n_head * tiles * TILE_Q * hd, 0.0);
    for_each_chunk(by_head, TILE_Q * hd, |idx, vkq| {
        Tile::with(hd, |w| {
            let (h, t0) = (idx / tiles, idx % tiles * TILE_Q);
            let rows = TILE_Q.min(n_tokens - t0);
            let vkq = &mut vkq[..rows * hd];
            let kv_off = (h / group) * hd;
            for r in 0..rows {
                let src = (t0 + r) * shape.q_dim() + h * hd;
                w.q[r * hd..(r + 1) * hd].copy_from_slice(&q[src..src + hd]);
            }
            w.m = [f32::NEG_INFINITY; TILE_Q];
            w.s = [0.0; TILE_Q];
            vkq.fill(0.0);
            let end = pos0 + t0 + rows;
            for ic in (0..end).step_by(TILE_KV) {
                let kv_tile = TILE_KV.min(end - ic);
                if kv_tile < TILE_KV {
                    // Zero padding for the last, partial tile (full tiles overwrite all).
                    w.kt.fill(0.0);
                    w.v.fill(0.0);
                }
                for tk in 0..kv_tile {
                    let at = (ic + tk) * shape.kv_dim() + kv_off;
                    widen(keys, at, &mut w.k_row, vec);
                    for (d, &x) in w.k_row.iter().enumerate() {
                        w.kt[d * TILE_KV + tk] = x;
                    }
                    widen(values, at, &mut w.v[tk * hd..(tk + 1) * hd], vec);
                }
                let kq = &mut w.kq[..rows * TILE_KV];
                kq.fill(0.0);
                (vec.gemm_f32)(kq, &w.q[..rows * hd], &w.kt, rows, hd, TILE_KV);
                for (r, row) in kq.chunks_exact_mut(TILE_KV).enumerate() {
                    let visible = (pos0 + t0 + r + 1).saturating_sub(ic).min(kv_tile);
                    for x in &mut row[..visible] {
                        *x *= scale;
                    }
                    row[visible..].fill(f32::NEG_INFINITY);
                    if visible == 0 {
                        row.fill(0.0);
                        continue;
                    }
                    let tile_max = row[..visible]
                        .iter()
                        .copied()
                        .fold(f32::NEG_INFINITY, f32::max);
                    let m_old = w.m[r];
                    let m_new = m_old.max(tile_max);
                    if m_new > m_old {
                        let ms = (m_old - m_new).exp();
                        vkq[r * hd..(r + 1) * hd].iter_mut().for_each(|a| *a *= ms);
                        w.s[r] *= ms;
                    }
                    w.m[r] = m_new;
                    w.s[r] = (f64::from(w.s[r]) + (vec.softmax_exp)(row, m_new)) as f32;
                }
                (vec.gemm_f32)(vkq, kq, &w.v, rows, TILE_KV, hd);
            }
            for (r, row) in vkq.chunks_exact_mut(hd).enumerate() {
                let inv = if w.s[r] == 0.0 { 0.0 } else { 1.0 / w.s[r] };
                row.iter_mut().for_each(|a| *a *= inv);
            }
        })
    });
    for (t, out_t) in out.chunks_mut(shape.q_dim()).enumerate() {
        for (h, out_h) in out_t.chunks_mut(hd).enumerate() {
            let src = (h * tiles * TILE_Q + t) * hd;
            out_h.copy_from_slice(&by_head[src..src + hd]);
        }
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
    use crate::ops::pool::ThreadPool;

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
        attention(&q, &keys, &values, shape, 0, &mut out, &mut Vec::new());
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
        attention(
            &[1.0, 1.0],
            &keys,
            &values,
            shape,
            0,
            &mut out,
            &mut Vec::new(),
        );
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
                &mut Vec::new(),
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
        attention(&q, &kc, &vc, shape, n_kv - 1, &mut out, &mut Vec::new());
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
        attention(
            &q,
            &f32c(&k),
            &f32c(&v),
            shape,
            pos0,
            &mut exact,
            &mut Vec::new(),
        );
        let run = |rot: usize| {
            let rows = |x: &[f32]| {
                let mut r = Rows::with_rotation(CacheType::Q8_0, x.len(), rot);
                r.write(0, x);
                r
            };
            let mut out = vec![0.0; q.len()];
            attention(
                &q,
                &rows(&k),
                &rows(&v),
                shape,
                pos0,
                &mut out,
                &mut Vec::new(),
            );
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

    /// Two-pass softmax attention in f64 over what the cache holds, for (token, head).
    fn exact(q: &[f32], k: &Rows, v: &Rows, shape: AttnShape, pos0: usize) -> Vec<f64> {
        let hd = shape.head_dim;
        let n = q.len() / shape.q_dim();
        let group = shape.n_head / shape.n_head_kv;
        let mut out = vec![0f64; q.len()];
        let (mut kr, mut vr) = (vec![0f32; hd], vec![0f32; hd]);
        for t in 0..n {
            for h in 0..shape.n_head {
                let qh = &q[t * shape.q_dim() + h * hd..][..hd];
                let kv_off = (h / group) * hd;
                let scores: Vec<f64> = (0..=pos0 + t)
                    .map(|p| {
                        k.read(p * shape.kv_dim() + kv_off, &mut kr);
                        let d: f64 = qh.iter().zip(&kr).map(|(a, b)| *a as f64 * *b as f64).sum();
                        d / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let total: f64 = w.iter().sum();
                let o = &mut out[t * shape.q_dim() + h * hd..][..hd];
                for (p, wp) in w.iter().enumerate() {
                    v.read(p * shape.kv_dim() + kv_off, &mut vr);
                    for (od, x) in o.iter_mut().zip(&vr) {
                        *od += wp / total * *x as f64;
                    }
                }
            }
        }
        out
    }

    fn worst(a: &[f32], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - y).abs())
            .fold(0.0, f64::max)
    }

    /// Batches of 64 tokens and more take the tiled path (f32 query, f32 sums): on an f32 or an
    /// f16 cache it lands on the exact softmax over what the cache holds, across several query
    /// tiles, a partial last tile and key tiles that start mid-batch.
    #[test]
    fn tiled_path_matches_exact_attention() {
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
        };
        let (pos0, n) = (37, 150);
        let kv = (pos0 + n) * shape.kv_dim();
        let (k, v) = (noise(kv, 11, 1.0), noise(kv, 12, 1.0));
        let q = noise(n * shape.q_dim(), 13, 2.0);
        for ty in [CacheType::F32, CacheType::F16] {
            let (kc, vc) = (cache_of(ty, &k), cache_of(ty, &v));
            let mut out = vec![0.0; q.len()];
            attention(&q, &kc, &vc, shape, pos0, &mut out, &mut Vec::new());
            let e = worst(&out, &exact(&q, &kc, &vc, shape, pos0));
            assert!(e < 2e-6, "{ty:?}: tiled off by {e}");
        }
    }

    /// One token with at least 512 padded positions takes the split path: per-thread chunks,
    /// merged; the result does not depend on the thread count beyond f16 rounding, and matches
    /// the exact softmax.
    #[test]
    fn split_path_matches_exact_attention_for_any_thread_count() {
        let shape = AttnShape {
            n_head: 3,
            n_head_kv: 1,
            head_dim: 64,
        };
        let pos0 = 700;
        let kv = (pos0 + 1) * shape.kv_dim();
        let (k, v) = (noise(kv, 21, 1.0), noise(kv, 22, 1.0));
        let q = noise(shape.q_dim(), 23, 3.0);
        for ty in [CacheType::F32, CacheType::F16] {
            let (kc, vc) = (cache_of(ty, &k), cache_of(ty, &v));
            let want = exact(&q, &kc, &vc, shape, pos0);
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads).unwrap();
                let mut out = vec![0.0; q.len()];
                pool.install(|| attention(&q, &kc, &vc, shape, pos0, &mut out, &mut Vec::new()));
                let e = worst(&out, &want);
                let bound = if ty == CacheType::F16 { 2e-3 } else { 2e-6 };
                assert!(e < bound, "{ty:?} with {threads} threads: off by {e}");
            }
        }
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
        attention(
            &[0.0; 96],
            &rows,
            &rows,
            shape,
            0,
            &mut out,
            &mut Vec::new(),
        );
    }
}

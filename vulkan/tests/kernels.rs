//! Every GPU kernel against hearth-quant's scalar dequantize and f32 math, on random blocks of
//! the DeepSeek-R1-Distill-Qwen-1.5B shapes. Without a GPU adapter these tests print why and
//! pass, except under CI (`CI` set), where they fail: CI installs Mesa's lavapipe.

use std::sync::Arc;

use hearth_quant::GgmlType;
use hearth_vulkan::layers::{Config, GpuLayers, HeadWeights, LayerWeights, Output};
use hearth_vulkan::{matmul_once, Gpu, WeightRef};

const MAX_NMSE: f64 = 5e-4;

fn gpu() -> Option<Gpu> {
    match Gpu::open() {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI needs a GPU adapter: {e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

/// Byte offsets of the f16 fields (scales, mins) of a block of `ty`, which random bytes
/// would fill with infinities and NaNs.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => &[0],
    }
}

/// A `rows x cols` weight of random blocks with sane scales.
fn random_weight(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    random_weight_scaled(ty, rows, cols, 1.0, rng)
}

/// Random blocks whose f16 fields are `scale` times 0.002 to 0.012.
fn random_weight_scaled(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    scale: f32,
    rng: &mut Rng,
) -> Vec<u8> {
    let row_bytes = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut data: Vec<u8> = (0..rows * row_bytes).map(|_| rng.next() as u8).collect();
    let bb = ty.block_bytes();
    for block in data.chunks_exact_mut(bb) {
        for &o in f16_fields(ty) {
            let v = half::f16::from_f32(scale * (0.002 + 0.01 * rng.f().abs()));
            block[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    data
}

fn dequant(w: &WeightRef) -> Vec<f32> {
    let mut out = vec![0.0; w.rows * w.cols];
    let rb = w.data.len() / w.rows;
    for (r, dst) in out.chunks_exact_mut(w.cols).enumerate() {
        hearth_quant::dequantize_row(w.ty, &w.data[r * rb..(r + 1) * rb], dst).unwrap();
    }
    out
}

/// `(n, rows)` = x `(n, cols)` times the dequantized weight, in f64.
fn matmul_ref(w: &[f32], rows: usize, cols: usize, x: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * rows];
    for t in 0..n {
        for r in 0..rows {
            let row = &w[r * cols..(r + 1) * cols];
            let xs = &x[t * cols..(t + 1) * cols];
            out[t * rows + r] = row
                .iter()
                .zip(xs)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>() as f32;
        }
    }
    out
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    err / norm.max(1e-30)
}

const TYPES: [GgmlType; 7] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// R1-Distill-Qwen-1.5B: attention (1536 x 1536), FFN up (8960 x 1536) and down (1536 x 8960).
const SHAPES: [(usize, usize); 3] = [(1536, 1536), (8960, 1536), (1536, 8960)];

#[test]
fn matmul_every_type_and_shape_matches_the_scalar_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for ty in TYPES {
        for (rows, cols) in SHAPES {
            let data = random_weight(ty, rows, cols, &mut rng);
            let w = WeightRef {
                ty,
                rows,
                cols,
                data: &data,
            };
            let wf = dequant(&w);
            // One token (generation) and a prompt batch with a partial tile.
            for n in [1, 11] {
                let x = rng.vec(n * cols, 1.0);
                let got = matmul_once(&gpu, &w, &x, n).unwrap();
                let want = matmul_ref(&wf, rows, cols, &x, n);
                let e = nmse(&got, &want);
                assert!(e <= MAX_NMSE, "{ty} {rows}x{cols} n={n}: nmse {e}");
            }
        }
    }
}

#[test]
fn large_tensors_are_split_to_fit_the_binding_limit() {
    let Some(mut gpu) = gpu() else { return };
    gpu.cap_binding(1 << 20);
    let mut rng = Rng(7);
    // 1536 x 8960 Q4_K is 7.7 MB: eight parts of 1 MiB or less. 70000 rows: over one dispatch.
    for (ty, rows, cols) in [(GgmlType::Q4K, 1536, 8960), (GgmlType::Q8_0, 70_000, 32)] {
        let data = random_weight(ty, rows, cols, &mut rng);
        let w = WeightRef {
            ty,
            rows,
            cols,
            data: &data,
        };
        let m = hearth_vulkan::GpuMatrix::upload(&gpu, &w).unwrap();
        assert!(m.n_parts() > 1, "{ty} {rows}x{cols} was not split");
        let x = rng.vec(3 * cols, 1.0);
        let got = matmul_once(&gpu, &w, &x, 3).unwrap();
        let e = nmse(&got, &matmul_ref(&dequant(&w), rows, cols, &x, 3));
        assert!(e <= MAX_NMSE, "{ty} {rows}x{cols} split: nmse {e}");
    }
}

/// A small random decoder layer and head (llama or qwen2 flavour), as host data.
struct Toy {
    cfg: Config,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    bias: [Vec<f32>; 3],
    w: Vec<Vec<u8>>, // q, k, v, o, gate, up, down, output
    ty: GgmlType,
    out_norm: Vec<f32>,
}

impl Toy {
    fn new(neox: bool, ty: GgmlType, rng: &mut Rng) -> Toy {
        let (n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab) = (256, 4, 2, 64, 512, 320);
        let n_rot = head_dim;
        let inv_freq = (0..n_rot / 2)
            .map(|i| 10000f32.powf(-2.0 * i as f32 / n_rot as f32))
            .collect();
        let cfg = Config {
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_vocab,
            rms_eps: 1e-6,
            n_rot,
            neox,
            inv_freq,
        };
        let q_dim = n_head * head_dim;
        let kv_dim = n_head_kv * head_dim;
        let shapes = [
            (q_dim, n_embd),
            (kv_dim, n_embd),
            (kv_dim, n_embd),
            (n_embd, q_dim),
            (n_ff, n_embd),
            (n_ff, n_embd),
            (n_embd, n_ff),
            (n_vocab, n_embd),
        ];
        Toy {
            attn_norm: (0..n_embd).map(|_| 1.0 + 0.5 * rng.f()).collect(),
            ffn_norm: (0..n_embd).map(|_| 1.0 + 0.5 * rng.f()).collect(),
            bias: [
                rng.vec(q_dim, 0.5),
                rng.vec(kv_dim, 0.5),
                rng.vec(kv_dim, 0.5),
            ],
            // Small weights keep the activations of the stacked layers in f16 range.
            w: shapes
                .iter()
                .map(|&(r, c)| {
                    let k = if ty.block_elems() == 256 {
                        1.0 / 64.0
                    } else {
                        0.25
                    };
                    random_weight_scaled(ty, r, c, k / (c as f32 / 256.0).sqrt(), rng)
                })
                .collect(),
            out_norm: (0..n_embd).map(|_| 1.0 + 0.5 * rng.f()).collect(),
            ty,
            cfg,
        }
    }

    fn weight(&self, i: usize) -> WeightRef<'_> {
        let c = &self.cfg;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let (rows, cols) = [
            (q_dim, c.n_embd),
            (kv_dim, c.n_embd),
            (kv_dim, c.n_embd),
            (c.n_embd, q_dim),
            (c.n_ff, c.n_embd),
            (c.n_ff, c.n_embd),
            (c.n_embd, c.n_ff),
            (c.n_vocab, c.n_embd),
        ][i];
        WeightRef {
            ty: self.ty,
            rows,
            cols,
            data: &self.w[i],
        }
    }

    fn layer(&self, bias: bool) -> LayerWeights<'_> {
        LayerWeights {
            attn_norm: &self.attn_norm,
            wq: self.weight(0),
            wk: self.weight(1),
            wv: self.weight(2),
            bias: bias.then(|| [&self.bias[0][..], &self.bias[1][..], &self.bias[2][..]]),
            wo: self.weight(3),
            ffn_norm: &self.ffn_norm,
            w_gate: self.weight(4),
            w_up: self.weight(5),
            w_down: self.weight(6),
        }
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(w.len()) {
        let ms = row.iter().map(|&v| (v * v) as f64).sum::<f64>() / w.len() as f64;
        let s = 1.0 / (ms as f32 + eps).sqrt();
        out.extend(row.iter().zip(w).map(|(&v, &g)| v * s * g));
    }
    out
}

fn rope(x: &mut [f32], pos: usize, c: &Config) {
    let half = c.n_rot / 2;
    for head in x.chunks_exact_mut(c.head_dim) {
        for i in 0..half {
            let t = pos as f32 * c.inv_freq[i];
            let (a, b) = if c.neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * t.cos() - x1 * t.sin();
            head[b] = x0 * t.sin() + x1 * t.cos();
        }
    }
}

fn f16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// The f32 reference of one layer over `x` at positions `pos0..`, with a KV cache of f16 values.
fn layer_ref(
    t: &Toy,
    bias: bool,
    x: &mut [f32],
    pos0: usize,
    kc: &mut Vec<f32>,
    vc: &mut Vec<f32>,
) {
    let c = &t.cfg;
    let n = x.len() / c.n_embd;
    let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let w: Vec<Vec<f32>> = (0..7).map(|i| dequant(&t.weight(i))).collect();
    let h = rms_norm(x, &t.attn_norm, c.rms_eps);
    let mut q = matmul_ref(&w[0], q_dim, c.n_embd, &h, n);
    let mut k = matmul_ref(&w[1], kv_dim, c.n_embd, &h, n);
    let mut v = matmul_ref(&w[2], kv_dim, c.n_embd, &h, n);
    if bias {
        for (buf, b) in [
            (&mut q, &t.bias[0]),
            (&mut k, &t.bias[1]),
            (&mut v, &t.bias[2]),
        ] {
            for row in buf.chunks_exact_mut(b.len()) {
                row.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            }
        }
    }
    for i in 0..n {
        rope(&mut q[i * q_dim..(i + 1) * q_dim], pos0 + i, c);
        rope(&mut k[i * kv_dim..(i + 1) * kv_dim], pos0 + i, c);
    }
    kc.truncate(pos0 * kv_dim);
    vc.truncate(pos0 * kv_dim);
    kc.extend(f16_round(&k));
    vc.extend(f16_round(&v));
    let mut att = vec![0.0f32; n * q_dim];
    let group = c.n_head / c.n_head_kv;
    for i in 0..n {
        for hh in 0..c.n_head {
            let kvh = hh / group;
            let qv = &q[(i * c.n_head + hh) * c.head_dim..][..c.head_dim];
            let n_kv = pos0 + i + 1;
            let scores: Vec<f32> = (0..n_kv)
                .map(|j| {
                    let kr = &kc[j * kv_dim + kvh * c.head_dim..][..c.head_dim];
                    qv.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() / (c.head_dim as f32).sqrt()
                })
                .collect();
            let mx = scores.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
            let sum: f32 = e.iter().sum();
            for d in 0..c.head_dim {
                let acc: f32 = (0..n_kv)
                    .map(|j| e[j] * vc[j * kv_dim + kvh * c.head_dim + d])
                    .sum();
                att[(i * c.n_head + hh) * c.head_dim + d] = acc / sum;
            }
        }
    }
    let o = matmul_ref(&w[3], c.n_embd, q_dim, &att, n);
    x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
    let h = rms_norm(x, &t.ffn_norm, c.rms_eps);
    let g = matmul_ref(&w[4], c.n_ff, c.n_embd, &h, n);
    let u = matmul_ref(&w[5], c.n_ff, c.n_embd, &h, n);
    let gu: Vec<f32> = g
        .iter()
        .zip(&u)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect();
    let d = matmul_ref(&w[6], c.n_embd, c.n_ff, &gu, n);
    x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
}

/// Norm, rope (both pairings), bias, KV write, attention, SwiGLU and residual adds, through a
/// two-layer GPU forward (a 6-token prompt, then two single tokens) against the f32 reference.
#[test]
fn layers_and_head_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let gpu = Arc::new(gpu);
    let mut rng = Rng(42);
    for (neox, bias, ty) in [(true, true, GgmlType::Q8_0), (false, false, GgmlType::Q4K)] {
        let toy = Toy::new(neox, ty, &mut rng);
        let c = toy.cfg.clone();
        let layers = [toy.layer(bias), toy.layer(bias)];
        let head = HeadWeights {
            norm: &toy.out_norm,
            output: toy.weight(7),
        };
        let g = GpuLayers::new(gpu.clone(), c.clone(), &layers, Some(head)).unwrap();
        let mut st = g.new_state(64).unwrap();
        let (mut kc, mut vc) = (vec![vec![]; 2], vec![vec![]; 2]);
        let out_w = dequant(&toy.weight(7));
        let mut pos = 0;
        for n in [6, 1, 1] {
            let x = rng.vec(n * c.n_embd, 1.0);
            let mut want = x.clone();
            for l in 0..2 {
                layer_ref(&toy, bias, &mut want, pos, &mut kc[l], &mut vc[l]);
            }
            let got = g
                .forward(&mut st, &x, pos, Output::Hidden)
                .unwrap()
                .to_vec();
            let e = nmse(&got, &want);
            assert!(
                e <= MAX_NMSE,
                "neox={neox} {ty} hidden at {pos}+{n}: nmse {e}"
            );
            // The same call again with the head: only the last token's logits.
            let logits = g
                .forward(
                    &mut st,
                    &x,
                    pos,
                    Output::Logits {
                        first: n - 1,
                        count: 1,
                    },
                )
                .unwrap()
                .to_vec();
            let last = rms_norm(&want[(n - 1) * c.n_embd..], &toy.out_norm, c.rms_eps);
            let want_logits = matmul_ref(&out_w, c.n_vocab, c.n_embd, &last, 1);
            let e = nmse(&logits, &want_logits);
            assert!(
                e <= MAX_NMSE,
                "neox={neox} {ty} logits at {pos}+{n}: nmse {e}"
            );
            pos += n;
        }
    }
}

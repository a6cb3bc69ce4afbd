//! The GPU's share of a forward pass: layers `[0, N)` of a llama/qwen2 decoder, and the output
//! head when every layer is on the GPU.
//!
//! Weights are uploaded once ([`GpuLayers::new`]); each conversation gets a [`GpuState`] with its
//! f16 KV cache and the activations, and the bind groups of every op, made once. A forward call
//! writes the tokens' embeddings and a 16-byte step (token count, first position), records the
//! whole dispatch list into one compute pass, submits once and reads back either the hidden
//! state (for the CPU layers that follow) or the logits.

use std::sync::Arc;

use crate::kernels::{bind, record, uniform, Dispatch, Grid, Kernels};
use crate::tensor::{f32_buffer, scratch, GpuMatrix, WeightRef};
use crate::{Gpu, GpuError};

/// Shape of the model, as the kernels need it.
#[derive(Clone, Debug)]
pub struct Config {
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub rms_eps: f32,
    /// Rotated dimensions per head, and the NeoX pairing (qwen2) or the normal one (llama).
    pub n_rot: usize,
    pub neox: bool,
    /// `freq_scale * base^(-2i/n_rot) / freq_factor[i]` for each pair `i < n_rot / 2`.
    pub inv_freq: Vec<f32>,
}

/// The host weights of one layer.
pub struct LayerWeights<'a> {
    pub attn_norm: &'a [f32],
    pub wq: WeightRef<'a>,
    pub wk: WeightRef<'a>,
    pub wv: WeightRef<'a>,
    pub bias: Option<[&'a [f32]; 3]>,
    pub wo: WeightRef<'a>,
    pub ffn_norm: &'a [f32],
    pub w_gate: WeightRef<'a>,
    pub w_up: WeightRef<'a>,
    pub w_down: WeightRef<'a>,
}

/// The final norm and output projection.
pub struct HeadWeights<'a> {
    pub norm: &'a [f32],
    pub output: WeightRef<'a>,
}

struct Layer {
    attn_norm: wgpu::Buffer,
    wq: GpuMatrix,
    wk: GpuMatrix,
    wv: GpuMatrix,
    bias: Option<[wgpu::Buffer; 3]>,
    wo: GpuMatrix,
    ffn_norm: wgpu::Buffer,
    w_gate: GpuMatrix,
    w_up: GpuMatrix,
    w_down: GpuMatrix,
}

struct Head {
    norm: wgpu::Buffer,
    output: GpuMatrix,
}

/// Layers `[0, N)` (and maybe the head) resident on the GPU.
pub struct GpuLayers {
    gpu: Arc<Gpu>,
    kernels: Kernels,
    cfg: Config,
    layers: Vec<Layer>,
    head: Option<Head>,
    inv_freq: wgpu::Buffer,
    bytes: u64,
}

/// What a forward call reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Nothing (a prompt batch whose logits nobody needs).
    None,
    /// The hidden state of every token, `n * n_embd` (the CPU runs the remaining layers).
    Hidden,
    /// Logits of tokens `first ..first + count` of the call (needs the head on the GPU).
    Logits { first: usize, count: usize },
}

fn check_len(what: &str, v: &[f32], len: usize) -> Result<(), GpuError> {
    if v.len() == len {
        Ok(())
    } else {
        Err(GpuError::Unsupported(format!(
            "{what} of {} values (expected {len})",
            v.len()
        )))
    }
}

impl GpuLayers {
    /// Upload `layers` (the first `layers.len()` of the model) and, if given, the head.
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: Config,
        layers: &[LayerWeights],
        head: Option<HeadWeights>,
    ) -> Result<GpuLayers, GpuError> {
        if !cfg.head_dim.is_multiple_of(2)
            || cfg.head_dim > 256
            || cfg.n_head_kv == 0
            || !cfg.n_head.is_multiple_of(cfg.n_head_kv)
            || cfg.inv_freq.len() != cfg.n_rot / 2
            || cfg.n_rot > cfg.head_dim
        {
            return Err(GpuError::Unsupported(format!(
                "heads of {} values, {} heads over {} KV heads, {} rotated",
                cfg.head_dim, cfg.n_head, cfg.n_head_kv, cfg.n_rot
            )));
        }
        let mut types: Vec<_> = layers
            .iter()
            .flat_map(|l| [l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down])
            .map(|w| w.ty)
            .collect();
        if let Some(h) = &head {
            types.push(h.output.ty);
        }
        let kernels = Kernels::new(&gpu, &types)?;
        let mut bytes = 0;
        let mut up = |w: &WeightRef| -> Result<GpuMatrix, GpuError> {
            let m = GpuMatrix::upload(&gpu, w)?;
            bytes += m.bytes();
            Ok(m)
        };
        let mut gl = Vec::with_capacity(layers.len());
        for l in layers {
            check_len("attn_norm", l.attn_norm, cfg.n_embd)?;
            check_len("ffn_norm", l.ffn_norm, cfg.n_embd)?;
            gl.push(Layer {
                attn_norm: f32_buffer(&gpu, "attn_norm", l.attn_norm),
                wq: up(&l.wq)?,
                wk: up(&l.wk)?,
                wv: up(&l.wv)?,
                bias: l.bias.map(|b| b.map(|v| f32_buffer(&gpu, "bias", v))),
                wo: up(&l.wo)?,
                ffn_norm: f32_buffer(&gpu, "ffn_norm", l.ffn_norm),
                w_gate: up(&l.w_gate)?,
                w_up: up(&l.w_up)?,
                w_down: up(&l.w_down)?,
            });
        }
        let head = match head {
            Some(h) => {
                check_len("output_norm", h.norm, cfg.n_embd)?;
                Some(Head {
                    norm: f32_buffer(&gpu, "output_norm", h.norm),
                    output: up(&h.output)?,
                })
            }
            None => None,
        };
        let inv_freq = f32_buffer(&gpu, "inv_freq", &cfg.inv_freq);
        gpu.wait()
            .map_err(|e| GpuError::TooSmall(format!("uploading {bytes} bytes of weights: {e}")))?;
        Ok(GpuLayers {
            gpu,
            kernels,
            cfg,
            layers: gl,
            head,
            inv_freq,
            bytes,
        })
    }

    /// Layers held.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Whether the output head runs on the GPU.
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Bytes of weights uploaded.
    pub fn weight_bytes(&self) -> u64 {
        self.bytes
    }

    /// The GPU in use.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

/// One conversation's GPU memory: KV cache, activations and the recorded dispatches.
pub struct GpuState {
    n_ctx: usize,
    max_batch: usize,
    step: wgpu::Buffer,
    x: wgpu::Buffer,
    logits: Option<wgpu::Buffer>,
    readback: wgpu::Buffer,
    layers: Vec<Dispatch>,
    head: Vec<Dispatch>,
    out: Vec<f32>,
}

/// The activation buffers of a state.
struct Acts {
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    att: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    scores: wgpu::Buffer,
}

impl GpuLayers {
    /// A state for `n_ctx` positions. Prompt batches are cut to what its scratch holds.
    pub fn new_state(&self, n_ctx: usize) -> Result<GpuState, GpuError> {
        let c = &self.cfg;
        let gpu = &*self.gpu;
        let max_binding = gpu.max_binding() as usize;
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.n_head_kv * c.head_dim;
        // Largest batch whose attention scores and FFN activations fit one binding.
        let per_token = (c.n_head * n_ctx).max(c.n_ff).max(c.n_vocab) * 4;
        let max_batch = (max_binding / per_token.max(1)).min(64);
        if max_batch == 0 || n_ctx * kv_dim * 2 > max_binding {
            return Err(GpuError::TooSmall(format!(
                "a context of {n_ctx} positions does not fit one storage binding of {max_binding} bytes"
            )));
        }
        let a = Acts {
            x: scratch(gpu, "x", max_batch * c.n_embd),
            h: scratch(gpu, "h", max_batch * c.n_embd),
            q: scratch(gpu, "q", max_batch * q_dim),
            k: scratch(gpu, "k", max_batch * kv_dim),
            v: scratch(gpu, "v", max_batch * kv_dim),
            att: scratch(gpu, "att", max_batch * q_dim),
            gate: scratch(gpu, "gate", max_batch * c.n_ff),
            up: scratch(gpu, "up", max_batch * c.n_ff),
            scores: scratch(gpu, "scores", max_batch * c.n_head * n_ctx),
        };
        let step = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut layers = Vec::new();
        for l in &self.layers {
            // f16 pairs: n_ctx rows of kv_dim / 2 words.
            let kc = scratch(gpu, "k cache", n_ctx * kv_dim / 2);
            let vc = scratch(gpu, "v cache", n_ctx * kv_dim / 2);
            self.record_layer(l, &a, &kc, &vc, &step, n_ctx, &mut layers)?;
        }
        let mut head = Vec::new();
        let logits = match &self.head {
            Some(hd) => {
                let logits = scratch(gpu, "logits", max_batch * c.n_vocab);
                self.norm(&a.x, &hd.norm, &a.h, &step, true, &mut head);
                self.matmul(&hd.output, &a.h, &logits, &step, true, &mut head)?;
                Some(logits)
            }
            None => None,
        };
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (max_batch * c.n_embd.max(if logits.is_some() { c.n_vocab } else { 0 }) * 4)
                as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.wait()
            .map_err(|e| GpuError::TooSmall(format!("a KV cache of {n_ctx} positions: {e}")))?;
        Ok(GpuState {
            n_ctx,
            max_batch,
            step,
            x: a.x,
            logits,
            readback,
            layers,
            head,
            out: Vec::new(),
        })
    }

    fn norm(
        &self,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        out: &wgpu::Buffer,
        step: &wgpu::Buffer,
        head: bool,
        list: &mut Vec<Dispatch>,
    ) {
        let c = &self.cfg;
        let p = uniform(
            &self.gpu,
            &[c.n_embd as u32, c.rms_eps.to_bits(), u32::from(head)],
        );
        let pl = &self.kernels.rms_norm;
        list.push(Dispatch {
            pipeline: pl.clone(),
            bind: bind(&self.gpu, pl, &[x, w, out, &p, step]),
            grid: if head {
                Grid::HeadTokens(1)
            } else {
                Grid::Tokens(1)
            },
        });
    }

    fn matmul(
        &self,
        w: &GpuMatrix,
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
        step: &wgpu::Buffer,
        head: bool,
        list: &mut Vec<Dispatch>,
    ) -> Result<(), GpuError> {
        let pl = self.kernels.matmul(w.ty)?;
        for part in &w.parts {
            let p = uniform(
                &self.gpu,
                &[
                    part.rows as u32,
                    w.cols as u32,
                    w.row_bytes as u32,
                    w.rows as u32,
                    part.row0 as u32,
                    u32::from(head),
                ],
            );
            list.push(Dispatch {
                pipeline: pl.clone(),
                bind: bind(&self.gpu, pl, &[&part.buffer, x, out, &p, step]),
                grid: if head {
                    Grid::HeadTiles(part.rows.div_ceil(64) as u32)
                } else {
                    Grid::Tiles(part.rows.div_ceil(64) as u32)
                },
            });
        }
        Ok(())
    }

    /// `y (+)= b`: a bias broadcast over tokens, or a residual of `dim` values per token.
    fn add(
        &self,
        y: &wgpu::Buffer,
        b: &wgpu::Buffer,
        dim: usize,
        bcast: bool,
        step: &wgpu::Buffer,
        list: &mut Vec<Dispatch>,
    ) {
        let p = uniform(&self.gpu, &[dim as u32, u32::from(bcast)]);
        let pl = &self.kernels.add;
        list.push(Dispatch {
            pipeline: pl.clone(),
            bind: bind(&self.gpu, pl, &[y, b, &p, step]),
            grid: Grid::Elems(dim as u32),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record_layer(
        &self,
        l: &Layer,
        a: &Acts,
        kc: &wgpu::Buffer,
        vc: &wgpu::Buffer,
        step: &wgpu::Buffer,
        n_ctx: usize,
        list: &mut Vec<Dispatch>,
    ) -> Result<(), GpuError> {
        let c = &self.cfg;
        let gpu = &*self.gpu;
        let k = &self.kernels;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        // Attention block.
        self.norm(&a.x, &l.attn_norm, &a.h, step, false, list);
        self.matmul(&l.wq, &a.h, &a.q, step, false, list)?;
        self.matmul(&l.wk, &a.h, &a.k, step, false, list)?;
        self.matmul(&l.wv, &a.h, &a.v, step, false, list)?;
        if let Some([bq, bk, bv]) = &l.bias {
            self.add(&a.q, bq, q_dim, true, step, list);
            self.add(&a.k, bk, kv_dim, true, step, list);
            self.add(&a.v, bv, kv_dim, true, step, list);
        }
        let half = c.n_rot / 2;
        for (buf, heads) in [(&a.q, c.n_head), (&a.k, c.n_head_kv)] {
            let p = uniform(
                gpu,
                &[
                    heads as u32,
                    c.head_dim as u32,
                    c.n_rot as u32,
                    u32::from(c.neox),
                ],
            );
            list.push(Dispatch {
                pipeline: k.rope.clone(),
                bind: bind(gpu, &k.rope, &[buf, &self.inv_freq, &p, step]),
                grid: Grid::Tokens((heads * half).div_ceil(64) as u32),
            });
        }
        for (src, cache) in [(&a.k, kc), (&a.v, vc)] {
            let p = uniform(gpu, &[kv_dim as u32]);
            list.push(Dispatch {
                pipeline: k.kv_write.clone(),
                bind: bind(gpu, &k.kv_write, &[src, cache, &p, step]),
                grid: Grid::Tokens((kv_dim / 2).div_ceil(64) as u32),
            });
        }
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let p = uniform(
            gpu,
            &[
                c.n_head as u32,
                c.n_head_kv as u32,
                c.head_dim as u32,
                n_ctx as u32,
                scale.to_bits(),
            ],
        );
        list.push(Dispatch {
            pipeline: k.attention.clone(),
            bind: bind(
                gpu,
                &k.attention,
                &[&a.q, kc, vc, &a.att, &a.scores, &p, step],
            ),
            grid: Grid::Tokens(c.n_head as u32),
        });
        self.matmul(&l.wo, &a.att, &a.h, step, false, list)?;
        self.add(&a.x, &a.h, c.n_embd, false, step, list);
        // FFN block.
        self.norm(&a.x, &l.ffn_norm, &a.h, step, false, list);
        self.matmul(&l.w_gate, &a.h, &a.gate, step, false, list)?;
        self.matmul(&l.w_up, &a.h, &a.up, step, false, list)?;
        let p = uniform(gpu, &[c.n_ff as u32]);
        list.push(Dispatch {
            pipeline: k.swiglu.clone(),
            bind: bind(gpu, &k.swiglu, &[&a.gate, &a.up, &p, step]),
            grid: Grid::Elems(c.n_ff as u32),
        });
        self.matmul(&l.w_down, &a.gate, &a.h, step, false, list)?;
        self.add(&a.x, &a.h, c.n_embd, false, step, list);
        Ok(())
    }

    /// Run `x` (`n * n_embd` embeddings of tokens at positions `pos0 ..`) through the GPU
    /// layers and return what `out` asks for. Batches larger than the state's scratch are cut.
    pub fn forward<'s>(
        &self,
        st: &'s mut GpuState,
        x: &[f32],
        pos0: usize,
        out: Output,
    ) -> Result<&'s [f32], GpuError> {
        let c = &self.cfg;
        let n = x.len() / c.n_embd;
        if n == 0 || x.len() != n * c.n_embd || pos0 + n > st.n_ctx {
            return Err(GpuError::Runtime(format!(
                "{} values at position {pos0} for a context of {}",
                x.len(),
                st.n_ctx
            )));
        }
        if let Output::Logits { first, count } = out {
            if st.logits.is_none() || first + count > n || count == 0 {
                return Err(GpuError::Runtime(
                    "logits asked of a GPU state without the output head".into(),
                ));
            }
        }
        st.out.clear();
        let mut t0 = 0;
        while t0 < n {
            let m = st.max_batch.min(n - t0);
            // The logits this chunk holds, relative to the chunk.
            let (lf, lc) = match out {
                Output::Logits { first, count } => {
                    let lo = first.max(t0);
                    let hi = (first + count).min(t0 + m);
                    (lo.saturating_sub(t0), hi.saturating_sub(lo))
                }
                _ => (0, 0),
            };
            self.run_chunk(
                st,
                &x[t0 * c.n_embd..(t0 + m) * c.n_embd],
                pos0 + t0,
                m,
                out,
                lf,
                lc,
            )?;
            t0 += m;
        }
        Ok(&st.out)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_chunk(
        &self,
        st: &mut GpuState,
        x: &[f32],
        pos0: usize,
        m: usize,
        out: Output,
        lf: usize,
        lc: usize,
    ) -> Result<(), GpuError> {
        let c = &self.cfg;
        let gpu = &*self.gpu;
        let step = [m as u32, pos0 as u32, lf as u32, lc as u32];
        gpu.queue
            .write_buffer(&st.step, 0, bytemuck::cast_slice(&step));
        gpu.queue.write_buffer(&st.x, 0, bytemuck::cast_slice(x));
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("token"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("layers"),
                timestamp_writes: None,
            });
            record(&mut pass, &st.layers, m as u32, lc as u32);
            if lc > 0 {
                record(&mut pass, &st.head, m as u32, lc as u32);
            }
        }
        let bytes = match (out, &st.logits) {
            (Output::Hidden, _) => {
                let b = (m * c.n_embd * 4) as u64;
                enc.copy_buffer_to_buffer(&st.x, 0, &st.readback, 0, b);
                b
            }
            (Output::Logits { .. }, Some(logits)) if lc > 0 => {
                let b = (lc * c.n_vocab * 4) as u64;
                enc.copy_buffer_to_buffer(logits, 0, &st.readback, 0, b);
                b
            }
            _ => 0,
        };
        gpu.queue.submit([enc.finish()]);
        if bytes == 0 {
            return gpu.wait();
        }
        let slice = st.readback.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Runtime(format!("reading back: {e}"))),
            Err(_) => return Err(GpuError::Runtime("reading back: no answer".into())),
        }
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Runtime(format!("reading back: {e}")))?;
            st.out.extend_from_slice(bytemuck::cast_slice(&view));
        }
        st.readback.unmap();
        Ok(())
    }
}

impl GpuState {
    /// Positions the state's KV cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
}

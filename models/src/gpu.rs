//! The GPU forward pass (feature `vulkan`): layers `[0, N)` on the GPU through hearth-vulkan,
//! the rest on the CPU, with one hand-off of the hidden state per call. With every layer on the
//! GPU the output norm and projection run there too and only the logits come back.
//!
//! The GPU keeps its own f16 KV cache for its layers; the CPU [`KvCache`] holds the rest, and
//! its `len` stays the one position counter of the conversation (so truncating it, to reuse a
//! prompt prefix, truncates both).

use std::sync::Arc;

use hearth_vulkan::layers::{Config, GpuLayers, GpuState, HeadWeights, LayerWeights, Output};
use hearth_vulkan::WeightRef;
pub use hearth_vulkan::{list_adapters, AdapterSummary, Gpu, GpuError};

use crate::kv_cache::KvCache;
use crate::model::{Logits, Model, Scratch, Weight};
use crate::ops::rope::RopeKind;
use crate::ModelError;

/// The GPU part of a model: its first layers' weights, uploaded once.
pub struct GpuModel {
    layers: GpuLayers,
    description: String,
}

/// One conversation's GPU state (KV cache of the GPU layers, activations).
pub struct GpuSession {
    state: GpuState,
    hidden: Vec<f32>,
}

fn gpu_err(e: GpuError) -> ModelError {
    ModelError::Gpu(e.to_string())
}

impl GpuModel {
    /// Upload the first `n_layers` layers of `model` (all of them, and the head, when
    /// `n_layers >= n_layer`) to `gpu`.
    pub fn load(model: &Model, n_layers: usize, gpu: Arc<Gpu>) -> Result<GpuModel, GpuError> {
        let hp = &model.hp;
        let n = n_layers.min(hp.n_layer);
        let rope = &model.rope;
        // `Rope::cache`'s angle for pair i is freq_scale * pos * theta_scale^i / factor[i].
        let theta_scale = rope.freq_base.powf(-2.0 / rope.n_rot as f32);
        let mut inv_freq = Vec::with_capacity(rope.n_rot / 2);
        let mut theta = 1.0f32;
        for i in 0..rope.n_rot / 2 {
            let ff = rope
                .freq_factors
                .as_ref()
                .and_then(|f| f.get(i).copied())
                .unwrap_or(1.0);
            inv_freq.push(rope.freq_scale * theta / ff);
            theta *= theta_scale;
        }
        let cfg = Config {
            n_embd: hp.n_embd,
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            n_ff: hp.n_ff,
            n_vocab: hp.n_vocab,
            rms_eps: hp.rms_eps,
            n_rot: rope.n_rot,
            neox: rope.kind == RopeKind::Neox,
            inv_freq,
        };
        let w = |w: Weight| {
            let v = model.view(w);
            WeightRef {
                ty: v.ty,
                rows: v.rows,
                cols: v.cols,
                data: v.data,
            }
        };
        let layers: Vec<LayerWeights> = model.layers[..n]
            .iter()
            .map(|l| LayerWeights {
                attn_norm: &l.attn_norm,
                wq: w(l.wq),
                wk: w(l.wk),
                wv: w(l.wv),
                bias: l.bias.as_ref().map(|[q, k, v]| [&q[..], &k[..], &v[..]]),
                wo: w(l.wo),
                ffn_norm: &l.ffn_norm,
                w_gate: w(l.w_gate),
                w_up: w(l.w_up),
                w_down: w(l.w_down),
            })
            .collect();
        let head = (n == hp.n_layer).then(|| HeadWeights {
            norm: &model.output_norm,
            output: w(model.output),
        });
        let description = gpu.describe();
        let layers = GpuLayers::new(gpu, cfg, &layers, head)?;
        Ok(GpuModel {
            layers,
            description,
        })
    }

    /// Layers on the GPU.
    pub fn n_layers(&self) -> usize {
        self.layers.n_layers()
    }

    /// The adapter, for messages.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Bytes of weights on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        self.layers.weight_bytes()
    }

    /// GPU memory for a conversation of `n_ctx` positions.
    pub fn new_session(&self, n_ctx: usize) -> Result<GpuSession, GpuError> {
        Ok(GpuSession {
            state: self.layers.new_state(n_ctx)?,
            hidden: Vec::new(),
        })
    }

    /// [`Model::forward`] with the first layers on the GPU. A GPU failure is
    /// [`ModelError::Gpu`]; the caller may then go on with the CPU from an empty cache.
    pub fn forward<'s>(
        &self,
        model: &Model,
        tokens: &[u32],
        cache: &mut KvCache,
        want: Logits,
        gs: &mut GpuSession,
        scratch: &'s mut Scratch,
    ) -> Result<&'s [f32], ModelError> {
        let (n, pos0) = (tokens.len(), cache.len);
        scratch.logits.clear();
        if n == 0 {
            return Ok(&scratch.logits);
        }
        model.check_input(tokens, cache)?;
        if pos0 + n > gs.state.n_ctx() {
            return Err(ModelError::ContextFull {
                n_ctx: gs.state.n_ctx(),
                needed: pos0 + n,
            });
        }
        gs.hidden.clear();
        gs.hidden.resize(n * model.hp.n_embd, 0.0);
        model.embed(tokens, &mut gs.hidden)?;
        if self.layers.has_head() {
            let out = match want {
                Logits::None => Output::None,
                Logits::Last => Output::Logits {
                    first: n - 1,
                    count: 1,
                },
                Logits::All => Output::Logits { first: 0, count: n },
            };
            let logits = self
                .layers
                .forward(&mut gs.state, &gs.hidden, pos0, out)
                .map_err(gpu_err)?;
            scratch.logits.extend_from_slice(logits);
            cache.len = pos0 + n;
            return Ok(&scratch.logits);
        }
        let hidden = self
            .layers
            .forward(&mut gs.state, &gs.hidden, pos0, Output::Hidden)
            .map_err(gpu_err)?;
        model.forward_from(tokens, self.n_layers(), Some(hidden), cache, want, scratch)
    }
}

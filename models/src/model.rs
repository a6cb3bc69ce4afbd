//! A loaded decoder-only model and its forward pass, shared by the architectures in [`crate::arch`].
//!
//! Weights stay in the memory map: a layer holds tensor views (index, type, shape), and each
//! matmul reads the mapped bytes in place. Only the small f32 vectors (norm weights, biases) are
//! copied out. The forward pass reads top to bottom like llama2.c's, one step per block.

use std::sync::Arc;

use hearth_quant::GgmlType;

use crate::arch::{self, HParams, Variant};
use crate::gguf::GgufFile;
use crate::kv_cache::KvCache;
use crate::ops::attention::{attention, AttnShape};
use crate::ops::matmul::{matmul, MatmulScratch, QMatrix};
use crate::ops::norm::rms_norm;
use crate::ops::pool::for_each_chunk;
use crate::ops::rope::Rope;
use crate::ModelError;

/// A 2-D weight living in the mapped file: `rows` outputs of `cols` inputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Weight {
    idx: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

/// The weights of one transformer block.
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) attn_norm: Vec<f32>,         // (n_embd)
    pub(crate) wq: Weight,                  // (n_head * head_dim, n_embd)
    pub(crate) wk: Weight,                  // (n_head_kv * head_dim, n_embd)
    pub(crate) wv: Weight,                  // (n_head_kv * head_dim, n_embd)
    pub(crate) bias: Option<[Vec<f32>; 3]>, // q, k, v biases (qwen2)
    pub(crate) wo: Weight,                  // (n_embd, n_head * head_dim)
    pub(crate) ffn_norm: Vec<f32>,          // (n_embd)
    pub(crate) w_gate: Weight,              // (n_ff, n_embd)
    pub(crate) w_up: Weight,                // (n_ff, n_embd)
    pub(crate) w_down: Weight,              // (n_embd, n_ff)
}

/// Which logits a forward call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None: only fill the KV cache (prompt batches before the last one).
    None,
    /// Only the last token's (generation).
    Last,
    /// Every token's, `n_tokens * n_vocab` (perplexity, tests).
    All,
}

/// A model ready to run.
pub struct Model {
    file: Arc<GgufFile>,
    pub variant: Variant,
    pub hp: HParams,
    tok_embd: Weight,          // (n_vocab, n_embd)
    pub(crate) output: Weight, // (n_vocab, n_embd), possibly the same tensor as tok_embd
    pub(crate) output_norm: Vec<f32>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) rope: Rope,
}

impl Model {
    /// Check every tensor the architecture needs (presence, shape, type) and build the model.
    pub fn load(file: Arc<GgufFile>) -> Result<Model, ModelError> {
        let variant = arch::variant_of(&file)?;
        let tok_embd = find(&file, "token_embd.weight")?;
        let n_vocab = tok_embd_rows(&file, tok_embd)?;
        let hp = HParams::from_metadata(file.metadata(), n_vocab)?;
        let loader = Loader {
            file: &file,
            hp: &hp,
        };
        let tok_embd = loader.matrix("token_embd.weight", hp.n_vocab, hp.n_embd)?;
        let output = match file.tensor("output.weight") {
            Some(_) => loader.matrix("output.weight", hp.n_vocab, hp.n_embd)?,
            None => tok_embd,
        };
        let output_norm = loader.vector("output_norm.weight", hp.n_embd)?;
        let layers = (0..hp.n_layer)
            .map(|l| loader.layer(l, variant))
            .collect::<Result<Vec<_>, _>>()?;
        let freq_factors = match file.tensor("rope_freqs.weight") {
            Some(_) => Some(loader.vector("rope_freqs.weight", hp.rope_dims / 2)?),
            None => None,
        };
        let rope = Rope {
            kind: variant.rope,
            n_rot: hp.rope_dims,
            freq_base: hp.rope_base,
            freq_scale: hp.rope_freq_scale,
            freq_factors,
        };
        Ok(Model {
            file,
            variant,
            hp,
            tok_embd,
            output,
            output_norm,
            layers,
            rope,
        })
    }

    /// The file the weights are mapped from.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// Width of a KV cache row (keys of every KV head for one position).
    pub fn kv_dim(&self) -> usize {
        self.hp.n_head_kv * self.hp.head_dim
    }

    pub(crate) fn view(&self, w: Weight) -> QMatrix<'_> {
        let info = &self.file.tensors()[w.idx];
        QMatrix {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            data: self.file.tensor_data(info),
        }
    }

    /// Run `tokens` (positions `cache.len ..`) through the model, append their keys and values to
    /// `cache`, and return the requested logits (`n_vocab` per row), which live in `scratch`
    /// until the next call.
    pub fn forward<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        want: Logits,
        scratch: &'s mut Scratch,
    ) -> Result<&'s [f32], ModelError> {
        self.forward_from(tokens, 0, None, cache, want, scratch)
    }

    /// Check that `tokens` fit after what `cache` holds and are in the vocabulary.
    pub fn check_input(&self, tokens: &[u32], cache: &KvCache) -> Result<(), ModelError> {
        let hp = &self.hp;
        let (n, pos0) = (tokens.len(), cache.len);
        if pos0 + n > cache.n_ctx {
            return Err(ModelError::ContextFull {
                n_ctx: cache.n_ctx,
                needed: pos0 + n,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(ModelError::BadToken {
                token: bad,
                n_vocab: hp.n_vocab,
            });
        }
        Ok(())
    }

    /// The token embeddings of `tokens` into `out` (`n_embd` per token; checked tokens).
    pub fn embed(&self, tokens: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let embd = self.view(self.tok_embd);
        for (row, &t) in out.chunks_exact_mut(self.hp.n_embd).zip(tokens) {
            embd.dequantize_row(t as usize, row)?;
        }
        Ok(())
    }

    /// [`Model::forward`] for layers `first_layer..` only: `hidden` is the output of the layers
    /// before (run elsewhere, on the GPU), `n_embd` per token; `None` starts at the embeddings.
    pub fn forward_from<'s>(
        &self,
        tokens: &[u32],
        first_layer: usize,
        hidden: Option<&[f32]>,
        cache: &mut KvCache,
        want: Logits,
        scratch: &'s mut Scratch,
    ) -> Result<&'s [f32], ModelError> {
        let hp = &self.hp;
        let (n, pos0) = (tokens.len(), cache.len);
        scratch.logits.clear();
        if n == 0 {
            return Ok(&scratch.logits);
        }
        self.check_input(tokens, cache)?;
        let s = scratch.prepare(hp, n);
        // x: (n, n_embd) token embeddings, or the hidden state after `first_layer` layers
        match hidden {
            Some(h) if h.len() == s.x.len() => s.x.copy_from_slice(h),
            Some(h) => {
                return Err(ModelError::BadShape(format!(
                    "{} hidden values for {n} tokens of {}",
                    h.len(),
                    hp.n_embd
                )))
            }
            None => self.embed(tokens, &mut s.x)?,
        }
        for (l, layer) in self.layers.iter().enumerate().skip(first_layer) {
            self.attention_block(l, layer, pos0, n, cache, s)?;
            self.ffn_block(layer, n, s)?;
        }
        cache.len = pos0 + n;
        // Final norm and the output projection, for the rows asked for.
        let rows = match want {
            Logits::None => return Ok(&s.logits),
            Logits::Last => n - 1..n,
            Logits::All => 0..n,
        };
        let x = &s.x[rows.start * hp.n_embd..rows.end * hp.n_embd];
        let h = &mut s.h[..x.len()];
        rms_norm(x, &self.output_norm, hp.rms_eps, h);
        s.logits.resize(rows.len() * hp.n_vocab, 0.0);
        matmul(
            &self.view(self.output),
            h,
            rows.len(),
            &mut s.logits,
            &mut s.mm,
        )?;
        Ok(&s.logits)
    }

    /// `x += wo · attention(rope(wq·norm(x)), rope(wk·norm(x)), wv·norm(x))`
    fn attention_block(
        &self,
        l: usize,
        layer: &Layer,
        pos0: usize,
        n: usize,
        cache: &mut KvCache,
        s: &mut Scratch,
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let (q_dim, kv_dim) = (hp.n_head * hp.head_dim, self.kv_dim());
        rms_norm(&s.x, &layer.attn_norm, hp.rms_eps, &mut s.h);
        matmul(&self.view(layer.wq), &s.h, n, &mut s.q, &mut s.mm)?;
        matmul(&self.view(layer.wk), &s.h, n, &mut s.k, &mut s.mm)?;
        matmul(&self.view(layer.wv), &s.h, n, &mut s.v, &mut s.mm)?;
        if let Some([bq, bk, bv]) = &layer.bias {
            add_bias(&mut s.q, bq);
            add_bias(&mut s.k, bk);
            add_bias(&mut s.v, bv);
        }
        for t in 0..n {
            self.rope.cache(pos0 + t, &mut s.rope);
            let q = &mut s.q[t * q_dim..(t + 1) * q_dim];
            self.rope.apply(q, hp.head_dim, &s.rope);
            let k = &mut s.k[t * kv_dim..(t + 1) * kv_dim];
            self.rope.apply(k, hp.head_dim, &s.rope);
        }
        cache.keys[l].write(pos0 * kv_dim, &s.k);
        cache.values[l].write(pos0 * kv_dim, &s.v);
        let shape = AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
        };
        attention(
            &s.q,
            &cache.keys[l],
            &cache.values[l],
            shape,
            pos0,
            &mut s.att,
            &mut s.att_tmp,
        );
        matmul(&self.view(layer.wo), &s.att, n, &mut s.h, &mut s.mm)?;
        add_in_place(&mut s.x, &s.h);
        Ok(())
    }

    /// `x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x)))`
    fn ffn_block(&self, layer: &Layer, n: usize, s: &mut Scratch) -> Result<(), ModelError> {
        let hp = &self.hp;
        rms_norm(&s.x, &layer.ffn_norm, hp.rms_eps, &mut s.h);
        matmul(&self.view(layer.w_gate), &s.h, n, &mut s.gate, &mut s.mm)?;
        matmul(&self.view(layer.w_up), &s.h, n, &mut s.up, &mut s.mm)?;
        // libm's expf, as ggml's scalar `ggml_silu_f32`: ggml's AVX2 build uses its vector
        // expf here, which measured 2% faster on prompts but moved SmolLM2's third token alone
        // vs in a batch past the KL bar of `tests/generation_fixtures.rs` (0.014).
        let (ff, up) = (hp.n_ff, &s.up);
        for_each_chunk(&mut s.gate, ff, |t, g| {
            for (g, &u) in g.iter_mut().zip(&up[t * ff..(t + 1) * ff]) {
                *g = silu(*g) * u;
            }
        });
        matmul(&self.view(layer.w_down), &s.gate, n, &mut s.h, &mut s.mm)?;
        add_in_place(&mut s.x, &s.h);
        Ok(())
    }
}

/// ggml's `ggml_silu_f32`.
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add_in_place(row, bias);
    }
}

/// Buffers for one forward call, reused between calls so generation does not allocate per token.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    /// Attention's own scratch (split partials, tiled head-major output).
    att_tmp: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    rope: Vec<f32>,
    pub(crate) logits: Vec<f32>,
    mm: MatmulScratch,
}

impl Scratch {
    /// The logits of the last forward call.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Put back logits saved from an earlier call (a session answering the same prompt again).
    pub fn restore_logits(&mut self, logits: &[f32]) {
        self.logits.clear();
        self.logits.extend_from_slice(logits);
    }

    fn prepare(&mut self, hp: &HParams, n: usize) -> &mut Scratch {
        let q_dim = hp.n_head * hp.head_dim;
        let kv_dim = hp.n_head_kv * hp.head_dim;
        resize(&mut self.x, n * hp.n_embd);
        resize(&mut self.h, n * hp.n_embd);
        resize(&mut self.q, n * q_dim);
        resize(&mut self.k, n * kv_dim);
        resize(&mut self.v, n * kv_dim);
        resize(&mut self.att, n * q_dim);
        resize(&mut self.gate, n * hp.n_ff);
        resize(&mut self.up, n * hp.n_ff);
        resize(&mut self.rope, hp.rope_dims);
        self
    }
}

fn resize(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

fn find(file: &GgufFile, name: &str) -> Result<usize, ModelError> {
    file.tensors()
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
}

fn tok_embd_rows(file: &GgufFile, idx: usize) -> Result<usize, ModelError> {
    let t = &file.tensors()[idx];
    match t.dims.as_slice() {
        [_, rows] => usize::try_from(*rows).map_err(|_| ModelError::BadShape(t.name.clone())),
        _ => Err(ModelError::BadShape(format!(
            "token_embd.weight has shape {:?}, expected 2 dimensions",
            t.dims
        ))),
    }
}

/// Looks tensors up by name and checks their shapes against the hyper-parameters.
struct Loader<'a> {
    file: &'a GgufFile,
    hp: &'a HParams,
}

impl Loader<'_> {
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight, ModelError> {
        let idx = find(self.file, name)?;
        let t = &self.file.tensors()[idx];
        if t.dims.as_slice() != [cols as u64, rows as u64] {
            return Err(ModelError::WrongShape {
                tensor: name.to_string(),
                expected: vec![cols as u64, rows as u64],
                found: t.dims.clone(),
            });
        }
        crate::ops::matmul::check_supported(t.ty)
            .map_err(|_| ModelError::UnsupportedType(name.to_string(), t.ty))?;
        Ok(Weight {
            idx,
            ty: t.ty,
            rows,
            cols,
        })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let idx = find(self.file, name)?;
        let t = &self.file.tensors()[idx];
        if t.dims.as_slice() != [len as u64] {
            return Err(ModelError::WrongShape {
                tensor: name.to_string(),
                expected: vec![len as u64],
                found: t.dims.clone(),
            });
        }
        let mut out = vec![0.0f32; len];
        hearth_quant::dequantize_row(t.ty, self.file.tensor_data(t), &mut out)
            .map_err(|e| ModelError::Quant(format!("{name}: {e}")))?;
        Ok(out)
    }

    fn layer(&self, l: usize, variant: Variant) -> Result<Layer, ModelError> {
        let hp = self.hp;
        let (q_dim, kv_dim) = (hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim);
        let name = |s: &str| format!("blk.{l}.{s}");
        let bias = if variant.qkv_bias {
            Some([
                self.vector(&name("attn_q.bias"), q_dim)?,
                self.vector(&name("attn_k.bias"), kv_dim)?,
                self.vector(&name("attn_v.bias"), kv_dim)?,
            ])
        } else {
            None
        };
        Ok(Layer {
            attn_norm: self.vector(&name("attn_norm.weight"), hp.n_embd)?,
            wq: self.matrix(&name("attn_q.weight"), q_dim, hp.n_embd)?,
            wk: self.matrix(&name("attn_k.weight"), kv_dim, hp.n_embd)?,
            wv: self.matrix(&name("attn_v.weight"), kv_dim, hp.n_embd)?,
            bias,
            wo: self.matrix(&name("attn_output.weight"), hp.n_embd, q_dim)?,
            ffn_norm: self.vector(&name("ffn_norm.weight"), hp.n_embd)?,
            w_gate: self.matrix(&name("ffn_gate.weight"), hp.n_ff, hp.n_embd)?,
            w_up: self.matrix(&name("ffn_up.weight"), hp.n_ff, hp.n_embd)?,
            w_down: self.matrix(&name("ffn_down.weight"), hp.n_embd, hp.n_ff)?,
        })
    }
}

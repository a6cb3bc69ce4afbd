//! Model architectures hearth runs, and the hyper-parameters they read from GGUF metadata.
//!
//! Each architecture is one file that says what is special about it (biases, rope layout, tied
//! output) as a [`Variant`]; the forward pass they share lives in [`crate::model`].

mod llama;
mod qwen2;

use crate::gguf::{GgufFile, Metadata};
use crate::ops::rope::RopeKind;
use crate::ModelError;

/// The architectures hearth knows, by their `general.architecture` name.
pub const KNOWN: &[&str] = &["llama", "qwen2"];

/// What distinguishes one decoder-only architecture from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    /// Bias vectors on the Q, K and V projections (`blk.N.attn_{q,k,v}.bias`).
    pub qkv_bias: bool,
    pub rope: RopeKind,
}

/// The variant for a file's `general.architecture`, or an error listing the known ones.
pub fn variant_of(file: &GgufFile) -> Result<Variant, ModelError> {
    let arch = file.metadata().architecture()?;
    match arch {
        "llama" => Ok(llama::VARIANT),
        "qwen2" => Ok(qwen2::VARIANT),
        other => Err(ModelError::UnknownArchitecture {
            arch: other.to_string(),
            known: KNOWN.join(", "),
        }),
    }
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    pub rope_dims: usize,
    /// `1 / rope.scaling.factor` for linear scaling, else 1.
    pub rope_freq_scale: f32,
}

impl HParams {
    /// Read from `{arch}.*` metadata; a missing key is an error naming it.
    pub fn from_metadata(md: &Metadata, n_vocab: usize) -> Result<HParams, ModelError> {
        let arch = md.architecture()?;
        let u = |k: &str| -> Result<usize, ModelError> { Ok(md.arch_u32(k)? as usize) };
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let n_head_kv = match md.get_opt_u32(&format!("{arch}.attention.head_count_kv"))? {
            Some(n) => n as usize,
            None => n_head,
        };
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 || n_embd % n_head != 0 {
            return Err(ModelError::BadShape(format!(
                "{arch}: {n_head} heads, {n_head_kv} KV heads and embedding {n_embd} do not fit together"
            )));
        }
        let head_dim = match md.get_opt_u32(&format!("{arch}.attention.key_length"))? {
            Some(n) => n as usize,
            None => n_embd / n_head,
        };
        let rope_dims = match md.get_opt_u32(&format!("{arch}.rope.dimension_count"))? {
            Some(n) => n as usize,
            None => head_dim,
        };
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(ModelError::BadShape(format!(
                "{arch}.rope.dimension_count = {rope_dims} does not fit head size {head_dim}"
            )));
        }
        let rope_freq_scale = rope_scale(md, arch)?;
        Ok(HParams {
            n_vocab,
            n_embd,
            n_layer: u("block_count")?,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: u("feed_forward_length")?,
            n_ctx_train: u("context_length")?,
            rms_eps: md.arch_f32("attention.layer_norm_rms_epsilon")?,
            rope_base: md
                .get_opt_f32(&format!("{arch}.rope.freq_base"))?
                .unwrap_or(10000.0),
            rope_dims,
            rope_freq_scale,
        })
    }
}

/// The rope frequency scale from `{arch}.rope.scaling.*`: linear scaling divides positions by the
/// factor; llama3-style scaling ships its per-frequency factors as a tensor instead (handled by
/// the model loader); other schemes (YaRN, LongRoPE) are not supported yet and say so.
fn rope_scale(md: &Metadata, arch: &str) -> Result<f32, ModelError> {
    let ty = md.get_opt_str(&format!("{arch}.rope.scaling.type"))?;
    let factor = md.get_opt_f32(&format!("{arch}.rope.scaling.factor"))?;
    match (ty, factor) {
        (None | Some("none"), _) => Ok(1.0),
        (Some("linear"), Some(f)) if f > 0.0 && f.is_finite() => Ok(1.0 / f),
        (Some("linear"), _) => Ok(1.0),
        (Some("llama3"), _) => Ok(1.0),
        (Some(other), _) => Err(ModelError::Unsupported(format!(
            "{arch}.rope.scaling.type = {other}"
        ))),
    }
}

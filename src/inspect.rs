//! What a user wants to know about a model file before running it (`hearth info`).
//!
//! Everything here is computed from the validated GGUF header alone: no tensor data is read, so it
//! is instant even for a 40 GB file.

use std::collections::BTreeMap;

use hearth_models::gguf::GgufFile;

use crate::chat::defaults::DEFAULT_CTX;

/// Tensors of one type: how many and how many bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeShare {
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
}

/// A summary of a model file.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub name: Option<String>,
    pub architecture: String,
    pub params: u64,
    pub file_bytes: u64,
    pub tensor_bytes: u64,
    pub quant_mix: BTreeMap<&'static str, TypeShare>,
    pub file_type: Option<u32>,
    pub context_length: Option<u64>,
    pub block_count: Option<u64>,
    pub embedding_length: Option<u64>,
    pub head_count: Option<u64>,
    pub head_count_kv: Option<u64>,
    pub key_length: Option<u64>,
    pub value_length: Option<u64>,
    pub vocab_model: Option<String>,
    pub vocab_pre: Option<String>,
    pub vocab_size: Option<usize>,
    pub chat_template: bool,
}

impl ModelSummary {
    /// Summarise a file that has already been opened (and so validated) by the GGUF reader.
    pub fn from_gguf(file: &GgufFile) -> anyhow::Result<ModelSummary> {
        let md = file.metadata();
        let architecture = md.architecture()?.to_string();
        let arch_u64 = |suffix: &str| -> anyhow::Result<Option<u64>> {
            Ok(md.get_opt_u64(&format!("{architecture}.{suffix}"))?)
        };
        let mut quant_mix: BTreeMap<&'static str, TypeShare> = BTreeMap::new();
        let (mut params, mut tensor_bytes) = (0u64, 0u64);
        for t in file.tensors() {
            let share = quant_mix.entry(t.ty.name()).or_default();
            share.tensors += 1;
            share.params = share.params.saturating_add(t.n_elements());
            share.bytes = share.bytes.saturating_add(t.n_bytes());
            params = params.saturating_add(t.n_elements());
            tensor_bytes = tensor_bytes.saturating_add(t.n_bytes());
        }
        let head_count = arch_u64("attention.head_count")?;
        let embedding_length = arch_u64("embedding_length")?;
        let head_dim = match (embedding_length, head_count) {
            (Some(e), Some(h)) if h > 0 => Some(e / h),
            _ => None,
        };
        Ok(ModelSummary {
            name: md.get_opt_str("general.name")?.map(str::to_string),
            params,
            file_bytes: file.file_size(),
            tensor_bytes,
            quant_mix,
            file_type: md.get_opt_u32("general.file_type")?,
            context_length: arch_u64("context_length")?,
            block_count: arch_u64("block_count")?,
            embedding_length,
            head_count,
            head_count_kv: arch_u64("attention.head_count_kv")?.or(head_count),
            key_length: arch_u64("attention.key_length")?.or(head_dim),
            value_length: arch_u64("attention.value_length")?.or(head_dim),
            vocab_model: md.get_opt_str("tokenizer.ggml.model")?.map(str::to_string),
            vocab_pre: md.get_opt_str("tokenizer.ggml.pre")?.map(str::to_string),
            vocab_size: md
                .get("tokenizer.ggml.tokens")
                .and_then(|_| md.get_str_array("tokenizer.ggml.tokens").ok())
                .map(|t| t.len()),
            chat_template: md.contains("tokenizer.chat_template"),
            architecture,
        })
    }

    /// The context hearth uses by default: 4096, or the trained length if smaller.
    pub fn default_ctx(&self) -> u64 {
        match self.context_length {
            Some(n) if n > 0 => n.min(DEFAULT_CTX as u64),
            _ => DEFAULT_CTX as u64,
        }
    }

    /// Bytes of an f16 KV cache holding `ctx` positions, when the shape is known.
    pub fn kv_cache_bytes(&self, ctx: u64) -> Option<u64> {
        let layers = self.block_count?;
        let kv_heads = self.head_count_kv?;
        let per_pos = kv_heads.checked_mul(self.key_length? + self.value_length?)?;
        layers
            .checked_mul(per_pos)?
            .checked_mul(ctx)?
            .checked_mul(2)
    }

    /// The most common weight type by bytes, the way users name a file's quantization.
    pub fn main_type(&self) -> Option<&'static str> {
        self.quant_mix
            .iter()
            .filter(|(name, _)| !matches!(**name, "F32"))
            .max_by_key(|(_, share)| share.bytes)
            .map(|(name, _)| *name)
    }
}

/// `1234567` → `"1.23 MB"` (decimal units, as file sizes are usually shown).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// `494032768` → `"494.03M"`.
pub fn human_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.2}K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(98_362_432), "98.36 MB");
        assert_eq!(human_count(494_032_768), "494.03M");
        assert_eq!(human_count(1_777_088_000), "1.78B");
    }
}

//! Flags shared by the verbs that load a model and generate.

use std::path::PathBuf;

use clap::Args;
use hearth_models::kv_cache::CacheType;

use crate::engine::LoadOptions;
use crate::sampler::SamplerParams;

/// Model loading flags.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Path to a GGUF model file (the first part of a split model).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Worker threads (default: one per physical core).
    #[arg(short, long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (default 4096, capped at the model's trained length).
    #[arg(short = 'c', long)]
    pub ctx_size: Option<usize>,
    /// Most tokens per forward pass while processing a prompt.
    #[arg(short, long, default_value_t = 512)]
    pub batch: usize,
    /// KV cache element type: f16, f32 or q8_0 (q8_0 needs a head size that is a multiple of 32).
    #[arg(long, default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type: CacheType,
}

fn parse_cache_type(s: &str) -> Result<CacheType, String> {
    CacheType::parse(s).ok_or_else(|| format!("unknown cache type `{s}` (f16, f32, q8_0)"))
}

impl ModelArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            threads: self.threads,
            ctx_size: self.ctx_size,
            batch: self.batch,
            cache_type: self.cache_type,
        }
    }
}

/// Sampling flags, with llama.cpp's names and defaults.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long, alias = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = 40)]
    pub top_k: i32,
    /// Keep the smallest set of tokens whose probabilities add up to p (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalise repeated tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at (-1: the whole context, 0: off).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
    pub repeat_last_n: i32,
    /// Subtract this from tokens already present (0: off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract this times the count of each token already present (0: off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Random seed, for reproducible sampling.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplerParams {
        SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            ..SamplerParams::default()
        }
    }
}

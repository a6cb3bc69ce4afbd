//! Flags shared by the verbs that load a model and generate.

use std::path::PathBuf;

use clap::Args;
use hearth_models::kv_cache::CacheType;

use crate::chat::defaults::ModelDefaults;
use crate::chat::prompt::{ChatFormat, ThinkMode};
use crate::engine::LoadOptions;
use crate::sampler::SamplerParams;

/// Model loading flags.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model: a name (`deepseek-r1:1.5b`, `hf.co/ORG/REPO:Q4_K_M`; see `hearth list`, `hearth
    /// fit`) fetched on first use, or a path to a GGUF file (the first part of a split model).
    /// Default: the default model.
    #[arg(short, long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Load even when the model does not seem to fit in the memory available.
    #[arg(long)]
    pub force: bool,
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
    /// Run on the GPU (Vulkan, Metal on macOS): every layer, unless -ngl says fewer. Needs a
    /// build with `--features vulkan`; `HEARTH_GPU=N` picks adapter N of `hearth info --gpus`.
    /// Without a usable GPU, hearth says so and runs on the CPU.
    #[arg(long)]
    pub gpu: bool,
    /// Layers to run on the GPU (`-ngl`; the first N, the rest on the CPU; 0: none). Implies
    /// --gpu.
    #[arg(long = "n-gpu-layers", value_name = "N")]
    pub n_gpu_layers: Option<usize>,
}

/// llama.cpp's `-ngl N` spelling of `--n-gpu-layers N` (clap's short flags are one letter).
pub fn rewrite_ngl(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-ngl") => "--n-gpu-layers".into(),
            Some(s) if s.starts_with("-ngl=") => format!("--n-gpu-layers={}", &s[5..]).into(),
            _ => a,
        })
        .collect()
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
            force: self.force,
            gpu_layers: match (self.n_gpu_layers, self.gpu) {
                (Some(n), _) => Some(n),
                (None, true) => Some(usize::MAX),
                (None, false) => None,
            },
        }
    }

    /// The model file to load: a path as is, a name from the store (fetched on first use).
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        self.fetch.resolve(self.model.as_deref())
    }
}

/// How a model named on the command line may be fetched.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Download a model that is not here yet without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Never touch the network: only models already downloaded (also `HEARTH_OFFLINE=1`).
    #[arg(long)]
    pub offline: bool,
}

impl FetchArgs {
    pub fn options(&self) -> crate::store::PullOptions {
        crate::store::PullOptions {
            offline: crate::store::PullOptions::offline_from_env(self.offline),
            yes: self.yes,
            sha256: None,
        }
    }

    /// The file of `model` (`None`: the default model), fetched on first use.
    pub fn resolve(&self, model: Option<&str>) -> anyhow::Result<PathBuf> {
        crate::store::resolve_model(model, &self.options())
    }
}

/// Sampling flags, with llama.cpp's names and defaults.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy (default 0.8; 0.6 for DeepSeek-R1 distills).
    #[arg(long, alias = "temp")]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = 40)]
    pub top_k: i32,
    /// Keep the smallest set of tokens whose probabilities add up to p (1: off; default 0.95).
    #[arg(long)]
    pub top_p: Option<f32>,
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
    /// The sampler settings: what was given, else the model family's default, else llama.cpp's.
    pub fn params(&self, defaults: &ModelDefaults) -> SamplerParams {
        let base = SamplerParams::default();
        SamplerParams {
            temperature: self
                .temperature
                .or(defaults.temperature)
                .unwrap_or(base.temperature),
            top_k: self.top_k,
            top_p: self.top_p.or(defaults.top_p).unwrap_or(base.top_p),
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            ..base
        }
    }
}

/// Chat flags: template, system prompt and the handling of a reasoning model's thinking.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Use this chat template instead of the model's: a built-in name (chatml, llama3, gemma,
    /// deepseek-r1) or a Jinja file.
    #[arg(long, value_name = "FILE|NAME")]
    pub chat_template: Option<String>,
    /// A system prompt (folded into the first user turn for DeepSeek-R1 distills).
    #[arg(long)]
    pub system: Option<String>,
    /// Pass the system prompt as a system message even to a model that works best without one.
    #[arg(long)]
    pub keep_system: bool,
    /// A reasoning model's thinking: show it, hide it behind a one-line indicator, or skip it.
    #[arg(long, default_value = "show", value_parser = parse_think)]
    pub think: ThinkMode,
    /// End the thinking after this many tokens (the model is nudged to answer); 0 skips it.
    #[arg(long, value_name = "N")]
    pub reasoning_budget: Option<usize>,
    /// Do not close thinking that keeps repeating itself.
    #[arg(long)]
    pub no_loop_check: bool,
}

fn parse_think(s: &str) -> Result<ThinkMode, String> {
    ThinkMode::parse(s).ok_or_else(|| format!("unknown thinking mode `{s}` (show, hide, off)"))
}

impl ChatArgs {
    /// The model's chat format with these flags applied (template override, system prompt).
    pub fn format(&self, engine: &crate::engine::Engine) -> anyhow::Result<ChatFormat> {
        let mut format = ChatFormat::for_engine(engine, self.chat_template.as_deref())?;
        if self.keep_system {
            format.defaults.system_prompt = true;
        }
        Ok(format)
    }

    /// The thinking mode after the budget: a budget of 0 means no thinking.
    pub fn think_mode(&self) -> ThinkMode {
        if self.reasoning_budget == Some(0) {
            ThinkMode::Off
        } else {
            self.think
        }
    }
}

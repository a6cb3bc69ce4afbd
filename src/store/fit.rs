//! Will it fit, and how fast: the byte counts the engine's load check and `hearth fit` share.
//!
//! Memory: the weights (mapped and paged in), the KV cache at the chosen context, and the forward
//! pass's scratch buffers, against `MemAvailable`. Speed: generating one token reads every weight
//! matrix once (the token embeddings only one row, unless they double as the output), so
//! `seconds/token = Σ bytes(type) / rate(type) + dispatches × cost of one`, with the rates and
//! the dispatch cost measured on this machine by [`super::probe`]. The estimate is for short
//! contexts: attention over a long KV cache adds to it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hearth_models::arch::HParams;
use hearth_models::gguf::GgufFile;
use hearth_models::kv_cache::{CacheType, KvCache};
use hearth_quant::GgmlType;
use serde::{Deserialize, Serialize};

use crate::inspect::human_bytes;

/// The hyper-parameters that set memory and speed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Shape {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
}

impl Shape {
    pub fn from_hparams(hp: &HParams) -> Shape {
        Shape {
            n_layer: hp.n_layer,
            n_embd: hp.n_embd,
            n_ff: hp.n_ff,
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            n_vocab: hp.n_vocab,
            n_ctx_train: hp.n_ctx_train,
        }
    }

    /// From a file's metadata (without loading the model).
    pub fn from_gguf(file: &GgufFile) -> anyhow::Result<Shape> {
        let md = file.metadata();
        let n_vocab = md
            .get_str_array("tokenizer.ggml.tokens")
            .map_or(0, |t| t.len());
        let hp = HParams::from_metadata(md, n_vocab)?;
        Ok(Shape::from_hparams(&hp))
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// What loading a model at some context takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryNeed {
    pub weights: u64,
    pub kv: u64,
    pub scratch: u64,
    pub n_ctx: usize,
}

impl MemoryNeed {
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv)
            .saturating_add(self.scratch)
    }

    /// "1.2 GB (1.1 GB weights + 117 MB KV cache for 4096 tokens + 20 MB scratch)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({} weights + {} KV cache for {} tokens + {} scratch)",
            human_bytes(self.total()),
            human_bytes(self.weights),
            human_bytes(self.kv),
            self.n_ctx,
            human_bytes(self.scratch)
        )
    }
}

/// Memory for `weights` bytes of a model of `shape` at `n_ctx` tokens, prompt batches of `batch`.
pub fn memory_need(
    shape: &Shape,
    weights: u64,
    n_ctx: usize,
    batch: usize,
    cache: CacheType,
) -> MemoryNeed {
    let kv = KvCache::bytes_for(cache, shape.n_layer, n_ctx, shape.kv_dim());
    let b = batch.min(n_ctx) as u64;
    let widest = (shape
        .n_embd
        .max(shape.n_ff)
        .max(shape.n_head * shape.head_dim)) as u64;
    // Activations of a batch (about ten rows of the widest layer), its logits, and the attention
    // scores of every head over the whole context.
    let scratch = b
        .saturating_mul(widest * 10 + shape.n_vocab as u64)
        .saturating_mul(4)
        .saturating_add(
            b.saturating_mul(shape.n_head as u64)
                .saturating_mul(n_ctx as u64)
                .saturating_mul(4),
        );
    MemoryNeed {
        weights,
        kv,
        scratch,
        n_ctx,
    }
}

/// The largest context (a multiple of 256, at least 256) whose need fits in `avail`, if any.
pub fn max_ctx_that_fits(
    shape: &Shape,
    weights: u64,
    batch: usize,
    cache: CacheType,
    avail: u64,
) -> Option<usize> {
    let fits = |n: usize| memory_need(shape, weights, n, batch, cache).total() <= avail;
    let top = shape.n_ctx_train.max(256);
    if !fits(256.min(top)) {
        return None;
    }
    let (mut lo, mut hi) = (1usize, top / 256);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid * 256) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some((lo * 256).min(top))
}

/// `MemAvailable` from /proc/meminfo, where there is one.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Why a model does not fit, with the ways out: a context that fits, a smaller quantization,
/// `--force`.
pub fn refusal(
    shape: &Shape,
    need: &MemoryNeed,
    batch: usize,
    cache: CacheType,
    avail: u64,
) -> String {
    let mut options = Vec::new();
    match max_ctx_that_fits(shape, need.weights, batch, cache, avail) {
        Some(n) if n < need.n_ctx => {
            options.push(format!("a smaller context (--ctx-size {n} fits)"))
        }
        _ => options
            .push("a smaller model or quantization (the weights alone do not fit)".to_string()),
    }
    if cache == CacheType::F16 || cache == CacheType::F32 {
        options.push("a quantized KV cache (--cache-type q8_0)".to_string());
    }
    options.push("a smaller quantization (`hearth fit` lists what fits)".to_string());
    options.push("--force to load anyway (the system may swap or kill it)".to_string());
    format!(
        "not enough memory: the model needs {} but {} is available; options: {}",
        need.describe(),
        human_bytes(avail),
        options.join("; ")
    )
}

/// Weight bytes read per generated token, by type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    pub by_type: BTreeMap<&'static str, u64>,
    /// Parallel dispatches per token (matmuls and attention).
    pub dispatches: u64,
}

impl Traffic {
    pub fn bytes(&self) -> u64 {
        self.by_type.values().sum()
    }

    /// What a file reads: every matrix but the token embeddings, which only count when they
    /// are also the output projection (tied).
    pub fn of_file(file: &GgufFile, n_layer: usize) -> Traffic {
        let tied = file.tensor("output.weight").is_none();
        let mut t = Traffic {
            dispatches: 8 * n_layer as u64 + 1,
            ..Traffic::default()
        };
        for x in file.tensors() {
            let is_embd = x.name == "token_embd.weight";
            if x.dims.len() < 2 || (is_embd && !tied) {
                continue;
            }
            *t.by_type.entry(x.ty.name()).or_default() += x.n_bytes();
        }
        t
    }

    /// What a catalogued model reads, from its published size: everything in its main type but
    /// the embeddings (unless tied), which are about `n_vocab × n_embd` weights of that type.
    pub fn of_catalogue(shape: &Shape, tied: bool, quant: &str, bytes: u64) -> Option<Traffic> {
        let ty = main_type(quant)?;
        let embd = ty
            .bytes_for((shape.n_vocab * shape.n_embd) as u64)
            .unwrap_or(0);
        let read = if tied {
            bytes
        } else {
            bytes.saturating_sub(embd)
        };
        Some(Traffic {
            by_type: BTreeMap::from([(ty.name(), read)]),
            dispatches: 8 * shape.n_layer as u64 + 1,
        })
    }
}

/// The weight type most of a `Q4_K_M`-style file is made of.
pub fn main_type(quant: &str) -> Option<GgmlType> {
    let q = quant.to_ascii_uppercase();
    let base = q
        .strip_suffix("_M")
        .or_else(|| q.strip_suffix("_S"))
        .or_else(|| q.strip_suffix("_L"))
        .unwrap_or(&q);
    GgmlType::from_name(base).or_else(|| GgmlType::from_name(&q))
}

/// Tokens per second: `1 / (Σ bytes / rate + dispatches × dispatch cost)`; `None` when a type
/// has no measured rate.
pub fn estimate_tg(
    traffic: &Traffic,
    rate: &mut dyn FnMut(&str) -> Option<f64>,
    dispatch_s: f64,
) -> Option<f64> {
    let mut secs = traffic.dispatches as f64 * dispatch_s;
    for (ty, bytes) in &traffic.by_type {
        secs += *bytes as f64 / rate(ty)?;
    }
    (secs > 0.0).then(|| 1.0 / secs)
}

/// A generation speed `hearth bench` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Canonical path and size of the file measured.
    pub file: String,
    pub bytes: u64,
    pub threads: usize,
    pub n_gen: usize,
    /// Tokens per second (mean over the repetitions).
    pub tg: f64,
    pub kernels: String,
    pub when: u64,
}

fn bench_path() -> Option<std::path::PathBuf> {
    super::model_dir().map(|d| d.join("bench.json"))
}

fn file_key(path: &Path) -> Option<(String, u64)> {
    let canon = std::fs::canonicalize(path).ok()?;
    let bytes = std::fs::metadata(&canon).ok()?.len();
    Some((canon.display().to_string(), bytes))
}

/// Every record, newest last (missing or unreadable file: none).
pub fn bench_records() -> Vec<BenchRecord> {
    bench_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Remember `hearth bench`'s generation results `(threads, n_gen, tokens/s)` for `path` (the
/// newest per file, thread count and length), for `hearth show` to set beside the estimate.
pub fn record_bench(path: &Path, results: impl IntoIterator<Item = (usize, usize, f64)>) {
    let (Some(out), Some((file, bytes))) = (bench_path(), file_key(path)) else {
        return;
    };
    let mut all = bench_records();
    for (threads, n_gen, tg) in results {
        all.retain(|r| !(r.file == file && r.threads == threads && r.n_gen == n_gen));
        all.push(BenchRecord {
            file: file.clone(),
            bytes,
            threads,
            n_gen,
            tg,
            kernels: hearth_simd::kernel_set().to_string(),
            when: super::manifest::now(),
        });
    }
    let write = || -> anyhow::Result<()> {
        std::fs::create_dir_all(out.parent().context("no folder")?)?;
        let tmp = out.with_extension(format!("json.tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_string_pretty(&all)?)?;
        std::fs::rename(&tmp, &out)?;
        Ok(())
    };
    if let Err(e) = write() {
        eprintln!(
            "warning: could not record the result in {}: {e:#}",
            out.display()
        );
    }
}

/// The newest record for `path` at `threads`, preferring tg128.
pub fn bench_for(path: &Path, threads: usize) -> Option<BenchRecord> {
    let (file, bytes) = file_key(path)?;
    let mut mine: Vec<BenchRecord> = bench_records()
        .into_iter()
        .filter(|r| r.file == file && r.bytes == bytes && r.threads == threads)
        .collect();
    mine.sort_by_key(|r| (r.n_gen == 128, r.when));
    mine.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r1_1_5b() -> Shape {
        Shape {
            n_layer: 28,
            n_embd: 1536,
            n_ff: 8960,
            n_head: 12,
            n_head_kv: 2,
            head_dim: 128,
            n_vocab: 151_936,
            n_ctx_train: 131_072,
        }
    }

    #[test]
    fn memory_grows_with_context_and_the_largest_fitting_context_fits() {
        let s = r1_1_5b();
        let a = memory_need(&s, 1_000_000_000, 4096, 512, CacheType::F16);
        // 28 layers × 2 (K and V) × 4096 positions × 256 values × 2 bytes.
        assert_eq!(a.kv, 28 * 2 * 4096 * 256 * 2);
        let b = memory_need(&s, 1_000_000_000, 8192, 512, CacheType::F16);
        assert!(b.total() > a.total());
        let avail = a.total() + 1;
        let n = max_ctx_that_fits(&s, 1_000_000_000, 512, CacheType::F16, avail).unwrap();
        assert!((4096..8192).contains(&n), "{n}");
        assert!(memory_need(&s, 1_000_000_000, n, 512, CacheType::F16).total() <= avail);
        assert!(max_ctx_that_fits(&s, 1_000_000_000, 512, CacheType::F16, 1000).is_none());
        let text = refusal(&s, &b, 512, CacheType::F16, avail);
        assert!(
            text.contains(&format!("--ctx-size {n}")) && text.contains("--force"),
            "{text}"
        );
    }

    #[test]
    fn catalogue_traffic_and_estimates() {
        assert_eq!(main_type("Q4_K_M"), Some(GgmlType::Q4K));
        assert_eq!(main_type("q8_0"), Some(GgmlType::Q8_0));
        assert_eq!(main_type("Q6_K"), Some(GgmlType::Q6K));
        assert_eq!(main_type("nonsense"), None);
        let s = r1_1_5b();
        let t = Traffic::of_catalogue(&s, false, "Q4_K_M", 1_120_000_000).unwrap();
        // The 151936 × 1536 embedding table at 4.5 bits is about 131 MB that is not read.
        assert_eq!(t.bytes(), 1_120_000_000 - 151_936 * 1536 / 256 * 144);
        let mut rate = |_: &str| Some(1e9);
        let tps = estimate_tg(&t, &mut rate, 0.0).unwrap();
        assert!((tps - 1e9 / t.bytes() as f64).abs() < 1e-9);
        let slower = estimate_tg(&t, &mut rate, 1e-5).unwrap();
        assert!(slower < tps);
        assert!(estimate_tg(&t, &mut |_| None, 0.0).is_none());
    }
}

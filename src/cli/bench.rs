//! `hearth bench -m MODEL [-p 512] [-n 128] [-t 1,2] [-r 5] [-o md|json|csv]`, with llama-bench's
//! method so the two can be read side by side:
//!
//! - `ppP`: one prompt of P tokens (random ids, as llama-bench uses) processed from an empty cache
//!   in batches of `--batch`; `tgN`: N tokens fed one at a time after an empty context (the first
//!   one is BOS when the vocabulary has it), each computing its logits;
//! - every test runs once as a warm-up, then `-r` times; tokens/s is given as mean ± sample
//!   standard deviation over the repetitions;
//! - each thread count gets its own engine (thread pool) on the same memory-mapped file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hearth_models::gguf::GgufFile;
use hearth_models::kv_cache::CacheType;
use hearth_models::model::Logits;

use crate::engine::{Engine, LoadOptions, Session};
use crate::inspect::{human_bytes, human_count, ModelSummary};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model name (fetched on first use) or path to a GGUF file.
    #[arg(short, long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub fetch: super::common::FetchArgs,
    /// Prompt lengths to test, comma separated (0: no prompt test).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test, comma separated (0: no generation test).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Thread counts, comma separated (default: one per physical core).
    #[arg(short, long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Repetitions of each test after the warm-up.
    #[arg(short, long, default_value_t = 5)]
    pub repetitions: usize,
    /// Most tokens per forward pass of the prompt test.
    #[arg(short, long, default_value_t = 512)]
    pub batch: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Md)]
    pub output: Format,
    /// Run on the GPU (needs a build with `--features vulkan`); the backend goes in the
    /// kernels column.
    #[arg(long)]
    pub gpu: bool,
    /// Layers to run on the GPU (`-ngl`; implies --gpu).
    #[arg(long = "n-gpu-layers", value_name = "N")]
    pub n_gpu_layers: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Md,
    Json,
    Csv,
}

/// One measured test.
#[derive(Clone, Debug)]
struct Row {
    threads: usize,
    test: String,
    n_prompt: usize,
    n_gen: usize,
    /// Tokens per second of each repetition.
    samples: Vec<f64>,
}

impl Row {
    fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len() as f64
    }

    /// Sample standard deviation (0 with one sample), as llama-bench reports.
    fn stddev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// Deterministic token ids in `0..n_vocab` (llama-bench draws them with `rand()`).
fn random_tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n_vocab as u64) as u32
        })
        .collect()
}

fn time_prompt(engine: &Engine, s: &mut Session, tokens: &[u32]) -> anyhow::Result<f64> {
    s.cache.clear();
    let start = Instant::now();
    engine.eval(s, tokens, Logits::Last)?;
    Ok(start.elapsed().as_secs_f64())
}

fn time_gen(engine: &Engine, s: &mut Session, first: u32, n: usize) -> anyhow::Result<f64> {
    s.cache.clear();
    let start = Instant::now();
    let mut token = first;
    for _ in 0..n {
        let logits = engine.eval(s, &[token], Logits::Last)?;
        // Feed back the argmax so the work depends on the result, as real generation does.
        token = crate::sampler::greedy(logits);
    }
    Ok(start.elapsed().as_secs_f64())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let args = BenchArgs {
        model: args.fetch.resolve(Some(&args.model.to_string_lossy()))?,
        ..args
    };
    let prompts: Vec<usize> = args.n_prompt.iter().copied().filter(|&p| p > 0).collect();
    let gens: Vec<usize> = args.n_gen.iter().copied().filter(|&n| n > 0).collect();
    if prompts.is_empty() && gens.is_empty() {
        bail!("nothing to measure: give -p or -n a length above 0");
    }
    let file =
        GgufFile::open(&args.model).with_context(|| format!("opening {}", args.model.display()))?;
    let summary = ModelSummary::from_gguf(&file)?;
    drop(file);
    let need_ctx = prompts
        .iter()
        .chain(gens.iter())
        .copied()
        .max()
        .unwrap_or(1);
    let threads = if args.threads.is_empty() {
        vec![crate::cpu::default_threads()]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("--threads: each count must be at least 1");
    }
    let kernels = hearth_simd::select().map_err(anyhow::Error::msg)?.name;
    let mut rows = Vec::new();
    let mut backend = String::from("CPU");
    for &t in &threads {
        let opts = LoadOptions {
            threads: t,
            ctx_size: Some(need_ctx),
            batch: args.batch,
            cache_type: CacheType::F16,
            force: false,
            gpu_layers: match (args.n_gpu_layers, args.gpu) {
                (Some(n), _) => Some(n),
                (None, true) => Some(usize::MAX),
                (None, false) => None,
            },
        };
        let engine = Engine::load(&args.model, &opts)?;
        backend = engine.backend();
        eprintln!("backend: {backend}");
        if engine.n_ctx < need_ctx {
            bail!(
                "the model's trained context ({}) is shorter than the longest test ({need_ctx})",
                engine.n_ctx
            );
        }
        let n_vocab = engine.model.hp.n_vocab;
        let first = engine.tokenizer.bos().unwrap_or(0);
        let mut session = engine.new_session();
        for &p in &prompts {
            let tokens = random_tokens(p, n_vocab, 0x5eed + p as u64);
            time_prompt(&engine, &mut session, &tokens)?;
            let mut samples = Vec::new();
            for _ in 0..args.repetitions {
                samples.push(p as f64 / time_prompt(&engine, &mut session, &tokens)?);
            }
            eprintln!("t={t} pp{p}: done");
            rows.push(Row {
                threads: t,
                test: format!("pp{p}"),
                n_prompt: p,
                n_gen: 0,
                samples,
            });
        }
        for &n in &gens {
            time_gen(&engine, &mut session, first, 1)?;
            let mut samples = Vec::new();
            for _ in 0..args.repetitions {
                samples.push(n as f64 / time_gen(&engine, &mut session, first, n)?);
            }
            eprintln!("t={t} tg{n}: done");
            rows.push(Row {
                threads: t,
                test: format!("tg{n}"),
                n_prompt: 0,
                n_gen: n,
                samples,
            });
        }
    }
    // `hearth fit` estimates CPU speed: GPU runs are not recorded.
    let kernels = if backend == "CPU" {
        kernels.to_string()
    } else {
        format!("{kernels} + {backend}")
    };
    if backend == "CPU" {
        crate::store::fit::record_bench(
            &args.model,
            rows.iter()
                .filter(|r| r.n_prompt == 0)
                .map(|r| (r.threads, r.n_gen, r.mean())),
        );
    }
    let name = summary.name.clone().unwrap_or_else(|| {
        args.model
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
    });
    let quant = summary.main_type().unwrap_or("?");
    let model = format!(
        "{} {} {quant}",
        summary.architecture,
        human_count(summary.params)
    );
    match args.output {
        Format::Md => {
            println!("| model | size | params | kernels | threads | test | t/s |");
            println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
            for r in &rows {
                println!(
                    "| {model} | {} | {} | {kernels} | {} | {} | {:.2} ± {:.2} |",
                    human_bytes(summary.file_bytes),
                    human_count(summary.params),
                    r.threads,
                    r.test,
                    r.mean(),
                    r.stddev()
                );
            }
        }
        Format::Json => {
            let out: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "model_name": name,
                        "model_type": model,
                        "model_size": summary.file_bytes,
                        "model_n_params": summary.params,
                        "kernels": kernels,
                        "n_threads": r.threads,
                        "n_batch": args.batch,
                        "n_prompt": r.n_prompt,
                        "n_gen": r.n_gen,
                        "test": r.test,
                        "avg_ts": r.mean(),
                        "stddev_ts": r.stddev(),
                        "samples_ts": r.samples,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Csv => {
            println!("model_type,model_size,model_n_params,kernels,n_threads,n_batch,n_prompt,n_gen,test,avg_ts,stddev_ts");
            for r in &rows {
                println!(
                    "\"{model}\",{},{},{kernels},{},{},{},{},{},{:.6},{:.6}",
                    summary.file_bytes,
                    summary.params,
                    r.threads,
                    args.batch,
                    r.n_prompt,
                    r.n_gen,
                    r.test,
                    r.mean(),
                    r.stddev()
                );
            }
        }
    }
    Ok(())
}

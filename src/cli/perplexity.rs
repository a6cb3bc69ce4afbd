//! `hearth perplexity -m MODEL -f FILE [-c 256] [--chunks N] [--json]`, with llama-perplexity's
//! convention: the text is tokenized once (BOS added if the vocabulary adds BOS) and cut into
//! chunks of `ctx` tokens; each chunk runs from an empty cache with its first token replaced by
//! BOS when the vocabulary adds BOS; only the second half of each chunk is scored.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hearth_models::model::Logits;

use super::common::ModelArgs;
use crate::engine::Engine;

#[derive(Debug, Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text file to score.
    #[arg(short, long)]
    pub file: PathBuf,
    /// Score at most this many chunks (default: all).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Negative log-likelihood of `token` under `logits`, computed in f64 like llama.cpp's
/// `log_softmax`.
fn nll(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    sum.ln() - (logits[token as usize] - max) as f64
}

pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut opts = args.model.load_options();
    let n_ctx = opts.ctx_size.unwrap_or(512);
    opts.ctx_size = Some(n_ctx);
    let engine = Engine::load(&args.model.resolve()?, &opts)?;
    if engine.n_ctx != n_ctx || n_ctx < 4 {
        bail!(
            "context {n_ctx} is not usable with this model (trained length {})",
            engine.model.hp.n_ctx_train
        );
    }
    let tok = &engine.tokenizer;
    let add_bos = tok.add_bos();
    let tokens = tok.encode(&text, true, false)?;
    let available = tokens.len() / n_ctx;
    let n_chunks = args.chunks.map_or(available, |c| c.min(available));
    if n_chunks == 0 {
        bail!(
            "{} tokens: not enough for one chunk of {n_ctx}",
            tokens.len()
        );
    }
    let first = n_ctx / 2;
    let (mut sum, mut sum2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut session = engine.new_session();
    let vocab = engine.model.hp.n_vocab;
    for c in 0..n_chunks {
        let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
        if add_bos {
            if let Some(bos) = tok.bos() {
                chunk[0] = bos;
            }
        }
        session.cache.clear();
        let logits = engine.eval(&mut session, &chunk, Logits::All)?;
        for j in first..n_ctx - 1 {
            let v = nll(&logits[j * vocab..(j + 1) * vocab], chunk[j + 1]);
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        if !args.json {
            eprint!("[{}]{:.4},", c + 1, (sum / count as f64).exp());
        }
    }
    let mean = sum / count as f64;
    let ppl = mean.exp();
    let var = (sum2 / count as f64 - mean * mean).max(0.0);
    let err = if count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"ppl": ppl, "ppl_err": err, "n_ctx": n_ctx, "chunks": n_chunks, "tokens_scored": count})
        );
    } else {
        eprintln!();
        println!("PPL = {ppl:.4} +/- {err:.5}");
    }
    Ok(())
}

//! `hearth run -m MODEL [PROMPT]`: complete a prompt, streaming the text to stdout.

use std::io::{Read, Write};

use anyhow::Context;
use clap::Args;

use super::common::{ModelArgs, SamplingArgs};
use crate::engine::{Engine, StopReason};
use crate::sampler::Sampler;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Most tokens to generate (default: until an end-of-generation token or a full context).
    #[arg(short = 'n', long)]
    pub max_tokens: Option<usize>,
    /// Stop when the output contains this text (repeatable); the stop text is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Feed the prompt as plain text: BOS as the vocabulary wants, special tokens parsed, no chat
    /// template. (Chat templates come with `hearth chat`; today every prompt is raw.)
    #[arg(long)]
    pub raw: bool,
    /// The prompt; read from standard input when absent or `-`.
    pub prompt: Option<String>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let prompt = match args.prompt.as_deref() {
        Some(p) if p != "-" => p.to_string(),
        _ => {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .context("reading the prompt from standard input")?;
            buf
        }
    };
    let params = args.sampling.params();
    params.validate()?;
    let engine = Engine::load(&args.model.model, &args.model.load_options())?;
    let mut sampler = Sampler::new(params, engine.model.hp.n_vocab)?;
    let tokens = engine.tokenizer.encode(&prompt, true, true)?;
    let mut session = engine.new_session();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let mut write_err = None;
    let stats = engine.generate(
        &mut session,
        &tokens,
        &mut sampler,
        args.max_tokens,
        &args.stop,
        &mut |text| {
            if write_err.is_none() {
                if let Err(e) = lock.write_all(text.as_bytes()).and_then(|_| lock.flush()) {
                    write_err = Some(e);
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to standard output");
        }
    }
    let rate = |n: usize, t: std::time::Duration| n as f64 / t.as_secs_f64().max(1e-9);
    eprintln!();
    eprintln!(
        "load {:.2} s | prompt {} tokens, {:.1} t/s | generation {} tokens, {:.1} t/s | {} threads, kernels {}",
        engine.load_time.as_secs_f64(),
        stats.prompt_tokens,
        rate(stats.prompt_tokens, stats.prompt_time),
        stats.gen_tokens,
        rate(stats.gen_tokens, stats.gen_time),
        engine.threads(),
        hearth_simd::kernel_set(),
    );
    if stats.stop == StopReason::Context {
        eprintln!("stopped: the context is full ({} tokens)", engine.n_ctx);
    }
    Ok(())
}

//! `hearth run -m MODEL [PROMPT]`: answer one question (through the model's chat template) or,
//! with `--raw`, complete a prompt; the text streams to stdout.

use std::io::Read;

use anyhow::Context;
use clap::Args;

use super::common::{ChatArgs, ModelArgs, SamplingArgs};
use super::output::{stats_line, stop_notice, Printer};
use crate::chat::template::Message;
use crate::engine::{Engine, GenOptions, ReasoningOptions};
use crate::sampler::Sampler;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Most tokens to generate, thinking included (default: until the model ends its answer or
    /// the context is full).
    #[arg(short = 'n', long)]
    pub max_tokens: Option<usize>,
    /// Stop when the answer contains this text (repeatable); the stop text is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Plain completion: the prompt is fed as is (BOS as the vocabulary wants, special tokens
    /// parsed), no chat template, no reasoning handling.
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
    let engine = Engine::load(&args.model.resolve()?, &args.model.load_options())?;
    let params = args.sampling.params(&engine.defaults);
    params.validate()?;
    let mut sampler = Sampler::new(params, engine.model.hp.n_vocab)?;
    let think = args.chat.think_mode();
    let (tokens, reasoning) = if args.raw {
        (engine.tokenizer.encode(&prompt, true, true)?, None)
    } else {
        let format = args.chat.format(&engine)?;
        let mut messages = Vec::new();
        if let Some(system) = &args.chat.system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", &prompt));
        let p = format.prompt(&engine.tokenizer, &messages, think)?;
        if p.folded_system {
            eprintln!(
                "hearth: this model works best without a system prompt; it was put in the user turn"
            );
        }
        let reasoning = engine.defaults.reasoning.then_some(ReasoningOptions {
            start: p.start,
            budget: args.chat.reasoning_budget,
            detect_loops: !args.chat.no_loop_check,
        });
        (p.tokens, reasoning)
    };
    let mut session = engine.new_session();
    let mut printer = Printer::new(think, false);
    let opts = GenOptions {
        max_tokens: args.max_tokens,
        stop: &args.stop,
        reasoning,
        cancel: None,
        logprobs: None,
    };
    let stats = engine.generate(&mut session, &tokens, &mut sampler, &opts, &mut |event| {
        printer.event(event)
    })?;
    printer.finish()?;
    eprintln!(
        "load {:.2} s | {}",
        engine.load_time.as_secs_f64(),
        stats_line(&engine, &stats)
    );
    if let Some(notice) = stop_notice(&engine, &stats) {
        eprintln!("{notice}");
    }
    Ok(())
}

//! The `hearth` command line: one file per verb.

mod bench;
mod common;
mod info;
mod perplexity;
mod run;
mod tokenize;

use clap::{Parser, Subcommand};

/// Run open reasoning models (DeepSeek-R1 distills and friends) offline on your own machine.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a model file: architecture, size, quantization, context, vocabulary, memory needed.
    Info(info::InfoArgs),
    /// Print the token ids of a text, as the model's tokenizer splits it.
    Tokenize(tokenize::TokenizeArgs),
    /// Complete a prompt, streaming the text as it is generated.
    Run(run::RunArgs),
    /// Measure perplexity on a text file (llama-perplexity's convention).
    Perplexity(perplexity::PerplexityArgs),
    /// Measure prompt and generation speed (llama-bench's method).
    Bench(bench::BenchArgs),
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Run(args) => run::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

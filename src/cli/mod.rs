//! The `hearth` command line: one file per verb.

mod bench;
mod chat;
pub mod common;
mod fit;
mod info;
mod list;
mod output;
mod perplexity;
mod pull;
mod rm;
mod run;
mod serve;
mod show;
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
    /// Answer a question (or complete a prompt with --raw), streaming the text as it comes.
    Run(run::RunArgs),
    /// Talk with a model in the terminal, turn after turn.
    Chat(chat::ChatCmdArgs),
    /// Serve a model over HTTP with OpenAI's API (chat completions, completions, models).
    Serve(serve::ServeArgs),
    /// Measure perplexity on a text file (llama-perplexity's convention).
    Perplexity(perplexity::PerplexityArgs),
    /// Measure prompt and generation speed (llama-bench's method).
    Bench(bench::BenchArgs),
    /// Download models into the store (resumable, verified): `hearth pull deepseek-r1:7b`.
    Pull(pull::PullArgs),
    /// List the downloaded models.
    List(list::ListArgs),
    /// Describe a model: source, file, defaults, whether it fits, how fast it should run.
    Show(show::ShowArgs),
    /// Remove downloaded models.
    Rm(rm::RmArgs),
    /// Which catalogued models fit this machine, and how fast each should generate.
    Fit(fit::FitArgs),
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Pull(args) => pull::run(args),
        Command::List(args) => list::run(args),
        Command::Show(args) => show::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Fit(args) => fit::run(args),
    }
}

//! `hearth serve -m MODEL`: the OpenAI-compatible HTTP server (see `crate::server`).

use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::common::{ModelArgs, SamplingArgs};
use crate::chat::prompt::{ChatFormat, ThinkMode};
use crate::chat::template::ChatTemplate;
use crate::engine::Engine;
use crate::server::{self, Config, Served};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sampling defaults for requests that do not set their own.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Address to listen on. The default answers only this machine; another address exposes the
    /// model to the network (use --api-key there).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every request but /health (also HEARTH_API_KEY).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Let web pages from this origin call the server (repeatable; `*` for any). Without it no
    /// cross-origin request is accepted.
    #[arg(long, value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Accept requests for this host name too (repeatable); by default only the bound address
    /// and localhost, which stops DNS-rebinding attacks from web pages.
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// The model's id in the API (default: the file name without `.gguf`).
    #[arg(long)]
    pub alias: Option<String>,
    /// Use this chat template instead of the model's: a built-in name (chatml, llama3, gemma,
    /// deepseek-r1) or a Jinja file.
    #[arg(long, value_name = "FILE|NAME")]
    pub chat_template: Option<String>,
    /// Split `<think>` reasoning into `reasoning_content`: auto (reasoning models), deepseek
    /// (always, with the thinking opened in the prompt as for the R1 distills), none (all text
    /// is content).
    #[arg(long, default_value = "auto", value_parser = ["auto", "deepseek", "none"])]
    pub reasoning_format: String,
    /// Default handling of the thinking (requests may set `think`): show it in
    /// `reasoning_content`, hide it, or skip it.
    #[arg(long, default_value = "show", value_parser = parse_think)]
    pub think: ThinkMode,
    /// Default reasoning budget in tokens (requests may set `reasoning_budget`).
    #[arg(long, value_name = "N")]
    pub reasoning_budget: Option<usize>,
    /// Do not close thinking that keeps repeating itself.
    #[arg(long)]
    pub no_loop_check: bool,
    /// Requests that may wait while one is generated; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Conversations whose KV cache is kept for prefix reuse (each takes a context's cache).
    #[arg(long, default_value_t = 2)]
    pub sessions: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body: usize,
    /// Seconds a client has to send its request headers (slow clients are disconnected).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client has to send its request body.
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Most open connections.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// At Ctrl-C or SIGTERM, seconds running requests may go on before they are ended.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,
}

fn parse_think(s: &str) -> Result<ThinkMode, String> {
    ThinkMode::parse(s).ok_or_else(|| format!("unknown thinking mode `{s}` (show, hide, off)"))
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.queue == 0 || args.sessions == 0 || args.max_connections == 0 {
        bail!("--queue, --sessions and --max-connections must be at least 1");
    }
    if args.sessions > 64 {
        bail!("--sessions {} is more than 64", args.sessions);
    }
    if args.max_body < 1024 {
        bail!("--max-body must be at least 1024 bytes");
    }
    if args.header_timeout == 0 || args.body_timeout == 0 {
        bail!("--header-timeout and --body-timeout must be at least 1 second");
    }
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("HEARTH_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let path = args.model.resolve()?;
    let engine = Engine::load(&path, &args.model.load_options())?;
    let sampling = args.sampling.params(&engine.defaults);
    sampling.validate()?;
    let mut defaults = engine.defaults.clone();
    match args.reasoning_format.as_str() {
        "deepseek" => {
            defaults.reasoning = true;
            defaults.open_thinking = true;
        }
        "none" => defaults.reasoning = false,
        _ => {}
    }
    let format = ChatFormat {
        template: ChatTemplate::for_model(
            engine.model.file(),
            &engine.tokenizer,
            args.chat_template.as_deref(),
        )?,
        defaults,
    };
    let name = args.alias.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".gguf").to_string())
            .unwrap_or_else(|| "model".to_string())
    });
    let served = Served {
        engine,
        format,
        name,
        sampling,
        think: args.think,
        reasoning_budget: args.reasoning_budget,
        detect_loops: !args.no_loop_check,
    };
    let config = Config {
        host: args.host,
        port: args.port,
        api_key,
        cors: args.cors,
        allow_hosts: args.allow_host,
        max_body: args.max_body,
        queue: args.queue,
        sessions: args.sessions,
        header_timeout: Duration::from_secs(args.header_timeout),
        body_timeout: Duration::from_secs(args.body_timeout),
        max_connections: args.max_connections,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    server::run(served, config)
}

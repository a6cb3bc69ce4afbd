//! `hearth serve -m MODEL`: the OpenAI-compatible HTTP server (see `crate::server`).

use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::common::{ChatArgs, ModelArgs, SamplingArgs};
use crate::engine::Engine;
use crate::inspect::human_bytes;
use crate::server::{self, Config, Served};
use hearth_models::kv_cache::KvCache;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sampling defaults for requests that do not set their own.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Template, default system prompt (for requests without one) and thinking defaults
    /// (requests may set `think` and `reasoning_budget`).
    #[command(flatten)]
    pub chat: ChatArgs,
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
    /// Split `<think>` reasoning into `reasoning_content`: auto (reasoning models), deepseek
    /// (always, with the thinking opened in the prompt as for the R1 distills), none (all text
    /// is content).
    #[arg(long, default_value = "auto", value_parser = ["auto", "deepseek", "none"])]
    pub reasoning_format: String,
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
    // The load check counted one KV cache; every further kept session takes another.
    let kv = KvCache::bytes_for(
        engine.cache_type,
        engine.model.hp.n_layer,
        engine.n_ctx,
        engine.model.kv_dim(),
    );
    let extra = kv.saturating_mul(args.sessions as u64 - 1);
    if let Some(avail) = crate::store::fit::available_memory() {
        if extra > avail && !args.model.force {
            bail!(
                "{} sessions need {} more for their KV caches ({} each at {} tokens) but {} is available; use fewer --sessions, a smaller --ctx-size or --cache-type q8_0",
                args.sessions,
                human_bytes(extra),
                human_bytes(kv),
                engine.n_ctx,
                human_bytes(avail)
            );
        }
    }
    let sampling = args.sampling.params(&engine.defaults);
    sampling.validate()?;
    let mut format = args.chat.format(&engine)?;
    match args.reasoning_format.as_str() {
        "deepseek" => {
            format.defaults.reasoning = true;
            format.defaults.open_thinking = true;
        }
        "none" => format.defaults.reasoning = false,
        _ => {}
    }
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
        system: args.chat.system.clone(),
        think: args.chat.think_mode(),
        reasoning_budget: args.chat.reasoning_budget,
        detect_loops: !args.chat.no_loop_check,
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

//! `hearth serve`: an OpenAI-compatible HTTP server.
//!
//! ```text
//! client --HTTP/1.1--> hyper (header timeout, connection cap, graceful shutdown)
//!        --> axum router --> gate (Host, Origin, API key, content type; log line, metrics)
//!        --> handler: body (size + time limits) -> request::chat|completion (validated fields,
//!            template, tokens; on the blocking pool) -> worker::Queue (bounded FIFO; 503 when full)
//! inference thread: pops a job, picks the cached session with the longest common prefix,
//!        Engine::generate -> Msg per piece of text -> the handler's channel
//!        -> response::collect (one JSON object) or response::SseBody (`data:` events)
//! ```
//! A client that goes away drops its handler or body, which sets the job's cancel flag; the
//! engine checks it before every token.

mod error;
mod http;
mod io;
mod metrics;
mod request;
mod response;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::chat::prompt::{ChatFormat, ThinkMode};
use crate::engine::Engine;
use crate::sampler::SamplerParams;

pub use error::ApiError;

/// `system_fingerprint` in responses: the server and version.
pub const FINGERPRINT: &str = concat!("hearth-", env!("CARGO_PKG_VERSION"));

/// The model being served, with the defaults requests start from.
pub struct Served {
    pub engine: Engine,
    pub format: ChatFormat,
    /// The model's id in the API.
    pub name: String,
    /// Sampling when a request does not say (the command line's, the model family's).
    pub sampling: SamplerParams,
    /// The system prompt for chat requests that bring none.
    pub system: Option<String>,
    pub think: ThinkMode,
    pub reasoning_budget: Option<usize>,
    pub detect_loops: bool,
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Origins allowed to call from a browser (`*`: any).
    pub cors: Vec<String>,
    /// Host names accepted besides the bound address and localhost.
    pub allow_hosts: Vec<String>,
    pub max_body: usize,
    /// Requests that may wait for the inference thread.
    pub queue: usize,
    /// Sessions (KV caches) kept for prefix reuse.
    pub sessions: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// At Ctrl-C / SIGTERM: how long running requests may go on before they are ended.
    pub shutdown_grace: Duration,
}

/// Serve until Ctrl-C or SIGTERM.
pub fn run(served: Served, config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hearth-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    rt.block_on(serve(served, config))
}

async fn serve(served: Served, config: Config) -> anyhow::Result<()> {
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let listener = TcpListener::bind((host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let local: SocketAddr = listener.local_addr()?;
    let served = Arc::new(served);
    let queue = Arc::new(worker::Queue::new(config.queue));
    let metrics = Arc::new(metrics::Metrics::default());
    let inference = worker::spawn(
        served.clone(),
        queue.clone(),
        metrics.clone(),
        config.sessions,
    )
    .context("starting the inference thread")?;
    let app = Arc::new(http::App::new(
        served.clone(),
        queue.clone(),
        metrics,
        http::HostCheck::new(&config.host, &config.allow_hosts),
        config.api_key.clone(),
        config.cors.clone(),
        config.max_body,
        config.body_timeout,
    ));
    let router = http::router(app.clone());
    eprintln!(
        "hearth: serving {} (context {}, {} threads) on http://{local}/v1",
        served.name,
        served.engine.n_ctx,
        served.engine.threads()
    );
    if !local.ip().is_loopback() && config.api_key.is_none() {
        eprintln!(
            "hearth: warning: listening on {} without --api-key: anyone who can reach this address can use the model",
            local.ip()
        );
    }
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_header_size(32 * 1024);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        eprintln!("hearth: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    // Over the connection cap: close at once.
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let socket = io::SharedSocket::new(stream);
                let conn = h1.serve_connection(
                    TokioIo::new(socket.clone()),
                    TowerToHyperService::new(router.clone()),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        if e.is_timeout() {
                            socket.request_timeout().await;
                        }
                    }
                    drop(permit);
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    app.stopping.store(true, Ordering::Relaxed);
    eprintln!(
        "hearth: shutting down ({} running, {} waiting; grace {} s)",
        u8::from(queue.busy()),
        queue.depth(),
        config.shutdown_grace.as_secs()
    );
    let closed = graceful.shutdown();
    tokio::pin!(closed);
    if tokio::time::timeout(config.shutdown_grace, &mut closed)
        .await
        .is_err()
    {
        // End what is still running: each stream gets its last chunk and `[DONE]`.
        queue.cancel_all();
        if tokio::time::timeout(Duration::from_secs(5), &mut closed)
            .await
            .is_err()
        {
            eprintln!("hearth: some connections did not close in time");
        }
    }
    queue.close();
    queue.cancel_all();
    tokio::task::spawn_blocking(move || inference.join())
        .await
        .ok()
        .and_then(Result::ok)
        .context("the inference thread failed")?;
    eprintln!("hearth: stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

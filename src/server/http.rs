//! Routes, the security gate every request passes, and the handlers.
//!
//! The gate, in order: a request id; the `Host` header must name this server (a web page whose
//! domain was re-pointed at 127.0.0.1, DNS rebinding, is refused); a browser `Origin` must be one
//! allowed with `--cors` (no CORS headers otherwise); the API key when one is set (`/health`
//! excepted); `POST` bodies must say `application/json`, which a cross-site form cannot send
//! without a preflight that we do not grant.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc::unbounded_channel;

use super::error::ApiError;
use super::metrics::Metrics;
use super::request::{self, GenRequest, Kind};
use super::response::{collect, whole, CancelOnDrop, Meta, SseBody};
use super::worker::{Job, Queue};
use super::Served;

/// What the handlers share.
pub struct App {
    pub served: Arc<Served>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub hosts: HostCheck,
    pub api_key: Option<String>,
    /// Origins allowed with `--cors` (`*`: any).
    pub cors: Vec<String>,
    pub max_body: usize,
    pub body_timeout: Duration,
    /// Set at shutdown: new generations are refused.
    pub stopping: AtomicBool,
    pub started: u64,
    next_id: AtomicU64,
    /// Keeps request ids distinct across restarts.
    nonce: u32,
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        served: Arc<Served>,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        hosts: HostCheck,
        api_key: Option<String>,
        cors: Vec<String>,
        max_body: usize,
        body_timeout: Duration,
    ) -> App {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        App {
            served,
            queue,
            metrics,
            hosts,
            api_key,
            cors,
            max_body,
            body_timeout,
            stopping: AtomicBool::new(false),
            started: now.as_secs(),
            next_id: AtomicU64::new(1),
            nonce: now.subsec_nanos() ^ (std::process::id() << 12),
        }
    }
}

/// The request's id, in logs, in `x-request-id` and in the completion id.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Marks a response whose log line the inference thread writes (a generation that started).
#[derive(Clone, Copy, Debug)]
struct LoggedByWorker;

/// Which `Host` headers name this server.
pub struct HostCheck {
    names: Vec<String>,
    /// Bound to every interface: any IP literal is one of ours (DNS rebinding needs a name).
    any_ip: bool,
}

impl HostCheck {
    pub fn new(bound: &str, extra: &[String]) -> HostCheck {
        let bound = bound.trim_start_matches('[').trim_end_matches(']');
        let any_ip = bound
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1", bound]
            .into_iter()
            .map(str::to_string)
            .chain(extra.iter().cloned())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        names.dedup();
        HostCheck { names, any_ip }
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) is ours.
    pub fn allows(&self, value: &str) -> bool {
        let value = value.trim();
        let host = if let Some(rest) = value.strip_prefix('[') {
            match rest.split_once(']') {
                Some((h, port)) if port.is_empty() || port.starts_with(':') => h,
                _ => return false,
            }
        } else {
            match value.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                Some(_) => return false,
                None => value,
            }
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() {
            return false;
        }
        self.names.contains(&host) || (self.any_ip && host.parse::<std::net::IpAddr>().is_ok())
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

/// Byte-wise comparison whose time does not depend on where the keys differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checks every request passes, the log line and the metrics.
async fn gate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let n = app.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:08x}-{n}", app.nonce);
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let origin = header_str(req.headers(), header::ORIGIN).map(str::to_string);
    let cors_ok = origin
        .as_deref()
        .is_some_and(|o| app.cors.iter().any(|c| c == "*" || c == o));
    let mut response = match check(&app, &req, origin.is_some(), cors_ok) {
        Err(e) => e.into_response(),
        Ok(true) => preflight(req.headers()),
        Ok(false) => {
            req.extensions_mut().insert(RequestId(id.clone()));
            next.run(req).await
        }
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    if let (true, Some(o)) = (cors_ok, origin) {
        if let Ok(v) = HeaderValue::from_str(&o) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    let status = response.status();
    app.metrics.request(status.as_u16());
    if response.extensions().get::<LoggedByWorker>().is_none() {
        eprintln!(
            "{id} {method} {path} {} {:.3} s",
            status.as_u16(),
            started.elapsed().as_secs_f64()
        );
    }
    response
}

/// `Ok(true)`: a CORS preflight to grant; `Ok(false)`: go on to the handler.
fn check(app: &App, req: &Request, has_origin: bool, cors_ok: bool) -> Result<bool, ApiError> {
    let headers = req.headers();
    let host = header_str(headers, header::HOST).or(req.uri().host());
    match host {
        None => return Err(ApiError::bad_request("the request has no Host header")),
        Some(h) if !app.hosts.allows(h) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{h}` is not this server (start it with --allow-host NAME to accept it)"
                ),
            )
            .with_code("host_not_allowed"))
        }
        Some(_) => {}
    }
    if has_origin && !cors_ok {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin requests are not allowed (start the server with --cors ORIGIN)",
        )
        .with_code("origin_not_allowed"));
    }
    if req.method() == Method::OPTIONS && cors_ok {
        return Ok(true);
    }
    let path = req.uri().path();
    if let Some(key) = &app.api_key {
        if path != "/health" && path != "/v1/health" {
            let given = header_str(headers, header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match given {
                Some(g) if same_secret(g.as_bytes(), key.as_bytes()) => {}
                Some(_) => {
                    return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API key")
                        .with_code("invalid_api_key"))
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "missing API key: send `Authorization: Bearer KEY`",
                    )
                    .with_code("invalid_api_key"))
                }
            }
        }
    }
    if req.method() == Method::POST {
        let json = header_str(headers, header::CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
    }
    Ok(false)
}

fn preflight(headers: &HeaderMap) -> Response {
    let allow_headers = header_str(headers, header::ACCESS_CONTROL_REQUEST_HEADERS)
        .unwrap_or("authorization, content-type")
        .to_string();
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Ok(v) = HeaderValue::from_str(&allow_headers) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "queue_depth": app.queue.depth(),
        "processing": app.queue.busy(),
    }))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(app.queue.depth(), app.queue.busy());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn model_object(app: &App) -> serde_json::Value {
    let engine = &app.served.engine;
    json!({
        "id": app.served.name,
        "object": "model",
        "created": app.started,
        "owned_by": "hearth",
        "meta": {
            "n_ctx": engine.n_ctx,
            "n_ctx_train": engine.model.hp.n_ctx_train,
            "n_vocab": engine.model.hp.n_vocab,
            "reasoning": app.served.format.defaults.reasoning,
            "chat_template": app.served.format.template.name(),
        },
    })
}

async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({ "object": "list", "data": [model_object(&app)] }))
}

async fn model(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if id == app.served.name {
        Json(model_object(&app)).into_response()
    } else {
        ApiError::new(StatusCode::NOT_FOUND, format!("no model `{id}` here"))
            .with_code("model_not_found")
            .into_response()
    }
}

async fn chat(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(app, id, Kind::Chat, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn completions(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(app, id, Kind::Completion, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Read the body within the size and time limits.
async fn read_body(app: &App, headers: &HeaderMap, mut body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", app.max_body),
        )
    };
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut buf = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| {
            http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
        })
        .await
        {
            let frame = frame
                .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > app.max_body {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(app.body_timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    app.body_timeout.as_secs()
                ),
            )
        })?
}

async fn generate(
    app: Arc<App>,
    id: RequestId,
    kind: Kind,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&app, &headers, body).await?;
    let map = request::parse_body(&bytes)?;
    // Rendering the template and tokenizing a long prompt take a while: not on the I/O threads.
    let served = app.served.clone();
    let req: GenRequest = tokio::task::spawn_blocking(move || match kind {
        Kind::Chat => request::chat(&served, &map),
        Kind::Completion => request::completion(&served, &map),
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the request failed: {e}")))??;
    if app.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::busy("the server is shutting down", 5));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = unbounded_channel();
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    };
    let meta = Meta {
        id: format!("{prefix}-{}", id.0),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: app.served.name.clone(),
        kind,
        include_usage: req.include_usage,
        show_reasoning: req.show_reasoning,
        logprobs: req.logprobs.is_some(),
    };
    let stream = req.stream;
    let job = Job {
        id: id.0,
        req,
        cancel: cancel.clone(),
        tx,
        received: Instant::now(),
    };
    if !app.queue.push(job) {
        let depth = app.queue.depth();
        return Err(ApiError::busy(
            format!("the server is busy ({depth} requests waiting); retry later"),
            depth as u64 + 1,
        )
        .with_code("queue_full"));
    }
    let guard = CancelOnDrop(cancel);
    let mut response = if stream {
        let body = SseBody::new(meta, rx, guard);
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::new(body),
        )
            .into_response()
    } else {
        let (c, stats) = collect(&mut rx).await?;
        drop(guard);
        Json(whole(&meta, &c, &stats)).into_response()
    };
    response.extensions_mut().insert(LoggedByWorker);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check() {
        let h = HostCheck::new("127.0.0.1", &["my.lan".to_string()]);
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "localhost.:80",
            "[::1]:8080",
            "my.lan:8080",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8080",
            "127.0.0.1.evil.com",
            "localhost:80:80",
            "",
            "[::1",
            "10.0.0.1:8080",
            "localhost@evil.com",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        let any = HostCheck::new("0.0.0.0", &[]);
        assert!(any.allows("192.168.1.5:8080"));
        assert!(!any.allows("rebind.example:8080"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}

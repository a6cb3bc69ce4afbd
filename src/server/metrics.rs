//! Counters for `GET /metrics`, in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::engine::GenStats;

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    rejected: AtomicU64,
    generations: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    prompt_tokens: AtomicU64,
    prompt_evaluated: AtomicU64,
    gen_tokens: AtomicU64,
    prompt_micros: AtomicU64,
    gen_micros: AtomicU64,
    /// The last generation's tokens per second.
    last_rate: Mutex<f64>,
}

impl Metrics {
    /// An HTTP request answered with `status`.
    pub fn request(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            429 | 503 => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
            }
            500.. => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            400.. => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub fn generated(&self, s: &GenStats) {
        let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
        add(&self.generations, 1);
        add(&self.prompt_tokens, s.prompt_tokens as u64);
        add(&self.prompt_evaluated, s.prompt_evaluated() as u64);
        add(&self.gen_tokens, s.gen_tokens as u64);
        add(&self.prompt_micros, s.prompt_time.as_micros() as u64);
        add(&self.gen_micros, s.gen_time.as_micros() as u64);
        if s.gen_tokens > 0 {
            let rate = s.gen_tokens as f64 / s.gen_time.as_secs_f64().max(1e-9);
            *self.last_rate.lock().unwrap_or_else(|e| e.into_inner()) = rate;
        }
        if s.stop == crate::engine::StopReason::Cancelled {
            add(&self.cancelled, 1);
        }
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, with the queue's gauges.
    pub fn render(&self, queue_depth: usize, busy: bool) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let secs = |c: &AtomicU64| get(c) as f64 / 1e6;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP hearth_{name} {help}");
            let _ = writeln!(out, "# TYPE hearth_{name} {kind}");
            let _ = writeln!(out, "hearth_{name} {value}");
        };
        let rate = |tokens: &AtomicU64, micros: &AtomicU64| {
            let s = secs(micros);
            if s > 0.0 {
                get(tokens) as f64 / s
            } else {
                0.0
            }
        };
        let counters: [(&str, &str, &AtomicU64); 10] = [
            ("requests_total", "HTTP requests answered.", &self.requests),
            (
                "requests_client_errors_total",
                "Requests answered with a 4xx other than 429.",
                &self.client_errors,
            ),
            (
                "requests_server_errors_total",
                "Requests answered with a 5xx other than 503.",
                &self.server_errors,
            ),
            (
                "requests_rejected_total",
                "Requests refused because the queue was full or the server stopping (429/503).",
                &self.rejected,
            ),
            (
                "generations_total",
                "Generations completed (cancelled ones included).",
                &self.generations,
            ),
            (
                "generations_cancelled_total",
                "Generations cancelled by a client that went away (or at shutdown).",
                &self.cancelled,
            ),
            (
                "generations_failed_total",
                "Generations that failed inside the engine.",
                &self.failed,
            ),
            (
                "prompt_tokens_total",
                "Prompt tokens, reused ones included.",
                &self.prompt_tokens,
            ),
            (
                "prompt_tokens_evaluated_total",
                "Prompt tokens evaluated (not reused from a cached session).",
                &self.prompt_evaluated,
            ),
            (
                "completion_tokens_total",
                "Tokens generated.",
                &self.gen_tokens,
            ),
        ];
        for (name, help, c) in counters {
            metric(name, "counter", help, get(c).to_string());
        }
        metric(
            "prompt_seconds_total",
            "counter",
            "Time spent evaluating prompts.",
            secs(&self.prompt_micros).to_string(),
        );
        metric(
            "generation_seconds_total",
            "counter",
            "Time spent generating.",
            secs(&self.gen_micros).to_string(),
        );
        metric(
            "prompt_tokens_per_second",
            "gauge",
            "Prompt evaluation speed over all requests.",
            format!("{:.3}", rate(&self.prompt_evaluated, &self.prompt_micros)),
        );
        metric(
            "completion_tokens_per_second",
            "gauge",
            "Generation speed over all requests.",
            format!("{:.3}", rate(&self.gen_tokens, &self.gen_micros)),
        );
        let last = *self.last_rate.lock().unwrap_or_else(|e| e.into_inner());
        metric(
            "last_completion_tokens_per_second",
            "gauge",
            "Generation speed of the last request.",
            format!("{last:.3}"),
        );
        metric(
            "queue_depth",
            "gauge",
            "Requests waiting for the inference thread.",
            queue_depth.to_string(),
        );
        metric(
            "requests_processing",
            "gauge",
            "Requests being generated (0 or 1).",
            u8::from(busy).to_string(),
        );
        out
    }
}

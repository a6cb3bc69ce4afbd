//! `hearth serve` under load, on loopback only and bounded in count and time: 64 concurrent
//! streaming clients all get their own complete answers, and 16 clients that leave mid-stream
//! free the inference thread at once. Prints the aggregate generation speed.

mod common;
mod serve_util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_util::{get, post, serial, stream_text, Server, Stream, SMOLLM};

const PROMPTS: [&str; 8] = [
    "Name a color.",
    "Name an animal.",
    "What is 3+4?",
    "Say a greeting.",
    "Name a fruit.",
    "Name a country.",
    "Write one word about the sea.",
    "Count to three.",
];

fn body(prompt: &str, stream: bool, max_tokens: usize) -> Value {
    json!({
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

#[test]
fn concurrent_streams_complete_and_disconnects_free_the_thread() {
    let Some(model) = common::require_model(SMOLLM) else {
        return;
    };
    let _serial = serial();
    let s = Server::start(&model, &["-c", "1024", "--queue", "128", "--sessions", "4"]);
    let addr = s.addr;
    // What each prompt gives alone (greedy): every concurrent answer must be exactly this.
    let reference: Vec<String> = PROMPTS
        .iter()
        .map(|p| {
            let r = post(
                addr,
                "/v1/chat/completions",
                &body(p, false, 16).to_string(),
                "",
            );
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let clients = 64;
    let open = Arc::new(AtomicUsize::new(0));
    let most_open = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(clients));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (open, most_open, barrier) = (open.clone(), most_open.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut st = Stream::open(
                    addr,
                    "/v1/chat/completions",
                    &body(PROMPTS[i % 8], true, 16),
                )
                .unwrap_or_else(|e| panic!("client {i} refused: {e:?}"));
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most_open.fetch_max(now, Ordering::SeqCst);
                let events = st.rest();
                open.fetch_sub(1, Ordering::SeqCst);
                (i, events)
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut tokens = 0;
    for h in handles {
        let (i, events) = h.join().expect("client thread");
        assert_eq!(
            events.last().map(|e| e.as_str()),
            Some(Some("[DONE]")),
            "client {i}: {events:?}"
        );
        let chunk_ids: std::collections::HashSet<&str> = events[..events.len() - 1]
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            chunk_ids.len(),
            1,
            "client {i} got chunks of several requests"
        );
        assert!(
            ids.insert(chunk_ids.into_iter().next().unwrap().to_string()),
            "two clients share an id"
        );
        let (_, content) = stream_text(&events);
        assert_eq!(content, reference[i % 8], "client {i} got another answer");
        tokens += events[events.len() - 2]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    assert!(
        most_open.load(Ordering::SeqCst) >= 4,
        "at most {} streams were in flight",
        most_open.load(Ordering::SeqCst)
    );
    eprintln!(
        "load: {clients} concurrent streams, up to {} in flight, {tokens} tokens in {wall:.2} s: {:.1} tokens/s aggregate",
        most_open.load(Ordering::SeqCst),
        tokens as f64 / wall
    );

    // 16 clients that leave after their first words: each frees the thread at once.
    let start = Instant::now();
    let leavers: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let long = json!({
                    "messages": [{"role": "user", "content": format!("Write a very long story number {i}.")}],
                    "max_tokens": 900, "temperature": 1.0, "seed": i, "stream": true,
                });
                let mut st = Stream::open(addr, "/v1/chat/completions", &long).expect("leaver");
                let mut words = 0;
                while words < 2 {
                    let e = st.next_event().expect("event before leaving");
                    if e["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) {
                        words += 1;
                    }
                }
                // Dropping the stream closes the connection mid-answer.
            })
        })
        .collect();
    for h in leavers {
        h.join().expect("leaver thread");
    }
    let t = Instant::now();
    let r = post(
        addr,
        "/v1/chat/completions",
        &body("Name a color.", false, 8).to_string(),
        "",
    );
    assert_eq!(r.status, 200);
    let next = t.elapsed();
    // 16 × 900 tokens would take minutes: the leavers' generations were cut short.
    assert!(
        next < Duration::from_secs(10),
        "the next request waited {next:?}"
    );
    let metrics = get(addr, "/metrics", "").body;
    let cancelled: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_generations_cancelled_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(cancelled, 16, "{metrics}");
    eprintln!(
        "load: 16 clients left mid-stream in {:.2} s; the next request was answered in {:.2} s",
        start.elapsed().as_secs_f64(),
        next.as_secs_f64()
    );
}

//! The inference thread and its queue. The model has one sequence per forward pass, so requests
//! are decoded one at a time, in arrival order (a fair, bounded FIFO); continuous batching would
//! need a multi-sequence forward pass. A few sessions (KV caches) are kept, and each request
//! gets the one whose history shares the longest prefix with its prompt, so the next turn of a
//! conversation evaluates only what is new.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::error::ApiError;
use super::metrics::Metrics;
use super::request::GenRequest;
use super::Served;
use crate::chat::reasoning::Channel;
use crate::engine::{Event, GenOptions, GenStats, Session};
use crate::sampler::Sampler;

/// What the inference thread tells the request's handler.
#[derive(Debug)]
pub enum Msg {
    /// Generation began (the request left the queue, its prompt is evaluated).
    Text(Channel, String),
    /// A sampled token with its log-probability and alternatives (text, logprob).
    Token(TokenProb),
    Done(GenStats),
    Failed(ApiError),
}

#[derive(Clone, Debug)]
pub struct TokenProb {
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(Vec<u8>, f32)>,
}

/// One request waiting for, or in, the inference thread.
pub struct Job {
    pub id: String,
    pub req: GenRequest,
    /// Set when the client goes away (or at shutdown): generation stops at the next token.
    pub cancel: Arc<AtomicBool>,
    pub tx: UnboundedSender<Msg>,
    pub received: Instant,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// The running job's cancel flag.
    current: Option<Arc<AtomicBool>>,
    closed: bool,
}

/// The bounded FIFO between the HTTP handlers and the inference thread.
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated (every update is
        // one push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a job; `false` (the job dropped) when the queue is full or closed.
    pub fn push(&self, job: Job) -> bool {
        let mut s = self.lock();
        if s.closed || s.jobs.len() >= self.capacity {
            return false;
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next job, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.jobs.pop_front() {
                s.current = Some(job.cancel.clone());
                return Some(job);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finished(&self) {
        self.lock().current = None;
    }

    /// Jobs waiting (not counting the one running).
    pub fn depth(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn busy(&self) -> bool {
        self.lock().current.is_some()
    }

    /// Take no more jobs; the thread ends when the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Cancel the running job and every waiting one (each still gets a clean ending).
    pub fn cancel_all(&self) {
        let s = self.lock();
        for flag in s.jobs.iter().map(|j| &j.cancel).chain(s.current.iter()) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// A cached session and the prompt it last held.
struct Slot {
    session: Session,
    history: Vec<u32>,
    last_used: u64,
}

/// The sessions kept between requests.
struct Slots {
    slots: Vec<Slot>,
    capacity: usize,
    clock: u64,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Slots {
    /// The slot for `prompt`: the one sharing the longest prefix with it; a new one while there
    /// is room and no slot holds most of its history in common (so that another conversation's
    /// cache is not thrown away for a shared system prompt); else the least recently used.
    fn pick(&mut self, served: &Served, prompt: &[u32]) -> usize {
        self.clock += 1;
        let best = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (common_prefix(&s.history, prompt), i))
            .max_by_key(|&(n, i)| (n, self.slots[i].last_used));
        let pick = match best {
            Some((n, i)) if n > 0 && n * 2 >= self.slots[i].history.len() => i,
            _ if self.slots.len() < self.capacity => {
                self.slots.push(Slot {
                    session: served.engine.new_session(),
                    history: Vec::new(),
                    last_used: 0,
                });
                self.slots.len() - 1
            }
            Some((n, i)) if n > 0 => i,
            _ => (0..self.slots.len())
                .min_by_key(|&i| self.slots[i].last_used)
                .unwrap_or(0),
        };
        self.slots[pick].last_used = self.clock;
        pick
    }
}

/// Start the inference thread: it serves `queue` until it is closed and empty.
pub fn spawn(
    served: Arc<Served>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    sessions: usize,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hearth-inference".into())
        .spawn(move || {
            let mut slots = Slots {
                slots: Vec::new(),
                capacity: sessions.max(1),
                clock: 0,
            };
            while let Some(job) = queue.pop() {
                if job.cancel.load(Ordering::Relaxed) || job.tx.is_closed() {
                    metrics.cancelled();
                    log_cancelled_in_queue(&job);
                } else {
                    run(&served, &metrics, &mut slots, job);
                }
                queue.finished();
            }
        })
}

fn log_cancelled_in_queue(job: &Job) {
    eprintln!(
        "{} {} cancelled while queued ({:.2} s)",
        job.id,
        job.req.kind.path(),
        job.received.elapsed().as_secs_f64()
    );
}

/// Generate one request, streaming what comes to its handler.
fn run(served: &Served, metrics: &Metrics, slots: &mut Slots, job: Job) {
    let engine = &served.engine;
    let req = &job.req;
    let started = Instant::now();
    let mut sampler = match Sampler::new(req.params, engine.model.hp.n_vocab) {
        Ok(s) => s,
        Err(e) => {
            let _ = job
                .tx
                .send(Msg::Failed(ApiError::field(e.field(), e.to_string())));
            return;
        }
    };
    let i = slots.pick(served, &req.prompt);
    let opts = GenOptions {
        max_tokens: Some(req.max_tokens),
        stop: &req.stop,
        reasoning: req.reasoning.clone(),
        cancel: Some(&job.cancel),
        logprobs: req.logprobs,
    };
    let tx = &job.tx;
    let cancel = &job.cancel;
    let send = |msg: Msg| {
        if tx.send(msg).is_err() {
            // The handler is gone: the client disconnected.
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let piece = |id: u32| engine.tokenizer.token_to_piece(id, false);
    let mut on_event = |event: Event| match event {
        Event::Text(channel, text) => send(Msg::Text(channel, text.to_string())),
        Event::Token { id, logprob, top } => send(Msg::Token(TokenProb {
            bytes: piece(id),
            logprob,
            top: top.iter().map(|&(t, lp)| (piece(t), lp)).collect(),
        })),
        Event::ReasoningClosed(_) => {}
    };
    let slot = &mut slots.slots[i];
    let result = catch_unwind(AssertUnwindSafe(|| {
        engine.generate(
            &mut slot.session,
            &req.prompt,
            &mut sampler,
            &opts,
            &mut on_event,
        )
    }));
    match result {
        Ok(Ok(stats)) => {
            slot.history.clone_from(&req.prompt);
            metrics.generated(&stats);
            log_done(&job, &stats, started);
            send(Msg::Done(stats));
        }
        Ok(Err(e)) => {
            slot.history.clear();
            slot.session.cache.clear();
            metrics.failed();
            eprintln!("{} {} failed: {e:#}", job.id, req.kind.path());
            send(Msg::Failed(ApiError::internal(format!(
                "generation failed: {e:#}"
            ))));
        }
        Err(_) => {
            // The session may be half-updated: start it afresh.
            *slot = Slot {
                session: engine.new_session(),
                history: Vec::new(),
                last_used: 0,
            };
            metrics.failed();
            eprintln!(
                "{} {} failed: the generation panicked",
                job.id,
                req.kind.path()
            );
            send(Msg::Failed(ApiError::internal(
                "generation failed unexpectedly",
            )));
        }
    }
}

/// The request's log line: id, endpoint, tokens, times, speed, why it ended.
fn log_done(job: &Job, stats: &GenStats, started: Instant) {
    let total = job.received.elapsed().as_secs_f64();
    let gen = stats.gen_time.as_secs_f64();
    eprintln!(
        "{} {} 200 prompt {} ({} reused) completion {} | queued {:.2} s, prompt {:.2} s, generation {:.2} s ({:.1} t/s), total {:.2} s | {:?}",
        job.id,
        job.req.kind.path(),
        stats.prompt_tokens,
        stats.prompt_reused,
        stats.gen_tokens,
        started.duration_since(job.received).as_secs_f64(),
        stats.prompt_time.as_secs_f64(),
        gen,
        stats.gen_tokens as f64 / gen.max(1e-9),
        total,
        stats.stop,
    );
}

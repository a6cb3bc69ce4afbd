//! The engine: a loaded model with its tokenizer and thread pool, sessions over a KV cache, and
//! the generation loop shared by `hearth run` (and later `chat` and `serve`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hearth_models::gguf::GgufFile;
use hearth_models::kv_cache::{CacheType, KvCache};
use hearth_models::model::{Logits, Model, Scratch};
use hearth_models::tokenizer::{StreamDecoder, Tokenizer};

use crate::chat::defaults::{ModelDefaults, DEFAULT_CTX};
pub use crate::chat::reasoning::CloseReason;
use crate::chat::reasoning::{
    longest_suffix_prefix, Channel, ReasoningParser, Start, ThinkingGuard,
};
use crate::sampler::Sampler;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Worker threads (0: one per physical core).
    pub threads: usize,
    /// Context length; `None`: the model family's default (4096, 8192 for reasoning models
    /// where memory allows), capped at the trained length.
    pub ctx_size: Option<usize>,
    /// Most tokens per forward pass while processing a prompt.
    pub batch: usize,
    pub cache_type: CacheType,
    /// Load even when the memory check says the model will not fit.
    pub force: bool,
    /// Layers to run on the GPU (`--gpu`, `-ngl`; more than the model has: all, and the
    /// output head). `None`: the CPU only.
    pub gpu_layers: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 0,
            ctx_size: None,
            batch: 512,
            cache_type: CacheType::F16,
            force: false,
            gpu_layers: None,
        }
    }
}

/// A model ready to serve sessions.
pub struct Engine {
    pub model: Model,
    pub tokenizer: Tokenizer,
    /// The model family's defaults (R1 distills: sampling, thinking, context).
    pub defaults: ModelDefaults,
    pub n_ctx: usize,
    pub batch: usize,
    pub cache_type: CacheType,
    pool: hearth_models::ops::pool::ThreadPool,
    pub load_time: Duration,
    /// The layers offloaded to the GPU, if any.
    gpu: Option<crate::gpu::EngineGpu>,
}

/// One conversation's state: the KV cache and the forward pass's buffers.
pub struct Session {
    pub cache: KvCache,
    /// The tokens whose keys and values the cache holds (its first `cache.len`).
    tokens: Vec<u32>,
    scratch: Scratch,
    /// Every token's logits when a multi-batch evaluation asked for all of them.
    all: Vec<f32>,
    /// The GPU layers' KV cache and activations, when the engine offloads.
    gpu: Option<crate::gpu::SessionGpu>,
    /// The length of the last prompt [`Engine::generate`] evaluated and the logits after it, so
    /// that the same prompt again (a retry, a regenerated answer) samples from exactly the same
    /// logits instead of re-evaluating its last token alone, which the generation kernels round
    /// differently from the prompt kernels.
    prompt_end: Option<(usize, Vec<f32>)>,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-generation token.
    Eog,
    /// A user stop string.
    StopString,
    /// The token limit.
    Length,
    /// The context is full.
    Context,
    /// Cancelled from outside (Ctrl-C, a client that went away).
    Cancelled,
}

/// What a generation did, for the statistics line.
#[derive(Clone, Debug)]
pub struct GenStats {
    /// The whole prompt, reused part included.
    pub prompt_tokens: usize,
    /// Prompt tokens the session already held (not evaluated again).
    pub prompt_reused: usize,
    pub prompt_time: Duration,
    /// Tokens sampled (reasoning included, hearth's injected closing excluded).
    pub gen_tokens: usize,
    /// Of those, tokens inside the reasoning.
    pub reasoning_tokens: usize,
    pub gen_time: Duration,
    pub stop: StopReason,
    /// Whether hearth closed the thinking, and why.
    pub closed: Option<CloseReason>,
}

impl GenStats {
    /// Prompt tokens evaluated by this generation.
    pub fn prompt_evaluated(&self) -> usize {
        self.prompt_tokens - self.prompt_reused
    }
}

impl Engine {
    /// Open, validate and check the memory budget before touching any weight.
    pub fn load(path: &Path, opts: &LoadOptions) -> anyhow::Result<Engine> {
        let start = Instant::now();
        hearth_simd::select().map_err(anyhow::Error::msg)?;
        let file = Arc::new(GgufFile::open(path)?);
        let tokenizer = Tokenizer::from_gguf(&file)
            .with_context(|| format!("{}: invalid vocabulary", path.display()))?;
        let model = Model::load(file.clone())?;
        let defaults = ModelDefaults::detect(&file, &tokenizer);
        if opts.batch == 0 {
            bail!("--batch must be at least 1");
        }
        KvCache::check(opts.cache_type, model.hp.head_dim)?;
        let n_ctx = match opts.ctx_size {
            Some(0) => bail!("--ctx-size must be at least 1"),
            Some(n) => n.min(model.hp.n_ctx_train),
            // A reasoning model gets a longer default context where memory allows it.
            None => [defaults.n_ctx, DEFAULT_CTX]
                .into_iter()
                .map(|n| n.min(model.hp.n_ctx_train))
                .find(|&n| fits(&model, n, opts).is_ok())
                .unwrap_or(DEFAULT_CTX.min(model.hp.n_ctx_train)),
        };
        check_memory(&model, n_ctx, opts)?;
        let threads = match opts.threads {
            0 => crate::cpu::default_threads(),
            n => n,
        };
        let pool = hearth_models::ops::pool::ThreadPool::new(threads)
            .context("starting the worker threads")?;
        let gpu = match opts.gpu_layers {
            Some(n) if n > 0 => crate::gpu::load(&model, n)?,
            _ => None,
        };
        Ok(Engine {
            model,
            tokenizer,
            defaults,
            n_ctx,
            batch: opts.batch,
            cache_type: opts.cache_type,
            pool,
            load_time: start.elapsed(),
            gpu,
        })
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// A fresh session with an empty cache of `n_ctx` positions.
    pub fn new_session(&self) -> Session {
        Session {
            cache: KvCache::new(
                self.cache_type,
                self.model.hp.n_layer,
                self.n_ctx,
                self.model.kv_dim(),
                self.model.hp.head_dim,
            ),
            tokens: Vec::new(),
            scratch: Scratch::default(),
            all: Vec::new(),
            gpu: crate::gpu::new_session(self.gpu.as_ref(), self.n_ctx),
            prompt_end: None,
        }
    }

    /// `CPU`, or the GPU and how many layers it runs.
    pub fn backend(&self) -> String {
        crate::gpu::describe(self.gpu.as_ref(), self.model.hp.n_layer)
    }

    /// Feed `tokens` after what the session holds, in batches of at most `batch`; return the
    /// logits asked for (the last token's, or every token's row by row). They live in the
    /// session until its next evaluation, so generation allocates nothing per token here.
    pub fn eval<'s>(
        &self,
        s: &'s mut Session,
        tokens: &[u32],
        want: Logits,
    ) -> anyhow::Result<&'s [f32]> {
        s.tokens.truncate(s.cache.len);
        s.tokens.extend_from_slice(tokens);
        self.pool.install(|| -> anyhow::Result<()> {
            let n_chunks = tokens.len().div_ceil(self.batch);
            if want == Logits::All {
                s.all.clear();
            }
            for (i, chunk) in tokens.chunks(self.batch).enumerate() {
                let chunk_want = match want {
                    Logits::Last if i + 1 < n_chunks => Logits::None,
                    other => other,
                };
                let done = s.cache.len;
                crate::gpu::forward(
                    self.gpu.as_ref(),
                    &mut s.gpu,
                    &self.model,
                    &s.tokens[..done],
                    chunk,
                    &mut s.cache,
                    chunk_want,
                    &mut s.scratch,
                    self.batch,
                )?;
                if want == Logits::All && n_chunks > 1 {
                    s.all.extend_from_slice(s.scratch.logits());
                }
            }
            Ok(())
        })?;
        Ok(if want == Logits::All && tokens.len() > self.batch {
            &s.all
        } else {
            s.scratch.logits()
        })
    }

    /// Make the session hold a prefix of `prompt` and return its length: the longest common
    /// prefix of what the cache holds and `prompt`, less one token when that would be all of it
    /// (the last prompt token must be evaluated for its logits). The rest is dropped.
    pub fn reuse_prefix(&self, s: &mut Session, prompt: &[u32]) -> usize {
        s.tokens.truncate(s.cache.len);
        let common = s
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        s.tokens.truncate(common);
        s.cache.truncate(common);
        common
    }

    /// Generate after `prompt`, the whole token sequence of the conversation so far: the part
    /// the session already holds (from an earlier turn) is reused, the rest evaluated. Then
    /// sample until an end-of-generation token, a stop string, `max_tokens`, a full context or
    /// `cancel`, streaming whole UTF-8 text to `on_event`. With reasoning options, the text is
    /// split into reasoning and answer, and thinking that exceeds its budget or loops is closed
    /// so that the model answers. Stop strings apply to the answer only.
    pub fn generate(
        &self,
        s: &mut Session,
        prompt: &[u32],
        sampler: &mut Sampler,
        opts: &GenOptions,
        on_event: &mut dyn FnMut(Event),
    ) -> anyhow::Result<GenStats> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        if prompt.len() > self.n_ctx {
            bail!(
                "the prompt is {} tokens but the context holds {} (use a larger --ctx-size, up to {})",
                prompt.len(),
                self.n_ctx,
                self.model.hp.n_ctx_train
            );
        }
        let t0 = Instant::now();
        let n = prompt.len();
        let again = matches!(&s.prompt_end, Some((len, _)) if *len == n)
            && s.cache.len >= n
            && s.tokens.get(..n) == Some(prompt);
        let reused = if again {
            s.tokens.truncate(n);
            s.cache.truncate(n);
            let (_, logits) = s.prompt_end.as_ref().expect("checked above");
            s.scratch.restore_logits(logits);
            n
        } else {
            let reused = self.reuse_prefix(s, prompt);
            s.prompt_end = None;
            self.eval(s, &prompt[reused..], Logits::Last)?;
            s.prompt_end = Some((n, s.scratch.logits().to_vec()));
            reused
        };
        let prompt_time = t0.elapsed();
        for &t in prompt {
            sampler.accept(t);
        }
        let t1 = Instant::now();
        let mut out = Output {
            parser: opts
                .reasoning
                .as_ref()
                .map(|r| ReasoningParser::new(r.start)),
            stop: StopFilter::new(opts.stop),
            stopped: false,
        };
        let mut guard = opts
            .reasoning
            .as_ref()
            .map(|r| ThinkingGuard::new(r.budget, r.detect_loops));
        let mut decoder = StreamDecoder::new(&self.tokenizer);
        let (mut n_gen, mut closed) = (0, None);
        let cancelled = || opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let reason = loop {
            if cancelled() {
                break StopReason::Cancelled;
            }
            if opts.max_tokens.is_some_and(|m| n_gen >= m) {
                break StopReason::Length;
            }
            let token = sampler.sample(s.scratch.logits());
            sampler.accept(token);
            if self.tokenizer.is_eog(token) {
                break StopReason::Eog;
            }
            if let Some(k) = opts.logprobs {
                let (logprob, top) = log_probs(s.scratch.logits(), token, k);
                on_event(Event::Token {
                    id: token,
                    logprob,
                    top: &top,
                });
            }
            n_gen += 1;
            out.push(&decoder.push(token), on_event);
            if out.stopped {
                break StopReason::StopString;
            }
            let thinking = out.parser.as_ref().is_some_and(|p| p.thinking());
            let close = guard.as_mut().and_then(|g| g.push(token, thinking));
            let mut feed = vec![token];
            if let Some(why) = close {
                // End the thinking the way the model itself would, then let it answer.
                let closing = self
                    .tokenizer
                    .encode(CLOSING_THOUGHT, false, false)
                    .context("tokenizing the closing of the reasoning")?;
                for &t in &closing {
                    sampler.accept(t);
                    out.push(&decoder.push(t), on_event);
                }
                feed.extend_from_slice(&closing);
                closed = Some(why);
                on_event(Event::ReasoningClosed(why));
            }
            if s.cache.len + feed.len() > self.n_ctx {
                break StopReason::Context;
            }
            self.eval(s, &feed, Logits::Last)?;
        };
        if reason != StopReason::StopString {
            out.push(&decoder.flush(), on_event);
            if !out.stopped {
                out.finish(on_event);
            }
        }
        Ok(GenStats {
            prompt_tokens: prompt.len(),
            prompt_reused: reused,
            prompt_time,
            gen_tokens: n_gen,
            reasoning_tokens: guard.map_or(0, |g| g.tokens),
            gen_time: t1.elapsed(),
            stop: reason,
            closed,
        })
    }
}

/// What [`Engine::generate`] injects to end thinking that ran over its budget or in circles.
pub const CLOSING_THOUGHT: &str = "\n\nI should answer now.\n</think>\n\n";

/// Options of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenOptions<'a> {
    /// Most tokens to sample (`None`: until the context is full).
    pub max_tokens: Option<usize>,
    /// Stop when the answer contains one of these (not emitted).
    pub stop: &'a [String],
    /// Split reasoning from the answer (`None`: every piece of text is answer, unparsed).
    pub reasoning: Option<ReasoningOptions>,
    /// Checked before every token: set it to stop (Ctrl-C, a client that went away).
    pub cancel: Option<&'a AtomicBool>,
    /// Report each sampled token with its log-probability and the `n` most likely
    /// alternatives ([`Event::Token`]); `None`: no such events, no extra work.
    pub logprobs: Option<usize>,
}

/// How to treat a reasoning model's thinking.
#[derive(Clone, Debug)]
pub struct ReasoningOptions {
    /// Where the output starts (inside `<think>` when the prompt opened it).
    pub start: Start,
    /// Close the thinking after this many tokens.
    pub budget: Option<usize>,
    /// Close thinking that keeps repeating itself.
    pub detect_loops: bool,
}

/// What generation reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event<'a> {
    /// Text of the reasoning or of the answer.
    Text(Channel, &'a str),
    /// hearth closed the thinking (its closing text follows as reasoning).
    ReasoningClosed(CloseReason),
    /// A sampled token (only with [`GenOptions::logprobs`]), before its text: its natural-log
    /// probability under the model's distribution (softmax of the raw logits, before sampling
    /// filters) and the most likely tokens with theirs, best first.
    Token {
        id: u32,
        logprob: f32,
        top: &'a [(u32, f32)],
    },
}

/// Log-softmax of `logits` at `token`, and the `k` largest entries (ties to the lower id).
fn log_probs(logits: &[f32], token: u32, k: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let lp = |l: f32| l - log_z;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (id, &l) in (0u32..).zip(logits) {
        if top.len() == k && top.last().is_none_or(|&(_, worst)| l <= worst) {
            continue;
        }
        let at = top.partition_point(|&(_, v)| v >= l);
        top.insert(at, (id, l));
        top.truncate(k);
    }
    let logprob = logits
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |&l| lp(l));
    (
        logprob,
        top.into_iter().map(|(id, l)| (id, lp(l))).collect(),
    )
}

/// The text path of a generation: reasoning parser, then stop strings on the answer.
struct Output<'a> {
    parser: Option<ReasoningParser>,
    stop: StopFilter<'a>,
    stopped: bool,
}

impl Output<'_> {
    fn push(&mut self, text: &str, on_event: &mut dyn FnMut(Event)) {
        if self.stopped || text.is_empty() {
            return;
        }
        let (stop, stopped) = (&mut self.stop, &mut self.stopped);
        let mut route = |channel: Channel, t: &str| match channel {
            Channel::Reasoning => on_event(Event::Text(Channel::Reasoning, t)),
            Channel::Answer => {
                if !*stopped {
                    *stopped = stop.push(t, &mut |a| {
                        if !a.is_empty() {
                            on_event(Event::Text(Channel::Answer, a))
                        }
                    });
                }
            }
        };
        match &mut self.parser {
            Some(p) => p.push(text, &mut route),
            None => route(Channel::Answer, text),
        }
    }

    fn finish(&mut self, on_event: &mut dyn FnMut(Event)) {
        if let Some(p) = &mut self.parser {
            let mut held = Vec::new();
            p.finish(&mut |c, t| held.push((c, t.to_string())));
            for (c, t) in held {
                match c {
                    Channel::Reasoning => on_event(Event::Text(Channel::Reasoning, &t)),
                    Channel::Answer => self.answer(&t, on_event),
                }
            }
        }
        if !self.stopped {
            self.stop.finish(&mut |a| {
                if !a.is_empty() {
                    on_event(Event::Text(Channel::Answer, a))
                }
            });
        }
    }

    /// Answer text through the stop strings.
    fn answer(&mut self, text: &str, on_event: &mut dyn FnMut(Event)) {
        if !self.stopped {
            self.stopped = self.stop.push(text, &mut |a| {
                if !a.is_empty() {
                    on_event(Event::Text(Channel::Answer, a))
                }
            });
        }
    }
}

/// Holds back text that could be the start of a stop string until it is known not to be.
struct StopFilter<'a> {
    stops: &'a [String],
    pending: String,
}

impl<'a> StopFilter<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopFilter {
            stops,
            pending: String::new(),
        }
    }

    /// Add text; emit what is safe. Returns true when a stop string was found (the text before
    /// it has been emitted, the rest dropped).
    fn push(&mut self, text: &str, emit: &mut dyn FnMut(&str)) -> bool {
        self.pending.push_str(text);
        let hit = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            emit(&self.pending[..at]);
            self.pending.clear();
            return true;
        }
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        if cut > 0 {
            emit(&self.pending[..cut]);
            self.pending.drain(..cut);
        }
        false
    }

    fn finish(&mut self, emit: &mut dyn FnMut(&str)) {
        emit(&self.pending);
        self.pending.clear();
    }
}

/// Refuse to load what would not fit: the weights are mapped (and paged in), the KV cache and
/// the scratch buffers are allocated (the byte counts live in `store::fit`, which `hearth fit`
/// shares). With `force`, say so and go on.
fn check_memory(model: &Model, n_ctx: usize, opts: &LoadOptions) -> anyhow::Result<()> {
    if let Err(why) = fits(model, n_ctx, opts) {
        if !opts.force {
            bail!("{why}");
        }
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| eprintln!("warning: --force: loading anyway; {why}"));
    }
    Ok(())
}

/// Whether weights + KV cache for `n_ctx` + scratch fit in the memory available (`Err`: the
/// refusal, with the numbers and the options).
fn fits(model: &Model, n_ctx: usize, opts: &LoadOptions) -> Result<(), String> {
    use crate::store::fit;
    let shape = fit::Shape::from_hparams(&model.hp);
    let need = fit::memory_need(
        &shape,
        model.file().file_size(),
        n_ctx,
        opts.batch,
        opts.cache_type,
    );
    match fit::available_memory() {
        Some(avail) if need.total() > avail => Err(fit::refusal(
            &shape,
            &need,
            opts.batch,
            opts.cache_type,
            avail,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::new(&stops);
        let mut out = String::new();
        for p in pieces {
            if f.push(p, &mut |t| out.push_str(t)) {
                return (out, true);
            }
        }
        f.finish(&mut |t| out.push_str(t));
        (out, false)
    }

    #[test]
    fn stop_strings_split_across_pieces() {
        assert_eq!(
            run(&["</s>"], &["Hello <", "/", "s> more"]),
            ("Hello ".into(), true)
        );
        assert_eq!(run(&["</s>"], &["a <", "b"]), ("a <b".into(), false));
        assert_eq!(run(&[], &["x", "y"]), ("xy".into(), false));
        assert_eq!(run(&["ab", "b"], &["xab"]), ("x".into(), true));
        assert_eq!(run(&["é!"], &["café", "?"]), ("café?".into(), false));
    }

    #[test]
    fn log_probs_are_normalised_and_ranked() {
        let logits = [1.0f32, 3.0, 2.0, 3.0];
        let (lp, top) = log_probs(&logits, 2, 3);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((lp - (2.0f32.exp() / z).ln()).abs() < 1e-5);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, [1, 3, 2]);
        let total: f32 = logits.iter().map(|&l| (l - z.ln()).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(log_probs(&logits, 0, 0).1.is_empty());
    }
}

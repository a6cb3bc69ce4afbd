//! The engine: a loaded model with its tokenizer and thread pool, sessions over a KV cache, and
//! the generation loop shared by `hearth run` (and later `chat` and `serve`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hearth_models::gguf::GgufFile;
use hearth_models::kv_cache::{CacheType, KvCache};
use hearth_models::model::{Logits, Model, Scratch};
use hearth_models::tokenizer::{StreamDecoder, Tokenizer};

use crate::inspect::human_bytes;
use crate::sampler::Sampler;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Worker threads (0: one per physical core).
    pub threads: usize,
    /// Context length; `None`: 4096 capped at the trained length.
    pub ctx_size: Option<usize>,
    /// Most tokens per forward pass while processing a prompt.
    pub batch: usize,
    pub cache_type: CacheType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 0,
            ctx_size: None,
            batch: 512,
            cache_type: CacheType::F16,
        }
    }
}

/// A model ready to serve sessions.
pub struct Engine {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub n_ctx: usize,
    pub batch: usize,
    pub cache_type: CacheType,
    pool: rayon::ThreadPool,
    pub load_time: Duration,
}

/// One conversation's state: the KV cache and the forward pass's buffers.
pub struct Session {
    pub cache: KvCache,
    scratch: Scratch,
    /// Every token's logits when a multi-batch evaluation asked for all of them.
    all: Vec<f32>,
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
}

/// What a generation did, for the statistics line.
#[derive(Clone, Debug)]
pub struct GenStats {
    pub prompt_tokens: usize,
    pub prompt_time: Duration,
    pub gen_tokens: usize,
    pub gen_time: Duration,
    pub stop: StopReason,
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
        let n_ctx = match opts.ctx_size {
            Some(0) => bail!("--ctx-size must be at least 1"),
            Some(n) => n.min(model.hp.n_ctx_train),
            None => 4096.min(model.hp.n_ctx_train),
        };
        if opts.batch == 0 {
            bail!("--batch must be at least 1");
        }
        KvCache::check(opts.cache_type, model.hp.head_dim)?;
        check_memory(&model, n_ctx, opts)?;
        let threads = match opts.threads {
            0 => crate::cpu::default_threads(),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("starting the worker threads")?;
        Ok(Engine {
            model,
            tokenizer,
            n_ctx,
            batch: opts.batch,
            cache_type: opts.cache_type,
            pool,
            load_time: start.elapsed(),
        })
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
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
            scratch: Scratch::default(),
            all: Vec::new(),
        }
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
                let logits = self
                    .model
                    .forward(chunk, &mut s.cache, chunk_want, &mut s.scratch)?;
                if want == Logits::All && n_chunks > 1 {
                    s.all.extend_from_slice(logits);
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

    /// Process `prompt`, then sample up to `max_tokens` tokens (`None`: until the context is
    /// full), streaming whole UTF-8 text to `on_text`. Stops at end-of-generation tokens and at
    /// any of `stop` (the stop string itself is not emitted).
    pub fn generate(
        &self,
        s: &mut Session,
        prompt: &[u32],
        sampler: &mut Sampler,
        max_tokens: Option<usize>,
        stop: &[String],
        on_text: &mut dyn FnMut(&str),
    ) -> anyhow::Result<GenStats> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        if s.cache.len + prompt.len() > self.n_ctx {
            bail!(
                "the prompt is {} tokens but the context holds {} (use a larger --ctx-size, up to {})",
                s.cache.len + prompt.len(),
                self.n_ctx,
                self.model.hp.n_ctx_train
            );
        }
        let t0 = Instant::now();
        self.eval(s, prompt, Logits::Last)?;
        let prompt_time = t0.elapsed();
        for &t in prompt {
            sampler.accept(t);
        }
        let t1 = Instant::now();
        let mut out = StopFilter::new(stop);
        let mut decoder = StreamDecoder::new(&self.tokenizer);
        let mut n_gen = 0;
        let reason = loop {
            if max_tokens.is_some_and(|m| n_gen >= m) {
                break StopReason::Length;
            }
            let token = sampler.sample(s.scratch.logits());
            sampler.accept(token);
            if self.tokenizer.is_eog(token) {
                break StopReason::Eog;
            }
            n_gen += 1;
            let text = decoder.push(token);
            if out.push(&text, on_text) {
                break StopReason::StopString;
            }
            if s.cache.len >= self.n_ctx {
                break StopReason::Context;
            }
            self.eval(s, &[token], Logits::Last)?;
        };
        if reason != StopReason::StopString {
            let rest = decoder.flush();
            if !out.push(&rest, on_text) {
                out.finish(on_text);
            }
        }
        Ok(GenStats {
            prompt_tokens: prompt.len(),
            prompt_time,
            gen_tokens: n_gen,
            gen_time: t1.elapsed(),
            stop: reason,
        })
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

/// Length of the longest suffix of `text` that is a proper prefix of `stop`, on char boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop
                    .as_bytes()
                    .starts_with(&text.as_bytes()[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Refuse to load what would not fit: the weights are mapped (and paged in), the KV cache and
/// the scratch buffers are allocated.
fn check_memory(model: &Model, n_ctx: usize, opts: &LoadOptions) -> anyhow::Result<()> {
    let hp = &model.hp;
    let weights = model.file().file_size();
    let kv = KvCache::bytes_for(opts.cache_type, hp.n_layer, n_ctx, model.kv_dim());
    let b = opts.batch.min(n_ctx) as u64;
    let widest = (hp.n_embd.max(hp.n_ff).max(hp.n_head * hp.head_dim)) as u64;
    let scratch =
        b * (widest * 10 + hp.n_vocab as u64) * 4 + (b * hp.n_head as u64 * n_ctx as u64 * 4);
    let need = weights.saturating_add(kv).saturating_add(scratch);
    if let Some(avail) = available_memory() {
        if need > avail {
            bail!(
                "not enough memory: the model needs {} ({} weights + {} KV cache for {} tokens + {} scratch) but {} is available; try a smaller --ctx-size or a smaller quantization",
                human_bytes(need),
                human_bytes(weights),
                human_bytes(kv),
                n_ctx,
                human_bytes(scratch),
                human_bytes(avail)
            );
        }
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, where there is one.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
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
}

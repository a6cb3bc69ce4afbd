//! Token sampling: llama.cpp's default sampler chain with the same defaults, order and random
//! stream, so the same flags behave the same way.
//!
//! The chain (llama.cpp `common_params_sampling::samplers`, built by `common_sampler_init`):
//!
//! ```text
//! logits -> penalties -> [dry] -> [top_n_sigma] -> top_k -> typical -> top_p -> min_p -> [xtc]
//!        -> temperature -> dist (mt19937)
//! ```
//!
//! The bracketed stages are off by default in llama.cpp (`dry_multiplier = 0`,
//! `top_n_sigma = -1`, `xtc_probability = 0`) and have no parameter here yet, so leaving them
//! out is the default behaviour, not an approximation of it. Note the order: the filters see
//! the logits *before* temperature, so `min_p` and `top_p` are measured at temperature 1.
//!
//! Greedy: `temperature <= 0` still runs the chain in llama.cpp (`llama_sampler_temp_impl`
//! then keeps only the largest surviving logit), so the penalties apply before the argmax.
//! Every filter but `typical` keeps the largest logit, so with `typical_p = 1` that is the
//! argmax of the penalised logits, which is what we compute, in one pass.
//!
//! Prompt tokens: llama.cpp's server (which `llama-cli` runs on) resets the sampler and then
//! `common_sampler_accept`s every prompt token, and `llama-completion` accepts each prompt
//! token as it is fed; so the prompt fills the penalty window before the first sampled token.
//! Callers do the same: [`Sampler::reset`], then [`Sampler::accept_prompt`] with the prompt
//! tokens, then for each step [`Sampler::sample`] and [`Sampler::accept`] the chosen token.

mod mt19937;
#[cfg(test)]
mod parity_tests;
mod penalties;
mod stages;
#[cfg(test)]
mod tests;

use std::fmt;

use mt19937::Mt19937;
use penalties::Penalties;
use stages::Candidates;

/// Sampling parameters; field defaults and meanings are those of llama.cpp's
/// `common_params_sampling`, the flag named on each field is llama.cpp's CLI flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// `--temp`, default 0.8. `<= 0` samples greedily. Must be finite.
    pub temperature: f32,
    /// `--top-k`, default 40. `<= 0` disables.
    pub top_k: i32,
    /// `--top-p`, default 0.95, in `[0, 1]`; 1 disables.
    pub top_p: f32,
    /// `--min-p`, default 0.05, in `[0, 1]`; 0 disables.
    pub min_p: f32,
    /// `--typical`, default 1.0, in `[0, 1]`; 1 disables.
    pub typical_p: f32,
    /// `--repeat-penalty`, default 1.0 (off). Finite and `> 0`.
    pub repeat_penalty: f32,
    /// `--repeat-last-n`, default 64: how many of the last accepted tokens the penalties look
    /// at; 0 disables them, -1 means every token accepted since the last reset (the whole
    /// context, as older llama.cpp's `-1 = ctx_size`).
    pub repeat_last_n: i32,
    /// `--presence-penalty`, default 0 (off). Finite.
    pub presence_penalty: f32,
    /// `--frequency-penalty`, default 0 (off). Finite.
    pub frequency_penalty: f32,
    /// `-s/--seed`: `None` picks a fresh random seed (llama.cpp's `LLAMA_DEFAULT_SEED`), on
    /// creation and on every reset. `Some(s)` seeds the `mt19937` with `s as u32`, the
    /// truncation llama.cpp's `uint32_t seed = std::stoul(...)` makes, so a seed reproduces
    /// llama.cpp's stream; unlike llama.cpp, `Some(0xFFFF_FFFF)` is a fixed seed too.
    pub seed: Option<u64>,
}

impl Default for SamplerParams {
    fn default() -> SamplerParams {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
        }
    }
}

/// A sampler parameter out of range. `field` is the [`SamplerParams`] field name (or
/// `n_vocab`), so a CLI or HTTP layer can point at the offending option.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerError {
    InvalidParam {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl SamplerError {
    /// The name of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            SamplerError::InvalidParam { field, .. } => field,
        }
    }
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerError::InvalidParam {
                field,
                value,
                expected,
            } => write!(f, "invalid sampler parameter {field} = {value}: {expected}"),
        }
    }
}

impl std::error::Error for SamplerError {}

fn invalid(field: &'static str, value: impl fmt::Display, expected: &'static str) -> SamplerError {
    SamplerError::InvalidParam {
        field,
        value: value.to_string(),
        expected,
    }
}

fn check_unit(field: &'static str, value: f32) -> Result<(), SamplerError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, value, "expected a number in [0, 1]"))
    }
}

fn check_finite(field: &'static str, value: f32) -> Result<(), SamplerError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(invalid(field, value, "expected a finite number"))
    }
}

impl SamplerParams {
    /// Rejects values that would make the chain compute NaN or that llama.cpp rejects
    /// (`common_sampler_init` and `arg.cpp` check the penalties). Lenient where llama.cpp is:
    /// a negative temperature means greedy, a non-positive `top_k` means off.
    pub fn validate(&self) -> Result<(), SamplerError> {
        check_finite("temperature", self.temperature)?;
        check_unit("top_p", self.top_p)?;
        check_unit("min_p", self.min_p)?;
        check_unit("typical_p", self.typical_p)?;
        let r = self.repeat_penalty;
        if !(r.is_finite() && r > 0.0 && (1.0 / r).is_finite()) {
            return Err(invalid(
                "repeat_penalty",
                r,
                "expected a finite number greater than 0 (1 = off)",
            ));
        }
        if self.repeat_last_n < -1 {
            return Err(invalid(
                "repeat_last_n",
                self.repeat_last_n,
                "expected -1 (whole context), 0 (off) or a positive count",
            ));
        }
        check_finite("presence_penalty", self.presence_penalty)?;
        check_finite("frequency_penalty", self.frequency_penalty)?;
        Ok(())
    }

    /// Greedy selection happens without consulting the random stream's value.
    fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 && self.typical_p >= 1.0
    }
}

/// The seed the `mt19937` gets: llama.cpp's `get_rng_seed`.
fn resolve_seed(seed: Option<u64>) -> u32 {
    match seed {
        // Truncation on purpose: llama.cpp stores the seed in a `uint32_t`.
        Some(s) => s as u32,
        None => random_seed(),
    }
}

/// A seed from OS entropy (std's per-process random hash keys) mixed with the clock, so two
/// samplers made in the same nanosecond still differ.
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(nanos);
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// The sampling chain with its state: the penalty window and the random stream.
#[derive(Debug)]
pub struct Sampler {
    params: SamplerParams,
    seed: u32,
    rng: Mt19937,
    penalties: Penalties,
    cur: Candidates,
}

impl Sampler {
    /// Validates `params`. `n_vocab` sizes the candidate buffer so that no call to
    /// [`Sampler::sample`] allocates; it must be positive.
    pub fn new(params: SamplerParams, n_vocab: usize) -> Result<Sampler, SamplerError> {
        params.validate()?;
        if n_vocab == 0 {
            return Err(invalid("n_vocab", n_vocab, "expected at least one token"));
        }
        let seed = resolve_seed(params.seed);
        Ok(Sampler {
            params,
            seed,
            rng: Mt19937::new(seed),
            penalties: Penalties::new(
                params.repeat_last_n,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ),
            cur: Candidates::with_capacity(n_vocab),
        })
    }

    /// Runs the chain over `logits` (index = token id) and picks a token.
    ///
    /// Accepts any length: `n_vocab` only sized the buffers (a longer slice makes the buffer
    /// grow once). An empty slice returns token 0. NaN logits are never picked unless nothing
    /// else is left; `-inf` logits are never picked while a finite one exists. Does not
    /// record the token: call [`Sampler::accept`] with it (llama.cpp's sample/accept split,
    /// which lets a caller substitute a token, e.g. a forced end of reasoning).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let p = self.params;
        if p.is_greedy() {
            // One draw per token as in llama.cpp, so the stream stays where llama.cpp's is.
            let _ = self.rng.next_f64();
            if self.penalties.is_disabled() {
                return greedy(logits);
            }
            if self.cur.load_top_k(logits, 1, &self.penalties) {
                return self.cur.data[0].id;
            }
            self.load_penalized(logits);
            return self.cur.data[self.cur.argmax()].id;
        }
        let fast_top_k = usize::try_from(p.top_k)
            .ok()
            .filter(|&k| k > 0)
            .is_some_and(|k| self.cur.load_top_k(logits, k, &self.penalties));
        if !fast_top_k {
            self.load_penalized(logits);
            self.cur.top_k(p.top_k);
        }
        self.cur.typical(p.typical_p);
        self.cur.top_p(p.top_p);
        self.cur.min_p(p.min_p);
        self.cur.temperature(p.temperature);
        match self.cur.dist(&mut self.rng) {
            Some(i) => self.cur.data[i].id,
            None => 0,
        }
    }

    /// The whole vocabulary as candidates, penalised: the head of llama.cpp's chain.
    fn load_penalized(&mut self, logits: &[f32]) {
        self.cur.load(logits);
        self.penalties.apply(&mut self.cur.data);
        self.cur.sorted = false;
    }

    /// Records a token in the penalty window (`common_sampler_accept`): every generated token,
    /// and the prompt tokens (see [`Sampler::accept_prompt`]).
    pub fn accept(&mut self, token: u32) {
        self.penalties.accept(token);
    }

    /// Accepts each prompt token in order, as llama.cpp's server does after resetting the
    /// sampler for a new prompt, so that the prompt counts toward the repetition penalties.
    pub fn accept_prompt(&mut self, tokens: &[u32]) {
        for &t in tokens {
            self.accept(t);
        }
    }

    /// Empties the penalty window and reseeds (`common_sampler_reset`): a fixed seed restarts
    /// its stream, `seed: None` draws a new random seed.
    pub fn reset(&mut self) {
        self.penalties.reset();
        self.seed = resolve_seed(self.params.seed);
        self.rng = Mt19937::new(self.seed);
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// The seed in use (`llama_sampler_get_seed`): worth printing when it was random, so the
    /// run can be repeated with `--seed`.
    pub fn seed(&self) -> u32 {
        self.seed
    }
}

/// Argmax, ties to the lowest id (`llama_sampler_greedy_apply` keeps the first strictly
/// larger). NaN never wins; all-NaN or empty input returns 0.
///
/// Two passes that the compiler vectorises (a lane-wise maximum, then a search for its first
/// occurrence) beat one branchy pass over a 150k vocabulary.
pub fn greedy(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            // `x > m` is false for NaN: this is `maxps(x, m)`.
            *m = if x > *m { x } else { *m };
        }
    }
    let max = tail
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let first = if max == f32::NEG_INFINITY {
        // Only -inf and NaN: the first -inf, if any.
        logits.iter().position(|&x| x == f32::NEG_INFINITY)
    } else {
        logits.iter().position(|&x| x == max)
    };
    first.and_then(|i| u32::try_from(i).ok()).unwrap_or(0)
}

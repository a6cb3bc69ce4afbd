//! The filtering stages of the chain, each a method on [`Candidates`], each mirroring one
//! llama.cpp sampler (named on the method). They keep llama.cpp's float types (`f32`
//! probabilities and running sums, an `f64` sum in `dist`) and its `sorted` bookkeeping, so a
//! stage keeps or drops exactly the tokens llama.cpp's does and `dist` sees the candidates in
//! the same order (which decides the token a given random number lands on).
//!
//! Differences, all in cases where llama.cpp computes NaN: NaN logits load as `-inf`; a
//! softmax whose maximum is infinite gives weight 1 to the entries equal to it (so all `-inf`
//! is uniform, some `+inf` share the mass); `typical` skips `p = 0` in the entropy. Ties in
//! logit are broken by lower token id (llama.cpp's `std::partial_sort` leaves them unspecified).

use std::cmp::Ordering;

use super::mt19937::Mt19937;
use super::penalties::Penalties;

/// Above this many unsorted candidates, `top_p` first sorts only a prefix of
/// [`TOP_P_PREFIX`] (llama.cpp's "adaptive top-k" in `llama_sampler_top_p_apply`).
const TOP_P_SORT_ALL_MAX: usize = 1024;
const TOP_P_PREFIX: usize = 256;

/// The streaming top-k pool is cut back to size when it reaches this many times its target.
const POOL_SLACK: usize = 4;
const POOL_MIN: usize = 256;
/// Logits tested at once in the streaming top-k pass.
const STREAM_CHUNK: usize = 32;

/// One vocabulary entry in flight: `llama_token_data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) id: u32,
    pub(crate) logit: f32,
    pub(crate) p: f32,
}

/// `llama_token_data_array` plus the scratch space `typical` needs, kept between calls so that
/// sampling allocates nothing once the buffers have grown to the vocabulary size.
#[derive(Default)]
pub(crate) struct Candidates {
    pub(crate) data: Vec<Candidate>,
    /// `data` is in descending logit order (llama.cpp's `sorted` flag).
    pub(crate) sorted: bool,
    scores: Vec<f32>,
    order: Vec<u32>,
    spare: Vec<Candidate>,
}

/// Descending logit, then ascending id: a total order, so partial selection is deterministic.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// `exp(x - max)`, with `x == max` giving exactly 1 even when `max` is infinite (where the
/// subtraction would give NaN).
fn exp_rel(x: f32, max: f32) -> f32 {
    if x == max {
        1.0
    } else {
        (x - max).exp()
    }
}

impl std::fmt::Debug for Candidates {
    /// A vocabulary's worth of candidates is noise in a `Debug` dump of the sampler.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("len", &self.data.len())
            .field("sorted", &self.sorted)
            .finish()
    }
}

impl Candidates {
    /// Reserves room for `n` candidates when the memory is there: `n` comes from a model file,
    /// and a bogus size must not abort the process here (the buffer grows on demand instead).
    pub(crate) fn with_capacity(n: usize) -> Candidates {
        let mut data = Vec::new();
        let _ = data.try_reserve_exact(n);
        Candidates {
            data,
            ..Candidates::default()
        }
    }

    /// `common_sampler::set_logits`: one candidate per token, in id order, unsorted.
    pub(crate) fn load(&mut self, logits: &[f32]) {
        self.data.clear();
        self.data
            .extend(logits.iter().zip(0u32..).map(|(&x, id)| Candidate {
                id,
                logit: if x.is_nan() { f32::NEG_INFINITY } else { x },
                p: 0.0,
            }));
        self.sorted = false;
    }

    /// `load` + `penalties.apply` + `top_k(k)` for `k >= 1`, without materialising the
    /// vocabulary: one streaming pass keeps a pool of the largest raw logits above a rising
    /// threshold (most logits fail a single comparison), then the penalised tokens are merged
    /// in. Leaves exactly what the three steps would (same tokens, logits and order), or
    /// returns `false` with nothing decided when the input is too degenerate to be sure
    /// (fewer finite-ish logits than the pool needs, or `-inf` inside the top `k`).
    ///
    /// Why the pool is large enough: it holds the top `k + m` raw logits, `m` the number of
    /// penalised tokens. An unpenalised token outside it has `k + m` tokens above it, of which
    /// at least `k` are unpenalised and stay above it, so it cannot be in the top `k`; the
    /// penalised tokens are all added explicitly.
    pub(crate) fn load_top_k(&mut self, logits: &[f32], k: usize, penalties: &Penalties) -> bool {
        let want = k.saturating_add(penalties.n_active());
        let cap = want.saturating_mul(POOL_SLACK).max(POOL_MIN);
        self.data.clear();
        self.sorted = false;
        let mut threshold = f32::NEG_INFINITY;
        let mut base = 0u32;
        for chunk in logits.chunks(STREAM_CHUNK) {
            // A branch-free "any above the threshold" the compiler vectorises; once the
            // threshold has risen, most chunks of a real vocabulary have none.
            if chunk.iter().fold(false, |hit, &x| hit | (x > threshold)) {
                for (id, &x) in (base..).zip(chunk) {
                    // Strictly greater: a later equal logit has a larger id, so it ranks below
                    // the pool's last entry. NaN fails, as it should (it loads as -inf).
                    if x > threshold {
                        self.data.push(Candidate {
                            id,
                            logit: x,
                            p: 0.0,
                        });
                        if self.data.len() >= cap {
                            self.data.select_nth_unstable_by(want - 1, by_logit_desc);
                            self.data.truncate(want);
                            threshold = self.data[want - 1].logit;
                        }
                    }
                }
            }
            base = base.wrapping_add(STREAM_CHUNK as u32);
        }
        if self.data.len() < want {
            return false;
        }
        self.data.select_nth_unstable_by(want - 1, by_logit_desc);
        self.data.truncate(want);
        for (token, count) in penalties.active() {
            let Some(&raw) = usize::try_from(token).ok().and_then(|i| logits.get(i)) else {
                continue;
            };
            let raw = if raw.is_nan() { f32::NEG_INFINITY } else { raw };
            let logit = penalties.penalize(raw, count);
            match self.data.iter_mut().find(|c| c.id == token) {
                Some(c) => c.logit = logit,
                None => self.data.push(Candidate {
                    id: token,
                    logit,
                    p: 0.0,
                }),
            }
        }
        self.sort_prefix(k);
        self.data.truncate(k);
        self.sorted = true;
        self.data
            .last()
            .is_some_and(|c| c.logit > f32::NEG_INFINITY)
    }

    /// Index of the largest logit, first one on ties (`llama_sampler_greedy_apply`).
    pub(crate) fn argmax(&self) -> usize {
        let mut best = 0;
        for (i, c) in self.data.iter().enumerate().skip(1) {
            if c.logit > self.data[best].logit {
                best = i;
            }
        }
        best
    }

    /// Puts the `k` largest first, sorted, without sorting the rest: an O(n) selection plus an
    /// O(k log k) sort, instead of sorting 150k entries for `top_k = 40`.
    fn sort_prefix(&mut self, k: usize) {
        let k = k.min(self.data.len());
        if k == 0 {
            return;
        }
        if k < self.data.len() {
            self.data.select_nth_unstable_by(k - 1, by_logit_desc);
        }
        self.data[..k].sort_unstable_by(by_logit_desc);
    }

    /// `llama_sampler_softmax_impl`: `p` from the logits, `f32` throughout like llama.cpp.
    pub(crate) fn softmax(&mut self, do_sort: bool) {
        if self.data.is_empty() {
            return;
        }
        if do_sort && !self.sorted {
            self.data.sort_unstable_by(by_logit_desc);
            self.sorted = true;
        }
        let max = self.max_logit();
        let mut sum = 0.0f32;
        for c in &mut self.data {
            c.p = exp_rel(c.logit, max);
            sum += c.p;
        }
        for c in &mut self.data {
            c.p /= sum;
        }
    }

    fn max_logit(&self) -> f32 {
        match self.data.first() {
            Some(first) if self.sorted => first.logit,
            Some(first) => {
                self.data[1..]
                    .iter()
                    .fold(first.logit, |m, c| if c.logit > m { c.logit } else { m })
            }
            None => f32::NEG_INFINITY,
        }
    }

    /// `llama_sampler_top_k_impl`: keep the `k` largest logits; `k <= 0` disables.
    pub(crate) fn top_k(&mut self, k: i32) {
        let Ok(k) = usize::try_from(k) else {
            return;
        };
        if k == 0 {
            return;
        }
        let k = k.min(self.data.len());
        if !self.sorted {
            self.sort_prefix(k);
            self.sorted = true;
        }
        self.data.truncate(k);
    }

    /// `llama_sampler_typical_apply` (locally typical sampling, Meister et al.): keep the
    /// tokens whose surprise `-ln p` is closest to the entropy until their mass exceeds `p`.
    /// `p >= 1` disables. Leaves the candidates in that "typicality" order, unsorted.
    pub(crate) fn typical(&mut self, p: f32) {
        if p >= 1.0 || self.data.is_empty() {
            return;
        }
        self.softmax(true);
        let entropy: f32 = self
            .data
            .iter()
            .filter(|c| c.p > 0.0)
            .map(|c| -c.p * c.p.ln())
            .sum();
        self.scores.clear();
        self.scores
            .extend(self.data.iter().map(|c| (-c.p.ln() - entropy).abs()));
        self.order.clear();
        self.order.extend(0..self.data.len() as u32);
        let scores = &self.scores;
        // Stable in effect (ties keep logit order), without the stable sort's allocation.
        self.order.sort_unstable_by(|&a, &b| {
            scores[a as usize]
                .total_cmp(&scores[b as usize])
                .then(a.cmp(&b))
        });
        let mut cum = 0.0f32;
        let mut last = self.order.len();
        for (i, &idx) in self.order.iter().enumerate() {
            cum += self.data[idx as usize].p;
            if cum > p {
                last = i + 1;
                break;
            }
        }
        self.spare.clear();
        let data = &self.data;
        self.spare
            .extend(self.order[..last].iter().map(|&i| data[i as usize]));
        std::mem::swap(&mut self.data, &mut self.spare);
        self.sorted = false;
    }

    /// `llama_sampler_top_p_apply` (nucleus): keep the smallest prefix, by descending
    /// probability, whose mass reaches `p` (at least one token). `p >= 1` disables.
    pub(crate) fn top_p(&mut self, p: f32) {
        if p >= 1.0 || self.data.is_empty() {
            return;
        }
        self.softmax(false);
        let n = self.data.len();
        let mut sorted_upto = if self.sorted {
            n
        } else if n > TOP_P_SORT_ALL_MAX {
            self.sort_prefix(TOP_P_PREFIX);
            TOP_P_PREFIX
        } else {
            self.sort_prefix(n);
            n
        };
        let mut cum = 0.0f32;
        let mut last = n;
        for i in 0..n {
            if i == sorted_upto {
                // The prefix did not reach `p`: everything after it is smaller, so sorting
                // the tail completes the order.
                self.data[i..].sort_unstable_by(by_logit_desc);
                sorted_upto = n;
            }
            cum += self.data[i].p;
            if cum >= p {
                last = i + 1;
                break;
            }
        }
        self.data.truncate(last);
        self.sorted = true;
    }

    /// `llama_sampler_min_p_apply`: keep the tokens with `p_i >= p * p_max`, that is
    /// `logit_i >= logit_max + ln p` (no softmax needed). `p <= 0` disables.
    pub(crate) fn min_p(&mut self, p: f32) {
        if p <= 0.0 || self.data.is_empty() {
            return;
        }
        if !self.sorted {
            let max = self
                .data
                .iter()
                .fold(-f32::MAX, |m, c| if m < c.logit { c.logit } else { m });
            let min_logit = max + p.ln();
            // llama.cpp falls back to the sorted path when nothing passes (all `-inf`).
            if self.data.iter().any(|c| c.logit >= min_logit) {
                self.data.retain(|c| c.logit >= min_logit);
                return;
            }
            self.data.sort_unstable_by(by_logit_desc);
            self.sorted = true;
        }
        let min_logit = self.data[0].logit + p.ln();
        let keep = 1 + self.data[1..]
            .iter()
            .take_while(|c| c.logit >= min_logit)
            .count();
        self.data.truncate(keep);
    }

    /// `llama_sampler_temp_impl`: divide the logits by `t`. For `t <= 0` llama.cpp keeps the
    /// first largest logit and sets the others to `-inf`, so `dist` can only pick it; we drop
    /// the others instead, which picks the same token and still costs `dist` one random draw.
    pub(crate) fn temperature(&mut self, t: f32) {
        if self.data.is_empty() {
            return;
        }
        if t <= 0.0 {
            let best = self.argmax();
            self.data.swap(0, best);
            self.data.truncate(1);
            self.sorted = true;
            return;
        }
        for c in &mut self.data {
            c.logit /= t;
        }
    }

    /// `llama_sampler_dist_apply`: softmax, then one uniform draw from the `mt19937`, walking
    /// the cumulative (unnormalised, `f64`) mass in candidate order. Returns the index picked,
    /// `None` only for an empty list. Every call with candidates draws exactly once.
    pub(crate) fn dist(&mut self, rng: &mut Mt19937) -> Option<usize> {
        if self.data.is_empty() {
            return None;
        }
        if self.data.len() == 1 {
            // llama.cpp draws here too, to keep the stream aligned with backend sampling.
            let _ = rng.next_f64();
            self.data[0].p = 1.0;
            return Some(0);
        }
        let max = self.max_logit();
        let mut sum = 0.0f64;
        for c in &mut self.data {
            c.p = exp_rel(c.logit, max);
            sum += f64::from(c.p);
        }
        let target = sum * rng.next_f64();
        let mut run = 0.0f64;
        let mut picked = None;
        for (i, c) in self.data.iter_mut().enumerate() {
            if picked.is_none() {
                run += f64::from(c.p);
                // `c.p > 0` only matters for a draw of exactly 0, which must not pick a
                // zero-probability token.
                if run >= target && c.p > 0.0 {
                    picked = Some(i);
                }
            }
            c.p = (f64::from(c.p) / sum) as f32;
        }
        Some(picked.unwrap_or(self.data.len() - 1))
    }
}

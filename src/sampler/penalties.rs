//! The repetition penalties: repeat (multiplicative), frequency and presence (additive), over
//! the last `n` accepted tokens. Mirrors llama.cpp's `llama_sampler_penalties`.

use std::collections::{HashMap, VecDeque};

use super::stages::Candidate;

/// Largest window we reserve up front; longer windows grow as tokens arrive, so a huge
/// `repeat_last_n` costs memory only when that many tokens were really seen.
const MAX_RESERVE: usize = 4096;

/// The accepted-token window and per-token counts over it.
///
/// llama.cpp keeps a ring buffer of the last `penalty_last_n` tokens and an
/// `unordered_map<token, count>`; applying the penalties then looks every candidate up in the
/// map. We keep the same pair but apply by walking the map instead, since at the head of the
/// chain the candidate at index `i` is token `i` (at most `last_n` lookups instead of a
/// vocabulary's worth).
#[derive(Debug, Clone)]
pub(crate) struct Penalties {
    /// `None`: the window is everything accepted since the last reset (`repeat_last_n = -1`).
    last_n: Option<usize>,
    repeat: f32,
    frequency: f32,
    presence: f32,
    window: VecDeque<u32>,
    counts: HashMap<u32, u32>,
}

impl Penalties {
    /// `last_n`: `-1` means unbounded, `0` disables; callers validated `last_n >= -1`.
    pub(crate) fn new(last_n: i32, repeat: f32, frequency: f32, presence: f32) -> Penalties {
        let last_n = usize::try_from(last_n).ok();
        let reserve = last_n.unwrap_or(0).min(MAX_RESERVE);
        Penalties {
            last_n,
            repeat,
            frequency,
            presence,
            window: VecDeque::with_capacity(reserve),
            counts: HashMap::with_capacity(reserve),
        }
    }

    /// llama.cpp's `llama_sampler_penalties::is_disabled`: a zero window, or all three penalties
    /// neutral. A disabled penalty sampler is replaced by an empty one that ignores `accept`.
    pub(crate) fn is_disabled(&self) -> bool {
        self.last_n == Some(0)
            || (self.repeat == 1.0 && self.frequency == 0.0 && self.presence == 0.0)
    }

    /// Mirrors `llama_sampler_penalties_accept`: count the token, evicting the oldest one when
    /// the window is full.
    pub(crate) fn accept(&mut self, token: u32) {
        if self.is_disabled() {
            return;
        }
        *self.counts.entry(token).or_insert(0) += 1;
        let Some(last_n) = self.last_n else {
            // Unbounded: counts alone describe the window; no need to remember the order.
            return;
        };
        if self.window.len() >= last_n {
            if let Some(old) = self.window.pop_front() {
                if let Some(count) = self.counts.get_mut(&old) {
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.window.push_back(token);
    }

    /// Mirrors `llama_sampler_penalties_apply`. `cur` must be indexed by token id (the state
    /// right after loading the logits: penalties run first in llama.cpp's default chain).
    pub(crate) fn apply(&self, cur: &mut [Candidate]) {
        for (token, count) in self.active() {
            let Some(c) = usize::try_from(token).ok().and_then(|i| cur.get_mut(i)) else {
                // A token id beyond this vocabulary (the caller's business) has no logit.
                continue;
            };
            debug_assert_eq!(c.id, token);
            c.logit = self.penalize(c.logit, count);
        }
    }

    /// The tokens to penalise and their counts in the window; nothing when disabled.
    pub(crate) fn active(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let enabled = !self.is_disabled();
        self.counts
            .iter()
            .filter(move |_| enabled)
            .map(|(&t, &c)| (t, c))
    }

    /// How many distinct tokens [`Penalties::active`] yields.
    pub(crate) fn n_active(&self) -> usize {
        if self.is_disabled() {
            0
        } else {
            self.counts.len()
        }
    }

    /// One token's penalised logit, as in `llama_sampler_penalties_apply`.
    ///
    /// Repeat: a positive logit is divided by the penalty, a non-positive one multiplied (the
    /// usual fix of the CTRL paper, which only divided and so made negative logits *more*
    /// likely). Frequency: minus `count * f`. Presence: minus `p` once.
    pub(crate) fn penalize(&self, logit: f32, count: u32) -> f32 {
        let mut logit = logit;
        if logit <= 0.0 {
            logit *= self.repeat;
        } else {
            logit /= self.repeat;
        }
        // `count` is at most the window length; `as f32` rounds only past 2^24 repeats.
        logit -= count as f32 * self.frequency + self.presence;
        // Only absurd penalties can overflow to `inf - inf`; a NaN must never win.
        if logit.is_nan() {
            f32::NEG_INFINITY
        } else {
            logit
        }
    }

    /// Mirrors `llama_sampler_penalties_reset`.
    pub(crate) fn reset(&mut self) {
        self.window.clear();
        self.counts.clear();
    }

    /// How many times `token` occurs in the window (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn count(&self, token: u32) -> u32 {
        self.counts.get(&token).copied().unwrap_or(0)
    }
}

//! Each stage on hand-made logits with expectations worked out by hand, then the whole chain:
//! seeds, distributions, degenerate inputs.

use super::mt19937::Mt19937;
use super::penalties::Penalties;
use super::stages::Candidates;
use super::*;

/// Logits whose softmax is exactly `probs` (up to rounding): `ln p`.
fn logits_of(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| p.ln()).collect()
}

fn loaded(logits: &[f32]) -> Candidates {
    let mut c = Candidates::with_capacity(logits.len());
    c.load(logits);
    c
}

fn ids(c: &Candidates) -> Vec<u32> {
    c.data.iter().map(|c| c.id).collect()
}

/// Only the final `dist` (and temperature 1): samples straight from the softmax.
fn plain(seed: u64) -> SamplerParams {
    SamplerParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        temperature: 1.0,
        seed: Some(seed),
        ..SamplerParams::default()
    }
}

const PROBS: [f32; 4] = [0.5, 0.3, 0.15, 0.05];

#[test]
fn defaults_are_llama_cpp_defaults() {
    let p = SamplerParams::default();
    assert_eq!(p.temperature, 0.8);
    assert_eq!(p.top_k, 40);
    assert_eq!(p.top_p, 0.95);
    assert_eq!(p.min_p, 0.05);
    assert_eq!(p.typical_p, 1.0);
    assert_eq!(p.repeat_penalty, 1.0);
    assert_eq!(p.repeat_last_n, 64);
    assert_eq!(p.presence_penalty, 0.0);
    assert_eq!(p.frequency_penalty, 0.0);
    assert_eq!(p.seed, None);
    assert!(p.validate().is_ok());
}

#[test]
fn validate_names_the_field() {
    let base = SamplerParams::default();
    let cases: Vec<(SamplerParams, &str)> = vec![
        (
            SamplerParams {
                temperature: f32::NAN,
                ..base
            },
            "temperature",
        ),
        (
            SamplerParams {
                temperature: f32::INFINITY,
                ..base
            },
            "temperature",
        ),
        (SamplerParams { top_p: 1.5, ..base }, "top_p"),
        (
            SamplerParams {
                top_p: -0.1,
                ..base
            },
            "top_p",
        ),
        (
            SamplerParams {
                top_p: f32::NAN,
                ..base
            },
            "top_p",
        ),
        (SamplerParams { min_p: 2.0, ..base }, "min_p"),
        (
            SamplerParams {
                min_p: f32::NAN,
                ..base
            },
            "min_p",
        ),
        (
            SamplerParams {
                typical_p: -1.0,
                ..base
            },
            "typical_p",
        ),
        (
            SamplerParams {
                typical_p: f32::INFINITY,
                ..base
            },
            "typical_p",
        ),
        (
            SamplerParams {
                repeat_penalty: 0.0,
                ..base
            },
            "repeat_penalty",
        ),
        (
            SamplerParams {
                repeat_penalty: -1.1,
                ..base
            },
            "repeat_penalty",
        ),
        (
            SamplerParams {
                repeat_penalty: f32::NAN,
                ..base
            },
            "repeat_penalty",
        ),
        (
            SamplerParams {
                repeat_penalty: f32::INFINITY,
                ..base
            },
            "repeat_penalty",
        ),
        (
            SamplerParams {
                repeat_penalty: 1e-45,
                ..base
            },
            "repeat_penalty",
        ),
        (
            SamplerParams {
                repeat_last_n: -2,
                ..base
            },
            "repeat_last_n",
        ),
        (
            SamplerParams {
                presence_penalty: f32::NAN,
                ..base
            },
            "presence_penalty",
        ),
        (
            SamplerParams {
                frequency_penalty: f32::NEG_INFINITY,
                ..base
            },
            "frequency_penalty",
        ),
    ];
    for (params, field) in cases {
        let err = params.validate().expect_err(field);
        assert_eq!(err.field(), field, "{params:?}");
        assert!(err.to_string().contains(field), "{err}");
        let err = Sampler::new(params, 8).expect_err(field);
        assert_eq!(err.field(), field);
    }
}

#[test]
fn validate_is_lenient_where_llama_cpp_is() {
    let base = SamplerParams::default();
    for params in [
        SamplerParams {
            temperature: -1.0,
            ..base
        },
        SamplerParams {
            temperature: 0.0,
            ..base
        },
        SamplerParams { top_k: -5, ..base },
        SamplerParams { top_k: 0, ..base },
        SamplerParams {
            top_p: 0.0,
            min_p: 1.0,
            typical_p: 0.0,
            ..base
        },
        SamplerParams {
            repeat_last_n: -1,
            presence_penalty: -2.0,
            ..base
        },
        SamplerParams {
            seed: Some(u64::MAX),
            ..base
        },
    ] {
        assert!(params.validate().is_ok(), "{params:?}");
    }
}

#[test]
fn zero_vocab_is_an_error() {
    let err = Sampler::new(SamplerParams::default(), 0).expect_err("n_vocab");
    assert_eq!(err.field(), "n_vocab");
}

#[test]
fn greedy_is_argmax_with_ties_to_lowest_id() {
    assert_eq!(greedy(&[0.1, 3.0, -2.0, 2.9]), 1);
    assert_eq!(greedy(&[1.0, 5.0, 5.0, 5.0]), 1);
    assert_eq!(greedy(&[f32::NAN, 1.0, f32::NAN, 0.5]), 1);
    assert_eq!(greedy(&[-1.0, f32::NAN]), 0);
    assert_eq!(greedy(&[f32::NAN, f32::NEG_INFINITY]), 1);
    assert_eq!(greedy(&[f32::NEG_INFINITY, -1e30, f32::NEG_INFINITY]), 1);
    assert_eq!(greedy(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(greedy(&[]), 0);
    assert_eq!(greedy(&[f32::NEG_INFINITY, f32::INFINITY]), 1);
}

#[test]
fn top_k_keeps_the_k_largest_sorted() {
    let mut c = loaded(&[0.1, 2.0, -1.0, 3.0, 1.5]);
    c.top_k(2);
    assert_eq!(ids(&c), [3, 1]);
    assert!(c.sorted);

    let mut c = loaded(&[0.1, 2.0, -1.0]);
    c.top_k(10);
    assert_eq!(ids(&c), [1, 0, 2]);

    for k in [0, -3] {
        let mut c = loaded(&[0.1, 2.0, -1.0]);
        c.top_k(k);
        assert_eq!(ids(&c), [0, 1, 2], "k = {k} disables");
        assert!(!c.sorted);
    }
}

#[test]
fn top_k_breaks_ties_by_lower_id() {
    let mut c = loaded(&[1.0, 2.0, 2.0, 2.0, 0.0]);
    c.top_k(2);
    assert_eq!(ids(&c), [1, 2]);
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // Sorted probabilities 0.5, 0.3, 0.15, 0.05; ids shuffled.
    let logits = logits_of(&[0.15, 0.5, 0.05, 0.3]);
    for (p, expect) in [
        (0.0, vec![1]),
        (0.4, vec![1]),
        (0.7, vec![1, 3]),
        (0.85, vec![1, 3, 0]),
        (0.99, vec![1, 3, 0, 2]),
    ] {
        let mut c = loaded(&logits);
        c.top_p(p);
        assert_eq!(ids(&c), expect, "p = {p}");
        assert!(c.sorted);
    }
    let mut c = loaded(&logits);
    c.top_p(1.0);
    assert_eq!(ids(&c), [0, 1, 2, 3], "p = 1 disables");
}

/// Over 1024 unsorted candidates `top_p` sorts a 256 prefix first and the rest only when
/// needed: check both outcomes against a plain full sort.
#[test]
fn top_p_large_vocab_matches_full_sort() {
    let n = 5000u32;
    // A permutation of descending logits, so id order says nothing about rank.
    let logits: Vec<f32> = (0..n).map(|i| -(((i * 2957) % n) as f32) * 0.002).collect();
    for p in [0.05, 0.3, 0.9, 0.999] {
        let mut c = loaded(&logits);
        c.top_p(p);

        let mut reference = loaded(&logits);
        reference.softmax(true);
        let mut cum = 0.0f32;
        let mut keep = reference.data.len();
        for (i, r) in reference.data.iter().enumerate() {
            cum += r.p;
            if cum >= p {
                keep = i + 1;
                break;
            }
        }
        reference.data.truncate(keep);
        assert_eq!(ids(&c), ids(&reference), "p = {p}");
    }
}

#[test]
fn min_p_is_relative_to_the_top_probability() {
    let logits = logits_of(&[0.15, 0.5, 0.05, 0.3]);
    // Threshold 0.2 * 0.5 = 0.1 keeps 0.5, 0.3, 0.15 (unsorted path keeps id order).
    let mut c = loaded(&logits);
    c.min_p(0.2);
    assert_eq!(ids(&c), [0, 1, 3]);
    // The sorted path, as after top_k, gives the same set in logit order.
    let mut c = loaded(&logits);
    c.top_k(4);
    c.min_p(0.2);
    assert_eq!(ids(&c), [1, 3, 0]);
    // 0.7 * 0.5 = 0.35: only the top token.
    let mut c = loaded(&logits);
    c.min_p(0.7);
    assert_eq!(ids(&c), [1]);
    let mut c = loaded(&logits);
    c.min_p(0.0);
    assert_eq!(c.data.len(), 4, "0 disables");
}

#[test]
fn min_p_with_all_neg_inf_keeps_them() {
    let mut c = loaded(&[f32::NEG_INFINITY; 3]);
    c.min_p(0.05);
    assert_eq!(c.data.len(), 3);
}

#[test]
fn typical_keeps_tokens_nearest_the_entropy() {
    // H = 1.142 nats; surprises 0.693, 1.204, 1.897, 2.996: the 0.3 token is the most
    // typical, then 0.5, then 0.15.
    let logits = logits_of(&PROBS);
    for (p, expect) in [
        (0.2, vec![1]),
        (0.5, vec![1, 0]),
        (0.9, vec![1, 0, 2]),
        (0.99, vec![1, 0, 2, 3]),
    ] {
        let mut c = loaded(&logits);
        c.typical(p);
        assert_eq!(ids(&c), expect, "p = {p}");
        assert!(!c.sorted);
    }
}

#[test]
fn temperature_scales_logits() {
    let mut c = loaded(&[2.0, -1.0, 0.5]);
    c.temperature(2.0);
    let logits: Vec<f32> = c.data.iter().map(|c| c.logit).collect();
    assert_eq!(logits, [1.0, -0.5, 0.25]);

    let mut c = loaded(&[2.0, -1.0, 0.5]);
    c.temperature(0.5);
    let logits: Vec<f32> = c.data.iter().map(|c| c.logit).collect();
    assert_eq!(logits, [4.0, -2.0, 1.0]);

    for t in [0.0, -1.0] {
        let mut c = loaded(&[2.0, 3.0, 3.0, 0.5]);
        c.temperature(t);
        assert_eq!(ids(&c), [1], "t = {t} keeps the first largest");
    }
}

#[test]
fn penalties_follow_llama_cpp() {
    let logits = [2.0, -2.0, 1.0, 0.5];
    // Repeat: positive divided, negative multiplied; tokens outside the window untouched.
    let mut pen = Penalties::new(64, 2.0, 0.0, 0.0);
    pen.accept(0);
    pen.accept(1);
    let mut c = loaded(&logits);
    pen.apply(&mut c.data);
    let got: Vec<f32> = c.data.iter().map(|c| c.logit).collect();
    assert_eq!(got, [1.0, -4.0, 1.0, 0.5]);

    // Frequency subtracts count * f, presence subtracts p once.
    let mut pen = Penalties::new(64, 1.0, 0.5, 0.25);
    for t in [2, 2, 2, 3] {
        pen.accept(t);
    }
    let mut c = loaded(&logits);
    pen.apply(&mut c.data);
    let got: Vec<f32> = c.data.iter().map(|c| c.logit).collect();
    assert_eq!(got, [2.0, -2.0, 1.0 - 1.5 - 0.25, 0.5 - 0.5 - 0.25]);
}

#[test]
fn penalty_window_slides() {
    let mut pen = Penalties::new(2, 1.5, 0.0, 0.0);
    for t in [0, 1, 1, 2] {
        pen.accept(t);
    }
    // Window is [1, 2]: token 0 fell out.
    assert_eq!((pen.count(0), pen.count(1), pen.count(2)), (0, 1, 1));
    let mut c = loaded(&[3.0, 3.0, 3.0]);
    pen.apply(&mut c.data);
    assert_eq!(c.data[0].logit, 3.0);
    assert_eq!(c.data[1].logit, 2.0);

    // -1: everything since the reset.
    let mut pen = Penalties::new(-1, 1.5, 0.0, 0.0);
    for _ in 0..10_000 {
        pen.accept(7);
    }
    assert_eq!(pen.count(7), 10_000);
    pen.reset();
    assert_eq!(pen.count(7), 0);

    // 0: off, even with penalties set.
    let mut pen = Penalties::new(0, 1.5, 1.0, 1.0);
    pen.accept(0);
    assert!(pen.is_disabled());
    let mut c = loaded(&[3.0]);
    pen.apply(&mut c.data);
    assert_eq!(c.data[0].logit, 3.0);
}

#[test]
fn greedy_sampler_applies_penalties_first() {
    let params = SamplerParams {
        temperature: 0.0,
        repeat_penalty: 1.1,
        ..SamplerParams::default()
    };
    let mut s = Sampler::new(params, 2).expect("params");
    let logits = [3.0, 2.9];
    assert_eq!(s.sample(&logits), 0);
    // 3.0 / 1.1 = 2.73 < 2.9
    s.accept(0);
    assert_eq!(s.sample(&logits), 1);
    s.reset();
    assert_eq!(s.sample(&logits), 0);
}

#[test]
fn prompt_tokens_count_toward_penalties() {
    let params = SamplerParams {
        temperature: 0.0,
        presence_penalty: 1.0,
        ..SamplerParams::default()
    };
    let mut s = Sampler::new(params, 3).expect("params");
    s.accept_prompt(&[2, 2, 0]);
    assert_eq!(s.sample(&[1.5, 1.0, 1.9]), 1);
}

#[test]
fn greedy_sampler_matches_full_chain_with_typical() {
    // temperature 0 with typical on: the argmax among the typical set, which here is not the
    // global argmax (0.5 is less typical than 0.3).
    let params = SamplerParams {
        temperature: 0.0,
        typical_p: 0.2,
        ..SamplerParams::default()
    };
    let mut s = Sampler::new(params, 4).expect("params");
    assert_eq!(s.sample(&logits_of(&PROBS)), 1);
}

#[test]
fn same_seed_same_stream_different_seed_different() {
    let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    let params = SamplerParams {
        seed: Some(1234),
        ..SamplerParams::default()
    };
    let draw = |params: SamplerParams| {
        let mut s = Sampler::new(params, logits.len()).expect("params");
        (0..1000).map(|_| s.sample(&logits)).collect::<Vec<u32>>()
    };
    let a = draw(params);
    assert_eq!(a, draw(params));
    assert_ne!(
        a,
        draw(SamplerParams {
            seed: Some(1235),
            ..params
        })
    );
    // Reset with a fixed seed restarts the stream.
    let mut s = Sampler::new(params, logits.len()).expect("params");
    let first: Vec<u32> = (0..50).map(|_| s.sample(&logits)).collect();
    s.reset();
    let again: Vec<u32> = (0..50).map(|_| s.sample(&logits)).collect();
    assert_eq!(first, again);
    assert_eq!(s.seed(), 1234);
}

#[test]
fn seed_is_truncated_to_32_bits_like_llama_cpp() {
    let a = Sampler::new(plain(7), 4).expect("params");
    let b = Sampler::new(plain(7 + (1 << 32)), 4).expect("params");
    assert_eq!(a.seed(), b.seed());
}

#[test]
fn random_seeds_differ() {
    let params = SamplerParams::default();
    let seeds: Vec<u32> = (0..4)
        .map(|_| Sampler::new(params, 4).expect("params").seed())
        .collect();
    assert!(seeds.windows(2).any(|w| w[0] != w[1]), "{seeds:?}");
}

/// With seed 42, libstdc++'s `uniform_real_distribution<double>` over `mt19937` yields 0.797,
/// 0.183, 0.780, 0.597, 0.446 (see `mt19937::tests`). llama.cpp's `dist` walks cumulative
/// mass 0.2 | 0.5 | 1.0 in candidate order, so it picks tokens 2, 0, 2, 2, 1.
#[test]
fn follows_llama_cpp_random_stream() {
    let mut s = Sampler::new(plain(42), 3).expect("params");
    let logits = logits_of(&[0.2, 0.3, 0.5]);
    let picks: Vec<u32> = (0..5).map(|_| s.sample(&logits)).collect();
    assert_eq!(picks, [2, 0, 2, 2, 1]);
}

fn frequencies(params: SamplerParams, logits: &[f32], n: usize) -> Vec<f64> {
    let mut s = Sampler::new(params, logits.len()).expect("params");
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits) as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < tol, "got {got:?}, want {want:?}");
    }
}

#[test]
fn draws_follow_the_distribution() {
    let got = frequencies(plain(3), &logits_of(&[0.2, 0.3, 0.5]), 100_000);
    assert_close(&got, &[0.2, 0.3, 0.5], 0.01);
}

#[test]
fn temperature_sharpens_the_distribution() {
    // T = 0.5 squares the probabilities: 0.04, 0.09, 0.25 over 0.38.
    let params = SamplerParams {
        temperature: 0.5,
        ..plain(5)
    };
    let got = frequencies(params, &logits_of(&[0.2, 0.3, 0.5]), 100_000);
    assert_close(&got, &[0.04 / 0.38, 0.09 / 0.38, 0.25 / 0.38], 0.01);
}

#[test]
fn default_chain_filters_then_samples() {
    // top_p 0.95 drops the 0.03 and 0.01 tokens (0.6 + 0.26 + 0.1 = 0.96 reaches it at the
    // third); min_p 0.05 * 0.6 = 0.03 would keep the 0.03 one, top_p already dropped it.
    let probs = [0.01, 0.6, 0.03, 0.26, 0.1];
    let params = SamplerParams {
        temperature: 1.0,
        seed: Some(11),
        ..SamplerParams::default()
    };
    let got = frequencies(params, &logits_of(&probs), 100_000);
    let kept = 0.6 + 0.26 + 0.1;
    assert_close(&got, &[0.0, 0.6 / kept, 0.0, 0.26 / kept, 0.1 / kept], 0.01);
    assert_eq!(got[0], 0.0);
    assert_eq!(got[2], 0.0);
}

#[test]
fn non_finite_logits_never_win() {
    let logits = [f32::NEG_INFINITY, 0.0, f32::NAN, -1.0, f32::NEG_INFINITY];
    for params in [
        plain(1),
        SamplerParams {
            seed: Some(2),
            ..SamplerParams::default()
        },
        SamplerParams {
            typical_p: 0.9,
            repeat_penalty: 1.3,
            frequency_penalty: 0.1,
            seed: Some(3),
            ..SamplerParams::default()
        },
    ] {
        let mut s = Sampler::new(params, logits.len()).expect("params");
        s.accept_prompt(&[0, 1, 2, 99]);
        for _ in 0..2000 {
            let t = s.sample(&logits);
            assert!(t == 1 || t == 3, "picked {t} with {params:?}");
        }
    }
}

#[test]
fn degenerate_logits_do_not_panic() {
    let mut s = Sampler::new(SamplerParams::default(), 4).expect("params");
    let all_neg_inf = [f32::NEG_INFINITY; 4];
    assert!(s.sample(&all_neg_inf) < 4);
    let all_nan = [f32::NAN; 4];
    assert!(s.sample(&all_nan) < 4);
    let pos_inf = [0.0, f32::INFINITY, 1.0, f32::INFINITY];
    for _ in 0..100 {
        let t = s.sample(&pos_inf);
        assert!(t == 1 || t == 3);
    }
    let huge = [f32::MAX, -f32::MAX, f32::MAX];
    assert!(matches!(s.sample(&huge), 0 | 2));
}

#[test]
fn any_logits_length_is_accepted() {
    let mut s = Sampler::new(SamplerParams::default(), 10).expect("params");
    s.accept_prompt(&[1_000_000, 3]);
    assert_eq!(s.sample(&[]), 0);
    assert_eq!(s.sample(&[0.5]), 0);
    assert!(s.sample(&[0.1, 0.2, 0.3]) < 3);
    let long: Vec<f32> = (0..50).map(|i| i as f32 * 0.1).collect();
    assert!(s.sample(&long) < 50);
}

#[test]
fn dist_draws_once_per_token() {
    // One candidate or many, greedy or not: one uniform per sample, as llama.cpp.
    let mut rng = Mt19937::new(9);
    let mut c = loaded(&[1.0]);
    assert_eq!(c.dist(&mut rng), Some(0));
    let mut reference = Mt19937::new(9);
    let _ = reference.next_f64();
    assert_eq!(rng.next_u32(), reference.next_u32());

    let params = SamplerParams {
        temperature: 0.0,
        ..plain(9)
    };
    let mut greedy_sampler = Sampler::new(params, 3).expect("params");
    let mut sampling = Sampler::new(plain(9), 3).expect("params");
    let _ = greedy_sampler.sample(&[0.0, 1.0, 2.0]);
    let _ = sampling.sample(&[0.0, 1.0, 2.0]);
    assert_eq!(greedy_sampler.rng.next_u32(), sampling.rng.next_u32());
}

#[test]
fn probabilities_are_normalised_after_dist() {
    let mut rng = Mt19937::new(1);
    let mut c = loaded(&logits_of(&PROBS));
    let _ = c.dist(&mut rng);
    let sum: f32 = c.data.iter().map(|c| c.p).sum();
    assert!((sum - 1.0).abs() < 1e-6);
    for (c, p) in c.data.iter().zip(PROBS) {
        assert!((c.p - p).abs() < 1e-6);
    }
}

/// Deterministic pseudo-random logits with ties, NaN and infinities sprinkled in.
fn messy_logits(n: usize, seed: u32) -> Vec<f32> {
    let mut rng = Mt19937::new(seed);
    (0..n)
        .map(|_| match rng.next_u32() % 1000 {
            0 => f32::NAN,
            1 => f32::NEG_INFINITY,
            2..=40 => 1.5, // a crowd of ties
            r => (r as f32 - 500.0) / 97.0 + (rng.next_u32() % 7) as f32 * 0.25,
        })
        .collect()
}

/// The streaming top-k (with penalties merged in) must leave exactly what the full chain
/// head leaves: load, penalties, top_k.
#[test]
fn streaming_top_k_equals_full_path() {
    // (seed, n_vocab, k, (last_n, repeat, freq, present), whether the fast path can decide)
    for (seed, n, k, pen, decides) in [
        (1, 5000, 40, (64, 1.3, 0.0, 0.0), true),
        (2, 5000, 1, (64, 1.1, 0.5, 0.2), true),
        (3, 300, 40, (-1, 0.7, -0.4, -1.0), true), // penalties that raise tokens
        (4, 20_000, 100, (0, 1.0, 0.0, 0.0), true),
        (5, 1000, 999, (8, 2.0, 0.0, 0.0), false),
        (6, 50, 45, (16, 1.5, 0.0, 0.0), false),
    ] {
        let logits = messy_logits(n, seed);
        let mut penalties = Penalties::new(pen.0, pen.1, pen.2, pen.3);
        let mut rng = Mt19937::new(seed + 100);
        for _ in 0..200 {
            // Some tokens outside the vocabulary too.
            penalties.accept(rng.next_u32() % (n as u32 + 10));
        }
        let mut full = Candidates::with_capacity(n);
        full.load(&logits);
        penalties.apply(&mut full.data);
        full.top_k(k as i32);

        let mut fast = Candidates::with_capacity(n);
        assert_eq!(
            fast.load_top_k(&logits, k, &penalties),
            decides,
            "seed {seed}"
        );
        if decides {
            assert_eq!(fast.data, full.data, "seed {seed}");
            assert!(fast.sorted);
        }
    }
}

#[test]
fn streaming_top_k_declines_degenerate_input() {
    let penalties = Penalties::new(64, 1.0, 0.0, 0.0);
    let mut c = Candidates::with_capacity(8);
    // Fewer finite logits than k: the full path must decide (it keeps -inf entries).
    let logits = [1.0, f32::NEG_INFINITY, f32::NAN, 0.5];
    assert!(!c.load_top_k(&logits, 3, &penalties));
    assert!(c.load_top_k(&logits, 2, &penalties));
    assert_eq!(ids(&c), [0, 3]);
}

#[test]
fn greedy_agrees_with_a_naive_argmax() {
    for seed in 0..20 {
        let logits = messy_logits(1000 + seed as usize * 37, seed);
        let mut best: Option<(usize, f32)> = None;
        for (i, &x) in logits.iter().enumerate() {
            if !x.is_nan() && best.is_none_or(|(_, b)| x > b) {
                best = Some((i, x));
            }
        }
        assert_eq!(greedy(&logits) as usize, best.map_or(0, |b| b.0));
    }
}

#[test]
fn absurd_vocab_size_does_not_abort() {
    let mut s = Sampler::new(SamplerParams::default(), usize::MAX / 8).expect("params");
    assert!(s.sample(&[0.0, 1.0]) < 2);
}

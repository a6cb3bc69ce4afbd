//! Token-for-token parity with llama.cpp's sampler chain.
//!
//! `llama_parity.txt` holds pairs of lines: the arguments
//! `n_vocab seed steps temp top_k top_p min_p typical_p repeat last_n freq present`, then the
//! tokens llama.cpp picks. They were produced by a throwaway C++ program that compiled the
//! bodies of `llama_sampler_top_k_impl`, `llama_sampler_typical_apply`,
//! `llama_sampler_top_p_apply`, `llama_sampler_min_p_apply`, `llama_sampler_temp_impl`,
//! `llama_sampler_dist_apply` and the penalties' accept/apply verbatim from
//! `src/llama-sampler.cpp` (g++ 12, libstdc++), chained in `common_sampler_init`'s default
//! order over the synthetic logits of [`step_logits`], accepting each picked token.

use super::*;

/// Base logits `k / 1000 - 5` for distinct `k`, plus a per-step drift below the 0.001 spacing,
/// computed with the same `f32` operations as the C++ program. Ties must not occur: their
/// order after `std::sort` is libstdc++'s business (we order them by id).
fn step_logits(n: usize, step: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..n).map(|i| {
        let base = ((i as i64 * 7919 % 10007) as f32) / 1000.0 - 5.0;
        base + ((i * 31 + step * 17) % 97) as f32 / 100_000.0
    }));
}

struct Case {
    n_vocab: usize,
    steps: usize,
    params: SamplerParams,
    expect: Vec<u32>,
}

fn parse_case(args: &str, tokens: &str) -> Case {
    let a: Vec<&str> = args.split_whitespace().collect();
    assert_eq!(a.len(), 12, "{args}");
    let f = |i: usize| -> f32 { a[i].parse().expect("float") };
    let n = |i: usize| -> i64 { a[i].parse().expect("int") };
    let params = SamplerParams {
        seed: Some(n(1) as u64),
        temperature: f(3),
        top_k: n(4) as i32,
        top_p: f(5),
        min_p: f(6),
        typical_p: f(7),
        repeat_penalty: f(8),
        repeat_last_n: n(9) as i32,
        frequency_penalty: f(10),
        presence_penalty: f(11),
    };
    let expect: Vec<u32> = tokens
        .split(',')
        .map(|t| t.trim().parse().expect("token"))
        .collect();
    Case {
        n_vocab: n(0) as usize,
        steps: n(2) as usize,
        params,
        expect,
    }
}

#[test]
fn matches_llama_cpp_token_for_token() {
    let text = include_str!("llama_parity.txt");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2 && lines.chunks_exact(2).remainder().is_empty());
    let mut logits = Vec::new();
    for pair in lines.chunks(2) {
        let case = parse_case(pair[0], pair[1]);
        assert_eq!(case.expect.len(), case.steps);
        let mut s = Sampler::new(case.params, case.n_vocab).expect("params");
        let mut got = Vec::with_capacity(case.steps);
        for step in 0..case.steps {
            step_logits(case.n_vocab, step, &mut logits);
            let t = s.sample(&logits);
            s.accept(t);
            got.push(t);
        }
        assert_eq!(got, case.expect, "case: {}", pair[0]);
    }
}

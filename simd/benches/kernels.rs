//! Kernel throughput, one thread, with criterion: `cargo bench -p hearth-simd [-- FILTER]`,
//! e.g. `cargo bench -p hearth-simd -- "avx512/Q4_K"`.
//!
//! For every weight type of every kernel set this CPU runs, over the matrix shapes of
//! R1-Distill-Qwen-1.5B (1536×1536 attention, 8960×1536 FFN up/gate, 1536×8960 FFN down) and
//! SmolLM2-135M's FFN up/gate (1536×576: rows of 18 blocks of 32, where per-row costs show),
//! one group `SET/TYPE/ROWSxCOLS` of up to four benchmarks:
//! - `gemv`: `vec_dot` over every row against one token (generation), throughput in bytes of
//!   weights;
//! - `one_token`: the set's own single-token path where it has one, in bytes of weights;
//! - `vec_dot_n`: the prompt kernel on plain activations, 32 tokens, in multiply-adds
//!   ("elements");
//! - `prompt`: the set's own prompt path where it has one, 32 tokens, in multiply-adds.
//!
//! Time is this thread's CPU time, not wall time: on a busy, shared machine it does not count
//! what other processes take from the thread. No assertions (speed claims are measured side by
//! side with llama.cpp, see the closing notes and `hearth bench`).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use hearth_quant::{quantize_row, GgmlType};
use hearth_simd::{available, MatKernels};
use std::time::Duration;

/// The shapes (rows, cols) of R1-Distill-Qwen-1.5B's matmuls, and SmolLM2's FFN up/gate.
const SHAPES: &[(usize, usize)] = &[(1536, 1536), (8960, 1536), (1536, 8960), (1536, 576)];
const TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Iq4Nl,
    GgmlType::Iq4Xs,
    GgmlType::F16,
];
/// Tokens of the prompt measurements.
const TOKENS: usize = 32;

/// This thread's CPU time, in nanoseconds (formatted as criterion formats wall time).
struct ThreadCpu;

static WALL: WallTime = WallTime;

fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

impl Measurement for ThreadCpu {
    type Intermediate = f64;
    type Value = f64;
    fn start(&self) -> f64 {
        thread_cpu_ns()
    }
    fn end(&self, start: f64) -> f64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

/// 32-byte aligned rows of `bytes` each.
struct Rows {
    buf: Vec<u8>,
    off: usize,
    stride: usize,
}

impl Rows {
    fn new(n: usize, bytes: usize) -> Rows {
        let stride = bytes.div_ceil(32) * 32;
        let buf = vec![0u8; n * stride + 32];
        let off = buf.as_ptr().align_offset(32);
        Rows { buf, off, stride }
    }
    fn all(&mut self) -> &[u8] {
        let len = self.buf.len() - 32;
        &self.buf[self.off..self.off + len]
    }
    fn all_mut(&mut self) -> &mut [u8] {
        let len = self.buf.len() - 32;
        &mut self.buf[self.off..self.off + len]
    }
}

/// The benchmarks of one kernel set's type on one shape, `w` holding the weights.
fn shape(g: &mut BenchmarkGroup<ThreadCpu>, k: &MatKernels, w: &[u8], rows: usize, cols: usize) {
    let rb = k.ty.bytes_for(cols as u64).unwrap() as usize;
    let x = values(cols * TOKENS, 99);
    let weight_bytes = Throughput::Bytes((rows * rb) as u64);
    let macs = Throughput::Elements((rows * cols * TOKENS) as u64);

    let ab = k.vec_dot_type.bytes_for(cols as u64).unwrap() as usize;
    let mut plain = Rows::new(TOKENS, ab);
    let stride = plain.stride;
    for (t, src) in x.chunks_exact(cols).enumerate() {
        (k.quantize_act)(src, &mut plain.all_mut()[t * stride..t * stride + ab]);
    }
    let plain = plain.all();
    let mut out = vec![0f32; TOKENS];
    g.throughput(weight_bytes.clone());
    g.bench_function("gemv", |b| {
        b.iter(|| {
            for row in w.chunks_exact(rb) {
                out[0] += (k.vec_dot)(row, &plain[..ab]);
            }
        })
    });
    g.throughput(macs.clone());
    g.bench_function("vec_dot_n", |b| {
        b.iter(|| {
            for row in w.chunks_exact(rb) {
                (k.vec_dot_n)(row, plain, stride, &mut out);
            }
        })
    });
    if let Some(p) = k.gemm {
        let gb = (p.act_bytes)(cols);
        let mut own = Rows::new(TOKENS, gb);
        let gs = own.stride;
        for (t, src) in x.chunks_exact(cols).enumerate() {
            (p.quantize_act)(src, &mut own.all_mut()[t * gs..t * gs + gb]);
        }
        let own = own.all();
        let mut dots = vec![0f32; TOKENS * p.rows];
        g.bench_function("prompt", |b| {
            b.iter(|| {
                for group in w.chunks(rb * p.rows) {
                    let n = group.len() / rb;
                    (p.kernel)(group, n, own, gs, TOKENS, &mut dots, p.rows);
                }
            })
        });
        std::hint::black_box(&dots);
    }
    if let Some(p) = k.gemv {
        let gb = (p.act_bytes)(cols);
        let mut own = Rows::new(1, gb);
        let gs = own.stride;
        (p.quantize_act)(&x[..cols], &mut own.all_mut()[..gb]);
        let own = own.all();
        let mut outs = vec![0f32; p.rows];
        g.throughput(weight_bytes);
        g.bench_function("one_token", |b| {
            b.iter(|| {
                for group in w.chunks(rb * p.rows) {
                    let n = group.len() / rb;
                    (p.kernel)(group, n, own, gs, 1, &mut outs, n);
                    out[0] += outs[0];
                }
            })
        });
    }
    std::hint::black_box(&out);
}

/// The filter criterion was given (the first argument that is no flag), matched here as a
/// substring so that the weights of excluded groups are never quantized.
fn filter() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

fn kernels(c: &mut Criterion<ThreadCpu>) {
    let filter = filter();
    let wanted = |group: &str| {
        filter.as_deref().is_none_or(|f| {
            ["gemv", "vec_dot_n", "prompt", "one_token"]
                .iter()
                .any(|b| format!("{group}/{b}").contains(f))
        })
    };
    for &ty in TYPES {
        // SmolLM2's 576 columns are no whole number of 256-element blocks.
        for &(rows, cols) in SHAPES.iter().filter(|s| s.1 % ty.block_elems() == 0) {
            let group = |set: &str| format!("{set}/{ty}/{rows}x{cols}");
            let sets: Vec<_> = available()
                .into_iter()
                .filter_map(|set| Some((set.name, set.get(ty)?)))
                .filter(|(name, _)| wanted(&group(name)))
                .collect();
            if sets.is_empty() {
                continue;
            }
            let rb = ty.bytes_for(cols as u64).unwrap() as usize;
            let mut w = vec![0u8; rows * rb];
            for (r, row) in w.chunks_exact_mut(rb).enumerate() {
                quantize_row(ty, &values(cols, r as u64 + 1), row).unwrap();
            }
            for (name, k) in sets {
                let mut g = c.benchmark_group(group(name));
                shape(&mut g, k, &w, rows, cols);
                g.finish();
            }
        }
    }
}

fn config() -> Criterion<ThreadCpu> {
    Criterion::default()
        .with_measurement(ThreadCpu)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = kernels
}
criterion_main!(benches);

//! Kernel throughput, one thread: `cargo bench -p hearth-simd [-- FILTER]`.
//!
//! For every weight type of every kernel set this CPU runs: the matrix-vector kernel
//! (`vec_dot`, generation, and the set's own single-token path where it has one) in GB/s of
//! weights read, and the prompt kernels (`vec_dot_n` on the
//! plain activations, and the set's own prompt path where it has one) in G multiply-adds per
//! second of CPU time, over the matrix shapes of R1-Distill-Qwen-1.5B (1536×1536 attention, 8960×1536 FFN
//! up/gate, 1536×8960 FFN down), and SmolLM2-135M's FFN up/gate (1536×576: rows of 18 blocks of
//! 32, where per-row costs show). Median of several runs; no assertions (speed claims are
//! measured side by side with llama.cpp, see the closing notes and `hearth bench`).

use hearth_quant::{quantize_row, GgmlType};
use hearth_simd::{available, MatKernels};

/// The shapes (rows, cols) of R1-Distill-Qwen-1.5B's matmuls.
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

/// CPU seconds this thread has run: unlike wall time, it does not count the time other
/// processes of a busy machine take from it.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Median CPU seconds of `runs` calls of `f`, after one warm-up call.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = thread_cpu();
            f();
            thread_cpu() - start
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
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
    fn all(&mut self) -> &mut [u8] {
        let len = self.buf.len() - 32;
        &mut self.buf[self.off..self.off + len]
    }
}

fn bench(set: &str, k: &MatKernels, rows: usize, cols: usize) {
    let rb = k.ty.bytes_for(cols as u64).unwrap() as usize;
    let mut w = vec![0u8; rows * rb];
    for (r, row) in w.chunks_exact_mut(rb).enumerate() {
        quantize_row(k.ty, &values(cols, r as u64 + 1), row).unwrap();
    }
    let x = values(cols * TOKENS, 99);
    let ab = k.vec_dot_type.bytes_for(cols as u64).unwrap() as usize;
    let mut plain = Rows::new(TOKENS, ab);
    let stride = plain.stride;
    for (t, src) in x.chunks_exact(cols).enumerate() {
        (k.quantize_act)(src, &mut plain.all()[t * stride..t * stride + ab]);
    }
    let mut out = vec![0f32; TOKENS];
    let gemv = median(7, || {
        let a = &plain.all()[..ab];
        for row in w.chunks_exact(rb) {
            out[0] += (k.vec_dot)(row, a);
        }
    });
    let macs = (rows * cols * TOKENS) as f64;
    let plain_n = median(3, || {
        let a = &*plain.all();
        for row in w.chunks_exact(rb) {
            (k.vec_dot_n)(row, a, stride, &mut out);
        }
    });
    let mut line = format!(
        "{set:>12} {:>6} {rows:>5}x{cols:<5} gemv {:6.2} GB/s | prompt vec_dot_n {:6.2} GMAC/s",
        k.ty.to_string(),
        (rows * rb) as f64 / gemv / 1e9,
        macs / plain_n / 1e9
    );
    if let Some(g) = k.gemm {
        let gb = (g.act_bytes)(cols);
        let mut own = Rows::new(TOKENS, gb);
        let gs = own.stride;
        for (t, src) in x.chunks_exact(cols).enumerate() {
            (g.quantize_act)(src, &mut own.all()[t * gs..t * gs + gb]);
        }
        let mut dots = vec![0f32; TOKENS * g.rows];
        let t = median(3, || {
            let a = &*own.all();
            for group in w.chunks(rb * g.rows) {
                let n = group.len() / rb;
                (g.kernel)(group, n, a, gs, TOKENS, &mut dots, g.rows);
            }
        });
        let t1 = median(7, || {
            let a = &*own.all();
            for group in w.chunks(rb * g.rows) {
                let n = group.len() / rb;
                (g.kernel)(group, n, a, gs, 1, &mut dots, g.rows);
            }
        });
        std::hint::black_box(&dots);
        line += &format!(
            " | own path {:6.2} GMAC/s, one token {:6.2} GB/s",
            macs / t / 1e9,
            (rows * rb) as f64 / t1 / 1e9
        );
    }
    if let Some(g) = k.gemv {
        let gb = (g.act_bytes)(cols);
        let mut own = Rows::new(1, gb);
        (g.quantize_act)(&x[..cols], &mut own.all()[..gb]);
        let gs = own.stride;
        let mut outs = vec![0f32; g.rows];
        let t1 = median(7, || {
            let a = &*own.all();
            for rows in w.chunks(rb * g.rows) {
                let n = rows.len() / rb;
                (g.kernel)(rows, n, a, gs, 1, &mut outs, n);
                out[0] += outs[0];
            }
        });
        line += &format!(
            " | one-token path {:6.2} GB/s",
            (rows * rb) as f64 / t1 / 1e9
        );
    }
    std::hint::black_box(&out);
    println!("{line}");
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for set in available() {
        for &ty in TYPES {
            let Some(k) = set.get(ty) else { continue };
            let name = format!("{} {}", set.name, ty);
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            // SmolLM2's 576 columns are no whole number of 256-element blocks.
            for &(rows, cols) in SHAPES.iter().filter(|s| s.1 % ty.block_elems() == 0) {
                bench(set.name, k, rows, cols);
            }
        }
    }
}

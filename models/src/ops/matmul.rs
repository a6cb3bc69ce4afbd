//! Matrix multiplication of quantized weights by f32 activations.
//!
//! The activations are quantized once per call to the weight type's `vec_dot_type` (Q8_0, Q8_K,
//! F16, ...), exactly as ggml does, and every output is one `vec_dot` of a weight row with an
//! activation row. The per-type kernels come from `hearth-simd`'s table, chosen at run time; this
//! file only splits the work over threads and never matches on the weight type itself.

use crate::ops::pool::{current_threads, for_each_chunk};
use crate::ModelError;
use hearth_quant::GgmlType;
use hearth_simd::MatKernels;

/// A 2-D quantized weight: `rows` rows of `cols` elements, stored row after row.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl QMatrix<'_> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.ty.bytes_for(self.cols as u64).unwrap_or(0) as usize
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Row `r` as f32 (embedding lookup, ggml's `get_rows`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), ModelError> {
        if r >= self.rows {
            return Err(ModelError::BadShape(format!(
                "row {r} of a {}-row matrix",
                self.rows
            )));
        }
        hearth_quant::dequantize_row(self.ty, self.row(r), out)
            .map_err(|e| ModelError::Quant(e.to_string()))
    }
}

/// The kernels for a weight type, or an error if hearth cannot multiply by it.
pub fn check_supported(ty: GgmlType) -> Result<&'static MatKernels, ModelError> {
    hearth_simd::mat_kernels(ty)
        .ok_or_else(|| ModelError::Unsupported(format!("matmul with {ty} weights")))
}

/// Reusable buffers of [`matmul`].
#[derive(Default)]
pub struct MatmulScratch {
    act: Vec<u8>,
    tmp: Vec<f32>,
}

/// Activation bytes of one pass of a prompt matmul over a task's weight rows (a quarter of a
/// typical L2 cache): enough tokens that the eight-row kernels take sixteen per call (1.5B
/// Q4_K_M pp512 +10% over 16 KiB passes, which held eight tokens of the FFN's rows).
const PASS_BYTES: usize = 128 * 1024;

/// Weight rows per task of a single-token matmul.
const ROWS_PER_TASK: usize = 16;

/// Weight rows per task of a prompt matmul. Each task streams every token's activations
/// (a megabyte for 512 tokens of 1536 columns, more than an L2 cache) once, so larger tasks
/// reread them less: Qwen2.5-0.5B pp512 gained 15% at 64 rows over 16.
const ROWS_PER_BATCH_TASK: usize = 64;

/// Most tokens per pass over a task's weight rows.
const MAX_PASS: usize = 64;

/// Tokens per thread from which a prompt matmul splits the tokens, not the weight rows, over
/// the threads.
const TOKENS_PER_THREAD: usize = 16;

/// Fewest tokens per pass (when a token's activations are large, as the FFN down matrix's
/// 8960 columns): the sixteen-row kernels take sixteen tokens per call.
const MIN_PASS: usize = 16;

/// Alignment of the quantized activation rows (Q8_K holds f32 and i16 fields; the prompt paths
/// read 32-byte rows).
const ACT_ALIGN: usize = 32;

/// `out[t][r] = w[r] · x[t]` for `n` tokens: `x` is `(n, cols)`, `out` is `(n, rows)`.
pub fn matmul(
    w: &QMatrix,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), ModelError> {
    let k = check_supported(w.ty)?;
    debug_assert_eq!(x.len(), n * w.cols);
    debug_assert_eq!(out.len(), n * w.rows);
    // A single token takes the set's own single-token path where it has one (the 32-element
    // types on the x86 sets, and Q6_K's one-row prompt path on avx512). Otherwise the set's
    // prompt path where it has one, else `vec_dot_n` on plain activations: a one-row prompt
    // path serves single tokens too (it reads the weights as fast as `vec_dot`, and a token
    // gives the same bits alone as in a batch), while the eight- and sixteen-row paths would
    // halve generation speed, so single tokens take `vec_dot` there.
    let gemm = match (n, k.gemv) {
        (1, Some(g)) => Some(g),
        _ => k.gemm.filter(|g| n > 1 || g.rows == 1),
    };
    let (quantize, act_row) = match gemm {
        Some(g) => (g.quantize_act, (g.act_bytes)(w.cols)),
        None => (
            k.quantize_act,
            k.vec_dot_type
                .bytes_for(w.cols as u64)
                .ok_or_else(|| ModelError::BadShape(format!("{} columns of {}", w.cols, w.ty)))?
                as usize,
        ),
    };
    // Rows of activations, each starting at an ACT_ALIGN boundary.
    let stride = act_row.div_ceil(ACT_ALIGN) * ACT_ALIGN;
    scratch.act.clear();
    scratch.act.resize(n * stride + ACT_ALIGN, 0);
    let off = scratch.act.as_ptr().align_offset(ACT_ALIGN);
    let act = &mut scratch.act[off..off + n * stride];
    for_each_chunk(act, stride, |t, dst| {
        quantize(&x[t * w.cols..(t + 1) * w.cols], &mut dst[..act_row])
    });
    let act = &*act;
    let rb = w.row_bytes();
    if n == 1 {
        for_each_chunk(out, ROWS_PER_TASK, |c, dst| {
            let r0 = c * ROWS_PER_TASK;
            match gemm {
                // The path's row groups (a task's rows are a multiple of them but for the
                // matrix's last task).
                Some(g) => {
                    for (i, o) in dst.chunks_mut(g.rows).enumerate() {
                        let r = r0 + i * g.rows;
                        let rows = &w.data[r * rb..(r + o.len()) * rb];
                        (g.kernel)(rows, o.len(), act, stride, 1, o, o.len());
                    }
                }
                None => {
                    for (i, o) in dst.iter_mut().enumerate() {
                        let r = r0 + i;
                        *o = (k.vec_dot)(&w.data[r * rb..(r + 1) * rb], &act[..act_row]);
                    }
                }
            }
        });
        return Ok(());
    }
    let group = gemm.map_or(1, |g| g.rows);
    // A multiple of 8 so the kernels' column tiles (16, 8 or 4 tokens) leave no remainder but
    // the last pass's.
    let tokens_per_pass = (PASS_BYTES / stride / 8 * 8).clamp(MIN_PASS, MAX_PASS);
    // A batch of tokens sizeable for every thread: each task takes a pass of tokens and every
    // weight row, and writes its tokens' rows of `out` in place. The weights are read once per
    // pass (a few megabytes per pass, against tens of milliseconds of arithmetic), the pass's
    // activations stay in the L2 cache, and nothing is gathered afterwards (that copy was 3%
    // of a 1.5B prompt at one thread, 6% at two).
    let threads = current_threads();
    if n >= TOKENS_PER_THREAD * threads {
        let tasks = n.div_ceil(tokens_per_pass).next_multiple_of(threads);
        let per = n.div_ceil(tasks);
        for_each_chunk(out, per * w.rows, |c, dst| {
            let (t0, nt) = (c * per, dst.len() / w.rows);
            let a = &act[t0 * stride..];
            for g0 in (0..w.rows).step_by(group) {
                let gr = group.min(w.rows - g0);
                let rows = &w.data[g0 * rb..(g0 + gr) * rb];
                match gemm {
                    Some(g) => (g.kernel)(rows, gr, a, stride, nt, &mut dst[g0..], w.rows),
                    None => {
                        let mut dots = [0f32; MAX_PASS];
                        (k.vec_dot_n)(rows, a, stride, &mut dots[..nt]);
                        for (i, &d) in dots[..nt].iter().enumerate() {
                            dst[i * w.rows + g0] = d;
                        }
                    }
                }
            }
        });
        return Ok(());
    }
    // Fewer tokens: each task owns ROWS_PER_BATCH_TASK weight rows (a multiple of every
    // kernel's row group) and computes their results for every token into its own part of
    // `tmp`, token-major (`rc` values per token); then the parts are gathered into `out`.
    debug_assert_eq!(ROWS_PER_BATCH_TASK % group, 0);
    // Every value of `tmp` is written by the kernels before it is read: grown, never cleared
    // (zeroing it cost 1.5% of a 1.5B prompt).
    if scratch.tmp.len() < w.rows * n {
        scratch.tmp.resize(w.rows * n, 0.0);
    }
    let tmp = &mut scratch.tmp[..w.rows * n];
    for_each_chunk(tmp, n * ROWS_PER_BATCH_TASK, |c, dst| {
        let (r0, rc) = (c * ROWS_PER_BATCH_TASK, dst.len() / n);
        // Tokens in passes whose activations stay in the L2 cache while every weight row
        // of the task goes over them.
        for t0 in (0..n).step_by(tokens_per_pass) {
            let t1 = (t0 + tokens_per_pass).min(n);
            for g0 in (0..rc).step_by(group) {
                let gr = group.min(rc - g0);
                let rows = &w.data[(r0 + g0) * rb..(r0 + g0 + gr) * rb];
                let a = &act[t0 * stride..];
                match gemm {
                    Some(g) => {
                        (g.kernel)(rows, gr, a, stride, t1 - t0, &mut dst[t0 * rc + g0..], rc)
                    }
                    None => {
                        let mut dots = [0f32; MAX_PASS];
                        (k.vec_dot_n)(rows, a, stride, &mut dots[..t1 - t0]);
                        for (i, &d) in dots[..t1 - t0].iter().enumerate() {
                            dst[(t0 + i) * rc + g0] = d;
                        }
                    }
                }
            }
        }
    });
    let tmp = &scratch.tmp[..w.rows * n];
    for_each_chunk(out, w.rows, |t, row| {
        for (c, part) in tmp.chunks(n * ROWS_PER_BATCH_TASK).enumerate() {
            let rc = part.len() / n;
            row[c * ROWS_PER_BATCH_TASK..c * ROWS_PER_BATCH_TASK + rc]
                .copy_from_slice(&part[t * rc..(t + 1) * rc]);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::ThreadPool;
    use hearth_quant::quantize_row;

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

    /// Every output of `matmul`, whichever way it splits the work (by weight rows for few
    /// tokens, by tokens for many; 1 to 3 threads; row counts that are not a multiple of the
    /// kernels' row groups), equals the kernel set's `vec_dot` of that row and token.
    #[test]
    fn every_split_matches_vec_dot() {
        let (rows, cols) = (40, 512);
        for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::F16] {
            let k = check_supported(ty).unwrap();
            let rb = ty.bytes_for(cols as u64).unwrap() as usize;
            let mut data = vec![0u8; rows * rb];
            for (r, row) in data.chunks_exact_mut(rb).enumerate() {
                quantize_row(ty, &values(cols, r as u64 + 7), row).unwrap();
            }
            let w = QMatrix {
                ty,
                rows,
                cols,
                data: &data,
            };
            let ab = k.vec_dot_type.bytes_for(cols as u64).unwrap() as usize;
            for threads in 1..=3 {
                let pool = ThreadPool::new(threads).unwrap();
                for n in [1, 5, 31, 33, 100, 130] {
                    let x = values(n * cols, n as u64);
                    let mut out = vec![f32::NAN; n * rows];
                    pool.install(|| {
                        matmul(&w, &x, n, &mut out, &mut MatmulScratch::default()).unwrap()
                    });
                    let mut a = vec![0u8; ab];
                    for t in 0..n {
                        (k.quantize_act)(&x[t * cols..(t + 1) * cols], &mut a);
                        for r in 0..rows {
                            let want = (k.vec_dot)(&data[r * rb..(r + 1) * rb], &a);
                            let got = out[t * rows + r];
                            assert!(
                                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                                "{ty}, {threads} threads, {n} tokens: row {r} token {t}: \
                                 {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

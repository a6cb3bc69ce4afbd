//! A short measurement of this machine, for `hearth fit`'s speed estimates; cached in the store
//! (`probe.json`) per CPU, kernel set, thread count and hearth version.
//!
//! - read bandwidth: one pass over 256 MiB, split over the threads;
//! - for each weight type: the bytes/s at which hearth's own matrix-vector kernel streams
//!   matrices of that type (4096 × 2048 each, 256 MiB in all: far beyond any cache), which is the
//!   bandwidth when memory is the limit and less when the arithmetic is, as on few cores;
//! - the cost of one parallel dispatch (a 16-row matmul), paid a few times per layer per token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_models::ops::matmul::{matmul, MatmulScratch, QMatrix};
use hearth_quant::GgmlType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Bytes each measurement streams through.
const BUFFER: usize = 256 << 20;
/// How long each rate is measured at least (after one warm-up pass).
const MEASURE: Duration = Duration::from_millis(300);
const COLS: usize = 2048;
const ROWS: usize = 4096;

/// What was measured on one machine configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Read bandwidth, bytes/s.
    pub bandwidth: Option<f64>,
    /// Seconds per parallel dispatch.
    pub dispatch_s: Option<f64>,
    /// Weight bytes/s streamed by the matrix-vector kernel, by type name.
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
}

/// The probe of this machine at a thread count, measuring what is missing on demand.
pub struct Probe {
    key: String,
    path: Option<PathBuf>,
    all: BTreeMap<String, Measured>,
    pool: rayon::ThreadPool,
    pub threads: usize,
    dirty: bool,
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

impl Probe {
    /// The cached probe for `threads` (0: the default), or a fresh one when `fresh`.
    pub fn new(threads: usize, fresh: bool) -> anyhow::Result<Probe> {
        let kernels = hearth_simd::select().map_err(anyhow::Error::msg)?.name;
        let threads = if threads == 0 {
            crate::cpu::default_threads()
        } else {
            threads
        };
        let key = format!(
            "{} | {kernels} | {threads} threads | hearth {}",
            cpu_name(),
            env!("CARGO_PKG_VERSION")
        );
        let path = super::model_dir().map(|d| d.join("probe.json"));
        let mut all: BTreeMap<String, Measured> = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if fresh {
            all.remove(&key);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("starting the probe's threads")?;
        Ok(Probe {
            key,
            path,
            all,
            pool,
            threads,
            dirty: false,
        })
    }

    fn mine(&mut self) -> &mut Measured {
        self.all.entry(self.key.clone()).or_default()
    }

    /// Read bandwidth in bytes/s.
    pub fn bandwidth(&mut self) -> f64 {
        if let Some(b) = self.mine().bandwidth {
            return b;
        }
        let b = self.pool.install(measure_bandwidth);
        self.mine().bandwidth = Some(b);
        self.dirty = true;
        b
    }

    /// Seconds per parallel dispatch.
    pub fn dispatch_s(&mut self) -> f64 {
        if let Some(d) = self.mine().dispatch_s {
            return d;
        }
        let d = self.pool.install(measure_dispatch).unwrap_or(0.0);
        self.mine().dispatch_s = Some(d);
        self.dirty = true;
        d
    }

    /// Bytes/s the matrix-vector kernel of type `name` streams; `None` when hearth cannot
    /// multiply by that type.
    pub fn rate(&mut self, name: &str) -> Option<f64> {
        if let Some(r) = self.mine().rates.get(name) {
            return Some(*r);
        }
        let ty = GgmlType::from_name(name)?;
        let dispatch = self.dispatch_s();
        let r = self.pool.install(|| measure_rate(ty, dispatch))?;
        self.mine().rates.insert(name.to_string(), r);
        self.dirty = true;
        Some(r)
    }

    /// Write what was measured to the cache (best effort).
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let Some(path) = &self.path else { return };
        let write = || -> anyhow::Result<()> {
            std::fs::create_dir_all(path.parent().context("no folder")?)?;
            let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_string_pretty(&self.all)?)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        };
        match write() {
            Ok(()) => self.dirty = false,
            Err(e) => eprintln!(
                "warning: could not cache the probe in {}: {e:#}",
                path.display()
            ),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.save();
    }
}

/// A buffer of non-zero values (an untouched zeroed allocation reads from one shared page).
/// `repeat` copies by doubling, quick even in a debug build.
fn filled(n: usize) -> Vec<u16> {
    [0x3c00u16, 0x3c01].repeat(n / 2)
}

fn measure_bandwidth() -> f64 {
    let buf = filled(BUFFER / 2);
    let dot = hearth_simd::vec_kernels().dot_f16;
    let chunk = buf.len().div_ceil(rayon::current_num_threads() * 4);
    let pass = || buf.par_chunks(chunk).map(|c| dot(c, c) as f64).sum::<f64>();
    std::hint::black_box(pass());
    median_of_passes(|| {
        std::hint::black_box(pass());
        Some(())
    })
    .map_or(0.0, |secs| BUFFER as f64 / secs)
}

/// The median time of `pass` over at least three runs and [`MEASURE`]: a machine shared with
/// other work has bursts, and the median ignores them where a mean would not.
fn median_of_passes(mut pass: impl FnMut() -> Option<()>) -> Option<f64> {
    let (mut times, start) = (Vec::new(), Instant::now());
    while times.len() < 3 || start.elapsed() < MEASURE {
        let t = Instant::now();
        pass()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Some(times[times.len() / 2])
}

/// One quantized row of `ty`, from a smooth f32 row.
fn one_row(ty: GgmlType, cols: usize) -> Option<Vec<u8>> {
    let src: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.02)
        .collect();
    let mut row = vec![0u8; ty.bytes_for(cols as u64)? as usize];
    hearth_quant::quantize_row(ty, &src, &mut row).ok()?;
    Some(row)
}

fn measure_dispatch() -> Option<f64> {
    let ty = GgmlType::Q8_0;
    let row = one_row(ty, COLS)?;
    let data = row.repeat(16);
    let w = QMatrix {
        ty,
        rows: 16,
        cols: COLS,
        data: &data,
    };
    let x = vec![0.5f32; COLS];
    let mut out = vec![0f32; 16];
    let mut scratch = MatmulScratch::default();
    matmul(&w, &x, 1, &mut out, &mut scratch).ok()?;
    const CALLS: u32 = 100;
    let batch = median_of_passes(|| {
        for _ in 0..CALLS {
            matmul(&w, &x, 1, &mut out, &mut scratch).ok()?;
        }
        Some(())
    })?;
    Some(batch / f64::from(CALLS))
}

fn measure_rate(ty: GgmlType, dispatch_s: f64) -> Option<f64> {
    hearth_simd::mat_kernels(ty)?;
    let row = one_row(ty, COLS)?;
    let per_matrix = row.len() * ROWS;
    let n_mat = (BUFFER / per_matrix).max(2);
    let data = row.repeat(ROWS * n_mat);
    let x: Vec<f32> = (0..COLS).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut out = vec![0f32; ROWS];
    let mut scratch = MatmulScratch::default();
    let mut pass = |out: &mut [f32]| -> Option<()> {
        for m in data.chunks_exact(per_matrix) {
            let w = QMatrix {
                ty,
                rows: ROWS,
                cols: COLS,
                data: m,
            };
            matmul(&w, &x, 1, out, &mut scratch).ok()?;
        }
        Some(())
    };
    pass(&mut out)?;
    let secs = median_of_passes(|| pass(&mut out))? - n_mat as f64 * dispatch_s;
    Some((per_matrix * n_mat) as f64 / secs.max(1e-9))
}

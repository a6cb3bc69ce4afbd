//! The key/value cache: what attention remembers of earlier positions.
//!
//! One buffer per layer for keys and one for values, `n_ctx` rows of `kv_dim` values each, stored
//! as f16 by default (as llama.cpp does), f32, or Q8_0. A row is written once, when its position
//! goes through the model, and read by every later position.
//!
//! A Q8_0 row is `kv_dim / 32` blocks of 34 bytes (an f16 scale and 32 signed bytes), quantized
//! by hearth-simd's Q8_0 row quantizer (today hearth-quant's `quantize_row_q8_0_ref`), the one the
//! query goes through, as ggml uses its CPU `from_float` for both. Blocks never straddle two heads, so each
//! head's slice of a row is whole blocks: the head size must be a multiple of 32, which
//! [`KvCache::check`] verifies before a cache is built.
//!
//! Like llama.cpp (`llama_kv_cache`: `attn_rot_k`, `attn_rot_v`), a quantized cache stores keys and
//! values in a rotated basis when the head size is a multiple of 64: each head's slice goes through
//! an orthonormal Walsh-Hadamard transform ([`hadamard`]) before it is quantized, which spreads the
//! outliers of a head (Qwen2's keys reach a few hundred) over all its values so that one block's
//! scale no longer flattens the rest. Keys use the largest power of two dividing the head size,
//! values blocks of 64. The transform is its own inverse: attention rotates the query the same way
//! (`q·k` is unchanged) and rotates its output back. `LLAMA_ATTN_ROT_DISABLE` is not mirrored.

use half::f16;
use hearth_quant::{BlockQ8_0, Pod, QuantBlock, QK8_0};

/// Element type of the cache (`--cache-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    F32,
    F16,
    Q8_0,
}

/// A cache type that cannot hold the model's heads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error(
        "--cache-type {ty} needs a head size that is a multiple of {block}, but this model's heads have {head_dim} values; use --cache-type f16 or f32"
    )]
    HeadDim {
        ty: &'static str,
        block: usize,
        head_dim: usize,
    },
}

impl CacheType {
    /// Parse the CLI spelling (`f32`, `f16`, `q8_0`).
    pub fn parse(s: &str) -> Option<CacheType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(CacheType::F32),
            "f16" => Some(CacheType::F16),
            "q8_0" => Some(CacheType::Q8_0),
            _ => None,
        }
    }

    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            CacheType::F32 => "f32",
            CacheType::F16 => "f16",
            CacheType::Q8_0 => "q8_0",
        }
    }

    /// Values per stored block (1 for the float types).
    pub fn block_elems(self) -> usize {
        match self {
            CacheType::F32 | CacheType::F16 => 1,
            CacheType::Q8_0 => QK8_0,
        }
    }

    /// Bytes per stored block.
    pub fn block_bytes(self) -> usize {
        match self {
            CacheType::F32 => 4,
            CacheType::F16 => 2,
            CacheType::Q8_0 => size_of::<BlockQ8_0>(),
        }
    }

    /// Whether values are stored as quantized blocks.
    pub fn is_quantized(self) -> bool {
        matches!(self, CacheType::Q8_0)
    }

    /// Size of the Hadamard rotation keys are stored in (0: none), as llama.cpp's `attn_rot_k`:
    /// quantized caches with a head size that is a multiple of 64, the largest power of two
    /// dividing the head size.
    pub fn key_rotation(self, head_dim: usize) -> usize {
        if !self.is_quantized() || head_dim == 0 || !head_dim.is_multiple_of(64) {
            return 0;
        }
        1 << head_dim.trailing_zeros()
    }

    /// Size of the Hadamard rotation values are stored in (0: none), as llama.cpp's
    /// `attn_rot_v`: 64 for quantized caches with a head size that is a multiple of 64.
    pub fn value_rotation(self, head_dim: usize) -> usize {
        if !self.is_quantized() || head_dim == 0 || !head_dim.is_multiple_of(64) {
            return 0;
        }
        64
    }

    /// Bytes of one stored row of `n` values (a partial block counts whole).
    pub fn row_bytes(self, n: usize) -> u64 {
        n.div_ceil(self.block_elems()) as u64 * self.block_bytes() as u64
    }
}

/// Rows of one layer's keys or values.
#[derive(Debug)]
pub enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// `len / 32` blocks; element `i` lives in block `i / 32`. With `rot > 0` every run of `rot`
    /// values is stored Hadamard-rotated ([`hadamard`]).
    Q8_0 {
        blocks: Vec<BlockQ8_0>,
        rot: usize,
    },
}

/// Quantize `src` into `dst` with the kernel table's Q8_0 row quantizer, the one attention uses
/// for the query: ggml stores cache rows with the CPU `from_float` of the cache type, the same
/// function it quantizes the query with. (The kernel wants a 16-byte aligned destination.)
fn quantize_q8_0(src: &[f32], dst: &mut [BlockQ8_0]) {
    const ALIGN: usize = 16;
    let k = hearth_simd::mat_kernels(hearth_quant::GgmlType::Q8_0).expect("Q8_0 kernels");
    let n = size_of_val(dst);
    let mut buf = vec![0u8; n + ALIGN];
    let off = buf.as_ptr().align_offset(ALIGN);
    (k.quantize_act)(src, &mut buf[off..off + n]);
    hearth_quant::blocks_as_bytes_mut(dst).copy_from_slice(&buf[off..off + n]);
}

/// In-place orthonormal Walsh-Hadamard transform of each run of `n` values of `x` (`n` a power
/// of two), computed as ggml's CPU `ggml_compute_forward_fwht` does (the kernel llama.cpp's
/// `llama_mul_mat_hadamard` lands on): scale by `1/sqrt(n)` first, then butterflies
/// `(u + v, u - v)` at strides 1, 2, 4, ... The transform is symmetric and its own inverse.
pub fn hadamard(x: &mut [f32], n: usize) {
    assert!(
        n.is_power_of_two() && x.len().is_multiple_of(n),
        "hadamard of {} by {n}",
        x.len()
    );
    let scale = 1.0 / (n as f32).sqrt();
    for row in x.chunks_exact_mut(n) {
        row.iter_mut().for_each(|v| *v *= scale);
        let mut len = 1;
        while len < n {
            for i in (0..n).step_by(2 * len) {
                for j in i..i + len {
                    let (u, v) = (row[j], row[j + len]);
                    row[j] = u + v;
                    row[j + len] = u - v;
                }
            }
            len <<= 1;
        }
    }
}

impl Rows {
    /// Room for `len` values (a multiple of the type's block size), stored unrotated.
    pub fn new(ty: CacheType, len: usize) -> Rows {
        Rows::with_rotation(ty, len, 0)
    }

    /// Room for `len` values; a quantized type stores each run of `rot` values Hadamard-rotated
    /// (0: no rotation; ignored by the float types).
    pub fn with_rotation(ty: CacheType, len: usize, rot: usize) -> Rows {
        assert_eq!(
            len % ty.block_elems(),
            0,
            "cache length {len} is not whole {} blocks",
            ty.name()
        );
        match ty {
            CacheType::F32 => Rows::F32(vec![0.0; len]),
            CacheType::F16 => Rows::F16(vec![f16::ZERO; len]),
            CacheType::Q8_0 => {
                assert!(rot == 0 || (rot.is_power_of_two() && len.is_multiple_of(rot)));
                Rows::Q8_0 {
                    blocks: vec![BlockQ8_0::zeroed(); len / QK8_0],
                    rot,
                }
            }
        }
    }

    /// The Hadamard rotation size of stored rows (0: none).
    pub fn rotation(&self) -> usize {
        match self {
            Rows::Q8_0 { rot, .. } => *rot,
            _ => 0,
        }
    }

    /// Store `src` at element offset `at` (for Q8_0 both are whole blocks, and whole rotation
    /// runs when rotated).
    pub fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Rows::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            Rows::F16(v) => {
                for (d, &s) in v[at..at + src.len()].iter_mut().zip(src) {
                    *d = f16::from_f32(s);
                }
            }
            Rows::Q8_0 { blocks, rot } => {
                assert!(
                    at.is_multiple_of(QK8_0) && src.len().is_multiple_of(QK8_0),
                    "Q8_0 cache write of {} values at {at} is not whole blocks",
                    src.len()
                );
                let dst = &mut blocks[at / QK8_0..(at + src.len()) / QK8_0];
                if *rot > 0 {
                    assert!(at.is_multiple_of(*rot), "rotated cache write at {at}");
                    let mut r = src.to_vec();
                    hadamard(&mut r, *rot);
                    quantize_q8_0(&r, dst);
                } else {
                    quantize_q8_0(src, dst);
                }
            }
        }
    }

    /// Read `out.len()` values from element offset `at` back as f32 (Q8_0: dequantized, and in
    /// the rotated basis when the rows are rotated).
    pub fn read(&self, at: usize, out: &mut [f32]) {
        let n = out.len();
        match self {
            Rows::F32(v) => out.copy_from_slice(&v[at..at + n]),
            Rows::F16(v) => {
                for (o, x) in out.iter_mut().zip(&v[at..at + n]) {
                    *o = x.to_f32();
                }
            }
            Rows::Q8_0 { blocks: v, .. } => {
                debug_assert!(at.is_multiple_of(QK8_0) && n.is_multiple_of(QK8_0));
                BlockQ8_0::dequantize(&v[at / QK8_0..(at + n) / QK8_0], out);
            }
        }
    }
}

/// Keys and values of every layer.
#[derive(Debug)]
pub struct KvCache {
    pub ty: CacheType,
    pub n_ctx: usize,
    pub kv_dim: usize,
    pub keys: Vec<Rows>,
    pub values: Vec<Rows>,
    /// Positions filled so far (the next token goes to position `len`).
    pub len: usize,
}

impl KvCache {
    /// Whether a cache of type `ty` can hold heads of `head_dim` values: a Q8_0 block must not
    /// straddle two heads. Call before [`KvCache::new`], which panics on such a shape.
    pub fn check(ty: CacheType, head_dim: usize) -> Result<(), CacheError> {
        if head_dim == 0 || !head_dim.is_multiple_of(ty.block_elems()) {
            return Err(CacheError::HeadDim {
                ty: ty.name(),
                block: ty.block_elems(),
                head_dim,
            });
        }
        Ok(())
    }

    /// A cache for `n_layers` layers of `n_ctx` positions of `kv_dim` values each, heads of
    /// `head_dim` values (which set the rotations of a quantized cache).
    pub fn new(
        ty: CacheType,
        n_layers: usize,
        n_ctx: usize,
        kv_dim: usize,
        head_dim: usize,
    ) -> KvCache {
        let per_layer = n_ctx * kv_dim;
        let (kr, vr) = (ty.key_rotation(head_dim), ty.value_rotation(head_dim));
        KvCache {
            ty,
            n_ctx,
            kv_dim,
            keys: (0..n_layers)
                .map(|_| Rows::with_rotation(ty, per_layer, kr))
                .collect(),
            values: (0..n_layers)
                .map(|_| Rows::with_rotation(ty, per_layer, vr))
                .collect(),
            len: 0,
        }
    }

    /// Bytes a cache of this shape takes (Q8_0: 34 bytes per 32 values).
    pub fn bytes_for(ty: CacheType, n_layers: usize, n_ctx: usize, kv_dim: usize) -> u64 {
        2 * (n_layers as u64) * (n_ctx as u64) * ty.row_bytes(kv_dim)
    }

    /// Forget everything (a new conversation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drop the positions from `pos` on (keep a shared prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.len = self.len.min(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, seed: u32) -> Vec<f32> {
        // A deterministic spread of magnitudes and signs, with one outlier per 32.
        (0..n)
            .map(|i| {
                let x = ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32;
                let v = (x - 0.5) * 4.0;
                if i % 32 == 7 {
                    v * 10.0
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn parse_and_names() {
        for ty in [CacheType::F32, CacheType::F16, CacheType::Q8_0] {
            assert_eq!(CacheType::parse(ty.name()), Some(ty));
        }
        assert_eq!(CacheType::parse("Q8_0"), Some(CacheType::Q8_0));
        assert_eq!(CacheType::parse("q4_0"), None);
    }

    #[test]
    fn q8_0_rows_roundtrip_within_block_precision() {
        let kv_dim = 128;
        let mut rows = Rows::new(CacheType::Q8_0, 3 * kv_dim);
        let src = ramp(2 * kv_dim, 17);
        rows.write(kv_dim, &src);
        let mut back = vec![0.0; 2 * kv_dim];
        rows.read(kv_dim, &mut back);
        for (xb, bb) in src.chunks(32).zip(back.chunks(32)) {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // Half a quantization step, plus the f16 rounding of the scale.
            let tol = amax / 127.0 * 0.5 + amax * 1e-3;
            for (x, b) in xb.iter().zip(bb) {
                assert!((x - b).abs() <= tol, "{x} came back as {b} (tol {tol})");
            }
        }
        // The row before stays zero.
        let mut first = vec![1.0; kv_dim];
        rows.read(0, &mut first);
        assert!(first.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn q8_0_rows_are_ggml_reference_blocks() {
        let src = ramp(64, 3);
        let mut rows = Rows::new(CacheType::Q8_0, 64);
        rows.write(0, &src);
        let mut want = vec![0u8; 68];
        hearth_quant::quantize_row(hearth_quant::GgmlType::Q8_0, &src, &mut want).unwrap();
        let Rows::Q8_0 { blocks, .. } = &rows else {
            unreachable!()
        };
        assert_eq!(hearth_quant::blocks_as_bytes(blocks), &want[..]);
    }

    #[test]
    fn bytes_for_each_type() {
        // 30 layers, 512 positions, 192 values: K and V.
        let n = 2 * 30 * 512 * 192u64;
        assert_eq!(KvCache::bytes_for(CacheType::F32, 30, 512, 192), n * 4);
        assert_eq!(KvCache::bytes_for(CacheType::F16, 30, 512, 192), n * 2);
        assert_eq!(
            KvCache::bytes_for(CacheType::Q8_0, 30, 512, 192),
            n / 32 * 34
        );
    }

    #[test]
    fn q8_0_needs_heads_of_whole_blocks() {
        assert!(KvCache::check(CacheType::Q8_0, 64).is_ok());
        assert!(KvCache::check(CacheType::Q8_0, 128).is_ok());
        let err = KvCache::check(CacheType::Q8_0, 80).unwrap_err();
        assert_eq!(
            err,
            CacheError::HeadDim {
                ty: "q8_0",
                block: 32,
                head_dim: 80
            }
        );
        assert!(err.to_string().contains("multiple of 32"), "{err}");
        assert!(KvCache::check(CacheType::F16, 80).is_ok());
        assert!(KvCache::check(CacheType::F32, 1).is_ok());
    }

    /// The transform is the Sylvester Hadamard matrix over sqrt(n) (what ggml_gen_hadamard
    /// builds), and applying it twice gives the input back.
    #[test]
    fn hadamard_is_the_orthonormal_sylvester_matrix() {
        for n in [64usize, 128] {
            let x = ramp(2 * n, 9);
            let mut y = x.clone();
            hadamard(&mut y, n);
            for r in 0..2 {
                for i in 0..n {
                    let want: f64 = (0..n)
                        .map(|j| {
                            let sign = if (i & j).count_ones() % 2 == 0 {
                                1.0
                            } else {
                                -1.0
                            };
                            sign * x[r * n + j] as f64
                        })
                        .sum::<f64>()
                        / (n as f64).sqrt();
                    assert!(
                        (y[r * n + i] as f64 - want).abs() < 1e-4,
                        "n {n} row {r} i {i}"
                    );
                }
            }
            hadamard(&mut y, n);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn rotations_follow_llama_cpp() {
        let q = CacheType::Q8_0;
        assert_eq!((q.key_rotation(64), q.value_rotation(64)), (64, 64));
        assert_eq!((q.key_rotation(128), q.value_rotation(128)), (128, 64));
        assert_eq!((q.key_rotation(192), q.value_rotation(192)), (64, 64));
        assert_eq!((q.key_rotation(96), q.value_rotation(96)), (0, 0));
        assert_eq!(CacheType::F16.key_rotation(128), 0);
        let c = KvCache::new(q, 1, 4, 128, 64);
        assert_eq!((c.keys[0].rotation(), c.values[0].rotation()), (64, 64));
    }
}

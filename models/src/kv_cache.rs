//! The key/value cache: what attention remembers of earlier positions.
//!
//! One buffer per layer for keys and one for values, `n_ctx` rows of `kv_dim` values each, stored
//! as f16 by default (as llama.cpp does), or f32. A row is written once, when its position goes
//! through the model, and read by every later position.

use half::f16;

/// Element type of the cache (`--cache-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    F32,
    F16,
}

impl CacheType {
    /// Parse the CLI spelling (`f32`, `f16`).
    pub fn parse(s: &str) -> Option<CacheType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(CacheType::F32),
            "f16" => Some(CacheType::F16),
            _ => None,
        }
    }

    /// Bytes per stored value.
    pub fn elem_bytes(self) -> usize {
        match self {
            CacheType::F32 => 4,
            CacheType::F16 => 2,
        }
    }
}

/// Rows of one layer's keys or values.
#[derive(Debug)]
pub enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Rows {
    fn new(ty: CacheType, len: usize) -> Rows {
        match ty {
            CacheType::F32 => Rows::F32(vec![0.0; len]),
            CacheType::F16 => Rows::F16(vec![f16::ZERO; len]),
        }
    }

    /// Store `src` at element offset `at`.
    pub fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Rows::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            Rows::F16(v) => {
                for (d, &s) in v[at..at + src.len()].iter_mut().zip(src) {
                    *d = f16::from_f32(s);
                }
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
    /// A cache for `n_layers` layers of `n_ctx` positions of `kv_dim` values each.
    pub fn new(ty: CacheType, n_layers: usize, n_ctx: usize, kv_dim: usize) -> KvCache {
        let per_layer = n_ctx * kv_dim;
        KvCache {
            ty,
            n_ctx,
            kv_dim,
            keys: (0..n_layers).map(|_| Rows::new(ty, per_layer)).collect(),
            values: (0..n_layers).map(|_| Rows::new(ty, per_layer)).collect(),
            len: 0,
        }
    }

    /// Bytes a cache of this shape takes.
    pub fn bytes_for(ty: CacheType, n_layers: usize, n_ctx: usize, kv_dim: usize) -> u64 {
        2 * (n_layers as u64) * (n_ctx as u64) * (kv_dim as u64) * ty.elem_bytes() as u64
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

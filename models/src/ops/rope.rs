//! Rotary position embeddings, both layouts ggml knows.
//!
//! `Normal` (llama) rotates adjacent pairs `(x[2i], x[2i+1])`; `Neox` (qwen2, GPT-NeoX) rotates
//! `(x[i], x[i + n_rot/2])`. The angle for pair `i` at position `p` is `p * base^(-2i/n_rot)`,
//! divided by an optional per-pair frequency factor (llama3 rope scaling ships them as the
//! `rope_freqs.weight` tensor). As in ggml's `ggml_rope_cache_init`, the angle is built by
//! repeated multiplication in f32 so the result matches the reference to the last bit or two.

/// Which elements form a rotated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeKind {
    Normal,
    Neox,
}

/// Rope parameters of a model.
#[derive(Clone, Debug)]
pub struct Rope {
    pub kind: RopeKind,
    /// Rotated dimensions per head (`rope.dimension_count`, usually the head size).
    pub n_rot: usize,
    pub freq_base: f32,
    /// Linear position scaling (1 / `rope.scaling.factor` for linear scaling; 1.0 otherwise).
    pub freq_scale: f32,
    /// Per-pair divisors (`rope_freqs.weight`, length `n_rot / 2`), if the model has them.
    pub freq_factors: Option<Vec<f32>>,
}

impl Rope {
    /// Fill `cache` (length `n_rot`) with interleaved `cos, sin` for position `pos`.
    pub fn cache(&self, pos: usize, cache: &mut [f32]) {
        let theta_scale = self.freq_base.powf(-2.0 / self.n_rot as f32);
        let mut theta = pos as f32;
        for i in 0..self.n_rot / 2 {
            let ff = self
                .freq_factors
                .as_ref()
                .and_then(|f| f.get(i).copied())
                .unwrap_or(1.0);
            let t = self.freq_scale * (theta / ff);
            cache[2 * i] = t.cos();
            cache[2 * i + 1] = t.sin();
            theta *= theta_scale;
        }
    }

    /// Rotate every head of `x` (`n_heads * head_dim` values of one token) with a cache
    /// from [`Rope::cache`]. Dimensions past `n_rot` are left as they are.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cache: &[f32]) {
        let half = self.n_rot / 2;
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (cos, sin) = (cache[2 * i], cache[2 * i + 1]);
                let (a, b) = match self.kind {
                    RopeKind::Normal => (2 * i, 2 * i + 1),
                    RopeKind::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(kind: RopeKind) -> Rope {
        Rope {
            kind,
            n_rot: 8,
            freq_base: 10000.0,
            freq_scale: 1.0,
            freq_factors: None,
        }
    }

    #[test]
    fn position_zero_is_identity() {
        for kind in [RopeKind::Normal, RopeKind::Neox] {
            let r = rope(kind);
            let mut cache = vec![0.0; 8];
            r.cache(0, &mut cache);
            let orig: Vec<f32> = (0..16).map(|i| i as f32).collect();
            let mut x = orig.clone();
            r.apply(&mut x, 8, &cache);
            assert_eq!(x, orig);
        }
    }

    #[test]
    fn rotation_keeps_pair_norms_and_uses_the_right_pairs() {
        let r = rope(RopeKind::Neox);
        let mut cache = vec![0.0; 8];
        r.cache(7, &mut cache);
        let mut x = vec![0.0f32; 8];
        x[0] = 1.0; // pairs with x[4] in NeoX layout
        r.apply(&mut x, 8, &cache);
        assert!((x[0] - 7f32.cos()).abs() < 1e-6);
        assert!((x[4] - 7f32.sin()).abs() < 1e-6);
        assert_eq!(x[1], 0.0);

        let r = rope(RopeKind::Normal);
        let mut x = vec![0.0f32; 8];
        x[2] = 1.0; // pair 1: (x[2], x[3]), angle 7 * 10000^(-2/8)
        r.apply(&mut x, 8, &cache);
        let t = 7.0 * 10000f32.powf(-0.25);
        assert!((x[2] - t.cos()).abs() < 1e-5 && (x[3] - t.sin()).abs() < 1e-5);
    }

    #[test]
    fn freq_factors_divide_the_angle() {
        let mut r = rope(RopeKind::Normal);
        r.freq_factors = Some(vec![2.0; 4]);
        let mut cache = vec![0.0; 8];
        r.cache(4, &mut cache);
        assert!((cache[0] - 2f32.cos()).abs() < 1e-6);
    }
}

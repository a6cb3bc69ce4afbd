//! RMS normalisation.

/// `out = x / sqrt(mean(x²) + eps) * weight`, one row at a time.
///
/// The sum of squares is accumulated in f64, as ggml's `ggml_compute_forward_rms_norm_f32` does,
/// so long rows (8192 wide) do not lose precision against the reference.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    debug_assert!(n > 0 && x.len().is_multiple_of(n) && out.len() == x.len());
    for (row, dst) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((d, &v), &w) in dst.iter_mut().zip(row).zip(weight) {
            *d = v * scale * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rms_after_norm() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let w = vec![1.0f32; 64];
        let mut out = vec![0.0; 64];
        rms_norm(&x, &w, 0.0, &mut out);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / 64.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-5);
    }

    #[test]
    fn weight_scales_each_element_and_rows_are_independent() {
        let x = [3.0f32, 4.0, 0.0, 0.0, 1.0, 1.0];
        let w = [2.0f32, 0.5];
        let mut out = [0.0f32; 6];
        rms_norm(&x, &w, 1e-6, &mut out);
        let s = 1.0 / (12.5f32 + 1e-6).sqrt();
        assert!((out[0] - 3.0 * s * 2.0).abs() < 1e-6);
        assert!((out[1] - 4.0 * s * 0.5).abs() < 1e-6);
        assert_eq!((out[2], out[3]), (0.0, 0.0));
        assert!((out[4] - 2.0).abs() < 1e-5 && (out[5] - 0.5).abs() < 1e-5);
    }
}

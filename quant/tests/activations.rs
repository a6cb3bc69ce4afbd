//! Hand-checked activation quantization: Q8_0/Q8_1 round half away from zero (`roundf`),
//! Q8_K rounds half to even (`nearest_int`) with `d = -max / 127` (negative when the largest
//! magnitude is positive), and all-zero input gives zero scales and no NaN anywhere.

mod common;

use common::{dequantize, quantize};
use hearth_quant::{BlockQ8K, BlockQ8_0, BlockQ8_1, F16Le, GgmlType, Pod, QuantBlock, QK_K};

#[test]
fn q8_0_rounds_half_away_from_zero() {
    // amax = 127 makes d exactly 1, so the quants are roundf of the inputs.
    let mut x = [0f32; 32];
    x[..9].copy_from_slice(&[127.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1.499_999_9, -127.0, 3.0]);
    let mut y = [BlockQ8_0::zeroed()];
    BlockQ8_0::quantize(&x, &mut y).expect("quantize");
    assert_eq!(y[0].d.to_bits(), 0x3c00);
    assert_eq!(&y[0].qs[..9], &[127, 1, -1, 2, 3, -3, 1, -127, 3]);
    assert!(y[0].qs[9..].iter().all(|&q| q == 0));

    let mut y1 = [BlockQ8_1::zeroed()];
    BlockQ8_1::quantize(&x, &mut y1).expect("quantize");
    assert_eq!(y1[0].qs, y[0].qs);
    // s = d * sum(q) = 1 * (127 + 1 - 1 + 2 + 3 - 3 + 1 - 127 + 3) = 6.
    assert_eq!(y1[0].s.to_bits(), F16Le::from_f32(6.0).to_bits());
    assert_eq!(y1[0].s.to_bits(), 0x4600);
}

#[test]
fn q8_0_scale_is_amax_over_127_in_f16() {
    let mut x = [0f32; 32];
    x[0] = 1.0;
    x[1] = 0.25;
    x[2] = -0.3;
    let q = quantize(GgmlType::Q8_0, &x);
    let d = f32::from(half::f16::from_bits(u16::from_le_bytes([q[0], q[1]])));
    assert!((d - 1.0 / 127.0).abs() < 1e-5, "{d}");
    // round(0.25 * 127 = 31.75) = 32, round(-0.3 * 127 = -38.1) = -38.
    assert_eq!([q[2] as i8, q[3] as i8, q[4] as i8], [127, 32, -38]);
}

#[test]
fn q8_k_rounds_half_to_even_and_sums_per_16() {
    // max = -127 makes iscale = -127 / max = 1 and d = 1.
    let mut x = [0f32; QK_K];
    x[..7].copy_from_slice(&[-127.0, 0.5, 1.5, 2.5, -0.5, -1.5, 126.7]);
    x[16] = 5.0;
    let mut y = [BlockQ8K::zeroed()];
    BlockQ8K::quantize(&x, &mut y).expect("quantize");
    assert_eq!(y[0].d, 1.0);
    assert_eq!(&y[0].qs[..7], &[-127, 0, 2, 2, 0, -2, 127]);
    assert_eq!(y[0].qs[16], 5);
    assert_eq!(y[0].bsums[0], -127 + 2 + 2 - 2 + 127);
    assert_eq!(y[0].bsums[1], 5);
    assert!(y[0].bsums[2..].iter().all(|&s| s == 0));

    // A positive max flips every sign: iscale = -1, d = -1.
    let mut x = [0f32; QK_K];
    x[..3].copy_from_slice(&[127.0, 0.5, 1.5]);
    BlockQ8K::quantize(&x, &mut y).expect("quantize");
    assert_eq!(y[0].d, -1.0);
    assert_eq!(&y[0].qs[..3], &[-127, 0, -2]);
    assert_eq!(y[0].bsums[0], -129);
    let mut back = [0f32; QK_K];
    BlockQ8K::dequantize(&y, &mut back);
    assert_eq!(&back[..3], &[127.0, 0.0, 2.0]);
}

#[test]
fn all_zero_input_gives_zero_scales_and_no_nan() {
    let zeros = vec![0f32; 1024];
    for ty in GgmlType::all().filter(|&t| hearth_quant::can_quantize(t)) {
        let q = quantize(ty, &zeros);
        let back = dequantize(ty, &q);
        assert!(back.iter().all(|&v| v == 0.0), "{ty}: {back:?}");
        let act = quantize(hearth_quant::vec_dot_type(ty), &zeros);
        let dot = hearth_quant::vec_dot_row(ty, &q, &act).expect("dot");
        assert_eq!(dot, 0.0, "{ty}");
    }
    let mut y = [BlockQ8_0::zeroed()];
    BlockQ8_0::quantize(&zeros[..32], &mut y).expect("quantize");
    assert_eq!(y[0].d.to_f32(), 0.0);
    assert_eq!(y[0].qs, [0; 32]);
    let mut k = [BlockQ8K::zeroed()];
    k[0].bsums = [7; 16]; // ggml leaves bsums unwritten here; we clear them
    BlockQ8K::quantize(&zeros[..QK_K], &mut k).expect("quantize");
    assert_eq!(k[0].d, 0.0);
    assert_eq!(k[0].qs, [0; QK_K]);
    assert_eq!(k[0].bsums, [0; 16]);
}

#[test]
fn quantize_row_reports_bad_lengths() {
    let x = vec![1.0f32; 64];
    let mut out = vec![0u8; 68];
    assert!(hearth_quant::quantize_row(GgmlType::Q8_0, &x, &mut out).is_ok());
    assert!(hearth_quant::quantize_row(GgmlType::Q8_0, &x, &mut out[..67]).is_err());
    assert!(hearth_quant::quantize_row(GgmlType::Q8_0, &x[..63], &mut out[..34]).is_err());
    let mut k = vec![0u8; 293];
    // Q8_K needs alignment 4: a misaligned output is written through a copy, not refused.
    let start = (k.as_ptr() as usize) % 4;
    let start = if start == 0 { 1 } else { 0 };
    let xs = vec![0.25f32; 256];
    hearth_quant::quantize_row(GgmlType::Q8K, &xs, &mut k[start..start + 292]).expect("copied");
    let back = dequantize(GgmlType::Q8K, &k[start..start + 292]);
    assert!(back.iter().all(|&v| (v - 0.25).abs() < 1e-6));
}

//! Blocks no quantizer would write: random bytes, f16 scales that are inf / NaN / subnormal,
//! extreme nibbles and activations at -128. Nothing may panic (results may be non-finite);
//! wherever the exact answer is finite, the dot must still agree with it.

mod common;

use common::{check_dot, dequantize, fixture, quantize, Rng};
use hearth_quant::{
    blocks_as_bytes, dequantize_row, vec_dot_row, vec_dot_type, BlockQ4K, BlockQ4_0, BlockQ6K,
    BlockQ8K, BlockQ8_0, F16Le, GgmlType, Pod, QuantBlock, QK_K,
};

/// Every type the reference code handles as weights.
fn weight_types() -> Vec<GgmlType> {
    GgmlType::all()
        .filter(|&t| dequantize_row(t, &[], &mut []).is_ok())
        .collect()
}

/// Random Q8_K activations over the whole i8 range, -128 included (which quantize never
/// writes), with `bsums` consistent with `qs` as every producer must keep them.
fn random_q8k(rng: &mut Rng, n_blocks: usize) -> Vec<u8> {
    let mut blocks = vec![BlockQ8K::zeroed(); n_blocks];
    for b in &mut blocks {
        b.d = rng.uniform() * 0.05;
        for q in b.qs.iter_mut() {
            *q = rng.next_u64() as i8;
        }
        for (s, qs) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = qs.iter().map(|&q| i16::from(q)).sum();
        }
    }
    blocks_as_bytes(&blocks).to_vec()
}

/// Activations for `ty` that exercise the full quant range: random bytes for types without
/// derived fields, quantized random floats for Q8_1 (its `s`) and hand-made Q8_K.
fn adversarial_act(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    match vec_dot_type(ty) {
        GgmlType::Q8K => random_q8k(rng, n / QK_K),
        GgmlType::Q8_1 | GgmlType::F32 => quantize(vec_dot_type(ty), &rng.activations(n)),
        act => {
            let n_bytes = act.bytes_for(n as u64).expect("whole blocks") as usize;
            rng.bytes(n_bytes)
        }
    }
}

#[test]
fn random_bytes_never_panic_and_finite_dots_agree() {
    let mut rng = Rng::new(1234);
    for ty in weight_types() {
        let mut compared = 0;
        for round in 0..100 {
            // Two blocks (four floats): few enough f16 fields that most rows have no inf/NaN
            // scale and get compared.
            let n = 2 * ty.block_elems().max(2);
            let n_bytes = ty.bytes_for(n as u64).expect("whole blocks") as usize;
            let weights = rng.bytes(n_bytes);
            let values = dequantize(ty, &weights);
            assert_eq!(values.len(), n);
            let act = adversarial_act(&mut rng, ty, n);
            // Non-finite references are skipped inside check_dot; the call itself must not panic.
            let what = format!("random bytes, round {round}");
            compared += usize::from(check_dot(ty, &weights, &act, 1e-4, &what));
        }
        assert!(
            compared >= 50,
            "{ty}: only {compared} of 100 rows were finite"
        );
    }
}

/// Overwrites every f16 scale field of the fixture blocks of `ty` with `bits`.
fn with_scales(ty: GgmlType, blocks: &mut [u8], bits: u16) {
    // (offset, count) of the f16 fields in each block, from the layouts in blocks.rs.
    let fields: &[usize] = match ty {
        GgmlType::F16 | GgmlType::Bf16 | GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Iq4Nl | GgmlType::Iq4Xs => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    };
    for block in blocks.chunks_exact_mut(ty.block_bytes()) {
        for &off in fields {
            block[off..off + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
}

#[test]
fn special_f16_scales_never_panic() {
    let mut rng = Rng::new(99);
    // inf, -inf, NaN, smallest subnormal, largest subnormal, -0, max finite.
    let specials = [0x7c00u16, 0xfc00, 0x7e00, 0x0001, 0x03ff, 0x8000, 0x7bff];
    for ty in common::fixture_types() {
        let (original, values) = fixture(ty.name());
        for bits in specials {
            let mut blocks = original.clone();
            with_scales(ty, &mut blocks, bits);
            let out = dequantize(ty, &blocks);
            let scale = half::f16::from_bits(bits).to_f32();
            if scale.is_finite() && ty != GgmlType::F16 && ty != GgmlType::Bf16 {
                assert!(out.iter().all(|v| v.is_finite()), "{ty} scale {bits:#06x}");
            }
            let act = quantize(vec_dot_type(ty), &rng.activations(values.len()));
            check_dot(ty, &blocks, &act, 1e-4, &format!("scale {bits:#06x}"));
        }
    }
}

#[test]
fn subnormal_scales_dequantize_exactly() {
    // d = 2^-24 (the smallest f16 subnormal) times small integers is exact in f32.
    let mut b = BlockQ4_0::zeroed();
    b.d = F16Le::from_bits(0x0001);
    b.qs = [0xf0; 16]; // low nibbles 0 -> -8, high nibbles 15 -> 7
    let mut out = [0f32; 32];
    b.dequantize_block(&mut out);
    let tiny = 2f32.powi(-24);
    assert!(out[..16].iter().all(|&v| v == -8.0 * tiny));
    assert!(out[16..].iter().all(|&v| v == 7.0 * tiny));
}

#[test]
fn extreme_quants_and_activations() {
    // Q4_0 at both nibble extremes against Q8_0 activations at -128 / 127.
    let mut w = BlockQ4_0::zeroed();
    w.d = F16Le::from_f32(1.0);
    w.qs = [0x0f; 16]; // elements 0..16: 15 - 8 = 7; 16..32: 0 - 8 = -8
    let mut a = BlockQ8_0::zeroed();
    a.d = F16Le::from_f32(1.0);
    a.qs = [-128; 32];
    a.qs[16..].fill(127);
    let dot = BlockQ4_0::vec_dot(&[w], &[a]);
    assert_eq!(dot, (16 * 7 * -128 + 16 * -8 * 127) as f32);

    // Q6_K with every quant at -32, every scale at -128, against Q8_K at -128: the largest
    // integer sums the generic dot can meet (2^27 per block), which must not overflow i32.
    let mut w6 = BlockQ6K::zeroed();
    w6.d = F16Le::from_f32(1.0);
    w6.scales = [-128; 16];
    let mut act = BlockQ8K::zeroed();
    act.d = 1.0;
    act.qs = [-128; QK_K];
    act.bsums = [-2048; 16];
    let dot = BlockQ6K::vec_dot(&[w6; 4], &[act; 4]);
    assert_eq!(dot, 4.0 * 256.0 * (-128.0 * -32.0 * -128.0));

    // Q4_K with all-ones bytes: every scale and min 63, every quant 15.
    let mut w4 = BlockQ4K::zeroed();
    w4.d = F16Le::from_f32(0.5);
    w4.dmin = F16Le::from_f32(0.25);
    w4.scales = [0xff; 12];
    w4.qs = [0xff; 128];
    let mut values = [0f32; QK_K];
    w4.dequantize_block(&mut values);
    assert!(values.iter().all(|&v| v == 0.5 * 63.0 * 15.0 - 0.25 * 63.0));
    let dot = vec_dot_row(
        GgmlType::Q4K,
        blocks_as_bytes(&[w4]),
        blocks_as_bytes(&[act]),
    )
    .expect("dot");
    assert_eq!(dot, values[0] * -128.0 * 256.0);
}

#[test]
fn quantizers_survive_non_finite_and_extreme_inputs() {
    let n = 512;
    let inputs: Vec<(&str, Vec<f32>)> = vec![
        ("nan", vec![f32::NAN; n]),
        ("inf", vec![f32::INFINITY; n]),
        (
            "-inf mixed",
            (0..n)
                .map(|i| if i % 3 == 0 { f32::NEG_INFINITY } else { 1.0 })
                .collect(),
        ),
        (
            "nan mixed",
            (0..n)
                .map(|i| if i % 7 == 0 { f32::NAN } else { i as f32 })
                .collect(),
        ),
        (
            "huge",
            (0..n)
                .map(|i| if i % 2 == 0 { 3e38 } else { -3e38 })
                .collect(),
        ),
        (
            "subnormal",
            (0..n).map(|i| (i as f32 - 256.0) * 1e-42).collect(),
        ),
        ("constant", vec![0.75; n]),
        (
            "one spike",
            (0..n).map(|i| if i == 77 { 6e4 } else { 1e-3 }).collect(),
        ),
    ];
    for ty in GgmlType::all().filter(|&t| hearth_quant::can_quantize(t)) {
        for (what, x) in &inputs {
            let q = quantize(ty, x);
            let back = dequantize(ty, &q);
            assert_eq!(back.len(), n, "{ty} {what}");
            if matches!(*what, "constant" | "subnormal" | "one spike") {
                assert!(back.iter().all(|v| v.is_finite()), "{ty} {what}");
            }
            let act = quantize(vec_dot_type(ty), x);
            let _ = vec_dot_row(ty, &q, &act).expect("dot");
        }
    }
}

//! The reference dots against the dot of the dequantized rows, independently of any quantizer:
//! fixture weights (real model blocks) and quantized random weights, each against random
//! activations quantized to the type's `vec_dot_type`. The only difference allowed is f32
//! rounding: 1e-4 of the sum of the terms' magnitudes.

mod common;

use common::{check_dot, fixture, fixture_types, quantize, Rng};
use hearth_quant::{
    blocks_from_bytes, vec_dot_row, vec_dot_type, BlockQ4K, BlockQ8K, GgmlType, Pod, QuantBlock,
    QuantError,
};

const REL: f64 = 1e-4;

#[test]
fn fixture_weights_against_random_activations() {
    let mut rng = Rng::new(7);
    for ty in fixture_types() {
        let (weights, values) = fixture(ty.name());
        for round in 0..3 {
            let act = quantize(vec_dot_type(ty), &rng.activations(values.len()));
            check_dot(ty, &weights, &act, REL, &format!("fixture, round {round}"));
        }
    }
}

#[test]
fn quantized_random_weights_against_random_activations() {
    let mut rng = Rng::new(11);
    for ty in GgmlType::all().filter(|&t| hearth_quant::can_quantize(t)) {
        for n in [ty.block_elems().max(32), 4096] {
            let n = n.next_multiple_of(ty.block_elems());
            let weights = quantize(ty, &rng.activations(n));
            let act = quantize(vec_dot_type(ty), &rng.activations(n));
            check_dot(ty, &weights, &act, REL, &format!("random, n = {n}"));
        }
    }
}

/// The typed API, as kernels and generic matmul code use it.
#[test]
fn typed_views_and_trait() {
    fn dot_via_trait<B: QuantBlock>(w: &[u8], a: &[u8]) -> f32 {
        let w: &[B] = blocks_from_bytes(w).expect("weights");
        let a: &[B::VecDot] = blocks_from_bytes(a).expect("activations");
        B::vec_dot(w, a)
    }
    let (weights, values) = fixture("Q4_K");
    let mut rng = Rng::new(3);
    let mut act = vec![BlockQ8K::zeroed(); values.len() / 256];
    BlockQ8K::quantize(&rng.activations(values.len()), &mut act).expect("quantize");
    let act_bytes = hearth_quant::blocks_as_bytes(&act);
    let typed = dot_via_trait::<BlockQ4K>(&weights, act_bytes);
    let by_type = vec_dot_row(GgmlType::Q4K, &weights, act_bytes).expect("dot");
    assert_eq!(typed.to_bits(), by_type.to_bits());
}

#[test]
fn dot_length_errors() {
    let (weights, _) = fixture("Q4_K");
    let act = quantize(GgmlType::Q8K, &vec![0.5; 512]);
    assert!(matches!(
        vec_dot_row(GgmlType::Q4K, &weights[..144], &act),
        Err(QuantError::LengthMismatch { .. })
    ));
    assert!(matches!(
        vec_dot_row(GgmlType::Q4K, &weights[..100], &act),
        Err(QuantError::RaggedBytes { .. })
    ));
    assert!(matches!(
        vec_dot_row(GgmlType::Q4K, &weights[..288], &act[..100]),
        Err(QuantError::RaggedBytes { .. })
    ));
    assert_eq!(
        vec_dot_row(GgmlType::Iq1M, &[], &[]),
        Err(QuantError::Unsupported(GgmlType::Iq1M))
    );
}

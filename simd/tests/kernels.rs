//! Every kernel of every set this CPU runs against the scalar reference (hearth-quant's code).
//!
//! The integer part of each block's dot product is exact in both, so the only difference allowed
//! is the order of the f32 additions: at most 1e-5 of `sum |w_i * a_i|` (computed in f64).

use hearth_quant::{dequantize_row, quantize_row, GgmlType};
use hearth_simd::{available, scalar, MatKernels};

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Roughly normal, with the occasional outlier real activations have.
    fn value(&mut self) -> f32 {
        let u: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        let v = (u - 2.0) * 1.7;
        if self.next() % 97 == 0 {
            v * 40.0
        } else {
            v
        }
    }
}

fn scalar_entry(ty: GgmlType) -> &'static MatKernels {
    scalar::TABLE
        .iter()
        .find(|k| k.ty == ty)
        .expect("scalar entry")
}

/// Byte offsets, within a block, of the f16 scale fields (kept sane in random-byte blocks).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Iq4Nl | GgmlType::Iq4Xs => {
            &[0]
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::Q3K => &[108],
        GgmlType::Q2K => &[80, 82],
        _ => &[],
    }
}

/// A weight row: quantized from floats, or (`raw`) random bytes with sane f16 scales, so every
/// bit pattern of the quants and packed scales is exercised.
fn weight_row(ty: GgmlType, n: usize, raw: bool, rng: &mut Rng) -> Vec<u8> {
    let bytes = ty.bytes_for(n as u64).unwrap() as usize;
    let mut row = vec![0u8; bytes];
    if raw {
        row.iter_mut().for_each(|b| *b = rng.next() as u8);
        for block in row.chunks_exact_mut(ty.block_bytes()) {
            for &off in f16_fields(ty) {
                let h = half::f16::from_f32(((rng.next() % 1000) as f32 + 1.0) * 1e-4);
                block[off..off + 2].copy_from_slice(&h.to_bits().to_le_bytes());
            }
        }
    } else {
        let src: Vec<f32> = (0..n).map(|_| rng.value()).collect();
        quantize_row(ty, &src, &mut row).unwrap();
    }
    row
}

fn check(name: &str, fast: &MatKernels, rng: &mut Rng) {
    let reference = scalar_entry(fast.ty);
    assert_eq!(fast.vec_dot_type, reference.vec_dot_type);
    let act_ty = fast.vec_dot_type;
    for blocks in [1usize, 2, 3, 7, 24] {
        let n = blocks * fast.ty.block_elems();
        for raw in [false, true] {
            if raw && f16_fields(fast.ty).is_empty() {
                continue; // float weights: random bytes would be NaNs
            }
            let w = weight_row(fast.ty, n, raw, rng);
            let x: Vec<f32> = (0..n).map(|_| rng.value()).collect();
            // Activations as both sets produce them, 16-byte aligned as the contract says.
            let act_bytes = act_ty.bytes_for(n as u64).unwrap() as usize;
            let mut buf_ref = vec![0u128; act_bytes.div_ceil(16)];
            let mut buf_fast = vec![0u128; act_bytes.div_ceil(16)];
            let a_ref = &mut bytemuck_bytes(&mut buf_ref)[..act_bytes];
            (reference.quantize_act)(&x, a_ref);
            let a_fast = &mut bytemuck_bytes(&mut buf_fast)[..act_bytes];
            (fast.quantize_act)(&x, a_fast);
            assert_eq!(a_ref, a_fast, "{name} {}: activation quantization", fast.ty);

            let (mut wf, mut af) = (vec![0.0f32; n], vec![0.0f32; n]);
            dequantize_row(fast.ty, &w, &mut wf).unwrap();
            dequantize_row(act_ty, a_ref, &mut af).unwrap();
            let scale: f64 = wf.iter().zip(&af).map(|(a, b)| (a * b).abs() as f64).sum();

            let want = (reference.vec_dot)(&w, a_ref);
            let got = (fast.vec_dot)(&w, a_fast);
            assert!(
                ((got - want) as f64).abs() <= 1e-5 * scale + 1e-30,
                "{name} {} ({blocks} blocks, raw {raw}): {got} vs scalar {want} (scale {scale})",
                fast.ty
            );
        }
    }
}

fn bytemuck_bytes(v: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no padding and any byte pattern is valid for u8; the length is exact.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 16) }
}

#[test]
fn every_set_matches_the_scalar_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sets = available();
    eprintln!(
        "kernel sets on this CPU: {:?}",
        sets.iter().map(|s| s.name).collect::<Vec<_>>()
    );
    for set in sets.into_iter().filter(|s| s.name != "scalar") {
        let mut checked = 0;
        for ty in GgmlType::all() {
            if let Some(k) = set.own(ty) {
                check(set.name, k, &mut rng);
                checked += 1;
            }
        }
        assert!(checked > 0, "{} has no kernels", set.name);
    }
}

#[test]
fn forcing_an_unknown_or_missing_set_is_an_error() {
    assert!(hearth_simd::by_name("scalar").is_ok());
    let err = hearth_simd::by_name("avx9000").unwrap_err();
    assert!(
        err.contains("unknown kernel set") && err.contains("scalar"),
        "{err}"
    );
}

//! Shared helpers for the hearth-quant integration tests: fixture loading, a small
//! deterministic PRNG (no dependency), and ggml's test-quantize-fns data and metrics.

#![allow(dead_code)]

use hearth_quant::GgmlType;

/// The fixture folder, relative to this crate (the tests never read /work/shared).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/quant");

/// The raw blocks and gguf-py's dequantized values of one fixture type.
pub fn fixture(name: &str) -> (Vec<u8>, Vec<f32>) {
    let blocks = std::fs::read(format!("{FIXTURES}/{name}.blocks"))
        .unwrap_or_else(|e| panic!("{name}.blocks: {e}"));
    let raw = std::fs::read(format!("{FIXTURES}/{name}.f32"))
        .unwrap_or_else(|e| panic!("{name}.f32: {e}"));
    assert_eq!(raw.len() % 4, 0, "{name}.f32 is not whole f32s");
    let values = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (blocks, values)
}

/// Every fixture type listed in index.json.
pub fn fixture_types() -> Vec<GgmlType> {
    let index = std::fs::read_to_string(format!("{FIXTURES}/index.json")).expect("index.json");
    let json: serde_json::Value = serde_json::from_str(&index).expect("index.json parses");
    let map = json.as_object().expect("index.json is an object");
    let mut types: Vec<GgmlType> = map
        .keys()
        .map(|k| GgmlType::from_name(k).unwrap_or_else(|| panic!("unknown type {k}")))
        .collect();
    types.sort_by_key(|t| t.id());
    types
}

/// xorshift64*: deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// `n` values roughly like activations: uniform times a few magnitudes, some outliers.
    pub fn activations(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let scale = if i % 97 == 5 { 20.0 } else { 1.0 };
                self.uniform() * scale
            })
            .collect()
    }
}

/// test-quantize-fns `generate_data`: `0.1 + amplitude * cos(i + offset)` in f32.
pub fn generate_data(offset: f32, n: usize, amplitude: f32) -> Vec<f32> {
    (0..n)
        .map(|i| 0.1 + amplitude * (i as f32 + offset).cos())
        .collect()
}

/// test-quantize-fns `array_rmse`: `sqrt(sum of squared differences) / n` (sic: not a mean
/// inside the root; that is ggml's metric and its thresholds are set for it).
pub fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x - y);
            d * d
        })
        .sum();
    (sum.sqrt() as f32) / a.len() as f32
}

/// test-quantize-fns `dot_product`: f32 products summed in f64.
pub fn dot_product(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x * y))
        .sum::<f64>() as f32
}

/// Quantizes `x` to `ty` through the by-type API.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let n = ty.bytes_for(x.len() as u64).expect("whole blocks") as usize;
    let mut out = vec![0u8; n];
    hearth_quant::quantize_row(ty, x, &mut out).unwrap_or_else(|e| panic!("{ty}: {e}"));
    out
}

/// Dequantizes `bytes` of `ty` through the by-type API.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / ty.block_bytes() * ty.block_elems();
    let mut out = vec![0f32; n];
    hearth_quant::dequantize_row(ty, bytes, &mut out).unwrap_or_else(|e| panic!("{ty}: {e}"));
    out
}

/// The exact (f64) value a quantized dot approximates, and the sum of the magnitudes of its
/// terms (the scale its rounding error is measured against).
///
/// For most types that is the dot of the dequantized rows. Q4_1/Q5_1 dot against Q8_1, whose
/// `s = f16(d * sum(q))` stands in for the activation sum in the min term (as in ggml), so for
/// them the min term uses `s`, not the sum of the dequantized activations.
pub fn reference_dot(ty: GgmlType, weights: &[u8], act: &[u8]) -> (f64, f64) {
    use hearth_quant::{blocks_from_bytes, BlockQ4_1, BlockQ5_1, BlockQ8_1};
    let with_s = |dq: Vec<(f32, f32, [u8; 32])>| {
        let a: &[BlockQ8_1] = blocks_from_bytes(act).expect("Q8_1 row");
        let (mut value, mut scale) = (0f64, 0f64);
        for ((d, m, q), y) in dq.iter().zip(a) {
            for (&qi, &ai) in q.iter().zip(&y.qs) {
                let t = f64::from(*d) * f64::from(qi) * f64::from(y.d.to_f32()) * f64::from(ai);
                value += t;
                scale += t.abs();
            }
            let t = f64::from(*m) * f64::from(y.s.to_f32());
            value += t;
            scale += t.abs();
        }
        (value, scale)
    };
    match ty {
        GgmlType::Q4_1 => {
            let w: &[BlockQ4_1] = blocks_from_bytes(weights).expect("Q4_1 row");
            with_s(
                w.iter()
                    .map(|b| (b.d.to_f32(), b.m.to_f32(), b.quants()))
                    .collect(),
            )
        }
        GgmlType::Q5_1 => {
            let w: &[BlockQ5_1] = blocks_from_bytes(weights).expect("Q5_1 row");
            with_s(
                w.iter()
                    .map(|b| (b.d.to_f32(), b.m.to_f32(), b.quants()))
                    .collect(),
            )
        }
        _ => {
            let w = dequantize(ty, weights);
            let a = dequantize(hearth_quant::vec_dot_type(ty), act);
            let terms = w.iter().zip(&a).map(|(&x, &y)| f64::from(x) * f64::from(y));
            terms.fold((0.0, 0.0), |(v, s), t| (v + t, s + t.abs()))
        }
    }
}

/// Asserts that the quantized dot of `weights` and `act` equals [`reference_dot`] within `rel`
/// of the terms' total magnitude. Non-finite references (overflowing scales) only require the
/// dot not to panic; the return value says whether the comparison was made.
pub fn check_dot(ty: GgmlType, weights: &[u8], act: &[u8], rel: f64, what: &str) -> bool {
    let got = hearth_quant::vec_dot_row(ty, weights, act).unwrap_or_else(|e| panic!("{e}"));
    let (want, scale) = reference_dot(ty, weights, act);
    if !want.is_finite() || !scale.is_finite() || scale > f64::from(f32::MAX) {
        return false;
    }
    let err = (f64::from(got) - want).abs();
    assert!(
        err <= rel * scale + 1e-30,
        "{ty} {what}: dot {got}, reference {want}, error {err} > {rel} x {scale}"
    );
    true
}

//! A port of llama.cpp's `tests/test-quantize-fns.cpp`, with its data, metrics and budgets:
//! - `0.1 + 2 cos(i)` over 4096 values must survive quantize -> dequantize with a "total error"
//!   (`sqrt(sum d^2) / n`, ggml's `array_rmse`) below 0.002 (Q2_K 0.0075, Q3_K 0.004);
//! - the quantized dot of that row with `0.1 + 2 cos(i + 1)` (quantized to the `vec_dot_type`)
//!   must be within 0.02 * n of the f32 dot (Q2_K 0.04);
//! - the f32 dot itself within 1e-4 * n for many small lengths.

mod common;

use common::{array_rmse, dequantize, dot_product, generate_data, quantize};
use hearth_quant::{vec_dot_row, vec_dot_type, GgmlType, QuantBlock};

const MAX_QUANTIZATION_REFERENCE_ERROR: f32 = 0.0001;
const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
const MAX_QUANTIZATION_TOTAL_ERROR_2BITS: f32 = 0.0075;
const MAX_QUANTIZATION_TOTAL_ERROR_3BITS: f32 = 0.0040;
const MAX_DOT_PRODUCT_ERROR: f32 = 0.02;
const MAX_DOT_PRODUCT_ERROR_LOWBIT: f32 = 0.04;

const TEST_SIZE: usize = 32 * 128;

/// Every type with a reference quantizer, as ggml's loop over types with `from_float`.
const TYPES: [GgmlType; 16] = [
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
    GgmlType::Iq4Nl,
    GgmlType::Iq4Xs,
];

fn max_total_error(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::Q2K => MAX_QUANTIZATION_TOTAL_ERROR_2BITS,
        GgmlType::Q3K => MAX_QUANTIZATION_TOTAL_ERROR_3BITS,
        _ => MAX_QUANTIZATION_TOTAL_ERROR,
    }
}

/// ggml's budget for its one `nrc == 1` pairing (data1 x data2).
fn max_dot_error(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::Q2K => MAX_DOT_PRODUCT_ERROR_LOWBIT,
        _ => MAX_DOT_PRODUCT_ERROR,
    }
}

/// Our budget for the other three pairings, which ggml runs only for its `nrc == 2` types:
/// Q3_K's data1 x data4 error is 0.0237 (bit-identical to ggml's), so both 2- and 3-bit
/// K-quants get the low-bit budget there.
fn max_dot_error_extra(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::Q2K | GgmlType::Q3K => MAX_DOT_PRODUCT_ERROR_LOWBIT,
        _ => MAX_DOT_PRODUCT_ERROR,
    }
}

/// test-quantize-fns `total_quantization_error`.
fn total_quantization_error(ty: GgmlType, data: &[f32]) -> f32 {
    array_rmse(data, &dequantize(ty, &quantize(ty, data)))
}

/// test-quantize-fns `dot_product_error` with `nrc == 1`: `|dot - ref| / n`.
fn dot_product_error(ty: GgmlType, a: &[f32], b: &[f32]) -> f32 {
    let w = quantize(ty, a);
    let act = quantize(vec_dot_type(ty), b);
    let result = vec_dot_row(ty, &w, &act).expect("dot");
    (result - dot_product(a, b)).abs() / a.len() as f32
}

#[test]
fn vec_dot_f32() {
    for n in [
        1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 193, 255, 1023,
    ] {
        let a = generate_data(0.0, n, 2.0);
        let b = generate_data(1.0, n, 2.0);
        let error = (f32::vec_dot(&a, &b) - dot_product(&a, &b)).abs() / n as f32;
        assert!(error < MAX_QUANTIZATION_REFERENCE_ERROR, "n={n}: {error}");
    }
}

#[test]
fn total_quantization_error_within_ggml_budget() {
    let data = generate_data(0.0, TEST_SIZE, 2.0);
    for ty in TYPES {
        let error = total_quantization_error(ty, &data);
        eprintln!("{:>6} absolute quantization error: {error:.6}", ty.name());
        assert!(error < max_total_error(ty), "{ty}: {error}");
    }
}

#[test]
fn dot_product_error_within_ggml_budget() {
    let data1 = generate_data(0.0, TEST_SIZE, 2.0);
    let data2 = generate_data(1.0, TEST_SIZE, 2.0);
    let data3 = generate_data(3.0, TEST_SIZE, 1.0);
    let data4 = generate_data(4.0, TEST_SIZE, 1.5);
    for ty in TYPES {
        // ggml checks data1 x data2; its nrc == 2 check adds the other pairings of data1/data3
        // with data2/data4.
        let errors = [
            dot_product_error(ty, &data1, &data2),
            dot_product_error(ty, &data3, &data2),
            dot_product_error(ty, &data1, &data4),
            dot_product_error(ty, &data3, &data4),
        ];
        eprintln!("{:>6} dot product errors: {errors:.6?}", ty.name());
        assert!(errors[0] < max_dot_error(ty), "{ty}: {errors:?}");
        for e in &errors[1..] {
            assert!(*e < max_dot_error_extra(ty), "{ty}: {errors:?}");
        }
    }
}

//! Byte-for-byte agreement with ggml itself. `tests/fixtures/quant/golden/` was written by
//! `quant/tools/gen_golden.c`, which links ggml's `ggml-quants.c` and `ggml-cpu/quants.c`:
//! the outputs of `quantize_row_<type>_ref` on two fixed inputs and the f32 bits of the generic
//! `ggml_vec_dot_<type>_<act>_generic`. Our reference code must reproduce them exactly.

mod common;

use common::{fixture, quantize, FIXTURES};
use hearth_quant::{vec_dot_row, vec_dot_type, GgmlType};

fn golden_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/golden/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn golden_f32(name: &str) -> Vec<f32> {
    golden_bytes(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

const QUANTIZED: [&str; 14] = [
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
    "IQ4_NL", "IQ4_XS",
];

#[test]
fn quantizers_match_ggml_ref_byte_for_byte() {
    let inputs = [("x", golden_f32("x.f32")), ("y", golden_f32("y.f32"))];
    for name in QUANTIZED {
        let ty = GgmlType::from_name(name).expect("known type");
        for (which, data) in &inputs {
            let want = golden_bytes(&format!("{name}.{which}.q"));
            let got = quantize(ty, data);
            assert_eq!(got.len(), want.len(), "{name}.{which}: size");
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                let block = i / ty.block_bytes();
                panic!(
                    "{name}.{which}: byte {i} (block {block}, offset {}) is {:#04x}, ggml wrote {:#04x}",
                    i % ty.block_bytes(),
                    got[i],
                    want[i]
                );
            }
        }
    }
}

#[test]
fn dots_match_ggml_generic_bit_for_bit() {
    let x = golden_f32("x.f32");
    let y = golden_f32("y.f32");
    let table = String::from_utf8(golden_bytes("dots.txt")).expect("utf-8");
    let mut checked = 0;
    for line in table.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, which, bits] = parts[..] else {
            panic!("bad line {line:?}")
        };
        let ty = GgmlType::from_name(name).expect("known type");
        let want = f32::from_bits(u32::from_str_radix(bits, 16).expect("hex"));
        let weights = match which {
            "x" => quantize(ty, &x),
            "fixture" => fixture(name).0,
            other => panic!("unknown row kind {other}"),
        };
        let n = weights.len() / ty.block_bytes() * ty.block_elems();
        let act = quantize(vec_dot_type(ty), &y[..n]);
        let got = vec_dot_row(ty, &weights, &act).expect("dot");
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{name} {which}: got {got}, ggml {want}"
        );
        checked += 1;
    }
    assert_eq!(checked, 24);
}

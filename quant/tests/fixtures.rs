//! Dequantization against gguf-py: each `TYPE.blocks` fixture (raw blocks cut from real GGUF
//! files) must dequantize to `TYPE.f32` within 1e-6 of the file's largest magnitude.

mod common;

use common::{dequantize, fixture, fixture_types};
use hearth_quant::GgmlType;

#[test]
fn every_fixture_dequantizes_like_gguf_py() {
    let types = fixture_types();
    assert_eq!(types.len(), 14, "fixture types: {types:?}");
    for ty in types {
        let (blocks, expected) = fixture(ty.name());
        assert_eq!(blocks.len() % ty.block_bytes(), 0, "{ty}: ragged fixture");
        let got = dequantize(ty, &blocks);
        assert_eq!(got.len(), expected.len(), "{ty}: element count");
        let max = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.0, "{ty}: all-zero fixture tests nothing");
        let tol = 1e-6 * max;
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= tol,
                "{ty}: element {i}: got {g}, gguf-py {e} (tolerance {tol})"
            );
        }
    }
}

#[test]
fn fixtures_dequantize_from_any_offset() {
    // Blocks have alignment 1: a view into an mmapped file at an odd offset is fine.
    for ty in [
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::Q5_0,
        GgmlType::Iq4Xs,
    ] {
        let (blocks, expected) = fixture(ty.name());
        let mut shifted = vec![0u8; blocks.len() + 3];
        shifted[3..].copy_from_slice(&blocks);
        assert_eq!(
            dequantize(ty, &shifted[3..]),
            dequantize(ty, &blocks),
            "{ty}"
        );
        assert_eq!(dequantize(ty, &blocks).len(), expected.len());
    }
}

#[test]
fn length_errors_do_not_panic() {
    let (blocks, _) = fixture("Q4_K");
    let mut out = vec![0f32; 256];
    for len in [0usize, 1, 143, 145, 288] {
        let bytes = &blocks[..len.min(blocks.len())];
        let r = hearth_quant::dequantize_row(GgmlType::Q4K, bytes, &mut out);
        assert_eq!(r.is_ok(), len == 144, "len {len}: {r:?}");
    }
    let mut short = vec![0f32; 255];
    assert!(hearth_quant::dequantize_row(GgmlType::Q4K, &blocks[..144], &mut short).is_err());
    // F32 from misaligned bytes is copied, not refused.
    let floats: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut buf = [0u8; 12];
    // One past an aligned address: never aligned for f32.
    let start = buf.as_ptr().align_offset(4) + 1;
    buf[start..start + 8].copy_from_slice(&floats);
    let mut two = [0f32; 2];
    hearth_quant::dequantize_row(GgmlType::F32, &buf[start..start + 8], &mut two).expect("copied");
    assert_eq!(two, [1.5, -2.0]);
}

//! The fuzzing seeds in `fuzz/seeds/`: small valid files from the writer. The committed seeds
//! must keep parsing; `cargo test -p hearth-models --test gguf_seeds -- --ignored` rewrites
//! them after a writer change.

use std::path::PathBuf;

use hearth_models::gguf::{Array, GgufFile, GgufWriter, Value};
use hearth_quant::GgmlType;

fn seeds_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds"))
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut w = GgufWriter::new();
    out.push(("empty_v3.gguf", w.to_bytes().unwrap()));

    w.set_version(2)
        .add("general.architecture", "llama")
        .add("u8", 1u8)
        .add("i8", -1i8)
        .add("u16", 2u16)
        .add("i16", -2i16)
        .add("u32", 3u32)
        .add("i32", -3i32)
        .add("u64", 4u64)
        .add("i64", -4i64)
        .add("f32", 0.5f32)
        .add("f64", 0.25f64)
        .add("bool", true)
        .add("str", "héllo")
        .add("tokens", vec!["a", "b", "Ġc"])
        .add("scores", vec![0.0f32, -1.0])
        .add("types", vec![1i32, 3])
        .add(
            "nested",
            Value::from(vec![Array::from(vec![1u8]), Array::Array(vec![])]),
        );
    out.push(("metadata_v2.gguf", w.to_bytes().unwrap()));

    let mut w = GgufWriter::new();
    w.add("general.architecture", "qwen2")
        .add("qwen2.block_count", 1u32)
        .add_tensor("a.weight", &[32, 2], GgmlType::Q4_0, vec![0x11; 36])
        .add_tensor("b.weight", &[256], GgmlType::Q4K, vec![0x22; 144])
        .add_tensor("norm", &[5], GgmlType::F32, vec![0x33; 20])
        .add_tensor("h", &[3, 1, 1, 2], GgmlType::F16, vec![0x44; 12]);
    out.push(("tensors_v3.gguf", w.to_bytes().unwrap()));

    w.set_alignment(8).set_version(2);
    out.push(("tensors_align8_v2.gguf", w.to_bytes().unwrap()));

    let mut w = GgufWriter::new();
    w.add("split.no", Value::U16(1))
        .add("split.count", Value::U16(2))
        .add("split.tensors.count", 2i32)
        .add_tensor("x", &[32], GgmlType::Q8_0, vec![1; 34]);
    out.push(("split_part.gguf", w.to_bytes().unwrap()));
    out
}

#[test]
fn committed_seeds_parse_and_match_the_writer() {
    for (name, bytes) in seeds() {
        let committed = std::fs::read(seeds_dir().join(name)).unwrap();
        assert_eq!(committed, bytes, "{name} is stale: rerun with --ignored");
        assert!(bytes.len() < 2048, "{name} is not tiny");
        GgufFile::from_bytes(committed).unwrap();
    }
}

#[test]
#[ignore = "rewrites fuzz/seeds/"]
fn write_seeds() {
    std::fs::create_dir_all(seeds_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(seeds_dir().join(name), bytes).unwrap();
    }
}

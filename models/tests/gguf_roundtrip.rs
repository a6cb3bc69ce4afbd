//! Files written by `GgufWriter` read back identically: every value type, nested arrays,
//! versions 2 and 3, several alignments, tensors of several types.

use hearth_models::gguf::{Array, GgufFile, GgufWriter, MetadataError, Value, ValueType};
use hearth_quant::GgmlType;

/// Deterministic filler bytes for tensor data.
fn filler(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One of every scalar type, strings (empty and multi-byte), and arrays of every type.
fn all_values() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::from("llama")),
        ("v.u8", Value::U8(200)),
        ("v.i8", Value::I8(-100)),
        ("v.u16", Value::U16(60000)),
        ("v.i16", Value::I16(-30000)),
        ("v.u32", Value::U32(4_000_000_000)),
        ("v.i32", Value::I32(-2_000_000_000)),
        ("v.u64", Value::U64(u64::MAX)),
        ("v.i64", Value::I64(i64::MIN)),
        ("v.f32", Value::F32(-1.5e-7)),
        ("v.f64", Value::F64(std::f64::consts::PI)),
        ("v.true", Value::Bool(true)),
        ("v.false", Value::Bool(false)),
        ("v.str", Value::from("héllo, 世界 🦀")),
        ("v.empty_str", Value::from("")),
        ("a.u8", Value::from(vec![0u8, 1, 255])),
        ("a.i8", Value::from(vec![-128i8, 0, 127])),
        ("a.u16", Value::from(vec![0u16, 65535])),
        ("a.i16", Value::from(vec![i16::MIN, i16::MAX])),
        ("a.u32", Value::from(vec![1u32, 2, 3])),
        ("a.i32", Value::from(vec![-1i32, 0, 1])),
        ("a.u64", Value::from(vec![u64::MAX, 0])),
        ("a.i64", Value::from(vec![i64::MIN, i64::MAX])),
        ("a.f32", Value::from(vec![0.5f32, -0.25, f32::MAX])),
        ("a.f64", Value::from(vec![1e300f64, -1e-300])),
        ("a.bool", Value::from(vec![true, false, true])),
        (
            "a.str",
            Value::from(vec!["", "a", "Ġthe", "<|end▁of▁sentence|>"]),
        ),
        ("a.empty", Value::from(Vec::<u32>::new())),
        (
            "a.nested",
            Value::from(vec![
                Array::from(vec![1u32, 2]),
                Array::from(vec!["x".to_string()]),
                Array::Array(vec![Array::from(vec![3.0f32]), Array::Array(vec![])]),
                Array::Array(vec![]),
            ]),
        ),
    ]
}

fn writer_with_values(version: u32) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_version(version);
    for (k, v) in all_values() {
        w.add(k, v);
    }
    w
}

#[test]
fn every_value_type_round_trips_in_v2_and_v3() {
    for version in [2, 3] {
        let bytes = writer_with_values(version).to_bytes().unwrap();
        let f = GgufFile::from_bytes(bytes).unwrap();
        assert_eq!(f.version(), version);
        let expected = all_values();
        let got: Vec<_> = f
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(got.len(), expected.len());
        for ((gk, gv), (ek, ev)) in got.iter().zip(&expected) {
            assert_eq!(gk, ek);
            assert_eq!(gv, ev, "value of {ek}");
        }
        assert_eq!(f.metadata().len(), expected.len());
        assert!(f.tensors().is_empty());
        assert_eq!(f.paths(), [std::path::PathBuf::from("<memory>")]);
    }
}

/// Tensors of several types and shapes, padded to `alignment`.
fn tensor_set() -> Vec<(&'static str, Vec<u64>, GgmlType)> {
    vec![
        ("token_embd.weight", vec![64, 3], GgmlType::Q4_0),
        ("blk.0.attn_norm.weight", vec![7], GgmlType::F32),
        ("blk.0.ffn_up.weight", vec![256, 2], GgmlType::Q4K),
        ("blk.0.ffn_down.weight", vec![5, 3, 2], GgmlType::F16),
        ("blk.0.attn_q.weight", vec![32, 1, 2, 2], GgmlType::Q8_0),
        ("blk.0.attn_k.weight", vec![256], GgmlType::Q6K),
        ("empty", vec![32, 0], GgmlType::Q4_1),
        ("scalar", vec![], GgmlType::F32),
        ("bf16", vec![3], GgmlType::Bf16),
    ]
}

fn write_tensors(version: u32, alignment: Option<u32>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut w = GgufWriter::new();
    w.set_version(version).add("general.architecture", "llama");
    if let Some(a) = alignment {
        w.set_alignment(a);
    }
    let mut datas = Vec::new();
    for (i, (name, dims, ty)) in tensor_set().into_iter().enumerate() {
        let n: u64 = dims.iter().product();
        let data = filler(ty.bytes_for(n).unwrap() as usize, i as u8);
        w.add_tensor(name, &dims, ty, data.clone());
        datas.push(data);
    }
    (w.to_bytes().unwrap(), datas)
}

#[test]
fn tensors_round_trip_with_several_alignments() {
    for version in [2, 3] {
        for alignment in [None, Some(1), Some(8), Some(32), Some(64), Some(4096)] {
            let (bytes, datas) = write_tensors(version, alignment);
            let size = bytes.len() as u64;
            let f = GgufFile::from_bytes(bytes).unwrap();
            let align = u64::from(alignment.unwrap_or(32));
            assert_eq!(f.alignment(), align);
            assert_eq!(f.file_size(), size);
            assert_eq!(f.tensors().len(), tensor_set().len());
            for ((t, (name, dims, ty)), data) in f.tensors().iter().zip(tensor_set()).zip(&datas) {
                assert_eq!(t.name, name);
                assert_eq!(t.dims, dims);
                assert_eq!(t.ty, ty);
                assert_eq!(t.part, 0);
                assert_eq!(t.n_bytes(), data.len() as u64);
                assert_eq!(t.offset % align, 0);
                assert_eq!(t.file_offset() % align, 0);
                assert_eq!(f.tensor_data(t), &data[..], "data of {name}");
                assert_eq!(f.tensor(name), Some(t));
            }
            assert!(f.tensor("missing").is_none());
        }
    }
}

#[test]
fn tensor_shape_helpers() {
    let (bytes, _) = write_tensors(3, None);
    let f = GgufFile::from_bytes(bytes).unwrap();
    let t = f.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(
        (t.n_elements(), t.row_len(), t.n_rows(), t.n_bytes()),
        (30, 5, 6, 60)
    );
    let t = f.tensor("blk.0.ffn_up.weight").unwrap();
    assert_eq!(
        (t.n_elements(), t.row_len(), t.n_rows(), t.n_bytes()),
        (512, 256, 2, 288)
    );
    let t = f.tensor("empty").unwrap();
    assert_eq!((t.n_elements(), t.n_bytes(), t.n_rows()), (0, 0, 0));
    assert!(f.tensor_data(t).is_empty());
    let t = f.tensor("scalar").unwrap();
    assert_eq!(
        (t.n_elements(), t.row_len(), t.n_rows(), t.n_bytes()),
        (1, 1, 1, 4)
    );
}

#[test]
fn owned_buffer_is_aligned_like_a_mapping() {
    let (bytes, _) = write_tensors(3, Some(64));
    let f = GgufFile::from_bytes(bytes).unwrap();
    for t in f.tensors() {
        assert_eq!(f.tensor_data(t).as_ptr() as usize % 64, 0, "{}", t.name);
    }
}

#[test]
fn open_maps_a_file_from_disk() {
    let (bytes, datas) = write_tensors(3, None);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf_roundtrip_open.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.paths(), std::slice::from_ref(&path));
    assert_eq!(f.file_size(), bytes.len() as u64);
    for (t, data) in f.tensors().iter().zip(&datas) {
        assert_eq!(f.tensor_data(t), &data[..]);
    }
    let missing = path.with_file_name("gguf_roundtrip_no_such_file.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(
        err.to_string().contains("gguf_roundtrip_no_such_file.gguf"),
        "{err}"
    );
}

#[test]
fn typed_getters_convert_and_report() {
    let mut w = writer_with_values(3);
    w.add("llama.block_count", Value::U16(22))
        .add("llama.rope.freq_base", Value::F64(10000.0))
        .add("big.f64", Value::F64(1e300))
        .add("split.count", Value::U16(1));
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let m = f.metadata();
    assert_eq!(m.architecture(), Ok("llama"));
    assert_eq!(m.arch_u32("block_count"), Ok(22));
    assert_eq!(m.arch_f32("rope.freq_base"), Ok(10000.0));
    assert_eq!(m.arch_opt_u32("context_length"), Ok(None));
    assert_eq!(m.get_u32("v.u8"), Ok(200));
    assert_eq!(m.get_u32("v.u32"), Ok(4_000_000_000));
    assert_eq!(m.get_i64("v.i32"), Ok(-2_000_000_000));
    assert_eq!(m.get_u64("v.u64"), Ok(u64::MAX));
    assert_eq!(m.get_f32("v.f32"), Ok(-1.5e-7));
    assert_eq!(m.get_bool("v.true"), Ok(true));
    assert_eq!(m.get_str("v.str"), Ok("héllo, 世界 🦀"));
    assert_eq!(m.get_f32_array("a.f32").unwrap().len(), 3);
    assert_eq!(m.get_i32_array("a.i32"), Ok(&[-1, 0, 1][..]));
    assert_eq!(m.get_str_array("a.str").unwrap()[2], "Ġthe");
    assert_eq!(
        m.get_array("a.nested").unwrap().elem_type(),
        ValueType::Array
    );
    assert!(m.contains("v.i8") && !m.contains("v.nope"));

    let missing = m.arch_u32("embedding_length").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "missing metadata key `llama.embedding_length`"
    );
    assert_eq!(
        m.get_u32("v.i32"),
        Err(MetadataError::OutOfRange {
            key: "v.i32".into(),
            value: "-2000000000".into()
        })
    );
    assert!(matches!(
        m.get_u32("v.u64"),
        Err(MetadataError::OutOfRange { .. })
    ));
    assert!(matches!(
        m.get_f32("big.f64"),
        Err(MetadataError::OutOfRange { .. })
    ));
    let wrong = m.get_str_array("a.u32").unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "metadata key `a.u32` is array of u32, expected array of string"
    );
    assert!(matches!(
        m.get_u32("v.str"),
        Err(MetadataError::WrongType { .. })
    ));
    assert!(matches!(
        m.get_bool("v.u8"),
        Err(MetadataError::WrongType { .. })
    ));
    // Optional getters: None only when absent.
    assert_eq!(m.get_opt_u32("nope"), Ok(None));
    assert_eq!(m.get_opt_str("v.str"), Ok(Some("héllo, 世界 🦀")));
    assert!(m.get_opt_u32("v.str").is_err());
    assert!(m.get_opt_f32_array("a.i32").is_err());
}

#[test]
fn writer_rejects_inconsistent_tensors() {
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[32], GgmlType::Q4_0, vec![0u8; 17]);
    assert!(w.to_bytes().is_err());
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[31], GgmlType::Q4_0, vec![0u8; 18]);
    assert!(w.to_bytes().is_err());
    let mut w = GgufWriter::new();
    w.set_alignment(13);
    assert!(w.to_bytes().is_err());
}

#[test]
fn writer_add_replaces_existing_key_in_place() {
    let mut w = GgufWriter::new();
    w.add("a", 1u32).add("b", 2u32).add("a", "x");
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let keys: Vec<_> = f
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("a".to_string(), Value::from("x")),
            ("b".to_string(), Value::U32(2))
        ]
    );
}

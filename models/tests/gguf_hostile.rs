//! Hostile and broken files: each must give an error that says what and where, never a panic
//! or a huge allocation. Mirrors the `handcrafted_file_type` list of llama.cpp's
//! `tests/test-gguf.cpp`, plus the checks a Rust reader adds (UTF-8, nesting depth).

use hearth_models::gguf::{
    Array, Encoder, GgufError, GgufErrorKind, GgufFile, GgufWriter, Value, MAX_ARRAY_DEPTH,
};
use hearth_quant::GgmlType;

fn err(bytes: Vec<u8>) -> GgufError {
    let e = GgufFile::from_bytes(bytes).unwrap_err();
    assert_eq!(e.path(), "<memory>");
    e
}

/// Asserts the message names `<memory>`, the offset, and each of `parts`.
fn check(e: &GgufError, offset: Option<u64>, parts: &[&str]) {
    let msg = e.to_string();
    assert_eq!(e.offset(), offset, "{msg}");
    assert!(msg.starts_with("<memory>: "), "{msg}");
    if let Some(o) = offset {
        assert!(msg.contains(&format!("at offset {o}: ")), "{msg}");
    }
    for p in parts {
        assert!(msg.contains(p), "`{msg}` should contain `{p}`");
    }
}

fn header(n_tensors: u64, n_kv: u64) -> Encoder {
    let mut e = Encoder::new();
    e.header(3, n_tensors, n_kv);
    e
}

/// A file with one key/value pair whose value is the raw `value` bytes after type `id`.
fn one_kv(key: &str, id: u32, value: &[u8]) -> Vec<u8> {
    let mut e = header(0, 1);
    e.str(key).u32(id).bytes(value);
    e.buf
}

/// A file with the given tensor infos (name, dims, type id, offset) and `data_len` data bytes.
fn tensors(infos: &[(&str, &[u64], u32, u64)], alignment: Option<u32>, data_len: usize) -> Vec<u8> {
    let mut e = header(infos.len() as u64, u64::from(alignment.is_some()));
    if let Some(a) = alignment {
        e.kv("general.alignment", &Value::U32(a));
    }
    for (name, dims, ty, off) in infos {
        e.tensor_info(name, dims, *ty, *off);
    }
    e.pad(u64::from(alignment.unwrap_or(32)));
    e.bytes(&vec![0u8; data_len]);
    e.buf
}

fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama")
        .add("tokenizer.ggml.tokens", vec!["a", "bc", "déf"])
        .add(
            "n",
            Value::from(vec![Array::from(vec![1u16, 2]), Array::from(vec![true])]),
        )
        .add("f", 0.5f32)
        .add_tensor("a", &[32, 2], GgmlType::Q8_0, vec![7u8; 68])
        .add_tensor("b", &[3], GgmlType::F32, vec![9u8; 12]);
    w.to_bytes().unwrap()
}

#[test]
fn header_bad_magic() {
    let mut e = Encoder::new();
    e.bytes(b"FUGG").u32(3).u64(0).u64(0);
    let e = err(e.buf);
    assert!(matches!(e.kind(), GgufErrorKind::BadMagic(m) if m == b"FUGG"));
    check(&e, Some(0), &["not a GGUF file", "FUGG"]);
}

#[test]
fn header_bad_versions() {
    for (v, text) in [
        (0u32, "bad GGUF version 0"),
        (1, "version 1 is no longer supported"),
        (4, "GGUF version 4 is newer"),
        (0x0300_0000, "big-endian"),
        (0x0200_0000, "big-endian"),
    ] {
        let mut e = Encoder::new();
        e.header(v, 0, 0);
        let e = err(e.buf);
        assert!(matches!(e.kind(), GgufErrorKind::BadVersion(x) if *x == v));
        check(&e, Some(4), &[text]);
    }
    // Versions 2 and 3 are fine.
    for v in [2, 3] {
        let mut e = Encoder::new();
        e.header(v, 0, 0);
        assert_eq!(GgufFile::from_bytes(e.buf).unwrap().version(), v);
    }
}

#[test]
fn header_bad_counts() {
    let e = err(header(u64::MAX, 0).buf);
    assert!(matches!(
        e.kind(),
        GgufErrorKind::TooLarge {
            count: u64::MAX,
            ..
        }
    ));
    check(
        &e,
        Some(8),
        &["tensor count 18446744073709551615", "negative"],
    );
    let e = err(header(1 << 60, 0).buf);
    check(
        &e,
        Some(8),
        &["tensor count 1152921504606846976 cannot fit in a file of 24 bytes"],
    );
    let e = err(header(0, u64::MAX).buf);
    check(
        &e,
        Some(16),
        &["key/value count 18446744073709551615", "negative"],
    );
    let e = err(header(0, 1 << 40).buf);
    check(
        &e,
        Some(16),
        &["key/value count 1099511627776 cannot fit in a file of 24 bytes"],
    );
    // One more tensor than the bytes could describe.
    let mut h = header(2, 0);
    h.bytes(&[0u8; 24]);
    check(&err(h.buf), Some(8), &["tensor count 2 cannot fit"]);
}

#[test]
fn header_only_magic_and_empty_file() {
    check(
        &err(b"GGUF".to_vec()),
        Some(4),
        &["file ends inside the version", "needs 4 bytes but only 0"],
    );
    check(&err(Vec::new()), Some(0), &["file ends inside the magic"]);
    // A header with nothing after it is a valid, empty file (ggml's HEADER_EMPTY).
    let f = GgufFile::from_bytes(header(0, 0).buf).unwrap();
    assert!(f.metadata().is_empty() && f.tensors().is_empty());
}

#[test]
fn kv_bad_key_size() {
    let mut e = header(0, 1);
    e.u64(u64::MAX).bytes(&[b'a'; 40]);
    let e = err(e.buf);
    assert!(matches!(e.kind(), GgufErrorKind::TooLarge { .. }));
    check(
        &e,
        Some(24),
        &[
            "length of metadata key #0 18446744073709551615",
            "40 bytes left",
        ],
    );
}

#[test]
fn kv_empty_and_duplicate_keys() {
    let e = err(one_kv("", 4, &[1, 0, 0, 0]));
    assert!(matches!(e.kind(), GgufErrorKind::EmptyKey { index: 0 }));
    check(&e, Some(24), &["metadata key #0 is empty"]);

    let mut d = header(0, 2);
    d.kv("general.name", &Value::from("a"))
        .kv("general.name", &Value::U8(1));
    let first_len = 24 + 8 + 12 + 4 + 8 + 1;
    let e = err(d.buf);
    assert!(matches!(e.kind(), GgufErrorKind::DuplicateKey(k) if k == "general.name"));
    check(
        &e,
        Some(first_len),
        &["duplicate metadata key `general.name`"],
    );
}

#[test]
fn kv_bad_value_types() {
    let e = err(one_kv("k", 13, &[0; 16]));
    assert!(matches!(
        e.kind(),
        GgufErrorKind::UnknownValueType { id: 13, .. }
    ));
    check(
        &e,
        Some(24 + 9),
        &["metadata key `k` has unknown value type id 13"],
    );
    let e = err(one_kv("k", u32::MAX, &[0; 16]));
    check(&e, Some(33), &["unknown value type id 4294967295"]);
    // An array whose element type is unknown.
    let mut v = 99u32.to_le_bytes().to_vec();
    v.extend(0u64.to_le_bytes());
    check(
        &err(one_kv("arr", 9, &v)),
        Some(24 + 11 + 4),
        &["`arr` has unknown value type id 99"],
    );
}

#[test]
fn kv_huge_lengths_are_errors_not_allocations() {
    // A string value of length u64::MAX.
    let e = err(one_kv("s", 8, &u64::MAX.to_le_bytes()));
    check(
        &e,
        Some(33 + 4),
        &[
            "length of the value of `s` 18446744073709551615",
            "0 bytes left",
        ],
    );
    // An array of 2^60 u32: would need 2^62 bytes.
    let mut v = 4u32.to_le_bytes().to_vec();
    v.extend((1u64 << 60).to_le_bytes());
    v.extend([0u8; 64]);
    let e = err(one_kv("a", 9, &v));
    check(
        &e,
        Some(33 + 8),
        &[
            "length of array `a` of u32 1152921504606846976",
            "64 bytes left",
            "at least 4",
        ],
    );
    // An array of 9 strings with only 64 bytes left: each needs at least 8.
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend(9u64.to_le_bytes());
    v.extend([0u8; 64]);
    check(
        &err(one_kv("a", 9, &v)),
        Some(41),
        &["array `a` of string 9", "at least 8"],
    );
    // An array of u64::MAX nested arrays.
    let mut v = 9u32.to_le_bytes().to_vec();
    v.extend(u64::MAX.to_le_bytes());
    check(
        &err(one_kv("a", 9, &v)),
        Some(41),
        &["array `a` of array 18446744073709551615"],
    );
    // A string inside an array claiming more than is left.
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend(1u64.to_le_bytes());
    v.extend(100u64.to_le_bytes());
    check(
        &err(one_kv("a", 9, &v)),
        Some(49),
        &["string #0 of array `a` 100", "0 bytes left"],
    );
}

#[test]
fn kv_array_nesting_is_bounded() {
    let nest = |depth: usize| {
        let mut a = Array::from(vec![1u8]);
        for _ in 1..depth {
            a = Array::Array(vec![a]);
        }
        let mut e = header(0, 1);
        e.kv("deep", &Value::Array(a));
        e.buf
    };
    let f = GgufFile::from_bytes(nest(MAX_ARRAY_DEPTH)).unwrap();
    assert!(f.metadata().get("deep").is_some());
    let e = err(nest(MAX_ARRAY_DEPTH + 1));
    assert!(matches!(
        e.kind(),
        GgufErrorKind::ArrayTooDeep { depth: 5, .. }
    ));
    check(
        &e,
        Some(24 + 12 + 4 + 12 * 4),
        &["`deep` nests arrays 5 deep"],
    );
    // A long chain of nested array headers is cut off at the limit, not followed.
    let mut e = header(0, 1);
    e.str("d").u32(9);
    for _ in 0..10_000 {
        e.u32(9).u64(1);
    }
    assert!(matches!(
        err(e.buf).kind(),
        GgufErrorKind::ArrayTooDeep { .. }
    ));
}

#[test]
fn strings_must_be_utf8() {
    let mut e = header(0, 1);
    e.u64(2).bytes(&[0xC3, 0x28]).u32(4).u32(1);
    let e = err(e.buf);
    assert!(matches!(e.kind(), GgufErrorKind::InvalidUtf8 { .. }));
    check(&e, Some(32), &["metadata key #0 is not valid UTF-8"]);
    let mut v = 3u64.to_le_bytes().to_vec();
    v.extend([b'a', 0xFF, b'b']);
    check(
        &err(one_kv("s", 8, &v)),
        Some(45),
        &["the value of `s` is not valid UTF-8"],
    );
    let mut e = header(1, 0);
    e.u64(1).bytes(&[0x80]).u32(1).u64(1).u32(0).u64(0);
    check(
        &err(e.buf),
        Some(32),
        &["the name of tensor #0 is not valid UTF-8"],
    );
}

#[test]
fn kv_bad_alignment() {
    for (a, text) in [
        (0u32, "is 0, which is not a power of two"),
        (13, "is 13, which is not a power of two"),
    ] {
        let e = err(tensors(&[("t", &[4], 0, 0)], Some(a), 64));
        assert!(matches!(e.kind(), GgufErrorKind::BadAlignment(_)));
        check(&e, None, &["general.alignment", text]);
    }
    let mut e = header(0, 1);
    e.kv("general.alignment", &Value::I32(32));
    check(
        &err(e.buf),
        None,
        &["general.alignment must be a u32, but is i32"],
    );
    // ggml's CUSTOM_ALIGN cases use 1.
    let f = GgufFile::from_bytes(tensors(
        &[("t", &[3], 0, 0), ("u", &[1], 0, 12)],
        Some(1),
        16,
    ))
    .unwrap();
    assert_eq!(f.alignment(), 1);
    assert_eq!(
        f.tensor("u").unwrap().file_offset(),
        f.tensor("t").unwrap().file_offset() + 12
    );
}

#[test]
fn tensors_bad_n_dims_and_shapes() {
    let e = err(tensors(&[("t", &[1, 1, 1, 1, 1], 0, 0)], None, 4));
    assert!(matches!(e.kind(), GgufErrorKind::BadShape { .. }));
    check(
        &e,
        Some(33),
        &["tensor `t` has 5 dimensions; ggml allows at most 4"],
    );
    let e = err(tensors(&[("t", &[4, u64::MAX], 0, 0)], None, 64));
    check(&e, Some(45), &["tensor `t` dimension 1 is negative (-1)"]);
    // NE_TOO_BIG: 4 * INT32_MAX in each of two dimensions overflows int64.
    let big = 4 * i32::MAX as u64;
    let e = err(tensors(&[("t", &[big, big], 0, 0)], None, 64));
    check(&e, Some(33), &["whose element count overflows"]);
    let e = err(tensors(
        &[("t", &[1 << 32, 1 << 32, 1 << 32], 0, 0)],
        None,
        64,
    ));
    check(&e, Some(33), &["overflows"]);
    // NBYTES_TOO_BIG: 2^62 I64 elements fit int64 but not their 2^65 bytes.
    let e = err(tensors(&[("t", &[1 << 31, 1 << 31], 27, 0)], None, 64));
    check(
        &e,
        Some(53),
        &["tensor `t` of type I64", "size in bytes that overflows"],
    );
    // Rows must be whole blocks.
    let e = err(tensors(&[("t", &[31, 2], 2, 0)], None, 64));
    check(
        &e,
        Some(53),
        &["of type Q4_0 has rows of 31 elements, not a multiple of the block size 32"],
    );
}

#[test]
fn tensors_zero_and_rank_zero_dims_are_fine() {
    // ggml's TENSORS_ZERO_DIM succeeds; a rank-0 tensor holds one element.
    let f =
        GgufFile::from_bytes(tensors(&[("z", &[32, 0], 2, 0), ("s", &[], 0, 0)], None, 4)).unwrap();
    assert_eq!(f.tensor("z").unwrap().n_bytes(), 0);
    assert_eq!(f.tensor("s").unwrap().n_elements(), 1);
}

#[test]
fn tensors_bad_type() {
    for id in [40u32, 4, 31, u32::MAX] {
        let e = err(tensors(&[("w", &[4], id, 0)], None, 64));
        assert!(matches!(e.kind(), GgufErrorKind::UnknownTensorType { id: x, .. } if *x == id));
        check(
            &e,
            Some(45),
            &[&format!("tensor `w` has unknown ggml type id {id}")],
        );
    }
}

#[test]
fn tensors_bad_offsets() {
    let e = err(tensors(&[("t", &[4], 0, u64::MAX)], None, 64));
    assert!(matches!(
        e.kind(),
        GgufErrorKind::BadOffset {
            offset: u64::MAX,
            expected: 0,
            ..
        }
    ));
    check(
        &e,
        Some(24),
        &["tensor `t` has data offset 18446744073709551615, expected 0"],
    );
    // Not following each other: the second starts one alignment unit late, or unaligned.
    let e = err(tensors(&[("a", &[4], 0, 0), ("b", &[4], 0, 64)], None, 128));
    check(
        &e,
        Some(24 + 8 + 1 + 4 + 8 + 4 + 8),
        &["tensor `b` has data offset 64, expected 32"],
    );
    check(
        &err(tensors(&[("a", &[4], 0, 0), ("b", &[4], 0, 16)], None, 64)),
        Some(57),
        &["offset 16, expected 32"],
    );
    // Out of order: same bytes, swapped offsets.
    check(
        &err(tensors(&[("a", &[4], 0, 32), ("b", &[4], 0, 0)], None, 64)),
        Some(24),
        &["offset 32, expected 0"],
    );
    // INCONSISTENT_ALIGN: offsets laid out for alignment 1 in a file of default alignment 32.
    let e = err(tensors(&[("a", &[3], 0, 0), ("b", &[3], 0, 12)], None, 64));
    check(&e, Some(57), &["offset 12, expected 32", "alignment 32"]);
}

#[test]
fn tensors_duplicate_and_long_names() {
    let e = err(tensors(
        &[("my_tensor", &[4], 0, 0), ("my_tensor", &[4], 0, 32)],
        None,
        64,
    ));
    assert!(matches!(e.kind(), GgufErrorKind::BadTensorName(_)));
    check(
        &e,
        Some(24 + 8 + 9 + 4 + 8 + 4 + 8),
        &["duplicate tensor name `my_tensor` (tensor #1)"],
    );
    let long = "x".repeat(64);
    check(
        &err(tensors(&[(&long, &[4], 0, 0)], None, 32)),
        Some(24),
        &["name of 64 bytes; ggml allows at most 63"],
    );
    let ok = "x".repeat(63);
    assert!(GgufFile::from_bytes(tensors(&[(&ok, &[4], 0, 0)], None, 32)).is_ok());
}

#[test]
fn data_not_enough() {
    // DATA_NOT_ENOUGH_DATA: the last tensor's bytes end one byte past the file.
    let ok = tensors(&[("a", &[4], 0, 0), ("b", &[3], 0, 32)], None, 44);
    let data_offset = GgufFile::from_bytes(ok.clone()).unwrap().data_offsets()[0];
    let mut short = ok;
    short.pop();
    let e = err(short);
    assert!(
        matches!(e.kind(), GgufErrorKind::OutOfBounds { end, file_size, .. } if *end == *file_size + 1)
    );
    check(
        &e,
        Some(57),
        &[
            "the data of tensor `b` (12 bytes at data offset 32)",
            &format!("ends at byte {}", data_offset + 44),
        ],
    );
    // DATA_MEM_SIZE_OVERFLOW: two I8 tensors of 0x7FFFFFFFFFFFFFC0 bytes with 32 bytes of data.
    let n = 0x7FFF_FFFF_FFFF_FFC0;
    let e = err(tensors(&[("a", &[n], 24, 0), ("b", &[n], 24, n)], None, 32));
    check(
        &e,
        Some(24),
        &["the data of tensor `a`", "past the end of the file"],
    );
    // TENSORS_NBYTES_PAD_WRAP: 2^64 - 16 bytes of F32, whose padded size would wrap.
    let e = err(tensors(
        &[("w", &[4, (1 << 30) - 1, (1 << 30) + 1], 0, 0)],
        None,
        32,
    ));
    assert!(matches!(e.kind(), GgufErrorKind::OutOfBounds { .. }));
    // The padding up to the data section itself is missing.
    let mut e = header(1, 0);
    e.tensor_info("t", &[0], 0, 0);
    let e = err(e.buf);
    check(
        &e,
        Some(57),
        &["the padding before the data section (alignment 32) ends at byte 64"],
    );
}

#[test]
fn truncated_at_every_offset() {
    let full = small_valid_file();
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    let needed = f
        .tensors()
        .iter()
        .map(|t| t.file_offset() + t.n_bytes())
        .max()
        .unwrap();
    for len in 0..full.len() {
        let r = GgufFile::from_bytes(full[..len].to_vec());
        if (len as u64) < needed {
            let e = r.unwrap_err();
            let at = e.offset().unwrap();
            assert!(at <= len as u64, "len {len}: {e}");
            assert!(e.to_string().contains(&format!("at offset {at}")), "{e}");
        } else {
            // Only the trailing padding after the last tensor is missing: still a whole model.
            assert_eq!(r.unwrap().tensors().len(), 2);
        }
    }
}

/// Cheap deterministic mutation pass (the real fuzzing is `fuzz/`): no input may panic.
#[test]
fn random_corruptions_never_panic() {
    let full = small_valid_file();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut b = full.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = match next() % 3 {
                0 => next() as u8,
                1 => 0xFF,
                _ => b[i] ^ (1 << (next() % 8)),
            };
        }
        if let Ok(f) = GgufFile::from_bytes(b) {
            for t in f.tensors() {
                assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes());
            }
        }
    }
}

//! Any byte sequence given to the GGUF reader yields a file or an error, never a panic, an
//! out-of-bounds read or a runaway allocation. When it yields a file, every metadata value
//! and every tensor's bytes are touched, and the file survives a write/read round trip.
//!
//! Run: `cargo +nightly fuzz run gguf_parse fuzz/seeds -- -max_total_time=300`
//! (seeds are written by `cargo test -p hearth-models --test gguf_seeds -- --ignored`).

#![no_main]

use hearth_models::gguf::{Array, GgufFile, GgufWriter, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut acc = 0u64;
    let m = file.metadata();
    for (key, value) in m.iter() {
        acc = acc
            .wrapping_add(key.len() as u64)
            .wrapping_add(touch(value));
        // The typed getters must agree with the raw value and never panic.
        assert!(m.get(key).is_some());
        let _ = (
            m.get_u32(key),
            m.get_i64(key),
            m.get_f32(key),
            m.get_str(key),
        );
        let _ = (
            m.get_str_array(key),
            m.get_f32_array(key),
            m.get_opt_bool(key),
        );
    }
    let _ = (m.architecture(), m.arch_u32("block_count"));
    for t in file.tensors() {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes());
        assert_eq!(t.row_len().checked_mul(t.n_rows()), Some(t.n_elements()));
        assert_eq!(file.tensor(&t.name), Some(t));
        acc = acc.wrapping_add(bytes.iter().map(|b| u64::from(*b)).sum::<u64>());
    }
    std::hint::black_box(acc);

    // What was accepted can be written back, and writing is then a fixed point.
    let once = GgufWriter::from_gguf(&file)
        .to_bytes()
        .expect("re-encode an accepted file");
    let again = GgufFile::from_bytes(once.clone()).expect("re-read a re-encoded file");
    let twice = GgufWriter::from_gguf(&again)
        .to_bytes()
        .expect("re-encode twice");
    assert_eq!(once, twice);
    assert_eq!(again.tensors().len(), file.tensors().len());
    for (a, b) in again.tensors().iter().zip(file.tensors()) {
        assert_eq!(again.tensor_data(a), file.tensor_data(b));
    }
});

fn touch(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => touch_array(a),
        v => v.as_integer().map_or(1, |i| i as u64),
    }
}

fn touch_array(a: &Array) -> u64 {
    match a {
        Array::String(v) => v.iter().map(|s| s.len() as u64).sum(),
        Array::Array(v) => v.iter().map(touch_array).sum(),
        Array::F32(v) => v.iter().map(|x| x.to_bits() as u64).sum(),
        a => a.len() as u64,
    }
}

//! Split models (`name-0000N-of-0000M.gguf`, gguf-split's layout) open as one model.

use std::path::{Path, PathBuf};

use hearth_models::gguf::{split_file_name, GgufErrorKind, GgufFile, GgufWriter, Value};
use hearth_quant::GgmlType;

/// A fresh, empty folder for one test.
fn folder(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gguf_split_{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Tensors per part: (name, dims, type).
fn layout() -> Vec<Vec<(String, Vec<u64>, GgmlType)>> {
    vec![
        vec![("token_embd.weight".into(), vec![64, 4], GgmlType::Q4_0)],
        vec![
            ("blk.0.attn_q.weight".into(), vec![256, 2], GgmlType::Q4K),
            ("blk.0.attn_norm.weight".into(), vec![9], GgmlType::F32),
        ],
        vec![("output.weight".into(), vec![32, 3], GgmlType::Q8_0)],
    ]
}

fn data_for(name: &str, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8) ^ name.len() as u8).collect()
}

/// Writes the parts like gguf-split: all metadata in part 1, split keys in every part.
/// `tweak(part, writer)` can spoil a part before it is written.
fn write_split(dir: &Path, tweak: impl Fn(u32, &mut GgufWriter)) -> Vec<PathBuf> {
    let parts = layout();
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut paths = Vec::new();
    for (i, tensors) in parts.iter().enumerate() {
        let mut w = GgufWriter::new();
        if i == 0 {
            w.add("general.architecture", "llama")
                .add("llama.block_count", 1u32);
        }
        w.add("split.no", Value::U16(i as u16))
            .add("split.count", Value::U16(parts.len() as u16))
            .add("split.tensors.count", Value::I32(total as i32));
        for (name, dims, ty) in tensors {
            let n = ty.bytes_for(dims.iter().product()).unwrap() as usize;
            w.add_tensor(name, dims, *ty, data_for(name, n));
        }
        tweak(i as u32, &mut w);
        let path = dir.join(split_file_name("model", i as u32, parts.len() as u32));
        w.write_to_file(&path).unwrap();
        paths.push(path);
    }
    paths
}

fn check_model(f: &GgufFile, paths: &[PathBuf]) {
    assert_eq!(f.paths(), paths);
    assert_eq!(f.metadata().architecture(), Ok("llama"));
    assert_eq!(f.metadata().arch_u32("block_count"), Ok(1));
    let sizes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(f.file_size(), sizes);
    let expected: Vec<_> = layout()
        .into_iter()
        .enumerate()
        .flat_map(|(part, ts)| ts.into_iter().map(move |t| (part, t)))
        .collect();
    assert_eq!(f.tensors().len(), expected.len());
    for (part, (name, dims, ty)) in expected {
        let t = f.tensor(&name).unwrap();
        assert_eq!((t.part, &t.dims, t.ty), (part, &dims, ty), "{name}");
        assert_eq!(
            f.tensor_data(t),
            data_for(&name, t.n_bytes() as usize),
            "{name}"
        );
    }
}

#[test]
fn three_parts_open_as_one_model() {
    let dir = folder("three");
    let paths = write_split(&dir, |_, _| {});
    assert!(paths[0].ends_with("model-00001-of-00003.gguf"));
    check_model(&GgufFile::open(&paths[0]).unwrap(), &paths);
    // Any part leads to the whole model.
    check_model(&GgufFile::open(&paths[2]).unwrap(), &paths);
}

#[test]
fn missing_part_names_the_file() {
    let dir = folder("missing");
    let paths = write_split(&dir, |_, _| {});
    std::fs::remove_file(&paths[1]).unwrap();
    let e = GgufFile::open(&paths[0]).unwrap_err();
    assert!(matches!(e.kind(), GgufErrorKind::Split(_)));
    assert_eq!(e.path(), paths[1].display().to_string());
    let msg = e.to_string();
    assert!(
        msg.contains("model-00002-of-00003.gguf: cannot open part 2 of 3"),
        "{msg}"
    );
}

/// Spoils part `i` of a split before it is written.
type Tweak = dyn Fn(u32, &mut GgufWriter);

#[test]
fn inconsistent_split_metadata_is_an_error() {
    let cases: Vec<(&str, Box<Tweak>, &str)> = vec![
        (
            "wrong_no",
            Box::new(|i, w| {
                if i == 2 {
                    w.add("split.no", Value::U16(1));
                }
            }),
            "model-00003-of-00003.gguf: expected part 3 of 3 of a split model, but its metadata says part 2 of 3",
        ),
        (
            "wrong_count",
            Box::new(|i, w| {
                if i == 1 {
                    w.add("split.count", Value::U16(4));
                }
            }),
            "expected part 2 of 3 of a split model, but its metadata says part 2 of 4",
        ),
        (
            "tensor_total",
            Box::new(|i, w| {
                if i == 0 {
                    w.add("split.tensors.count", Value::I32(5));
                }
            }),
            "split.tensors.count is 5, but the parts hold 4 tensors",
        ),
        (
            "duplicate",
            Box::new(|i, w| {
                if i == 2 {
                    w.add_tensor("token_embd.weight", &[4], GgmlType::F32, vec![0u8; 16]);
                }
            }),
            "tensor `token_embd.weight` appears in more than one part",
        ),
        (
            "no_key",
            Box::new(|i, w| {
                if i == 1 {
                    w.add("split.no", "one");
                }
            }),
            "metadata key `split.no` is string, expected an integer",
        ),
    ];
    for (name, tweak, text) in cases {
        let dir = folder(name);
        let paths = write_split(&dir, tweak);
        let e = GgufFile::open(&paths[0]).unwrap_err();
        assert!(matches!(e.kind(), GgufErrorKind::Split(_)), "{name}: {e}");
        assert!(e.to_string().contains(text), "{name}: {e}");
    }
}

#[test]
fn file_name_and_metadata_must_agree() {
    let dir = folder("names");
    let paths = write_split(&dir, |_, _| {});
    let renamed = dir.join("renamed.gguf");
    std::fs::rename(&paths[0], &renamed).unwrap();
    let e = GgufFile::open(&renamed).unwrap_err();
    assert!(
        e.to_string()
            .contains("its name should end in `-00001-of-00003.gguf`"),
        "{e}"
    );

    // A split-looking name without split metadata.
    let lone = dir.join("lone-00001-of-00002.gguf");
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama");
    w.write_to_file(&lone).unwrap();
    let e = GgufFile::open(&lone).unwrap_err();
    assert!(
        e.to_string()
            .contains("part 1 of 2 of a split model, but the file has no split.count"),
        "{e}"
    );

    // split.count = 1 is a whole model.
    let single = dir.join("single-00001-of-00001.gguf");
    w.add("split.count", Value::U16(1))
        .add("split.no", Value::U16(0));
    w.write_to_file(&single).unwrap();
    assert_eq!(GgufFile::open(&single).unwrap().paths(), [single]);
}

#[test]
fn split_names() {
    use hearth_models::gguf::parse_split_name;
    assert_eq!(split_file_name("a/b", 0, 3), "a/b-00001-of-00003.gguf");
    assert_eq!(parse_split_name("x-00002-of-00003.gguf"), Some((1, 3)));
    assert_eq!(parse_split_name("x-00000-of-00003.gguf"), None);
    assert_eq!(parse_split_name("x-of-00003.gguf"), None);
    assert_eq!(parse_split_name("x.gguf"), None);
}

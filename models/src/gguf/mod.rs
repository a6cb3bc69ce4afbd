//! GGUF files: a zero-copy reader over a read-only memory map, and a small writer.
//!
//! [`GgufFile::open`] maps the file (every part of a split model), parses and validates the
//! header, the metadata and every tensor info, and checks that each tensor's bytes lie inside
//! its file before returning. After that, [`GgufFile::tensor_data`] is a plain slice into the
//! mapping: no copy, no further checks.
//!
//! The acceptance rules follow ggml's `gguf.cpp` (versions 2 and 3, little-endian, a power of
//! two alignment, at most 4 dimensions, tensors laid out back to back in info order), with a
//! few additions a Rust reader needs: strings must be UTF-8, counts are checked against the
//! bytes left before any allocation, and array nesting is bounded. See `reader.rs`.
//!
//! # The one risk of mapping
//!
//! A memory map shows the file as it is *now*. If another process truncates the file while it
//! is mapped, touching the vanished pages raises SIGBUS and kills the process; no check done at
//! open time can prevent that. llama.cpp has the same exposure. Model files are not expected to
//! change under a running model, and the speed and memory savings of mapping multi-gigabyte
//! weights are the point, so we accept it (and say so here).

mod error;
mod reader;
mod split;
mod storage;
mod value;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use hearth_quant::GgmlType;

pub use error::{GgufError, GgufErrorKind, MetadataError, MEMORY_PATH};
pub use split::{parse_split_name, split_file_name};
pub use value::{Array, Metadata, Value, ValueType};
pub use writer::{Encoder, GgufWriter};

use reader::{parse_part, ParsedPart};
use storage::Storage;

/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// ggml's `GGML_MAX_NAME`: names must be shorter than this (they live in a `char[64]`).
pub const MAX_TENSOR_NAME: usize = 64;
/// Arrays of arrays deeper than this are rejected, so a hostile file cannot exhaust the stack.
pub const MAX_ARRAY_DEPTH: usize = 4;

/// One tensor's description; its bytes come from [`GgufFile::tensor_data`].
///
/// Only the reader makes these (the private fields keep it so), which is what lets
/// `tensor_data` trust the recorded range.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (the fastest-moving index).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// The offset stored in the file, relative to its part's data section.
    pub offset: u64,
    /// Which part of a split model holds the data (0 for single files).
    pub part: usize,
    n_elements: u64,
    n_bytes: u64,
    /// Absolute offset of the data in the part's file.
    file_offset: u64,
    /// Where the tensor info itself starts, for error messages.
    info_offset: u64,
}

impl TensorInfo {
    /// Product of the dimensions (1 for a rank-0 tensor, 0 if any dimension is 0).
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    /// Size of the data in bytes (whole blocks for quantized types).
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }

    /// Elements per row: `dims[0]`, or 1 for a rank-0 tensor.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension after the first.
    pub fn n_rows(&self) -> u64 {
        // The reader checked that the product of the dimensions, zeros taken as 1, fits an
        // i64, so this cannot overflow; saturating keeps that a non-panicking guarantee.
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |a, d| a.saturating_mul(*d))
    }

    /// Absolute byte offset of the data within its part's file.
    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }
}

// Models are shared between threads (server sessions); keep the file type shareable.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<GgufFile>();
};

/// One mapped (or owned) file of a model.
struct Part {
    path: PathBuf,
    storage: Storage,
    data_offset: u64,
}

/// An opened GGUF model: metadata from the first part, tensors from every part.
pub struct GgufFile {
    version: u32,
    alignment: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    parts: Vec<Part>,
    paths: Vec<PathBuf>,
}

impl GgufFile {
    /// Opens a GGUF file, and all of its parts when it is one part of a split model
    /// (`name-00001-of-00003.gguf` with `split.*` metadata); any part may be given.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        split::open(path.as_ref())
    }

    /// Parses a file held in memory, with the same validation as `open` (split metadata is
    /// kept as metadata, but no other part is looked for). The bytes are copied into a
    /// 64-byte aligned buffer so tensor data is as aligned as it would be in a mapping.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let storage = Storage::owned(&bytes);
        drop(bytes);
        let parsed = parse_part(storage.bytes()).map_err(|e| e.with_path(MEMORY_PATH))?;
        Ok(GgufFile::assemble(vec![(
            PathBuf::from(MEMORY_PATH),
            storage,
            parsed,
        )]))
    }

    /// Puts parsed parts together; the caller has checked that they belong together and that
    /// tensor names are unique across parts.
    fn assemble(parts: Vec<(PathBuf, Storage, ParsedPart)>) -> GgufFile {
        let mut out = GgufFile {
            version: 0,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Metadata::new(),
            tensors: Vec::new(),
            index: HashMap::new(),
            parts: Vec::new(),
            paths: Vec::new(),
        };
        for (i, (path, storage, parsed)) in parts.into_iter().enumerate() {
            if i == 0 {
                out.version = parsed.version;
                out.alignment = parsed.alignment;
                out.metadata = parsed.metadata;
            }
            for mut t in parsed.tensors {
                t.part = i;
                out.index.insert(t.name.clone(), out.tensors.len());
                out.tensors.push(t);
            }
            out.paths.push(path.clone());
            out.parts.push(Part {
                path,
                storage,
                data_offset: parsed.data_offset,
            });
        }
        out
    }

    /// The GGUF version of the (first) file: 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of the (first) file's tensor data.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Every tensor, part by part, each part in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(*self.index.get(name)?)
    }

    /// The tensor's bytes, straight from the mapping; `t.n_bytes()` long.
    ///
    /// # Panics
    ///
    /// If `t` comes from another `GgufFile` and its range is not inside this one. (A
    /// `TensorInfo` from this file always works: its range was checked at open.)
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        match self.try_tensor_data(t) {
            Some(bytes) => bytes,
            None => panic!("tensor `{}` does not belong to this GGUF file", t.name),
        }
    }

    /// Like [`tensor_data`](Self::tensor_data), `None` instead of a panic.
    pub fn try_tensor_data(&self, t: &TensorInfo) -> Option<&[u8]> {
        let part = self.parts.get(t.part)?;
        let start = usize::try_from(t.file_offset).ok()?;
        let end = start.checked_add(usize::try_from(t.n_bytes).ok()?)?;
        part.storage.bytes().get(start..end)
    }

    /// Total size of every part, in bytes.
    pub fn file_size(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.storage.bytes().len() as u64)
            .sum()
    }

    /// The files the model was read from, part 1 first (`<memory>` for `from_bytes`).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Where each part's data section starts (tools and diagnostics).
    pub fn data_offsets(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.data_offset).collect()
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field(
                "paths",
                &self.parts.iter().map(|p| &p.path).collect::<Vec<_>>(),
            )
            .field("version", &self.version)
            .field("metadata_len", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("file_size", &self.file_size())
            .finish()
    }
}

/// Opens and maps one file, and parses it; errors carry the path.
fn open_part(path: &Path) -> Result<(Storage, ParsedPart), GgufError> {
    let shown = path.display().to_string();
    let io_err = |e| GgufError::whole(shown.clone(), GgufErrorKind::Io(e));
    let file = File::open(path).map_err(io_err)?;
    let storage = Storage::map(&file).map_err(io_err)?;
    let parsed = parse_part(storage.bytes()).map_err(|e| e.with_path(&shown))?;
    Ok((storage, parsed))
}

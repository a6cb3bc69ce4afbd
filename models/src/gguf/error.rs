//! Errors of the GGUF reader.
//!
//! A [`GgufError`] says which file (or `<memory>`), where in it (the byte offset of the field
//! that is wrong, when there is one), and what is wrong, so that a user holding a broken
//! download can tell a truncated file from a wrong format from a bug. The [`GgufErrorKind`]
//! carries the structured part for code (and tests) that want to match on it.

use std::fmt;
use std::io;

/// The path shown for files parsed with [`GgufFile::from_bytes`](super::GgufFile::from_bytes).
pub const MEMORY_PATH: &str = "<memory>";

/// Something is wrong with a GGUF file (or it could not be read at all).
#[derive(Debug)]
pub struct GgufError {
    path: String,
    offset: Option<u64>,
    kind: GgufErrorKind,
}

/// What is wrong, without the where.
#[derive(Debug)]
#[non_exhaustive]
pub enum GgufErrorKind {
    /// Opening, sizing or mapping the file failed.
    Io(io::Error),
    /// The first four bytes are not `GGUF`.
    BadMagic([u8; 4]),
    /// Version 0, 1 (GGUFv1), a big-endian file, or a version newer than 3.
    BadVersion(u32),
    /// The file ends in the middle of a field.
    UnexpectedEof { what: String, need: u64, left: u64 },
    /// A count or length read from the file promises more data than the file holds.
    TooLarge {
        what: String,
        count: u64,
        detail: String,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 { what: String },
    /// A metadata key is the empty string.
    EmptyKey { index: u64 },
    /// The same metadata key appears twice.
    DuplicateKey(String),
    /// A metadata value type id that GGUF does not define.
    UnknownValueType { key: String, id: u32 },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    ArrayTooDeep { key: String, depth: usize },
    /// `general.alignment` is not a u32, or is 0 or not a power of two.
    BadAlignment(String),
    /// A tensor name is too long or duplicated.
    BadTensorName(String),
    /// A tensor's rank, shape or size is not acceptable.
    BadShape { tensor: String, detail: String },
    /// A tensor type id that ggml does not define.
    UnknownTensorType { tensor: String, id: u32 },
    /// A tensor's data offset is not where ggml requires it.
    BadOffset {
        tensor: String,
        offset: u64,
        expected: u64,
        alignment: u64,
    },
    /// A tensor's data (or the data section) lies outside the file.
    OutOfBounds {
        what: String,
        end: u64,
        file_size: u64,
    },
    /// The parts of a split model do not fit together.
    Split(String),
}

impl GgufError {
    /// An error with no path yet (the parser fills it in at the top).
    pub(crate) fn at(offset: u64, kind: GgufErrorKind) -> GgufError {
        GgufError {
            path: String::new(),
            offset: Some(offset),
            kind,
        }
    }

    /// An error that is about the file as a whole, not a byte in it.
    pub(crate) fn whole(path: impl Into<String>, kind: GgufErrorKind) -> GgufError {
        GgufError {
            path: path.into(),
            offset: None,
            kind,
        }
    }

    pub(crate) fn with_path(mut self, path: &str) -> GgufError {
        if self.path.is_empty() {
            self.path = path.to_string();
        }
        self
    }

    /// The file the error is about, as given to `open`, or `<memory>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The byte offset of the offending field, when the error is about one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// What is wrong.
    pub fn kind(&self) -> &GgufErrorKind {
        &self.kind
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(offset) = self.offset {
            write!(f, ": at offset {offset}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            GgufErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for GgufErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufErrorKind::*;
        match self {
            Io(e) => write!(f, "{e}"),
            BadMagic(m) => write!(
                f,
                "not a GGUF file: magic is {:?} ({}), expected \"GGUF\"",
                String::from_utf8_lossy(m),
                hex(m)
            ),
            BadVersion(v) => write_version(f, *v),
            UnexpectedEof { what, need, left } => write!(
                f,
                "file ends inside {what}: it needs {need} bytes but only {left} are left"
            ),
            TooLarge {
                what,
                count,
                detail,
            } => write!(f, "{what} {count} {detail}"),
            InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            EmptyKey { index } => write!(f, "metadata key #{index} is empty"),
            DuplicateKey(key) => write!(f, "duplicate metadata key `{key}`"),
            UnknownValueType { key, id } => {
                write!(f, "metadata key `{key}` has unknown value type id {id}")
            }
            ArrayTooDeep { key, depth } => write!(
                f,
                "metadata key `{key}` nests arrays {depth} deep, more than the {} allowed",
                super::MAX_ARRAY_DEPTH
            ),
            BadAlignment(detail) => write!(f, "general.alignment {detail}"),
            BadTensorName(detail) => f.write_str(detail),
            BadShape { tensor, detail } => write!(f, "tensor `{tensor}` {detail}"),
            UnknownTensorType { tensor, id } => {
                write!(f, "tensor `{tensor}` has unknown ggml type id {id}")
            }
            BadOffset {
                tensor,
                offset,
                expected,
                alignment,
            } => write!(
                f,
                "tensor `{tensor}` has data offset {offset}, expected {expected} (ggml requires \
                 each tensor to start where the previous one ends, padded to the alignment {alignment})"
            ),
            OutOfBounds {
                what,
                end,
                file_size,
            } => write!(
                f,
                "{what} ends at byte {end}, past the end of the file ({file_size} bytes): \
                 the file is truncated or corrupt"
            ),
            Split(detail) => f.write_str(detail),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_version(f: &mut fmt::Formatter<'_>, v: u32) -> fmt::Result {
    if v == 0 {
        write!(f, "bad GGUF version 0")
    } else if v & 0xFFFF == 0 {
        // ggml's own test: a big-endian v3 file reads as 0x03000000 on a little-endian host.
        write!(
            f,
            "GGUF version {v} ({v:#010x}) is extremely large: this looks like a big-endian file, \
             and only little-endian GGUF files are supported"
        )
    } else if v == 1 {
        write!(
            f,
            "GGUF version 1 is no longer supported (convert it to version 3)"
        )
    } else {
        write!(
            f,
            "GGUF version {v} is newer than the versions this reader knows (2 and 3)"
        )
    }
}

/// A metadata value asked for by one of [`Metadata`](super::Metadata)'s typed getters is
/// absent, of another type, or does not fit the type asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("missing metadata key `{key}`")]
    Missing { key: String },
    #[error("metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("metadata key `{key}` has value {value}, which does not fit the type asked for")]
    OutOfRange { key: String, value: String },
}

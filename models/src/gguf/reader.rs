//! Parsing one GGUF file (one part of a split model) from a byte slice.
//!
//! The rules are ggml's (`ggml/src/gguf.cpp`, `gguf_init_from_reader`), plus what a Rust
//! reader needs on top: every count is checked against the bytes left before anything is
//! allocated for it, strings must be UTF-8, and every tensor's bytes are checked to lie inside
//! the file before the file is handed out. Nothing here indexes or does arithmetic unchecked,
//! so any byte sequence gives a value or an error, never a panic.

use std::collections::HashSet;

use hearth_quant::GgmlType;

use super::error::{GgufError, GgufErrorKind};
use super::value::{Array, Metadata, Value, ValueType};
use super::{TensorInfo, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_TENSOR_NAME};

/// The fixed header: magic, version, tensor count, key/value count.
const HEADER_SIZE: u64 = 4 + 4 + 8 + 8;
/// The fewest bytes one key/value pair can take: key length, key type, a one-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// The fewest bytes one tensor info can take: name length, n_dims = 0, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

/// What one file holds, before split parts are put together.
#[derive(Debug)]
pub(crate) struct ParsedPart {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// A read position in the file's bytes; every read checks the bytes left.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Result<T> = std::result::Result<T, GgufError>;

impl<'a> Cursor<'a> {
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn left(&self) -> u64 {
        self.buf.len().saturating_sub(self.pos) as u64
    }

    /// The next `n` bytes; `what` names the field for the error.
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let eof = || {
            GgufError::at(
                self.pos(),
                GgufErrorKind::UnexpectedEof {
                    what: what(),
                    need: n,
                    left: self.left(),
                },
            )
        };
        let n_usize = usize::try_from(n).map_err(|_| eof())?;
        let end = self.pos.checked_add(n_usize).ok_or_else(eof)?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(eof)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let start = self.pos();
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.left() {
            return Err(GgufError::at(
                start,
                GgufErrorKind::TooLarge {
                    what: format!("length of {}", what()),
                    count: len,
                    detail: format!("is more than the {} bytes left in the file", self.left()),
                },
            ));
        }
        let bytes_at = self.pos();
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| GgufError::at(bytes_at, GgufErrorKind::InvalidUtf8 { what: what() }))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what is left,
    /// before anything is allocated for them.
    fn check_count(&self, at: u64, what: &str, count: u64, min_size: u64) -> Result<()> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|need| need <= self.left());
        if fits {
            return Ok(());
        }
        Err(GgufError::at(
            at,
            GgufErrorKind::TooLarge {
                what: what.to_string(),
                count,
                detail: format!(
                    "cannot fit in the {} bytes left in the file (each takes at least {min_size})",
                    self.left()
                ),
            },
        ))
    }
}

/// Parses and validates one whole file.
pub(crate) fn parse_part(buf: &[u8]) -> Result<ParsedPart> {
    let mut cur = Cursor { buf, pos: 0 };
    let file_size = buf.len() as u64;
    let (version, n_tensors, n_kv) = read_header(&mut cur, file_size)?;
    let metadata = read_metadata(&mut cur, n_kv)?;
    let alignment = alignment_of(&metadata)?;
    let mut tensors = read_tensor_infos(&mut cur, n_tensors)?;
    // ggml pads to the data section only when there are tensors; with none, it starts right
    // after the infos (and nothing reads it).
    let data_offset = if tensors.is_empty() {
        cur.pos()
    } else {
        let aligned = align_up(cur.pos(), alignment).unwrap_or(u64::MAX);
        if aligned > file_size {
            return Err(GgufError::at(
                cur.pos(),
                GgufErrorKind::OutOfBounds {
                    what: format!("the padding before the data section (alignment {alignment})"),
                    end: aligned,
                    file_size,
                },
            ));
        }
        aligned
    };
    place_tensors(&mut tensors, alignment, data_offset, file_size)?;
    Ok(ParsedPart {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn read_header(cur: &mut Cursor<'_>, file_size: u64) -> Result<(u32, u64, u64)> {
    let magic: [u8; 4] = cur.array(&|| "the magic".into())?;
    if &magic != b"GGUF" {
        return Err(GgufError::at(0, GgufErrorKind::BadMagic(magic)));
    }
    let version = cur.u32(&|| "the version".into())?;
    // Same order as ggml: 0 is bad, a zero low half is the other endianness, 1 is retired.
    if version == 0 || version & 0xFFFF == 0 || version == 1 || version > 3 {
        return Err(GgufError::at(4, GgufErrorKind::BadVersion(version)));
    }
    let n_tensors = cur.u64(&|| "the tensor count".into())?;
    let n_kv = cur.u64(&|| "the metadata key/value count".into())?;
    let room = file_size.saturating_sub(HEADER_SIZE);
    for (at, what, count, min) in [
        (8, "tensor count", n_tensors, MIN_TENSOR_INFO_SIZE),
        (16, "metadata key/value count", n_kv, MIN_KV_SIZE),
    ] {
        let negative = i64::try_from(count).is_err();
        if negative || count.checked_mul(min).is_none_or(|need| need > room) {
            let detail = if negative {
                format!("(as signed: {}) is negative", count as i64)
            } else {
                format!("cannot fit in a file of {file_size} bytes")
            };
            return Err(GgufError::at(
                at,
                GgufErrorKind::TooLarge {
                    what: what.into(),
                    count,
                    detail,
                },
            ));
        }
    }
    Ok((version, n_tensors, n_kv))
}

fn read_metadata(cur: &mut Cursor<'_>, n_kv: u64) -> Result<Metadata> {
    let mut metadata = Metadata::new();
    for index in 0..n_kv {
        let at = cur.pos();
        let key = cur.string(&|| format!("metadata key #{index}"))?;
        if key.is_empty() {
            return Err(GgufError::at(at, GgufErrorKind::EmptyKey { index }));
        }
        // Before the value, as ggml does: the key is what is wrong, whatever follows it.
        if metadata.contains(&key) {
            return Err(GgufError::at(at, GgufErrorKind::DuplicateKey(key)));
        }
        let type_at = cur.pos();
        let id = cur.u32(&|| format!("the type of metadata key `{key}`"))?;
        let ty = value_type(type_at, &key, id)?;
        let value = read_value(cur, ty, &key)?;
        // Cannot fail: the key was checked absent above.
        let _ = metadata.insert(key, value);
    }
    Ok(metadata)
}

fn value_type(at: u64, key: &str, id: u32) -> Result<ValueType> {
    ValueType::from_id(id).ok_or_else(|| {
        GgufError::at(
            at,
            GgufErrorKind::UnknownValueType {
                key: key.to_string(),
                id,
            },
        )
    })
}

fn read_value(cur: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<Value> {
    let what = || format!("the value of `{key}`");
    Ok(match ty {
        ValueType::U8 => Value::U8(u8::from_le_bytes(cur.array(&what)?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(cur.array(&what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(cur.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(cur.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(&what)?)),
        // ggml reads an int8 and takes any non-zero byte as true.
        ValueType::Bool => Value::Bool(cur.array::<1>(&what)?[0] != 0),
        ValueType::String => Value::String(cur.string(&what)?),
        ValueType::Array => Value::Array(read_array(cur, key, 1)?),
    })
}

/// Reads `n` fixed-size numbers with `from_le_bytes`.
macro_rules! numbers {
    ($cur:expr, $n:expr, $t:ty, $what:expr) => {{
        const SIZE: usize = std::mem::size_of::<$t>();
        // check_count has bounded n * SIZE by the bytes left; saturating keeps it explicit.
        let bytes = $cur.take($n.saturating_mul(SIZE as u64), $what)?;
        bytes
            .chunks_exact(SIZE)
            .map(|c| {
                let mut a = [0u8; SIZE];
                a.copy_from_slice(c);
                <$t>::from_le_bytes(a)
            })
            .collect()
    }};
}

/// An array (element type, count, elements); `depth` is 1 for a top-level array.
fn read_array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array> {
    let at = cur.pos();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::at(
            at,
            GgufErrorKind::ArrayTooDeep {
                key: key.to_string(),
                depth,
            },
        ));
    }
    let id = cur.u32(&|| format!("the element type of array `{key}`"))?;
    let ty = value_type(at, key, id)?;
    let len_at = cur.pos();
    let n = cur.u64(&|| format!("the length of array `{key}`"))?;
    let what = format!("length of array `{key}` of {ty}");
    cur.check_count(len_at, &what, n, ty.min_encoded_size())?;
    let what = || format!("the elements of array `{key}`");
    Ok(match ty {
        ValueType::U8 => Array::U8(numbers!(cur, n, u8, &what)),
        ValueType::I8 => Array::I8(numbers!(cur, n, i8, &what)),
        ValueType::U16 => Array::U16(numbers!(cur, n, u16, &what)),
        ValueType::I16 => Array::I16(numbers!(cur, n, i16, &what)),
        ValueType::U32 => Array::U32(numbers!(cur, n, u32, &what)),
        ValueType::I32 => Array::I32(numbers!(cur, n, i32, &what)),
        ValueType::U64 => Array::U64(numbers!(cur, n, u64, &what)),
        ValueType::I64 => Array::I64(numbers!(cur, n, i64, &what)),
        ValueType::F32 => Array::F32(numbers!(cur, n, f32, &what)),
        ValueType::F64 => Array::F64(numbers!(cur, n, f64, &what)),
        ValueType::Bool => Array::Bool(cur.take(n, &what)?.iter().map(|b| *b != 0).collect()),
        ValueType::String => {
            // check_count made sure 8 bytes per string are there, so this is bounded.
            let mut v = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for i in 0..n {
                v.push(cur.string(&|| format!("string #{i} of array `{key}`"))?);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for _ in 0..n {
                v.push(read_array(cur, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}

/// `general.alignment`: ggml wants a u32 power of two; 32 when absent.
fn alignment_of(metadata: &Metadata) -> Result<u64> {
    let value = match metadata.get("general.alignment") {
        None => return Ok(DEFAULT_ALIGNMENT),
        Some(v) => v,
    };
    let problem = match value {
        Value::U32(a) if a.is_power_of_two() => return Ok(u64::from(*a)),
        Value::U32(a) => format!("is {a}, which is not a power of two"),
        v => format!("must be a u32, but is {}", v.type_description()),
    };
    Err(GgufError::whole(
        String::new(),
        GgufErrorKind::BadAlignment(problem),
    ))
}

fn read_tensor_infos(cur: &mut Cursor<'_>, n_tensors: u64) -> Result<Vec<TensorInfo>> {
    // read_header checked n_tensors * MIN_TENSOR_INFO_SIZE against the file size.
    let mut tensors = Vec::with_capacity(usize::try_from(n_tensors).unwrap_or(0));
    let mut seen = HashSet::new();
    for i in 0..n_tensors {
        let at = cur.pos();
        let t = read_tensor_info(cur, i)?;
        if !seen.insert(t.name.clone()) {
            let msg = format!("duplicate tensor name `{}` (tensor #{i})", t.name);
            return Err(GgufError::at(at, GgufErrorKind::BadTensorName(msg)));
        }
        tensors.push(t);
    }
    Ok(tensors)
}

fn read_tensor_info(cur: &mut Cursor<'_>, index: u64) -> Result<TensorInfo> {
    let at = cur.pos();
    let name = cur.string(&|| format!("the name of tensor #{index}"))?;
    if name.len() >= MAX_TENSOR_NAME {
        let msg = format!(
            "tensor #{index} has a name of {} bytes; ggml allows at most {}",
            name.len(),
            MAX_TENSOR_NAME - 1
        );
        return Err(GgufError::at(at, GgufErrorKind::BadTensorName(msg)));
    }
    let shape_err = |at: u64, detail: String| {
        GgufError::at(
            at,
            GgufErrorKind::BadShape {
                tensor: name.clone(),
                detail,
            },
        )
    };
    let dims_at = cur.pos();
    let n_dims = cur.u32(&|| format!("the rank of tensor `{name}`"))?;
    if n_dims as usize > MAX_DIMS {
        return Err(shape_err(
            dims_at,
            format!("has {n_dims} dimensions; ggml allows at most {MAX_DIMS}"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for j in 0..n_dims {
        let dim_at = cur.pos();
        let d = cur.u64(&|| format!("dimension {j} of tensor `{name}`"))?;
        if i64::try_from(d).is_err() {
            return Err(shape_err(
                dim_at,
                format!("dimension {j} is negative ({})", d as i64),
            ));
        }
        dims.push(d);
    }
    // ggml keeps element counts (and row counts) in an int64_t. Zero dimensions count as 1
    // here, stricter than ggml, so that no partial product (rows, planes) can overflow
    // either: ggml accepts [0, 2^40, 2^40], whose row count does not fit.
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul((*d).max(1)))
        .filter(|n| i64::try_from(*n).is_ok())
        .map(|_| dims.iter().product::<u64>())
        .ok_or_else(|| {
            shape_err(
                dims_at,
                format!("has shape {dims:?}, whose element count overflows a 64-bit integer"),
            )
        })?;
    let type_at = cur.pos();
    let id = cur.u32(&|| format!("the type of tensor `{name}`"))?;
    let ty = GgmlType::try_from(id).map_err(|_| {
        GgufError::at(
            type_at,
            GgufErrorKind::UnknownTensorType {
                tensor: name.clone(),
                id,
            },
        )
    })?;
    let row_len = dims.first().copied().unwrap_or(1);
    if !ty.fits_row(row_len) {
        let detail = format!(
            "of type {ty} has rows of {row_len} elements, not a multiple of the block size {}",
            ty.block_elems()
        );
        return Err(shape_err(type_at, detail));
    }
    let n_bytes = ty.bytes_for(n_elements).ok_or_else(|| {
        shape_err(
            type_at,
            format!("of type {ty} and shape {dims:?} has a size in bytes that overflows"),
        )
    })?;
    let offset = cur.u64(&|| format!("the data offset of tensor `{name}`"))?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        part: 0,
        n_elements,
        n_bytes,
        file_offset: 0,
        info_offset: at,
    })
}

/// Rounds `x` up to a multiple of `align` (a power of two), `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(x.checked_add(mask)? & !mask)
}

/// Checks every tensor's offset the way ggml does (each starts where the previous one ends,
/// padded to the alignment), then that its bytes lie inside the file, and records where.
fn place_tensors(
    tensors: &mut [TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_size: u64,
) -> Result<()> {
    let mut expected = 0u64;
    for t in tensors.iter_mut() {
        if t.offset % alignment != 0 || t.offset != expected {
            return Err(GgufError::at(
                t.info_offset,
                GgufErrorKind::BadOffset {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    expected,
                    alignment,
                },
            ));
        }
        let oob = |end: u64| {
            GgufError::at(
                t.info_offset,
                GgufErrorKind::OutOfBounds {
                    what: format!(
                        "the data of tensor `{}` ({} bytes at data offset {})",
                        t.name, t.n_bytes, t.offset
                    ),
                    end,
                    file_size,
                },
            )
        };
        let start = data_offset
            .checked_add(t.offset)
            .ok_or_else(|| oob(u64::MAX))?;
        let end = start.checked_add(t.n_bytes).ok_or_else(|| oob(u64::MAX))?;
        if end > file_size {
            return Err(oob(end));
        }
        t.file_offset = start;
        let padded = align_up(t.n_bytes, alignment).ok_or_else(|| oob(u64::MAX))?;
        // `end` fits in the file, so the sum of padded sizes stays below file_size + alignment.
        expected = expected.checked_add(padded).ok_or_else(|| oob(u64::MAX))?;
    }
    Ok(())
}

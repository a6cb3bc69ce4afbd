//! Writing GGUF files: [`GgufWriter`] for well-formed files (tests, tools, split parts), and
//! the [`Encoder`] under it for tests that need to craft deliberately broken ones.

use std::io;
use std::path::Path;

use hearth_quant::GgmlType;

use super::reader::align_up;
use super::value::{Array, Value};
use super::{GgufFile, DEFAULT_ALIGNMENT, MAX_DIMS};

/// Appends GGUF primitives, little-endian, with no validation at all.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// The header: magic, version, tensor count, key/value count.
    pub fn header(&mut self, version: u32, n_tensors: u64, n_kv: u64) -> &mut Self {
        self.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv)
    }

    /// A key/value pair: key, type id, value.
    pub fn kv(&mut self, key: &str, value: &Value) -> &mut Self {
        self.str(key).u32(value.value_type().id()).value(value)
    }

    /// A value without its type id.
    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::U8(x) => self.bytes(&x.to_le_bytes()),
            Value::I8(x) => self.bytes(&x.to_le_bytes()),
            Value::U16(x) => self.bytes(&x.to_le_bytes()),
            Value::I16(x) => self.bytes(&x.to_le_bytes()),
            Value::U32(x) => self.bytes(&x.to_le_bytes()),
            Value::I32(x) => self.bytes(&x.to_le_bytes()),
            Value::U64(x) => self.bytes(&x.to_le_bytes()),
            Value::I64(x) => self.bytes(&x.to_le_bytes()),
            Value::F32(x) => self.bytes(&x.to_le_bytes()),
            Value::F64(x) => self.bytes(&x.to_le_bytes()),
            Value::Bool(x) => self.bytes(&[u8::from(*x)]),
            Value::String(s) => self.str(s),
            Value::Array(a) => self.array(a),
        }
    }

    /// An array: element type id, length, elements.
    pub fn array(&mut self, a: &Array) -> &mut Self {
        self.u32(a.elem_type().id()).u64(a.len() as u64);
        macro_rules! each {
            ($v:expr) => {{
                for x in $v {
                    self.bytes(&x.to_le_bytes());
                }
            }};
        }
        match a {
            Array::U8(v) => each!(v),
            Array::I8(v) => each!(v),
            Array::U16(v) => each!(v),
            Array::I16(v) => each!(v),
            Array::U32(v) => each!(v),
            Array::I32(v) => each!(v),
            Array::U64(v) => each!(v),
            Array::I64(v) => each!(v),
            Array::F32(v) => each!(v),
            Array::F64(v) => each!(v),
            Array::Bool(v) => each!(v.iter().map(|b| u8::from(*b))),
            Array::String(v) => v.iter().for_each(|s| {
                self.str(s);
            }),
            Array::Array(v) => v.iter().for_each(|a| {
                self.array(a);
            }),
        }
        self
    }

    /// A tensor info: name, rank, dims, type id, data offset.
    pub fn tensor_info(
        &mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        offset: u64,
    ) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        dims.iter().for_each(|d| {
            self.u64(*d);
        });
        self.u32(type_id).u64(offset)
    }

    /// Zero bytes up to the next multiple of `align` (nothing if `align` is 0).
    pub fn pad(&mut self, align: u64) -> &mut Self {
        let len = self.buf.len() as u64;
        let target = align_up(len, align).unwrap_or(len);
        self.buf.resize(target as usize, 0);
        self
    }
}

/// A tensor waiting to be written.
#[derive(Clone, Debug)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a valid GGUF file in memory: metadata in insertion order, then tensor infos, then
/// the data, each tensor padded to the alignment (ggml's layout).
#[derive(Clone, Debug)]
pub struct GgufWriter {
    version: u32,
    kv: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl GgufWriter {
    /// Version 3, default alignment (32), nothing else.
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            kv: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version written (2 and 3 are the valid ones; others are written as given).
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Sets `general.alignment` (a u32 power of two).
    pub fn set_alignment(&mut self, alignment: u32) -> &mut Self {
        self.add("general.alignment", Value::U32(alignment))
    }

    /// Adds a key, or replaces its value in place if already present (as `gguf_set_val_*`).
    pub fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kv.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor; `data` must be exactly the tensor's size (checked when writing).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data: data.into(),
        });
        self
    }

    /// A writer that reproduces `file`'s version, metadata (in order) and tensors (data
    /// copied), for tools that rewrite a model and for round-trip checks.
    pub fn from_gguf(file: &GgufFile) -> GgufWriter {
        let mut w = GgufWriter::new();
        w.set_version(file.version());
        for (k, v) in file.metadata().iter() {
            w.add(k, v.clone());
        }
        for t in file.tensors() {
            w.add_tensor(&t.name, &t.dims, t.ty, file.tensor_data(t));
        }
        w
    }

    /// The alignment the file will use.
    fn alignment(&self) -> io::Result<u64> {
        match self.kv.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok(u64::from(*a)),
            Some((_, v)) => Err(invalid(format!(
                "general.alignment must be a u32 power of two, not {v:?}"
            ))),
        }
    }

    /// The byte size each tensor's data must have.
    fn check_tensor(t: &PendingTensor) -> io::Result<()> {
        if t.dims.len() > MAX_DIMS {
            return Err(invalid(format!(
                "tensor `{}` has {} dimensions",
                t.name,
                t.dims.len()
            )));
        }
        let n = t.dims.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
        let row = t.dims.first().copied().unwrap_or(1);
        let bytes = n
            .filter(|_| t.ty.fits_row(row))
            .and_then(|n| t.ty.bytes_for(n));
        if bytes != Some(t.data.len() as u64) {
            return Err(invalid(format!(
                "tensor `{}` ({} {:?}) needs {bytes:?} bytes, got {}",
                t.name,
                t.ty,
                t.dims,
                t.data.len()
            )));
        }
        Ok(())
    }

    /// The whole file.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let alignment = self.alignment()?;
        let mut e = Encoder::new();
        e.header(
            self.version,
            self.tensors.len() as u64,
            self.kv.len() as u64,
        );
        for (k, v) in &self.kv {
            e.kv(k, v);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            Self::check_tensor(t)?;
            e.tensor_info(&t.name, &t.dims, t.ty.id(), offset);
            let padded = align_up(t.data.len() as u64, alignment);
            offset = padded
                .and_then(|p| offset.checked_add(p))
                .ok_or_else(|| invalid("tensor data too large".into()))?;
        }
        e.pad(alignment);
        for t in &self.tensors {
            e.bytes(&t.data).pad(alignment);
        }
        Ok(e.buf)
    }

    /// Writes the file to `path`.
    pub fn write_to_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_bytes()?)
    }
}

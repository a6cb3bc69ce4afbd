//! Metadata values: the thirteen GGUF value types, typed arrays, and the key/value list.
//!
//! Arrays keep one `Vec` per element type (not a `Vec<Value>`) because the big ones are
//! vocabularies: 150k token strings, 150k scores, 150k token types. A `Vec<f32>` of scores
//! costs 4 bytes per entry and hands out a `&[f32]` directly.

use std::collections::HashMap;
use std::fmt;

use super::error::MetadataError;

/// A GGUF metadata value type, with the id it has in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type for an id read from a file, `None` for ids GGUF does not define.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Self::ALL.get(usize::try_from(id).ok()?).copied()
    }

    /// The id stored in files (the enum's position in the GGUF spec).
    pub fn id(self) -> u32 {
        // The list holds every variant, so the search always hits.
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0) as u32
    }

    /// The short name used in messages (`u32`, `string`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type can take in a file: the fixed size for
    /// numbers, the length prefix for strings, element type + length for arrays. The parser
    /// multiplies a count by this before allocating anything for it.
    pub fn min_encoded_size(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// An array value: all elements share one type (arrays of arrays may hold arrays of
/// different element types, as the format allows).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F32(_) => ValueType::F32,
            Value::F64(_) => ValueType::F64,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// The type as messages show it: `u32`, `array of string`.
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {}", a.elem_type()),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value as an `i128` when it is an integer (every GGUF integer fits), for the
    /// range-checked integer getters.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl Array {
    /// The type of the elements.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F32(_) => ValueType::F32,
            Array::F64(_) => ValueType::F64,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! from_impls {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value { Value::$v(x) }
        }
        impl From<Vec<$t>> for Array {
            fn from(x: Vec<$t>) -> Array { Array::$v(x) }
        }
        impl From<Vec<$t>> for Value {
            fn from(x: Vec<$t>) -> Value { Value::Array(Array::$v(x)) }
        }
    )*};
}

from_impls!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64,
    i64 => I64, f32 => F32, f64 => F64, bool => Bool, String => String);

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<Array> for Value {
    fn from(a: Array) -> Value {
        Value::Array(a)
    }
}

impl From<Vec<Array>> for Value {
    fn from(a: Vec<Array>) -> Value {
        Value::Array(Array::Array(a))
    }
}

impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Value {
        Value::Array(Array::String(v.into_iter().map(str::to_string).collect()))
    }
}

/// The metadata key/value pairs of a GGUF file, in file order, with an index by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Appends a pair; gives the value back if the key is already present (GGUF keys are
    /// unique, and the reader turns this into an error).
    pub fn insert(&mut self, key: String, value: Value) -> Result<(), Value> {
        if self.index.contains_key(&key) {
            return Err(value);
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(key)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&Value, MetadataError> {
        self.get(key).ok_or_else(|| MetadataError::Missing {
            key: key.to_string(),
        })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> MetadataError {
        MetadataError::WrongType {
            key: key.to_string(),
            expected,
            found: found.type_description(),
        }
    }

    /// An integer of any width, converted to `T` when the value fits.
    fn get_int<T: TryFrom<i128>>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<T, MetadataError> {
        let v = self.require(key)?;
        let i = v
            .as_integer()
            .ok_or_else(|| Self::wrong(key, expected, v))?;
        T::try_from(i).map_err(|_| MetadataError::OutOfRange {
            key: key.to_string(),
            value: i.to_string(),
        })
    }

    pub fn get_str(&self, key: &str) -> Result<&str, MetadataError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// Any integer type whose value fits in a u32 (writers disagree on widths: gguf-split
    /// stores counts as u16, converters store some ids as i32).
    pub fn get_u32(&self, key: &str) -> Result<u32, MetadataError> {
        self.get_int(key, "an integer")
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, MetadataError> {
        self.get_int(key, "an integer")
    }

    pub fn get_i64(&self, key: &str) -> Result<i64, MetadataError> {
        self.get_int(key, "an integer")
    }

    /// An f32, or an f64 that is within f32 range (precision is rounded).
    pub fn get_f32(&self, key: &str) -> Result<f32, MetadataError> {
        match self.require(key)? {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => {
                let y = *x as f32;
                if y.is_infinite() && x.is_finite() {
                    return Err(MetadataError::OutOfRange {
                        key: key.to_string(),
                        value: x.to_string(),
                    });
                }
                Ok(y)
            }
            v => Err(Self::wrong(key, "f32 or f64", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, MetadataError> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong(key, "bool", v)),
        }
    }

    /// Any array.
    pub fn get_array(&self, key: &str) -> Result<&Array, MetadataError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "an array", v))
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String], MetadataError> {
        match self.require(key)? {
            Value::Array(Array::String(v)) => Ok(v),
            v => Err(Self::wrong(key, "array of string", v)),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], MetadataError> {
        match self.require(key)? {
            Value::Array(Array::F32(v)) => Ok(v),
            v => Err(Self::wrong(key, "array of f32", v)),
        }
    }

    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], MetadataError> {
        match self.require(key)? {
            Value::Array(Array::I32(v)) => Ok(v),
            v => Err(Self::wrong(key, "array of i32", v)),
        }
    }

    pub fn get_u32_array(&self, key: &str) -> Result<&[u32], MetadataError> {
        match self.require(key)? {
            Value::Array(Array::U32(v)) => Ok(v),
            v => Err(Self::wrong(key, "array of u32", v)),
        }
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, MetadataError> {
        self.get_str("general.architecture")
    }

    /// The key `{arch}.{suffix}`, e.g. `qwen2.block_count` for `arch_key("block_count")`.
    pub fn arch_key(&self, suffix: &str) -> Result<String, MetadataError> {
        Ok(format!("{}.{suffix}", self.architecture()?))
    }

    pub fn arch_u32(&self, suffix: &str) -> Result<u32, MetadataError> {
        self.get_u32(&self.arch_key(suffix)?)
    }

    pub fn arch_f32(&self, suffix: &str) -> Result<f32, MetadataError> {
        self.get_f32(&self.arch_key(suffix)?)
    }

    pub fn arch_opt_u32(&self, suffix: &str) -> Result<Option<u32>, MetadataError> {
        optional(self.arch_u32(suffix), &self.arch_key(suffix)?)
    }

    pub fn arch_opt_f32(&self, suffix: &str) -> Result<Option<f32>, MetadataError> {
        optional(self.arch_f32(suffix), &self.arch_key(suffix)?)
    }

    pub fn get_opt_str(&self, key: &str) -> Result<Option<&str>, MetadataError> {
        optional(self.get_str(key), key)
    }

    pub fn get_opt_u32(&self, key: &str) -> Result<Option<u32>, MetadataError> {
        optional(self.get_u32(key), key)
    }

    pub fn get_opt_u64(&self, key: &str) -> Result<Option<u64>, MetadataError> {
        optional(self.get_u64(key), key)
    }

    pub fn get_opt_i64(&self, key: &str) -> Result<Option<i64>, MetadataError> {
        optional(self.get_i64(key), key)
    }

    pub fn get_opt_f32(&self, key: &str) -> Result<Option<f32>, MetadataError> {
        optional(self.get_f32(key), key)
    }

    pub fn get_opt_bool(&self, key: &str) -> Result<Option<bool>, MetadataError> {
        optional(self.get_bool(key), key)
    }

    pub fn get_opt_str_array(&self, key: &str) -> Result<Option<&[String]>, MetadataError> {
        optional(self.get_str_array(key), key)
    }

    pub fn get_opt_f32_array(&self, key: &str) -> Result<Option<&[f32]>, MetadataError> {
        optional(self.get_f32_array(key), key)
    }

    pub fn get_opt_i32_array(&self, key: &str) -> Result<Option<&[i32]>, MetadataError> {
        optional(self.get_i32_array(key), key)
    }
}

/// `None` only when `key` itself is absent: a wrong type, an out-of-range value, or a missing
/// `general.architecture` behind an `arch_*` key stay errors.
fn optional<T>(r: Result<T, MetadataError>, key: &str) -> Result<Option<T>, MetadataError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(MetadataError::Missing { key: k }) if k == key => Ok(None),
        Err(e) => Err(e),
    }
}

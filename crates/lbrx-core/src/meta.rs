//! Model metadata: an ordered list of typed key/value pairs (GGUF KVs, SafeTensors `__metadata__` strings).

use serde_json::Value as Json;

/// A metadata value. The variants mirror GGUF's value types, so no precision or type is lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned 8-bit.
    U8(u8),
    /// Signed 8-bit.
    I8(i8),
    /// Unsigned 16-bit.
    U16(u16),
    /// Signed 16-bit.
    I16(i16),
    /// Unsigned 32-bit.
    U32(u32),
    /// Signed 32-bit.
    I32(i32),
    /// Unsigned 64-bit.
    U64(u64),
    /// Signed 64-bit.
    I64(i64),
    /// binary32.
    F32(f32),
    /// binary64.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Homogeneous array with its element type (kept even when the array is empty).
    Array(ValueKind, Vec<Value>),
}

macro_rules! value_kinds {
    ($( $kind:ident = $id:expr, $name:expr, $size:expr; )+) => {
        /// The type of a metadata value, numbered as GGUF numbers its value types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ValueKind {
            $( #[doc = $name] $kind, )+
        }

        /// The value-type registry: kind, GGUF id, GGUF name, fixed byte size (`None`: string or array).
        pub static VALUE_KINDS: &[(ValueKind, u32, &str, Option<usize>)] = &[
            $( (ValueKind::$kind, $id, $name, $size), )+
        ];
    };
}

// GGUF value types (spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md#file-structure)
value_kinds! {
    U8 = 0, "UINT8", Some(1);
    I8 = 1, "INT8", Some(1);
    U16 = 2, "UINT16", Some(2);
    I16 = 3, "INT16", Some(2);
    U32 = 4, "UINT32", Some(4);
    I32 = 5, "INT32", Some(4);
    F32 = 6, "FLOAT32", Some(4);
    Bool = 7, "BOOL", Some(1);
    Str = 8, "STRING", None;
    Array = 9, "ARRAY", None;
    U64 = 10, "UINT64", Some(8);
    I64 = 11, "INT64", Some(8);
    F64 = 12, "FLOAT64", Some(8);
}

impl ValueKind {
    /// The GGUF id.
    pub fn gguf_id(self) -> u32 {
        VALUE_KINDS[self as usize].1
    }
    /// The GGUF name (`UINT32`, `STRING` ...).
    pub fn name(self) -> &'static str {
        VALUE_KINDS[self as usize].2
    }
    /// Bytes of one value, for fixed-size kinds.
    pub fn fixed_size(self) -> Option<usize> {
        VALUE_KINDS[self as usize].3
    }
    /// The kind with GGUF id `id`.
    pub fn from_gguf_id(id: u32) -> Option<ValueKind> {
        VALUE_KINDS.iter().find(|r| r.1 == id).map(|r| r.0)
    }
}

impl Value {
    /// The value as JSON (numbers as numbers, non-finite floats as strings).
    pub fn to_json(&self) -> Json {
        match self {
            Value::U8(v) => Json::from(*v),
            Value::I8(v) => Json::from(*v),
            Value::U16(v) => Json::from(*v),
            Value::I16(v) => Json::from(*v),
            Value::U32(v) => Json::from(*v),
            Value::I32(v) => Json::from(*v),
            Value::U64(v) => Json::from(*v),
            Value::I64(v) => Json::from(*v),
            Value::F32(v) => float_json(*v as f64),
            Value::F64(v) => float_json(*v),
            Value::Bool(v) => Json::from(*v),
            Value::Str(s) => Json::from(s.as_str()),
            Value::Array(_, items) => Json::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// This value's kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::U8(_) => ValueKind::U8,
            Value::I8(_) => ValueKind::I8,
            Value::U16(_) => ValueKind::U16,
            Value::I16(_) => ValueKind::I16,
            Value::U32(_) => ValueKind::U32,
            Value::I32(_) => ValueKind::I32,
            Value::U64(_) => ValueKind::U64,
            Value::I64(_) => ValueKind::I64,
            Value::F32(_) => ValueKind::F32,
            Value::F64(_) => ValueKind::F64,
            Value::Bool(_) => ValueKind::Bool,
            Value::Str(_) => ValueKind::Str,
            Value::Array(..) => ValueKind::Array,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn float_json(v: f64) -> Json {
    serde_json::Number::from_f64(v)
        .map(Json::Number)
        .unwrap_or_else(|| Json::from(v.to_string()))
}

/// Ordered key/value metadata. Keys are unique; insertion order is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (replacing an existing value in place).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The metadata as a JSON object, in order.
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

impl FromIterator<(String, Value)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut m = Metadata::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

//! Planning GGUF output: the header (KVs and tensor infos) and every tensor's offset, byte-compatible with the
//! Python `gguf` package's `GGUFWriter` (version 3, little-endian, each tensor padded to the alignment).

use super::DEFAULT_ALIGNMENT;
use lbrx_core::{DType, Error, Metadata, Result, Value};

/// A tensor to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorSpec {
    /// Name.
    pub name: String,
    /// ggml type.
    pub dtype: DType,
    /// Row-major shape (written reversed, as ggml's `ne`).
    pub shape: Vec<u64>,
}

/// The layout of one GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufLayout {
    /// Everything before the data section, alignment padding included.
    pub header: Vec<u8>,
    /// Absolute offset and byte length of each tensor, in the order given.
    pub tensors: Vec<(u64, u64)>,
    /// Total file size (the last tensor padded too).
    pub size: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::Str(s) => put_str(out, s),
        Value::Array(kind, items) => {
            out.extend_from_slice(&kind.gguf_id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(out, it); // nested arrays carry their own type and count
            }
        }
    }
}

fn check_array(key: &str, v: &Value) -> Result<()> {
    if let Value::Array(kind, items) = v {
        for it in items {
            if it.kind() != *kind {
                return Err(Error::Invalid(format!(
                    "metadata '{key}': array of {} holds a {}",
                    kind.name(),
                    it.kind().name()
                )));
            }
            check_array(key, it)?;
        }
    }
    Ok(())
}

/// Lays out a GGUF v3 file with `metadata` (in order) and `tensors` (in order).
pub fn gguf_layout(metadata: &Metadata, tensors: &[GgufTensorSpec]) -> Result<GgufLayout> {
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
        Some(_) => {
            return Err(Error::Invalid(
                "general.alignment must be a power-of-two UINT32".into(),
            ))
        }
    };
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata.iter() {
        check_array(k, v)?;
        put_str(&mut h, k);
        h.extend_from_slice(&v.kind().gguf_id().to_le_bytes());
        put_value(&mut h, v);
    }
    let mut placed = Vec::with_capacity(tensors.len());
    let mut rel = 0u64;
    for t in tensors {
        let len = t.dtype.byte_len(&t.shape).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor '{}': shape {:?} is not a whole number of {} blocks",
                t.name, t.shape, t.dtype
            ))
        })?;
        if t.dtype.info().gguf_id.is_none() {
            return Err(Error::Invalid(format!(
                "tensor '{}': GGUF has no {} type",
                t.name, t.dtype
            )));
        }
        if t.shape.len() > super::MAX_DIMS as usize {
            return Err(Error::Invalid(format!(
                "tensor '{}': {} dimensions (GGUF allows 4)",
                t.name,
                t.shape.len()
            )));
        }
        put_str(&mut h, &t.name);
        h.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&t.dtype.info().gguf_id.unwrap_or(0).to_le_bytes());
        h.extend_from_slice(&rel.to_le_bytes());
        placed.push((rel, len));
        rel += len.div_ceil(alignment) * alignment;
    }
    let data_start = (h.len() as u64).div_ceil(alignment) * alignment;
    h.resize(data_start as usize, 0);
    let tensors = placed
        .into_iter()
        .map(|(r, len)| (data_start + r, len))
        .collect();
    Ok(GgufLayout {
        header: h,
        tensors,
        size: data_start + rel,
    })
}

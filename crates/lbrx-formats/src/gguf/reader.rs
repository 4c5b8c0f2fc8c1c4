//! Reading and validating GGUF files.

use super::DEFAULT_ALIGNMENT;
use crate::mmap::MappedFile;
use lbrx_core::{
    DType, Error, Format, GgufTypeError, Location, Malformed, Metadata, Result, Source, SourceFile,
    TensorInfo, TensorView, Value, ValueKind,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

/// Longest string accepted (keys, values, tensor names), in bytes.
pub const STRING_CAP: u64 = 1 << 30;
/// Deepest nesting of arrays accepted.
pub const ARRAY_DEPTH_CAP: usize = 8;
/// Most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;

/// Header facts of a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// Format version (1, 2 or 3).
    pub version: u32,
    /// Whether the file is big-endian.
    pub big_endian: bool,
    /// Data alignment.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
    /// Number of key/value pairs.
    pub kv_count: u64,
}

struct Cursor<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
    be: bool,
    v1: bool,
}

impl<'a> Cursor<'a> {
    fn err(&self, kind: Malformed) -> Error {
        Error::malformed(Location::file(self.path).at(self.pos as u64), kind)
    }
    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(self.err(Malformed::Truncated {
                needed: self.pos as u64 + n,
                actual: self.buf.len() as u64,
            }));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a: [u8; N] = self.take(N as u64)?.try_into().expect("N bytes");
        if self.be {
            a.reverse();
        }
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    /// A count or length: u32 in v1, u64 after.
    fn len(&mut self) -> Result<u64> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    /// Checks that `count` items of at least `min` bytes each can fit in what is left.
    fn fits(&self, count: u64, min: u64, what: &str) -> Result<()> {
        if count.checked_mul(min).is_none_or(|need| need > self.left()) {
            return Err(self.err(Malformed::Other(format!(
                "{what} count {count} cannot fit in the {} bytes left",
                self.left()
            ))));
        }
        Ok(())
    }
    fn string(&mut self) -> Result<String> {
        let at = self.pos;
        let n = self.len()?;
        if n > STRING_CAP {
            return Err(self.err(Malformed::Other(format!(
                "string length {n} exceeds the cap of {STRING_CAP} bytes"
            ))));
        }
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::malformed(
                Location::file(self.path).at(at as u64),
                Malformed::Other("string is not valid UTF-8".into()),
            )
        })
    }
    fn value(&mut self, kind: ValueKind, depth: usize) -> Result<Value> {
        Ok(match kind {
            ValueKind::U8 => Value::U8(self.arr::<1>()?[0]),
            ValueKind::I8 => Value::I8(self.arr::<1>()?[0] as i8),
            ValueKind::U16 => Value::U16(u16::from_le_bytes(self.arr()?)),
            ValueKind::I16 => Value::I16(i16::from_le_bytes(self.arr()?)),
            ValueKind::U32 => Value::U32(self.u32()?),
            ValueKind::I32 => Value::I32(i32::from_le_bytes(self.arr()?)),
            ValueKind::U64 => Value::U64(self.u64()?),
            ValueKind::I64 => Value::I64(i64::from_le_bytes(self.arr()?)),
            ValueKind::F32 => Value::F32(f32::from_le_bytes(self.arr()?)),
            ValueKind::F64 => Value::F64(f64::from_le_bytes(self.arr()?)),
            ValueKind::Bool => {
                let b = self.arr::<1>()?[0];
                if b > 1 {
                    return Err(self.err(Malformed::Other(format!(
                        "bool value {b} is neither 0 nor 1"
                    ))));
                }
                Value::Bool(b == 1)
            }
            ValueKind::Str => Value::Str(self.string()?),
            ValueKind::Array => {
                if depth >= ARRAY_DEPTH_CAP {
                    return Err(self.err(Malformed::Other(format!(
                        "arrays nested deeper than {ARRAY_DEPTH_CAP}"
                    ))));
                }
                let elem = self.kind()?;
                let count = self.len()?;
                let min = elem.fixed_size().unwrap_or(if self.v1 { 4 } else { 8 }) as u64;
                self.fits(count, min, "array")?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
    fn kind(&mut self) -> Result<ValueKind> {
        let at = self.pos;
        let id = self.u32()?;
        ValueKind::from_gguf_id(id).ok_or_else(|| {
            Error::malformed(
                Location::file(self.path).at(at as u64),
                Malformed::Other(format!("unknown value type {id}")),
            )
        })
    }
}

/// A GGUF file, memory-mapped, header and tensor table validated.
#[derive(Debug)]
pub struct GgufFile {
    map: MappedFile,
    info: GgufInfo,
    tensors: Vec<TensorInfo>,
    /// ggml `ne` (innermost first) of each tensor, as stored.
    ne: Vec<Vec<u64>>,
    metadata: Metadata,
    files: Vec<SourceFile>,
}

impl GgufFile {
    /// Opens and validates `path` (header, KVs and tensor infos; data is mapped, not read).
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let (info, metadata, tensors, ne) = parse(path, map.bytes())?;
        let files = vec![SourceFile {
            path: path.to_path_buf(),
            size: map.len(),
        }];
        Ok(GgufFile {
            map,
            info,
            tensors,
            ne,
            metadata,
            files,
        })
    }

    /// Header facts.
    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    /// ggml `ne` of tensor `i` (innermost dimension first), as stored in the file.
    pub fn ne(&self, i: usize) -> &[u64] {
        &self.ne[i]
    }
}

type Parsed = (GgufInfo, Metadata, Vec<TensorInfo>, Vec<Vec<u64>>);

fn parse(path: &Path, buf: &[u8]) -> Result<Parsed> {
    let loc = || Location::file(path);
    if buf.len() < 8 {
        return Err(Error::malformed(
            loc(),
            Malformed::Truncated {
                needed: 8,
                actual: buf.len() as u64,
            },
        ));
    }
    if &buf[..4] != b"GGUF" {
        return Err(Error::malformed(
            loc().at(0),
            Malformed::Other("no GGUF magic".into()),
        ));
    }
    let raw = [buf[4], buf[5], buf[6], buf[7]];
    let (version, be) = match (u32::from_le_bytes(raw), u32::from_be_bytes(raw)) {
        (v @ 1..=3, _) => (v, false),
        (_, v @ 1..=3) => (v, true),
        (v, _) => {
            return Err(Error::malformed(
                loc().at(4),
                Malformed::Other(format!("unsupported GGUF version {v}")),
            ))
        }
    };
    let mut c = Cursor {
        path,
        buf,
        pos: 8,
        be,
        v1: version == 1,
    };
    let tensor_count = c.len()?;
    let kv_count = c.len()?;
    // Smallest possible KV (empty key, a one-byte value) and tensor info (empty name, 0 dims).
    let (min_kv, min_tensor) = if c.v1 {
        (4 + 4 + 1, 4 + 4 + 4 + 8)
    } else {
        (8 + 4 + 1, 8 + 4 + 4 + 8)
    };
    c.fits(kv_count, min_kv, "key/value")?;
    let mut metadata = Metadata::new();
    let mut keys = HashSet::new();
    for _ in 0..kv_count {
        let at = c.pos as u64;
        let key = c.string()?;
        let kind = c.kind()?;
        let value = c.value(kind, 0)?;
        if !keys.insert(key.clone()) {
            return Err(Error::malformed(
                loc().at(at),
                Malformed::Other(format!("duplicate key '{key}'")),
            ));
        }
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
        Some(other) => {
            return Err(Error::malformed(
                loc(),
                Malformed::Other(format!(
                    "general.alignment {other:?} is not a power of two u32"
                )),
            ))
        }
    };
    c.fits(tensor_count, min_tensor, "tensor")?;
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut nes = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::new();
    for _ in 0..tensor_count {
        let at = c.pos as u64;
        let name = c.string()?;
        let tloc = || loc().tensor(&name).at(at);
        let n_dims = c.u32()?;
        if n_dims > MAX_DIMS {
            return Err(Error::malformed(
                tloc(),
                Malformed::Other(format!("{n_dims} dimensions (ggml allows {MAX_DIMS})")),
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.len()?);
        }
        let type_at = c.pos as u64;
        let id = c.u32()?;
        let dtype = DType::from_gguf_id(id).map_err(|e| {
            let what = match e {
                GgufTypeError::Retired(n) => format!(
                    "ggml type {id} ({n}) has been retired from GGUF; no current tool reads it"
                ),
                GgufTypeError::Unknown => format!("unknown ggml type {id}"),
            };
            Error::malformed(
                loc().tensor(&name).at(type_at),
                Malformed::UnknownDType(what),
            )
        })?;
        let offset = c.u64()?;
        if !names.insert(name.clone()) {
            return Err(Error::malformed(tloc(), Malformed::DuplicateTensor));
        }
        let shape: Vec<u64> = ne.iter().rev().copied().collect();
        let block = dtype.info().block_size as u64;
        if ne.first().is_some_and(|&n0| n0 % block != 0) {
            return Err(Error::malformed(
                tloc(),
                Malformed::BadShape {
                    shape,
                    dtype: dtype.name().into(),
                },
            ));
        }
        let len = dtype.byte_len(&shape).ok_or_else(|| {
            Error::malformed(
                tloc(),
                Malformed::BadShape {
                    shape: shape.clone(),
                    dtype: dtype.name().into(),
                },
            )
        })?;
        if offset % alignment != 0 {
            return Err(Error::malformed(
                tloc(),
                Malformed::Other(format!(
                    "data offset {offset} is not a multiple of the alignment {alignment}"
                )),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape,
            file: 0,
            offset,
            len,
        });
        nes.push(ne);
    }
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_size = buf.len() as u64;
    // Absolute offsets, inside the file, without overlaps (gaps are alignment padding).
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, tensors[i].len));
    let mut end = data_start;
    let mut prev: Option<usize> = None;
    for &i in &order {
        let t = &mut tensors[i];
        let start = data_start.saturating_add(t.offset);
        let stop = start.saturating_add(t.len);
        if stop > file_size {
            return Err(Error::malformed(
                loc().tensor(&t.name).at(start.min(file_size)),
                Malformed::OutOfBounds {
                    start: t.offset,
                    end: t.offset.saturating_add(t.len),
                    data_len: file_size.saturating_sub(data_start),
                },
            ));
        }
        if start < end && t.len > 0 {
            return Err(Error::malformed(
                loc().tensor(&t.name).at(start),
                Malformed::Overlap {
                    other: prev_name(&tensors, prev),
                    other_end: end - data_start,
                },
            ));
        }
        let t = &mut tensors[i];
        t.offset = start;
        end = end.max(stop);
        if t.len > 0 {
            prev = Some(i);
        }
    }
    let info = GgufInfo {
        version,
        big_endian: be,
        alignment,
        data_start,
        kv_count,
    };
    Ok((info, metadata, tensors, nes))
}

fn prev_name(tensors: &[TensorInfo], prev: Option<usize>) -> String {
    prev.map(|p| tensors[p].name.clone()).unwrap_or_default()
}

impl Source for GgufFile {
    lbrx_core::source_accessors!(Format::Gguf, mapped map);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self.tensor(index)?;
        let raw = self.map.range(info.offset, info.len);
        if !self.info.big_endian {
            return Ok(TensorView {
                info,
                data: Cow::Borrowed(raw),
            });
        }
        // Big-endian files: swap scalar elements into the little-endian bytes everything else expects.
        let d = info.dtype.info();
        if d.block_size != 1 {
            return Err(Error::Unsupported {
                path: self.map.path().to_path_buf(),
                what: format!(
                    "tensor '{}': {} data in a big-endian GGUF",
                    info.name, info.dtype
                ),
            });
        }
        let mut out = raw.to_vec();
        for e in out.chunks_exact_mut(d.type_size as usize) {
            e.reverse();
        }
        Ok(TensorView {
            info,
            data: Cow::Owned(out),
        })
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        if offset.checked_add(len).is_none_or(|e| e > info.len) {
            return Err(Error::Invalid(format!(
                "tensor '{}': range outside its bytes",
                info.name
            )));
        }
        let raw = self.map.range(info.offset + offset, len);
        if !self.info.big_endian {
            return Ok(Cow::Borrowed(raw));
        }
        let size = info.dtype.info().type_size as usize;
        if info.dtype.info().block_size != 1 || !offset.is_multiple_of(size as u64) {
            return self
                .view(index)
                .map(|v| Cow::Owned(v.data[offset as usize..(offset + len) as usize].to_vec()));
        }
        let mut out = raw.to_vec();
        for e in out.chunks_exact_mut(size) {
            e.reverse();
        }
        Ok(Cow::Owned(out))
    }
    fn raw_file(&self, _file: usize) -> Option<&File> {
        (!self.info.big_endian).then(|| self.map.file())
    }
    fn release(&self, _file: usize, offset: u64, len: u64) {
        self.map.release(offset, len);
    }
}

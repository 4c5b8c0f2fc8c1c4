//! Reading and validating SafeTensors files and sharded directories.

use super::index::INDEX_SUFFIX;
use crate::mmap::MappedFile;
use crate::sharded::{ShardKind, Sharded};
use lbrx_core::{
    DType, Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView, Value,
};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::Path;

/// Largest header accepted, in bytes (the reference implementation's cap).
pub const HEADER_CAP: u64 = 100_000_000;

/// A parsed and validated header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Tensors with absolute offsets, in data-offset order; `file` is 0.
    pub tensors: Vec<TensorInfo>,
    /// `__metadata__`, sorted by key.
    pub metadata: BTreeMap<String, String>,
    /// Absolute offset of the data section (8 + header length).
    pub data_start: u64,
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: Vec<u64>,
}

/// The header's top-level object, with duplicate keys detected (serde_json would keep the last silently).
struct RawHeader(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(RawHeader(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses and validates a SafeTensors header. `prefix` holds at least the first `8 + N` bytes of the file
/// (or all of it, if shorter); `file_size` is the file's full size.
pub fn parse_header(path: &Path, prefix: &[u8], file_size: u64) -> Result<Header> {
    let loc = || Location::file(path);
    let Some(len_bytes) = prefix.get(..8) else {
        return Err(Error::malformed(
            loc(),
            Malformed::Truncated {
                needed: 8,
                actual: file_size,
            },
        ));
    };
    let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if n > HEADER_CAP {
        return Err(Error::malformed(
            loc().at(0),
            Malformed::HeaderTooLarge {
                header_len: n,
                cap: HEADER_CAP,
            },
        ));
    }
    let data_start = 8 + n;
    if data_start > file_size {
        return Err(Error::malformed(
            loc().at(0),
            Malformed::HeaderPastEof {
                header_len: n,
                file_size,
            },
        ));
    }
    let Some(text) = prefix.get(8..data_start as usize) else {
        return Err(Error::malformed(
            loc().at(8),
            Malformed::Truncated {
                needed: data_start,
                actual: prefix.len() as u64,
            },
        ));
    };
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::malformed(loc().at(8), Malformed::HeaderNotUtf8))?;
    let raw: RawHeader = serde_json::from_str(text)
        .map_err(|e| Error::malformed(loc().at(8), Malformed::InvalidHeader(e.to_string())))?;
    let data_len = file_size - data_start;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(raw.0.len());
    let mut seen = HashMap::with_capacity(raw.0.len());
    for (name, value) in raw.0 {
        if seen.insert(name.clone(), ()).is_some() {
            return Err(Error::malformed(
                loc().tensor(&name).at(8),
                Malformed::DuplicateTensor,
            ));
        }
        if name == "__metadata__" {
            let obj = value.as_object().ok_or_else(|| {
                Error::malformed(
                    loc().at(8),
                    Malformed::InvalidHeader("__metadata__ is not an object".into()),
                )
            })?;
            for (k, v) in obj {
                let s = v.as_str().ok_or_else(|| {
                    Error::malformed(
                        loc().at(8),
                        Malformed::InvalidHeader(format!(
                            "__metadata__ value of '{k}' is not a string"
                        )),
                    )
                })?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        let tloc = || loc().tensor(&name);
        let t: RawTensor = serde_json::from_value(value)
            .map_err(|e| Error::malformed(tloc().at(8), Malformed::InvalidHeader(e.to_string())))?;
        let dtype = DType::from_safetensors_name(&t.dtype).ok_or_else(|| {
            Error::malformed(tloc().at(8), Malformed::UnknownDType(t.dtype.clone()))
        })?;
        let &[start, end] = t.data_offsets.as_slice() else {
            return Err(Error::malformed(
                tloc().at(8),
                Malformed::InvalidHeader(format!(
                    "data_offsets must be [begin, end], got {:?}",
                    t.data_offsets
                )),
            ));
        };
        if start > end {
            return Err(Error::malformed(
                tloc().at(data_start),
                Malformed::BadOffsets { start, end },
            ));
        }
        if end > data_len {
            return Err(Error::malformed(
                tloc().at(data_start.saturating_add(start)),
                Malformed::OutOfBounds {
                    start,
                    end,
                    data_len,
                },
            ));
        }
        let expected = dtype.byte_len(&t.shape).ok_or_else(|| {
            Error::malformed(
                tloc().at(8),
                Malformed::BadShape {
                    shape: t.shape.clone(),
                    dtype: t.dtype.clone(),
                },
            )
        })?;
        if expected != end - start {
            return Err(Error::malformed(
                tloc().at(data_start + start),
                Malformed::SizeMismatch {
                    shape: t.shape,
                    dtype: t.dtype,
                    expected,
                    actual: end - start,
                },
            ));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape: t.shape,
            file: 0,
            offset: data_start + start,
            len: end - start,
        });
    }

    // The data section must be covered exactly: sorted by offsets, each tensor starts where the last ended.
    tensors.sort_by_key(|t| (t.offset, t.len));
    let mut pos = data_start;
    let mut prev: Option<&TensorInfo> = None;
    for t in &tensors {
        if t.offset < pos {
            let other = prev.map(|p| p.name.clone()).unwrap_or_default();
            return Err(Error::malformed(
                loc().tensor(&t.name).at(t.offset),
                Malformed::Overlap {
                    other,
                    other_end: pos - data_start,
                },
            ));
        }
        if t.offset > pos {
            return Err(Error::malformed(
                loc().tensor(&t.name).at(pos),
                Malformed::Hole {
                    len: t.offset - pos,
                },
            ));
        }
        pos = t.offset + t.len;
        prev = Some(t);
    }
    if pos != file_size {
        return Err(Error::malformed(
            loc().at(pos),
            Malformed::TrailingBytes {
                len: file_size - pos,
            },
        ));
    }
    Ok(Header {
        tensors,
        metadata,
        data_start,
    })
}

/// One SafeTensors file, memory-mapped, header validated.
#[derive(Debug)]
pub struct SafetensorsFile {
    map: MappedFile,
    header: Header,
    files: Vec<SourceFile>,
    metadata: Metadata,
}

impl SafetensorsFile {
    /// Opens and validates `path` (reads the header only; data is mapped, not read).
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let header = parse_header(path, map.bytes(), map.len())?;
        let metadata = header
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect();
        let files = vec![SourceFile {
            path: path.to_path_buf(),
            size: map.len(),
        }];
        Ok(SafetensorsFile {
            map,
            header,
            files,
            metadata,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

impl Source for SafetensorsFile {
    fn format(&self) -> Format {
        Format::Safetensors
    }
    fn root(&self) -> &Path {
        self.map.path()
    }
    fn files(&self) -> &[SourceFile] {
        &self.files
    }
    fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self.tensor(index)?;
        Ok(TensorView {
            info,
            data: Cow::Borrowed(self.map.range(info.offset, info.len)),
        })
    }
    fn raw_file(&self, _file: usize) -> Option<&File> {
        Some(self.map.file())
    }
    fn release(&self, _file: usize, offset: u64, len: u64) {
        self.map.release(offset, len);
    }
}

/// A directory of SafeTensors shards: with `*.safetensors.index.json`, or every `*.safetensors` in it.
pub type SafetensorsDir = Sharded<SafetensorsFile>;

/// How a SafeTensors model directory is sharded.
static SAFETENSORS_SHARDS: ShardKind<SafetensorsFile> = ShardKind {
    format: Format::SafetensorsDir,
    index_suffix: INDEX_SUFFIX,
    preferred_index: "model.safetensors.index.json",
    shards: |names| {
        names
            .iter()
            .filter(|n| n.ends_with(".safetensors"))
            .cloned()
            .collect()
    },
    open: SafetensorsFile::open,
};

impl Sharded<SafetensorsFile> {
    /// Opens a SafeTensors model directory, validating every shard header and the index against them.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_as(dir, &SAFETENSORS_SHARDS)
    }
}

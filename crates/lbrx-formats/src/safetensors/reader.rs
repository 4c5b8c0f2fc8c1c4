//! Reading and validating SafeTensors files and sharded directories.

use super::index::{read_index, INDEX_SUFFIX};
use crate::mmap::MappedFile;
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
use std::path::{Path, PathBuf};

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

    fn mapped(&self) -> &MappedFile {
        &self.map
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
        let info = self
            .header
            .tensors
            .get(index)
            .ok_or_else(|| Error::Invalid(format!("no tensor #{index}")))?;
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
#[derive(Debug)]
pub struct SafetensorsDir {
    root: PathBuf,
    shards: Vec<SafetensorsFile>,
    files: Vec<SourceFile>,
    tensors: Vec<TensorInfo>,
    metadata: Metadata,
    assets: Vec<PathBuf>,
    index: Option<PathBuf>,
}

/// Extensions of weight files that are not carried along as assets.
const WEIGHT_EXTS: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "gguf",
    "h5",
    "msgpack",
    "onnx",
    "npz",
    "pkl",
];

impl SafetensorsDir {
    /// Opens a model directory, validating every shard header and the index against them.
    pub fn open(dir: &Path) -> Result<Self> {
        let entries = list_dir(dir)?;
        let index_path = pick_index(dir, &entries)?;
        let mut st_files: Vec<String> = entries
            .iter()
            .filter(|n| n.ends_with(".safetensors"))
            .cloned()
            .collect();
        st_files.sort();

        let (shard_names, weight_map) = match &index_path {
            Some(p) => {
                let idx = read_index(p)?;
                let mut names: Vec<String> = idx.weight_map.values().cloned().collect();
                names.sort();
                names.dedup();
                (names, Some(idx.weight_map))
            }
            None => {
                if st_files.is_empty() {
                    return Err(Error::Unsupported {
                        path: dir.to_path_buf(),
                        what: "directory holds no *.safetensors file and no index".into(),
                    });
                }
                (st_files.clone(), None)
            }
        };

        let mut shards = Vec::with_capacity(shard_names.len());
        for name in &shard_names {
            let p = dir.join(name);
            if !p.is_file() {
                let idx = index_path.clone().unwrap_or_else(|| dir.to_path_buf());
                let tensor = weight_map
                    .as_ref()
                    .and_then(|m| m.iter().find(|(_, s)| *s == name).map(|(t, _)| t.clone()));
                let mut loc = Location::file(idx);
                loc.tensor = tensor;
                return Err(Error::malformed(
                    loc,
                    Malformed::MissingShard {
                        shard: name.clone(),
                    },
                ));
            }
            shards.push(SafetensorsFile::open(&p)?);
        }

        let mut tensors = Vec::new();
        let mut where_is: HashMap<&str, usize> = HashMap::new();
        for (i, shard) in shards.iter().enumerate() {
            for t in shard.tensors() {
                if let Some(&prev) = where_is.get(t.name.as_str()) {
                    return Err(Error::malformed(
                        Location::file(shard.root()).tensor(&t.name).at(t.offset),
                        Malformed::Other(format!(
                            "tensor also present in shard '{}'",
                            shard_names[prev]
                        )),
                    ));
                }
                where_is.insert(&t.name, i);
                tensors.push(TensorInfo {
                    file: i,
                    ..t.clone()
                });
            }
        }
        if let (Some(map), Some(idx)) = (&weight_map, &index_path) {
            let mut sorted: Vec<_> = map.iter().collect();
            sorted.sort();
            for (name, shard) in sorted {
                match where_is.get(name.as_str()) {
                    Some(&i) if shard_names[i] == *shard => {}
                    _ => {
                        return Err(Error::malformed(
                            Location::file(idx).tensor(name),
                            Malformed::NotInShard {
                                shard: shard.clone(),
                            },
                        ))
                    }
                }
            }
            for t in &tensors {
                if !map.contains_key(&t.name) {
                    return Err(Error::malformed(
                        Location::file(&shards[t.file].files[0].path)
                            .tensor(&t.name)
                            .at(t.offset),
                        Malformed::NotInIndex {
                            shard: shard_names[t.file].clone(),
                        },
                    ));
                }
            }
        }

        let metadata = shards
            .first()
            .map(|s| s.metadata.clone())
            .unwrap_or_default();
        let files = shards.iter().map(|s| s.files[0].clone()).collect();
        let mut assets: Vec<PathBuf> = entries
            .iter()
            .filter(|n| {
                let ext = Path::new(n)
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("");
                !WEIGHT_EXTS.contains(&ext) && !n.ends_with(INDEX_SUFFIX) && !n.starts_with('.')
            })
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect();
        assets.sort();
        Ok(SafetensorsDir {
            root: dir.to_path_buf(),
            shards,
            files,
            tensors,
            metadata,
            assets,
            index: index_path,
        })
    }

    /// The index file, if the directory has one.
    pub fn index_path(&self) -> Option<&Path> {
        self.index.as_deref()
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list directory", e))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, "list directory", e))?;
        if let Some(n) = e.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn pick_index(dir: &Path, entries: &[String]) -> Result<Option<PathBuf>> {
    let preferred = format!("model{INDEX_SUFFIX}");
    if entries.contains(&preferred) {
        return Ok(Some(dir.join(preferred)));
    }
    let others: Vec<&String> = entries
        .iter()
        .filter(|n| n.ends_with(INDEX_SUFFIX))
        .collect();
    match others.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(dir.join(one))),
        many => Err(Error::Unsupported {
            path: dir.to_path_buf(),
            what: format!(
                "several shard indexes ({}); open one model's files directly",
                many.len()
            ),
        }),
    }
}

impl Source for SafetensorsDir {
    lbrx_core::source_accessors!(Format::SafetensorsDir);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self
            .tensors
            .get(index)
            .ok_or_else(|| Error::Invalid(format!("no tensor #{index}")))?;
        let map = self.shards[info.file].mapped();
        Ok(TensorView {
            info,
            data: Cow::Borrowed(map.range(info.offset, info.len)),
        })
    }
    fn raw_file(&self, file: usize) -> Option<&File> {
        self.shards.get(file).map(|s| s.mapped().file())
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        if let Some(s) = self.shards.get(file) {
            s.mapped().release(offset, len);
        }
    }
    fn assets(&self) -> &[PathBuf] {
        &self.assets
    }
}

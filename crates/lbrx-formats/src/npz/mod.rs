//! NumPy `.npy` files and `.npz` archives (as `numpy.savez`, `numpy.savez_compressed` and `mlx.core.savez`
//! write them).
//!
//! `.npy` (spec: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>):
//!
//! ```text
//! "\x93NUMPY" | u8 major | u8 minor | header length (u16 LE in v1, u32 LE in v2/v3) |
//! header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces
//! and '\n' to a multiple of 64 | row-major data
//! ```
//!
//! `.npz` is a zip archive (zip64 for large members) of `NAME.npy` members, stored or deflated. Stored members are
//! read zero-copy from the memory map; deflated ones are decompressed when their bytes are asked for.

use crate::mmap::MappedFile;
use crate::stored::swap_elements;
use lbrx_core::{
    DType, Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView,
};
use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

pub mod writer;

/// Largest `.npy` header accepted.
const HEADER_CAP: u64 = 1 << 20;

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: DType,
    /// Whether the data is big-endian.
    pub big_endian: bool,
    /// Shape (row-major).
    pub shape: Vec<u64>,
    /// Bytes before the data (magic, version, length field and header).
    pub data_offset: u64,
}

/// NumPy type codes (`descr` without the byte-order character) and their dtypes: the one table both the
/// reader and the writer use.
const DESCRS: [(&str, DType); 13] = [
    ("f2", DType::F16),
    ("f4", DType::F32),
    ("f8", DType::F64),
    ("i1", DType::I8),
    ("i2", DType::I16),
    ("i4", DType::I32),
    ("i8", DType::I64),
    ("u1", DType::U8),
    ("u2", DType::U16),
    ("u4", DType::U32),
    ("u8", DType::U64),
    ("b1", DType::Bool),
    ("c8", DType::C64),
];

fn descr_dtype(descr: &str) -> Option<(DType, bool)> {
    let (order, code) = descr.split_at(1.min(descr.len()));
    let be = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return None,
    };
    DESCRS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|&(_, d)| (d, be))
}

/// The little-endian `descr` numpy writes for `dtype` (`|` for one-byte types); `None` if numpy has no such type.
pub fn npy_descr(dtype: DType) -> Option<String> {
    let (code, _) = DESCRS.iter().find(|(_, d)| *d == dtype)?;
    let order = if dtype.info().type_size == 1 {
        '|'
    } else {
        '<'
    };
    Some(format!("{order}{code}"))
}

/// Value of `'key': VALUE` in the header dict, up to the next top-level comma or closing brace.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Parses the start of a `.npy` file (`head` must hold the whole header). `path` and `member` name errors.
pub fn parse_npy_header(
    path: &Path,
    member: Option<&str>,
    head: &[u8],
    total: u64,
) -> Result<NpyHeader> {
    let loc = || {
        let l = Location::file(path);
        match member {
            Some(m) => l.tensor(m),
            None => l,
        }
    };
    let bad = |m: String| Error::malformed(loc(), Malformed::InvalidHeader(m));
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (hlen, start) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as u64, 10u64),
        2 | 3 if head.len() >= 12 => (
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64,
            12u64,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    if hlen > HEADER_CAP {
        return Err(Error::malformed(
            loc(),
            Malformed::HeaderTooLarge {
                header_len: hlen,
                cap: HEADER_CAP,
            },
        ));
    }
    let end = start + hlen;
    if end > total || end as usize > head.len() {
        return Err(Error::malformed(
            loc(),
            Malformed::HeaderPastEof {
                header_len: hlen,
                file_size: total,
            },
        ));
    }
    let text = std::str::from_utf8(&head[start as usize..end as usize])
        .map_err(|_| Error::malformed(loc(), Malformed::HeaderNotUtf8))?;
    let descr = dict_value(text, "descr")
        .ok_or_else(|| bad("no 'descr'".into()))?
        .trim_matches(['\'', '"']);
    let (dtype, big_endian) = descr_dtype(descr)
        .ok_or_else(|| Error::malformed(loc(), Malformed::UnknownDType(descr.to_string())))?;
    match dict_value(text, "fortran_order") {
        Some("False") => {}
        Some("True") => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("{}: Fortran-ordered arrays", member.unwrap_or("array")),
            })
        }
        _ => return Err(bad("no 'fortran_order'".into())),
    }
    let shape_text = dict_value(text, "shape").ok_or_else(|| bad("no 'shape'".into()))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad(format!("shape {shape_text} is not a tuple")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| bad(format!("shape {shape_text} is not a tuple of integers")))
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(NpyHeader {
        dtype,
        big_endian,
        shape,
        data_offset: end,
    })
}

#[derive(Debug)]
struct Member {
    index: usize,
    deflated: bool,
    big_endian: bool,
    /// Offset of the array data inside the (decompressed) member.
    data_offset: u64,
}

/// A `.npz` archive or a single `.npy` file.
#[derive(Debug)]
pub struct NpzFile {
    map: MappedFile,
    archive: Option<Mutex<zip::ZipArchive<File>>>,
    members: Vec<Member>,
    tensors: Vec<TensorInfo>,
    metadata: Metadata,
    files: Vec<SourceFile>,
    any_deflated: bool,
    /// The last deflated member decompressed (its index and array bytes), so chunked reads inflate it once.
    inflated: Mutex<Option<(usize, std::sync::Arc<Vec<u8>>)>>,
}

fn zip_err(path: &Path, e: zip::result::ZipError) -> Error {
    Error::malformed(Location::file(path), Malformed::Other(format!("zip: {e}")))
}

impl NpzFile {
    /// Opens a `.npz` archive or `.npy` file, reading the headers only (deflated members: their first bytes).
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let files = vec![SourceFile {
            path: path.to_path_buf(),
            size: map.len(),
        }];
        if map.bytes().starts_with(b"\x93NUMPY") {
            let h = parse_npy_header(path, None, map.bytes(), map.len())?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let t = tensor(path, &name, &h, h.data_offset, map.len())?;
            let members = vec![Member {
                index: 0,
                deflated: false,
                big_endian: h.big_endian,
                data_offset: h.data_offset,
            }];
            return Ok(NpzFile {
                map,
                archive: None,
                members,
                tensors: vec![t],
                metadata: Metadata::new(),
                files,
                any_deflated: false,
                inflated: Mutex::new(None),
            });
        }
        let file = crate::mmap::open_read_only(path)?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| zip_err(path, e))?;
        let (mut members, mut tensors) = (Vec::new(), Vec::new());
        for i in 0..zip.len() {
            let mut f = zip.by_index(i).map_err(|e| zip_err(path, e))?;
            let Some(name) = f.name().strip_suffix(".npy").map(str::to_string) else {
                continue;
            };
            let deflated = match f.compression() {
                zip::CompressionMethod::Stored => false,
                zip::CompressionMethod::Deflated => true,
                other => {
                    return Err(Error::Unsupported {
                        path: path.to_path_buf(),
                        what: format!("member '{name}' compressed with {other}"),
                    })
                }
            };
            let size = f.size();
            // DEFLATE expands at most ~1032:1, so a larger declared size is a lie; refusing it keeps every
            // allocation bounded by the archive's own size.
            let limit = if deflated {
                f.compressed_size()
                    .saturating_mul(1032)
                    .saturating_add(4096)
            } else {
                f.compressed_size()
            };
            if size > limit || f.compressed_size() > map.len() {
                return Err(Error::malformed(
                    Location::file(path).tensor(&name),
                    Malformed::Other(format!(
                        "member declares {size} bytes, impossible from {} stored bytes",
                        f.compressed_size()
                    )),
                ));
            }
            let mut head = vec![0u8; size.min(HEADER_CAP + 12) as usize];
            f.read_exact(&mut head)
                .map_err(|e| Error::io(path, "read", e))?;
            let h = parse_npy_header(path, Some(&name), &head, size)?;
            let start = f.data_start();
            let abs = if deflated {
                start
            } else {
                start + h.data_offset
            };
            let mut t = tensor(
                path,
                &name,
                &h,
                abs,
                if deflated { u64::MAX } else { map.len() },
            )?;
            if t.len != size - h.data_offset {
                return Err(Error::malformed(
                    Location::file(path).tensor(&name),
                    Malformed::SizeMismatch {
                        shape: t.shape.clone(),
                        dtype: t.dtype.name().into(),
                        expected: t.len,
                        actual: size - h.data_offset,
                    },
                ));
            }
            t.file = 0;
            members.push(Member {
                index: i,
                deflated,
                big_endian: h.big_endian,
                data_offset: h.data_offset,
            });
            tensors.push(t);
        }
        let any_deflated = members.iter().any(|m| m.deflated);
        Ok(NpzFile {
            map,
            archive: Some(Mutex::new(zip)),
            members,
            tensors,
            metadata: Metadata::new(),
            files,
            any_deflated,
            inflated: Mutex::new(None),
        })
    }
}

impl NpzFile {
    /// The array bytes of deflated member `index`, little-endian, decompressed once and kept until another
    /// member is asked for (conversions read a tensor's chunks in order).
    fn inflate(&self, index: usize) -> Result<std::sync::Arc<Vec<u8>>> {
        let mut cache = self
            .inflated
            .lock()
            .map_err(|_| Error::Invalid("npz reader poisoned".into()))?;
        if let Some((i, bytes)) = cache.as_ref() {
            if *i == index {
                return Ok(bytes.clone());
            }
        }
        let (info, m) = (&self.tensors[index], &self.members[index]);
        let path = self.map.path();
        let mut zip = self
            .archive
            .as_ref()
            .expect("npz archive")
            .lock()
            .map_err(|_| Error::Invalid("npz reader poisoned".into()))?;
        let mut f = zip.by_index(m.index).map_err(|e| zip_err(path, e))?;
        std::io::copy(&mut (&mut f).take(m.data_offset), &mut std::io::sink())
            .map_err(|e| Error::io(path, "read", e))?;
        let mut out = vec![0u8; info.len as usize];
        f.read_exact(&mut out)
            .map_err(|e| Error::io(path, "decompress", e))?;
        if m.big_endian {
            swap_elements(info.dtype, &mut out);
        }
        let bytes = std::sync::Arc::new(out);
        *cache = Some((index, bytes.clone()));
        Ok(bytes)
    }
}

fn tensor(path: &Path, name: &str, h: &NpyHeader, offset: u64, limit: u64) -> Result<TensorInfo> {
    let len = h.dtype.byte_len(&h.shape).ok_or_else(|| {
        Error::malformed(
            Location::file(path).tensor(name),
            Malformed::BadShape {
                shape: h.shape.clone(),
                dtype: h.dtype.name().into(),
            },
        )
    })?;
    if offset.checked_add(len).is_none_or(|e| e > limit) {
        return Err(Error::malformed(
            Location::file(path).tensor(name).at(offset),
            Malformed::Truncated {
                needed: offset.saturating_add(len),
                actual: limit,
            },
        ));
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype: h.dtype,
        shape: h.shape.clone(),
        file: 0,
        offset,
        len,
    })
}

impl Source for NpzFile {
    lbrx_core::source_accessors!(Format::Npz, mapped map);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        lbrx_core::source::view_whole(self, index)
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        if offset.checked_add(len).is_none_or(|e| e > info.len) {
            return Err(Error::Invalid(format!(
                "tensor '{}': range outside its bytes",
                info.name
            )));
        }
        let (start, end) = (offset as usize, (offset + len) as usize);
        let m = &self.members[index];
        if m.deflated {
            return Ok(Cow::Owned(self.inflate(index)?[start..end].to_vec()));
        }
        let raw = self.map.range(info.offset + offset, len);
        if !m.big_endian {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = raw.to_vec();
        swap_elements(info.dtype, &mut out);
        Ok(Cow::Owned(out))
    }
    fn raw_file(&self, _file: usize) -> Option<&File> {
        (!self.any_deflated && !self.members.iter().any(|m| m.big_endian)).then(|| self.map.file())
    }
    fn release(&self, _file: usize, offset: u64, len: u64) {
        if !self.any_deflated {
            self.map.release(offset, len);
        }
    }
}

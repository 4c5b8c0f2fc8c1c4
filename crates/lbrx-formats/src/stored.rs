//! A [`Source`] over tensors a reader has located once: each tensor's bytes are either a range of a memory-mapped
//! file (zero-copy) or bytes the reader computed at open (decoded typed protobuf fields, unpacked 4-bit integers,
//! densified sparse tensors, assembled slices). The ONNX, TensorFlow, TFLite and HDF5 readers all produce one.

use crate::mmap::MappedFile;
use lbrx_core::{
    Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView,
};
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where one tensor's bytes are.
#[derive(Debug, Clone)]
pub enum Stored {
    /// `info.len` bytes at `info.offset` of mapped file `info.file`.
    Mapped,
    /// Bytes computed when the file was opened.
    Owned(Arc<Vec<u8>>),
}

/// Tensors located by a reader, with their files kept mapped.
#[derive(Debug)]
pub struct StoredSource {
    format: Format,
    root: PathBuf,
    maps: Vec<Arc<MappedFile>>,
    files: Vec<SourceFile>,
    tensors: Vec<TensorInfo>,
    stored: Vec<Stored>,
    metadata: Metadata,
    warnings: Vec<String>,
}

/// Collects a reader's tensors; [`StoredBuilder::finish`] checks names and ranges once for every format.
#[derive(Debug)]
pub struct StoredBuilder {
    format: Format,
    root: PathBuf,
    maps: Vec<Arc<MappedFile>>,
    tensors: Vec<TensorInfo>,
    stored: Vec<Stored>,
    names: std::collections::HashSet<String>,
    /// Model metadata to expose.
    pub metadata: Metadata,
    /// What was skipped, for people.
    pub warnings: Vec<String>,
}

impl StoredBuilder {
    /// Starts a source of `format` rooted at `root`.
    pub fn new(format: Format, root: &Path) -> Self {
        StoredBuilder {
            format,
            root: root.to_path_buf(),
            maps: Vec::new(),
            tensors: Vec::new(),
            stored: Vec::new(),
            names: std::collections::HashSet::new(),
            metadata: Metadata::new(),
            warnings: Vec::new(),
        }
    }

    /// Adds a mapped file (or finds it if already added) and returns its index.
    pub fn file(&mut self, map: Arc<MappedFile>) -> usize {
        if let Some(i) = self.maps.iter().position(|m| m.path() == map.path()) {
            return i;
        }
        self.maps.push(map);
        self.maps.len() - 1
    }

    /// The mapped file `index`.
    pub fn map(&self, index: usize) -> &MappedFile {
        &self.maps[index]
    }

    /// Whether a tensor of this name was added.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Adds a tensor whose bytes are `info.len` bytes at `info.offset` of file `info.file`.
    pub fn mapped(&mut self, info: TensorInfo) {
        self.names.insert(info.name.clone());
        self.tensors.push(info);
        self.stored.push(Stored::Mapped);
    }

    /// Adds a tensor whose little-endian bytes were computed.
    pub fn owned(
        &mut self,
        name: String,
        dtype: lbrx_core::DType,
        shape: Vec<u64>,
        bytes: Vec<u8>,
    ) {
        self.tensors.push(TensorInfo {
            name,
            dtype,
            shape,
            file: 0,
            offset: 0,
            len: bytes.len() as u64,
        });
        self.stored.push(Stored::Owned(Arc::new(bytes)));
    }

    /// Checks every tensor (unique name, byte length equal to shape x dtype, mapped ranges inside their file)
    /// and returns the source.
    pub fn finish(self) -> Result<StoredSource> {
        let mut seen = std::collections::HashSet::new();
        for (t, s) in self.tensors.iter().zip(&self.stored) {
            let path = match s {
                Stored::Mapped => self.maps[t.file].path().to_path_buf(),
                Stored::Owned(_) => self.root.clone(),
            };
            let loc = || Location::file(&path).tensor(&t.name);
            if !seen.insert(t.name.as_str()) {
                return Err(Error::malformed(loc(), Malformed::DuplicateTensor));
            }
            let want = t.dtype.byte_len(&t.shape).ok_or_else(|| {
                Error::malformed(
                    loc(),
                    Malformed::BadShape {
                        shape: t.shape.clone(),
                        dtype: t.dtype.name().into(),
                    },
                )
            })?;
            if want != t.len {
                return Err(Error::malformed(
                    loc(),
                    Malformed::SizeMismatch {
                        shape: t.shape.clone(),
                        dtype: t.dtype.name().into(),
                        expected: want,
                        actual: t.len,
                    },
                ));
            }
            if let Stored::Mapped = s {
                let size = self.maps[t.file].len();
                if t.offset.checked_add(t.len).is_none_or(|e| e > size) {
                    return Err(Error::malformed(
                        loc().at(t.offset),
                        Malformed::Truncated {
                            needed: t.offset.saturating_add(t.len),
                            actual: size,
                        },
                    ));
                }
            }
        }
        let files = self
            .maps
            .iter()
            .map(|m| SourceFile {
                path: m.path().to_path_buf(),
                size: m.len(),
            })
            .collect();
        Ok(StoredSource {
            format: self.format,
            root: self.root,
            maps: self.maps,
            files,
            tensors: self.tensors,
            stored: self.stored,
            metadata: self.metadata,
            warnings: self.warnings,
        })
    }
}

impl Source for StoredSource {
    lbrx_core::source_accessors!(format field);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self.tensor(index)?;
        let data = match &self.stored[index] {
            Stored::Mapped => Cow::Borrowed(self.maps[info.file].range(info.offset, info.len)),
            Stored::Owned(b) => Cow::Borrowed(b.as_slice()),
        };
        Ok(TensorView { info, data })
    }
    fn raw_file(&self, file: usize) -> Option<&File> {
        // Owned tensors carry no file range, so kernel-side copies are offered only when every tensor is mapped.
        let all_mapped = self.stored.iter().all(|s| matches!(s, Stored::Mapped));
        all_mapped
            .then(|| self.maps.get(file).map(|m| m.file()))
            .flatten()
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        if let Some(m) = self.maps.get(file) {
            m.release(offset, len);
        }
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Unpacks `n` sub-byte integers of `bits` bits (2 or 4) stored low bits first, one byte per element;
/// `signed` sign-extends each. `packed` must hold at least `ceil(n * bits / 8)` bytes.
pub fn unpack_bits(packed: &[u8], n: usize, bits: u32, signed: bool) -> Vec<u8> {
    let per = (8 / bits) as usize;
    let mask = (1u8 << bits) - 1;
    let shift = 8 - bits;
    (0..n)
        .map(|i| {
            let v = (packed[i / per] >> ((i % per) as u32 * bits)) & mask;
            if signed {
                (((v << shift) as i8) >> shift) as u8
            } else {
                v
            }
        })
        .collect()
}

/// Bytes `n` elements of `bits` bits occupy when packed.
pub fn packed_len(n: u64, bits: u32) -> u64 {
    n.saturating_mul(bits as u64).div_ceil(8)
}

/// The directory of `root` a referenced file must stay inside: `rel` is refused when absolute, when it has a
/// `..` component, or when (after symlinks) it resolves outside `dir`. Returns the resolved path.
pub fn contained_path(dir: &Path, rel: &str, loc: impl Fn() -> Location) -> Result<PathBuf> {
    let refuse = |why: &str| {
        Error::malformed(
            loc(),
            Malformed::Other(format!(
                "refers to the file '{rel}', which {why}; lbrx reads only files inside the model's directory"
            )),
        )
    };
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(refuse("is an absolute path"));
    }
    if p.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(refuse("leaves the directory ('..')"));
    }
    let base = dir
        .canonicalize()
        .map_err(|e| Error::io(dir, "resolve", e))?;
    let full = base.join(p);
    let real = full
        .canonicalize()
        .map_err(|e| Error::io(&full, "open", e))?;
    if !real.starts_with(&base) {
        return Err(refuse("is a symlink out of the directory"));
    }
    Ok(real)
}

/// A memory map as the owner of a [`bytes::Bytes`], so protobuf byte fields decoded from it are views into it.
pub struct MapBytes(pub Arc<MappedFile>);

impl AsRef<[u8]> for MapBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// Byte-swaps big-endian elements to little-endian in place (complex numbers per component); `bytes` starts on
/// an element.
pub fn swap_elements(dtype: lbrx_core::DType, bytes: &mut [u8]) {
    let unit = if dtype == lbrx_core::DType::C64 {
        4
    } else {
        dtype.info().type_size as usize
    };
    if unit > 1 {
        for e in bytes.chunks_exact_mut(unit) {
            e.reverse();
        }
    }
}

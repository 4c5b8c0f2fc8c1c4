//! PyTorch checkpoints (`.bin`, `.pt`, `.pth`, `.ckpt`) and TorchScript archives, read without executing
//! anything.
//!
//! Layouts (details in [`container`]): the zip archive of `torch.save` (a pickle `data.pkl` whose persistent
//! ids name storage members `data/KEY`), the legacy format (five pickles, then the raw storages), and
//! TorchScript's zip (`data.pkl` holding the module tree, `constants.pkl`, `code/` never run). Tensors are
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls in the pickle, read as data by
//! [`rebuild`]; the pickle itself by [`pickle`], whose allowlist of globals is [`policy`].
//! Specs: <https://pytorch.org/docs/stable/notes/serialization.html>, `torch/serialization.py`,
//! `torch/_weights_only_unpickler.py`, CPython's `Lib/pickletools.py`.
//!
//! Tensors that are contiguous in a stored member are zero-copy slices of the memory map; strided views are
//! gathered, big-endian values swapped and deflated members inflated when their bytes are asked for.
//! Names are the dotted paths of flattening the loaded object through its dicts and lists (`state_dict.x.y`,
//! no prefix stripped); TorchScript names are those of `module.state_dict()`, plus `CONSTANTS.cN`.

mod container;
mod literals;
pub mod pickle;
pub mod policy;
pub mod rebuild;

use crate::mmap::MappedFile;
use crate::sharded::{ShardKind, Sharded};
use container::{Place, StoragePlace};
use lbrx_core::{
    Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView,
};
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How one tensor's elements sit in its storage.
#[derive(Debug, Clone)]
struct Layout {
    /// The storage's place.
    storage: StoragePlace,
    /// Byte offset of element 0 within the storage.
    start: u64,
    /// Strides in elements.
    stride: Vec<u64>,
    /// Whether the elements are one run in row-major order.
    contiguous: bool,
}

/// A PyTorch checkpoint or TorchScript archive, opened as a [`Source`].
#[derive(Debug)]
pub struct PyTorchFile {
    map: MappedFile,
    kind: &'static str,
    files: Vec<SourceFile>,
    tensors: Vec<TensorInfo>,
    layouts: Vec<Layout>,
    metadata: Metadata,
    warnings: Vec<String>,
    big_endian: bool,
    archive: Option<Mutex<zip::ZipArchive<File>>>,
    /// The last deflated member inflated (its archive index and bytes), so chunked reads inflate it once.
    inflated: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
    raw_ok: bool,
}

/// Row-major strides of `shape`, in elements.
fn contiguous_strides(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

impl PyTorchFile {
    /// Opens a checkpoint, reading its pickles and checking every tensor against its storage's bounds. No
    /// tensor data is read.
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedFile::open(path)?;
        let opened = container::open(&map)?;
        let mut tensors = Vec::with_capacity(opened.tensors.len());
        let mut layouts = Vec::with_capacity(opened.tensors.len());
        let mut seen = std::collections::HashSet::new();
        for t in &opened.tensors {
            let loc = || Location::file(path).tensor(&t.name);
            if !seen.insert(t.name.as_str()) {
                return Err(Error::malformed(loc(), Malformed::DuplicateTensor));
            }
            let bad_shape = || {
                Error::malformed(
                    loc(),
                    Malformed::BadShape {
                        shape: t.shape.clone(),
                        dtype: t.dtype.name().into(),
                    },
                )
            };
            let len = t.dtype.byte_len(&t.shape).ok_or_else(bad_shape)?;
            let esize = t.dtype.info().type_size as u64;
            let mut storage = *opened.storages.get(&t.storage.key).ok_or_else(|| {
                Error::malformed(loc(), Malformed::Other("its storage has no record".into()))
            })?;
            let declared = t
                .storage
                .numel
                .checked_mul(t.storage.dtype.info().type_size as u64);
            if declared != Some(storage.nbytes) {
                return Err(Error::malformed(
                    loc(),
                    Malformed::Other(format!(
                        "storage '{}' declares {} elements of {} but its record holds {} bytes",
                        t.storage.key, t.storage.numel, t.storage.dtype, storage.nbytes
                    )),
                ));
            }
            let mut base = 0u64;
            if let Some((_, off, n)) = &t.storage.view {
                let s = t.storage.dtype.info().type_size as u64;
                let (o, n) = (off.checked_mul(s), n.checked_mul(s));
                match (o, n) {
                    (Some(o), Some(n)) if o.checked_add(n).is_some_and(|e| e <= storage.nbytes) => {
                        base = o;
                        storage.nbytes = n;
                    }
                    _ => {
                        return Err(Error::malformed(
                            loc(),
                            Malformed::Other("storage view outside its storage".into()),
                        ))
                    }
                }
            }
            // Highest element index the view reaches, checked against the storage.
            let elements = lbrx_core::element_count(&t.shape).ok_or_else(bad_shape)?;
            if elements > 0 {
                let mut last = t.offset;
                for (&d, &s) in t.shape.iter().zip(&t.stride) {
                    last = (d - 1)
                        .checked_mul(s)
                        .and_then(|x| x.checked_add(last))
                        .ok_or_else(bad_shape)?;
                }
                let end = last.checked_add(1).and_then(|e| e.checked_mul(esize));
                if end.is_none_or(|e| e > storage.nbytes) {
                    return Err(Error::malformed(
                        loc(),
                        Malformed::Other(format!(
                            "view (offset {}, size {:?}, stride {:?}) reaches past its storage of {} bytes",
                            t.offset, t.shape, t.stride, storage.nbytes
                        )),
                    ));
                }
            }
            let start = base + t.offset * esize;
            let contiguous = elements <= 1
                || t.shape
                    .iter()
                    .zip(t.stride.iter().zip(contiguous_strides(&t.shape)))
                    .all(|(&d, (&s, c))| d == 1 || s == c);
            let offset = match storage.place {
                Place::Mapped(at) => at + start,
                Place::Deflated(_) => start,
            };
            tensors.push(TensorInfo {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                file: 0,
                offset,
                len,
            });
            layouts.push(Layout {
                storage,
                start,
                stride: t.stride.clone(),
                contiguous,
            });
        }
        let raw_ok =
            !opened.big_endian && opened.archive.is_none() && layouts.iter().all(|l| l.contiguous);
        // No metadata: a checkpoint's non-tensor values are Python objects, not strings a writer should carry.
        let metadata = Metadata::new();
        Ok(PyTorchFile {
            files: vec![SourceFile {
                path: path.to_path_buf(),
                size: map.len(),
            }],
            map,
            kind: opened.kind,
            tensors,
            layouts,
            metadata,
            warnings: opened.warnings,
            big_endian: opened.big_endian,
            archive: opened.archive.map(Mutex::new),
            inflated: Mutex::new(None),
            raw_ok,
        })
    }

    /// The container kind: `zip`, `legacy` or `torchscript`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The storage bytes of deflated member `index`, inflated once and kept until another is asked for.
    fn inflate(&self, index: usize, nbytes: u64) -> Result<Arc<Vec<u8>>> {
        let poisoned = || Error::Invalid("pytorch reader poisoned".into());
        let mut cache = self.inflated.lock().map_err(|_| poisoned())?;
        if let Some((i, b)) = cache.as_ref() {
            if *i == index {
                return Ok(b.clone());
            }
        }
        let path = self.map.path();
        let mut zip = self
            .archive
            .as_ref()
            .ok_or_else(|| Error::Invalid("deflated storage without an archive".into()))?
            .lock()
            .map_err(|_| poisoned())?;
        let mut f = zip.by_index(index).map_err(|e| {
            Error::malformed(Location::file(path), Malformed::Other(format!("zip: {e}")))
        })?;
        let mut out = Vec::new();
        use std::io::Read;
        (&mut f)
            .take(nbytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(path, "decompress", e))?;
        let name = f.name().to_string();
        container::check_inflated(path, &name, out.len() as u64, nbytes, &mut f)?;
        let b = Arc::new(out);
        *cache = Some((index, b.clone()));
        Ok(b)
    }

    /// The whole storage of a layout: a slice of the map, or the inflated member.
    fn storage_all(&self, l: &Layout) -> Result<StorageBytes<'_>> {
        match l.storage.place {
            Place::Mapped(at) => Ok(StorageBytes::Map(self.map.range(at, l.storage.nbytes))),
            Place::Deflated(i) => Ok(StorageBytes::Inflated(self.inflate(i, l.storage.nbytes)?)),
        }
    }
}

/// A storage's bytes, borrowed from the map or shared from the inflate cache.
enum StorageBytes<'a> {
    Map(&'a [u8]),
    Inflated(Arc<Vec<u8>>),
}

impl std::ops::Deref for StorageBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            StorageBytes::Map(b) => b,
            StorageBytes::Inflated(b) => b,
        }
    }
}

/// Gathers elements `[first, first + count)` (row-major) of a strided view into `out`.
fn gather(
    shape: &[u64],
    stride: &[u64],
    esize: usize,
    first: u64,
    count: u64,
    storage: &[u8],
    out: &mut Vec<u8>,
) {
    let nd = shape.len();
    let mut idx = vec![0u64; nd];
    let mut rem = first;
    for d in (0..nd).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut left = count;
    while left > 0 {
        let mut at = 0u64;
        for d in 0..nd {
            at += idx[d] * stride[d];
        }
        let (row, st) = if nd == 0 {
            (1, 1)
        } else {
            (shape[nd - 1] - idx[nd - 1], stride[nd - 1])
        };
        let run = row.min(left);
        if st == 1 {
            let s = (at as usize) * esize;
            out.extend_from_slice(&storage[s..s + run as usize * esize]);
        } else {
            for k in 0..run {
                let s = ((at + k * st) as usize) * esize;
                out.extend_from_slice(&storage[s..s + esize]);
            }
        }
        left -= run;
        if nd == 0 {
            break;
        }
        idx[nd - 1] += run;
        for d in (1..nd).rev() {
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
            idx[d - 1] += 1;
        }
    }
}

impl Source for PyTorchFile {
    lbrx_core::source_accessors!(Format::PyTorch, mapped map);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        lbrx_core::source::view_whole(self, index)
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        let esize = info.dtype.info().type_size as u64;
        if offset.checked_add(len).is_none_or(|e| e > info.len)
            || !offset.is_multiple_of(esize)
            || !len.is_multiple_of(esize)
        {
            return Err(Error::Invalid(format!(
                "tensor '{}': range {offset}+{len} is not whole elements inside its bytes",
                info.name
            )));
        }
        let l = &self.layouts[index];
        let all = self.storage_all(l)?;
        let mut bytes = if l.contiguous {
            let (s, e) = (
                (l.start + offset) as usize,
                (l.start + offset + len) as usize,
            );
            match all {
                StorageBytes::Map(b) => Cow::Borrowed(&b[s..e]),
                StorageBytes::Inflated(b) => Cow::Owned(b[s..e].to_vec()),
            }
        } else {
            let mut out = Vec::with_capacity(len as usize);
            let base = &all[l.start as usize..];
            gather(
                &info.shape,
                &l.stride,
                esize as usize,
                offset / esize,
                len / esize,
                base,
                &mut out,
            );
            Cow::Owned(out)
        };
        if self.big_endian {
            crate::stored::swap_elements(info.dtype, bytes.to_mut());
        }
        Ok(bytes)
    }
    fn raw_file(&self, _file: usize) -> Option<&File> {
        self.raw_ok.then(|| self.map.file())
    }
    fn release(&self, _file: usize, offset: u64, len: u64) {
        if self.archive.is_none() {
            self.map.release(offset, len);
        }
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A Hugging Face model directory of PyTorch shards (`pytorch_model-0000N-of-0000M.bin` with
/// `pytorch_model.bin.index.json`, or one `pytorch_model.bin`).
pub type PyTorchDir = Sharded<PyTorchFile>;

/// Files in a model directory that torch writes but that hold no model weights (training state).
const NOT_WEIGHTS: &[&str] = &[
    "training_args.bin",
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
];

/// The PyTorch weight files of a directory listing when it has no index: `pytorch_model.bin` if present, else
/// every `.bin`/`.pt`/`.pth` that is not training state.
pub fn weight_files(names: &[String]) -> Vec<String> {
    if names.iter().any(|n| n == "pytorch_model.bin") {
        return vec!["pytorch_model.bin".into()];
    }
    names
        .iter()
        .filter(|n| {
            let ext = Path::new(n.as_str())
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            matches!(ext, "bin" | "pt" | "pth")
                && !NOT_WEIGHTS.contains(&n.as_str())
                && !n.starts_with("rng_state")
                && !n.starts_with('.')
        })
        .cloned()
        .collect()
}

static PYTORCH_SHARDS: ShardKind<PyTorchFile> = ShardKind {
    format: Format::PyTorchDir,
    index_suffix: ".bin.index.json",
    preferred_index: "pytorch_model.bin.index.json",
    shards: weight_files,
    open: PyTorchFile::open,
};

impl Sharded<PyTorchFile> {
    /// Opens a directory of PyTorch shards, checking the index against them.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_as(dir, &PYTORCH_SHARDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_transposed_views() {
        // storage 0..6 as a 2x3 matrix, viewed transposed (3x2, strides (1, 3)).
        let storage: Vec<u8> = (0..6).collect();
        let mut out = Vec::new();
        gather(&[3, 2], &[1, 3], 1, 0, 6, &storage, &mut out);
        assert_eq!(out, [0, 3, 1, 4, 2, 5]);
        out.clear();
        gather(&[3, 2], &[1, 3], 1, 3, 2, &storage, &mut out);
        assert_eq!(out, [4, 2]);
        out.clear();
        // stride-0 broadcast dimension
        gather(&[2, 3], &[0, 1], 1, 0, 6, &storage, &mut out);
        assert_eq!(out, [0, 1, 2, 0, 1, 2]);
        assert_eq!(contiguous_strides(&[2, 3, 4]), [12, 4, 1]);
    }
}

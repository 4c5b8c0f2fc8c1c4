//! Split GGUF models as `llama-gguf-split` writes them: `NAME-00001-of-00003.gguf` ... each a complete GGUF
//! holding some of the tensors; the first carries the model's metadata, and every split carries `split.no` (u16,
//! 0-based), `split.tensors.count` (i32, the model's total) and `split.count` (u16).

use super::reader::GgufFile;
use lbrx_core::{
    Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView, Value,
};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// KV keys of the split scheme.
pub const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

/// The file name of split `no` (0-based) of `count` for the prefix `prefix` (a path without `.gguf`).
pub fn split_path(prefix: &Path, no: usize, count: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("-{:05}-of-{:05}.gguf", no + 1, count));
    PathBuf::from(s)
}

/// Splits `path` as `PREFIX-0000N-of-0000M.gguf` into (PREFIX, N-1, M).
pub fn parse_split_name(path: &Path) -> Option<(PathBuf, usize, usize)> {
    let s = path.to_str()?;
    let stem = s.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    if no.len() != 5 || count.len() != 5 {
        return None;
    }
    let (no, count): (usize, usize) = (no.parse().ok()?, count.parse().ok()?);
    (no >= 1 && no <= count).then(|| (PathBuf::from(prefix), no - 1, count))
}

/// A split GGUF model opened as one source.
#[derive(Debug)]
pub struct GgufSplit {
    root: PathBuf,
    parts: Vec<GgufFile>,
    tensors: Vec<TensorInfo>,
    /// Index of each tensor within its split.
    local: Vec<usize>,
    metadata: Metadata,
    files: Vec<SourceFile>,
}

fn split_u(m: &Metadata, key: &str) -> Option<u64> {
    m.get(key).and_then(Value::as_u64)
}

impl GgufSplit {
    /// Whether an opened GGUF file is one split of several.
    pub fn is_split(g: &GgufFile) -> bool {
        split_u(g.metadata(), "split.count").is_some_and(|c| c > 1)
    }

    /// Opens every split of the model that `path` (any of its splits) belongs to.
    pub fn open(path: &Path) -> Result<Self> {
        let first = GgufFile::open(path)?;
        let count = split_u(first.metadata(), "split.count").unwrap_or(1) as usize;
        let (prefix, _, named_count) = parse_split_name(path).ok_or_else(|| {
            Error::malformed(
                Location::file(path),
                Malformed::Other(format!(
                    "split.count is {count} but the name is not PREFIX-NNNNN-of-MMMMM.gguf"
                )),
            )
        })?;
        if named_count != count {
            return Err(Error::malformed(
                Location::file(path),
                Malformed::Other(format!(
                    "split.count is {count} but the name says {named_count}"
                )),
            ));
        }
        let mut parts = Vec::with_capacity(count);
        for no in 0..count {
            let p = split_path(&prefix, no, count);
            if !p.is_file() {
                return Err(Error::malformed(
                    Location::file(path),
                    Malformed::MissingShard {
                        shard: p
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                    },
                ));
            }
            let g = GgufFile::open(&p)?;
            let m = g.metadata();
            if split_u(m, "split.no") != Some(no as u64)
                || split_u(m, "split.count") != Some(count as u64)
            {
                return Err(Error::malformed(
                    Location::file(&p),
                    Malformed::Other(format!(
                        "split.no/split.count are {:?}/{:?}, expected {no}/{count}",
                        split_u(m, "split.no"),
                        split_u(m, "split.count")
                    )),
                ));
            }
            parts.push(g);
        }
        let mut tensors = Vec::new();
        let mut local = Vec::new();
        let mut names = HashSet::new();
        for (i, g) in parts.iter().enumerate() {
            for (j, t) in g.tensors().iter().enumerate() {
                local.push(j);
                if !names.insert(t.name.clone()) {
                    return Err(Error::malformed(
                        Location::file(g.root()).tensor(&t.name),
                        Malformed::DuplicateTensor,
                    ));
                }
                tensors.push(TensorInfo {
                    file: i,
                    ..t.clone()
                });
            }
        }
        let expected = split_u(parts[0].metadata(), "split.tensors.count");
        if expected.is_some_and(|n| n != tensors.len() as u64) {
            return Err(Error::malformed(
                Location::file(path),
                Malformed::Other(format!(
                    "split.tensors.count is {expected:?} but the splits hold {} tensors",
                    tensors.len()
                )),
            ));
        }
        let metadata = parts[0]
            .metadata()
            .iter()
            .filter(|(k, _)| !SPLIT_KEYS.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let files = parts.iter().map(|g| g.files()[0].clone()).collect();
        Ok(GgufSplit {
            root: split_path(&prefix, 0, count),
            parts,
            tensors,
            local,
            metadata,
            files,
        })
    }
}

impl Source for GgufSplit {
    lbrx_core::source_accessors!(Format::Gguf);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self.tensor(index)?;
        let v = self.parts[info.file].view(self.local[index])?;
        Ok(TensorView { info, data: v.data })
    }
    fn view_range(
        &self,
        index: usize,
        offset: u64,
        len: u64,
    ) -> Result<std::borrow::Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        self.parts[info.file].view_range(self.local[index], offset, len)
    }
    fn raw_file(&self, file: usize) -> Option<&File> {
        self.parts.get(file).and_then(|p| p.raw_file(0))
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        if let Some(p) = self.parts.get(file) {
            p.release(0, offset, len);
        }
    }
}

//! A model directory of weight shards of one format, merged into one [`Source`]: the shards an index
//! (`model.safetensors.index.json`, `pytorch_model.bin.index.json`: `{"weight_map": {NAME: SHARD}}`) names,
//! or every shard file when there is no index. The index is checked against the shards both ways.

use crate::safetensors::read_index;
use lbrx_core::{
    Error, Format, Location, Malformed, Metadata, Result, Source, SourceFile, TensorInfo,
    TensorView,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What tells one sharded format from another.
pub struct ShardKind<S> {
    /// The directory's format.
    pub format: Format,
    /// File-name suffix of its index (`.safetensors.index.json`).
    pub index_suffix: &'static str,
    /// The index preferred when several exist (`model.safetensors.index.json`).
    pub preferred_index: &'static str,
    /// Which file names are shards when there is no index (given the sorted directory listing).
    pub shards: fn(&[String]) -> Vec<String>,
    /// Opens one shard.
    pub open: fn(&Path) -> Result<S>,
}

/// A sharded model directory (see the module doc).
#[derive(Debug)]
pub struct Sharded<S> {
    root: PathBuf,
    format: Format,
    shards: Vec<S>,
    /// Index of each tensor within its shard.
    local: Vec<usize>,
    files: Vec<SourceFile>,
    tensors: Vec<TensorInfo>,
    metadata: Metadata,
    assets: Vec<PathBuf>,
    index: Option<PathBuf>,
    warnings: Vec<String>,
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

impl<S: Source> Sharded<S> {
    /// Opens a model directory, opening every shard and validating the index against them.
    pub fn open_as(dir: &Path, kind: &ShardKind<S>) -> Result<Self> {
        let entries = list_dir(dir)?;
        let index_path = pick_index(dir, &entries, kind)?;
        let (shard_names, weight_map) = match &index_path {
            Some(p) => {
                let idx = read_index(p)?;
                let mut names: Vec<String> = idx.weight_map.values().cloned().collect();
                names.sort();
                names.dedup();
                (names, Some(idx.weight_map))
            }
            None => {
                let names = (kind.shards)(&entries);
                if names.is_empty() {
                    return Err(Error::Unsupported {
                        path: dir.to_path_buf(),
                        what: format!(
                            "directory holds no {} shard and no index",
                            kind.format.name()
                        ),
                    });
                }
                (names, None)
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
            shards.push((kind.open)(&p)?);
        }

        let mut tensors = Vec::new();
        let mut local = Vec::new();
        let mut where_is: HashMap<String, usize> = HashMap::new();
        for (i, shard) in shards.iter().enumerate() {
            for (j, t) in shard.tensors().iter().enumerate() {
                if let Some(&prev) = where_is.get(t.name.as_str()) {
                    return Err(Error::malformed(
                        Location::file(shard.root()).tensor(&t.name).at(t.offset),
                        Malformed::Other(format!(
                            "tensor also present in shard '{}'",
                            shard_names[prev]
                        )),
                    ));
                }
                where_is.insert(t.name.clone(), i);
                tensors.push(TensorInfo {
                    file: i,
                    ..t.clone()
                });
                local.push(j);
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
                        Location::file(&shards[t.file].files()[0].path)
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
            .map(|s| s.metadata().clone())
            .unwrap_or_default();
        let files = shards.iter().map(|s| s.files()[0].clone()).collect();
        let warnings = shards
            .iter()
            .zip(&shard_names)
            .flat_map(|(s, n)| s.warnings().iter().map(move |w| format!("{n}: {w}")))
            .collect();
        let mut assets: Vec<PathBuf> = entries
            .iter()
            .filter(|n| {
                let ext = Path::new(n)
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("");
                !WEIGHT_EXTS.contains(&ext) && !n.ends_with(".index.json") && !n.starts_with('.')
            })
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect();
        assets.sort();
        Ok(Sharded {
            root: dir.to_path_buf(),
            format: kind.format,
            shards,
            local,
            files,
            tensors,
            metadata,
            assets,
            index: index_path,
            warnings,
        })
    }

    /// The index file, if the directory has one.
    pub fn index_path(&self) -> Option<&Path> {
        self.index.as_deref()
    }
}

/// The directory's file names, sorted.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
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

fn pick_index<S>(dir: &Path, entries: &[String], kind: &ShardKind<S>) -> Result<Option<PathBuf>> {
    if entries.iter().any(|e| e == kind.preferred_index) {
        return Ok(Some(dir.join(kind.preferred_index)));
    }
    let others: Vec<&String> = entries
        .iter()
        .filter(|n| n.ends_with(kind.index_suffix))
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

impl<S: Source> Source for Sharded<S> {
    lbrx_core::source_accessors!(format field);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        let info = self.tensor(index)?;
        let data = self.shards[info.file].view(self.local[index])?.data;
        Ok(TensorView { info, data })
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        self.shards[info.file].view_range(self.local[index], offset, len)
    }
    fn raw_file(&self, file: usize) -> Option<&File> {
        self.shards.get(file).and_then(|s| s.raw_file(0))
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        if let Some(s) = self.shards.get(file) {
            s.release(0, offset, len);
        }
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn assets(&self) -> &[PathBuf] {
        &self.assets
    }
}

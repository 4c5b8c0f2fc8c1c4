//! Checks of an output before it is moved into place: the structural check (every planned file there at its
//! planned size, read back by lbrx's own readers with exactly the planned tensors: names, dtypes, shapes)
//! and `--verify` (every byte range written hashed with xxh64 as it was written, then read back from the
//! files and compared).

use crate::atomic::{AtomicOutput, Staged};
use crate::plan::Plan;
use lbrx_core::{DType, Error, Result, Sink};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// A tensor as a reader sees it: (dtype, shape), by name.
type Listing = BTreeMap<String, Vec<(DType, Vec<u64>)>>;

fn refuse(dst: &Path, what: String) -> Error {
    Error::Destination {
        path: dst.to_path_buf(),
        why: format!("the written output does not read back as planned ({what}); nothing was moved into place"),
    }
}

fn size_of(p: &Path) -> Result<u64> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| Error::io(p, "stat", e))
}

/// The structural check of a staged output against its plan.
pub fn check_staged(plan: &Plan, staged: Staged<'_>) -> Result<()> {
    let mut want: Listing = BTreeMap::new();
    for j in &plan.jobs {
        want.entry(j.name.clone())
            .or_default()
            .push((j.dtype, j.shape.clone()));
    }
    let mut got: Listing = BTreeMap::new();
    let mut add = |src: &dyn lbrx_core::Source| {
        for t in src.tensors() {
            got.entry(t.name.clone())
                .or_default()
                .push((t.dtype, t.shape.clone()));
        }
    };
    match staged {
        Staged::File(p) => {
            let (size, planned) = (size_of(p)?, plan.files.first().map_or(0, |f| f.size));
            if size != planned {
                return Err(refuse(
                    &plan.dst,
                    format!("{size} bytes, planned {planned}"),
                ));
            }
            let src = lbrx_formats::open(p).map_err(|e| refuse(&plan.dst, e.to_string()))?;
            add(&*src);
        }
        Staged::Dir(d) => {
            for f in &plan.files {
                let size = size_of(&d.join(&f.name))?;
                if size != f.size {
                    return Err(refuse(
                        &plan.dst,
                        format!("{} is {size} bytes, planned {}", f.name, f.size),
                    ));
                }
            }
            let src = lbrx_formats::open(d).map_err(|e| refuse(&plan.dst, e.to_string()))?;
            add(&*src);
        }
        Staged::Files(files) => {
            for (f, (name, tmp)) in plan.files.iter().zip(files) {
                let size = size_of(tmp)?;
                if size != f.size {
                    return Err(refuse(
                        &plan.dst,
                        format!("{name} is {size} bytes, planned {}", f.size),
                    ));
                }
                let g = lbrx_formats::gguf::GgufFile::open(tmp)
                    .map_err(|e| refuse(&plan.dst, format!("{name}: {e}")))?;
                add(&g);
            }
        }
    }
    if plan.writer == crate::plan::WriterKind::Npy {
        // a .npy file has no tensor names: its one array is named after the file it is read from
        let strip = |m: Listing| -> Listing {
            BTreeMap::from([(String::new(), m.into_values().flatten().collect())])
        };
        (want, got) = (strip(want), strip(got));
    }
    for v in want.values_mut().chain(got.values_mut()) {
        v.sort_by(|a, b| (a.0.name(), &a.1).cmp(&(b.0.name(), &b.1)));
    }
    if want != got {
        let missing = want.keys().find(|k| got.get(*k) != want.get(*k));
        let extra = got.keys().find(|k| !want.contains_key(*k));
        let what = match (missing, extra) {
            (Some(k), _) => format!("tensor '{k}' is missing or differs"),
            (None, Some(k)) => format!("tensor '{k}' was not planned"),
            _ => "the tensors differ".into(),
        };
        return Err(refuse(&plan.dst, what));
    }
    Ok(())
}

/// A sink that records an xxh64 of every range written through it, for `--verify`. It never copies
/// kernel-side, so that every byte passes through it.
pub struct HashingSink<'a> {
    inner: &'a dyn Sink,
    records: Mutex<Vec<(usize, u64, u64, u64)>>,
}

impl<'a> HashingSink<'a> {
    /// Records what is written to `inner`.
    pub fn new(inner: &'a dyn Sink) -> Self {
        HashingSink {
            inner,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Reads every recorded range back from `out` and compares its hash.
    pub fn verify(self, plan: &Plan, out: &AtomicOutput) -> Result<()> {
        let records = self
            .records
            .into_inner()
            .map_err(|_| Error::Invalid("verify: a writer thread failed".into()))?;
        records.par_iter().try_for_each_init(Vec::new, |buf, &(file, offset, len, hash)| {
            buf.resize(len as usize, 0);
            out.read_at(file, offset, buf)?;
            if xxhash_rust::xxh64::xxh64(buf, 0) != hash {
                let name = plan.files.get(file).map_or("?", |f| f.name.as_str());
                return Err(Error::Destination {
                    path: plan.dst.clone(),
                    why: format!(
                        "--verify: the {len} bytes at offset {offset} of {name} read back differently from \
                         what was written (the disk or filesystem changed them); nothing was moved into place"
                    ),
                });
            }
            Ok(())
        })
    }
}

impl Sink for HashingSink<'_> {
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(file, offset, data)?;
        let h = xxhash_rust::xxh64::xxh64(data, 0);
        if let Ok(mut r) = self.records.lock() {
            r.push((file, offset, data.len() as u64, h));
        }
        Ok(())
    }
}

//! Conversion engine of lbrx: [`plan`] a conversion from a [`Source`], then [`execute`] it in parallel into an
//! [`AtomicOutput`] that appears at its destination only once complete.

pub mod atomic;
pub mod exec;
pub mod ftype;
mod gather;
pub mod hash;
pub mod health;
pub mod hf;
pub mod hfcache;
pub mod interrupt;
pub mod layout;
pub mod mlx;
pub mod plan;
pub mod recipe;
pub mod request;
pub mod route;
pub mod scaled;
pub mod shards;
pub mod verify;
pub mod workspace;
pub mod writer;

pub use atomic::{AtomicOutput, OutputKind, Placement};
pub use exec::{execute, ExecOptions};
pub use layout::{plan_gguf, plan_safetensors};
pub use plan::{Job, Plan, PlannedFile, Transform, GGUF_TYPES_KEY};
pub use request::{ConvertOptions, Target};
pub use route::plan;
pub use workspace::{read_workspace, WorkspaceInfo, SENTINEL};

use lbrx_core::{Error, Result, Source};
use std::path::{Path, PathBuf};

/// Refuses destinations that would overwrite or sit inside the source (or hold it).
pub fn check_destination(src: &dyn Source, dst: &Path) -> Result<()> {
    let mut protected: Vec<PathBuf> = src.files().iter().map(|f| f.path.clone()).collect();
    protected.push(src.root().to_path_buf());
    refuse_overlap(&protected, dst)
}

/// Refuses `dst` when it is one of `protected` or contains one of them (symlinks resolved).
fn refuse_overlap(protected: &[PathBuf], dst: &Path) -> Result<()> {
    let dst_abs = hfcache::resolve(dst);
    for p in protected.iter().map(|p| hfcache::resolve(p)) {
        if dst_abs == p || p.starts_with(&dst_abs) {
            return Err(Error::Destination {
                path: dst.to_path_buf(),
                why: format!("refusing to write over the source ({})", p.display()),
            });
        }
    }
    Ok(())
}

/// Runs a planned conversion: creates the outputs, writes everything, commits atomically.
pub fn run(
    plan: &Plan,
    src: &dyn Source,
    conv: &ConvertOptions,
    opts: ExecOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<exec::RunReport> {
    if plan.kind == OutputKind::Files {
        for f in &plan.files {
            check_destination(src, &plan.dst.join(&f.name))?;
        }
    } else {
        check_destination(src, &plan.dst)?;
    }
    if !conv.no_space_check {
        check_space(plan)?;
    }
    let mut out = AtomicOutput::new(&plan.dst, plan.kind, conv.overwrite)?.with_sync(conv.sync);
    if plan.kind == OutputKind::Dir {
        out = out.with_workspace(WorkspaceInfo::new(
            &src.root().display().to_string(),
            "convert",
        ));
    }
    for f in &plan.files {
        out.add_file(&f.name, f.size)?;
    }
    for (name, bytes) in &plan.small_files {
        out.add_small(name, bytes.clone());
    }
    for (name, path) in &plan.assets {
        out.add_copy(name, path);
    }
    let report = if conv.verify {
        let hashing = verify::HashingSink::new(&out);
        let r = execute(plan, src, &hashing, opts, progress)?;
        hashing.verify(plan, &out)?;
        r
    } else {
        execute(plan, src, &out, opts, progress)?
    };
    writer::get(plan.writer).finalize(plan, &out)?;
    interrupt::check()?;
    if conv.skip_health {
        out.commit()?;
    } else {
        out.commit_checked(&|staged| verify::check_staged(plan, staged))?;
    }
    Ok(report)
}

/// Refuses a plan whose output does not fit in the free space of its destination's filesystem (tensor files,
/// small files and copied assets), with the numbers.
fn check_space(plan: &Plan) -> Result<()> {
    let mut need: u64 = plan.files.iter().map(|f| f.size).sum();
    need += plan
        .small_files
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum::<u64>();
    for (_, p) in &plan.assets {
        need += std::fs::metadata(p).map_or(0, |m| m.len());
    }
    // the nearest existing directory at or above the destination
    let mut at = if plan.kind == OutputKind::File {
        plan.dst.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        plan.dst.clone()
    };
    while !at.as_os_str().is_empty() && !at.is_dir() {
        at = at.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    if at.as_os_str().is_empty() {
        at = PathBuf::from(".");
    }
    let Ok(st) = rustix::fs::statvfs(&at) else {
        return Ok(());
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if need > free {
        return Err(Error::Destination {
            path: plan.dst.clone(),
            why: format!(
                "the output needs {} and {} has {} free; free some space, write elsewhere, or pass \
                 --no-space-check to try anyway",
                lbrx_core::human_bytes(need),
                at.display(),
                lbrx_core::human_bytes(free)
            ),
        });
    }
    Ok(())
}

/// What `repair_index` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepairSummary {
    /// The new index's file name.
    pub index: String,
    /// Shards found (and placed into the destination).
    pub shards: Vec<String>,
    /// Tensors in the new index.
    pub tensors: usize,
    /// `metadata.total_size`: the sum of the tensors' byte sizes, as `transformers` computes it.
    pub total_size: u64,
    /// Files left out as byte-equal copies of tensors other shards hold: (stray, the shard it duplicates).
    pub strays: Vec<(String, String)>,
}

/// Lists the regular files (following symlinks) at the top of `dir`, sorted, without lbrx's own files.
fn top_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list directory", e))? {
        let e = e.map_err(|e| Error::io(dir, "list directory", e))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name == SENTINEL || name.contains(".lbrx-partial-") || !e.path().is_file() {
            continue;
        }
        out.push((name, e.path()));
    }
    out.sort();
    Ok(out)
}

/// Rebuilds the shard index of the model in `src` from its shards' headers alone (weights untouched) into a new
/// workspace `dst`: shards reflinked or hard-linked where the filesystem allows (never hard-linked out of the
/// Hugging Face cache), else copied; other files copied; a deterministic `*.safetensors.index.json`.
pub fn repair_index(src: &Path, dst: &Path, opts: &ConvertOptions) -> Result<RepairSummary> {
    if !src.is_dir() {
        return Err(Error::Destination {
            path: src.to_path_buf(),
            why: "repair-index takes a model directory".to_string(),
        });
    }
    refuse_overlap(&[src.to_path_buf()], dst)?;
    let files = top_files(src)?;
    let index = files
        .iter()
        .find(|(n, _)| n.ends_with(lbrx_formats::safetensors::INDEX_SUFFIX))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| format!("model{}", lbrx_formats::safetensors::INDEX_SUFFIX));
    let mut read = Vec::new();
    for (name, path) in files.iter().filter(|(n, _)| n.ends_with(".safetensors")) {
        read.push(shards::read_shard(name, path).map_err(|e| {
            Error::model(
                path,
                format!("cannot rebuild the index from a damaged shard: {e}"),
            )
        })?);
    }
    let own = shards::ownership(&read)?;
    if let Some((t, a, b)) = &own.conflict {
        return Err(Error::Destination {
            path: src.to_path_buf(),
            why: format!(
                "tensor '{t}' is in both '{a}' and '{b}' with different bytes; remove the wrong file first"
            ),
        });
    }
    let strays: Vec<String> = own.strays.iter().map(|s| s.0.clone()).collect();
    let weight_map = own.weight_map;
    let mut total_size = 0u64;
    for f in &read {
        for t in &f.tensors {
            if weight_map.get(&t.name) == Some(&f.name) {
                total_size += t.range.1;
            }
        }
    }
    let shards: Vec<String> = read
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| !strays.contains(n))
        .collect();
    if shards.is_empty() {
        return Err(Error::Destination {
            path: src.to_path_buf(),
            why: "no *.safetensors shards to index".to_string(),
        });
    }
    let mut out = AtomicOutput::new(dst, OutputKind::Dir, opts.overwrite)?
        .with_sync(opts.sync)
        .with_workspace(WorkspaceInfo::new(
            &src.display().to_string(),
            "repair-index",
        ));
    for (name, path) in &files {
        if name.ends_with(lbrx_formats::safetensors::INDEX_SUFFIX) || strays.contains(name) {
            continue;
        }
        let how = if name.ends_with(".safetensors") {
            Placement::LinkOrCopy
        } else {
            Placement::ReflinkOrCopy
        };
        out.add_placed(name, path, how);
    }
    out.add_small(
        &index,
        lbrx_formats::safetensors::index_json(total_size, &weight_map),
    );
    out.commit()?;
    Ok(RepairSummary {
        index,
        tensors: weight_map.len(),
        shards,
        total_size,
        strays: own.strays,
    })
}

/// Copies a model directory, or a Hugging Face cache repo given as `org/name[@revision]`, into a new workspace
/// `ws` (reflinks where the filesystem allows, else copies; symlinks into the cache's blobs are followed).
/// Returns the directory that was copied.
pub fn clone_model(spec: &str, ws: &Path, opts: &ConvertOptions) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    let src = if as_path.exists() {
        as_path.to_path_buf()
    } else if spec.matches('/').count() == 1 && !spec.starts_with(['.', '/']) {
        hfcache::resolve_repo(spec)?
    } else {
        return Err(Error::model(
            spec,
            "no such directory, and not a repo id (org/name) in the Hugging Face cache",
        ));
    };
    if !src.is_dir() {
        return Err(Error::Destination {
            path: src.to_path_buf(),
            why: "clone takes a model directory or a cached repo id".to_string(),
        });
    }
    refuse_overlap(std::slice::from_ref(&src), ws)?;
    let mut out = AtomicOutput::new(ws, OutputKind::Dir, opts.overwrite)?
        .with_sync(opts.sync)
        .with_workspace(WorkspaceInfo::new(spec, "clone"));
    let mut stack = vec![(src.clone(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, "list directory", e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == SENTINEL
                || name.contains(".lbrx-partial-")
                || name == ".git"
                || name == ".cache"
            {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = e.path();
            if path.is_dir() {
                stack.push((path, rel));
            } else if path.is_file() {
                out.add_placed(&rel, &path, Placement::ReflinkOrCopy);
            }
        }
    }
    out.commit()?;
    Ok(src)
}

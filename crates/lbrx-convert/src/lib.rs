//! Conversion engine of lbrx: [`plan`] a conversion from a [`Source`], then [`execute`] it in parallel into an
//! [`AtomicOutput`] that appears at its destination only once complete.

pub mod atomic;
pub mod exec;
pub mod plan;

pub use atomic::{AtomicOutput, OutputKind};
pub use exec::{execute, ExecOptions};
pub use plan::{plan_safetensors, ConvertOptions, Job, Plan, PlannedFile, Transform};

use lbrx_core::{Error, Result, Source};
use std::path::{Path, PathBuf};

/// Refuses destinations that would overwrite or sit inside the source (or hold it).
pub fn check_destination(src: &dyn Source, dst: &Path) -> Result<()> {
    let dst_abs = absolute_lenient(dst);
    let mut protected: Vec<PathBuf> = src
        .files()
        .iter()
        .map(|f| absolute_lenient(&f.path))
        .collect();
    protected.push(absolute_lenient(src.root()));
    for p in &protected {
        if dst_abs == *p || p.starts_with(&dst_abs) {
            return Err(Error::Invalid(format!(
                "{}: refusing to write over the source ({})",
                dst.display(),
                p.display()
            )));
        }
    }
    Ok(())
}

/// The absolute, symlink-resolved form of `p`, resolving only the part that exists.
fn absolute_lenient(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            absolute_lenient(parent).join(name)
        }
        _ => p.to_path_buf(),
    }
}

/// Runs a planned conversion: creates the outputs, writes everything, commits atomically.
pub fn run(
    plan: &Plan,
    src: &dyn Source,
    overwrite: bool,
    opts: ExecOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    check_destination(src, &plan.dst)?;
    let mut out = AtomicOutput::new(&plan.dst, plan.kind, overwrite)?;
    for f in &plan.files {
        out.add_file(&f.name, f.size)?;
    }
    for (name, bytes) in &plan.small_files {
        out.add_small(name, bytes.clone());
    }
    for (name, path) in &plan.assets {
        out.add_copy(name, path);
    }
    execute(plan, src, &out, opts, progress)?;
    out.commit()
}

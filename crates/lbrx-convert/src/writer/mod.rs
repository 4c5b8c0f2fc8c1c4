//! Output writers: one [`OutputWriter`] per output format lays planned tensors out into files with every
//! offset and header fixed before any data, and finishes the files once the data is written (checksums,
//! later signatures). The byte layouts themselves live in lbrx-formats; a writer places tensors in them.
//!
//! Writers: GGUF (one file or llama-gguf-split splits), SafeTensors (one file, or a directory of shards with
//! its index), NumPy `.npz` (CRCs patched after the data) and `.npy`.

mod gguf;
mod numpy;
mod safetensors;

use crate::atomic::AtomicOutput;
use crate::plan::{Plan, Planned, WriterKind};
use lbrx_core::{Metadata, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use gguf::Gguf;
pub use numpy::{Npy, Npz};
pub use safetensors::{SafetensorsDir, SafetensorsFile};

/// What a writer lays out: the planned tensors (in order; companions refer to this order) and what the
/// format keeps beside them.
#[derive(Debug, Default)]
pub struct Layout {
    /// The tensors, in output order.
    pub tensors: Vec<Planned>,
    /// Destination: the file, or the directory (for splits and directories, their place).
    pub dst: PathBuf,
    /// Largest shard or split, in bytes (`None`: the format's default).
    pub max_shard_size: Option<u64>,
    /// Typed metadata (GGUF).
    pub metadata: Metadata,
    /// String metadata (SafeTensors `__metadata__`).
    pub string_metadata: Option<BTreeMap<String, String>>,
    /// Tensors grouped into files as given (a source's own sharding kept), instead of by size.
    pub groups: Option<Vec<Vec<usize>>>,
    /// Shard name stem (`model`, `diffusion_pytorch_model` ...).
    pub stem: Option<String>,
    /// Extra `metadata` entries of a shard index written even for one shard (MLX's `total_parameters`).
    pub index_extra: Option<serde_json::Value>,
    /// Small files written whole beside the tensor files.
    pub small_files: Vec<(String, Vec<u8>)>,
    /// Files copied from the source (config, tokenizer ...): (name, source path).
    pub assets: Vec<(String, PathBuf)>,
    /// Bytes computed at plan time, for `Input::Inline`.
    pub inline: Vec<Vec<u8>>,
}

impl Layout {
    /// A layout of `tensors` at `dst` with nothing else set.
    pub fn new(tensors: Vec<Planned>, dst: &Path) -> Layout {
        Layout {
            tensors,
            dst: dst.to_path_buf(),
            ..Layout::default()
        }
    }
}

/// An output format.
pub trait OutputWriter: Sync {
    /// Every file's size and header and every tensor's file and offset.
    fn layout(&self, layout: Layout) -> Result<Plan>;

    /// Finishes the written files before they are committed (the default: nothing to do).
    fn finalize(&self, _plan: &Plan, _out: &AtomicOutput) -> Result<()> {
        Ok(())
    }
}

/// The writer of a kind (the plan records which one laid it out, so that `run` finalizes with it).
pub fn get(kind: WriterKind) -> &'static dyn OutputWriter {
    match kind {
        WriterKind::Gguf => &Gguf,
        WriterKind::SafetensorsFile => &SafetensorsFile,
        WriterKind::SafetensorsDir => &SafetensorsDir,
        WriterKind::Npz => &Npz,
        WriterKind::Npy => &Npy,
    }
}

/// A plan's files, jobs and data size from a layout's placed tensors (`placed[i]`: file, offset, length of
/// `layout.tensors[i]`), with everything else the layout carries.
fn plan_of(
    layout: Layout,
    kind: crate::atomic::OutputKind,
    dst: PathBuf,
    files: Vec<crate::plan::PlannedFile>,
    placed: Vec<(usize, u64, u64)>,
    writer: WriterKind,
) -> Plan {
    let jobs: Vec<crate::plan::Job> = layout
        .tensors
        .into_iter()
        .zip(placed)
        .map(|(t, (file, offset, len))| crate::plan::Job {
            t,
            file,
            offset,
            len,
        })
        .collect();
    let mut plan = Plan::new(dst, kind, files, jobs, writer);
    plan.small_files = layout.small_files;
    plan.assets = layout.assets;
    plan.inline = layout.inline;
    plan
}

/// The file name of a destination path.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// JSON as the Python tools write small files: pretty-printed, two-space indent, a final newline.
pub(crate) fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

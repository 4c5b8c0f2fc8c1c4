//! The GGUF writer: one file, or llama-gguf-split-style splits (a new split when the running sum of 32-byte-
//! padded tensor sizes would pass the maximum), headers from `lbrx_formats::gguf::gguf_layout`.

use super::{file_name, plan_of, Layout, OutputWriter};
use crate::atomic::OutputKind;
use crate::plan::{Plan, PlannedFile, WriterKind};
use lbrx_core::{Metadata, Result, Value};
use std::path::Path;

/// GGUF files.
pub struct Gguf;

impl OutputWriter for Gguf {
    fn layout(&self, layout: Layout) -> Result<Plan> {
        let specs: Vec<_> = layout.tensors.iter().map(|t| t.gguf_spec()).collect();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
        if let Some(max) = layout.max_shard_size {
            let mut cur = 0u64;
            for (i, sp) in specs.iter().enumerate() {
                let n = sp.dtype.byte_len(&sp.shape).unwrap_or(0).div_ceil(32) * 32;
                if cur + n > max && !groups.last().is_some_and(Vec::is_empty) {
                    groups.push(Vec::new());
                    cur = n;
                } else {
                    cur += n;
                }
                groups.last_mut().expect("one group").push(i);
            }
        } else {
            groups[0] = (0..specs.len()).collect();
        }
        let n_split = groups.len();
        let dst = layout.dst.clone();
        let name = file_name(&dst);
        let prefix = name.strip_suffix(".gguf").unwrap_or(&name).to_string();
        let mut files = Vec::with_capacity(n_split);
        let mut placed = vec![(0, 0, 0); specs.len()];
        for (no, members) in groups.iter().enumerate() {
            let mut meta = if no == 0 {
                layout.metadata.clone()
            } else {
                Metadata::new()
            };
            if n_split > 1 {
                meta.insert("split.no", Value::U16(no as u16));
                meta.insert("split.tensors.count", Value::I32(specs.len() as i32));
                meta.insert("split.count", Value::U16(n_split as u16));
            }
            let part: Vec<_> = members.iter().map(|&i| specs[i].clone()).collect();
            let l = lbrx_formats::gguf::gguf_layout(&meta, &part)?;
            for (&i, &(offset, len)) in members.iter().zip(&l.tensors) {
                placed[i] = (no, offset, len);
            }
            files.push(PlannedFile {
                name: if n_split > 1 {
                    format!("{prefix}-{:05}-of-{n_split:05}.gguf", no + 1)
                } else {
                    name.clone()
                },
                size: l.size,
                header: l.header,
            });
        }
        let (kind, plan_dst) = if n_split > 1 {
            let parent = dst
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (OutputKind::Files, parent.to_path_buf())
        } else {
            (OutputKind::File, dst)
        };
        Ok(plan_of(
            layout,
            kind,
            plan_dst,
            files,
            placed,
            WriterKind::Gguf,
        ))
    }
}

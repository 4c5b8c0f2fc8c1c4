//! The NumPy writers: `.npz` (a zip of stored `NAME.npy` members, as `numpy.savez` and `mlx.core.savez`
//! write it; each member's CRC-32 patched in once its data is written) and `.npy` (one array after its header).
//! Layouts from `lbrx_formats::npz::writer`.

use super::{file_name, plan_of, Layout, OutputWriter};
use crate::atomic::{AtomicOutput, OutputKind};
use crate::plan::{CrcPatch, Plan, PlannedFile, WriterKind};
use lbrx_core::{Error, Result};

/// A `.npz` archive.
pub struct Npz;

/// A `.npy` file.
pub struct Npy;

impl OutputWriter for Npz {
    fn layout(&self, layout: Layout) -> Result<Plan> {
        use lbrx_formats::npz::writer::{npz_layout, NpzMember};
        let members: Vec<NpzMember> = layout
            .tensors
            .iter()
            .map(|t| NpzMember {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
            })
            .collect();
        let l = npz_layout(&members)?;
        let mut fixed = Vec::with_capacity(members.len() + 1);
        let mut crc32 = Vec::with_capacity(members.len());
        let mut placed = Vec::with_capacity(members.len());
        for m in &l.members {
            fixed.push((0, m.header_offset, m.prefix.clone()));
            crc32.push(CrcPatch {
                file: 0,
                start: m.crc_range.0,
                len: m.crc_range.1,
                at: m.crc_at.to_vec(),
            });
            placed.push((0, m.data_offset, m.data_len));
        }
        fixed.push((0, l.tail_offset, l.tail.clone()));
        let files = vec![PlannedFile {
            name: file_name(&layout.dst),
            size: l.size,
            header: Vec::new(),
        }];
        let dst = layout.dst.clone();
        let mut plan = plan_of(
            layout,
            OutputKind::File,
            dst,
            files,
            placed,
            WriterKind::Npz,
        );
        plan.fixed = fixed;
        plan.crc32 = crc32;
        Ok(plan)
    }

    /// Each member's CRC-32, read back from the written data.
    fn finalize(&self, plan: &Plan, out: &AtomicOutput) -> Result<()> {
        for c in &plan.crc32 {
            let mut h = crc32fast::Hasher::new();
            let mut buf = vec![0u8; (8 << 20).min(c.len) as usize];
            let mut at = c.start;
            while at < c.start + c.len {
                let n = buf.len().min((c.start + c.len - at) as usize);
                out.read_at(c.file, at, &mut buf[..n])?;
                h.update(&buf[..n]);
                at += n as u64;
            }
            let crc = h.finalize().to_le_bytes();
            for &p in &c.at {
                lbrx_core::Sink::write_at(out, c.file, p, &crc)?;
            }
        }
        Ok(())
    }
}

impl OutputWriter for Npy {
    fn layout(&self, layout: Layout) -> Result<Plan> {
        let [t] = &layout.tensors[..] else {
            return Err(Error::Usage(format!(
                "a .npy holds one array, not {}",
                layout.tensors.len()
            )));
        };
        let header = lbrx_formats::npz::writer::npy_header(t.dtype, &t.shape)
            .map_err(|e| Error::tensor(t.name.to_string(), format!("{e}")))?;
        let len = t
            .dtype
            .byte_len(&t.shape)
            .ok_or_else(|| Error::tensor(t.name.to_string(), "shape overflows"))?;
        let offset = header.len() as u64;
        let files = vec![PlannedFile {
            name: file_name(&layout.dst),
            size: offset + len,
            header,
        }];
        let dst = layout.dst.clone();
        Ok(plan_of(
            layout,
            OutputKind::File,
            dst,
            files,
            vec![(0, offset, len)],
            WriterKind::Npy,
        ))
    }
}

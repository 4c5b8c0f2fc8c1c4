//! `health --deep`: every byte of every tensor read, NaN and Inf counted in float and block-quantized tensors.

use super::{Report, Shard};
use lbrx_core::{DType, TensorInfo};
use rayon::prelude::*;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Reads every byte of every tensor (with `pread`, so a file truncated underneath is an error, not a crash)
/// and counts NaN and Inf in float tensors.
pub(super) fn deep_scan(shards: &[Shard], r: &mut Report) {
    let jobs: Vec<(&Shard, usize, &TensorInfo)> = shards
        .iter()
        .flat_map(|s| s.tensors.iter().enumerate().map(move |(j, t)| (s, j, t)))
        .collect();
    let results: Vec<(usize, ScanResult)> = jobs
        .par_iter()
        .enumerate()
        .map(|(i, &(s, j, t))| {
            let res = match &s.source {
                Some(src) => scan_source(&**src, j, t),
                None => scan_tensor(&s.path, t),
            };
            (i, res)
        })
        .collect();
    for (i, res) in results {
        let (s, _, t) = jobs[i];
        match res {
            Err(e) => r.error("unreadable-data", Some(&s.path), Some(&t.name), e),
            Ok((nan, inf)) => {
                if nan > 0 {
                    r.error(
                        "nan",
                        Some(&s.path),
                        Some(&t.name),
                        format!("{nan} NaN values of {}", t.elements()),
                    );
                }
                if inf > 0 {
                    r.error(
                        "inf",
                        Some(&s.path),
                        Some(&t.name),
                        format!("{inf} infinite values of {}", t.elements()),
                    );
                }
            }
        }
    }
}

/// NaN and Inf counts of one tensor, or why it could not be read.
type ScanResult = std::result::Result<(u64, u64), String>;

fn scan_tensor(path: &Path, t: &TensorInfo) -> ScanResult {
    let f = lbrx_formats::mmap::open_read_only(path).map_err(|e| e.to_string())?;
    scan_chunks(t, |at, buf| {
        f.read_exact_at(buf, t.offset + at)
            .map_err(|e| format!("read at byte {}: {e}", t.offset + at))
    })
}

/// [`scan_tensor`] through a source's reader (tensor `index` of `src`).
fn scan_source(src: &dyn lbrx_core::Source, index: usize, t: &TensorInfo) -> ScanResult {
    scan_chunks(t, |at, buf| {
        let b = src
            .view_range(index, at, buf.len() as u64)
            .map_err(|e| e.to_string())?;
        buf.copy_from_slice(&b);
        Ok(())
    })
}

/// NaN/Inf counts of `t`, read in whole-element chunks of at most 4 MiB by `read(offset, buffer)`.
fn scan_chunks(
    t: &TensorInfo,
    mut read: impl FnMut(u64, &mut [u8]) -> std::result::Result<(), String>,
) -> ScanResult {
    let es = t.dtype.info().type_size as usize;
    let chunk = (4 << 20) / es * es;
    let mut buf = vec![0u8; chunk.min(t.len as usize)];
    let (mut nan, mut inf) = (0u64, 0u64);
    let mut done = 0u64;
    let mut vals = Vec::new();
    while done < t.len {
        let n = ((t.len - done) as usize).min(buf.len());
        read(done, &mut buf[..n])?;
        if t.dtype.info().kind == lbrx_core::DTypeKind::Quantized
            && lbrx_quant::ggml::can_dequantize(t.dtype)
        {
            let info = t.dtype.info();
            vals.resize(n / info.type_size as usize * info.block_size as usize, 0f32);
            lbrx_quant::ggml::dequantize(t.dtype, &buf[..n], &mut vals)
                .map_err(|e| e.to_string())?;
            for v in &vals {
                nan += v.is_nan() as u64;
                inf += v.is_infinite() as u64;
            }
        } else if t.dtype.is_castable_float() {
            vals.resize(n / es, 0f32);
            if t.dtype == DType::F64 {
                for c in buf[..n].chunks_exact(8) {
                    let v = f64::from_le_bytes(c.try_into().unwrap_or_default());
                    nan += v.is_nan() as u64;
                    inf += v.is_infinite() as u64;
                }
            } else {
                lbrx_quant::cast::decode_f32(t.dtype, &buf[..n], &mut vals);
                for v in &vals {
                    nan += v.is_nan() as u64;
                    inf += v.is_infinite() as u64;
                }
            }
        }
        done += n as u64;
    }
    Ok((nan, inf))
}

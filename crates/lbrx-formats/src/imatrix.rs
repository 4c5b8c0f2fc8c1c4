//! llama.cpp importance matrices (`llama-imatrix` output), in both of its formats, normalized as
//! `llama-quantize` normalizes them (tools/quantize/quantize.cpp `load_imatrix`).
//!
//! GGUF format (common/imatrix-loader.cpp): for each weight `NAME`, F32 tensors `NAME.in_sum2` (the sums of
//! squared activations, `n_mat x ne0`) and `NAME.counts` (`n_mat` token counts); keys `imatrix.datasets` (string
//! array), `imatrix.chunk_count`, `imatrix.chunk_size` (u32). Values are `in_sum2 / counts` per matrix (1 where
//! a count is 0).
//!
//! Legacy `.dat` format (little-endian): `i32 n_entries`, then per entry `i32 name_len, name, i32 ncall,
//! i32 nval, f32 values[nval]`; then optionally `i32 chunk_count, i32 dataset_len, dataset`. Values are
//! `values / ncall`.

use crate::mmap::MappedFile;
use lbrx_core::{Error, Result, Source, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A loaded importance matrix.
#[derive(Debug, Clone, Default)]
pub struct Imatrix {
    /// Per weight name, the importance of each input column (times the expert count for MoE weights).
    pub entries: BTreeMap<String, Vec<f32>>,
    /// Datasets it was computed on.
    pub datasets: Vec<String>,
    /// Chunks it was computed on (0 when unknown).
    pub chunk_count: u32,
    /// Read from the legacy `.dat` format.
    pub legacy: bool,
}

/// Reads an importance matrix file (GGUF or legacy).
pub fn read_imatrix(path: &Path) -> Result<Imatrix> {
    let map = MappedFile::open(path)?;
    if map.bytes().starts_with(b"GGUF") {
        drop(map);
        return read_gguf(path);
    }
    read_legacy(path, map.bytes())
}

fn bad(path: &Path, offset: u64, what: String) -> Error {
    Error::Invalid(format!(
        "{}: imatrix at byte {offset}: {what}",
        path.display()
    ))
}

fn read_legacy(path: &Path, b: &[u8]) -> Result<Imatrix> {
    let mut at = 0usize;
    let i32_at = |at: &mut usize| -> Result<i32> {
        let v = b
            .get(*at..*at + 4)
            .ok_or_else(|| bad(path, *at as u64, "file ends inside a length field".into()))?;
        *at += 4;
        Ok(i32::from_le_bytes(v.try_into().expect("4 bytes")))
    };
    let n = i32_at(&mut at)?;
    if n < 1 {
        return Err(bad(path, 0, format!("{n} entries")));
    }
    let mut m = Imatrix {
        legacy: true,
        ..Imatrix::default()
    };
    for i in 0..n {
        let start = at;
        let len = i32_at(&mut at)?;
        let name = usize::try_from(len)
            .ok()
            .and_then(|l| b.get(at..at.checked_add(l)?))
            .ok_or_else(|| bad(path, start as u64, format!("entry {i}: name length {len}")))?;
        at += name.len();
        let name = String::from_utf8_lossy(name).into_owned();
        let ncall = i32_at(&mut at)?;
        let nval = i32_at(&mut at)?;
        let bytes = usize::try_from(nval)
            .ok()
            .filter(|&v| v >= 1)
            .and_then(|v| v.checked_mul(4))
            .and_then(|l| b.get(at..at.checked_add(l)?))
            .ok_or_else(|| {
                bad(
                    path,
                    at as u64,
                    format!("entry '{name}': {nval} values do not fit the file"),
                )
            })?;
        at += bytes.len();
        let vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| {
                let v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                if ncall > 0 {
                    v / ncall as f32
                } else {
                    v
                }
            })
            .collect();
        m.entries.insert(name, vals);
    }
    if at < b.len() {
        if let Ok(calls) = i32_at(&mut at) {
            m.chunk_count = calls.max(0) as u32;
            if let Ok(len) = i32_at(&mut at) {
                if let Some(d) = usize::try_from(len)
                    .ok()
                    .filter(|&l| l > 0)
                    .and_then(|l| b.get(at..at.checked_add(l)?))
                {
                    // C reads it as a NUL-terminated string
                    let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
                    m.datasets
                        .push(String::from_utf8_lossy(&d[..end]).into_owned());
                }
            }
        }
    }
    Ok(m)
}

fn read_gguf(path: &Path) -> Result<Imatrix> {
    let g = crate::gguf::GgufFile::open(path)?;
    let meta = g.metadata();
    let mut m = Imatrix::default();
    if let Some(Value::Array(_, items)) = meta.get("imatrix.datasets") {
        m.datasets = items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    let has_meta = meta.get("imatrix.datasets").is_some()
        && meta.get("imatrix.chunk_count").is_some()
        && meta.get("imatrix.chunk_size").is_some();
    if !has_meta {
        return Err(Error::Invalid(format!(
            "{}: GGUF imatrix without its imatrix.datasets / chunk_count / chunk_size keys",
            path.display()
        )));
    }
    m.chunk_count = meta
        .get("imatrix.chunk_count")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32;
    let mut pairs: BTreeMap<String, (Option<usize>, Option<usize>)> = BTreeMap::new();
    for (i, t) in g.tensors().iter().enumerate() {
        if let Some(n) = t.name.strip_suffix(".in_sum2") {
            pairs.entry(n.to_string()).or_default().0 = Some(i);
        } else if let Some(n) = t.name.strip_suffix(".counts") {
            pairs.entry(n.to_string()).or_default().1 = Some(i);
        }
    }
    if pairs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no imatrix entries",
            path.display()
        )));
    }
    let floats = |i: usize| -> Result<Vec<f32>> {
        let t = &g.tensors()[i];
        if t.dtype != lbrx_core::DType::F32 {
            return Err(Error::Invalid(format!(
                "{}: imatrix tensor '{}' is {}, not F32",
                path.display(),
                t.name,
                t.dtype
            )));
        }
        let v = g.view(i)?;
        Ok(v.bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    };
    for (name, (s, c)) in pairs {
        let (Some(s), Some(c)) = (s, c) else {
            return Err(Error::Invalid(format!(
                "{}: imatrix entry '{name}' lacks its sums or counts",
                path.display()
            )));
        };
        let sums = floats(s)?;
        let counts: Vec<i64> = floats(c)?.iter().map(|v| v.round() as i64).collect();
        if counts.is_empty() || !sums.len().is_multiple_of(counts.len()) {
            return Err(Error::Invalid(format!(
                "{}: imatrix entry '{name}': {} sums for {} counts",
                path.display(),
                sums.len(),
                counts.len()
            )));
        }
        let ne0 = sums.len() / counts.len();
        let mut e = vec![0f32; sums.len()];
        for (j, &count) in counts.iter().enumerate() {
            let cf = count as f32;
            for i in 0..ne0 {
                e[j * ne0 + i] = if cf > 0.0 {
                    sums[j * ne0 + i] / cf
                } else {
                    1.0
                };
            }
        }
        m.entries.insert(name, e);
    }
    Ok(m)
}

//! Chunked datasets: the v1 B-tree of raw-data chunks (node type 1) and the filter pipeline
//! (spec: "Data Layout Message", "Filter Pipeline Message", "Version 1 B-trees" of the HDF5 file format).
//!
//! ```text
//! TREE | type 1 | level | entries | left, right | (key, child)* key
//! key: chunk bytes (u32) | filter mask (u32) | chunk offset per dimension + 0 (u64 each)
//! ```
//!
//! Each chunk is read, its filters undone in reverse order (deflate, shuffle, fletcher32 verified) and copied
//! into place; chunks never written keep the fill value 0. Other filters (szip, lzf, blosc ...) are refused.

use super::H5;
use lbrx_core::{DType, Error, Result};
use std::io::Read;

/// One filter of a dataset's pipeline.
#[derive(Debug, Clone)]
pub(super) struct Filter {
    id: u16,
    values: Vec<u32>,
}

/// Most chunks followed per dataset.
const MAX_CHUNKS: usize = 1 << 24;

/// Filter names for errors.
const FILTER_NAMES: &[(u16, &str)] = &[
    (1, "deflate"),
    (2, "shuffle"),
    (3, "fletcher32"),
    (4, "szip"),
    (5, "nbit"),
    (6, "scaleoffset"),
    (32000, "lzf"),
    (32001, "blosc"),
    (32015, "zstd"),
];

impl H5<'_> {
    /// The filter pipeline message at `d`.
    pub(super) fn filters(&self, d: usize) -> Result<Vec<Filter>> {
        let version = self.bytes(d, 1)?[0];
        let n = self.bytes(d + 1, 1)?[0] as usize;
        let mut p = d + if version == 1 { 8 } else { 2 };
        let mut out = Vec::with_capacity(n.min(32));
        for _ in 0..n {
            let id = self.uint(p, 2)? as u16;
            let (name_len, q) = if version == 1 || id >= 256 {
                (self.uint(p + 2, 2)? as usize, p + 4)
            } else {
                (0, p + 2)
            };
            let nvals = self.uint(q + 2, 2)? as usize;
            let mut v = q + 4;
            v += if version == 1 {
                name_len.next_multiple_of(8)
            } else {
                name_len
            };
            let values = (0..nvals)
                .map(|k| self.uint(v + 4 * k, 4).map(|x| x as u32))
                .collect::<Result<Vec<_>>>()?;
            p = v + 4 * nvals;
            if version == 1 && nvals % 2 == 1 {
                p += 4;
            }
            out.push(Filter { id, values });
        }
        Ok(out)
    }

    /// A chunked dataset's bytes, assembled.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn chunked(
        &self,
        name: &str,
        btree: Option<usize>,
        chunk: &[u64],
        shape: &[u64],
        dtype: DType,
        filters: &[Filter],
        len: u64,
    ) -> Result<Vec<u8>> {
        if let Some(f) = filters.iter().find(|f| !matches!(f.id, 1..=3)) {
            let fname = FILTER_NAMES
                .iter()
                .find(|n| n.0 == f.id)
                .map_or("unknown", |n| n.1);
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                what: format!(
                    "dataset '{name}' is compressed with the {fname} filter (id {}); lbrx reads deflate, shuffle \
                     and fletcher32",
                    f.id
                ),
            });
        }
        if chunk.len() != shape.len() || chunk.contains(&0) {
            return Err(self.bad(
                0,
                format!("dataset '{name}': chunk {chunk:?} for shape {shape:?}"),
            ));
        }
        // deflate expands at most ~1032:1, so no honest dataset is larger than that of the file
        let cap = (self.buf.len() as u64)
            .saturating_mul(1032)
            .saturating_add(1 << 20);
        if len > cap {
            return Err(self.bad(
                0,
                format!("dataset '{name}' of {len} bytes cannot come from this file"),
            ));
        }
        let mut out = vec![0u8; len as usize];
        let Some(root) = btree else { return Ok(out) };
        let esize = dtype.info().type_size as usize;
        let chunk_bytes =
            dtype.byte_len(chunk).filter(|&b| b <= cap).ok_or_else(|| {
                self.bad(0, format!("dataset '{name}': chunk {chunk:?} too large"))
            })? as usize;
        let mut leaves = Vec::new();
        self.chunk_tree(root, shape.len(), &mut leaves, 0)?;
        for (size, mask, offset, addr) in leaves {
            let raw = self.bytes(addr, size)?;
            let data = unfilter(raw, filters, mask, esize, chunk_bytes)
                .map_err(|w| self.bad(addr, format!("dataset '{name}', chunk {offset:?}: {w}")))?;
            place(&mut out, &data, &offset, chunk, shape, esize)
                .map_err(|w| self.bad(addr, format!("dataset '{name}': {w}")))?;
        }
        Ok(out)
    }

    /// The leaves (chunk bytes, filter mask, chunk offset, address) below B-tree node `at`.
    fn chunk_tree(
        &self,
        at: usize,
        rank: usize,
        out: &mut Vec<(usize, u32, Vec<u64>, usize)>,
        depth: usize,
    ) -> Result<()> {
        if depth > super::MAX_DEPTH || out.len() > MAX_CHUNKS {
            return Err(self.bad(at, "chunk B-tree too deep or too large"));
        }
        self.sig(at, b"TREE")?;
        if self.bytes(at + 4, 1)?[0] != 1 {
            return Err(self.bad(at, "not a chunk B-tree"));
        }
        let level = self.bytes(at + 5, 1)?[0];
        let used = self.uint(at + 6, 2)? as usize;
        let key = 8 + 8 * (rank + 1);
        let mut p = at + 8 + 2 * self.so;
        for _ in 0..used {
            let size = self.uint(p, 4)? as usize;
            let mask = self.uint(p + 4, 4)? as u32;
            let offset = (0..rank)
                .map(|k| self.uint(p + 8 + 8 * k, 8))
                .collect::<Result<Vec<_>>>()?;
            let child = self.need_addr(p + key)?;
            if level > 0 {
                self.chunk_tree(child, rank, out, depth + 1)?;
            } else {
                out.push((size, mask, offset, child));
            }
            p += key + self.so;
        }
        Ok(())
    }
}

/// Undoes the filters (last applied first) not masked off for this chunk; the result must be a whole chunk.
fn unfilter(
    raw: &[u8],
    filters: &[Filter],
    mask: u32,
    esize: usize,
    want: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut data = raw.to_vec();
    for (i, f) in filters.iter().enumerate().rev() {
        if mask & (1 << i) != 0 {
            continue;
        }
        data = match f.id {
            1 => {
                let mut out = Vec::with_capacity(want);
                flate2::read::ZlibDecoder::new(data.as_slice())
                    .take(want as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("deflate: {e}"))?;
                out
            }
            2 => {
                let es = f.values.first().map_or(esize, |&v| v as usize).max(1);
                unshuffle(&data, es)
            }
            3 => {
                let n = data
                    .len()
                    .checked_sub(4)
                    .ok_or("fletcher32 checksum missing")?;
                let stored = u32::from_le_bytes(data[n..].try_into().unwrap_or_default());
                let computed = fletcher32(&data[..n]);
                let c = computed.to_le_bytes();
                let reversed = u32::from_le_bytes([c[2], c[3], c[0], c[1]]);
                if stored != computed && stored != reversed {
                    return Err(format!(
                        "fletcher32 checksum {stored:#010x}, the bytes give {computed:#010x}: the file is damaged"
                    ));
                }
                data.truncate(n);
                data
            }
            _ => unreachable!("filters are checked before reading"),
        };
    }
    if data.len() != want {
        return Err(format!(
            "{} bytes after its filters, a chunk holds {want}",
            data.len()
        ));
    }
    Ok(data)
}

/// The shuffle filter undone: byte `b` of element `i` was stored at `b * n + i`.
fn unshuffle(data: &[u8], es: usize) -> Vec<u8> {
    let n = data.len() / es;
    let mut out = data.to_vec();
    for i in 0..n {
        for b in 0..es {
            out[i * es + b] = data[b * n + i];
        }
    }
    out
}

/// HDF5's Fletcher-32 (`H5_checksum_fletcher32`): sums of big-endian 16-bit words, folded every 360 words.
fn fletcher32(data: &[u8]) -> u32 {
    let (mut s1, mut s2) = (0u32, 0u32);
    for block in data.chunks(720) {
        for w in block.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]]) as u32
            } else {
                (w[0] as u32) << 8
            };
            s1 += v;
            s2 += s1;
        }
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    (s2 << 16) | s1
}

/// Copies a chunk at `offset` into the dataset, clipping what lies past the dataset's edge.
fn place(
    out: &mut [u8],
    data: &[u8],
    offset: &[u64],
    chunk: &[u64],
    shape: &[u64],
    esize: usize,
) -> std::result::Result<(), String> {
    let rank = shape.len();
    if offset.iter().zip(shape).any(|(&o, &s)| o >= s.max(1)) {
        return Err(format!("chunk at {offset:?} outside the shape {shape:?}"));
    }
    if rank == 0 {
        let n = out.len().min(data.len());
        out[..n].copy_from_slice(&data[..n]);
        return Ok(());
    }
    let last = rank - 1;
    let run = (chunk[last].min(shape[last] - offset[last])) as usize * esize;
    let rows: u64 = chunk[..last].iter().product();
    for r in 0..rows {
        let (mut rest, mut dst, mut inside) = (r, 0u64, true);
        let mut idx = vec![0u64; last];
        for d in (0..last).rev() {
            idx[d] = rest % chunk[d];
            rest /= chunk[d];
        }
        for d in 0..last {
            let i = offset[d] + idx[d];
            inside &= i < shape[d];
            dst = dst * shape[d] + i;
        }
        if !inside {
            continue;
        }
        let dst = ((dst * shape[last] + offset[last]) as usize) * esize;
        let src = (r * chunk[last]) as usize * esize;
        out[dst..dst + run].copy_from_slice(&data[src..src + run]);
    }
    Ok(())
}

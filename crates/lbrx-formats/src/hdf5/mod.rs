//! HDF5 files as Keras writes them (`.h5`, `.hdf5`, and the `model.weights.h5` inside a `.keras` zip), the
//! subset h5py produces by default (spec: <https://docs.hdfgroup.org/hdf5/develop/_f_m_t3.html>):
//!
//! ```text
//! superblock v0/v1 (v2/v3): "\x89HDF\r\n\x1a\n", versions, offset/length sizes, ..., root group
//! object header v1 (messages, continuation blocks) or v2 ("OHDR", "OCHK")
//! groups: symbol table message -> v1 B-tree ("TREE") of symbol nodes ("SNOD") + local heap ("HEAP") names,
//!         or compact link messages
//! datasets: dataspace, datatype (fixed-point, floating-point), filter pipeline, layout (compact, contiguous,
//!           chunked through a v1 B-tree: see [`chunks`])
//! ```
//!
//! Tensors are the numeric datasets, named by their path (`model_weights/dense/dense/kernel:0`,
//! `layers/dense/vars/0`). Chunks indexed the HDF5 1.10 way (`libver='latest'`), filters other than deflate,
//! shuffle and fletcher32, and dense link storage are refused with a clear error. Written by hand: the Rust HDF5 crates bind the C library; every read here is bounds-checked and the
//! walk is depth-limited and cycle-safe.

use lbrx_core::{DType, Error, Location, Malformed, Result};
use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

/// Deepest group nesting followed.
const MAX_DEPTH: usize = 64;
/// Most object header continuation blocks followed per object.
const MAX_CONTINUATIONS: usize = 4096;

/// One numeric dataset found in the file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Path from the root, without a leading `/`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Its bytes in the buffer (`None`: never written, all zeros, or assembled from chunks into `owned`).
    pub data: Option<Range<usize>>,
    /// Its bytes assembled from (filtered) chunks.
    pub owned: Option<Vec<u8>>,
    /// Stored big-endian.
    pub big_endian: bool,
}

/// The parsed file: its datasets and what was skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Numeric datasets.
    pub datasets: Vec<Dataset>,
    /// The root group's `model_config` attribute (Keras' model JSON), if it is a string.
    pub model_config: Option<String>,
    /// Skipped objects, for people.
    pub warnings: Vec<String>,
}

struct H5<'a> {
    buf: &'a [u8],
    path: &'a Path,
    so: usize,
    sl: usize,
    base: u64,
    seen: HashSet<u64>,
    out: Parsed,
}

/// What an object header says.
#[derive(Default)]
struct Object {
    symbol_table: Option<(u64, u64)>,
    links: Vec<(String, u64)>,
    dense_links: bool,
    space: Option<Vec<u64>>,
    dtype: Option<std::result::Result<(DType, bool), String>>,
    layout: Option<Layout>,
    filters: Vec<chunks::Filter>,
    model_config: Option<String>,
}

enum Layout {
    Contiguous(u64, u64),
    Compact(Range<usize>),
    /// B-tree address (None: nothing written) and the chunk's dimensions (without the element size).
    Chunked(Option<usize>, Vec<u64>),
    /// Chunks indexed the HDF5 1.10 way (fixed or extensible arrays, v2 B-trees).
    Indexed,
    Other(u8),
}

impl<'a> H5<'a> {
    fn bad(&self, at: usize, what: impl Into<String>) -> Error {
        Error::malformed(
            Location::file(self.path).at(at as u64),
            Malformed::Other(format!("HDF5: {}", what.into())),
        )
    }

    fn bytes(&self, at: usize, n: usize) -> Result<&'a [u8]> {
        at.checked_add(n)
            .and_then(|e| self.buf.get(at..e))
            .ok_or_else(|| self.bad(at, format!("{n} bytes past the end of the file")))
    }

    fn uint(&self, at: usize, n: usize) -> Result<u64> {
        let b = self.bytes(at, n)?;
        Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
    }

    /// An address field: `None` when undefined (all ones).
    fn addr(&self, at: usize) -> Result<Option<usize>> {
        let v = self.uint(at, self.so)?;
        if v == u64::MAX >> (64 - 8 * self.so as u32) {
            return Ok(None);
        }
        let abs = v
            .checked_add(self.base)
            .ok_or_else(|| self.bad(at, "address overflows"))?;
        usize::try_from(abs)
            .ok()
            .filter(|&a| a < self.buf.len())
            .map(Some)
            .ok_or_else(|| self.bad(at, format!("address {abs} past the end of the file")))
    }

    fn need_addr(&self, at: usize) -> Result<usize> {
        self.addr(at)?
            .ok_or_else(|| self.bad(at, "undefined address"))
    }

    fn sig(&self, at: usize, s: &[u8; 4]) -> Result<()> {
        if self.bytes(at, 4)? != s {
            return Err(self.bad(at, format!("expected '{}'", String::from_utf8_lossy(s))));
        }
        Ok(())
    }

    /// Reads the object header at `at`.
    fn object(&self, at: usize) -> Result<Object> {
        let mut o = Object::default();
        let mut blocks: Vec<(usize, usize, bool)> = Vec::new();
        if self.bytes(at, 4)? == b"OHDR" {
            let version = self.bytes(at + 4, 1)?[0];
            if version != 2 {
                return Err(self.bad(at, format!("object header version {version}")));
            }
            let flags = self.bytes(at + 5, 1)?[0];
            let mut p = at + 6;
            if flags & 0x20 != 0 {
                p += 16;
            }
            if flags & 0x10 != 0 {
                p += 4;
            }
            let w = 1usize << (flags & 3);
            let size = self.uint(p, w)? as usize;
            p += w;
            self.bytes(p, size)?;
            blocks.push((p, size, flags & 0x04 != 0));
        } else {
            let version = self.bytes(at, 1)?[0];
            if version != 1 {
                return Err(self.bad(at, format!("object header version {version}")));
            }
            let size = self.uint(at + 8, 4)? as usize;
            self.bytes(at + 16, size)?;
            blocks.push((at + 16, size, false));
        }
        let v2 = self.bytes(at, 4)? == b"OHDR";
        let mut i = 0;
        while i < blocks.len() {
            if i > MAX_CONTINUATIONS {
                return Err(self.bad(at, "too many object header continuations"));
            }
            let (start, size, order) = blocks[i];
            let end = start + size;
            let mut p = start;
            let head = if v2 { 4 + if order { 2 } else { 0 } } else { 8 };
            while p + head <= end {
                let (ty, len) = if v2 {
                    (self.bytes(p, 1)?[0] as u16, self.uint(p + 1, 2)? as usize)
                } else {
                    (self.uint(p, 2)? as u16, self.uint(p + 2, 2)? as usize)
                };
                let d = p + head;
                if d + len > end {
                    return Err(self.bad(p, "message past the end of its header block"));
                }
                self.message(&mut o, ty, d, &mut blocks, v2)?;
                p = d + len;
            }
            i += 1;
        }
        Ok(o)
    }

    fn message(
        &self,
        o: &mut Object,
        ty: u16,
        d: usize,
        blocks: &mut Vec<(usize, usize, bool)>,
        v2: bool,
    ) -> Result<()> {
        match ty {
            0x0001 => {
                let version = self.bytes(d, 1)?[0];
                let rank = self.bytes(d + 1, 1)?[0] as usize;
                let (start, scalar_null) = match version {
                    1 => (d + 8, false),
                    2 => (d + 4, self.bytes(d + 3, 1)?[0] == 2),
                    v => return Err(self.bad(d, format!("dataspace version {v}"))),
                };
                let dims = (0..rank)
                    .map(|k| self.uint(start + k * self.sl, self.sl))
                    .collect::<Result<Vec<_>>>()?;
                o.space = Some(if scalar_null { vec![0] } else { dims });
            }
            0x0003 => {
                let b0 = self.bytes(d, 1)?[0];
                let bits = self.bytes(d + 1, 1)?[0];
                let size = self.uint(d + 4, 4)?;
                let be = bits & 1 != 0;
                o.dtype = Some(match (b0 & 0x0f, size) {
                    (0, _) => {
                        let signed = bits & 0x08 != 0;
                        match (signed, size) {
                            (true, 1) => Ok((DType::I8, be)),
                            (true, 2) => Ok((DType::I16, be)),
                            (true, 4) => Ok((DType::I32, be)),
                            (true, 8) => Ok((DType::I64, be)),
                            (false, 1) => Ok((DType::U8, be)),
                            (false, 2) => Ok((DType::U16, be)),
                            (false, 4) => Ok((DType::U32, be)),
                            (false, 8) => Ok((DType::U64, be)),
                            _ => Err(format!("{size}-byte integers")),
                        }
                    }
                    (1, 2) => Ok((DType::F16, be)),
                    (1, 4) => Ok((DType::F32, be)),
                    (1, 8) => Ok((DType::F64, be)),
                    (class, size) => Err(format!("datatype class {class} of {size} bytes")),
                });
            }
            0x0008 => {
                let version = self.bytes(d, 1)?[0];
                o.layout = Some(match version {
                    3 | 4 => match self.bytes(d + 1, 1)?[0] {
                        0 => {
                            let n = self.uint(d + 2, 2)? as usize;
                            self.bytes(d + 4, n)?;
                            Layout::Compact(d + 4..d + 4 + n)
                        }
                        1 => Layout::Contiguous(
                            self.addr(d + 2)?.map_or(u64::MAX, |a| a as u64),
                            self.uint(d + 2 + self.so, self.sl)?,
                        ),
                        2 if version == 4 => Layout::Indexed,
                        2 => {
                            // dimensionality counts the element size as a last dimension
                            let k = self.bytes(d + 2, 1)?[0] as usize;
                            let at = d + 3 + self.so;
                            let dims = (0..k.saturating_sub(1))
                                .map(|i| self.uint(at + 4 * i, 4))
                                .collect::<Result<Vec<_>>>()?;
                            Layout::Chunked(self.addr(d + 3)?, dims)
                        }
                        c => Layout::Other(c),
                    },
                    1 | 2 => {
                        let rank = self.bytes(d + 1, 1)?[0] as usize;
                        match self.bytes(d + 2, 1)?[0] {
                            0 => {
                                let at = d + 8 + rank * 4;
                                let n = self.uint(at, 4)? as usize;
                                self.bytes(at + 4, n)?;
                                Layout::Compact(at + 4..at + 4 + n)
                            }
                            1 => Layout::Contiguous(
                                self.addr(d + 8)?.map_or(u64::MAX, |a| a as u64),
                                u64::MAX - 1,
                            ),
                            2 => {
                                let at = d + 8 + self.so;
                                let dims = (0..rank.saturating_sub(1))
                                    .map(|i| self.uint(at + 4 * i, 4))
                                    .collect::<Result<Vec<_>>>()?;
                                Layout::Chunked(self.addr(d + 8)?, dims)
                            }
                            c => Layout::Other(c),
                        }
                    }
                    v => return Err(self.bad(d, format!("data layout version {v}"))),
                });
            }
            0x0010 => {
                let at = self.need_addr(d)?;
                let n = self.uint(d + self.so, self.sl)? as usize;
                self.bytes(at, n)?;
                if v2 {
                    self.sig(at, b"OCHK")?;
                    blocks.push((at + 4, n.saturating_sub(8), blocks[0].2));
                } else {
                    blocks.push((at, n, false));
                }
            }
            0x000C => {
                o.model_config = o
                    .model_config
                    .take()
                    .or(self.string_attribute(d, "model_config")?)
            }
            0x000B => o.filters = self.filters(d)?,
            0x0011 => {
                o.symbol_table = Some((
                    self.need_addr(d)? as u64,
                    self.need_addr(d + self.so)? as u64,
                ));
            }
            0x0002 => {
                let flags = self.bytes(d + 1, 1)?[0];
                let at = d + 2 + if flags & 1 != 0 { 8 } else { 0 };
                if self.addr(at)?.is_some() {
                    o.dense_links = true;
                }
            }
            0x0006 => {
                let flags = self.bytes(d + 1, 1)?[0];
                let mut p = d + 2;
                let kind = if flags & 0x08 != 0 {
                    p += 1;
                    self.bytes(p - 1, 1)?[0]
                } else {
                    0
                };
                if flags & 0x04 != 0 {
                    p += 8;
                }
                if flags & 0x10 != 0 {
                    p += 1;
                }
                let w = 1usize << (flags & 3);
                let n = self.uint(p, w)? as usize;
                p += w;
                let name = String::from_utf8_lossy(self.bytes(p, n)?).into_owned();
                if kind == 0 {
                    o.links.push((name, self.need_addr(p + n)? as u64));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The value of the attribute message at `d` if it is named `want` and holds one string (fixed-length, or
    /// variable-length in the global heap).
    fn string_attribute(&self, d: usize, want: &str) -> Result<Option<String>> {
        let version = self.bytes(d, 1)?[0];
        let (nlen, tlen, slen) = (
            self.uint(d + 2, 2)? as usize,
            self.uint(d + 4, 2)? as usize,
            self.uint(d + 6, 2)? as usize,
        );
        let pad = |n: usize| {
            if version == 1 {
                n.next_multiple_of(8)
            } else {
                n
            }
        };
        let name_at = d + 8 + if version == 3 { 1 } else { 0 };
        let name = self.bytes(name_at, nlen)?;
        if name.split(|&c| c == 0).next() != Some(want.as_bytes()) {
            return Ok(None);
        }
        let t = name_at + pad(nlen);
        let data = t + pad(tlen) + pad(slen);
        let class = self.bytes(t, 1)?[0] & 0x0f;
        let size = self.uint(t + 4, 4)? as usize;
        let text = match class {
            3 => self.bytes(data, size)?.to_vec(),
            9 if self.bytes(t + 1, 1)?[0] & 0x0f == 1 => {
                // length, then the global heap collection and the object's index there
                let gcol = self.need_addr(data + 4)?;
                let index = self.uint(data + 4 + self.so, 4)?;
                self.sig(gcol, b"GCOL")?;
                let end = gcol.saturating_add(self.uint(gcol + 8, self.sl)? as usize);
                let mut p = gcol + 8 + self.sl;
                loop {
                    if p + 8 + self.sl > end.min(self.buf.len()) {
                        return Ok(None);
                    }
                    let (id, n) = (self.uint(p, 2)?, self.uint(p + 8, self.sl)? as usize);
                    if id == 0 {
                        return Ok(None);
                    }
                    if id == index {
                        break self.bytes(p + 8 + self.sl, n)?.to_vec();
                    }
                    match n
                        .checked_next_multiple_of(8)
                        .and_then(|n| (p + 8 + self.sl).checked_add(n))
                    {
                        Some(next) => p = next,
                        None => return Ok(None),
                    }
                }
            }
            _ => return Ok(None),
        };
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        Ok(Some(String::from_utf8_lossy(&text[..end]).into_owned()))
    }

    /// The (name, object address) pairs of a v1 group: its B-tree's symbol nodes, names from the local heap.
    fn symbols(
        &self,
        btree: usize,
        heap: usize,
        out: &mut Vec<(String, u64)>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.bad(btree, "group B-tree too deep"));
        }
        self.sig(heap, b"HEAP")?;
        let heap_data = self.need_addr(heap + 8 + 2 * self.sl)?;
        let heap_size = self.uint(heap + 8, self.sl)? as usize;
        self.sig(btree, b"TREE")?;
        let level = self.bytes(btree + 5, 1)?[0];
        let used = self.uint(btree + 6, 2)? as usize;
        let mut p = btree + 8 + 2 * self.so;
        for _ in 0..used {
            p += self.sl; // key
            let child = self.need_addr(p)?;
            p += self.so;
            if level > 0 {
                self.symbols(child, heap, out, depth + 1)?;
                continue;
            }
            self.sig(child, b"SNOD")?;
            let n = self.uint(child + 6, 2)? as usize;
            let entry = 2 * self.so + 24;
            for k in 0..n {
                let e = child + 8 + k * entry;
                let name_off = self.uint(e, self.so)? as usize;
                let obj = self.need_addr(e + self.so)? as u64;
                if name_off >= heap_size {
                    return Err(self.bad(e, "symbol name outside the local heap"));
                }
                let at = heap_data
                    .checked_add(name_off)
                    .ok_or_else(|| self.bad(e, "symbol name past the end of the file"))?;
                let s = self.bytes(
                    at,
                    (heap_size - name_off).min(self.buf.len().saturating_sub(at)),
                )?;
                let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                out.push((String::from_utf8_lossy(&s[..end]).into_owned(), obj));
            }
        }
        Ok(())
    }

    fn walk(&mut self, at: usize, name: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.bad(at, "groups nested too deep"));
        }
        if !self.seen.insert(at as u64) {
            return Ok(()); // a second hard link to an object already read
        }
        let o = self.object(at)?;
        if depth == 0 {
            self.out.model_config = o.model_config.clone();
        }
        if o.dense_links {
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                what: format!("group '{name}' keeps its links in dense (fractal heap) storage"),
            });
        }
        let mut children = o.links.clone();
        if let Some((btree, heap)) = o.symbol_table {
            self.symbols(btree as usize, heap as usize, &mut children, 0)?;
        }
        if o.symbol_table.is_some() || !o.links.is_empty() {
            children.sort();
            for (child, addr) in children {
                let path = if name.is_empty() {
                    child
                } else {
                    format!("{name}/{child}")
                };
                self.walk(addr as usize, &path, depth + 1)?;
            }
            return Ok(());
        }
        let (Some(shape), Some(dtype), Some(layout)) = (o.space, o.dtype, o.layout) else {
            return Ok(()); // a committed datatype or an empty group
        };
        let (dtype, big_endian) = match dtype {
            Ok(d) => d,
            Err(what) => {
                self.out
                    .warnings
                    .push(format!("{name}: {what} skipped (not a numeric tensor)"));
                return Ok(());
            }
        };
        let len = dtype.byte_len(&shape).ok_or_else(|| {
            self.bad(at, format!("dataset '{name}' of shape {shape:?} overflows"))
        })?;
        let mut owned = None;
        let data = match layout {
            Layout::Other(c) => {
                return Err(self.bad(at, format!("dataset '{name}': layout class {c}")));
            }
            Layout::Indexed => {
                return Err(Error::Unsupported {
                    path: self.path.to_path_buf(),
                    what: format!(
                    "dataset '{name}' is chunked with the HDF5 1.10 chunk indexes (written with \
                         libver='latest'); lbrx reads chunked datasets of the default file format"
                ),
                })
            }
            Layout::Chunked(btree, chunk) => {
                owned = Some(self.chunked(name, btree, &chunk, &shape, dtype, &o.filters, len)?);
                None
            }
            Layout::Compact(r) => Some(r.start..r.start + (len as usize).min(r.len())),
            Layout::Contiguous(u64::MAX, _) => None,
            Layout::Contiguous(a, size) => {
                if size != u64::MAX - 1 && size != len {
                    return Err(self.bad(
                        at,
                        format!("dataset '{name}' stores {size} bytes, its shape needs {len}"),
                    ));
                }
                let a = a as usize;
                self.bytes(a, len as usize)?;
                Some(a..a + len as usize)
            }
        };
        if let Some(r) = &data {
            if r.len() as u64 != len {
                return Err(self.bad(
                    at,
                    format!(
                        "dataset '{name}' holds {} bytes, its shape needs {len}",
                        r.len()
                    ),
                ));
            }
        }
        self.out.datasets.push(Dataset {
            name: name.to_string(),
            dtype,
            shape,
            data,
            owned,
            big_endian,
        });
        Ok(())
    }
}

/// Parses an HDF5 file held in `buf` (`path` names it in errors).
pub fn parse(buf: &[u8], path: &Path) -> Result<Parsed> {
    let sig = b"\x89HDF\r\n\x1a\n";
    let start = [0usize, 512, 1024, 2048, 4096, 8192]
        .into_iter()
        .find(|&s| buf.get(s..s + 8) == Some(sig))
        .ok_or_else(|| {
            Error::malformed(
                Location::file(path),
                Malformed::InvalidHeader("no HDF5 signature".into()),
            )
        })?;
    let mut h = H5 {
        buf,
        path,
        so: 8,
        sl: 8,
        base: 0,
        seen: HashSet::new(),
        out: Parsed::default(),
    };
    let version = h.bytes(start + 8, 1)?[0];
    let root = match version {
        0 | 1 => {
            h.so = h.bytes(start + 13, 1)?[0] as usize;
            h.sl = h.bytes(start + 14, 1)?[0] as usize;
            if !matches!(h.so, 2 | 4 | 8) || !matches!(h.sl, 2 | 4 | 8) {
                return Err(h.bad(start + 13, "offset or length size not 2, 4 or 8"));
            }
            let p = start + 24 + if version == 1 { 4 } else { 0 };
            h.base = h.uint(p, h.so)?;
            // root symbol table entry after base, free-space, end-of-file and driver addresses
            let entry = p + 4 * h.so;
            h.need_addr(entry + h.so)?
        }
        2 | 3 => {
            h.so = h.bytes(start + 9, 1)?[0] as usize;
            h.sl = h.bytes(start + 10, 1)?[0] as usize;
            if !matches!(h.so, 2 | 4 | 8) || !matches!(h.sl, 2 | 4 | 8) {
                return Err(h.bad(start + 9, "offset or length size not 2, 4 or 8"));
            }
            h.base = h.uint(start + 12, h.so)?;
            h.need_addr(start + 12 + 3 * h.so)?
        }
        v => return Err(h.bad(start + 8, format!("superblock version {v}"))),
    };
    h.walk(root, "", 0)?;
    Ok(h.out)
}

pub mod chunks;
mod source;
pub use source::open;

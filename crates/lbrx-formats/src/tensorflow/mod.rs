//! TensorFlow checkpoints (TensorBundle) and SavedModels.
//!
//! A checkpoint is a prefix `P` naming `P.index` (an SSTable, see [`sstable`]) and the shards
//! `P.data-0000N-of-0000M` (spec: `tensorflow/core/util/tensor_bundle/tensor_bundle.h`):
//!
//! ```text
//! P.index: ""  -> BundleHeaderProto { num_shards, endianness }
//!          KEY -> BundleEntryProto { dtype, shape, shard_id, offset, size, crc32c (masked), slices[] }
//! P.data-*: the tensors' raw bytes, back to back
//! ```
//!
//! A partitioned variable's entry lists its slices; each slice is stored under the key
//! `OrderedCode(0, name, rank, (start, length)*)` and is copied into place. A SavedModel directory holds
//! `saved_model.pb` and the checkpoint `variables/variables`; its graph's `Const` nodes of 16 KiB or more are
//! tensors too, named by node (`FUNCTION/NODE` inside the function library). Tensor names are the checkpoint
//! keys, as `tf.train.load_checkpoint(P).get_variable_to_dtype_map()` lists them. Every block's and tensor's
//! crc32c is verified when the checkpoint is opened.

pub mod proto;
pub mod sstable;

use crate::mmap::MappedFile;
use crate::stored::{swap_elements, StoredBuilder, StoredSource};
use bytes::Bytes;
use lbrx_core::{DType, Error, Format, Location, Malformed, Result, TensorInfo};
use prost::Message;
use proto::{BundleEntryProto, BundleHeaderProto, NodeDef, SavedModel, TensorProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Graph constants at least this large are exposed as tensors.
pub const CONST_MIN_BYTES: u64 = 16 << 10;
/// Most bytes a constant given by repeated typed values is expanded to.
const EXPAND_CAP: u64 = 4 << 30;

/// The `DataType` registry: TensorFlow id, name, lbrx dtype. Other types (strings, resources, variants,
/// complex128, 4-bit) are skipped with a warning.
const DATA_TYPES: &[(i32, &str, DType)] = &[
    (1, "DT_FLOAT", DType::F32),
    (2, "DT_DOUBLE", DType::F64),
    (3, "DT_INT32", DType::I32),
    (4, "DT_UINT8", DType::U8),
    (5, "DT_INT16", DType::I16),
    (6, "DT_INT8", DType::I8),
    (8, "DT_COMPLEX64", DType::C64),
    (9, "DT_INT64", DType::I64),
    (10, "DT_BOOL", DType::Bool),
    (11, "DT_QINT8", DType::I8),
    (12, "DT_QUINT8", DType::U8),
    (13, "DT_QINT32", DType::I32),
    (14, "DT_BFLOAT16", DType::BF16),
    (15, "DT_QINT16", DType::I16),
    (16, "DT_QUINT16", DType::U16),
    (17, "DT_UINT16", DType::U16),
    (19, "DT_HALF", DType::F16),
    (22, "DT_UINT32", DType::U32),
    (23, "DT_UINT64", DType::U64),
    (24, "DT_FLOAT8_E5M2", DType::F8E5M2),
    (25, "DT_FLOAT8_E4M3FN", DType::F8E4M3),
    (26, "DT_FLOAT8_E4M3FNUZ", DType::F8E4M3Fnuz),
    (28, "DT_FLOAT8_E5M2FNUZ", DType::F8E5M2Fnuz),
];

fn data_type(id: i32) -> Option<DType> {
    DATA_TYPES.iter().find(|r| r.0 == id).map(|r| r.2)
}

/// The checkpoint prefix (and SavedModel graph file) a path names: a SavedModel directory, a directory holding
/// one checkpoint (its `checkpoint` file's latest, or its only `.index`), a `.index` file or a bare prefix.
pub fn resolve(path: &Path) -> Result<(Option<PathBuf>, Option<PathBuf>)> {
    let not_found = || Error::Unsupported {
        path: path.to_path_buf(),
        what: "no TensorFlow checkpoint here (no saved_model.pb, no *.index)".into(),
    };
    if path.is_dir() {
        let pb = path.join("saved_model.pb");
        if pb.is_file() {
            let prefix = path.join("variables/variables");
            let has = index_of(&prefix).is_file();
            return Ok((has.then_some(prefix), Some(pb)));
        }
        if let Ok(text) = std::fs::read_to_string(path.join("checkpoint")) {
            let latest = text.lines().find_map(|l| {
                l.strip_prefix("model_checkpoint_path:")
                    .map(|v| v.trim().trim_matches('"').to_string())
            });
            if let Some(p) = latest {
                let prefix = path.join(p);
                if index_of(&prefix).is_file() {
                    return Ok((Some(prefix), None));
                }
            }
        }
        let names = crate::sharded::list_dir(path)?;
        let mut idx = names.iter().filter_map(|n| n.strip_suffix(".index"));
        return match (idx.next(), idx.next()) {
            (Some(p), None) => Ok((Some(path.join(p)), None)),
            (Some(_), Some(_)) => Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "several checkpoints (*.index) and no 'checkpoint' file naming the latest; \
                       pass the prefix or the .index file"
                    .into(),
            }),
            _ => Err(not_found()),
        };
    }
    if let Some(p) = path.to_str().and_then(|s| s.strip_suffix(".index")) {
        return Ok((Some(PathBuf::from(p)), None));
    }
    if index_of(path).is_file() {
        return Ok((Some(path.to_path_buf()), None));
    }
    Err(not_found())
}

/// `P.index` (also for the empty prefix `dir/`).
fn index_of(prefix: &Path) -> PathBuf {
    PathBuf::from(format!("{}.index", prefix.display()))
}

/// Opens a checkpoint or SavedModel, verifying every checksum.
pub fn open(path: &Path) -> Result<StoredSource> {
    let (prefix, graph) = resolve(path)?;
    let mut b = StoredBuilder::new(Format::TensorFlow, path);
    if let Some(prefix) = &prefix {
        read_bundle(&mut b, prefix)?;
    }
    if let Some(pb) = &graph {
        read_graph(&mut b, pb)?;
    }
    b.finish()
}

fn table_err(path: &Path, e: sstable::TableError) -> Error {
    let loc = Location::file(path).at(e.offset);
    match e.crc {
        Some((stored, computed)) => Error::malformed(
            loc,
            Malformed::Checksum {
                what: e.what,
                stored,
                computed,
            },
        ),
        None => Error::malformed(loc, Malformed::Other(e.what)),
    }
}

/// A shape from its proto, refusing unknown sizes.
fn shape_of(
    s: Option<&proto::TensorShapeProto>,
    bad: &dyn Fn(String) -> Error,
) -> Result<Vec<u64>> {
    let Some(s) = s else { return Ok(vec![]) };
    if s.unknown_rank {
        return Err(bad("shape of unknown rank".into()));
    }
    s.dim
        .iter()
        .map(|d| u64::try_from(d.size).map_err(|_| bad(format!("dimension {}", d.size))))
        .collect()
}

fn read_bundle(b: &mut StoredBuilder, prefix: &Path) -> Result<()> {
    let ipath = index_of(prefix);
    let imap = MappedFile::open(&ipath)?;
    let table = sstable::read(imap.bytes()).map_err(|e| table_err(&ipath, e))?;
    let bytes = imap.bytes();
    let header = table
        .iter()
        .find(|(k, _)| k.is_empty())
        .ok_or_else(|| {
            Error::malformed(
                Location::file(&ipath),
                Malformed::InvalidHeader("no bundle header (empty key)".into()),
            )
        })
        .and_then(|(_, r)| {
            BundleHeaderProto::decode(&bytes[r.clone()]).map_err(|e| {
                Error::malformed(
                    Location::file(&ipath),
                    Malformed::InvalidHeader(format!("bundle header: {e}")),
                )
            })
        })?;
    let n = usize::try_from(header.num_shards)
        .ok()
        .filter(|&n| (1..=100_000).contains(&n))
        .ok_or_else(|| {
            Error::malformed(
                Location::file(&ipath),
                Malformed::InvalidHeader(format!("{} shards", header.num_shards)),
            )
        })?;
    let big_endian = header.endianness == 1;
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let p = PathBuf::from(format!("{}.data-{i:05}-of-{n:05}", prefix.display()));
        shards.push(b.file(Arc::new(MappedFile::open(&p)?)));
    }
    let entries: HashMap<&[u8], &std::ops::Range<usize>> =
        table.iter().map(|(k, r)| (k.as_slice(), r)).collect();
    let decode = |key: &str, r: &std::ops::Range<usize>| {
        BundleEntryProto::decode(&bytes[r.clone()]).map_err(|e| {
            Error::malformed(
                Location::file(&ipath).tensor(key).at(r.start as u64),
                Malformed::InvalidHeader(format!("bundle entry: {e}")),
            )
        })
    };
    for (key, r) in &table {
        // the header, and slices (stored under OrderedCode keys, which start with a 0 byte)
        if key.is_empty() || key[0] == 0 {
            continue;
        }
        let name = String::from_utf8_lossy(key).into_owned();
        let e = decode(&name, r)?;
        let Some(dtype) = data_type(e.dtype) else {
            if name == OBJECT_GRAPH {
                object_graph_names(b, &shards, &e);
            } else {
                b.warnings.push(format!(
                    "{name}: TensorFlow data type {} skipped (no such lbrx dtype)",
                    e.dtype
                ));
            }
            continue;
        };
        let bad =
            |m: String| Error::malformed(Location::file(&ipath).tensor(&name), Malformed::Other(m));
        let shape = shape_of(e.shape.as_ref(), &bad)?;
        let len = dtype
            .byte_len(&shape)
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        if e.slices.is_empty() {
            let (file, offset) = locate(b, &shards, &e, len, &name)?;
            if big_endian {
                let mut data = b.map(file).range(offset, len).to_vec();
                swap_elements(dtype, &mut data);
                b.owned(name, dtype, shape, data);
            } else {
                b.mapped(TensorInfo {
                    name,
                    dtype,
                    shape,
                    file,
                    offset,
                    len,
                });
            }
            continue;
        }
        let data = assemble(
            b, &shards, &entries, &decode, &name, dtype, &shape, &e, big_endian,
        )?;
        b.owned(name, dtype, shape, data);
    }
    Ok(())
}

/// The key of a TF2 checkpoint's object graph.
const OBJECT_GRAPH: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

/// The variables' names in the program that saved them, from the object graph, as metadata
/// `tensorflow.variable_name.KEY`. The graph is a DT_STRING scalar: a varint length, a 4-byte checksum of the
/// lengths, the bytes. A graph that cannot be read is left out: it names tensors, it holds none.
fn object_graph_names(b: &mut StoredBuilder, shards: &[usize], e: &BundleEntryProto) {
    let Some(&file) = usize::try_from(e.shard_id).ok().and_then(|s| shards.get(s)) else {
        return;
    };
    let (Ok(offset), Ok(size)) = (u64::try_from(e.offset), u64::try_from(e.size)) else {
        return;
    };
    let bytes = b.map(file).range(offset, size);
    let (mut len, mut at) = (0u64, 0usize);
    for (i, &c) in bytes.iter().enumerate().take(10) {
        len |= ((c & 0x7f) as u64) << (7 * i);
        if c & 0x80 == 0 {
            at = i + 1;
            break;
        }
    }
    let start = at + 4;
    let Some(text) = usize::try_from(len)
        .ok()
        .and_then(|n| bytes.get(start..start.checked_add(n)?))
    else {
        return;
    };
    let Ok(g) = proto::TrackableObjectGraph::decode(text) else {
        return;
    };
    for t in g.nodes.iter().flat_map(|n| &n.attributes) {
        if !t.full_name.is_empty() && !t.checkpoint_key.is_empty() {
            b.metadata.insert(
                format!("tensorflow.variable_name.{}", t.checkpoint_key),
                lbrx_core::Value::Str(t.full_name.clone()),
            );
        }
    }
}

/// The shard and offset of an entry's bytes, checked: size equal to the shape's, inside the shard, crc32c.
fn locate(
    b: &StoredBuilder,
    shards: &[usize],
    e: &BundleEntryProto,
    len: u64,
    name: &str,
) -> Result<(usize, u64)> {
    let file = *usize::try_from(e.shard_id)
        .ok()
        .and_then(|s| shards.get(s))
        .ok_or_else(|| {
            Error::malformed(
                Location::file(b.map(shards[0]).path()).tensor(name),
                Malformed::Other(format!("shard {} of {}", e.shard_id, shards.len())),
            )
        })?;
    let map = b.map(file);
    let loc = || Location::file(map.path()).tensor(name);
    let offset = u64::try_from(e.offset).unwrap_or(u64::MAX);
    if e.size as u64 != len {
        return Err(Error::malformed(
            loc(),
            Malformed::Other(format!("entry of {} bytes, its shape needs {len}", e.size)),
        ));
    }
    if offset.checked_add(len).is_none_or(|end| end > map.len()) {
        return Err(Error::malformed(
            loc().at(offset),
            Malformed::Truncated {
                needed: offset.saturating_add(len),
                actual: map.len(),
            },
        ));
    }
    let computed = sstable::mask_crc(crc32c::crc32c(map.range(offset, len)));
    // the check read every page; drop them from this process so a large checkpoint does not stay resident
    map.release(offset, len);
    if computed != e.crc32c {
        return Err(Error::malformed(
            loc().at(offset),
            Malformed::Checksum {
                what: "tensor bytes".into(),
                stored: e.crc32c,
                computed,
            },
        ));
    }
    Ok((file, offset))
}

/// A partitioned variable: every slice's bytes copied into the full tensor.
#[allow(clippy::too_many_arguments)]
fn assemble(
    b: &StoredBuilder,
    shards: &[usize],
    entries: &HashMap<&[u8], &std::ops::Range<usize>>,
    decode: &dyn Fn(&str, &std::ops::Range<usize>) -> Result<BundleEntryProto>,
    name: &str,
    dtype: DType,
    shape: &[u64],
    e: &BundleEntryProto,
    big_endian: bool,
) -> Result<Vec<u8>> {
    let bad = |m: String| {
        Error::malformed(
            Location::file(b.map(shards[0]).path()).tensor(name),
            Malformed::Other(m),
        )
    };
    let esize = dtype.info().type_size as u64;
    let mut parts = Vec::new();
    let mut covered = 0u64;
    for s in &e.slices {
        if s.extent.len() != shape.len() {
            return Err(bad(format!(
                "slice of rank {} for shape {shape:?}",
                s.extent.len()
            )));
        }
        let mut ext = Vec::new();
        for (x, &d) in s.extent.iter().zip(shape) {
            let start = u64::try_from(x.start).map_err(|_| bad("negative slice start".into()))?;
            let len = match x.length {
                None | Some(-1) => d,
                Some(l) => u64::try_from(l).map_err(|_| bad(format!("slice length {l}")))?,
            };
            if start.checked_add(len).is_none_or(|end| end > d) {
                return Err(bad(format!(
                    "slice [{start}, +{len}) outside dimension {d}"
                )));
            }
            ext.push((start, len, x.length.is_none() || x.length == Some(-1)));
        }
        let key = slice_key(name, &ext);
        let r = entries
            .get(key.as_slice())
            .ok_or_else(|| bad("a slice listed by the entry is missing from the index".into()))?;
        let se = decode(name, r)?;
        let sshape: Vec<u64> = ext.iter().map(|x| x.1).collect();
        let slen = dtype
            .byte_len(&sshape)
            .ok_or_else(|| bad("slice shape overflows".into()))?;
        let (file, offset) = locate(b, shards, &se, slen, name)?;
        covered = covered.saturating_add(slen);
        parts.push((ext, file, offset, slen));
    }
    let total = dtype.byte_len(shape).unwrap_or(u64::MAX);
    // slices tile the tensor: their sizes must add up before anything of the full size is allocated
    if covered != total || total > EXPAND_CAP {
        return Err(bad(format!(
            "slices hold {covered} bytes, the full tensor {total}"
        )));
    }
    let mut out = vec![0u8; total as usize];
    let rank = shape.len();
    for (ext, file, offset, slen) in parts {
        let src = b.map(file).range(offset, slen);
        // copy runs along the last dimension, walking the outer indices like an odometer
        let run = ext.last().map_or(1, |x| x.1) * esize;
        let outer: Vec<u64> = ext
            .iter()
            .take(rank.saturating_sub(1))
            .map(|x| x.1)
            .collect();
        let runs: u64 = outer.iter().product();
        for r in 0..runs {
            // the run's outer index, row-major over the slice's outer extents
            let (mut rest, mut dst) = (r, 0u64);
            let mut idx = vec![0u64; outer.len()];
            for d in (0..outer.len()).rev() {
                idx[d] = rest % outer[d];
                rest /= outer[d];
            }
            for d in 0..rank {
                let i = idx.get(d).copied().unwrap_or(0);
                dst = dst * shape[d] + ext[d].0 + i;
            }
            let (dst, at, run) = ((dst * esize) as usize, (r * run) as usize, run as usize);
            out[dst..dst + run].copy_from_slice(&src[at..at + run]);
        }
    }
    if big_endian {
        swap_elements(dtype, &mut out);
    }
    Ok(out)
}

/// `EncodeTensorNameSlice` (`tensorflow/core/util/saved_tensor_slice_util.cc`): the key a slice is stored
/// under, in TensorFlow's OrderedCode (`tensorflow/core/lib/strings/ordered_code.cc`).
fn slice_key(name: &str, ext: &[(u64, u64, bool)]) -> Vec<u8> {
    let mut k = Vec::new();
    num_increasing(&mut k, 0);
    for &c in name.as_bytes() {
        match c {
            0 => k.extend_from_slice(&[0, 0xff]),
            0xff => k.extend_from_slice(&[0xff, 0]),
            c => k.push(c),
        }
    }
    k.extend_from_slice(&[0, 1]);
    num_increasing(&mut k, ext.len() as u64);
    for &(start, len, full) in ext {
        signed_increasing(&mut k, start as i64);
        signed_increasing(&mut k, if full { -1 } else { len as i64 });
    }
    k
}

/// OrderedCode `WriteNumIncreasing`: a length byte, then the big-endian bytes without leading zeros.
fn num_increasing(k: &mut Vec<u8>, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    k.push((8 - skip) as u8);
    k.extend_from_slice(&bytes[skip..]);
}

/// OrderedCode `WriteSignedNumIncreasing`: the value sign-extended to its encoding length, the length in
/// unary in the leading bits (ones for positive numbers, inverted for negative ones).
fn signed_increasing(k: &mut Vec<u8>, v: i64) {
    const HEADER: [[u8; 2]; 11] = [
        [0, 0],
        [0x80, 0],
        [0xc0, 0],
        [0xe0, 0],
        [0xf0, 0],
        [0xf8, 0],
        [0xfc, 0],
        [0xfe, 0],
        [0xff, 0],
        [0xff, 0x80],
        [0xff, 0xc0],
    ];
    let x = if v < 0 { !v as u64 } else { v as u64 };
    let bits = 64 - x.leading_zeros() as usize;
    let len = bits / 7 + 1;
    let sign = if v < 0 { 0xff } else { 0 };
    let mut buf = [sign; 10];
    buf[2..].copy_from_slice(&v.to_be_bytes());
    let s = &mut buf[10 - len..];
    s[0] ^= HEADER[len][0];
    if len > 1 {
        s[1] ^= HEADER[len][1];
    }
    k.extend_from_slice(s);
}

/// The `Const` nodes of at least [`CONST_MIN_BYTES`] of a SavedModel's graphs and functions.
fn read_graph(b: &mut StoredBuilder, pb: &Path) -> Result<()> {
    let map = Arc::new(MappedFile::open(pb)?);
    let whole = Bytes::from_owner(crate::stored::MapBytes(map.clone()));
    let sm = SavedModel::decode(whole.clone()).map_err(|e| {
        Error::malformed(
            Location::file(pb),
            Malformed::InvalidHeader(format!("not a SavedModel protobuf: {e}")),
        )
    })?;
    let file = b.file(map);
    for mg in &sm.meta_graphs {
        let Some(g) = &mg.graph_def else { continue };
        for n in &g.node {
            constant(b, pb, file, &whole, n, "")?;
        }
        for f in g.library.iter().flat_map(|l| &l.function) {
            let fname = f.signature.as_ref().map_or("function", |s| s.name.as_str());
            for n in &f.node_def {
                constant(b, pb, file, &whole, n, &format!("{fname}/"))?;
            }
        }
    }
    Ok(())
}

fn constant(
    b: &mut StoredBuilder,
    pb: &Path,
    file: usize,
    whole: &Bytes,
    n: &NodeDef,
    prefix: &str,
) -> Result<()> {
    if n.op != "Const" {
        return Ok(());
    }
    let Some(t) = n.attr.get("value").and_then(|a| a.tensor.as_ref()) else {
        return Ok(());
    };
    let name = format!("{prefix}{}", n.name);
    let Some(dtype) = data_type(t.dtype) else {
        return Ok(());
    };
    let bad = |m: String| Error::malformed(Location::file(pb).tensor(&name), Malformed::Other(m));
    let shape = shape_of(t.tensor_shape.as_ref(), &bad)?;
    let len = dtype
        .byte_len(&shape)
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if len < CONST_MIN_BYTES || b.has(&name) {
        return Ok(());
    }
    if !t.tensor_content.is_empty() {
        if t.tensor_content.len() as u64 != len {
            return Err(bad(format!(
                "tensor_content of {} bytes, its shape needs {len}",
                t.tensor_content.len()
            )));
        }
        let offset =
            (t.tensor_content.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize) as u64;
        b.mapped(TensorInfo {
            name,
            dtype,
            shape,
            file,
            offset,
            len,
        });
        return Ok(());
    }
    let data = expand(t, dtype, len).map_err(bad)?;
    b.owned(name, dtype, shape, data);
    Ok(())
}

/// Values given in a typed field, the last one repeated to fill the shape (as `tensor_util.MakeNdarray` does).
fn expand(t: &TensorProto, dtype: DType, len: u64) -> std::result::Result<Vec<u8>, String> {
    let size = dtype.info().type_size as usize;
    let le = |v: u64| v.to_le_bytes()[..size].to_vec();
    let vals: Vec<Vec<u8>> = match dtype {
        DType::F32 => t
            .float_val
            .iter()
            .map(|v| v.to_le_bytes().to_vec())
            .collect(),
        DType::F64 => t
            .double_val
            .iter()
            .map(|v| v.to_le_bytes().to_vec())
            .collect(),
        DType::I64 => t.int64_val.iter().map(|&v| le(v as u64)).collect(),
        DType::Bool => t.bool_val.iter().map(|&v| vec![v as u8]).collect(),
        DType::F16 | DType::BF16 => t.half_val.iter().map(|&v| le(v as u32 as u64)).collect(),
        DType::U32 => t.uint32_val.iter().map(|&v| le(v as u64)).collect(),
        DType::U64 => t.uint64_val.iter().map(|&v| le(v)).collect(),
        DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::U16 => {
            t.int_val.iter().map(|&v| le(v as u32 as u64)).collect()
        }
        other => return Err(format!("constant of {other} given by typed values")),
    };
    let n = len / size as u64;
    if vals.len() as u64 > n {
        return Err(format!("{} values for {n} elements", vals.len()));
    }
    if len > EXPAND_CAP {
        return Err(format!("constant expands to {len} bytes"));
    }
    let fill = vals.last().cloned().unwrap_or_else(|| vec![0; size]);
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..n as usize {
        out.extend_from_slice(vals.get(i).unwrap_or(&fill));
    }
    Ok(out)
}

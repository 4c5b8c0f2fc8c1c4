//! ONNX models (`.onnx`): a protobuf `ModelProto` whose graph holds the weights
//! (spec: <https://github.com/onnx/onnx/blob/main/docs/IR.md>, messages: `onnx/onnx.proto`).
//!
//! ```text
//! ModelProto { ir_version, opset_import[], graph: GraphProto, functions[], metadata_props[] }
//! GraphProto { initializer: TensorProto[], sparse_initializer[], node: NodeProto[] }
//! NodeProto  { op_type, output[], attribute: AttributeProto[] (t, g, graphs, sparse_tensor, f(s), i(s)) }
//! TensorProto { dims[], data_type, raw_data | float_data | int32_data | int64_data | double_data | uint64_data,
//!               data_location = EXTERNAL + external_data { location, offset, length } }
//! ```
//!
//! Tensors are the initializers (by name) and the `Constant` nodes (by their output name) of the main graph, of
//! every subgraph below `If`/`Loop`/`Scan` attributes and of the model's functions (`FUNCTION/OUTPUT`).
//! `raw_data` stays in the memory map; typed fields are decoded to little-endian bytes; 2- and 4-bit integers
//! are unpacked to one I8/U8 per element; external data is mapped from files inside the model's directory.

pub mod proto;

use crate::mmap::MappedFile;
use crate::stored::{
    contained_path, packed_len, unpack_bits, MapBytes, StoredBuilder, StoredSource,
};
use bytes::Bytes;
use lbrx_core::{DType, Error, Format, Location, Malformed, Result, TensorInfo, Value, ValueKind};
use prost::Message;
use proto::{AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which typed field carries a data type's values when `raw_data` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Float,
    Int32,
    Int64,
    Double,
    Uint64,
}

/// How a data type's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// One element per `type_size` bytes.
    Whole,
    /// `bits`-bit integers, low bits first, unpacked on read (signed or not).
    Bits(u32, bool),
}

/// The data-type registry: ONNX id, name, lbrx dtype, typed field, packing. Types missing here (STRING,
/// COMPLEX128, FLOAT6) are skipped with a warning.
const DATA_TYPES: &[(i32, &str, DType, Field, Packing)] = &[
    (1, "FLOAT", DType::F32, Field::Float, Packing::Whole),
    (2, "UINT8", DType::U8, Field::Int32, Packing::Whole),
    (3, "INT8", DType::I8, Field::Int32, Packing::Whole),
    (4, "UINT16", DType::U16, Field::Int32, Packing::Whole),
    (5, "INT16", DType::I16, Field::Int32, Packing::Whole),
    (6, "INT32", DType::I32, Field::Int32, Packing::Whole),
    (7, "INT64", DType::I64, Field::Int64, Packing::Whole),
    (9, "BOOL", DType::Bool, Field::Int32, Packing::Whole),
    (10, "FLOAT16", DType::F16, Field::Int32, Packing::Whole),
    (11, "DOUBLE", DType::F64, Field::Double, Packing::Whole),
    (12, "UINT32", DType::U32, Field::Uint64, Packing::Whole),
    (13, "UINT64", DType::U64, Field::Uint64, Packing::Whole),
    (14, "COMPLEX64", DType::C64, Field::Float, Packing::Whole),
    (16, "BFLOAT16", DType::BF16, Field::Int32, Packing::Whole),
    (
        17,
        "FLOAT8E4M3FN",
        DType::F8E4M3,
        Field::Int32,
        Packing::Whole,
    ),
    (
        18,
        "FLOAT8E4M3FNUZ",
        DType::F8E4M3Fnuz,
        Field::Int32,
        Packing::Whole,
    ),
    (
        19,
        "FLOAT8E5M2",
        DType::F8E5M2,
        Field::Int32,
        Packing::Whole,
    ),
    (
        20,
        "FLOAT8E5M2FNUZ",
        DType::F8E5M2Fnuz,
        Field::Int32,
        Packing::Whole,
    ),
    (
        21,
        "UINT4",
        DType::U8,
        Field::Int32,
        Packing::Bits(4, false),
    ),
    (22, "INT4", DType::I8, Field::Int32, Packing::Bits(4, true)),
    (23, "FLOAT4E2M1", DType::F4, Field::Int32, Packing::Whole),
    (
        24,
        "FLOAT8E8M0",
        DType::F8E8M0,
        Field::Int32,
        Packing::Whole,
    ),
    (
        25,
        "UINT2",
        DType::U8,
        Field::Int32,
        Packing::Bits(2, false),
    ),
    (26, "INT2", DType::I8, Field::Int32, Packing::Bits(2, true)),
];

/// Most bytes a sparse tensor is densified to.
const DENSE_CAP: u64 = 4 << 30;

/// Opens an ONNX model, locating every weight (nothing is copied for `raw_data` and external data).
pub fn open(path: &Path) -> Result<StoredSource> {
    let map = Arc::new(MappedFile::open(path)?);
    let whole = Bytes::from_owner(MapBytes(map.clone()));
    // decoding reads each field's first bytes only: no read-around, or a large model is mapped in whole
    map.advise_scattered(true);
    let model = ModelProto::decode(whole.clone()).map_err(|e| {
        Error::malformed(
            Location::file(path),
            Malformed::InvalidHeader(format!("not a valid ONNX protobuf: {e}")),
        )
    })?;
    map.advise_scattered(false);
    let Some(graph) = model.graph.as_ref() else {
        return Err(Error::malformed(
            Location::file(path),
            Malformed::InvalidHeader("not an ONNX model: no graph".into()),
        ));
    };
    let mut b = StoredBuilder::new(Format::Onnx, path);
    let base = b.file(map);
    put_metadata(&mut b, &model);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut r = Reader {
        b,
        path: path.to_path_buf(),
        dir,
        whole,
        base,
    };
    r.graph(graph, "")?;
    for f in &model.functions {
        let prefix = format!("{}/", f.name.as_deref().unwrap_or("function"));
        r.nodes(&f.node, &prefix)?;
    }
    r.b.finish()
}

fn put_metadata(b: &mut StoredBuilder, m: &ModelProto) {
    let md = &mut b.metadata;
    if let Some(v) = m.ir_version {
        md.insert("onnx.ir_version", Value::I64(v));
    }
    for (key, v) in [
        ("onnx.producer_name", &m.producer_name),
        ("onnx.producer_version", &m.producer_version),
        ("onnx.domain", &m.domain),
        ("onnx.doc_string", &m.doc_string),
    ] {
        if let Some(s) = v.as_ref().filter(|s| !s.is_empty()) {
            md.insert(key, Value::Str(s.clone()));
        }
    }
    if let Some(v) = m.model_version {
        md.insert("onnx.model_version", Value::I64(v));
    }
    let opsets = m
        .opset_import
        .iter()
        .map(|o| {
            let d = o
                .domain
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or("ai.onnx");
            Value::Str(format!("{d}:{}", o.version.unwrap_or(0)))
        })
        .collect();
    md.insert("onnx.opset_import", Value::Array(ValueKind::Str, opsets));
    for p in &m.metadata_props {
        if let (Some(k), Some(v)) = (&p.key, &p.value) {
            md.insert(format!("onnx.metadata.{k}"), Value::Str(v.clone()));
        }
    }
}

/// Where a decoded tensor's bytes are.
enum Data {
    Mapped { file: usize, offset: u64, len: u64 },
    Owned(Vec<u8>),
}

/// A tensor as decoded from its `TensorProto`.
struct Decoded {
    dtype: DType,
    shape: Vec<u64>,
    data: Data,
}

struct Reader {
    b: StoredBuilder,
    path: PathBuf,
    dir: PathBuf,
    whole: Bytes,
    base: usize,
}

fn data_type(id: i32) -> Option<&'static (i32, &'static str, DType, Field, Packing)> {
    DATA_TYPES.iter().find(|r| r.0 == id)
}

impl Reader {
    fn loc(&self, name: &str) -> Location {
        Location::file(&self.path).tensor(name)
    }

    fn bad(&self, name: &str, what: String) -> Error {
        Error::malformed(self.loc(name), Malformed::Other(what))
    }

    fn graph(&mut self, g: &GraphProto, prefix: &str) -> Result<()> {
        for t in &g.initializer {
            let name = format!("{prefix}{}", t.name.as_deref().unwrap_or(""));
            self.tensor(&name, t)?;
        }
        for s in &g.sparse_initializer {
            let vname = s
                .values
                .as_ref()
                .and_then(|v| v.name.as_deref())
                .unwrap_or("");
            self.sparse(&format!("{prefix}{vname}"), s)?;
        }
        self.nodes(&g.node, prefix)
    }

    fn nodes(&mut self, nodes: &[NodeProto], prefix: &str) -> Result<()> {
        for n in nodes {
            let op = n.op_type.as_deref().unwrap_or("");
            let domain = n.domain.as_deref().unwrap_or("");
            if op == "Constant" && matches!(domain, "" | "ai.onnx") {
                let out = n.output.first().map(String::as_str).unwrap_or("");
                self.constant(&format!("{prefix}{out}"), n)?;
            }
            for a in &n.attribute {
                if let Some(g) = &a.g {
                    self.graph(g, prefix)?;
                }
                for g in &a.graphs {
                    self.graph(g, prefix)?;
                }
            }
        }
        Ok(())
    }

    /// A `Constant` node's value, from whichever attribute carries it.
    fn constant(&mut self, name: &str, n: &NodeProto) -> Result<()> {
        let Some(a) = n.attribute.first() else {
            return Err(self.bad(name, "Constant node without a value attribute".into()));
        };
        let attr: &AttributeProto = a;
        match attr.name.as_deref().unwrap_or("") {
            "value" => match &attr.t {
                Some(t) => self.tensor(name, t),
                None => Err(self.bad(name, "Constant 'value' without a tensor".into())),
            },
            "sparse_value" => match &attr.sparse_tensor {
                Some(s) => self.sparse(name, s),
                None => Err(self.bad(name, "Constant 'sparse_value' without a tensor".into())),
            },
            "value_float" => {
                let v = attr.f.unwrap_or(0.0);
                self.add_owned(name, DType::F32, vec![], v.to_le_bytes().to_vec());
                Ok(())
            }
            "value_floats" => {
                let bytes = attr.floats.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.add_owned(name, DType::F32, vec![attr.floats.len() as u64], bytes);
                Ok(())
            }
            "value_int" => {
                let v = attr.i.unwrap_or(0);
                self.add_owned(name, DType::I64, vec![], v.to_le_bytes().to_vec());
                Ok(())
            }
            "value_ints" => {
                let bytes = attr.ints.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.add_owned(name, DType::I64, vec![attr.ints.len() as u64], bytes);
                Ok(())
            }
            other => {
                self.b
                    .warnings
                    .push(format!("{name}: Constant '{other}' (strings) skipped"));
                Ok(())
            }
        }
    }

    fn add_owned(&mut self, name: &str, dtype: DType, shape: Vec<u64>, bytes: Vec<u8>) {
        if self.b.has(name) {
            self.b
                .warnings
                .push(format!("{name}: a second tensor of this name skipped"));
            return;
        }
        self.b.owned(name.to_string(), dtype, shape, bytes);
    }

    fn shape(&self, name: &str, dims: &[i64]) -> Result<Vec<u64>> {
        dims.iter()
            .map(|&d| {
                u64::try_from(d).map_err(|_| self.bad(name, format!("negative dimension {d}")))
            })
            .collect()
    }

    /// Adds one tensor.
    fn tensor(&mut self, name: &str, t: &TensorProto) -> Result<()> {
        let Some(d) = self.decode(name, t)? else {
            return Ok(());
        };
        match d.data {
            Data::Mapped { file, offset, len } => {
                if self.b.has(name) {
                    self.b
                        .warnings
                        .push(format!("{name}: a second tensor of this name skipped"));
                    return Ok(());
                }
                self.b.mapped(TensorInfo {
                    name: name.to_string(),
                    dtype: d.dtype,
                    shape: d.shape,
                    file,
                    offset,
                    len,
                });
            }
            Data::Owned(bytes) => self.add_owned(name, d.dtype, d.shape, bytes),
        }
        Ok(())
    }

    /// The bytes of a decoded tensor.
    fn bytes_of<'a>(&'a self, d: &'a Decoded) -> &'a [u8] {
        match &d.data {
            Data::Mapped { file, offset, len } => self.b.map(*file).range(*offset, *len),
            Data::Owned(b) => b,
        }
    }

    /// One tensor's type, shape and where its values are; `None` for types lbrx has no dtype for (warned).
    fn decode(&mut self, name: &str, t: &TensorProto) -> Result<Option<Decoded>> {
        let id = t.data_type.unwrap_or(0);
        let Some(&(_, tname, dtype, field, packing)) = data_type(id) else {
            let what = match id {
                8 => "STRING".to_string(),
                15 => "COMPLEX128".to_string(),
                27 | 28 => "FLOAT6".to_string(),
                0 => return Err(self.bad(name, "data type UNDEFINED".into())),
                other => {
                    return Err(Error::malformed(
                        self.loc(name),
                        Malformed::UnknownDType(format!("ONNX data type {other}")),
                    ))
                }
            };
            self.b.warnings.push(format!(
                "{name}: {what} tensor skipped (no such lbrx dtype)"
            ));
            return Ok(None);
        };
        if t.segment.is_some() {
            return Err(Error::Unsupported {
                path: self.path.clone(),
                what: format!("{name}: segmented tensors"),
            });
        }
        let shape = self.shape(name, &t.dims)?;
        let n = lbrx_core::dtype::element_count(&shape)
            .ok_or_else(|| self.bad(name, format!("shape {shape:?} overflows")))?;
        let stored_len = match packing {
            Packing::Whole => dtype.byte_len(&shape).ok_or_else(|| {
                Error::malformed(
                    self.loc(name),
                    Malformed::BadShape {
                        shape: shape.clone(),
                        dtype: tname.into(),
                    },
                )
            })?,
            Packing::Bits(bits, _) => packed_len(n, bits),
        };
        let external = t.data_location == Some(1);
        let raw: Option<(usize, u64, &[u8])> = if external {
            let (file, offset) = self.external(name, t, stored_len)?;
            let bytes = self.b.map(file).range(offset, stored_len);
            Some((file, offset, bytes))
        } else if let Some(raw) = &t.raw_data {
            if raw.len() as u64 != stored_len {
                return Err(Error::malformed(
                    self.loc(name),
                    Malformed::SizeMismatch {
                        shape,
                        dtype: tname.into(),
                        expected: stored_len,
                        actual: raw.len() as u64,
                    },
                ));
            }
            // `raw` is a view into the mapped file: its distance from the file's start is its offset.
            let offset = (raw.as_ptr() as usize).wrapping_sub(self.whole.as_ptr() as usize) as u64;
            Some((self.base, offset, raw.as_ref()))
        } else {
            None
        };
        let data = match (raw, packing) {
            (Some((file, offset, _)), Packing::Whole) => Data::Mapped {
                file,
                offset,
                len: stored_len,
            },
            (Some((_, _, bytes)), Packing::Bits(bits, signed)) => {
                Data::Owned(unpack_bits(bytes, n as usize, bits, signed))
            }
            (None, _) => Data::Owned(self.typed(name, t, dtype, field, packing, n, stored_len)?),
        };
        Ok(Some(Decoded { dtype, shape, data }))
    }

    /// Values from the typed field, as little-endian bytes (unpacked for sub-byte integers).
    #[allow(clippy::too_many_arguments)]
    fn typed(
        &self,
        name: &str,
        t: &TensorProto,
        dtype: DType,
        field: Field,
        packing: Packing,
        n: u64,
        stored_len: u64,
    ) -> Result<Vec<u8>> {
        let size = dtype.info().type_size as usize;
        let count = match field {
            Field::Float => t.float_data.len(),
            Field::Int32 => t.int32_data.len(),
            Field::Int64 => t.int64_data.len(),
            Field::Double => t.double_data.len(),
            Field::Uint64 => t.uint64_data.len(),
        } as u64;
        // int32_data holds one packed byte per entry for sub-byte types, one element otherwise
        let want = match packing {
            Packing::Bits(..) => stored_len,
            Packing::Whole if dtype == DType::F4 => stored_len,
            Packing::Whole if dtype == DType::C64 => n * 2,
            Packing::Whole => n,
        };
        if count != want {
            return Err(self.bad(
                name,
                format!("holds {count} values in its typed field, its shape needs {want}"),
            ));
        }
        let out: Vec<u8> = match field {
            Field::Float => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Field::Int64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Field::Double => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Field::Uint64 => t
                .uint64_data
                .iter()
                .flat_map(|&v| v.to_le_bytes().into_iter().take(size))
                .collect(),
            Field::Int32 => t
                .int32_data
                .iter()
                .flat_map(|&v| {
                    let unit = if matches!(packing, Packing::Bits(..)) || dtype == DType::F4 {
                        1
                    } else {
                        size
                    };
                    (v as u32).to_le_bytes().into_iter().take(unit)
                })
                .collect(),
        };
        Ok(match packing {
            Packing::Bits(bits, signed) => unpack_bits(&out, n as usize, bits, signed),
            Packing::Whole => out,
        })
    }

    /// Maps the external file of `t` and returns its file index and the data's offset there.
    fn external(&mut self, name: &str, t: &TensorProto, stored_len: u64) -> Result<(usize, u64)> {
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key.as_deref() == Some(k))
                .and_then(|e| e.value.clone())
        };
        let Some(location) = get("location") else {
            return Err(self.bad(name, "external data without a location".into()));
        };
        let num = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| self.bad(name, format!("external data {k} '{v}'")))
                })
                .transpose()
        };
        let offset = num("offset")?.unwrap_or(0);
        let length = num("length")?;
        if let Some(l) = length.filter(|&l| l != stored_len) {
            return Err(self.bad(
                name,
                format!("external data length {l}, its shape and type need {stored_len} bytes"),
            ));
        }
        let real = contained_path(&self.dir, &location, || self.loc(name))?;
        let map = Arc::new(MappedFile::open(&real)?);
        let file = self.b.file(map);
        let size = self.b.map(file).len();
        if offset.checked_add(stored_len).is_none_or(|e| e > size) {
            return Err(Error::malformed(
                Location::file(&real).tensor(name).at(offset),
                Malformed::Truncated {
                    needed: offset.saturating_add(stored_len),
                    actual: size,
                },
            ));
        }
        Ok((file, offset))
    }

    /// A sparse tensor, densified (zeros elsewhere), as the ONNX spec defines its indices.
    fn sparse(&mut self, name: &str, s: &SparseTensorProto) -> Result<()> {
        let (Some(values), Some(indices)) = (&s.values, &s.indices) else {
            return Err(self.bad(name, "sparse tensor without values or indices".into()));
        };
        let shape = self.shape(name, &s.dims)?;
        let (Some(vi), Some(ii)) = (
            self.decode(&format!("{name} (values)"), values)?,
            self.decode(&format!("{name} (indices)"), indices)?,
        ) else {
            return Err(self.bad(
                name,
                "sparse values or indices of an unsupported type".into(),
            ));
        };
        if ii.dtype != DType::I64 {
            return Err(self.bad(name, "sparse indices are not INT64".into()));
        }
        let dtype = vi.dtype;
        let esize = dtype.info().type_size as u64;
        if dtype.info().block_size != 1 {
            return Err(self.bad(name, "sparse tensors of packed types".into()));
        }
        let dense = dtype
            .byte_len(&shape)
            .filter(|&l| l <= DENSE_CAP)
            .ok_or_else(|| {
                self.bad(
                    name,
                    format!(
                        "sparse tensor of shape {shape:?} densifies to more than {DENSE_CAP} bytes"
                    ),
                )
            })?;
        let nnz = lbrx_core::dtype::element_count(&vi.shape).unwrap_or(u64::MAX);
        let idx: Vec<i64> = self
            .bytes_of(&ii)
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let rank = shape.len() as u64;
        let linear: Vec<u64> = if ii.shape == [nnz] {
            idx.iter().map(|&i| i as u64).collect()
        } else if ii.shape == [nnz, rank] {
            idx.chunks_exact(rank.max(1) as usize)
                .map(|c| {
                    c.iter()
                        .zip(&shape)
                        .try_fold(0u64, |acc, (&i, &d)| {
                            let i = u64::try_from(i).ok().filter(|&i| i < d)?;
                            acc.checked_mul(d)?.checked_add(i)
                        })
                        .unwrap_or(u64::MAX)
                })
                .collect()
        } else {
            return Err(self.bad(
                name,
                format!("sparse indices of shape {:?} for {nnz} values", ii.shape),
            ));
        };
        let total = dense / esize.max(1);
        let vals = self.bytes_of(&vi);
        let mut out = vec![0u8; dense as usize];
        for (k, &at) in linear.iter().enumerate() {
            if at >= total {
                return Err(self.bad(name, format!("sparse index {at} outside {shape:?}")));
            }
            let (d, s) = ((at * esize) as usize, k * esize as usize);
            out[d..d + esize as usize].copy_from_slice(&vals[s..s + esize as usize]);
        }
        self.add_owned(name, dtype, shape, out);
        Ok(())
    }
}

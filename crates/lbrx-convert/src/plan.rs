//! Plans: the complete list of output files and tensors, with every offset fixed before any data is written.

use crate::atomic::OutputKind;
use lbrx_core::{DType, Error, Format, Metadata, Result, Source, Value, ValueKind};
use lbrx_formats::safetensors::{
    header_bytes, index_json, plan_shards, shard_file_names, OutTensor, INDEX_SUFFIX,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a conversion is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Cast every float tensor to this dtype, dequantizing block-quantized ones (integer and bool tensors are
    /// kept as they are).
    pub dtype: Option<DType>,
    /// Largest shard, in bytes (directory outputs); `None` keeps the source's sharding.
    pub max_shard_size: Option<u64>,
    /// Replace an existing destination.
    pub overwrite: bool,
    /// fsync outputs before renaming them into place (durable against power loss).
    pub sync: bool,
    /// Quantize weight matrices to this ggml block type (GGUF outputs); vectors and tensors whose rows are
    /// not a whole number of blocks stay float.
    pub quant: Option<DType>,
    /// The model layout to write, when the destination's name does not say it.
    pub target: Option<Target>,
    /// MLX output: quantize the weight matrices (affine, `mlx.core.quantize`) as `mlx_lm.convert -q` does.
    pub mlx_quant: Option<crate::mlx::MlxQuant>,
    /// MLX output: dequantize a quantized MLX model (`mlx_lm.convert --dequantize`).
    pub dequantize: bool,
    /// GGUF output: llama-quantize's per-tensor choices of this file type, applied to the GGUF the
    /// conversion would write in `dtype` (F16 by default), as converting then quantizing would.
    pub recipe: Option<crate::recipe::Recipe>,
    /// Importance matrix for `recipe`.
    pub imatrix: Option<crate::recipe::ImatrixInput>,
}

/// A model layout a directory destination can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Hugging Face model directory (`transformers` names, config.json, tokenizer) from a GGUF.
    Hf,
    /// An MLX model directory (`mlx_lm` names and quantized layout, config.json, tokenizer).
    Mlx,
}

/// How one output tensor is made from its source tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Transform {
    /// Bytes copied unchanged.
    Copy,
    /// Dequantization of a ggml block type into a float dtype.
    Dequant {
        /// Source (block) dtype.
        #[serde(serialize_with = "ser_dtype")]
        from: DType,
        /// Output dtype.
        #[serde(serialize_with = "ser_dtype")]
        to: DType,
    },
    /// Element-wise float cast.
    Cast {
        /// Source dtype.
        #[serde(serialize_with = "ser_dtype")]
        from: DType,
        /// Output dtype.
        #[serde(serialize_with = "ser_dtype")]
        to: DType,
    },
    /// Quantization of a float tensor into a ggml block type (ggml's reference quantizer).
    Quant {
        /// Source (float) dtype.
        #[serde(serialize_with = "ser_dtype")]
        from: DType,
        /// Output block dtype.
        #[serde(serialize_with = "ser_dtype")]
        to: DType,
        /// Values rounded to this float type first: what a two-step conversion through an intermediate file
        /// of that type (an F16 GGUF, then llama-quantize) computes.
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "ser_opt_dtype"
        )]
        via: Option<DType>,
    },
    /// Bytes computed at plan time (`Plan::inline[index]`), e.g. llama.cpp's `rope_freqs`.
    Inline {
        /// Index into [`Plan::inline`].
        index: usize,
    },
    /// MLX affine quantization (`mlx.core.quantize`): the source is decoded (or dequantized), rounded to `to`
    /// and quantized; this job writes the packed uint32 words, and the per-group scales and biases (in `to`)
    /// into the jobs `scales` and `biases`.
    MlxQuant {
        /// Source dtype (float or ggml block type).
        #[serde(serialize_with = "ser_dtype")]
        from: DType,
        /// Float dtype the values are rounded to before quantizing; the scales' and biases' dtype.
        #[serde(serialize_with = "ser_dtype")]
        to: DType,
        /// Bits per value.
        bits: u32,
        /// Values per group.
        group: u32,
        /// The quantization mode (affine, or a float mode without biases).
        #[serde(serialize_with = "ser_mode")]
        mode: lbrx_quant::mlx::Mode,
        /// Index of the job holding the scales.
        scales: usize,
        /// Index of the job holding the biases (affine mode).
        biases: Option<usize>,
    },
    /// Bytes written by another job (the scales or biases of an MLX quantized weight).
    WrittenBy {
        /// That job's index.
        job: usize,
    },
}

fn ser_mode<S: serde::Serializer>(m: &lbrx_quant::mlx::Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

fn ser_opt_dtype<S: serde::Serializer>(d: &Option<DType>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(d.name()),
        None => s.serialize_none(),
    }
}

fn ser_dtype<S: serde::Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// One output tensor.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Index of the source tensor.
    pub src: usize,
    /// Output name.
    pub name: String,
    /// Output dtype.
    #[serde(serialize_with = "ser_dtype")]
    pub dtype: DType,
    /// Output shape.
    pub shape: Vec<u64>,
    /// Output file index.
    pub file: usize,
    /// Absolute offset in that file.
    pub offset: u64,
    /// Byte length in the output.
    pub len: u64,
    /// How it is made.
    pub transform: Transform,
    /// Rows reordered from Hugging Face's rotary layout to ggml's: the head count the rows are grouped in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permute_heads: Option<u64>,
    /// Source tensors stacked along a new first axis (MoE experts), in order; empty: `src` alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<usize>,
    /// Added to every value (in f32) before the output is encoded (Gemma's norm weights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<f32>,
    /// With `permute_heads`: undo the permutation (ggml's layout back to Hugging Face's).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unpermute: bool,
    /// First source element this tensor reads (one expert of a stacked tensor).
    #[serde(skip_serializing_if = "is_zero")]
    pub src_start: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One output file.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// File name (relative to the output directory; for a file output, the destination's name).
    pub name: String,
    /// Total size.
    pub size: u64,
    /// The header bytes written at offset 0.
    #[serde(skip)]
    pub header: Vec<u8>,
}

/// A complete conversion plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Destination path.
    pub dst: PathBuf,
    /// File or directory output.
    #[serde(serialize_with = "ser_kind")]
    pub kind: OutputKind,
    /// Output files (tensor data).
    pub files: Vec<PlannedFile>,
    /// Output tensors, in source order.
    pub jobs: Vec<Job>,
    /// Small files written whole (the shard index).
    #[serde(serialize_with = "ser_small")]
    pub small_files: Vec<(String, Vec<u8>)>,
    /// Files copied from the source (config, tokenizer ...): (name, source path).
    pub assets: Vec<(String, PathBuf)>,
    /// Total tensor bytes to write.
    pub data_bytes: u64,
    /// Tensor bytes computed at plan time (see [`Transform::Inline`]).
    #[serde(skip)]
    pub inline: Vec<Vec<u8>>,
    /// Further fixed bytes written with the headers: (file, offset, bytes) - a zip archive's member headers.
    #[serde(skip)]
    pub fixed: Vec<(usize, u64, Vec<u8>)>,
    /// Checksums filled in once the data is written.
    #[serde(skip)]
    pub crc32: Vec<CrcPatch>,
    /// Importance matrices by job index (quantized tensors; one weight per column, per expert for stacked
    /// experts).
    #[serde(skip)]
    pub imatrix: BTreeMap<usize, Vec<f32>>,
    /// What the plan cannot do as it stands (a dry run of a recipe that needs an importance matrix).
    pub warnings: Vec<String>,
}

/// A CRC-32 (zip's) of written bytes, stored little-endian at some offsets once the bytes are there.
#[derive(Debug, Clone)]
pub struct CrcPatch {
    /// Output file index.
    pub file: usize,
    /// First byte covered.
    pub start: u64,
    /// Bytes covered.
    pub len: u64,
    /// Offsets of the 4-byte fields that receive it.
    pub at: Vec<u64>,
}

fn ser_kind<S: serde::Serializer>(k: &OutputKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match k {
        OutputKind::File => "file",
        OutputKind::Files => "files",
        OutputKind::Dir => "directory",
    })
}

fn ser_small<S: serde::Serializer>(v: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(n, _)| n))
}

/// Output dtype of a source tensor of `shape` under `opts`, and the transform that makes it.
fn choose(src: DType, shape: &[u64], opts: &ConvertOptions) -> (DType, Transform) {
    if let Some(q) = opts.quant {
        let block = q.info().block_size as u64;
        let row = shape.last().copied().unwrap_or(0);
        if shape.len() >= 2 && row % block == 0 && src.is_castable_float() {
            return transform_to(src, q);
        }
    }
    match opts.dtype {
        Some(to) if src.is_castable_float() && to != src => (to, Transform::Cast { from: src, to }),
        Some(to)
            if src.info().kind == lbrx_core::DTypeKind::Quantized
                && lbrx_quant::ggml::can_dequantize(src) =>
        {
            (to, Transform::Dequant { from: src, to })
        }
        _ => (src, Transform::Copy),
    }
}

/// The dtype a transform reads, when it names one (`None` for copies and computed bytes).
pub(crate) fn transform_source(t: Transform) -> Option<DType> {
    match t {
        Transform::Cast { from, .. }
        | Transform::Dequant { from, .. }
        | Transform::Quant { from, .. }
        | Transform::MlxQuant { from, .. } => Some(from),
        _ => None,
    }
}

/// The transform that turns `from` into `to` (copy, cast, quantize or dequantize).
pub(crate) fn transform_to(from: DType, to: DType) -> (DType, Transform) {
    use lbrx_core::DTypeKind::Quantized;
    let t = if from == to {
        Transform::Copy
    } else if to.info().kind == Quantized {
        Transform::Quant {
            from,
            to,
            via: None,
        }
    } else if from.info().kind == Quantized {
        Transform::Dequant { from, to }
    } else {
        Transform::Cast { from, to }
    };
    (to, t)
}

/// Key under which GGUF value types ride along in SafeTensors `__metadata__`.
pub const GGUF_TYPES_KEY: &str = "gguf.types";

/// Type name of a value for [`GGUF_TYPES_KEY`]: `UINT32`, `ARRAY[STRING]` ...
fn type_tag(v: &Value) -> String {
    match v {
        Value::Array(k, items) => match (k, items.first()) {
            (ValueKind::Array, Some(inner)) => format!("ARRAY[{}]", type_tag(inner)),
            _ => format!("ARRAY[{}]", k.name()),
        },
        other => other.kind().name().to_string(),
    }
}

/// Metadata as SafeTensors strings. SafeTensors sources keep theirs; typed (GGUF) metadata becomes the JSON
/// text of each value plus [`GGUF_TYPES_KEY`], so a later conversion back to GGUF restores every type.
fn string_metadata(src: &dyn Source) -> Option<BTreeMap<String, String>> {
    let m = src.metadata();
    if m.is_empty() {
        return None;
    }
    let typed = m.iter().any(|(_, v)| !matches!(v, Value::Str(_))) || src.format() == Format::Gguf;
    let mut out = BTreeMap::new();
    let mut types = Vec::new();
    for (k, v) in m.iter() {
        let text = match v {
            Value::Str(s) if !typed => s.clone(),
            other => other.to_json().to_string(),
        };
        out.insert(k.to_string(), text);
        types.push(serde_json::json!([k, type_tag(v)]));
    }
    if typed {
        out.insert(
            GGUF_TYPES_KEY.to_string(),
            serde_json::Value::Array(types).to_string(),
        );
    }
    Some(out)
}

/// Parses a value back from its JSON text and type tag (the inverse of [`string_metadata`]).
fn typed_value(tag: &str, v: &serde_json::Value) -> Option<Value> {
    if let Some(inner) = tag.strip_prefix("ARRAY[").and_then(|t| t.strip_suffix(']')) {
        let items = v.as_array()?;
        let kind_name = inner.split('[').next().unwrap_or(inner);
        let kind = lbrx_core::VALUE_KINDS.iter().find(|r| r.2 == kind_name)?.0;
        return Some(Value::Array(
            kind,
            items
                .iter()
                .map(|i| typed_value(inner, i))
                .collect::<Option<_>>()?,
        ));
    }
    Some(match tag {
        "UINT8" => Value::U8(v.as_u64()?.try_into().ok()?),
        "INT8" => Value::I8(v.as_i64()?.try_into().ok()?),
        "UINT16" => Value::U16(v.as_u64()?.try_into().ok()?),
        "INT16" => Value::I16(v.as_i64()?.try_into().ok()?),
        "UINT32" => Value::U32(v.as_u64()?.try_into().ok()?),
        "INT32" => Value::I32(v.as_i64()?.try_into().ok()?),
        "UINT64" => Value::U64(v.as_u64()?),
        "INT64" => Value::I64(v.as_i64()?),
        "FLOAT32" => Value::F32(json_f64(v)? as f32),
        "FLOAT64" => Value::F64(json_f64(v)?),
        "BOOL" => Value::Bool(v.as_bool()?),
        "STRING" => Value::Str(v.as_str()?.to_string()),
        _ => return None,
    })
}

fn json_f64(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

/// GGUF metadata for a source: GGUF sources keep theirs; SafeTensors metadata written by lbrx from a GGUF gets
/// its types back; any other string metadata becomes STRING values.
fn gguf_metadata(src: &dyn Source) -> Metadata {
    let m = src.metadata();
    if src.format() == Format::Gguf {
        return m.clone();
    }
    // [[key, type], ...] in the original key order.
    let types: Option<Vec<(String, String)>> = m
        .get(GGUF_TYPES_KEY)
        .and_then(|v| v.as_str())
        .and_then(|t| serde_json::from_str(t).ok());
    let mut out = Metadata::new();
    if let Some(types) = &types {
        for (k, tag) in types {
            let restored = m
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                .and_then(|j| typed_value(tag, &j));
            if let Some(v) = restored {
                out.insert(k.clone(), v);
            }
        }
    }
    for (k, v) in m.iter() {
        if k != GGUF_TYPES_KEY && out.get(k).is_none() {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

/// llama.cpp's `general.file_type` for an output whose weights are all `d`.
pub(crate) fn llama_file_type(d: DType) -> Option<u32> {
    crate::recipe::file_type_of(d).map(|f| f.id)
}

/// Small files written whole beside the tensor files: (relative name, bytes).
pub(crate) type SmallFiles = Vec<(String, Vec<u8>)>;

/// One GGUF output tensor before layout: its spec, source tensor, transform and row permutation.
#[derive(Debug, Clone)]
pub(crate) struct GgufOut {
    /// Name, dtype and shape in the file.
    pub spec: lbrx_formats::gguf::GgufTensorSpec,
    /// Source tensor index (ignored for [`Transform::Inline`]).
    pub src: usize,
    /// How it is made.
    pub transform: Transform,
    /// Q/K row permutation (head count).
    pub permute_heads: Option<u64>,
    /// Source tensors stacked along a new first axis (see [`Job::parts`]).
    pub parts: Vec<usize>,
    /// Added to every value (see [`Job::shift`]).
    pub shift: Option<f32>,
    /// Undo the row permutation (see [`Job::unpermute`]).
    pub unpermute: bool,
    /// First source element read (see [`Job::src_start`]).
    pub src_start: u64,
}

impl GgufOut {
    /// Source tensor `src` written unchanged under its own name.
    pub(crate) fn copy_of(src: usize, t: &lbrx_core::TensorInfo) -> GgufOut {
        GgufOut {
            spec: lbrx_formats::gguf::GgufTensorSpec {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
            },
            src,
            transform: Transform::Copy,
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        }
    }
}

/// Plans a single GGUF file at `dst`: tensor names kept, float tensors cast per `opts.dtype`, metadata kept.
pub fn plan_gguf(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let mut outs = Vec::with_capacity(src.tensors().len());
    for (i, t) in src.tensors().iter().enumerate() {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        if dtype.info().gguf_id.is_none() {
            let hint = if dtype.is_castable_float() {
                "pass --dtype f16, bf16 or f32"
            } else {
                "llama.cpp stores no such tensors; convert to .safetensors or .npz instead"
            };
            return Err(Error::Invalid(format!(
                "tensor '{}': GGUF has no {dtype} type; {hint}",
                t.name
            )));
        }
        outs.push(GgufOut {
            spec: lbrx_formats::gguf::GgufTensorSpec {
                name: t.name.clone(),
                dtype,
                shape: t.shape.clone(),
            },
            src: i,
            transform: tr,
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        });
    }
    let mut metadata = gguf_metadata(src);
    for k in lbrx_formats::gguf::SPLIT_KEYS {
        metadata.remove(k);
    }
    if let (Some(d), Some(Value::U32(_))) =
        (opts.quant.or(opts.dtype), metadata.get("general.file_type"))
    {
        if let Some(ft) = llama_file_type(d) {
            metadata.insert("general.file_type", Value::U32(ft));
        }
    }
    layout_gguf(outs, &metadata, dst, opts.max_shard_size, Vec::new())
}

/// Lays GGUF outputs out in one file at `dst`, or in llama-gguf-split-style splits when `max_shard_size` is
/// set: a new split when the running sum of 32-byte-padded tensor sizes would pass the maximum.
pub(crate) fn layout_gguf(
    outs: Vec<GgufOut>,
    metadata: &Metadata,
    dst: &Path,
    max_shard_size: Option<u64>,
    inline: Vec<Vec<u8>>,
) -> Result<Plan> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    if let Some(max) = max_shard_size {
        let mut cur = 0u64;
        for (i, o) in outs.iter().enumerate() {
            let sp = &o.spec;
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
        groups[0] = (0..outs.len()).collect();
    }
    let n_split = groups.len();
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = name.strip_suffix(".gguf").unwrap_or(&name).to_string();
    let mut files = Vec::with_capacity(n_split);
    let mut jobs = Vec::with_capacity(outs.len());
    for (no, members) in groups.iter().enumerate() {
        let mut meta = if no == 0 {
            metadata.clone()
        } else {
            Metadata::new()
        };
        if n_split > 1 {
            meta.insert("split.no", Value::U16(no as u16));
            meta.insert("split.tensors.count", Value::I32(outs.len() as i32));
            meta.insert("split.count", Value::U16(n_split as u16));
        }
        let part: Vec<_> = members.iter().map(|&i| outs[i].spec.clone()).collect();
        let layout = lbrx_formats::gguf::gguf_layout(&meta, &part)?;
        for (&i, &(offset, len)) in members.iter().zip(&layout.tensors) {
            let o = &outs[i];
            jobs.push((
                i,
                Job {
                    src: o.src,
                    name: o.spec.name.clone(),
                    dtype: o.spec.dtype,
                    shape: o.spec.shape.clone(),
                    file: no,
                    offset,
                    len,
                    transform: o.transform,
                    permute_heads: o.permute_heads,
                    parts: o.parts.clone(),
                    shift: o.shift,
                    unpermute: o.unpermute,
                    src_start: o.src_start,
                },
            ));
        }
        let fname = if n_split > 1 {
            format!("{prefix}-{:05}-of-{n_split:05}.gguf", no + 1)
        } else {
            name.clone()
        };
        files.push(PlannedFile {
            name: fname,
            size: layout.size,
            header: layout.header,
        });
    }
    jobs.sort_by_key(|(i, _)| *i);
    let jobs: Vec<Job> = jobs.into_iter().map(|(_, j)| j).collect();
    let data_bytes = jobs.iter().map(|j| j.len).sum();
    let (kind, plan_dst) = if n_split > 1 {
        let parent = dst
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (OutputKind::Files, parent.to_path_buf())
    } else {
        (OutputKind::File, dst.to_path_buf())
    };
    Ok(Plan {
        dst: plan_dst,
        kind,
        files,
        jobs,
        small_files: Vec::new(),
        assets: Vec::new(),
        data_bytes,
        inline,
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Lays planned tensors out as a SafeTensors model directory at `dst`: `model.safetensors`, or shards of at
/// most `max_shard_size` (default 5 GB, as `transformers` saves) with their index; `small_files` are written
/// beside them (config, tokenizer ...).
pub(crate) fn layout_safetensors_dir(
    outs: Vec<GgufOut>,
    dst: &Path,
    max_shard_size: Option<u64>,
    mut small_files: Vec<(String, Vec<u8>)>,
    metadata: Option<BTreeMap<String, String>>,
    index_extra: Option<serde_json::Value>,
) -> Result<Plan> {
    let st: Vec<OutTensor> = outs
        .iter()
        .map(|o| OutTensor {
            name: o.spec.name.clone(),
            dtype: o.spec.dtype,
            shape: o.spec.shape.clone(),
        })
        .collect();
    let sizes: Vec<u64> = st.iter().map(OutTensor::byte_len).collect::<Result<_>>()?;
    let groups = plan_shards(&sizes, Some(max_shard_size.unwrap_or(5_000_000_000)));
    let names = shard_file_names(groups.len(), "model");
    let mut files = Vec::with_capacity(groups.len());
    let mut jobs: Vec<Option<Job>> = vec![None; st.len()];
    let mut weight_map = BTreeMap::new();
    for (fi, (members, name)) in groups.iter().zip(&names).enumerate() {
        let layout = header_bytes(&st, members, metadata.as_ref())?;
        for p in &layout.tensors {
            let o = &outs[p.tensor];
            weight_map.insert(o.spec.name.clone(), name.clone());
            jobs[p.tensor] = Some(Job {
                src: o.src,
                name: o.spec.name.clone(),
                dtype: o.spec.dtype,
                shape: o.spec.shape.clone(),
                file: fi,
                offset: p.offset,
                len: p.len,
                transform: o.transform,
                permute_heads: o.permute_heads,
                parts: o.parts.clone(),
                shift: o.shift,
                unpermute: o.unpermute,
                src_start: o.src_start,
            });
        }
        files.push(PlannedFile {
            name: name.clone(),
            size: layout.size,
            header: layout.header,
        });
    }
    let jobs: Vec<Job> = jobs.into_iter().flatten().collect();
    let data_bytes = sizes.iter().sum();
    if let Some(extra) = index_extra {
        // MLX's index: always written, with the extra metadata (total_parameters)
        let mut meta = serde_json::json!({ "total_size": data_bytes });
        if let (Some(m), serde_json::Value::Object(e)) = (meta.as_object_mut(), extra) {
            m.extend(e);
        }
        let index = serde_json::json!({ "metadata": meta, "weight_map": weight_map });
        small_files.push((
            format!("model{INDEX_SUFFIX}"),
            crate::hf::vocab_out::pretty(&index),
        ));
    } else if files.len() > 1 {
        small_files.push((
            format!("model{INDEX_SUFFIX}"),
            index_json(data_bytes, &weight_map),
        ));
    }
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::Dir,
        files,
        jobs,
        small_files,
        assets: Vec::new(),
        data_bytes,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Plans a conversion to the format `dst` names: `.gguf` for GGUF, else SafeTensors (file or directory).
pub fn plan(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    if dst
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
        && opts.target.is_none()
    {
        return plan_npz(src, dst, opts);
    }
    if dst
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        && opts.target.is_none()
    {
        return plan_npy(src, dst, opts);
    }
    if dst
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        if crate::hf::is_hf_model(src) {
            return crate::hf::plan_hf_gguf(src, dst, opts);
        }
        if let Some(r) = &opts.recipe {
            if src.format() != Format::Gguf {
                return Err(Error::Invalid(format!(
                    "{}: a llama.cpp recipe needs a Hugging Face model directory or a GGUF",
                    src.root().display()
                )));
            }
            return crate::recipe::plan_quantize(
                src,
                dst,
                r,
                opts.max_shard_size,
                opts.imatrix.as_ref(),
            );
        }
        plan_gguf(src, dst, opts)
    } else if opts.target == Some(Target::Mlx) {
        crate::mlx::plan_mlx(src, dst, opts)
    } else if opts.target == Some(Target::Hf) {
        crate::hf::to_hf::plan_gguf_hf(src, dst, opts)
    } else {
        plan_safetensors(src, dst, opts)
    }
}

/// Stem used for shard names: `model`, or the source index's stem (`diffusion_pytorch_model` ...).
fn shard_stem(src: &dyn Source) -> String {
    let idx = std::fs::read_dir(src.root()).ok().and_then(|rd| {
        rd.flatten().find_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(INDEX_SUFFIX).map(str::to_string))
        })
    });
    idx.unwrap_or_else(|| "model".to_string())
}

/// Plans a SafeTensors output at `dst`: a single file if `dst` ends in `.safetensors`, else a directory.
pub fn plan_safetensors(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let is_file = dst.extension().is_some_and(|e| e == "safetensors");
    if is_file && opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            "--max-shard-size needs a directory destination (not a .safetensors file)".into(),
        ));
    }
    let tensors = src.tensors();
    let mut outs = Vec::with_capacity(tensors.len());
    let mut transforms = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        outs.push(OutTensor {
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
        });
        transforms.push(tr);
    }
    let sizes: Vec<u64> = outs
        .iter()
        .map(OutTensor::byte_len)
        .collect::<Result<_>>()?;

    let groups: Vec<Vec<usize>> = if is_file {
        vec![(0..outs.len()).collect()]
    } else if opts.max_shard_size.is_some() {
        plan_shards(&sizes, opts.max_shard_size)
    } else {
        let n = src.files().len().max(1);
        let mut g = vec![Vec::new(); n];
        for (i, t) in tensors.iter().enumerate() {
            g[t.file.min(n - 1)].push(i);
        }
        g.retain(|v| !v.is_empty());
        if g.is_empty() {
            g.push(Vec::new());
        }
        g
    };
    let stem = shard_stem(src);
    let names = if is_file {
        vec![dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()]
    } else {
        shard_file_names(groups.len(), &stem)
    };
    let mut metadata = string_metadata(src);
    if metadata.is_none() && !is_file && src.format() == Format::PyTorchDir {
        // What transformers' save_pretrained writes; its loader checks it.
        metadata = Some(BTreeMap::from([("format".to_string(), "pt".to_string())]));
    }

    let mut files = Vec::with_capacity(groups.len());
    let mut jobs: Vec<Option<Job>> = vec![None; outs.len()];
    let mut weight_map = BTreeMap::new();
    for (fi, (members, name)) in groups.iter().zip(&names).enumerate() {
        let layout = header_bytes(&outs, members, metadata.as_ref())?;
        for p in &layout.tensors {
            let o = &outs[p.tensor];
            weight_map.insert(o.name.clone(), name.clone());
            jobs[p.tensor] = Some(Job {
                src: p.tensor,
                name: o.name.clone(),
                dtype: o.dtype,
                shape: o.shape.clone(),
                file: fi,
                offset: p.offset,
                len: p.len,
                transform: transforms[p.tensor],
                permute_heads: None,
                parts: Vec::new(),
                shift: None,
                unpermute: false,
                src_start: 0,
            });
        }
        files.push(PlannedFile {
            name: name.clone(),
            size: layout.size,
            header: layout.header,
        });
    }
    let jobs: Vec<Job> = jobs.into_iter().flatten().collect();
    let data_bytes = sizes.iter().sum();
    let mut small_files = Vec::new();
    if !is_file && files.len() > 1 {
        small_files.push((
            format!("{stem}{INDEX_SUFFIX}"),
            index_json(data_bytes, &weight_map),
        ));
    }
    let mut assets = Vec::new();
    if !is_file {
        for p in src.assets() {
            let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            match (name.as_str(), opts.dtype) {
                ("config.json", Some(d)) => match config_with_dtype(p, d)? {
                    Some(bytes) => small_files.push((name, bytes)),
                    None => assets.push((name, p.clone())),
                },
                _ => assets.push((name, p.clone())),
            }
        }
    }
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: if is_file {
            OutputKind::File
        } else {
            OutputKind::Dir
        },
        files,
        jobs,
        small_files,
        assets,
        data_bytes,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Plans a NumPy `.npz` archive at `dst` (stored members, as `numpy.savez` / `mlx.core.savez` write): one
/// `NAME.npy` per tensor, cast per `opts.dtype`; CRCs are filled in after the data.
pub fn plan_npz(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    use lbrx_formats::npz::writer::{npz_layout, NpzMember};
    if opts.quant.is_some() || opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            ".npz output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    let mut members = Vec::with_capacity(src.tensors().len());
    let mut transforms = Vec::with_capacity(src.tensors().len());
    for t in src.tensors() {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        if lbrx_formats::npz::npy_descr(dtype).is_none() {
            return Err(Error::Invalid(format!(
                "tensor '{}': NumPy has no {dtype} arrays; pass --dtype f16, f32 or f64",
                t.name
            )));
        }
        members.push(NpzMember {
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
        });
        transforms.push(tr);
    }
    let layout = npz_layout(&members)?;
    let mut jobs = Vec::with_capacity(members.len());
    let mut fixed = Vec::with_capacity(members.len() + 1);
    let mut crc32 = Vec::with_capacity(members.len());
    for (i, (m, l)) in members.iter().zip(&layout.members).enumerate() {
        fixed.push((0, l.header_offset, l.prefix.clone()));
        crc32.push(CrcPatch {
            file: 0,
            start: l.crc_range.0,
            len: l.crc_range.1,
            at: l.crc_at.to_vec(),
        });
        jobs.push(Job {
            src: i,
            name: m.name.clone(),
            dtype: m.dtype,
            shape: m.shape.clone(),
            file: 0,
            offset: l.data_offset,
            len: l.data_len,
            transform: transforms[i],
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        });
    }
    fixed.push((0, layout.tail_offset, layout.tail.clone()));
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::File,
        files: vec![PlannedFile {
            name,
            size: layout.size,
            header: Vec::new(),
        }],
        data_bytes: jobs.iter().map(|j| j.len).sum(),
        jobs,
        small_files: Vec::new(),
        assets: Vec::new(),
        inline: Vec::new(),
        fixed,
        crc32,
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Plans a NumPy `.npy` file at `dst`: the source's only tensor (cast per `opts.dtype`) after a `.npy` header,
/// as `numpy.save` writes it.
pub fn plan_npy(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let [t] = src.tensors() else {
        return Err(Error::Invalid(format!(
            "{}: a .npy holds one array and the source has {} tensors; write a .npz instead",
            src.root().display(),
            src.tensors().len()
        )));
    };
    if opts.quant.is_some() || opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            ".npy output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    let (dtype, transform) = choose(t.dtype, &t.shape, opts);
    let header = lbrx_formats::npz::writer::npy_header(dtype, &t.shape)
        .map_err(|e| Error::Invalid(format!("tensor '{}': {e}", t.name)))?;
    let len = dtype
        .byte_len(&t.shape)
        .ok_or_else(|| Error::Invalid(format!("tensor '{}': shape overflows", t.name)))?;
    let offset = header.len() as u64;
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::File,
        files: vec![PlannedFile {
            name: dst
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: offset + len,
            header,
        }],
        jobs: vec![Job {
            src: 0,
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
            file: 0,
            offset,
            len,
            transform,
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        }],
        small_files: Vec::new(),
        assets: Vec::new(),
        data_bytes: len,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// The torch name of a dtype, as `config.json` spells it.
fn torch_dtype_name(d: DType) -> Option<&'static str> {
    match d {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => d.torch_name(),
        _ => None,
    }
}

/// `config.json` with `torch_dtype` (and `dtype`, its newer name) set to the output dtype; `None` when unchanged.
fn config_with_dtype(path: &Path, d: DType) -> Result<Option<Vec<u8>>> {
    let Some(name) = torch_dtype_name(d) else {
        return Ok(None);
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    if meta.len() > 16 << 20 {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice::<serde_json::Value>(&text)
    else {
        return Ok(None);
    };
    let mut changed = false;
    for key in ["torch_dtype", "dtype"] {
        if let Some(v) = obj.get_mut(key) {
            if v.as_str() != Some(name) {
                *v = serde_json::Value::from(name);
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let mut out = serde_json::to_string_pretty(&serde_json::Value::Object(obj))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    out.push('\n');
    Ok(Some(out.into_bytes()))
}

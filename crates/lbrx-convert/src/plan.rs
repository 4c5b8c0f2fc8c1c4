//! Plans: what a conversion writes (every output file and tensor, with its offset fixed before any data) and how
//! each tensor is made from its source; the metadata carried between formats.

use crate::atomic::OutputKind;
use crate::request::ConvertOptions;
use lbrx_core::{DType, Format, Metadata, Result, Source, Value, ValueKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a planned tensor's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Input {
    /// A source tensor, read from element `start` on (one expert of a stacked tensor starts past 0).
    Tensor {
        /// Index of the source tensor.
        src: usize,
        /// First source element read.
        #[serde(skip_serializing_if = "is_zero")]
        start: u64,
    },
    /// Source tensors of one dtype and shape stacked along a new first axis (MoE experts), in order.
    Stack {
        /// The source tensors' indices.
        parts: Vec<usize>,
    },
    /// Runs of `run` elements every `stride` elements of one source tensor, from element `start` on: one half
    /// of a fused gate/up projection of stacked experts.
    Slices {
        /// Index of the source tensor.
        src: usize,
        /// First source element read.
        start: u64,
        /// Elements per run.
        run: u64,
        /// Elements from one run's start to the next.
        stride: u64,
    },
    /// Bytes computed at plan time (`Plan::inline[index]`), e.g. llama.cpp's `rope_freqs`.
    Inline {
        /// Index into [`Plan::inline`].
        index: usize,
    },
}

impl Input {
    /// The input of source tensor `src` read from its start.
    pub fn tensor(src: usize) -> Input {
        Input::Tensor { src, start: 0 }
    }

    /// The first source tensor this input reads (`None` for computed bytes).
    pub fn first_src(&self) -> Option<usize> {
        match self {
            Input::Tensor { src, .. } | Input::Slices { src, .. } => Some(*src),
            Input::Stack { parts } => parts.first().copied(),
            Input::Inline { .. } => None,
        }
    }
}

/// One step between reading a tensor's values and encoding them, applied in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Rows reordered from Hugging Face's rotary layout to ggml's (or back, `inverse`), in groups of `heads`.
    Permute {
        /// The head count the rows are grouped in.
        heads: u64,
        /// ggml's layout back to Hugging Face's.
        inverse: bool,
    },
    /// Added to every value (in f32) before encoding (Gemma's norm weights).
    Shift {
        /// The addend.
        add: f32,
    },
    /// Values rounded to a float type and back: what a two-step conversion through an intermediate file of
    /// that type (an F16 GGUF, then llama-quantize) computes.
    Round {
        /// The intermediate type.
        #[serde(serialize_with = "ser_dtype")]
        via: DType,
    },
}

/// How one output tensor's values are encoded (the last step of its chain).
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
    },
    /// MLX quantization (`mlx.core.quantize`): the source is decoded (or dequantized), rounded to `to` and
    /// quantized; this tensor holds the packed uint32 words, its companions the per-group scales and (affine
    /// mode) biases in `to`.
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
    },
    /// A scaled low-precision encoding (`lbrx_quant::scaled`): values multiplied by a scale computed from
    /// the tensor's statistics (the pre-pass), encoded in `to`; the companion holds the dequantization scales.
    Scaled {
        /// Source dtype (float or ggml block type).
        #[serde(serialize_with = "ser_dtype")]
        from: DType,
        /// The encoding.
        #[serde(serialize_with = "ser_scheme")]
        scheme: lbrx_quant::scaled::Scheme,
        /// The source matrix's shape `[rows, cols]` (the stored one may be padded and packed).
        logical: [u64; 2],
    },
    /// Bytes written by another tensor's encoding (its companion: MLX scales or biases, a weight scale).
    WrittenBy {
        /// That job's index.
        job: usize,
    },
}

fn ser_scheme<S: serde::Serializer>(
    m: &lbrx_quant::scaled::Scheme,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.name())
}

fn ser_mode<S: serde::Serializer>(m: &lbrx_quant::mlx::Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

fn ser_dtype<S: serde::Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// One output tensor before layout: what it is, where its bytes come from and the chain that makes them.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Output name.
    pub name: String,
    /// Output dtype.
    #[serde(serialize_with = "ser_dtype")]
    pub dtype: DType,
    /// Output shape.
    pub shape: Vec<u64>,
    /// Where the bytes come from.
    pub input: Input,
    /// Steps between reading and encoding, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The encoding.
    pub transform: Transform,
    /// Tensors this one's encoding also writes (MLX scales and biases, a weight scale): indices into the same
    /// list, each planned with [`Transform::WrittenBy`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<usize>,
}

impl Planned {
    /// A tensor read from `input` and encoded by `transform`, with no steps between.
    pub fn new(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        input: Input,
        transform: Transform,
    ) -> Planned {
        Planned {
            name: name.into(),
            dtype,
            shape,
            input,
            steps: Vec::new(),
            transform,
            companions: Vec::new(),
        }
    }

    /// Source tensor `src` written unchanged under its own name.
    pub fn copy_of(src: usize, t: &lbrx_core::TensorInfo) -> Planned {
        Planned::new(
            t.name.clone(),
            t.dtype,
            t.shape.clone(),
            Input::tensor(src),
            Transform::Copy,
        )
    }

    /// The rotary row permutation among the steps, if any: (heads, inverse).
    pub fn permutation(&self) -> Option<(u64, bool)> {
        self.steps.iter().find_map(|s| match s {
            Step::Permute { heads, inverse } => Some((*heads, *inverse)),
            _ => None,
        })
    }

    /// The shift among the steps, if any.
    pub fn shift(&self) -> Option<f32> {
        self.steps.iter().find_map(|s| match s {
            Step::Shift { add } => Some(*add),
            _ => None,
        })
    }

    /// The GGUF tensor spec (name, dtype, shape).
    pub(crate) fn gguf_spec(&self) -> lbrx_formats::gguf::GgufTensorSpec {
        lbrx_formats::gguf::GgufTensorSpec {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
        }
    }
}

/// One output tensor placed in an output file.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// What it is and how it is made.
    #[serde(flatten)]
    pub t: Planned,
    /// Output file index.
    pub file: usize,
    /// Absolute offset in that file.
    pub offset: u64,
    /// Byte length in the output.
    pub len: u64,
}

impl std::ops::Deref for Job {
    type Target = Planned;
    fn deref(&self) -> &Planned {
        &self.t
    }
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
    /// Tensor bytes computed at plan time (see [`Input::Inline`]).
    #[serde(skip)]
    pub inline: Vec<Vec<u8>>,
    /// Further fixed bytes written with the headers: (file, offset, bytes) - a zip archive's member headers.
    #[serde(skip)]
    pub fixed: Vec<(usize, u64, Vec<u8>)>,
    /// Checksums filled in once the data is written (by the writer's finalize step).
    #[serde(skip)]
    pub crc32: Vec<CrcPatch>,
    /// The writer that laid the files out (and finishes them).
    pub writer: WriterKind,
    /// Importance matrices by job index (quantized tensors; one weight per column, per expert for stacked
    /// experts).
    #[serde(skip)]
    pub imatrix: BTreeMap<usize, Vec<f32>>,
    /// What the plan cannot do as it stands (a dry run of a recipe that needs an importance matrix).
    pub warnings: Vec<String>,
    /// A scaled conversion's decision for every 2-D weight (quantized, kept, removed) and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<crate::scaled::options::LayerChoice>,
    /// Learned rounding of the FP8 / INT8 scaled weights (`--learned-rounding`): each is searched whole.
    #[serde(skip)]
    pub learned: Option<lbrx_quant::scaled::learned::Params>,
}

/// The output writers (`crate::writer::get` gives each one's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterKind {
    /// GGUF, one file or splits.
    Gguf,
    /// One SafeTensors file.
    SafetensorsFile,
    /// A directory of SafeTensors shards.
    SafetensorsDir,
    /// A NumPy `.npz` archive.
    Npz,
    /// A NumPy `.npy` file.
    Npy,
}

impl Plan {
    /// A plan of `files` and `jobs` at `dst` laid out by `writer`, with nothing else in it yet.
    pub fn new(
        dst: PathBuf,
        kind: OutputKind,
        files: Vec<PlannedFile>,
        jobs: Vec<Job>,
        writer: WriterKind,
    ) -> Plan {
        Plan {
            dst,
            kind,
            files,
            data_bytes: jobs.iter().map(|j| j.len).sum(),
            jobs,
            small_files: Vec::new(),
            assets: Vec::new(),
            inline: Vec::new(),
            fixed: Vec::new(),
            crc32: Vec::new(),
            writer,
            imatrix: BTreeMap::new(),
            warnings: Vec::new(),
            layers: Vec::new(),
            learned: None,
        }
    }
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
pub(crate) fn choose(src: DType, shape: &[u64], opts: &ConvertOptions) -> (DType, Transform) {
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
        | Transform::MlxQuant { from, .. }
        | Transform::Scaled { from, .. } => Some(from),
        _ => None,
    }
}

/// The transform that turns `from` into `to` (copy, cast, quantize or dequantize).
pub(crate) fn transform_to(from: DType, to: DType) -> (DType, Transform) {
    use lbrx_core::DTypeKind::Quantized;
    let t = if from == to {
        Transform::Copy
    } else if to.info().kind == Quantized {
        Transform::Quant { from, to }
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
pub(crate) fn string_metadata(src: &dyn Source) -> Option<BTreeMap<String, String>> {
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
pub(crate) fn gguf_metadata(src: &dyn Source) -> Metadata {
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
    crate::ftype::file_type_of(d).map(|f| f.id)
}

/// Small files written whole beside the tensor files: (relative name, bytes).
pub(crate) type SmallFiles = Vec<(String, Vec<u8>)>;

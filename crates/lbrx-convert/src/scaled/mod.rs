//! Scaled SafeTensors layouts as ComfyUI's mixed-precision loader reads them and convert-to-quant 1.3.4
//! writes them: which layers are quantized (every 2-D `*.weight`, less what the model filters, the user's
//! regexes and the fit checks keep), each quantized layer's companions (`weight_scale`, `weight_scale_2`,
//! `input_scale`) and its `<layer>.comfy_quant` U8 tensor of JSON, the `_quantization_metadata` header entry,
//! and the dtype of what stays unquantized. [`read`] opens such files (and the legacy `scaled_fp8` layout)
//! as sources of plain float tensors.

pub mod filters;
pub mod options;
pub mod read;

use crate::plan::{Input, Planned, Transform};
use lbrx_core::{DType, Result, Source};
use lbrx_quant::scaled::{Family, Granularity, InputScale, Scheme};
pub use options::{Action, LayerChoice, ScaledOptions};

/// A scaled layout before the writer places it.
#[derive(Debug, Default)]
pub struct ScaledLayout {
    /// The output tensors.
    pub tensors: Vec<Planned>,
    /// The `comfy_quant` JSON bytes (`Input::Inline`).
    pub inline: Vec<Vec<u8>>,
    /// `_quantization_metadata`'s value.
    pub quant_metadata: Option<String>,
    /// Every 2-D weight's (and every removed tensor's) decision.
    pub layers: Vec<LayerChoice>,
}

impl ScaledLayout {
    /// Adds `<stem>.comfy_quant`, a U8 tensor of the layer's JSON bytes.
    fn push_comfy_quant(&mut self, stem: &str, bytes: Vec<u8>) {
        self.tensors.push(Planned::new(
            format!("{stem}.comfy_quant"),
            DType::U8,
            vec![bytes.len() as u64],
            Input::Inline {
                index: self.inline.len(),
            },
            Transform::Copy,
        ));
        self.inline.push(bytes);
    }
}

/// A Python `json.dumps` value (default separators, `ensure_ascii`), for byte-identical JSON.
enum Py {
    Str(String),
    Int(u64),
    Bool(bool),
    List(Vec<u64>),
    Obj(Vec<(&'static str, Py)>),
}

impl Py {
    fn dump(&self, out: &mut String) {
        match self {
            Py::Str(s) => py_str(s, out),
            Py::Int(i) => out.push_str(&i.to_string()),
            Py::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Py::List(v) => {
                out.push('[');
                let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                out.push_str(&items.join(", "));
                out.push(']');
            }
            Py::Obj(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_str(k, out);
                    out.push_str(": ");
                    v.dump(out);
                }
                out.push('}');
            }
        }
    }

    fn to_json(&self) -> String {
        let mut s = String::new();
        self.dump(&mut s);
        s
    }
}

/// A string as Python's `json.dumps` writes it (ASCII only: `\uXXXX` escapes, surrogate pairs).
fn py_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// torch's name of a float dtype (`torch.bfloat16`).
fn torch_name(d: DType) -> String {
    format!("torch.{}", d.torch_name().unwrap_or("bfloat16"))
}

/// The block size `--heur` checks a layer's dimensions against (convert-to-quant's per-format default).
fn heur_block(s: Scheme) -> u64 {
    match (s.family, s.granularity) {
        (_, Granularity::Block(n)) => n as u64,
        (Family::Int8, _) => 128,
        _ => 64,
    }
}

impl ScaledOptions {
    /// The scheme with the `input_scale` rule of the filters and flags applied.
    fn layer_scheme(&self) -> Scheme {
        let mut s = self.scheme;
        s.input = if self.filters.iter().any(|f| f.text_encoder) {
            InputScale::WeightScale
        } else if self.input_scale {
            InputScale::One
        } else {
            InputScale::None
        };
        s
    }

    /// Why a 2-D weight stays in high precision (`None`: it is quantized).
    fn keep_reason(
        &self,
        name: &str,
        shape: &[u64],
        dtype: DType,
        patterns: &[(&str, Vec<String>)],
    ) -> Option<String> {
        if !(dtype.is_castable_float() || lbrx_quant::ggml::can_dequantize(dtype)) {
            return Some(format!("{dtype} is not a float type"));
        }
        if let Some(re) = &self.include {
            if !re.is_match(name) {
                return Some(format!("not matched by --include '{}'", re.as_str()));
            }
        }
        if let Some(re) = &self.exclude {
            if re.is_match(name) {
                return Some(format!("matched by --exclude '{}'", re.as_str()));
            }
        }
        for (filter, pats) in patterns {
            if let Some(p) = pats.iter().find(|p| name.contains(p.as_str())) {
                return Some(format!(
                    "filter {filter} keeps '{p}' layers in high precision"
                ));
            }
        }
        let (rows, cols) = (shape[0], shape[1]);
        if self.heur {
            let b = heur_block(self.scheme);
            if rows < b || cols < b {
                return Some(format!(
                    "--heur: a dimension of {rows}x{cols} is smaller than {b}"
                ));
            }
            if rows % b != 0 || cols % b != 0 {
                return Some(format!("--heur: {rows}x{cols} is not divisible by {b}"));
            }
        }
        if let Err(why) = self.scheme.check(shape) {
            return Some(match (self.scheme.family, self.scheme.granularity) {
                (Family::Fp8, Granularity::Block(_)) => format!(
                    "{why}: convert-to-quant would store row scales labelled blockwise (a file ComfyUI misreads)"
                ),
                (Family::Int8, Granularity::Block(_)) => {
                    format!("{why}: block-wise INT8 needs whole blocks (convert-to-quant stops here)")
                }
                _ => why,
            });
        }
        None
    }

    /// The dtype an unquantized 2-D weight is written in: the output dtype, or a filter's preserved dtype
    /// (never wider than the source's).
    fn kept_dtype(&self, name: &str, src: DType, patterns: &[(&str, Vec<String>)]) -> DType {
        if !matches!(src, DType::BF16 | DType::F16 | DType::F32 | DType::F64) {
            return src;
        }
        let mut want: Option<DType> = None;
        for f in &self.filters {
            let t = f.target();
            let Some((_, pats)) = patterns.iter().find(|(n, _)| *n == f.name) else {
                continue;
            };
            if !pats.iter().any(|p| name.contains(p.as_str())) {
                continue;
            }
            for (d, re) in t.preserve_dtype {
                if regex::Regex::new(re).is_ok_and(|r| r.is_match(name)) {
                    let wider = want.is_none_or(|w| d.info().type_size > w.info().type_size);
                    if wider {
                        want = Some(*d);
                    }
                    break;
                }
            }
        }
        match want {
            Some(d) if src.info().type_size < d.info().type_size => src,
            Some(d) => d,
            None => self.output_dtype,
        }
    }

    /// This layer's `comfy_quant` JSON and its `_quantization_metadata` entry.
    fn comfy_json(&self, s: Scheme, shape: &[u64]) -> (String, Py) {
        let format = Py::Str(s.comfy_format().into());
        let dtype = Py::Str(torch_name(self.output_dtype));
        match s.family {
            Family::Nvfp4 | Family::Mxfp8 => {
                let entry = || {
                    Py::Obj(vec![
                        ("format", Py::Str(s.comfy_format().into())),
                        ("group_size", Py::Int(s.group_size().unwrap_or(0) as u64)),
                        ("orig_dtype", Py::Str(torch_name(self.output_dtype))),
                        ("orig_shape", Py::List(shape.to_vec())),
                    ])
                };
                (entry().to_json(), entry())
            }
            _ => {
                let block_format = matches!(s.granularity, Granularity::Block(_));
                let mut tensor = vec![("format", format), ("orig_dtype", dtype)];
                let mut meta = vec![
                    ("format", Py::Str(s.comfy_format().into())),
                    ("orig_dtype", Py::Str(torch_name(self.output_dtype))),
                ];
                if let (true, Some(g)) = (block_format, s.group_size()) {
                    tensor.push(("group_size", Py::Int(g as u64)));
                    meta.push(("group_size", Py::Int(g as u64)));
                }
                if self.full_precision_mm {
                    tensor.push(("full_precision_matrix_mult", Py::Bool(true)));
                    meta.push(("full_precision_matrix_mult", Py::Bool(true)));
                }
                if s.family == Family::Int8 && s.granularity == Granularity::Row {
                    tensor.push(("per_row", Py::Bool(true)));
                }
                (Py::Obj(tensor).to_json(), Py::Obj(meta))
            }
        }
    }
}

/// Plans the scaled layout of `src`: every tensor in source order, each quantized weight followed by its
/// companions and its `comfy_quant`.
pub fn plan(src: &dyn Source, o: &ScaledOptions) -> Result<ScaledLayout> {
    let names = || src.tensors().iter().map(|t| t.name.as_str());
    let patterns: Vec<(&str, Vec<String>)> = o
        .filters
        .iter()
        .map(|f| (f.name, f.patterns(names())))
        .collect();
    let removed: Vec<&str> = o
        .filters
        .iter()
        .flat_map(|f| f.target().remove.iter().copied())
        .collect();
    let scheme = o.layer_scheme();
    let mut out = ScaledLayout::default();
    let mut meta: Vec<(String, Py)> = Vec::new();
    for (i, t) in src.tensors().iter().enumerate() {
        if let Some(p) = removed.iter().find(|p| t.name.contains(**p)) {
            out.layers.push(LayerChoice {
                name: t.name.clone(),
                action: Action::Remove,
                to: String::new(),
                reason: format!("the filter removes '{p}' tensors"),
            });
            continue;
        }
        let weight = t.name.ends_with(".weight") && t.shape.len() == 2;
        if !weight {
            out.tensors.push(Planned::copy_of(i, t));
            continue;
        }
        if let Some(reason) = o.keep_reason(&t.name, &t.shape, t.dtype, &patterns) {
            let d = o.kept_dtype(&t.name, t.dtype, &patterns);
            let (dtype, tr) = if d == t.dtype {
                (d, Transform::Copy)
            } else {
                (
                    d,
                    Transform::Cast {
                        from: t.dtype,
                        to: d,
                    },
                )
            };
            out.tensors.push(Planned::new(
                t.name.clone(),
                dtype,
                t.shape.clone(),
                Input::tensor(i),
                tr,
            ));
            out.layers.push(LayerChoice {
                name: t.name.clone(),
                action: Action::Keep,
                to: dtype.name().to_string(),
                reason,
            });
            continue;
        }
        let stem = t
            .name
            .strip_suffix(".weight")
            .unwrap_or(&t.name)
            .to_string();
        let base = out.tensors.len();
        let logical = [t.shape[0], t.shape[1]];
        let companions = scheme.companions(&t.shape);
        let mut w = Planned::new(
            t.name.clone(),
            scheme.out_dtype(),
            scheme.out_shape(&t.shape),
            Input::tensor(i),
            Transform::Scaled {
                from: t.dtype,
                scheme,
                logical,
            },
        );
        w.companions = (1..=companions.len()).map(|k| base + k).collect();
        out.tensors.push(w);
        for c in companions {
            // one-value scales are stored as scalars (convert-to-quant's normalize_tensorwise_scales)
            let shape = if c.shape.iter().product::<u64>() == 1 {
                Vec::new()
            } else {
                c.shape
            };
            out.tensors.push(Planned::new(
                format!("{stem}.{}", c.suffix),
                c.dtype,
                shape,
                Input::tensor(i),
                Transform::WrittenBy { job: base },
            ));
        }
        let (json, entry) = o.comfy_json(scheme, &t.shape);
        out.push_comfy_quant(&stem, json.into_bytes());
        out.layers.push(LayerChoice {
            name: t.name.clone(),
            action: Action::Quantize,
            to: scheme.comfy_format().to_string(),
            reason: if o.learned.is_some() {
                "a 2-D weight (learned rounding)".into()
            } else {
                "a 2-D weight".into()
            },
        });
        meta.push((t.name.clone(), entry));
    }
    // convert-to-quant lists the layers in the sorted order of their weights' names
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    for m in meta.iter_mut() {
        if let Some(s) = m.0.strip_suffix(".weight") {
            m.0 = s.to_string();
        }
    }
    out.quant_metadata = metadata_string(&meta);
    Ok(out)
}

/// The legacy layout's layer format for a scale of `n` values (`dims` its shape) on an `rows x cols` weight,
/// as convert-to-quant's `--convert-fp8-scaled` infers it: (format, block size).
fn legacy_format(scale_shape: &[u64], rows: u64, cols: u64) -> (&'static str, Option<u64>) {
    let n: u64 = scale_shape.iter().product();
    let tensor = ("float8_e4m3fn", None);
    match scale_shape {
        _ if n == 1 => tensor,
        [m] if *m == rows => ("float8_e4m3fn_rowwise", None),
        [m] => {
            let total = rows * cols;
            if *m > 0 && total.is_multiple_of(*m) {
                let sq = total / m;
                let bs = (sq as f64).sqrt() as u64;
                if bs * bs == sq && bs > 0 && rows.is_multiple_of(bs) && cols.is_multiple_of(bs) {
                    return ("float8_e4m3fn_blockwise", Some(bs));
                }
            }
            tensor
        }
        [sm, sn] if *sm > 0 && *sn > 0 && rows.is_multiple_of(*sm) && cols.is_multiple_of(*sn) => {
            ("float8_e4m3fn_blockwise", Some((rows / sm).min(cols / sn)))
        }
        [sm, blocks, 1] if *sm == rows && *blocks > 0 && cols.is_multiple_of(*blocks) => {
            ("float8_e4m3fn_block3d", Some(cols / blocks))
        }
        _ => tensor,
    }
}

/// The legacy `scaled_fp8` layout (a `scaled_fp8` marker, `<layer>.scale_weight`, `<layer>.scale_input`)
/// rewritten in the `comfy_quant` one, as convert-to-quant's `--convert-fp8-scaled` does: the marker dropped,
/// FP8 layers' scales renamed `weight_scale` / `input_scale` (one-value scales as scalars) with a
/// `comfy_quant` of their inferred format, everything else unchanged.
pub fn migrate(src: &dyn Source) -> Result<ScaledLayout> {
    let names: std::collections::HashMap<&str, usize> = src
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    if !names.contains_key("scaled_fp8") {
        return Err(lbrx_core::Error::model(
            src.root(),
            "no 'scaled_fp8' marker: --migrate rewrites legacy scaled_fp8 models only",
        ));
    }
    let mut out = ScaledLayout::default();
    let mut meta: Vec<(String, Py)> = Vec::new();
    let mut sorted: Vec<&str> = names.keys().copied().collect();
    sorted.sort_unstable();
    let mut order: Vec<String> = Vec::new();
    for n in &sorted {
        for suf in [".weight", ".scale_weight", ".scale_input"] {
            if let Some(b) = n.strip_suffix(suf) {
                if !order.iter().any(|o| o == b) {
                    order.push(b.to_string());
                }
            }
        }
    }
    let fp8 = |stem: &str| {
        names
            .get(format!("{stem}.weight").as_str())
            .is_some_and(|&w| src.tensors()[w].dtype == DType::F8E4M3)
    };
    let scalar = |i: usize, name: String| {
        let t = &src.tensors()[i];
        let shape = if t.elements() == 1 {
            Vec::new()
        } else {
            t.shape.clone()
        };
        Planned::new(name, t.dtype, shape, Input::tensor(i), Transform::Copy)
    };
    for (i, t) in src.tensors().iter().enumerate() {
        if t.name == "scaled_fp8" {
            out.layers.push(LayerChoice {
                name: t.name.clone(),
                action: Action::Remove,
                to: String::new(),
                reason: "the legacy marker".into(),
            });
            continue;
        }
        let renamed = [
            (".scale_weight", "weight_scale"),
            (".scale_input", "input_scale"),
        ]
        .iter()
        .find_map(|(suf, new)| t.name.strip_suffix(suf).map(|s| (s, *new)));
        match renamed {
            Some((stem, new)) if fp8(stem) => out.tensors.push(scalar(i, format!("{stem}.{new}"))),
            _ => out.tensors.push(Planned::copy_of(i, t)),
        }
        let Some(stem) = t.name.strip_suffix(".weight").filter(|s| fp8(s)) else {
            continue;
        };
        let (rows, cols) = (
            t.shape.first().copied().unwrap_or(1),
            t.shape.get(1).copied().unwrap_or(1),
        );
        let (format, block) = match names.get(format!("{stem}.scale_weight").as_str()) {
            Some(&s) => legacy_format(&src.tensors()[s].shape, rows, cols),
            None => ("float8_e4m3fn", None),
        };
        let block_based = format == "float8_e4m3fn_blockwise";
        let mut tensor = vec![("format", Py::Str(format.into()))];
        if let (true, Some(b)) = (block_based, block) {
            tensor.push(("group_size", Py::Int(b)));
        }
        let bytes = Py::Obj(tensor).to_json().into_bytes();
        let mut entry = vec![("format", Py::Str(format.into()))];
        if let (true, Some(b)) = (block_based, block) {
            entry.push(("group_size", Py::Int(b)));
        }
        meta.push((stem.to_string(), Py::Obj(entry)));
        out.push_comfy_quant(stem, bytes);
        out.layers.push(LayerChoice {
            name: t.name.clone(),
            action: Action::Quantize,
            to: format.to_string(),
            reason: "a legacy FP8 layer".into(),
        });
    }
    // the layers in the order convert-to-quant meets them (sorted tensor names)
    meta.sort_by_key(|(stem, _)| order.iter().position(|o| o == stem));
    out.quant_metadata = metadata_string(&meta);
    Ok(out)
}

/// `_quantization_metadata`'s value for layer entries in order (`None` for none).
fn metadata_string(meta: &[(String, Py)]) -> Option<String> {
    if meta.is_empty() {
        return None;
    }
    let mut s = String::from("{\"format_version\": \"1.0\", \"layers\": {");
    for (k, (name, entry)) in meta.iter().enumerate() {
        if k > 0 {
            s.push_str(", ");
        }
        py_str(name, &mut s);
        s.push_str(": ");
        entry.dump(&mut s);
    }
    s.push_str("}}");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_written_as_python_writes_it() {
        let v = Py::Obj(vec![
            ("format", Py::Str("nvfp4".into())),
            ("group_size", Py::Int(16)),
            ("orig_shape", Py::List(vec![384, 256])),
            ("x", Py::Bool(true)),
            ("n", Py::Str("é\"\u{1F600}".into())),
        ]);
        assert_eq!(
            v.to_json(),
            r#"{"format": "nvfp4", "group_size": 16, "orig_shape": [384, 256], "x": true, "n": "\u00e9\"\ud83d\ude00"}"#
        );
    }
}

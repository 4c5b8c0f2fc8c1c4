//! Scaled SafeTensors read back as plain float tensors: each quantized layer (`<layer>.comfy_quant` with its
//! `weight_scale` / `weight_scale_2`, or the legacy `scaled_fp8` layout's `scale_weight`) is presented as one
//! `<layer>.weight` in its recorded dtype (`orig_dtype`, or the one asked for), dequantized row by row with
//! ComfyUI's formulas ([`lbrx_quant::scaled::dequant`]); the scale, `input_scale` and `comfy_quant` tensors
//! and the `scaled_fp8` marker are not shown. Everything else passes through.

use lbrx_core::{DType, Error, Format, Result, Source, TensorInfo, TensorView};
use lbrx_quant::scaled::dequant::{dequantize_rows, Stored};
use lbrx_quant::scaled::{Family, Granularity, InputScale, Scheme};
use std::borrow::Cow;
use std::collections::HashMap;

/// One scaled layer found in a source.
#[derive(Debug, Clone)]
pub struct FoundLayer {
    /// The layer's name (`blocks.0.attn.qkv`).
    pub stem: String,
    /// Its encoding.
    pub scheme: Scheme,
    /// The weight's original shape `[rows, cols]`.
    pub shape: [u64; 2],
    /// The dtype it was recorded in (`orig_dtype`), if any.
    pub orig_dtype: Option<DType>,
    /// Source indices of the stored weight, its `weight_scale` and NVFP4's `weight_scale_2`.
    pub weight: usize,
    /// `weight_scale`.
    pub scale: usize,
    /// `weight_scale_2`.
    pub scale_2: Option<usize>,
    /// Tensors that belong to the layer and are not shown (scales, `input_scale`, `comfy_quant`).
    pub hidden: Vec<usize>,
    /// The legacy layout (`scale_weight`).
    pub legacy: bool,
}

fn bad(src: &dyn Source, what: String) -> Error {
    Error::model(
        src.root(),
        format!("{what}; the file is not a scaled model ComfyUI reads"),
    )
}

/// The scheme a `comfy_quant` format name stands for.
fn scheme_of(format: &str, group: Option<u32>) -> Option<Scheme> {
    let (name, scaling, block) = match format {
        "float8_e4m3fn" => ("fp8", "tensor", None),
        "float8_e4m3fn_rowwise" => ("fp8", "row", None),
        "float8_e4m3fn_blockwise" => ("fp8", "block", Some(group.unwrap_or(64))),
        "float8_e5m2" => ("fp8_e5m2", "tensor", None),
        "int8_tensorwise" => ("int8", "tensor", None),
        "int8_blockwise" => ("int8", "block", Some(group.unwrap_or(128))),
        "nvfp4" => ("nvfp4", "block", None),
        "mxfp8" => ("mxfp8", "block", None),
        _ => return None,
    };
    Scheme::new(name, Some(scaling), block).ok()
}

/// The layers of `src` stored in a scaled layout (empty for an ordinary model).
pub fn layers_of(src: &dyn Source) -> Result<Vec<FoundLayer>> {
    let by_name: HashMap<&str, usize> = src
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let legacy = by_name.contains_key("scaled_fp8");
    let mut out = Vec::new();
    for (i, t) in src.tensors().iter().enumerate() {
        let (stem, is_cq) = match t.name.strip_suffix(".comfy_quant") {
            Some(s) => (s, true),
            None => match t.name.strip_suffix(".scale_weight") {
                Some(s) if legacy => (s, false),
                _ => continue,
            },
        };
        let Some(&w) = by_name.get(format!("{stem}.weight").as_str()) else {
            continue;
        };
        let wt = &src.tensors()[w];
        let mut hidden = vec![i];
        for s in ["input_scale", "scale_input"] {
            if let Some(&k) = by_name.get(format!("{stem}.{s}").as_str()) {
                hidden.push(k);
            }
        }
        let (scheme, orig_dtype, shape, scale) = if is_cq {
            if t.dtype != DType::U8 || t.len > 1 << 16 {
                return Err(bad(
                    src,
                    format!("{} is not a small U8 tensor of JSON", t.name),
                ));
            }
            let bytes = src.view(i)?;
            let v: serde_json::Value = serde_json::from_slice(bytes.bytes())
                .map_err(|e| bad(src, format!("{}: {e}", t.name)))?;
            let format = v["format"].as_str().unwrap_or_default();
            let group = v
                .get("group_size")
                .and_then(|g| g.as_u64())
                .map(|g| g as u32);
            let Some(mut scheme) = scheme_of(format, group) else {
                return Err(bad(
                    src,
                    format!("{}: format '{format}' is not one lbrx reads", t.name),
                ));
            };
            if scheme.family == Family::Int8
                && v.get("per_row").and_then(|p| p.as_bool()) == Some(true)
            {
                scheme.granularity = Granularity::Row;
            }
            if v.get("convrot").and_then(|c| c.as_bool()) == Some(true) {
                return Err(bad(
                    src,
                    format!("{}: ConvRot-rotated INT8 is not supported", t.name),
                ));
            }
            let orig = v["orig_dtype"]
                .as_str()
                .and_then(|d| DType::parse_user(d.trim_start_matches("torch.")));
            let shape = match v.get("orig_shape").and_then(|s| s.as_array()) {
                Some(a) if a.len() == 2 => [a[0].as_u64().unwrap_or(0), a[1].as_u64().unwrap_or(0)],
                _ => match wt.shape[..] {
                    [r, c] => [r, c],
                    _ => return Err(bad(src, format!("{} is not a matrix", wt.name))),
                },
            };
            // the stored weight bounds a believable original shape (padding adds less than 32 per side)
            let stored: u64 = wt.shape.iter().product();
            if shape[0].saturating_mul(shape[1]) > stored.saturating_mul(2) || shape.contains(&0) {
                return Err(bad(
                    src,
                    format!(
                        "{}: orig_shape {shape:?} does not fit the stored weight",
                        t.name
                    ),
                ));
            }
            let Some(&s) = by_name.get(format!("{stem}.weight_scale").as_str()) else {
                return Err(bad(
                    src,
                    format!("{stem} has a comfy_quant but no weight_scale"),
                ));
            };
            (scheme, orig, shape, s)
        } else {
            let [r, c] = wt.shape[..] else { continue };
            let scale = &src.tensors()[i];
            let n = scale.elements();
            let name = match wt.dtype {
                DType::F8E4M3 => "fp8",
                DType::I8 => "int8",
                _ => continue,
            };
            let scaling = if n == 1 {
                "tensor"
            } else if n == r {
                "row"
            } else {
                return Err(bad(
                    src,
                    format!("{}: {n} scales for a {r}x{c} weight", scale.name),
                ));
            };
            let mut scheme = Scheme::new(name, Some(scaling), None).map_err(|e| bad(src, e))?;
            scheme.input = InputScale::None;
            (scheme, None, [r, c], i)
        };
        // the stored tensors must be what the scheme writes for this shape
        let want = scheme.out_shape(&shape);
        if wt.dtype != scheme.out_dtype() || wt.shape != want {
            return Err(bad(
                src,
                format!(
                    "{}: {} {:?} where {} of {:?} stores {} {:?}",
                    wt.name,
                    wt.dtype,
                    wt.shape,
                    scheme.comfy_format(),
                    shape,
                    scheme.out_dtype(),
                    want
                ),
            ));
        }
        let comps = scheme.companions(&shape);
        let st = &src.tensors()[scale];
        let (wsd, wsn) = (
            comps[0].dtype,
            comps[0].shape.iter().product::<u64>().max(1),
        );
        if st.dtype != wsd || st.elements() != wsn {
            return Err(bad(
                src,
                format!(
                    "{}: {} of {} values where {wsn} {wsd} belong",
                    st.name,
                    st.dtype,
                    st.elements()
                ),
            ));
        }
        let scale_2 = if scheme.family == Family::Nvfp4 {
            let Some(&k) = by_name.get(format!("{stem}.weight_scale_2").as_str()) else {
                return Err(bad(src, format!("{stem} is NVFP4 without weight_scale_2")));
            };
            let t2 = &src.tensors()[k];
            if t2.dtype != DType::F32 || t2.elements() != 1 {
                return Err(bad(src, format!("{}: not one F32", t2.name)));
            }
            hidden.push(k);
            Some(k)
        } else {
            None
        };
        hidden.push(scale);
        out.push(FoundLayer {
            stem: stem.to_string(),
            scheme,
            shape,
            orig_dtype,
            weight: w,
            scale,
            scale_2,
            hidden,
            legacy: !is_cq,
        });
    }
    Ok(out)
}

enum Entry {
    Plain(usize),
    Layer(usize),
}

/// A source whose scaled layers read as plain float tensors.
pub struct DequantizedSource {
    inner: Box<dyn Source>,
    layers: Vec<FoundLayer>,
    tensors: Vec<TensorInfo>,
    entries: Vec<Entry>,
    out: Vec<DType>,
    scales: Vec<std::sync::OnceLock<(Vec<u8>, f32)>>,
}

/// `inner` with its scaled layers dequantized to `dtype` (each layer's `orig_dtype`, else BF16, when
/// `None`); `inner` itself when it has none.
pub fn dequantized(inner: Box<dyn Source>, dtype: Option<DType>) -> Result<Box<dyn Source>> {
    if inner.format() != Format::Safetensors && inner.format() != Format::SafetensorsDir {
        return Ok(inner);
    }
    let layers = layers_of(inner.as_ref())?;
    if layers.is_empty() {
        return Ok(inner);
    }
    let mut hide = vec![false; inner.tensors().len()];
    let mut layer_of = HashMap::new();
    for (k, l) in layers.iter().enumerate() {
        for &h in &l.hidden {
            hide[h] = true;
        }
        layer_of.insert(l.weight, k);
    }
    if let Some(&m) = inner
        .tensors()
        .iter()
        .position(|t| t.name == "scaled_fp8")
        .as_ref()
    {
        hide[m] = true;
    }
    let (mut tensors, mut entries, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, t) in inner.tensors().iter().enumerate() {
        if hide[i] {
            continue;
        }
        match layer_of.get(&i) {
            Some(&k) => {
                let l = &layers[k];
                let d = dtype.or(l.orig_dtype).unwrap_or(DType::BF16);
                if !matches!(d, DType::F32 | DType::F16 | DType::BF16) {
                    return Err(Error::Usage(format!(
                        "scaled layers dequantize to F32, F16 or BF16, not {d}"
                    )));
                }
                let n = l.shape[0] * l.shape[1];
                tensors.push(TensorInfo {
                    name: t.name.clone(),
                    dtype: d,
                    shape: l.shape.to_vec(),
                    file: t.file,
                    offset: t.offset,
                    len: n * d.info().type_size as u64,
                });
                entries.push(Entry::Layer(k));
                out.push(d);
            }
            None => {
                tensors.push(t.clone());
                entries.push(Entry::Plain(i));
                out.push(t.dtype);
            }
        }
    }
    let scales = (0..layers.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    Ok(Box::new(DequantizedSource {
        inner,
        layers,
        tensors,
        entries,
        out,
        scales,
    }))
}

impl DequantizedSource {
    fn scales_of(&self, k: usize) -> Result<&(Vec<u8>, f32)> {
        if let Some(s) = self.scales[k].get() {
            return Ok(s);
        }
        let l = &self.layers[k];
        let scale = self.inner.view(l.scale)?.data.into_owned();
        let scale_2 = match l.scale_2 {
            Some(i) => {
                let b = self.inner.view(i)?;
                let b = b.bytes();
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            None => 1.0,
        };
        Ok(self.scales[k].get_or_init(|| (scale, scale_2)))
    }
}

impl Source for DequantizedSource {
    lbrx_core::source_accessors!(wrapping inner);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        match self.entries.get(index) {
            Some(Entry::Plain(i)) => {
                let v = self.inner.view(*i)?;
                Ok(TensorView {
                    info: &self.tensors[index],
                    data: v.data,
                })
            }
            _ => lbrx_core::source::view_whole(self, index),
        }
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let k = match self.entries.get(index) {
            Some(Entry::Plain(i)) => return self.inner.view_range(*i, offset, len),
            Some(Entry::Layer(k)) => *k,
            None => return Err(Error::Invalid(format!("no tensor #{index}"))),
        };
        let l = &self.layers[k];
        let d = self.out[index];
        let ts = d.info().type_size as u64;
        let cols = l.shape[1];
        let row_out = cols * ts;
        let (r0, r1) = (offset / row_out, (offset + len).div_ceil(row_out));
        let info = &self.tensors[index];
        if offset + len > info.len {
            return Err(Error::tensor(
                info.name.clone(),
                format!("range {offset}+{len} past its end"),
            ));
        }
        let (scale, scale_2) = self.scales_of(k)?;
        let rb = l.scheme.out_row_bytes(&l.shape);
        let rows = self.inner.view_range(l.weight, r0 * rb, (r1 - r0) * rb)?;
        let mut vals = vec![0f32; ((r1 - r0) * cols) as usize];
        dequantize_rows(
            l.scheme,
            &l.shape,
            d,
            Stored {
                rows: &rows,
                first_row: r0,
                scale,
                scale_2: *scale_2,
            },
            &mut vals,
        )
        .map_err(|e| Error::tensor(info.name.clone(), e.to_string()))?;
        let mut bytes = vec![0u8; vals.len() * ts as usize];
        lbrx_quant::cast::encode_f32(d, &vals, &mut bytes);
        let start = (offset - r0 * row_out) as usize;
        Ok(Cow::Owned(bytes[start..start + len as usize].to_vec()))
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        self.inner.release(file, offset, len)
    }
    fn warnings(&self) -> &[String] {
        self.inner.warnings()
    }
    fn assets(&self) -> &[std::path::PathBuf] {
        self.inner.assets()
    }
}

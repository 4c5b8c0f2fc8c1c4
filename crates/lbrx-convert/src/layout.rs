//! The name-for-name planners: a source's tensors, cast or quantized per the options, written under their own
//! names into GGUF, SafeTensors (file or directory), `.npz` or `.npy` through the output writers.

use crate::plan::{choose, gguf_metadata, llama_file_type, string_metadata, Input, Plan, Planned};
use crate::request::ConvertOptions;
use crate::writer::{self, Layout, OutputWriter};
use lbrx_core::{DType, Error, Format, Result, Source, Value};
use lbrx_formats::safetensors::INDEX_SUFFIX;
use std::collections::BTreeMap;
use std::path::Path;

/// Every source tensor under its own name, in the dtype and through the transform `opts` choose.
fn name_for_name(src: &dyn Source, opts: &ConvertOptions) -> Vec<Planned> {
    let mut out = Vec::with_capacity(src.tensors().len());
    for (i, t) in src.tensors().iter().enumerate() {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        out.push(Planned::new(
            t.name.clone(),
            dtype,
            t.shape.clone(),
            Input::tensor(i),
            tr,
        ));
    }
    out
}

/// Plans a single GGUF file at `dst`: tensor names kept, float tensors cast per `opts.dtype`, metadata kept.
pub fn plan_gguf(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let tensors = name_for_name(src, opts);
    for t in &tensors {
        if t.dtype.info().gguf_id.is_none() {
            let hint = if t.dtype.is_castable_float() {
                "pass --dtype f16, bf16 or f32"
            } else {
                "llama.cpp stores no such tensors; convert to .safetensors or .npz instead"
            };
            return Err(Error::tensor(
                t.name.to_string(),
                format!("GGUF has no {} type; {hint}", t.dtype),
            ));
        }
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
    let mut layout = Layout::new(tensors, dst);
    layout.metadata = metadata;
    layout.max_shard_size = opts.max_shard_size;
    writer::Gguf.layout(layout)
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

/// Plans a SafeTensors output at `dst`: a single file if `dst` ends in `.safetensors`, else a directory (the
/// source's sharding kept unless `--max-shard-size` is given).
pub fn plan_safetensors(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let mut layout = Layout::new(name_for_name(src, opts), dst);
    layout.string_metadata = string_metadata(src);
    place_safetensors(src, layout, opts, true)
}

/// Places a SafeTensors layout: one file if its destination ends in `.safetensors`, else a directory with
/// the source's sharding (a tensor computed at plan time goes with the one before it) unless
/// `--max-shard-size` is given, the source's assets beside it (`config.json`'s dtype rewritten when
/// `config_dtype` and `--dtype` say so).
fn place_safetensors(
    src: &dyn Source,
    mut layout: Layout,
    opts: &ConvertOptions,
    config_dtype: bool,
) -> Result<Plan> {
    let dst = layout.dst.clone();
    let is_file = dst.extension().is_some_and(|e| e == "safetensors");
    if is_file && opts.max_shard_size.is_some() {
        return Err(Error::Usage(
            "--max-shard-size needs a directory destination (not a .safetensors file)".into(),
        ));
    }
    if is_file {
        return writer::SafetensorsFile.layout(layout);
    }
    if layout.string_metadata.is_none() && src.format() == Format::PyTorchDir {
        // What transformers' save_pretrained writes; its loader checks it.
        layout.string_metadata = Some(BTreeMap::from([("format".to_string(), "pt".to_string())]));
    }
    if opts.max_shard_size.is_some() {
        layout.max_shard_size = opts.max_shard_size;
    } else {
        let n = src.files().len().max(1);
        let mut g = vec![Vec::new(); n];
        let mut last = 0;
        for (i, t) in layout.tensors.iter().enumerate() {
            let file = t.input.first_src().map_or(last, |s| src.tensors()[s].file);
            last = file;
            g[file.min(n - 1)].push(i);
        }
        g.retain(|v| !v.is_empty());
        if g.is_empty() {
            g.push(Vec::new());
        }
        layout.groups = Some(g);
    }
    layout.stem = Some(shard_stem(src));
    for p in src.assets() {
        let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        match (name.as_str(), opts.dtype.filter(|_| config_dtype)) {
            ("config.json", Some(d)) => match config_with_dtype(p, d)? {
                Some(bytes) => layout.small_files.push((name, bytes)),
                None => layout.assets.push((name, p.clone())),
            },
            _ => layout.assets.push((name, p.clone())),
        }
    }
    writer::SafetensorsDir.layout(layout)
}

/// Plans a scaled SafeTensors output (`--quant fp8|int8|nvfp4|mxfp8 ...`): the layout of
/// [`crate::scaled::plan`], the source's metadata with `_quantization_metadata` added, and every layer's
/// decision in the plan.
pub fn plan_scaled(
    src: &dyn Source,
    dst: &Path,
    opts: &ConvertOptions,
    sc: &crate::scaled::ScaledOptions,
) -> Result<Plan> {
    let s = crate::scaled::plan(src, sc)?;
    let mut plan = finish_scaled(src, dst, opts, s)?;
    plan.learned = sc.learned;
    Ok(plan)
}

/// Places a scaled layout with its metadata and decisions.
fn finish_scaled(
    src: &dyn Source,
    dst: &Path,
    opts: &ConvertOptions,
    s: crate::scaled::ScaledLayout,
) -> Result<Plan> {
    let mut layout = Layout::new(s.tensors, dst);
    layout.inline = s.inline;
    let mut meta = string_metadata(src).unwrap_or_default();
    if let Some(q) = s.quant_metadata {
        meta.insert("_quantization_metadata".to_string(), q);
    }
    layout.string_metadata = (!meta.is_empty()).then_some(meta);
    let mut plan = place_safetensors(src, layout, opts, false)?;
    plan.layers = s.layers;
    Ok(plan)
}

/// Plans the rewrite of a legacy `scaled_fp8` model in the `comfy_quant` layout (`--migrate`), as
/// convert-to-quant's `--convert-fp8-scaled` does it (see [`crate::scaled::migrate`]).
pub fn plan_migrate(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let s = crate::scaled::migrate(src)?;
    finish_scaled(src, dst, opts, s)
}

/// Plans a NumPy `.npz` archive at `dst` (stored members, as `numpy.savez` / `mlx.core.savez` write): one
/// `NAME.npy` per tensor, cast per `opts.dtype`; CRCs are filled in after the data.
pub fn plan_npz(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    if opts.quant.is_some()
        || opts.scaled.is_some()
        || opts.migrate
        || opts.max_shard_size.is_some()
    {
        return Err(Error::Usage(
            ".npz output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    let tensors = name_for_name(src, opts);
    check_numpy(&tensors)?;
    writer::Npz.layout(Layout::new(tensors, dst))
}

/// Refuses dtypes NumPy has no arrays of.
fn check_numpy(tensors: &[Planned]) -> Result<()> {
    for t in tensors {
        if lbrx_formats::npz::npy_descr(t.dtype).is_none() {
            return Err(Error::tensor(
                t.name.to_string(),
                format!(
                    "NumPy has no {} arrays; pass --dtype f16, f32 or f64",
                    t.dtype
                ),
            ));
        }
    }
    Ok(())
}

/// Plans a NumPy `.npy` file at `dst`: the source's only tensor (cast per `opts.dtype`) after a `.npy` header,
/// as `numpy.save` writes it.
pub fn plan_npy(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    if src.tensors().len() != 1 {
        return Err(Error::model(
            src.root(),
            format!(
                "a .npy holds one array and the source has {} tensors; write a .npz instead",
                src.tensors().len()
            ),
        ));
    }
    if opts.quant.is_some()
        || opts.scaled.is_some()
        || opts.migrate
        || opts.max_shard_size.is_some()
    {
        return Err(Error::Usage(
            ".npy output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    writer::Npy.layout(Layout::new(name_for_name(src, opts), dst))
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
        .map_err(|e| Error::model(path, e.to_string()))?;
    out.push('\n');
    Ok(Some(out.into_bytes()))
}

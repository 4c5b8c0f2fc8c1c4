//! The one place that sends a request to its planner, by destination and target.

use crate::layout::{plan_gguf, plan_npy, plan_npz, plan_safetensors};
use crate::plan::Plan;
use crate::request::{ConvertOptions, Target};
use lbrx_core::{Error, Format, Result, Source};
use std::path::Path;

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
                return Err(Error::model(
                    src.root(),
                    "a llama.cpp recipe needs a Hugging Face model directory or a GGUF".to_string(),
                ));
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
    } else if let Some(sc) = &opts.scaled {
        crate::layout::plan_scaled(src, dst, opts, sc)
    } else if opts.migrate {
        crate::layout::plan_migrate(src, dst, opts)
    } else {
        plan_safetensors(src, dst, opts)
    }
}

/// Opens a request's source: the format's reader, seen through the dequantizing view of quantized MLX
/// models where the request needs it.
/// and of scaled (ComfyUI) layers when the request changes dtypes or re-encodes.
pub fn open_source(req: &crate::request::Request) -> Result<Box<dyn Source>> {
    let src = lbrx_formats::open(&req.src)?;
    let o = &req.options;
    let src = if (o.dtype.is_some() || o.scaled.is_some() || req.dequantize_source) && !o.migrate {
        let to = if o.scaled.is_some() { None } else { o.dtype };
        crate::scaled::read::dequantized(src, to.filter(|d| d.is_castable_float()))?
    } else {
        src
    };
    if req.dequantize_source {
        crate::mlx::source::DequantSource::wrap(src)
    } else {
        Ok(src)
    }
}

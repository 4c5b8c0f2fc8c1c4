//! The GGUF name and type of each Hugging Face weight: llama.cpp's tensor map, F32 for vectors, norms, biases
//! and routers, and expert tensors matched for stacking.

use super::arch::{self, ArchSpec};
use crate::plan::{transform_to, Input, Planned, Step};
use lbrx_core::{DType, Error, Result};

/// A regex capturing (block, expert, projection) from one expert's tensor name.
pub(super) fn expert_regex(x: &arch::Experts) -> regex::Regex {
    let alts: Vec<String> = x.projections.iter().map(|p| regex::escape(p)).collect();
    let pat = regex::escape(x.pattern)
        .replace(r"\{bid\}", r"(\d+)")
        .replace(r"\{xid\}", r"(\d+)")
        .replace(r"\{w\}", &format!("({})", alts.join("|")));
    regex::Regex::new(&format!("^{pat}$")).expect("expert pattern")
}

/// One GGUF tensor from HF tensor `hf_name`, read through `input`: mapped name, and the type llama.cpp gives it (F32 for vectors,
/// norms, biases and routers; the weight type otherwise, F16 when rows are not whole blocks).
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_out(
    hf_name: &str,
    input: Input,
    src_dtype: DType,
    shape: Vec<u64>,
    ftype: DType,
    blocks: u64,
    spec: &ArchSpec,
    permute_heads: Option<u64>,
) -> Result<Planned> {
    let gguf_name =
        arch::map_name_for(hf_name, blocks, spec.tensor_overrides).ok_or_else(|| {
            Error::tensor(
                hf_name.to_string(),
                format!("has no GGUF name in the {} architecture map", spec.gguf),
            )
        })?;
    let always_f32 = arch::ALWAYS_F32
        .iter()
        .any(|k| gguf_name.rsplit('.').nth(1) == Some(*k));
    let mut out_type = if shape.len() <= 1
        || gguf_name.ends_with("_norm.weight")
        || !gguf_name.ends_with(".weight")
        || always_f32
    {
        DType::F32
    } else {
        ftype
    };
    // llama.cpp keeps the token embeddings and the output in F16 for the ternary types
    if matches!(out_type, DType::TQ1_0 | DType::TQ2_0)
        && (gguf_name == "token_embd.weight" || gguf_name == "output.weight")
    {
        out_type = DType::F16;
    }
    // gguf-py refuses to quantize rows that are not whole blocks; llama.cpp then writes F16.
    let block = out_type.info().block_size as u64;
    if shape.last().is_some_and(|&c| c % block != 0) {
        out_type = DType::F16;
    }
    let (dtype, transform) = transform_to(src_dtype, out_type);
    let mut t = Planned::new(gguf_name, dtype, shape, input, transform);
    if let Some(heads) = permute_heads {
        t.steps.push(Step::Permute {
            heads,
            inverse: false,
        });
    }
    if spec.norm_shift != 0.0 && hf_name.ends_with("norm.weight") {
        t.steps.push(Step::Shift {
            add: spec.norm_shift,
        });
    }
    Ok(t)
}

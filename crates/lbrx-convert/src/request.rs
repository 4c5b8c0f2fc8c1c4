//! What a conversion is asked to do: the options every planner reads, with the recipe and MLX settings they
//! carry, parsed and checked here once.

use crate::ftype::{FileType, FILE_TYPES};
use lbrx_core::{DType, Error, Result};

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
    pub mlx_quant: Option<crate::mlx::settings::MlxQuant>,
    /// MLX output: dequantize a quantized MLX model (`mlx_lm.convert --dequantize`).
    pub dequantize: bool,
    /// GGUF output: llama-quantize's per-tensor choices of this file type, applied to the GGUF the
    /// conversion would write in `dtype` (F16 by default), as converting then quantizing would.
    pub recipe: Option<Recipe>,
    /// Importance matrix for `recipe`.
    pub imatrix: Option<ImatrixInput>,
}

/// A model layout a directory destination can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Hugging Face model directory (`transformers` names, config.json, tokenizer) from a GGUF.
    Hf,
    /// An MLX model directory (`mlx_lm` names and quantized layout, config.json, tokenizer).
    Mlx,
}

/// A parsed recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Its llama.cpp name.
    pub name: &'static str,
    /// `general.file_type`.
    pub ftype: u32,
    /// The weight type most tensors get.
    pub default: DType,
    /// Every quantizable tensor gets `default` (llama-quantize `--pure`).
    pub pure: bool,
    /// Keep `output.weight` as it is (`--leave-output-tensor`).
    pub leave_output: bool,
    /// User overrides: (substring or regex, type), first match wins (`--tensor-type PATTERN=TYPE`).
    pub overrides: Vec<(regex::Regex, DType)>,
    /// The type of `output.weight` (and of tied token embeddings) (`--output-tensor-type`).
    pub output_type: Option<DType>,
    /// The type of the token embeddings (`--token-embedding-type`).
    pub token_embd_type: Option<DType>,
    /// An importance matrix is given (some choices depend on it, as in llama.cpp).
    pub has_imatrix: bool,
    /// Plan only (`--dry-run`): a missing importance matrix is reported in the plan's warnings instead of
    /// refused.
    pub dry_run: bool,
}

/// llama-quantize's aliases: (alias, file type).
const ALIASES: &[(&str, &str)] = &[("Q3_K", "Q3_K_M"), ("Q4_K", "Q4_K_M"), ("Q5_K", "Q5_K_M")];

impl Recipe {
    /// Looks a recipe up by its llama.cpp name or alias (case-insensitive).
    pub fn named(name: &str) -> Result<Recipe> {
        let name = ALIASES
            .iter()
            .find(|a| a.0.eq_ignore_ascii_case(name))
            .map_or(name, |a| a.1);
        let recipes = || FILE_TYPES.iter().filter(|f| f.recipe);
        let &FileType {
            name: n,
            id: ftype,
            default,
            ..
        } = recipes()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown quantization '{name}'; known: {}",
                    recipes().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
        Ok(Recipe {
            name: n,
            ftype,
            default,
            pure: false,
            leave_output: false,
            overrides: Vec::new(),
            output_type: None,
            token_embd_type: None,
            has_imatrix: false,
            dry_run: false,
        })
    }
}

/// An importance matrix for `plan_quantize`, with the file name written into the output's metadata.
#[derive(Debug, Clone)]
pub struct ImatrixInput {
    /// The loaded matrix.
    pub data: lbrx_formats::imatrix::Imatrix,
    /// The file name as given (llama-quantize's `quantize.imatrix.file`).
    pub file: String,
}

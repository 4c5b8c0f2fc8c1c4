//! What a scaled conversion is asked for and what it decides per layer: the types the request and the plan
//! hold (kept apart from the planner in `scaled/mod.rs`, which builds on the plan).

use super::filters::ModelFilter;
use lbrx_core::DType;
use lbrx_quant::scaled::Scheme;
use serde::Serialize;

/// What a scaled conversion was asked for.
#[derive(Debug, Clone)]
pub struct ScaledOptions {
    /// The encoding of the quantized layers.
    pub scheme: Scheme,
    /// The compute dtype recorded for quantized layers (`orig_dtype`) and the dtype of the 2-D weights left
    /// unquantized: BF16 (default) or F16.
    pub output_dtype: DType,
    /// Model filters (`--filter`), in the order given.
    pub filters: Vec<&'static ModelFilter>,
    /// Only layers whose weight name matches are quantized (`--include`).
    pub include: Option<regex::Regex>,
    /// Layers whose weight name matches stay in high precision (`--exclude`).
    pub exclude: Option<regex::Regex>,
    /// Layers whose dimensions do not fit the block size stay in high precision (`--heur`).
    pub heur: bool,
    /// FP8 layers get a unit `input_scale` (`--input-scale`).
    pub input_scale: bool,
    /// `full_precision_matrix_mult: true` in each FP8 / INT8 layer's `comfy_quant`.
    pub full_precision_mm: bool,
    /// Learned rounding of FP8 / INT8 layers (`--learned-rounding`), with its search's settings.
    pub learned: Option<lbrx_quant::scaled::learned::Params>,
}

/// What happens to one tensor, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LayerChoice {
    /// The tensor's name.
    pub name: String,
    /// quantize, keep or remove.
    pub action: Action,
    /// The layer format (`float8_e4m3fn` ...) or kept dtype.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// The fate of a tensor in a scaled conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Encoded with its scales.
    Quantize,
    /// Written unquantized (cast to the output dtype if it is a 2-D weight).
    Keep,
    /// Dropped (a filter's `remove` patterns).
    Remove,
}

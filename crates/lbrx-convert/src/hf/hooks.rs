//! Per-architecture hooks: what one row of the architecture table (`arch.rs`) cannot say as data, as small
//! functions in the shape of convert_hf_to_gguf's per-model classes (`set_gguf_parameters`, computed tensors,
//! tensor filters) and of the reverse mapping's config. A row names its hook set with its `params` column;
//! [`of`] is the only place that looks at it.

use super::hparams::HParams;
use lbrx_core::{DType, Error, Metadata, Result, Source, Value};
use serde_json::{json, Map, Value as Json};
use std::path::Path;

/// What the hooks of the HF -> GGUF direction see: the config and what the planner derived from it.
pub(crate) struct Ctx<'a> {
    /// The model directory.
    pub dir: &'a Path,
    /// `config.json` with the architecture's defaults.
    pub h: &'a HParams,
    /// The RoPE parameters gathered from the config's spellings.
    pub rope: &'a Map<String, Json>,
    /// The full-attention RoPE parameters (`rope` itself unless split by attention type).
    pub rope_params: &'a Map<String, Json>,
    /// `rope_type`, if any.
    pub rope_type: Option<&'a str>,
    /// `general.architecture`.
    pub arch: &'static str,
    /// Block count.
    pub blocks: u64,
    /// Attention heads.
    pub n_head: Option<u64>,
    /// Key/value heads.
    pub n_kv_head: Option<u64>,
    /// `general.file_type`.
    pub file_type: u32,
}

/// Tensors computed from the config (name, F32 values) and metadata written right after
/// `general.architecture`.
pub(crate) type Computed = (Vec<(&'static str, Vec<f32>)>, Vec<(String, Value)>);

/// One piece of a fused source tensor (see [`ArchHooks::split`]).
pub(crate) struct Part {
    /// The HF-style name the tensor map reads.
    pub name: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its first element in the source tensor.
    pub start: u64,
    /// `(run, stride)`: runs of `run` elements every `stride` elements; `None`: contiguous.
    pub runs: Option<(u64, u64)>,
}

/// One architecture family's hooks; the defaults are llama.cpp's `TextModel`.
pub(crate) trait ArchHooks: Sync {
    /// Tensors computed from the config, planned before the weights (Phi-3's LongRoPE factors).
    fn computed(&self, _c: &Ctx) -> Result<Computed> {
        Ok(Default::default())
    }

    /// A source tensor's name as the map reads it (`None`: not converted); by default llama.cpp's
    /// `TextModel.filter_tensors` (multimodal towers dropped, `language_model.` removed); BERT drops its prefix.
    fn rename(&self, name: &str) -> Option<String> {
        text_filter(name)
    }

    /// A fused source tensor cut into the tensors llama.cpp writes (GraniteMoe's gate/up): for each part, the
    /// HF-style name it is mapped by, its shape and where it is read (`None`: not cut).
    fn split(&self, _c: &Ctx, _hf_name: &str, _shape: &[u64]) -> Result<Option<Vec<Part>>> {
        Ok(None)
    }

    /// A weight's output shape, adjusted (Gemma 3 drops embedding rows past the vocabulary).
    fn weight_shape(&self, _c: &Ctx, _hf_name: &str, _shape: &mut [u64]) -> Result<()> {
        Ok(())
    }

    /// The `{arch}.*` hyper-parameters and `general.file_type`, in llama.cpp's order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)
    }

    /// GGUF -> HF: the family's own `config.json` entries; by default Llama 3's `rope_scaling` rebuilt from
    /// `rope_freqs`.
    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        if let Some(freqs) = tensor_f32(x.src, "rope_freqs.weight")? {
            c.insert("rope_scaling".into(), llama3_scaling(c, &freqs)?);
        }
        Ok(())
    }

    /// GGUF -> HF: why this family's GGUF cannot be rebuilt as its HF directory (`None`: it can).
    fn not_reversible(&self) -> Option<&'static str> {
        None
    }

    /// GGUF -> HF: the class written when it is not the row's first (a vision-language model's GGUF holds
    /// only its text model, which converts back as the text-only class).
    fn hf_class(&self) -> Option<&'static str> {
        None
    }

    /// GGUF -> HF: the activation `config.json` names.
    fn hidden_act(&self) -> &'static str {
        "silu"
    }
}

/// What the hooks of the GGUF -> HF direction see.
pub(crate) struct HfCtx<'a> {
    /// The GGUF's keys.
    pub k: &'a HfKeys<'a>,
    /// The GGUF.
    pub src: &'a dyn Source,
    /// Attention heads.
    pub heads: u64,
    /// Embedding length.
    pub hidden: u64,
}

impl HfCtx<'_> {
    /// Whether a tensor name contains `part`.
    pub(crate) fn has(&self, part: &str) -> bool {
        self.src.tensors().iter().any(|t| t.name.contains(part))
    }
}

/// An f32 key as the short decimal a config carries (`1e-05`, not `9.999999747378752e-06`).
pub(crate) fn f32_json(v: f64) -> Json {
    let short: f64 = format!("{}", v as f32).parse().unwrap_or(v);
    serde_json::json!(short)
}

/// The GGUF keys the reverse hooks read (`{arch}.KEY`, then `KEY`).
pub(crate) struct HfKeys<'a> {
    /// The GGUF metadata.
    pub m: &'a Metadata,
    /// `general.architecture`.
    pub arch: &'a str,
}

impl HfKeys<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.m
            .get(&format!("{}.{k}", self.arch))
            .or_else(|| self.m.get(k))
    }

    /// An integer key.
    pub(crate) fn u64(&self, k: &str) -> Option<u64> {
        self.get(k).and_then(Value::as_u64)
    }

    /// An integer key that must be there.
    pub(crate) fn need_u64(&self, k: &str) -> Result<u64> {
        self.u64(k).ok_or_else(|| Error::Unsupported {
            path: format!("{}.{k}", self.arch).into(),
            what: format!("GGUF key {}.{k} is missing", self.arch),
        })
    }

    /// A float key (f32 values widened).
    pub(crate) fn f64(&self, k: &str) -> Option<f64> {
        self.get(k).and_then(|v| match v {
            Value::F32(x) => Some(f64::from(*x)),
            Value::F64(x) => Some(*x),
            other => other.as_u64().map(|u| u as f64),
        })
    }
}

/// llama.cpp's `TextModel`: every default.
pub(crate) struct Text;

/// A config error naming `config.json`.
pub(crate) fn cfg_err(c: &Ctx, what: impl Into<String>) -> Error {
    Error::model(c.dir.join("config.json"), what.into())
}

pub(crate) fn u32v(v: u64) -> Value {
    Value::U32(v as u32)
}

impl ArchHooks for Text {}

/// llama.cpp's `LlamaModel.set_gguf_parameters` after the generic keys: the vocabulary size and the RoPE
/// dimensions (`head_dim`, else hidden size / heads).
pub(crate) fn llama_params(c: &Ctx, meta: &mut Metadata) -> Result<()> {
    let (h, a) = (c.h, c.arch);
    meta.insert(
        format!("{a}.vocab_size"),
        u32v(h.require_u64(&["vocab_size"])?),
    );
    let rope_dim = match h.0.get("head_dim").and_then(Json::as_u64) {
        Some(d) => d,
        None => h.require_u64(&["hidden_size"])? / c.n_head.unwrap_or(1).max(1),
    };
    meta.insert(format!("{a}.rope.dimension_count"), u32v(rope_dim));
    Ok(())
}

/// Name prefixes and parts of the multimodal towers a text model leaves out (llama.cpp's
/// `TextModel.filter_tensors`).
const MULTIMODAL_PREFIXES: &[&str] = &[
    "mlp",
    "vit.",
    "vpm.",
    "siglip2.",
    "conformer.",
    "merger.",
    "resampler.",
    "sound_encoder.",
    "sound_projection.",
    "speech_embeddings.",
];
const MULTIMODAL_PARTS: &[&str] = &[
    "visual.",
    "vision.",
    "audio.",
    "talker.",
    "vision_",
    "audio_",
    "token2wav.",
    "code2wav.",
    "projector.",
    "pre_mm_projector_norm",
    "image_newline",
    "view_seperator",
    "patch_embed",
    "patch_embedding",
    "patch_merger.",
    "patch_merge_mlp.",
    "model.connector.",
];

/// llama.cpp's `TextModel.filter_tensors` and `ModelBase.filter_tensors`: multimodal tensors dropped,
/// `e_score_correction_bias` renamed, `language_model.` removed.
pub(crate) fn text_filter(name: &str) -> Option<String> {
    if MULTIMODAL_PREFIXES.iter().any(|p| name.starts_with(p))
        || MULTIMODAL_PARTS.iter().any(|p| name.contains(p))
    {
        return None;
    }
    let mut n = name.replace("e_score_correction_bias", "e_score_correction.bias");
    if n.contains("language_model.") {
        n = n.replace("language_model.", "");
    }
    Some(n)
}

/// llama.cpp's `TextModel.set_gguf_parameters`: the generic keys.
pub(crate) fn text_params(c: &Ctx, meta: &mut Metadata) -> Result<()> {
    let Ctx {
        h,
        rope,
        rope_params,
        blocks,
        n_head,
        n_kv_head,
        file_type,
        ..
    } = *c;
    let a = c.arch;
    let rope_type = c.rope_type;
    meta.insert(format!("{a}.block_count"), u32v(blocks));
    if let Some(v) = h.find_u64(&[
        "max_position_embeddings",
        "n_ctx",
        "n_positions",
        "max_length",
        "max_sequence_length",
        "model_max_length",
    ]) {
        meta.insert(format!("{a}.context_length"), u32v(v));
    }
    if let Some(v) = h.find_u64(&["hidden_size", "n_embd", "dim"]) {
        meta.insert(format!("{a}.embedding_length"), u32v(v));
    }
    if let Some(v) = h.find_u64(&[
        "prefix_dense_intermediate_size",
        "dense_intermediate_size",
        "intermediate_size",
        "n_inner",
        "hidden_dim",
    ]) {
        meta.insert(format!("{a}.feed_forward_length"), u32v(v));
    }
    if let Some(v) = n_head {
        meta.insert(format!("{a}.attention.head_count"), u32v(v));
    }
    if let Some(v) = n_kv_head {
        meta.insert(format!("{a}.attention.head_count_kv"), u32v(v));
    }
    if h.0.get("is_causal") == Some(&Json::Bool(false)) {
        meta.insert(format!("{a}.attention.causal"), Value::Bool(false));
    }
    if let Some(rt) = rope_type {
        let factor = rope_params.get("factor").and_then(Json::as_f64);
        match (rt, factor) {
            ("linear", Some(f)) => {
                meta.insert(
                    format!("{a}.rope.scaling.type"),
                    Value::Str("linear".into()),
                );
                meta.insert(format!("{a}.rope.scaling.factor"), Value::F32(f as f32));
            }
            ("yarn", Some(f)) => {
                meta.insert(format!("{a}.rope.scaling.type"), Value::Str("yarn".into()));
                meta.insert(format!("{a}.rope.scaling.factor"), Value::F32(f as f32));
                let orig = rope_params
                    .get("original_max_position_embeddings")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| {
                        cfg_err(
                            c,
                            "yarn rope scaling without original_max_position_embeddings",
                        )
                    })?;
                meta.insert(
                    format!("{a}.rope.scaling.original_context_length"),
                    u32v(orig),
                );
                for (k, key) in [
                    ("extrapolation_factor", "yarn_ext_factor"),
                    ("attention_factor", "yarn_attn_factor"),
                    ("beta_fast", "yarn_beta_fast"),
                    ("beta_slow", "yarn_beta_slow"),
                ] {
                    let v = rope_params.get(k).or_else(|| {
                        (k == "attention_factor")
                            .then(|| rope_params.get("attn_factor"))
                            .flatten()
                    });
                    if let Some(v) = v.and_then(Json::as_f64) {
                        meta.insert(format!("{a}.rope.scaling.{key}"), Value::F32(v as f32));
                    }
                }
            }
            ("su" | "longrope", _) => {
                meta.insert(
                    format!("{a}.rope.scaling.type"),
                    Value::Str("longrope".into()),
                );
            }
            _ => {}
        }
    }
    if let Some(t) = rope_params.get("rope_theta").and_then(Json::as_f64) {
        meta.insert(format!("{a}.rope.freq_base"), Value::F32(t as f32));
    }
    if let Some(t) = rope
        .get("sliding_attention")
        .and_then(|s| s.get("rope_theta"))
        .and_then(Json::as_f64)
    {
        meta.insert(format!("{a}.rope.freq_base_swa"), Value::F32(t as f32));
    }
    if let Some(v) = h.find_f64(&["rms_norm_eps", "norm_eps"]) {
        meta.insert(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(v as f32),
        );
    }
    if let Some(v) = h.find_f64(&["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"]) {
        meta.insert(
            format!("{a}.attention.layer_norm_epsilon"),
            Value::F32(v as f32),
        );
    }
    if let Some(v) = h.find_u64(&["num_local_experts", "num_experts", "n_routed_experts"]) {
        meta.insert(format!("{a}.expert_count"), u32v(v));
    }
    if let Some(v) = h.find_u64(&[
        "num_experts_per_tok",
        "num_experts_per_token",
        "top_k_experts",
    ]) {
        meta.insert(format!("{a}.expert_used_count"), u32v(v));
    }
    if let Some(hd) = h.0.get("head_dim").and_then(Json::as_u64) {
        meta.insert(format!("{a}.attention.key_length"), u32v(hd));
        meta.insert(format!("{a}.attention.value_length"), u32v(hd));
    }
    meta.insert("general.file_type", Value::U32(file_type));
    Ok(())
}

/// A small F32 tensor's values, if the GGUF has it.
pub(crate) fn tensor_f32(src: &dyn Source, name: &str) -> Result<Option<Vec<f32>>> {
    let Some(i) = src.tensors().iter().position(|t| t.name == name) else {
        return Ok(None);
    };
    let t = &src.tensors()[i];
    if t.dtype != DType::F32 || t.elements() > 1 << 20 {
        return Err(Error::tensor(name.to_string(), "is not a small F32 vector"));
    }
    let v = src.view(i)?;
    Ok(Some(
        v.bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}

/// Recovers Llama 3's `rope_scaling` from llama.cpp's `rope_freqs`: the factors are recomputed from the
/// standard parameters (low 1, high 4, original context 8192, factor = the largest value) and must match.
fn llama3_scaling(c: &Map<String, Json>, freqs: &[f32]) -> Result<Json> {
    let factor = freqs.iter().fold(1f32, |a, &b| a.max(b));
    let rope = json!({
        "factor": f32_json(f64::from(factor)),
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
        "rope_theta": c.get("rope_theta").cloned().unwrap_or(json!(500000.0)),
    });
    let mut cfg = c.clone();
    cfg.insert("rope_scaling".into(), rope.clone());
    let h = HParams(cfg);
    let again = super::hparams::llama3_rope_factors(&h, rope.as_object().expect("object"))?;
    if again != freqs {
        return Err(Error::Unsupported {
            path: "rope_freqs.weight".into(),
            what: "the Llama 3 RoPE factors do not follow the standard parameters; rope_scaling cannot be rebuilt".into(),
        });
    }
    let mut r = rope;
    r.as_object_mut().expect("object").remove("rope_theta");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::text_filter;

    #[test]
    fn text_models_leave_out_towers_and_drop_the_language_model_prefix() {
        assert_eq!(
            text_filter("language_model.model.layers.0.mlp.up_proj.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
        assert_eq!(
            text_filter("model.layers.3.mlp.gate.e_score_correction_bias").as_deref(),
            Some("model.layers.3.mlp.gate.e_score_correction.bias")
        );
        for n in [
            "vision_tower.transformer.layers.0.attention.k_proj.weight",
            "multi_modal_projector.linear_1.weight",
            "model.visual.blocks.0.attn.qkv.weight",
            "mlp1.0.weight",
        ] {
            assert_eq!(text_filter(n), None, "{n}");
        }
        assert!(text_filter("model.layers.0.mlp.down_proj.weight").is_some());
    }
}

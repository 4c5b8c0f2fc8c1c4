//! Per-architecture hooks: what one row of the architecture table (`arch.rs`) cannot say as data, as small
//! functions in the shape of convert_hf_to_gguf's per-model classes (`set_gguf_parameters`, computed tensors,
//! tensor filters) and of the reverse mapping's config. A row names its hook set with its `params` column;
//! [`of`] is the only place that looks at it.

use super::arch::Params;
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

/// One architecture family's hooks; the defaults are llama.cpp's `TextModel`.
pub(crate) trait ArchHooks: Sync {
    /// Tensors computed from the config, planned before the weights (Phi-3's LongRoPE factors).
    fn computed(&self, _c: &Ctx) -> Result<Computed> {
        Ok(Default::default())
    }

    /// A source tensor's name as the map reads it (`None`: not converted); BERT drops its prefix.
    fn rename(&self, name: &str) -> Option<String> {
        Some(name.to_string())
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
    fn has(&self, part: &str) -> bool {
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

struct Text;
struct Qwen2;
struct Gemma2;
struct Gemma3;
struct Phi3;
struct Bert;

/// The hooks of a table row's family.
pub(crate) fn of(p: Params) -> &'static dyn ArchHooks {
    match p {
        Params::Text => &Text,
        Params::Qwen2 => &Qwen2,
        Params::Gemma2 => &Gemma2,
        Params::Gemma3 => &Gemma3,
        Params::Phi3 => &Phi3,
        Params::Bert => &Bert,
    }
}

/// A config error naming `config.json`.
fn cfg_err(c: &Ctx, what: impl Into<String>) -> Error {
    Error::model(c.dir.join("config.json"), what.into())
}

fn u32v(v: u64) -> Value {
    Value::U32(v as u32)
}

impl ArchHooks for Text {}

impl ArchHooks for Qwen2 {
    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        c.insert(
            "attention_bias".into(),
            serde_json::json!(x.has(".attn_q.bias")),
        );
        Text.hf_config(x, c)
    }
}

impl ArchHooks for Bert {
    /// llama.cpp's BertModel.filter_tensors.
    fn rename(&self, name: &str) -> Option<String> {
        let mut n = name.strip_prefix("bert.").unwrap_or(name).to_string();
        if let Some(r) = n.strip_suffix(".gamma") {
            n = format!("{r}.weight");
        } else if let Some(r) = n.strip_suffix(".beta") {
            n = format!("{r}.bias");
        }
        if n.starts_with("cls.predictions") || n.starts_with("cls.seq_relationship") {
            return None;
        }
        Some(n)
    }

    fn hidden_act(&self) -> &'static str {
        "gelu"
    }
}

/// llama.cpp's `TextModel.set_gguf_parameters`: the generic keys.
fn text_params(c: &Ctx, meta: &mut Metadata) -> Result<()> {
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

impl ArchHooks for Phi3 {
    /// GGUF -> HF: original context, sliding window, rotary fraction and the LongRoPE factors.
    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        let (k, src, heads, hidden) = (x.k, x.src, x.heads, x.hidden);
        let orig = k.u64("rope.scaling.original_context_length");
        if let Some(v) = orig {
            c.insert("original_max_position_embeddings".into(), json!(v));
        }
        let sw = k.u64("attention.sliding_window").unwrap_or(0);
        c.insert(
            "sliding_window".into(),
            if sw == 0 { Json::Null } else { json!(sw) },
        );
        if let Some(rd) = k.u64("rope.dimension_count") {
            c.insert(
                "partial_rotary_factor".into(),
                f32_json((rd * heads) as f64 / hidden as f64),
            );
        }
        let long = tensor_f32(src, "rope_factors_long.weight")?;
        let short = tensor_f32(src, "rope_factors_short.weight")?;
        if let (Some(l), Some(s)) = (long, short) {
            let to = |v: Vec<f32>| {
                v.into_iter()
                    .map(|x| f32_json(f64::from(x)))
                    .collect::<Vec<_>>()
            };
            c.insert(
                "rope_scaling".into(),
                json!({"type": "longrope", "long_factor": to(l), "short_factor": to(s)}),
            );
        }
        Ok(())
    }

    /// LongRoPE's long and short factors, and the attention factor.
    fn computed(&self, c: &Ctx) -> Result<Computed> {
        let Ctx {
            h,
            rope,
            rope_params,
            ..
        } = *c;
        let rope_type = c.rope_type.map(str::to_string);
        let (mut tensors, mut early) = (Vec::new(), Vec::new());
        if let Some(Json::Array(long)) = rope_params.get("long_factor") {
            let short = match rope_params.get("short_factor") {
                Some(Json::Array(s)) => s.clone(),
                _ => {
                    return Err(cfg_err(
                        c,
                        "rope_scaling has long_factor but no short_factor",
                    ))
                }
            };
            let n_embd = h.require_u64(&["hidden_size", "n_embd"])?;
            let heads = h.require_u64(&["num_attention_heads", "n_head"])?.max(1);
            let rot = rope
                .get("partial_rotary_factor")
                .and_then(Json::as_f64)
                .unwrap_or(1.0);
            let rope_dims = (rot * n_embd as f64) as u64 / heads;
            let max_pos = h.require_u64(&["n_positions", "max_position_embeddings"])? as f64;
            let orig = rope
                .get("original_max_position_embeddings")
                .and_then(Json::as_f64)
                .ok_or_else(|| cfg_err(c, "original_max_position_embeddings is not set"))?;
            let scale = max_pos / orig;
            let kind = rope_type.clone().unwrap_or_default().to_lowercase();
            let factor = match kind.as_str() {
                "su" | "longrope" => {
                    if scale > 1.0 {
                        (1.0 + scale.ln() / orig.ln()).sqrt()
                    } else {
                        1.0
                    }
                }
                "yarn" => {
                    if scale > 1.0 {
                        0.1 * scale.ln() + 1.0
                    } else {
                        1.0
                    }
                }
                "" => return Err(cfg_err(c, "rope_scaling has no type")),
                other => {
                    return Err(cfg_err(
                        c,
                        format!("rope scaling type '{other}' is not supported"),
                    ))
                }
            };
            early.push((
                format!("{}.rope.scaling.attn_factor", c.arch),
                Value::F32(factor as f32),
            ));
            if long.len() != short.len() || long.len() as u64 * 2 != rope_dims {
                return Err(cfg_err(
                    c,
                    format!(
                        "long/short rope factors must have {} entries",
                        rope_dims / 2
                    ),
                ));
            }
            for (name, list) in [
                ("rope_factors_long.weight", long.clone()),
                ("rope_factors_short.weight", short),
            ] {
                let vals: Vec<f32> = list
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect();
                tensors.push((name, vals));
            }
        }
        Ok((tensors, early))
    }

    /// llama.cpp's Phi3MiniModel.set_gguf_parameters, in its order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let Ctx {
            h,
            rope,
            rope_params,
            blocks,
            file_type,
            ..
        } = *c;
        let a = c.arch;
        // llama.cpp's Phi3MiniModel.set_gguf_parameters, in its order
        let n_embd = h.require_u64(&["hidden_size", "n_embd"])?;
        let heads = h.require_u64(&["num_attention_heads", "n_head"])?;
        let kv = h.require_u64(&["num_key_value_heads", "n_head_kv"])?;
        let rms = h
            .find_f64(&["rms_norm_eps"])
            .ok_or_else(|| cfg_err(c, "rms_norm_eps is not set"))?;
        let max_pos = h.require_u64(&["n_positions", "max_position_embeddings"])?;
        let orig = rope
            .get("original_max_position_embeddings")
            .and_then(Json::as_u64)
            .ok_or_else(|| cfg_err(c, "original_max_position_embeddings is not set"))?;
        let rot = rope
            .get("partial_rotary_factor")
            .and_then(Json::as_f64)
            .unwrap_or(1.0);
        let rope_dims = (rot * n_embd as f64) as u64 / heads.max(1);
        let theta = rope_params
            .get("rope_theta")
            .and_then(Json::as_f64)
            .ok_or_else(|| cfg_err(c, "rope_theta is not set"))?;
        meta.insert(format!("{a}.context_length"), u32v(max_pos));
        meta.insert(
            format!("{a}.rope.scaling.original_context_length"),
            u32v(orig),
        );
        meta.insert(format!("{a}.embedding_length"), u32v(n_embd));
        meta.insert(
            format!("{a}.feed_forward_length"),
            u32v(h.require_u64(&["intermediate_size"])?),
        );
        meta.insert(format!("{a}.block_count"), u32v(blocks));
        meta.insert(format!("{a}.attention.head_count"), u32v(heads));
        meta.insert(format!("{a}.attention.head_count_kv"), u32v(kv));
        meta.insert(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(rms as f32),
        );
        meta.insert(format!("{a}.rope.dimension_count"), u32v(rope_dims));
        meta.insert(format!("{a}.rope.freq_base"), Value::F32(theta as f32));
        meta.insert("general.file_type", Value::U32(file_type));
        meta.insert(
            format!("{a}.attention.sliding_window"),
            u32v(h.find_u64(&["sliding_window"]).unwrap_or(0)),
        );
        Ok(())
    }
}

impl ArchHooks for Gemma2 {
    /// llama.cpp's Gemma2Model.set_gguf_parameters, in its order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let Ctx {
            h,
            blocks,
            file_type,
            ..
        } = *c;
        let a = c.arch;
        // llama.cpp's Gemma2Model.set_gguf_parameters, in its order
        let req = |k: &str| h.require_u64(&[k]);
        meta.insert(
            format!("{a}.context_length"),
            u32v(req("max_position_embeddings")?),
        );
        meta.insert(format!("{a}.embedding_length"), u32v(req("hidden_size")?));
        meta.insert(format!("{a}.block_count"), u32v(blocks));
        meta.insert(
            format!("{a}.feed_forward_length"),
            u32v(req("intermediate_size")?),
        );
        meta.insert(
            format!("{a}.attention.head_count"),
            u32v(req("num_attention_heads")?),
        );
        meta.insert(
            format!("{a}.attention.head_count_kv"),
            u32v(h.require_u64(&["num_key_value_heads", "num_attention_heads"])?),
        );
        let f = |k: &str| -> Result<Value> {
            h.find_f64(&[k])
                .map(|v| Value::F32(v as f32))
                .ok_or_else(|| cfg_err(c, format!("{k} is not set")))
        };
        meta.insert(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            f("rms_norm_eps")?,
        );
        meta.insert(format!("{a}.attention.key_length"), u32v(req("head_dim")?));
        meta.insert(
            format!("{a}.attention.value_length"),
            u32v(req("head_dim")?),
        );
        meta.insert("general.file_type", Value::U32(file_type));
        meta.insert(
            format!("{a}.attn_logit_softcapping"),
            f("attn_logit_softcapping")?,
        );
        meta.insert(
            format!("{a}.final_logit_softcapping"),
            f("final_logit_softcapping")?,
        );
        meta.insert(
            format!("{a}.attention.sliding_window"),
            u32v(req("sliding_window")?),
        );
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        let k = x.k;
        for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
            if let Some(v) = k.f64(key) {
                c.insert(key.into(), f32_json(v));
            }
        }
        if let Some(v) = k.u64("attention.sliding_window") {
            c.insert("sliding_window".into(), serde_json::json!(v));
        }
        if let Some(v) = k.u64("attention.key_length") {
            c.insert("query_pre_attn_scalar".into(), serde_json::json!(v));
        }
        Ok(())
    }

    fn hidden_act(&self) -> &'static str {
        "gelu_pytorch_tanh"
    }
}

impl ArchHooks for Gemma3 {
    /// llama.cpp drops the embedding rows past the real vocabulary.
    fn weight_shape(&self, c: &Ctx, hf_name: &str, shape: &mut [u64]) -> Result<()> {
        if hf_name.contains("embed_tokens.weight") {
            if let Some(n) = super::vocab::real_vocab_size(c.dir, c.h.find_u64(&["vocab_size"]))? {
                shape[0] = shape[0].min(n);
            }
        }
        Ok(())
    }

    /// The generic keys, then llama.cpp's Gemma3Model overrides.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)?;
        let h = c.h;
        let rope_params = c.rope_params;
        let a = c.arch;
        // llama.cpp's Gemma3Model overrides, after the generic keys
        meta.insert(
            format!("{a}.context_length"),
            u32v(h.find_u64(&["max_position_embeddings"]).unwrap_or(131072)),
        );
        meta.insert(
            format!("{a}.attention.head_count"),
            u32v(h.find_u64(&["num_attention_heads"]).unwrap_or(8)),
        );
        meta.insert(
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(h.find_f64(&["rms_norm_eps"]).unwrap_or(1e-6) as f32),
        );
        let hd = h.find_u64(&["head_dim"]).unwrap_or(256);
        meta.insert(format!("{a}.attention.key_length"), u32v(hd));
        meta.insert(format!("{a}.attention.value_length"), u32v(hd));
        let theta = rope_params
            .get("rope_theta")
            .and_then(Json::as_f64)
            .unwrap_or(1_000_000.0);
        meta.insert(format!("{a}.rope.freq_base"), Value::F32(theta as f32));
        if let Some(c) = h
            .find_f64(&["final_logit_softcapping"])
            .filter(|c| *c != 0.0)
        {
            meta.insert(format!("{a}.final_logit_softcapping"), Value::F32(c as f32));
        }
        if h.0.get("sliding_window_pattern").and_then(Json::as_u64) != Some(1) {
            meta.insert(
                format!("{a}.attention.sliding_window"),
                u32v(h.require_u64(&["sliding_window"])?),
            );
        }
        meta.insert(
            format!("{a}.attention.head_count_kv"),
            u32v(h.find_u64(&["num_key_value_heads"]).unwrap_or(4)),
        );
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        let k = x.k;
        if let Some(v) = k.u64("attention.sliding_window") {
            c.insert("sliding_window".into(), serde_json::json!(v));
        }
        if let Some(v) = k.f64("rope.freq_base_swa") {
            c.insert("rope_local_base_freq".into(), f32_json(v));
        }
        if let Some(v) = k.f64("final_logit_softcapping") {
            c.insert("final_logit_softcapping".into(), f32_json(v));
        }
        if let Some(v) = k.u64("attention.key_length") {
            c.insert("query_pre_attn_scalar".into(), serde_json::json!(v));
        }
        Ok(())
    }

    fn hidden_act(&self) -> &'static str {
        "gelu_pytorch_tanh"
    }
}

/// A small F32 tensor's values, if the GGUF has it.
fn tensor_f32(src: &dyn Source, name: &str) -> Result<Option<Vec<f32>>> {
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

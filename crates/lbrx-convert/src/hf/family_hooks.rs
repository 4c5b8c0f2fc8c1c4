//! The hook sets of the architecture families (`hooks.rs` has the trait and llama.cpp's `TextModel`
//! defaults): each is one convert_hf_to_gguf model class's `set_gguf_parameters`, computed tensors and tensor
//! filters, and the config its GGUF converts back to. [`of`] maps a table row's `params` column to its set.

use super::arch::Params;
use super::hooks::{
    cfg_err, f32_json, llama_params, tensor_f32, text_filter, text_params, u32v, ArchHooks,
    Computed, Ctx, HfCtx, Text,
};
use super::hparams::HParams;
use lbrx_core::{Metadata, Result, Value};
use serde_json::{json, Map, Value as Json};

struct Qwen2;
struct Gemma2;
struct Gemma3;
struct Phi3;
struct Bert;
struct Granite;
struct Qwen3Moe;
struct Starcoder2;
struct Olmoe;
struct Cohere;
struct Cohere2;
struct Exaone4;
struct Phi2;
struct StableLm;
struct Mistral3;

/// The hooks of a table row's family.
pub(crate) fn of(p: Params) -> &'static dyn ArchHooks {
    match p {
        Params::Text => &Text,
        Params::Qwen2 => &Qwen2,
        Params::Gemma2 => &Gemma2,
        Params::Gemma3 => &Gemma3,
        Params::Phi3 => &Phi3,
        Params::Bert => &Bert,
        Params::Granite => &Granite,
        Params::Qwen3Moe => &Qwen3Moe,
        Params::Starcoder2 => &Starcoder2,
        Params::Olmoe => &Olmoe,
        Params::Cohere => &Cohere,
        Params::Cohere2 => &Cohere2,
        Params::Exaone4 => &Exaone4,
        Params::Phi2 => &Phi2,
        Params::StableLm => &StableLm,
        Params::Mistral3 => &Mistral3,
    }
}

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

impl ArchHooks for Qwen3Moe {
    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        c.insert("norm_topk_prob".into(), json!(true));
        Text.hf_config(x, c)
    }
}

impl ArchHooks for Starcoder2 {
    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        c.insert("use_bias".into(), json!(x.has(".attn_q.bias")));
        if let Some(v) = x.k.f64("attention.layer_norm_epsilon") {
            c.insert("norm_epsilon".into(), f32_json(v));
        }
        Ok(())
    }

    fn hidden_act(&self) -> &'static str {
        "gelu_pytorch_tanh"
    }
}

impl ArchHooks for Olmoe {
    /// The generic keys; llama.cpp's OlmoeModel then sets the RMS epsilon to 1e-5 whatever the config says.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)?;
        meta.insert(
            format!("{}.attention.layer_norm_rms_epsilon", c.arch),
            Value::F32(1e-5),
        );
        Ok(())
    }
}

impl ArchHooks for Granite {
    /// llama.cpp's GraniteModel: Llama's keys with `head_dim` ignored, then the four multipliers as scales.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let mut cfg = c.h.0.clone();
        cfg.remove("head_dim");
        let h = HParams(cfg);
        let c = Ctx { h: &h, ..*c };
        text_params(&c, meta)?;
        llama_params(&c, meta)?;
        for (field, key) in [
            ("attention_multiplier", "attention.scale"),
            ("embedding_multiplier", "embedding_scale"),
            ("residual_multiplier", "residual_scale"),
            ("logits_scaling", "logit_scale"),
        ] {
            // Python's truthiness: a zero multiplier is not written
            if let Some(v) = h.find_f64(&[field]).filter(|v| *v != 0.0) {
                meta.insert(format!("{}.{key}", c.arch), Value::F32(v as f32));
            }
        }
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        for (field, key) in [
            ("attention_multiplier", "attention.scale"),
            ("embedding_multiplier", "embedding_scale"),
            ("residual_multiplier", "residual_scale"),
            ("logits_scaling", "logit_scale"),
        ] {
            if let Some(v) = x.k.f64(key) {
                c.insert(field.into(), f32_json(v));
            }
        }
        Ok(())
    }
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

/// The rotary dimensions of a partial-rotary family: `int(fraction * head_dim)`.
fn partial_rope_dims(c: &Ctx, fraction_keys: &[&str], default: f64) -> Result<u64> {
    let h = c.h;
    let frac = c
        .rope
        .get("partial_rotary_factor")
        .and_then(Json::as_f64)
        .or_else(|| h.find_f64(fraction_keys))
        .unwrap_or(default);
    let per_head =
        h.require_u64(&["hidden_size"])? / h.require_u64(&["num_attention_heads"])?.max(1);
    Ok((frac * per_head as f64) as u64)
}

impl ArchHooks for Cohere {
    /// llama.cpp's CommandR2Model: the context is `model_max_length` when the config has it.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let mut cfg = c.h.0.clone();
        if let Some(v) = cfg
            .get("model_max_length")
            .filter(|v| !v.is_null())
            .cloned()
        {
            cfg.insert("max_position_embeddings".into(), v);
        }
        let h = HParams(cfg);
        let c = Ctx { h: &h, ..*c };
        text_params(&c, meta)?;
        let scale = h
            .find_f64(&["logit_scale"])
            .ok_or_else(|| cfg_err(&c, "logit_scale is not set"))?;
        meta.insert(format!("{}.logit_scale", c.arch), Value::F32(scale as f32));
        meta.insert(
            format!("{}.rope.scaling.type", c.arch),
            Value::Str("none".into()),
        );
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        if let Some(v) = x.k.f64("logit_scale") {
            c.insert("logit_scale".into(), f32_json(v));
        }
        if let Some(v) = x.k.f64("attention.layer_norm_epsilon") {
            c.insert("layer_norm_eps".into(), f32_json(v));
        }
        c.insert("use_qk_norm".into(), json!(x.has(".attn_q_norm.")));
        Ok(())
    }
}

impl ArchHooks for Cohere2 {
    /// llama.cpp drops Cohere2's biases (zero in every released model; its runtime has none).
    fn rename(&self, name: &str) -> Option<String> {
        text_filter(name).filter(|n| !n.ends_with(".bias"))
    }

    /// llama.cpp's Cohere2Model.set_gguf_parameters, in its order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)?;
        let (h, a) = (c.h, c.arch);
        let scale = h
            .find_f64(&["logit_scale"])
            .ok_or_else(|| cfg_err(c, "logit_scale is not set"))?;
        meta.insert(format!("{a}.logit_scale"), Value::F32(scale as f32));
        meta.insert(
            format!("{a}.attention.sliding_window"),
            u32v(h.require_u64(&["sliding_window"])?),
        );
        meta.insert(
            format!("{a}.vocab_size"),
            u32v(h.require_u64(&["vocab_size"])?),
        );
        let pct = h
            .find_f64(&["rotary_pct"])
            .ok_or_else(|| cfg_err(c, "rotary_pct is not set (llama.cpp's converter needs it)"))?;
        let per_head =
            h.require_u64(&["hidden_size"])? / h.require_u64(&["num_attention_heads"])?.max(1);
        meta.insert(
            format!("{a}.rope.dimension_count"),
            u32v((pct * per_head as f64) as u64),
        );
        meta.insert(format!("{a}.rope.scaling.type"), Value::Str("none".into()));
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        Cohere.hf_config(x, c)?;
        if let Some(v) = x.k.u64("attention.sliding_window") {
            c.insert("sliding_window".into(), json!(v));
        }
        if let (Some(rd), Some(hd)) = (
            x.k.u64("rope.dimension_count"),
            x.k.u64("attention.key_length"),
        ) {
            c.insert("rotary_pct".into(), f32_json(rd as f64 / hd.max(1) as f64));
        }
        Ok(())
    }
}

/// The sliding-window layer pattern from `layer_types` or `sliding_window_pattern` (a string such as `LLLG`,
/// or a period), as EXAONE 4's converter reads it; `None` when neither gives one flag per layer.
fn window_pattern(c: &Ctx) -> Option<Vec<bool>> {
    let (h, n) = (c.h, c.blocks as usize);
    if let Some(Json::Array(types)) = h.0.get("layer_types") {
        return Some(
            types
                .iter()
                .map(|t| t.as_str() == Some("sliding_attention"))
                .collect(),
        );
    }
    let pattern: Vec<bool> = match h.0.get("sliding_window_pattern") {
        Some(Json::String(p)) if !p.is_empty() => {
            let b = p.as_bytes();
            (0..n).map(|i| b[i % b.len()] == b'L').collect()
        }
        Some(Json::Number(p)) => match p.as_u64().filter(|p| *p > 0) {
            Some(p) => (0..n as u64).map(|i| (i + 1) % p != 0).collect(),
            None => return None,
        },
        _ => return None,
    };
    (pattern.len() == n).then_some(pattern)
}

impl ArchHooks for Exaone4 {
    /// llama.cpp's Exaone4Model.set_gguf_parameters, in its order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)?;
        let (h, a) = (c.h, c.arch);
        meta.insert(
            format!("{a}.vocab_size"),
            u32v(h.require_u64(&["vocab_size"])?),
        );
        if let Some(w) = h.find_u64(&["sliding_window"]) {
            meta.insert(format!("{a}.attention.sliding_window"), u32v(w));
            if let Some(p) = window_pattern(c) {
                meta.insert(
                    format!("{a}.attention.sliding_window_pattern"),
                    Value::Array(
                        lbrx_core::ValueKind::Bool,
                        p.into_iter().map(Value::Bool).collect(),
                    ),
                );
            }
        }
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        if let Some(v) = x.k.u64("attention.sliding_window") {
            c.insert("sliding_window".into(), json!(v));
        }
        if let Some(Value::Array(_, flags)) =
            x.k.m
                .get(&format!("{}.attention.sliding_window_pattern", x.k.arch))
        {
            let types: Vec<Json> = flags
                .iter()
                .map(|f| {
                    json!(if matches!(f, Value::Bool(true)) {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    })
                })
                .collect();
            c.insert("layer_types".into(), Json::Array(types));
        }
        Text.hf_config(x, c)
    }
}

/// GGUF -> HF for the LayerNorm, partial-rotary families (Phi-2, StableLM): `layer_norm_eps` and
/// `partial_rotary_factor` (rotary dimensions x heads / embedding).
fn layer_norm_and_rotary(x: &HfCtx, c: &mut Map<String, Json>) {
    if let Some(v) = x.k.f64("attention.layer_norm_epsilon") {
        c.insert("layer_norm_eps".into(), f32_json(v));
    }
    if let Some(rd) = x.k.u64("rope.dimension_count") {
        c.insert(
            "partial_rotary_factor".into(),
            f32_json((rd * x.heads) as f64 / x.hidden.max(1) as f64),
        );
    }
}

impl ArchHooks for Phi2 {
    /// llama.cpp's Phi2Model.set_gguf_parameters, in its order (the feed-forward length is 4 x embedding).
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let (h, a) = (c.h, c.arch);
        let n_embd = h.require_u64(&["hidden_size", "n_embd"])?;
        let n_head = h.require_u64(&["num_attention_heads", "n_head"])?;
        let rot = c
            .rope
            .get("partial_rotary_factor")
            .and_then(Json::as_f64)
            .ok_or_else(|| cfg_err(c, "partial_rotary_factor is not set"))?;
        meta.insert(
            format!("{a}.context_length"),
            u32v(h.require_u64(&["n_positions", "max_position_embeddings"])?),
        );
        meta.insert(format!("{a}.embedding_length"), u32v(n_embd));
        meta.insert(format!("{a}.feed_forward_length"), u32v(4 * n_embd));
        meta.insert(format!("{a}.block_count"), u32v(c.blocks));
        meta.insert(format!("{a}.attention.head_count"), u32v(n_head));
        meta.insert(format!("{a}.attention.head_count_kv"), u32v(n_head));
        let eps = h
            .find_f64(&["layer_norm_epsilon", "layer_norm_eps"])
            .ok_or_else(|| cfg_err(c, "layer_norm_eps is not set"))?;
        meta.insert(
            format!("{a}.attention.layer_norm_epsilon"),
            Value::F32(eps as f32),
        );
        meta.insert(
            format!("{a}.rope.dimension_count"),
            u32v((rot * n_embd as f64) as u64 / n_head.max(1)),
        );
        meta.insert("general.file_type", Value::U32(c.file_type));
        meta.insert("tokenizer.ggml.add_bos_token", Value::Bool(false));
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        layer_norm_and_rotary(x, c);
        // Phi-2's feed-forward width is not in the GGUF's key (4 x embedding): the up projection has it
        if let Some(t) = x
            .src
            .tensors()
            .iter()
            .find(|t| t.name == "blk.0.ffn_up.weight")
        {
            c.insert("intermediate_size".into(), json!(t.shape[0]));
        }
        Ok(())
    }

    fn hidden_act(&self) -> &'static str {
        "gelu_new"
    }
}

impl ArchHooks for StableLm {
    /// llama.cpp's StableLMModel.set_gguf_parameters, in its order.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        let (h, a) = (c.h, c.arch);
        let req = |k: &str| h.require_u64(&[k]);
        meta.insert(
            format!("{a}.context_length"),
            u32v(req("max_position_embeddings")?),
        );
        meta.insert(format!("{a}.embedding_length"), u32v(req("hidden_size")?));
        meta.insert(format!("{a}.block_count"), u32v(c.blocks));
        meta.insert(
            format!("{a}.feed_forward_length"),
            u32v(req("intermediate_size")?),
        );
        meta.insert(
            format!("{a}.rope.dimension_count"),
            u32v(partial_rope_dims(c, &["rope_pct"], 0.25)?),
        );
        meta.insert(
            format!("{a}.attention.head_count"),
            u32v(req("num_attention_heads")?),
        );
        meta.insert(
            format!("{a}.attention.head_count_kv"),
            u32v(req("num_key_value_heads")?),
        );
        let parallel =
            h.0.get("use_parallel_residual")
                .and_then(Json::as_bool)
                .unwrap_or(true);
        meta.insert(format!("{a}.use_parallel_residual"), Value::Bool(parallel));
        let eps = h
            .find_f64(&["layer_norm_eps", "norm_eps"])
            .ok_or_else(|| cfg_err(c, "layer_norm_eps is not set"))?;
        meta.insert(
            format!("{a}.attention.layer_norm_epsilon"),
            Value::F32(eps as f32),
        );
        meta.insert("general.file_type", Value::U32(c.file_type));
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        layer_norm_and_rotary(x, c);
        if let Some(Value::Bool(p)) = x.k.m.get(&format!("{}.use_parallel_residual", x.k.arch)) {
            c.insert("use_parallel_residual".into(), json!(p));
        }
        c.insert("use_qkv_bias".into(), json!(x.has(".attn_q.bias")));
        Ok(())
    }
}

impl ArchHooks for Mistral3 {
    fn hf_class(&self) -> Option<&'static str> {
        Some("MistralForCausalLM")
    }
}

//! The hook sets of the architecture families (`hooks.rs` has the trait and llama.cpp's `TextModel`
//! defaults): each is one convert_hf_to_gguf model class's `set_gguf_parameters`, computed tensors and tensor
//! filters, and the config its GGUF converts back to. [`of`] maps a table row's `params` column to its set.
//! This file holds the families that keep llama.cpp's generic keys; `own_keys.rs` those with their own list.

use super::arch::Params;
use super::hooks::{
    cfg_err, f32_json, text_filter, text_params, u32v, ArchHooks, Ctx, HfCtx, Text,
};
use super::hparams::HParams;
use super::own_keys::{Gemma2, Gemma3, Granite, GraniteMoe, Mistral3, Phi2, Phi3, StableLm};
use lbrx_core::{Metadata, Result, Value};
use serde_json::{json, Map, Value as Json};

struct Qwen2;
struct Bert;
struct Qwen3Moe;
struct Starcoder2;
struct Olmoe;
struct Cohere;
struct Cohere2;
struct Exaone4;
struct Glm4;

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
        Params::Glm4 => &Glm4,
        Params::GraniteMoe => &GraniteMoe,
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
        let per_head = h.per_head()?;
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

impl ArchHooks for Glm4 {
    /// llama.cpp's Glm4Model.set_gguf_parameters: the generic keys, then the rotary part of each head.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        text_params(c, meta)?;
        let h = c.h;
        let head_dim = match h.find_u64(&["head_dim"]) {
            Some(d) => d,
            None => h.per_head()?,
        };
        let frac = c
            .rope
            .get("partial_rotary_factor")
            .and_then(Json::as_f64)
            .unwrap_or(0.5);
        meta.insert(
            format!("{}.rope.dimension_count", c.arch),
            u32v((head_dim as f64 * frac) as u64),
        );
        Ok(())
    }

    fn hf_config(&self, x: &HfCtx, c: &mut Map<String, Json>) -> Result<()> {
        if let (Some(rd), Some(hd)) = (
            x.k.u64("rope.dimension_count"),
            x.k.u64("attention.key_length"),
        ) {
            c.insert(
                "partial_rotary_factor".into(),
                f32_json(rd as f64 / hd.max(1) as f64),
            );
        }
        c.insert("attention_bias".into(), json!(x.has(".attn_q.bias")));
        Ok(())
    }
}

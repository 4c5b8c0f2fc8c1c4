//! The hook sets of the families whose llama.cpp converter class writes its own key list (Phi-2, Phi-3,
//! StableLM, Gemma 2 and 3) or Llama's with additions (Granite, GraniteMoe, Mistral3's text model).
//! `family_hooks.rs` maps table rows to these and holds the families that keep the generic keys.

use super::hooks::{
    cfg_err, f32_json, llama_params, tensor_f32, text_params, u32v, ArchHooks, Computed, Ctx,
    HfCtx, Part,
};
use super::hparams::HParams;
use lbrx_core::{Error, Metadata, Result, Value};
use serde_json::{json, Map, Value as Json};

/// Gemma 2's hooks.
pub(crate) struct Gemma2;
/// Gemma 3's hooks.
pub(crate) struct Gemma3;
/// Phi-3's hooks.
pub(crate) struct Phi3;
/// Granite's hooks.
pub(crate) struct Granite;
/// Phi-2's hooks.
pub(crate) struct Phi2;
/// StableLM's hooks.
pub(crate) struct StableLm;
/// The hooks of Mistral3's text model.
pub(crate) struct Mistral3;
/// GraniteMoe's hooks.
pub(crate) struct GraniteMoe;

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
    let per_head = h.per_head()?;
    Ok((frac * per_head as f64) as u64)
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
        meta.insert(
            format!("{a}.feed_forward_length"),
            u32v(n_embd.saturating_mul(4)),
        );
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

impl ArchHooks for GraniteMoe {
    /// llama.cpp's GraniteMoeModel.modify_tensors: `input_linear` holds gate and up one above the other, for
    /// every expert (`[experts, 2 x ff, hidden]`) and for the shared expert (`[2 x ff, hidden]`).
    fn split(&self, c: &Ctx, hf_name: &str, shape: &[u64]) -> Result<Option<Vec<Part>>> {
        let (prefix, stacked) =
            if let Some(p) = hf_name.strip_suffix(".block_sparse_moe.input_linear.weight") {
                (p, true)
            } else if let Some(p) = hf_name.strip_suffix(".shared_mlp.input_linear.weight") {
                (p, false)
            } else {
                return Ok(None);
            };
        let (ff_key, names) = if stacked {
            (
                "intermediate_size",
                ["block_sparse_moe.experts.w1", "block_sparse_moe.experts.w3"],
            )
        } else {
            (
                "shared_intermediate_size",
                ["mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj"],
            )
        };
        let ff = c.h.require_u64(&[ff_key])?;
        let (rows_at, want_dims) = if stacked { (1, 3) } else { (0, 2) };
        // the shape is the file's, so its products fit; a config width that does not match is refused
        if shape.len() != want_dims || shape[rows_at] != ff.saturating_mul(2) {
            return Err(Error::tensor(
                hf_name.to_string(),
                format!(
                    "a fused gate/up projection must have {} rows (2 x {ff_key}), not shape {shape:?}",
                    ff.saturating_mul(2)
                ),
            ));
        }
        let cols = shape[want_dims - 1];
        let mut half = shape.to_vec();
        half[rows_at] = ff;
        let parts = names
            .iter()
            .enumerate()
            .map(|(k, n)| Part {
                name: format!("{prefix}.{n}.weight"),
                shape: half.clone(),
                start: k as u64 * ff * cols,
                runs: stacked.then_some((ff * cols, 2 * ff * cols)),
            })
            .collect();
        Ok(Some(parts))
    }

    /// Granite's keys, then the shared expert's width.
    fn hparams(&self, c: &Ctx, meta: &mut Metadata) -> Result<()> {
        Granite.hparams(c, meta)?;
        if let Some(v) =
            c.h.find_u64(&["shared_intermediate_size"])
                .filter(|v| *v != 0)
        {
            meta.insert(
                format!("{}.expert_shared_feed_forward_length", c.arch),
                u32v(v),
            );
        }
        Ok(())
    }

    fn not_reversible(&self) -> Option<&'static str> {
        Some("its fused gate/up projections (`input_linear`) are split in the GGUF, and joining them back is not implemented")
    }
}

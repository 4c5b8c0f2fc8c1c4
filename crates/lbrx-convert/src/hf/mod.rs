//! Hugging Face model directory -> GGUF, as llama.cpp's `convert_hf_to_gguf.py` writes it: tensor names
//! mapped through the architecture table, Q/K rows permuted for the Llama family, weights in the chosen
//! type (norms and biases in F32), `general.*` and `{arch}.*` keys from `config.json`, and the tokenizer.
//! Planned like any conversion, so it streams through the executor with bounded memory.

mod arch;
mod hparams;
pub(crate) mod naming;
mod pre_hashes;
pub mod to_hf;
pub(crate) mod vocab;
pub(crate) mod vocab_out;
mod weights;

use crate::layout::layout_gguf;
use crate::plan::{llama_file_type, GgufOut, Plan};
use crate::plan::{Transform, GGUF_TYPES_KEY};
use crate::request::ConvertOptions;
use hparams::{guess_ftype, llama3_rope_factors, pooling_type, read_config, HParams};
use lbrx_core::{DType, Error, Format, Metadata, Result, Source, Value};
use lbrx_formats::gguf::GgufTensorSpec;
use serde_json::{Map, Value as Json};
use std::path::Path;
use weights::{expert_regex, weight_out};

/// True when `src` is a Hugging Face model directory (a `config.json` naming its architecture) rather than
/// tensors lbrx wrote from a GGUF (which convert back name for name).
pub fn is_hf_model(src: &dyn Source) -> bool {
    matches!(src.format(), Format::SafetensorsDir | Format::PyTorchDir)
        && src.metadata().get(GGUF_TYPES_KEY).is_none()
        && read_config(src.root()).is_ok_and(|c| c.get("architectures").is_some())
}

/// Plans HF directory -> GGUF.
pub fn plan_hf_gguf(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let dir = src.root();
    let config = read_config(dir)?;
    let hf_arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let spec = arch::find(&hf_arch).ok_or_else(|| Error::Unsupported {
        path: dir.join("config.json"),
        what: format!(
            "architecture '{hf_arch}' cannot be converted to GGUF yet; supported: {}",
            arch::supported()
        ),
    })?;
    let h = HParams::load(dir, spec)?;
    let blocks = h.require_u64(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;
    let n_head = h.find_u64(&["n_heads", "num_attention_heads"]);
    let n_kv_head = h.find_u64(&["n_kv_heads", "num_key_value_heads"]);

    // Weight type: --quant, else --dtype, else what llama.cpp's auto picks.
    let ftype = match (opts.quant, opts.dtype) {
        (Some(q), _) => q,
        (None, Some(d)) => d,
        (None, None) if opts.recipe.is_some() => DType::F16,
        (None, None) => guess_ftype(src),
    };
    let file_type = llama_file_type(ftype).ok_or_else(|| {
        Error::Invalid(format!(
            "GGUF output type {ftype} is not one llama.cpp names as a file type"
        ))
    })?;

    let mut rope: Map<String, Json> = match h.find(&["rope_parameters", "rope_scaling"]) {
        Some(Json::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !rope.contains_key("full_attention") && !rope.contains_key("sliding_attention") {
        if let Some(t) = h.find(&[
            "local_rope_theta",
            "rope_local_theta",
            "rope_theta_local",
            "swa_rope_theta",
            "rope_local_base_freq",
        ]) {
            rope.insert(
                "sliding_attention".into(),
                serde_json::json!({ "rope_theta": t }),
            );
        }
        if !rope.contains_key("rope_theta") {
            if let Some(t) = h.find(&[
                "global_rope_theta",
                "rope_global_theta",
                "rope_theta_global",
                "rope_theta",
                "rotary_emb_base",
            ]) {
                rope.insert("rope_theta".into(), t.clone());
            }
        }
        if !rope.contains_key("rope_type") {
            if let Some(t) = rope.get("type").cloned() {
                rope.insert("rope_type".into(), t);
            }
        }
        for (keys, name) in [
            (
                &["partial_rotary_factor", "rope_pct", "rope_percent"][..],
                "partial_rotary_factor",
            ),
            (
                &["original_max_position_embeddings"][..],
                "original_max_position_embeddings",
            ),
        ] {
            if !rope.contains_key(name) {
                if let Some(v) = h.find(keys) {
                    rope.insert(name.into(), v.clone());
                }
            }
        }
    }
    let rope_params: Map<String, Json> = match rope.get("full_attention") {
        Some(Json::Object(m)) => m.clone(),
        _ => rope.clone(),
    };
    let rope_type = rope_params
        .get("rope_type")
        .and_then(Json::as_str)
        .map(str::to_string);

    // Tensors.
    let mut outs: Vec<GgufOut> = Vec::new();
    let mut inline: Vec<Vec<u8>> = Vec::new();
    if spec.permute_qk
        && rope_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("llama3"))
    {
        let f = llama3_rope_factors(&h, &rope_params)?;
        outs.push(GgufOut {
            spec: GgufTensorSpec {
                name: "rope_freqs.weight".into(),
                dtype: DType::F32,
                shape: vec![f.len() as u64],
            },
            src: 0,
            transform: Transform::Inline { index: 0 },
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        });
        inline.push(f.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    let mut phi3_attn_factor = None;
    if spec.params == arch::Params::Phi3 {
        if let Some(Json::Array(long)) = rope_params.get("long_factor") {
            let short = match rope_params.get("short_factor") {
                Some(Json::Array(s)) => s.clone(),
                _ => {
                    return Err(Error::Invalid(
                        "config.json: rope_scaling has long_factor but no short_factor".into(),
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
                .ok_or_else(|| {
                    Error::Invalid(
                        "config.json: original_max_position_embeddings is not set".into(),
                    )
                })?;
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
                "" => {
                    return Err(Error::Invalid(
                        "config.json: rope_scaling has no type".into(),
                    ))
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "config.json: rope scaling type '{other}' is not supported"
                    )))
                }
            };
            phi3_attn_factor = Some(factor);
            if long.len() != short.len() || long.len() as u64 * 2 != rope_dims {
                return Err(Error::Invalid(format!(
                    "config.json: long/short rope factors must have {} entries",
                    rope_dims / 2
                )));
            }
            for (name, list) in [
                ("rope_factors_long.weight", long.clone()),
                ("rope_factors_short.weight", short),
            ] {
                let vals: Vec<f32> = list
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect();
                outs.push(GgufOut {
                    spec: GgufTensorSpec {
                        name: name.into(),
                        dtype: DType::F32,
                        shape: vec![vals.len() as u64],
                    },
                    src: 0,
                    transform: Transform::Inline {
                        index: inline.len(),
                    },
                    permute_heads: None,
                    parts: Vec::new(),
                    shift: None,
                    unpermute: false,
                    src_start: 0,
                });
                inline.push(vals.iter().flat_map(|x| x.to_le_bytes()).collect());
            }
        }
    }
    let prefix_model = hf_arch.ends_with("Model") && spec.vocab != arch::VocabOrder::Bert;
    let experts = match spec.experts {
        Some(x) => Some((x, expert_regex(x), h.require_u64(x.count_keys)?)),
        None => None,
    };
    // per block: (projection, expert) -> source tensor
    let mut pending: std::collections::BTreeMap<u64, Vec<(usize, u64, usize)>> = Default::default();
    for (i, t) in src.tensors().iter().enumerate() {
        let mut norm_name = t.name.clone();
        if spec.vocab == arch::VocabOrder::Bert {
            // llama.cpp's BertModel.filter_tensors
            if let Some(r) = norm_name.strip_prefix("bert.") {
                norm_name = r.to_string();
            }
            if let Some(r) = norm_name.strip_suffix(".gamma") {
                norm_name = format!("{r}.weight");
            } else if let Some(r) = norm_name.strip_suffix(".beta") {
                norm_name = format!("{r}.bias");
            }
            if norm_name.starts_with("cls.predictions")
                || norm_name.starts_with("cls.seq_relationship")
            {
                continue;
            }
        }
        let name = &norm_name;
        if name.ends_with(".attention.masked_bias")
            || name.ends_with(".attention.bias")
            || name.ends_with(".rotary_emb.inv_freq")
            || spec.skip.contains(&name.as_str())
        {
            continue;
        }
        let hf_name = if prefix_model && !name.starts_with("model.") && !name.starts_with("lm_head")
        {
            format!("model.{name}")
        } else {
            name.clone()
        };
        if !t.dtype.is_castable_float() {
            return Err(Error::tensor(
                name.to_string(),
                format!("{} is not a float dtype lbrx can convert to GGUF", t.dtype),
            ));
        }
        if let Some((x, re, n_experts)) = &experts {
            if let Some(c) = re.captures(&hf_name) {
                let bid: u64 = c[1].parse().unwrap_or(u64::MAX);
                let xid: u64 = c[2].parse().unwrap_or(u64::MAX);
                let w = x.projections.iter().position(|p| *p == &c[3]).unwrap_or(0);
                if bid >= blocks || xid >= *n_experts {
                    return Err(Error::tensor(
                        name.to_string(),
                        "expert or block number out of range",
                    ));
                }
                let entry = pending.entry(bid).or_default();
                entry.push((w, xid, i));
                if entry.len() as u64 == n_experts * x.projections.len() as u64 {
                    let mut members = pending.remove(&bid).unwrap_or_default();
                    members.sort_unstable();
                    for (w, proj) in x.projections.iter().enumerate() {
                        let parts: Vec<usize> =
                            members.iter().filter(|m| m.0 == w).map(|m| m.2).collect();
                        let first = &src.tensors()[parts[0]];
                        if parts.iter().any(|&p| {
                            let o = &src.tensors()[p];
                            o.shape != first.shape || o.dtype != first.dtype
                        }) {
                            return Err(Error::Invalid(format!(
                                "block {bid}: experts of '{proj}' differ in shape or dtype"
                            )));
                        }
                        let merged = x
                            .merged
                            .replace("{bid}", &bid.to_string())
                            .replace("{w}", proj);
                        let mut shape = vec![*n_experts];
                        shape.extend_from_slice(&first.shape);
                        outs.push(weight_out(
                            &merged,
                            parts[0],
                            first.dtype,
                            shape,
                            ftype,
                            blocks,
                            spec,
                            None,
                            parts,
                        )?);
                    }
                }
                continue;
            }
        }
        let permute_heads = if spec.permute_qk {
            if hf_name.ends_with("q_proj.weight") || hf_name.ends_with("q_proj.bias") {
                n_head
            } else if hf_name.ends_with("k_proj.weight") || hf_name.ends_with("k_proj.bias") {
                match (n_head, n_kv_head) {
                    (Some(a), Some(b)) if a != b => Some(b),
                    (a, _) => a,
                }
            } else {
                None
            }
        } else {
            None
        };
        let mut shape = t.shape.clone();
        if spec.params == arch::Params::Gemma3 && hf_name.contains("embed_tokens.weight") {
            // llama.cpp drops the rows past the real vocabulary
            if let Some(n) = vocab::real_vocab_size(dir, h.find_u64(&["vocab_size"]))? {
                shape[0] = shape[0].min(n);
            }
        }
        outs.push(weight_out(
            &hf_name,
            i,
            t.dtype,
            shape,
            ftype,
            blocks,
            spec,
            permute_heads,
            Vec::new(),
        )?);
    }
    if let Some((bid, _)) = pending.iter().next() {
        return Err(Error::Invalid(format!(
            "block {bid}: experts incomplete (some expert tensors are missing)"
        )));
    }

    // Metadata, in llama.cpp's order.
    let mut meta = Metadata::new();
    meta.insert("general.architecture", Value::Str(spec.gguf.into()));
    if let Some(f) = phi3_attn_factor {
        meta.insert(
            format!("{}.rope.scaling.attn_factor", spec.gguf),
            Value::F32(f as f32),
        );
    }
    meta.insert("general.type", Value::Str("model".into()));
    // gguf-py's get_total_parameter_count: expert tensors count once per expert for the size label.
    let (mut total, mut shared, mut expert, mut expert_sum, mut n_exp) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for o in &outs {
        let size: u64 = o.spec.shape.iter().product();
        let sh = &o.spec.shape;
        if o.spec.name.contains("_exps.") && sh.len() >= 3 {
            let count = sh[sh.len() - if o.spec.name.contains(".bias") { 2 } else { 3 }].max(1);
            expert += size / count;
            expert_sum += count;
            n_exp += 1;
        } else {
            shared += size;
        }
        total += size;
    }
    let expert_count = expert_sum.checked_div(n_exp).unwrap_or(0);
    let gen_config = std::fs::read_to_string(dir.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Json>(&t).ok());
    let dir_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    naming::write_general(
        &mut meta,
        dir,
        &Json::Object(config.clone()),
        gen_config.as_ref(),
        &dir_name,
        total as i64,
        (total > 0).then(|| naming::size_label(total, shared, expert, expert_count)),
    );
    let a = spec.gguf;
    let u32v = |v: u64| Value::U32(v as u32);
    if spec.params == arch::Params::Phi3 {
        // llama.cpp's Phi3MiniModel.set_gguf_parameters, in its order
        let n_embd = h.require_u64(&["hidden_size", "n_embd"])?;
        let heads = h.require_u64(&["num_attention_heads", "n_head"])?;
        let kv = h.require_u64(&["num_key_value_heads", "n_head_kv"])?;
        let rms = h
            .find_f64(&["rms_norm_eps"])
            .ok_or_else(|| Error::Invalid("config.json: rms_norm_eps is not set".into()))?;
        let max_pos = h.require_u64(&["n_positions", "max_position_embeddings"])?;
        let orig = rope
            .get("original_max_position_embeddings")
            .and_then(Json::as_u64)
            .ok_or_else(|| {
                Error::Invalid("config.json: original_max_position_embeddings is not set".into())
            })?;
        let rot = rope
            .get("partial_rotary_factor")
            .and_then(Json::as_f64)
            .unwrap_or(1.0);
        let rope_dims = (rot * n_embd as f64) as u64 / heads.max(1);
        let theta = rope_params
            .get("rope_theta")
            .and_then(Json::as_f64)
            .ok_or_else(|| Error::Invalid("config.json: rope_theta is not set".into()))?;
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
    } else if spec.params == arch::Params::Gemma2 {
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
                .ok_or_else(|| Error::Invalid(format!("config.json: {k} is not set")))
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
    } else {
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
        if let Some(rt) = &rope_type {
            let factor = rope_params.get("factor").and_then(Json::as_f64);
            match (rt.as_str(), factor) {
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
                            Error::Invalid(
                                "yarn rope scaling without original_max_position_embeddings".into(),
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
    }
    if spec.params == arch::Params::Gemma3 {
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
    }
    for (key, fields) in spec.extra_u32 {
        if let Some(v) = h.find_u64(fields) {
            meta.insert(format!("{a}.{key}"), u32v(v));
        }
    }
    if spec.pooling == arch::Pooling::Encoder {
        meta.insert(format!("{a}.attention.causal"), Value::Bool(false));
    }
    if spec.pooling != arch::Pooling::None {
        if let Some(p) = pooling_type(dir)? {
            meta.insert(format!("{a}.pooling_type"), u32v(p));
        }
    }
    if spec.llama_params {
        meta.insert(
            format!("{a}.vocab_size"),
            u32v(h.require_u64(&["vocab_size"])?),
        );
        let rope_dim = match h.0.get("head_dim").and_then(Json::as_u64) {
            Some(d) => d,
            None => h.require_u64(&["hidden_size"])? / n_head.unwrap_or(1).max(1),
        };
        meta.insert(format!("{a}.rope.dimension_count"), u32v(rope_dim));
    }
    meta.insert("general.quantization_version", Value::U32(2));
    vocab::write_vocab(
        dir,
        h.find_u64(&["vocab_size"]),
        h.find_u64(&["type_vocab_size"]),
        spec.vocab,
        &mut meta,
    )?;
    let (mut weights, mut warnings) = (std::collections::BTreeMap::new(), Vec::new());
    if let Some(r) = &opts.recipe {
        (outs, weights, warnings) =
            crate::recipe::apply_recipe(outs, src, &mut meta, r, opts.imatrix.as_ref())?;
    }
    let mut plan = layout_gguf(outs, &meta, dst, opts.max_shard_size, inline)?;
    plan.imatrix = weights;
    plan.warnings = warnings;
    Ok(plan)
}

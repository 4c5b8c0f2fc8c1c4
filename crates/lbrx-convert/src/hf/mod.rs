//! Hugging Face model directory -> GGUF, as llama.cpp's `convert_hf_to_gguf.py` writes it: tensor names
//! mapped through the architecture table, Q/K rows permuted for the Llama family, weights in the chosen
//! type (norms and biases in F32), `general.*` and `{arch}.*` keys from `config.json`, and the tokenizer.
//! Planned like any conversion, so it streams through the executor with bounded memory.

mod arch;
mod archs;
mod family_hooks;
mod hooks;
mod hparams;
pub(crate) mod naming;
mod own_keys;
mod pre_hashes;
pub mod to_hf;
pub(crate) mod vocab;
pub(crate) mod vocab_out;
mod weights;

use crate::plan::{llama_file_type, Input, Plan, Planned};
use crate::plan::{Transform, GGUF_TYPES_KEY};
use crate::request::ConvertOptions;
use crate::writer::{Gguf, Layout, OutputWriter};
use hparams::{guess_ftype, llama3_rope_factors, pooling_type, read_config, HParams};
use lbrx_core::{DType, Error, Format, Metadata, Result, Source, Value};
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
    let spec = archs::find(&hf_arch).ok_or_else(|| Error::Unsupported {
        path: dir.join("config.json"),
        what: format!(
            "architecture '{hf_arch}' cannot be converted to GGUF yet; supported: {}",
            archs::supported()
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
        Error::Usage(format!(
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
    let mut outs: Vec<Planned> = Vec::new();
    let mut inline: Vec<Vec<u8>> = Vec::new();
    if spec.rope_freqs
        && rope_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("llama3"))
    {
        let f = llama3_rope_factors(&h, &rope_params)?;
        outs.push(Planned::new(
            "rope_freqs.weight",
            DType::F32,
            vec![f.len() as u64],
            Input::Inline { index: 0 },
            Transform::Copy,
        ));
        inline.push(f.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    let hooks = family_hooks::of(spec.params);
    let ctx = hooks::Ctx {
        dir,
        h: &h,
        rope: &rope,
        rope_params: &rope_params,
        rope_type: rope_type.as_deref(),
        arch: spec.gguf,
        blocks,
        n_head,
        n_kv_head,
        file_type,
    };
    let (computed, early) = hooks.computed(&ctx)?;
    for (name, vals) in computed {
        outs.push(Planned::new(
            name,
            DType::F32,
            vec![vals.len() as u64],
            Input::Inline {
                index: inline.len(),
            },
            Transform::Copy,
        ));
        inline.push(vals.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    let prefix_model = hf_arch.ends_with("Model") && spec.vocab != arch::VocabOrder::Bert;
    let experts = match spec.experts {
        Some(x) => Some((x, expert_regex(x), h.require_u64(x.count_keys)?)),
        None => None,
    };
    // per block: (projection, expert) -> source tensor
    let mut pending: std::collections::BTreeMap<u64, Vec<(usize, u64, usize)>> = Default::default();
    for (i, t) in src.tensors().iter().enumerate() {
        let Some(norm_name) = hooks.rename(&t.name) else {
            continue;
        };
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
                            return Err(Error::model(
                                dir,
                                format!(
                                    "block {bid}: experts of '{proj}' differ in shape or dtype"
                                ),
                            ));
                        }
                        let merged = x
                            .merged
                            .replace("{bid}", &bid.to_string())
                            .replace("{w}", proj);
                        let mut shape = vec![*n_experts];
                        shape.extend_from_slice(&first.shape);
                        outs.push(weight_out(
                            &merged,
                            Input::Stack { parts },
                            first.dtype,
                            shape,
                            ftype,
                            blocks,
                            spec,
                            None,
                        )?);
                    }
                }
                continue;
            }
        }
        if let Some(parts) = hooks.split(&ctx, &hf_name, &t.shape)? {
            for p in parts {
                let input = match p.runs {
                    Some((run, stride)) => Input::Slices {
                        src: i,
                        start: p.start,
                        run,
                        stride,
                    },
                    None => Input::Tensor {
                        src: i,
                        start: p.start,
                    },
                };
                outs.push(weight_out(
                    &p.name, input, t.dtype, p.shape, ftype, blocks, spec, None,
                )?);
            }
            continue;
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
        hooks.weight_shape(&ctx, &hf_name, &mut shape)?;
        outs.push(weight_out(
            &hf_name,
            Input::tensor(i),
            t.dtype,
            shape,
            ftype,
            blocks,
            spec,
            permute_heads,
        )?);
    }
    if let Some((bid, _)) = pending.iter().next() {
        return Err(Error::model(
            dir,
            format!("block {bid}: experts incomplete (some expert tensors are missing)"),
        ));
    }

    // Metadata, in llama.cpp's order.
    let mut meta = Metadata::new();
    meta.insert("general.architecture", Value::Str(spec.gguf.into()));
    for (k, v) in early {
        meta.insert(k, v);
    }
    meta.insert("general.type", Value::Str("model".into()));
    // gguf-py's get_total_parameter_count: expert tensors count once per expert for the size label.
    let (mut total, mut shared, mut expert, mut expert_sum, mut n_exp) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for o in &outs {
        let size: u64 = o.shape.iter().product();
        let sh = &o.shape;
        if o.name.contains("_exps.") && sh.len() >= 3 {
            let count = sh[sh.len() - if o.name.contains(".bias") { 2 } else { 3 }].max(1);
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
    hooks.hparams(&ctx, &mut meta)?;
    if spec.llama_params {
        hooks::llama_params(&ctx, &mut meta)?;
    }
    let a = spec.gguf;
    let u32v = |v: u64| Value::U32(v as u32);
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
    let mut layout = Layout::new(outs, dst);
    layout.metadata = meta;
    layout.max_shard_size = opts.max_shard_size;
    layout.inline = inline;
    let mut plan = Gguf.layout(layout)?;
    plan.imatrix = weights;
    plan.warnings = warnings;
    Ok(plan)
}

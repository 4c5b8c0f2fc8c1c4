//! MLX model directories, as `mlx_lm.convert` writes them and `mlx_lm.load` reads them.
//!
//! Layout (reference: <https://github.com/ml-explore/mlx-lm/blob/main/mlx_lm/utils.py>, `save_model`,
//! `quantize_model`, `save_config`): SafeTensors weights in `model.safetensors` (or `model-0000I-of-0000N
//! .safetensors` shards of at most 5 GiB) with header metadata `{"format": "mlx"}`, always with a
//! `model.safetensors.index.json` (`total_size`, `total_parameters`, sorted `weight_map`); tensor names are the
//! `mlx_lm` model's parameter paths (the Hugging Face names after the model's `sanitize`: rotary caches and tied
//! heads dropped, MoE experts stacked into `switch_mlp`). A quantized Linear/Embedding `P` stores `P.weight`
//! (uint32 words, values packed LSB-first, `bits` each), `P.scales` and `P.biases` (one per group of
//! `group_size` values along the last axis, in the model's float dtype) - `mlx.core.quantize`'s affine mode.
//! `config.json` is the source config with keys sorted, `eos_token_id` taken from generation_config.json, and a
//! `quantization` block (copied to `quantization_config`): `{"group_size", "bits", "mode"}` plus one entry per
//! layer whose parameters differ (mixed recipes, model-specific overrides).

pub mod settings;
pub mod source;

pub use settings::{MlxQuant, RECIPES};

use crate::plan::{transform_to, Input, Plan, Planned, Transform};
use crate::request::ConvertOptions;
use crate::writer::{Layout, OutputWriter, SafetensorsDir};
use lbrx_core::{DType, Error, Result, Source};
use lbrx_quant::mlx::Mode;
use serde_json::{json, Map, Value as Json};
use std::path::Path;

/// MoE experts that `mlx_lm` stacks into one `switch_mlp` tensor per projection.
struct Experts {
    /// config.json key holding the expert count.
    count_key: &'static str,
    /// Per-expert name, with `{p}` the layer prefix, `{e}` the expert and `{w}` the source projection.
    from: &'static str,
    /// Stacked name, with `{p}` and `{w}` the MLX projection.
    to: &'static str,
    /// (source projection, MLX projection).
    projections: &'static [(&'static str, &'static str)],
}

/// What `mlx_lm`'s model class for a `model_type` does to Hugging Face weights.
struct Family {
    /// `model_type` values (after `mlx_lm`'s remapping).
    model_types: &'static [&'static str],
    /// `tie_word_embeddings` when config.json does not say (the model's `ModelArgs` default).
    tie_default: bool,
    /// Experts stacked by `sanitize`.
    experts: Option<Experts>,
    /// Layers the model's own `quant_predicate` quantizes differently: (path suffix, group size, bits).
    fixed: &'static [(&'static str, u32, u32)],
}

/// The `mlx_lm` model families lbrx writes, one row per model class.
const FAMILIES: &[Family] = &[
    Family {
        model_types: &["llama", "mistral"],
        tie_default: true,
        experts: None,
        fixed: &[],
    },
    Family {
        model_types: &["qwen2"],
        tie_default: true,
        experts: None,
        fixed: &[],
    },
    Family {
        model_types: &["qwen3", "phi3", "gemma2", "gemma3_text"],
        tie_default: false,
        experts: None,
        fixed: &[],
    },
    Family {
        model_types: &["mixtral"],
        tie_default: false,
        experts: Some(Experts {
            count_key: "num_local_experts",
            from: "{p}.block_sparse_moe.experts.{e}.{w}.weight",
            to: "{p}.block_sparse_moe.switch_mlp.{w}.weight",
            projections: &[("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")],
        }),
        fixed: &[],
    },
    Family {
        model_types: &["qwen3_moe"],
        tie_default: false,
        experts: Some(QWEN_EXPERTS),
        fixed: &[("mlp.gate", 64, 8)],
    },
    Family {
        model_types: &["qwen2_moe"],
        tie_default: false,
        experts: Some(QWEN_EXPERTS),
        fixed: &[],
    },
    Family {
        model_types: &["olmoe"],
        tie_default: true,
        experts: Some(QWEN_EXPERTS),
        fixed: &[],
    },
    Family {
        model_types: &["granite"],
        tie_default: true,
        experts: None,
        // granite's quant_predicate: these stay at 8 bits
        fixed: &[
            ("self_attn.o_proj", 64, 8),
            ("mlp.down_proj", 64, 8),
            ("lm_head", 64, 8),
        ],
    },
    Family {
        model_types: &["olmo2", "starcoder2"],
        tie_default: true,
        experts: None,
        fixed: &[],
    },
];

/// The Qwen-MoE expert layout (Qwen2-MoE, OLMoE): `mlp.experts.E.{up,down,gate}_proj` stacked in that order.
const QWEN_EXPERTS: Experts = Experts {
    count_key: "num_experts",
    from: "{p}.mlp.experts.{e}.{w}.weight",
    to: "{p}.mlp.switch_mlp.{w}.weight",
    projections: &[
        ("up_proj", "up_proj"),
        ("down_proj", "down_proj"),
        ("gate_proj", "gate_proj"),
    ],
};

fn family(model_type: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.model_types.contains(&model_type))
}

/// (group size, bits, mode) of the module `prefix` under an MLX `quantization` block, honoring per-layer
/// entries (an entry without a mode is affine, as mlx's `to_quantized` defaults); `None` when the block
/// excludes it.
pub(crate) fn layer_params(q: &Json, prefix: &str) -> Option<(u64, u64, Mode)> {
    let mode_of = |v: &Json, default: Mode| match v.get("mode").and_then(Json::as_str) {
        Some(m) => Mode::parse(m),
        None => Some(default),
    };
    let top = mode_of(q, Mode::Affine)?;
    let default = (
        q.get("group_size").and_then(Json::as_u64)?,
        q.get("bits").and_then(Json::as_u64)?,
    );
    match q.get(prefix) {
        Some(Json::Bool(false)) => None,
        Some(o @ Json::Object(_)) => Some((
            o.get("group_size")
                .and_then(Json::as_u64)
                .unwrap_or(default.0),
            o.get("bits").and_then(Json::as_u64).unwrap_or(default.1),
            mode_of(o, Mode::Affine)?,
        )),
        _ => Some((default.0, default.1, top)),
    }
}

/// The float dtype `mlx_lm.convert` casts to: `--dtype`, else config.json's `torch_dtype` (or
/// `text_config.dtype`) when it names a float type; `None` keeps each tensor's own.
fn model_dtype(opts: &ConvertOptions, config: &Map<String, Json>) -> Option<DType> {
    if opts.dtype.is_some() {
        return opts.dtype;
    }
    let name = config
        .get("torch_dtype")
        .and_then(Json::as_str)
        .or_else(|| {
            config
                .get("text_config")
                .and_then(|t| t.get("dtype"))
                .and_then(Json::as_str)
        })?;
    lbrx_core::torch_dtype(name).filter(|d| matches!(d, DType::F16 | DType::BF16 | DType::F32))
}

/// Plans an MLX model directory at `dst` from a Hugging Face directory (or a dequantizing view of an MLX one)
/// or a GGUF (through its Hugging Face layout).
pub fn plan_mlx(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    if opts.dequantize && opts.mlx_quant.is_some() {
        return Err(Error::Usage(
            "choose either quantize or dequantize, not both".into(),
        ));
    }
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    let mut assets = Vec::new();
    let (outs, mut config) = if src.format() == lbrx_core::Format::Gguf {
        let (outs, files) = crate::hf::to_hf::gguf_hf_outs(src, opts)?;
        let mut config = Map::new();
        for (name, bytes) in files {
            if name == "config.json" {
                if let Ok(Json::Object(m)) = serde_json::from_slice(&bytes) {
                    config = m;
                }
            } else if !name.contains('/') && name != "modules.json" {
                small.push((name, bytes));
            }
        }
        (outs, config)
    } else {
        let root = src.root();
        let config = match crate::hf::vocab::read_json(&root.join("config.json"))? {
            Some(Json::Object(m)) => m,
            _ => {
                return Err(Error::model(
                    root,
                    "no config.json; an MLX model needs the Hugging Face config".to_string(),
                ))
            }
        };
        for p in src.assets() {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !matches!(name, "config.json" | "README.md") {
                assets.push((name.to_string(), p.clone()));
            }
        }
        let outs = src
            .tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| Planned::copy_of(i, t))
            .collect();
        (outs, config)
    };
    let model_type = config
        .get("model_type")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let fam = family(&model_type);
    let outs = sanitize(outs, &config, fam)?;
    if outs.is_empty() {
        return Err(Error::model(
            src.root(),
            "no weights to write (an MLX model needs its tensors)".to_string(),
        ));
    }
    let dtype = model_dtype(opts, &config);

    // mlx_lm.load adds generation_config.json's eos_token_id; save_config drops these two.
    if let Some(gen) = crate::hf::vocab::read_json(&src.root().join("generation_config.json"))
        .ok()
        .flatten()
    {
        if let Some(eos) = gen.get("eos_token_id").filter(|v| truthy(v)) {
            config.insert("eos_token_id".into(), eos.clone());
        }
    }
    config.remove("_name_or_path");
    config.remove("vision_config");
    if src.tensors().iter().any(|t| t.name.ends_with(".scales")) {
        return Err(Error::model(
            src.root(),
            "the model is quantized; pass --dequantize, or quantize it again with -q".to_string(),
        ));
    }
    config.remove("quantization");
    config.remove("quantization_config");

    let n_layers = config
        .get("num_hidden_layers")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let mut qblock = Map::new();
    if let Some(q) = opts.mlx_quant {
        qblock.insert("group_size".into(), json!(q.group_size));
        qblock.insert("bits".into(), json!(q.bits));
        qblock.insert("mode".into(), json!(q.mode.name()));
    }
    let mut planned: Vec<Planned> = Vec::with_capacity(outs.len() * 3);
    let mut total_parameters = 0u64;
    let layer_at = outs
        .iter()
        .find(|o| o.name.contains("down_proj"))
        .and_then(|o| o.name.split('.').position(|p| p.parse::<u64>().is_ok()));
    if opts.mlx_quant.is_some_and(|q| q.recipe.is_some()) && layer_at.is_none() {
        return Err(Error::model(
            src.root(),
            "the model does not have the down_proj layers a mixed recipe needs",
        ));
    }
    for o in outs {
        total_parameters += o.shape.iter().product::<u64>();
        let first = o.input.first_src().unwrap_or(0);
        let src_dtype = if o.transform == Transform::Copy || matches!(o.input, Input::Stack { .. })
        {
            src.tensors()[first].dtype
        } else {
            crate::plan::transform_source(o.transform).unwrap_or(o.dtype)
        };
        let float = src_dtype.is_castable_float()
            || src_dtype.info().kind == lbrx_core::DTypeKind::Quantized;
        // mlx_lm casts before it dequantizes: what dequantization makes keeps its type (the scales' for
        // affine, bfloat16 for the float modes)
        let dequantized = opts.dequantize && src.tensors()[first].file == source::COMPUTED;
        let out_dtype = match dtype {
            Some(d) if float && !dequantized => d,
            _ => o.dtype,
        };
        let params = opts
            .mlx_quant
            .and_then(|q| quant_for(&o, q, fam, n_layers, layer_at, &mut qblock));
        match params {
            Some((group, bits, mode)) => {
                let (stem, shape) = (o.name.trim_end_matches(".weight").to_string(), &o.shape);
                let cols = *shape.last().unwrap_or(&0);
                let mut packed = shape.clone();
                *packed.last_mut().expect("2-D") = cols * bits as u64 / 32;
                let mut sshape = shape.clone();
                *sshape.last_mut().expect("2-D") = cols / group as u64;
                let base = planned.len();
                let parts: &[&str] = if mode == Mode::Affine {
                    &["scales", "biases"]
                } else {
                    &["scales"]
                };
                planned.push(Planned {
                    dtype: DType::U32,
                    shape: packed,
                    transform: Transform::MlxQuant {
                        from: src_dtype,
                        to: out_dtype,
                        bits,
                        group,
                        mode,
                    },
                    companions: (1..=parts.len()).map(|k| base + k).collect(),
                    ..o.clone()
                });
                for part in parts {
                    let dt = if mode == Mode::Affine {
                        out_dtype
                    } else {
                        DType::U8
                    };
                    planned.push(Planned::new(
                        format!("{stem}.{part}"),
                        dt,
                        sshape.clone(),
                        o.input.clone(),
                        Transform::WrittenBy { job: base },
                    ));
                }
            }
            None => {
                let (dt, tr) = transform_to(src_dtype, out_dtype);
                planned.push(Planned {
                    dtype: dt,
                    transform: tr,
                    ..o
                });
            }
        }
    }
    if opts.mlx_quant.is_some() {
        let q = Json::Object(qblock);
        config.insert("quantization".into(), q.clone());
        config.insert("quantization_config".into(), q);
    }
    let mut sorted: Vec<(String, Json)> = config.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let config: Map<String, Json> = sorted.into_iter().collect();
    small.push(("config.json".into(), pretty4(&Json::Object(config))));
    small.push(("README.md".into(), model_card(src.root())));
    let meta = std::collections::BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    let mut layout = Layout::new(planned, dst);
    layout.max_shard_size = Some(opts.max_shard_size.unwrap_or(5 << 30));
    layout.small_files = small;
    layout.string_metadata = Some(meta);
    layout.index_extra = Some(json!({ "total_parameters": total_parameters }));
    let mut plan = SafetensorsDir.layout(layout)?;
    plan.assets = assets;
    Ok(plan)
}

/// Python truthiness of a JSON value (what `if x := d.get(...)` tests).
fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// `mlx_lm`'s `sanitize`: rotary caches and a tied head dropped, experts stacked.
fn sanitize(
    outs: Vec<Planned>,
    config: &Map<String, Json>,
    fam: Option<&Family>,
) -> Result<Vec<Planned>> {
    let tie = config
        .get("tie_word_embeddings")
        .and_then(Json::as_bool)
        .or(fam.map(|f| f.tie_default))
        .unwrap_or(false);
    let mut outs: Vec<Planned> = outs
        .into_iter()
        .filter(|o| !o.name.contains("self_attn.rotary_emb.inv_freq"))
        .filter(|o| !(tie && o.name == "lm_head.weight"))
        .collect();
    let Some(x) = fam.and_then(|f| f.experts.as_ref()) else {
        return Ok(outs);
    };
    let n_exp = config.get(x.count_key).and_then(Json::as_u64).unwrap_or(0);
    let n_layers = config
        .get("num_hidden_layers")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    for l in 0..n_layers {
        let p = format!("model.layers.{l}");
        for (w, to) in x.projections {
            let name = |e: u64| {
                x.from
                    .replace("{p}", &p)
                    .replace("{e}", &e.to_string())
                    .replace("{w}", w)
            };
            let Some(first) = outs.iter().position(|o| o.name == name(0)) else {
                continue;
            };
            let mut members = Vec::with_capacity(n_exp as usize);
            for e in 0..n_exp {
                let n = name(e);
                let i = outs.iter().position(|o| o.name == n).ok_or_else(|| {
                    Error::tensor(n.clone(), format!("missing ({n_exp} experts expected)"))
                })?;
                members.push(outs[i].clone());
            }
            let stacked = stack(members, x.to.replace("{p}", &p).replace("{w}", to))?;
            let names: Vec<String> = (0..n_exp).map(name).collect();
            outs[first] = stacked;
            let keep = outs[first].name.clone();
            outs.retain(|o| o.name == keep || !names.contains(&o.name));
        }
    }
    Ok(outs)
}

/// Experts stacked along a new first axis: one slice of the source when they lie back to back in one tensor
/// (a GGUF's stacked experts), else the parts gathered.
fn stack(members: Vec<Planned>, name: String) -> Result<Planned> {
    let first = members[0].clone();
    let per: u64 = first.shape.iter().product();
    let same = |o: &Planned| {
        o.shape == first.shape
            && o.dtype == first.dtype
            && o.transform == first.transform
            && o.steps.is_empty()
    };
    if !members.iter().all(same) {
        return Err(Error::tensor(name, "experts differ in shape or type"));
    }
    let mut shape = vec![members.len() as u64];
    shape.extend_from_slice(&first.shape);
    let start_of = |o: &Planned| match o.input {
        Input::Tensor { src, start } => Some((src, start)),
        _ => None,
    };
    let (src0, start0) =
        start_of(&first).ok_or_else(|| Error::tensor(name.clone(), "experts cannot be stacked"))?;
    let contiguous = members
        .iter()
        .enumerate()
        .all(|(e, o)| start_of(o) == Some((src0, start0 + e as u64 * per)));
    let input = if contiguous {
        first.input.clone()
    } else {
        let parts = members
            .iter()
            .map(|o| match start_of(o) {
                Some((src, 0)) => Ok(src),
                _ => Err(Error::tensor(name.clone(), "experts cannot be stacked")),
            })
            .collect::<Result<Vec<_>>>()?;
        Input::Stack { parts }
    };
    Ok(Planned {
        name,
        shape,
        input,
        ..first
    })
}

/// (group size, bits) for one tensor, or `None` when it stays float; records per-layer entries in `qblock`
/// as `mlx_lm.quantize_model` does.
fn quant_for(
    o: &Planned,
    q: MlxQuant,
    fam: Option<&Family>,
    n_layers: u64,
    layer_at: Option<usize>,
    qblock: &mut Map<String, Json>,
) -> Option<(u32, u32, Mode)> {
    let name = &o.name;
    let path = name.strip_suffix(".weight")?;
    // Linear and Embedding weights are matrices; switch_mlp experts are stacks of them.
    let nd = o.shape.len();
    if !(nd == 2 || (nd == 3 && path.contains(".switch_mlp."))) {
        return None;
    }
    if path.ends_with("norm") || path.contains("norm.") {
        return None;
    }
    let cols = *o.shape.last()?;
    if cols % q.group_size as u64 != 0 {
        return None;
    }
    if let Some((low, high)) = q.recipe.map(|r| (RECIPES[r].1, RECIPES[r].2)) {
        let parts: Vec<&str> = path.split('.').collect();
        let index = match layer_at {
            Some(at) if parts.len() > at => parts[at].parse::<u64>().unwrap_or(0),
            _ => 0,
        };
        let more = index < n_layers / 8
            || index >= 7 * n_layers / 8
            || (index as i64 - (n_layers / 8) as i64).rem_euclid(3) == 2;
        let value = ["v_proj", "v_a_proj", "v_b_proj"]
            .iter()
            .any(|p| path.contains(p));
        let high_bits = (more && (value || path.contains("down_proj"))) || path.contains("lm_head");
        let bits = if high_bits { high } else { low };
        qblock.insert(
            path.to_string(),
            json!({"group_size": q.group_size, "bits": bits, "mode": "affine"}),
        );
        return Some((q.group_size, bits, Mode::Affine));
    }
    if let Some(&(_, group, bits)) = fam
        .into_iter()
        .flat_map(|f| f.fixed.iter())
        .find(|(suffix, _, _)| path.ends_with(suffix))
    {
        if cols % group as u64 != 0 {
            return None;
        }
        // the model's dict has no mode: mlx's to_quantized takes affine
        qblock.insert(path.to_string(), json!({"group_size": group, "bits": bits}));
        return Some((group, bits, Mode::Affine));
    }
    Some((q.group_size, q.bits, q.mode))
}

/// JSON with four-space indents, as Python's `json.dump(..., indent=4)` writes config.json.
fn pretty4(v: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

/// The model card `mlx_lm` writes: the source card's YAML data (or `language: en`) with `library_name: mlx`,
/// `pipeline_tag: text-generation` and the `mlx` tag.
fn model_card(src: &Path) -> Vec<u8> {
    let mut data = crate::hf::naming::model_card(src);
    if data.is_empty() {
        data.insert("language".into(), json!("en"));
    }
    data.insert("library_name".into(), json!("mlx"));
    data.insert("pipeline_tag".into(), json!("text-generation"));
    let tags = data.entry("tags").or_insert_with(|| json!([]));
    match tags {
        Json::Array(a) => {
            if !a.iter().any(|t| t == "mlx") {
                a.push(json!("mlx"));
            }
        }
        other => *other = json!(["mlx"]),
    }
    let yaml = serde_yaml_ng::to_string(&Json::Object(data)).unwrap_or_default();
    format!("---\n{yaml}---\n").into_bytes()
}

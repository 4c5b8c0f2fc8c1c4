//! Quantization recipes: llama.cpp's file types (`Q4_K_M`, `Q5_K_S`, `Q8_0` ...) and the per-tensor type
//! choices `llama-quantize` makes for them (src/llama-quant.cpp: `llama_tensor_get_type`): which tensors are
//! quantized at all, attention-V and FFN-down promotions by layer, output and token-embedding rules, and the
//! fallbacks when a row is not a whole number of blocks. Tensors are visited in llama.cpp's loader order
//! (layer number, then name; non-layer tensors first), because its layer counters depend on that order.

use crate::request::{ImatrixInput, Recipe};
use lbrx_core::{DType, Error, Metadata, Result, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Cat {
    if name == "output.weight" {
        Cat::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Cat::TokenEmbd
    } else if name.contains("attn_qkv.weight") {
        Cat::AttnQkv
    } else if name.contains("attn_kv_b.weight") {
        Cat::AttnKvB
    } else if name.contains("attn_v.weight") {
        Cat::AttnV
    } else if name.contains("attn_k.weight") {
        Cat::AttnK
    } else if name.contains("attn_q.weight") {
        Cat::AttnQ
    } else if name.contains("attn_output.weight") {
        Cat::AttnOutput
    } else if name.contains("ffn_up") {
        Cat::FfnUp
    } else if name.contains("ffn_gate") {
        Cat::FfnGate
    } else if name.contains("ffn_down") {
        Cat::FfnDown
    } else {
        Cat::Other
    }
}

fn is_attn_v(c: Cat) -> bool {
    matches!(c, Cat::AttnV | Cat::AttnQkv | Cat::AttnKvB)
}

/// llama.cpp's `tensor_allows_quantization` (the parts that apply to the architectures lbrx knows).
/// ggml's `ggml_n_dims`: the dimensions left when trailing ones (in ggml's order; leading ones of the
/// row-major shape) are dropped, at least one. llama-quantize writes every tensor with this many.
fn ggml_dims(shape: &[u64]) -> usize {
    let ones = shape.iter().take_while(|&&d| d == 1).count();
    (shape.len() - ones).max(1)
}

fn allows_quantization(name: &str, dims: usize, r: &Recipe) -> bool {
    if dims < 2 || !name.ends_with("weight") {
        return false;
    }
    let deny = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_",
        "attn_rel_b.weight",
        ".position_embd",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
    ];
    if deny.iter().any(|d| name.contains(d)) {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    !(r.leave_output && name == "output.weight")
}

/// The facts about a model the recipe consults.
#[derive(Debug, Clone, Default)]
pub struct ModelFacts {
    /// `general.architecture`.
    pub arch: String,
    /// Layers.
    pub n_layer: i64,
    /// Attention heads / KV heads.
    pub n_gqa: i64,
    /// Experts (0: dense).
    pub n_expert: i64,
    /// A 70B-class Llama (80 layers).
    pub is_70b: bool,
}

impl ModelFacts {
    /// Reads the facts from GGUF metadata.
    pub fn from_metadata(m: &Metadata) -> ModelFacts {
        let arch = m
            .get("general.architecture")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let u = |k: &str| {
            m.get(&format!("{arch}.{k}"))
                .and_then(Value::as_u64)
                .map(|v| v as i64)
        };
        let n_layer = u("block_count").unwrap_or(0);
        let heads = u("attention.head_count").unwrap_or(0);
        let kv = u("attention.head_count_kv").unwrap_or(heads).max(1);
        ModelFacts {
            n_gqa: if heads > 0 { heads / kv } else { 0 },
            n_expert: u("expert_count").unwrap_or(0),
            is_70b: arch == "llama" && n_layer == 80 && heads != kv,
            n_layer,
            arch,
        }
    }
}

/// llama.cpp's `tensor_type_fallback`: a type whose block size divides the row, else F16.
fn fallback(t: DType, ncols: u64) -> DType {
    let bs = t.info().block_size as u64;
    if ncols.is_multiple_of(bs) {
        return t;
    }
    let r = match t {
        DType::IQ1S
        | DType::IQ1M
        | DType::IQ2XXS
        | DType::IQ2XS
        | DType::IQ2S
        | DType::IQ3XXS
        | DType::IQ3S
        | DType::IQ4XS => DType::IQ4NL,
        DType::Q2_0 | DType::Q2K | DType::Q3K | DType::TQ1_0 | DType::TQ2_0 => DType::Q4_0,
        DType::Q4K => DType::Q5_0,
        DType::Q5K => DType::Q5_1,
        DType::Q6K => DType::Q8_0,
        other => other,
    };
    if !ncols.is_multiple_of(r.info().block_size as u64) {
        DType::F16
    } else {
        r
    }
}

/// Chooses the type of every tensor, given (name, dtype, shape in row-major order) in the file's order.
/// Returns the types in the same order.
pub fn choose_types(
    tensors: &[(String, DType, Vec<u64>)],
    facts: &ModelFacts,
    r: &Recipe,
) -> Result<Vec<DType>> {
    let order = loader_order(tensors);
    let cats: Vec<Cat> = tensors.iter().map(|t| category(&t.0)).collect();
    let n_attention_wv = cats.iter().filter(|c| is_attn_v(**c)).count() as i64;
    let tied = !cats.contains(&Cat::Output);
    let n_layer = facts.n_layer;
    let mut st = Counters::default();
    let mut out = vec![DType::F32; tensors.len()];
    for i in order {
        let (name, dtype, shape) = &tensors[i];
        if !allows_quantization(name, ggml_dims(shape), r) {
            out[i] = *dtype;
            continue;
        }
        // the user's embedding and output types come first (a --tensor-type pattern may still name the
        // per-layer embeddings), with no fallback, as in llama.cpp
        let named = name == "per_layer_token_embd.weight"
            && r.overrides.iter().any(|(p, _)| p.is_match(name));
        match (cats[i], r.token_embd_type, r.output_type) {
            (Cat::TokenEmbd, Some(t), _) if !named => {
                out[i] = t;
                continue;
            }
            (Cat::Output, _, Some(t)) => {
                out[i] = t;
                continue;
            }
            _ => {}
        }
        let mut t = r.default;
        if t.info().kind == lbrx_core::DTypeKind::Quantized {
            let manual = r
                .overrides
                .iter()
                .find(|(p, _)| p.is_match(name))
                .map(|o| o.1);
            if let Some(m) = manual {
                t = m;
            } else if !r.pure {
                t = pick(
                    name,
                    cats[i],
                    shape,
                    t,
                    facts,
                    r,
                    tied,
                    n_attention_wv,
                    n_layer,
                    &mut st,
                )?;
            }
            t = fallback(t, *shape.last().unwrap_or(&0));
        }
        out[i] = t;
    }
    Ok(out)
}

/// llama.cpp's `weight_name_comparer`: layer number (`blk.N.`, -1 for other tensors), then name.
fn loader_order(tensors: &[(String, DType, Vec<u64>)]) -> Vec<usize> {
    let layer = |n: &str| -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| {
                let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .unwrap_or(-1)
    };
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&tensors[a].0, &tensors[b].0);
        layer(x).cmp(&layer(y)).then_with(|| x.cmp(y))
    });
    order
}

#[derive(Default)]
struct Counters {
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// llama.cpp's `llama_tensor_get_type_impl` for the K- and legacy quant file types.
#[allow(clippy::too_many_arguments)]
fn pick(
    name: &str,
    cat: Cat,
    shape: &[u64],
    mut t: DType,
    f: &ModelFacts,
    r: &Recipe,
    tied: bool,
    n_attention_wv: i64,
    n_layer: i64,
    st: &mut Counters,
) -> Result<DType> {
    let ft = r.name;
    let layer = |counter: i64| -> Result<i64> {
        if f.n_expert > 1 {
            let l = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| Error::tensor(name.to_string(), "cannot find its layer number"))?;
            if l < 0 || l >= n_layer {
                return Err(Error::tensor(
                    name.to_string(),
                    format!("layer {l} is out of range"),
                ));
            }
            Ok(l)
        } else {
            Ok(counter)
        }
    };
    let falcon = f.arch == "falcon";
    let iq4 = matches!(ft, "IQ4_NL" | "IQ4_XS");
    // the file types below 3 bits per weight, which have their own rules
    let low_iq = matches!(
        ft,
        "IQ2_XXS" | "IQ2_XS" | "IQ1_S" | "IQ2_S" | "IQ2_M" | "IQ1_M"
    );
    let iq2_sm = matches!(ft, "IQ2_S" | "IQ2_M");
    let gqa4 = f.n_gqa >= 4;
    if cat == Cat::Output || (tied && cat == Cat::TokenEmbd) {
        let nx = *shape.last().unwrap_or(&0);
        let qk = t.info().block_size as u64;
        if let Some(o) = r.output_type {
            t = o;
        } else if ft == "MXFP4_MOE" || falcon || !nx.is_multiple_of(qk) {
            t = DType::Q8_0;
        } else if low_iq || ft == "IQ3_XXS" {
            t = DType::Q5K;
        } else if t != DType::Q8_0 {
            t = DType::Q6K;
        }
    } else if ft == "MXFP4_MOE" {
        // expert tensors (a third dimension) in MXFP4, everything else Q8_0
        t = if shape.len() >= 3 && shape[0] > 1 {
            DType::MXFP4
        } else {
            DType::Q8_0
        };
    } else if cat == Cat::TokenEmbd {
        match ft {
            "IQ2_XXS" | "IQ2_XS" | "IQ1_S" | "IQ1_M" => t = DType::Q2K,
            "IQ2_S" | "IQ2_M" | "IQ3_XXS" => t = DType::IQ3S,
            "TQ1_0" | "TQ2_0" | "Q2_0" => t = DType::Q4K,
            _ => {}
        }
    } else if low_iq {
        if is_attn_v(cat) {
            t = if gqa4 || f.n_expert >= 4 {
                DType::Q4K
            } else if iq2_sm {
                DType::IQ3S
            } else {
                DType::Q2K
            };
            st.i_attention_wv += 1;
        } else if f.n_expert == 8 && cat == Cat::AttnK {
            t = DType::Q4K;
        } else if cat == Cat::FfnDown {
            // by tensor count, not by layer, in this branch of llama.cpp
            if st.i_ffn_down < n_layer / 8 {
                t = if iq2_sm { DType::IQ3S } else { DType::Q2K };
            }
            st.i_ffn_down += 1;
        } else if cat == Cat::AttnOutput {
            if f.n_expert == 8 {
                t = DType::Q5K;
            } else if matches!(ft, "IQ1_S" | "IQ1_M") {
                t = DType::IQ2XXS;
            } else if iq2_sm {
                t = DType::IQ3S;
            }
        }
    } else if is_attn_v(cat) {
        match ft {
            "Q2_K" => t = if gqa4 { DType::Q4K } else { DType::Q3K },
            "Q2_K_S" if gqa4 => t = DType::Q4K,
            "IQ3_XXS" => {
                t = if gqa4 {
                    DType::Q4K
                } else if !r.has_imatrix {
                    DType::IQ3S
                } else {
                    DType::IQ3XXS
                }
            }
            "IQ3_XS" | "IQ3_S" if gqa4 => t = DType::Q4K,
            "IQ3_M" => t = DType::Q4K,
            "Q3_K_M" => {
                t = if st.i_attention_wv < 2 {
                    DType::Q5K
                } else {
                    DType::Q4K
                }
            }
            "Q3_K_L" => t = DType::Q5K,
            "IQ4_NL" | "IQ4_XS" if gqa4 => t = DType::Q5K,
            "Q4_K_M" | "Q5_K_M" if use_more_bits(st.i_attention_wv, n_attention_wv) => {
                t = DType::Q6K
            }
            "Q4_K_S" if st.i_attention_wv < 4 => t = DType::Q5K,
            _ => {}
        }
        if f.is_70b && (t == DType::Q3K || t == DType::Q4K) {
            t = DType::Q5K;
        }
        if f.n_expert == 8 {
            t = DType::Q8_0;
        }
        st.i_attention_wv += 1;
    } else if cat == Cat::AttnK || cat == Cat::AttnQ {
        if cat == Cat::AttnK && f.n_expert == 8 {
            t = DType::Q8_0;
        } else if ft == "IQ3_XS" {
            t = DType::IQ3XXS;
        } else if ft == "IQ3_XXS" {
            t = DType::IQ2S;
        }
    } else if cat == Cat::FfnDown {
        let i_layer = layer(st.i_ffn_down)?;
        match ft {
            "Q2_K" => t = DType::Q3K,
            "Q2_K_S" if i_layer < n_layer / 8 => t = DType::Q4K,
            "IQ3_XXS" if !r.has_imatrix => {
                t = if i_layer < n_layer / 8 {
                    DType::Q4K
                } else {
                    DType::Q3K
                }
            }
            "Q3_K_M" => {
                t = if i_layer < n_layer / 16 {
                    DType::Q5K
                } else if !falcon || use_more_bits(i_layer, n_layer) {
                    DType::Q4K
                } else {
                    DType::Q3K
                }
            }
            "IQ3_M"
                if i_layer < n_layer / 8
                    || (f.n_expert == 8 && use_more_bits(i_layer, n_layer)) =>
            {
                t = DType::Q4K
            }
            "Q3_K_L" => t = if falcon { DType::Q4K } else { DType::Q5K },
            "Q4_K_M" => {
                if falcon {
                    t = if i_layer < n_layer / 16 {
                        DType::Q6K
                    } else if use_more_bits(i_layer, n_layer) {
                        DType::Q5K
                    } else {
                        DType::Q4K
                    };
                } else if use_more_bits(i_layer, n_layer) {
                    t = DType::Q6K;
                }
            }
            _ if iq4 && i_layer < n_layer / 8 && !r.has_imatrix => t = DType::Q5K,
            "Q5_K_M" if use_more_bits(i_layer, n_layer) => t = DType::Q6K,
            "Q4_K_S" if !falcon && i_layer < n_layer / 8 => t = DType::Q5K,
            // guard against the first ffn_down layers going wrong with an imatrix
            "Q4_0" if r.has_imatrix && i_layer < n_layer / 8 => t = DType::Q4_1,
            "Q5_0" if r.has_imatrix && i_layer < n_layer / 8 => t = DType::Q5_1,
            _ => {}
        }
        st.i_ffn_down += 1;
    } else if cat == Cat::AttnOutput {
        if !falcon {
            if f.n_expert == 8 {
                if matches!(
                    ft,
                    "Q2_K"
                        | "IQ3_XS"
                        | "IQ3_XXS"
                        | "Q3_K_S"
                        | "Q3_K_M"
                        | "IQ4_NL"
                        | "Q4_K_S"
                        | "Q4_K_M"
                        | "IQ3_S"
                        | "IQ3_M"
                        | "IQ4_XS"
                ) {
                    t = DType::Q5K;
                }
            } else {
                match ft {
                    "Q2_K" => t = DType::Q3K,
                    "IQ3_XXS" => t = DType::IQ3S,
                    "Q3_K_M" | "IQ3_M" => t = DType::Q4K,
                    "Q3_K_L" => t = DType::Q5K,
                    _ => {}
                }
            }
        } else if ft == "Q3_K_L" {
            t = DType::Q4K;
        }
    } else if cat == Cat::AttnQkv {
        match ft {
            "Q3_K_M" | "Q3_K_L" | "IQ3_M" => t = DType::Q4K,
            "Q4_K_M" => t = DType::Q5K,
            "Q5_K_M" => t = DType::Q6K,
            _ => {}
        }
    } else if cat == Cat::FfnGate || cat == Cat::FfnUp {
        let counter = if cat == Cat::FfnGate {
            &mut st.i_ffn_gate
        } else {
            &mut st.i_ffn_up
        };
        let i_layer = layer(*counter)?;
        if ft == "IQ3_XS" && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8 {
            t = DType::IQ3XXS;
        }
        *counter += 1;
    }
    Ok(t)
}

/// llama.cpp's `tensor_requires_imatrix`: the very low-bit types (and Q2_K in a Q2_K_S file) are garbage
/// without an importance matrix, so llama-quantize refuses them; the embeddings and output are exempt.
fn requires_imatrix(name: &str, to: DType, ftype: &str) -> bool {
    if matches!(
        name,
        "token_embd.weight" | "per_layer_token_embd.weight" | "output.weight"
    ) {
        return false;
    }
    matches!(
        to,
        DType::IQ3XXS | DType::IQ2XXS | DType::IQ2XS | DType::IQ2S | DType::IQ1M | DType::IQ1S
    ) || (to == DType::Q2K && ftype == "Q2_K_S")
}

/// Importance weights by output tensor index.
pub(crate) type ImportanceByJob = std::collections::BTreeMap<usize, Vec<f32>>;

/// Plans `llama-quantize IN OUT TYPE [--imatrix FILE]`: every tensor of a GGUF source in the type the recipe
/// picks (tensors in name order, as llama.cpp writes them), all metadata kept, `general.file_type` and
/// `general.quantization_version` set.
pub fn plan_quantize(
    src: &dyn lbrx_core::Source,
    dst: &std::path::Path,
    r: &Recipe,
    max_shard_size: Option<u64>,
    imatrix: Option<&ImatrixInput>,
) -> Result<crate::plan::Plan> {
    use crate::writer::{Gguf, Layout, OutputWriter};
    if src.format() != lbrx_core::Format::Gguf {
        return Err(Error::model(src.root(), "quantize takes a GGUF model; convert it first (`lbrx convert SRC model.gguf`), then quantize that".to_string()));
    }
    let m = src.metadata();
    let outs = src
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| crate::plan::Planned::copy_of(i, t))
        .collect();
    let mut meta = m.clone();
    for k in lbrx_formats::gguf::SPLIT_KEYS {
        meta.remove(k);
    }
    let (outs, weights, warnings) = apply_recipe(outs, src, &mut meta, r, imatrix)?;
    let mut layout = Layout::new(outs, dst);
    layout.metadata = meta;
    layout.max_shard_size = max_shard_size;
    let mut plan = Gguf.layout(layout)?;
    plan.imatrix = weights;
    plan.warnings = warnings;
    Ok(plan)
}

/// Applies a recipe to planned GGUF tensors, each in the type of the intermediate file a two-step pipeline
/// writes (an F16 GGUF, then llama-quantize): the tensors in llama.cpp's loader order, each quantized to the
/// type the recipe picks (its values rounded through the intermediate type first), the importance weights
/// of each quantized tensor (by output index), and the metadata llama-quantize writes.
pub(crate) fn apply_recipe(
    outs: Vec<crate::plan::Planned>,
    src: &dyn lbrx_core::Source,
    meta: &mut Metadata,
    r: &Recipe,
    imatrix: Option<&ImatrixInput>,
) -> Result<(Vec<crate::plan::Planned>, ImportanceByJob, Vec<String>)> {
    use crate::plan::Transform;
    let facts = ModelFacts::from_metadata(meta);
    let mut r = r.clone();
    r.has_imatrix = imatrix.is_some();
    let r = &r;
    let list: Vec<(String, DType, Vec<u64>)> = outs
        .iter()
        .map(|o| (o.name.clone(), o.dtype, o.shape.clone()))
        .collect();
    let types = choose_types(&list, &facts, r)?;
    let order = loader_order(&list);
    let mut planned = Vec::with_capacity(outs.len());
    let mut weights = std::collections::BTreeMap::new();
    let mut warnings = Vec::new();
    for i in order {
        let mut o = outs[i].clone();
        let (name, inter, shape) = (&list[i].0, list[i].1, &list[i].2);
        let to = types[i];
        if to != inter {
            // what the job reads: the source tensor, or whatever its transform starts from
            let from = crate::plan::transform_source(o.transform)
                .or_else(|| o.input.first_src().map(|i| src.tensors()[i].dtype))
                .unwrap_or(inter);
            if !(lbrx_quant::ggml_quant::can_quantize(to) || to.is_castable_float()) {
                return Err(Error::Unsupported {
                    path: src.root().to_path_buf(),
                    what: format!("tensor '{name}': quantizing to {to} is not implemented yet"),
                });
            }
            o.transform = if to.info().kind == lbrx_core::DTypeKind::Quantized {
                if inter != from && inter.is_castable_float() {
                    o.steps.push(crate::plan::Step::Round { via: inter });
                }
                Transform::Quant { from, to }
            } else {
                crate::plan::transform_to(from, to).1
            };
            o.dtype = to;
            let needs_imatrix = requires_imatrix(name, to, r.name);
            if needs_imatrix && imatrix.is_none() {
                let m = format!(
                    "{}: this quantization requires an importance matrix (tensor '{name}' would be {to}, as \
                     in llama.cpp): make one with llama-imatrix and pass it with --imatrix",
                    r.name
                );
                if !r.dry_run {
                    return Err(Error::Usage(m));
                }
                if warnings.is_empty() {
                    warnings.push(m);
                }
            }
            if let (Some(im), Transform::Quant { .. }) = (imatrix, o.transform) {
                if let Some(w) = im.data.entries.get(name) {
                    let cols = *shape.last().unwrap_or(&0) as usize;
                    let mats = if shape.len() >= 3 {
                        shape[0] as usize
                    } else {
                        1
                    };
                    if w.len() == cols * mats {
                        weights.insert(planned.len(), w.clone());
                    } else if !name.starts_with("token_embd.") {
                        return Err(Error::model(
                            &im.file,
                            format!(
                                "imatrix size {} is different from tensor size {} for {name}",
                                w.len(),
                                cols * mats
                            ),
                        ));
                    }
                }
            }
        }
        if to != inter
            && imatrix.is_some()
            && requires_imatrix(name, to, r.name)
            && !weights.contains_key(&planned.len())
        {
            return Err(Error::model(
                imatrix.map_or("", |i| i.file.as_str()),
                format!("missing importance matrix for tensor '{name}' ({to}) in a very low-bit quantization"),
            ));
        }
        let keep = ggml_dims(&o.shape);
        o.shape.drain(..o.shape.len().saturating_sub(keep));
        planned.push(o);
    }
    // gguf_set_val_* moves a key it replaces to the end
    meta.remove("general.quantization_version");
    meta.remove("general.file_type");
    meta.insert("general.quantization_version", Value::U32(2));
    meta.insert("general.file_type", Value::U32(r.ftype));
    if let Some(im) = imatrix {
        // llama-quantize's key overrides: strings cut to 127 bytes, counts as u32
        let cut = |v: &str| String::from_utf8_lossy(&v.as_bytes()[..v.len().min(127)]).into_owned();
        let mut kv = vec![("quantize.imatrix.file", Value::Str(cut(&im.file)))];
        if let Some(d) = im.data.datasets.first() {
            kv.push(("quantize.imatrix.dataset", Value::Str(cut(d))));
        }
        kv.push((
            "quantize.imatrix.entries_count",
            Value::U32(im.data.entries.len() as u32),
        ));
        if im.data.chunk_count > 0 {
            kv.push((
                "quantize.imatrix.chunks_count",
                Value::U32(im.data.chunk_count),
            ));
        }
        for (k, v) in kv {
            meta.remove(k);
            meta.insert(k, v);
        }
    }
    Ok((planned, weights, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_pattern_matches_llama_cpp() {
        // 32 layers: first 4, last 4, and every third from layer 6
        let got: Vec<i64> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            got,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn fallbacks_follow_block_sizes() {
        assert_eq!(fallback(DType::Q4K, 4096), DType::Q4K);
        assert_eq!(fallback(DType::Q4K, 4160), DType::Q5_0);
        assert_eq!(fallback(DType::Q6K, 4160), DType::Q8_0);
        assert_eq!(fallback(DType::Q4K, 100), DType::F16);
    }
}

//! GGUF -> Hugging Face model directory, the inverse of [`super::plan_hf_gguf`] for the same architecture
//! table: tensor names mapped back, Q/K rows un-permuted, MoE experts unstacked, Gemma's norm shift undone,
//! weights dequantized or cast to the chosen dtype, and `config.json`, `generation_config.json` and a
//! tokenizer (`tokenizer.json` for BPE, `tokenizer.model` for SentencePiece, plus `tokenizer_config.json`)
//! rebuilt from the GGUF keys, so that `transformers` loads the directory.

use super::arch::{match_template, split_suffix, ArchSpec, TENSOR_MAP};
use super::archs::ARCHS;
use super::hooks::{f32_json, HfCtx, HfKeys};
use crate::plan::{transform_to, Input, Plan, Planned, Step};
use crate::request::ConvertOptions;
use crate::writer::pretty;
use crate::writer::{Layout, OutputWriter, SafetensorsDir};
use lbrx_core::{DType, Error, Result, Source, Value};
use serde_json::{json, Map, Value as Json};
use std::path::Path;

/// The HF name a GGUF tensor came from, for `spec`; `None` for tensors HF does not store (rope factors).
fn reverse_name(gguf: &str, spec: &ArchSpec) -> Option<String> {
    let (base, suffix) = split_suffix(gguf);
    let expert_key = spec.experts.map(|x| {
        x.merged
            .split("{bid}.")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .unwrap_or("")
    });
    for table in [spec.tensor_overrides, TENSOR_MAP] {
        for (tmpl, hfs) in table {
            let Some(bid) = match_template(tmpl, base) else {
                continue;
            };
            let pick = hfs
                .iter()
                .find(|h| expert_key.is_some_and(|k| h.contains(&format!(".{k}."))))
                .or_else(|| {
                    hfs.iter()
                        .find(|h| h.starts_with("model.") || h.starts_with("lm_head"))
                })
                .or(hfs.first())?;
            if *pick == "rope.freqs" {
                return None;
            }
            let mut out = match bid {
                Some(b) => pick.replace("{bid}", b),
                None => pick.to_string(),
            };
            if !suffix.is_empty() {
                out.push('.');
                out.push_str(suffix);
            }
            return Some(out);
        }
    }
    None
}

/// The architecture entry a GGUF file converts back through.
fn find_spec(src: &dyn Source, arch: &str) -> Result<&'static ArchSpec> {
    let moe = src.tensors().iter().any(|t| t.name.contains("_exps."));
    // Rows sharing a GGUF architecture are told apart by what their configs leave in the file: experts, and
    // attention.key_length, which a row whose config always has head_dim writes (LlamaForCausalLM) and
    // one without does not (MistralForCausalLM converts back to the same keys).
    let key_length = src
        .metadata()
        .get(&format!("{arch}.attention.key_length"))
        .is_some();
    let has_head_dim = |a: &ArchSpec| a.defaults.iter().any(|(k, _)| *k == "head_dim");
    let rows: Vec<&'static ArchSpec> = ARCHS.iter().filter(|a| a.gguf == arch).collect();
    let fits = |a: &&'static ArchSpec| a.experts.is_some() == moe;
    let by_moe: Vec<&'static ArchSpec> = rows.iter().copied().filter(fits).collect();
    let pick = match by_moe.len() {
        0 => rows.first().copied(),
        1 => Some(by_moe[0]),
        _ => by_moe
            .iter()
            .copied()
            .find(|a| has_head_dim(a) == key_length)
            .or(Some(by_moe[0])),
    };
    pick        .ok_or_else(|| Error::Unsupported {
            path: src.root().to_path_buf(),
            what: format!(
                "GGUF architecture '{arch}' cannot be converted to a Hugging Face directory yet; supported: {}",
                supported_ggufs()
            ),
        })
}

fn supported_ggufs() -> String {
    let mut v: Vec<&str> = ARCHS.iter().map(|a| a.gguf).collect();
    v.sort_unstable();
    v.dedup();
    v.join(", ")
}

/// The dtype HF weights get by default: the GGUF's own float type when its matrices are all one of
/// F32/F16/BF16, else F16 (quantized sources).
fn default_dtype(src: &dyn Source) -> DType {
    let mut kinds = src
        .tensors()
        .iter()
        .filter(|t| t.shape.len() >= 2)
        .map(|t| t.dtype);
    let first = kinds.next().unwrap_or(DType::F16);
    if matches!(first, DType::F32 | DType::F16 | DType::BF16) && kinds.all(|d| d == first) {
        first
    } else {
        DType::F16
    }
}

fn torch_name(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::BF16 => d.torch_name().unwrap_or("float16"),
        _ => "float16",
    }
}

/// Plans GGUF -> HF directory.
pub fn plan_gguf_hf(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let (outs, small) = gguf_hf_outs(src, opts)?;
    let meta = std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let mut layout = Layout::new(outs, dst);
    layout.max_shard_size = opts.max_shard_size;
    layout.small_files = small;
    layout.string_metadata = Some(meta);
    SafetensorsDir.layout(layout)
}

/// A GGUF's tensors as Hugging Face tensors (names, un-permuted rows, one tensor per expert, float dtype) and
/// the small files of its Hugging Face directory (config, generation config, tokenizer).
pub(crate) fn gguf_hf_outs(
    src: &dyn Source,
    opts: &ConvertOptions,
) -> Result<(Vec<Planned>, crate::plan::SmallFiles)> {
    let m = src.metadata();
    let arch = m
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::model(
            src.root(),
            "no general.architecture: --to hf rebuilds a Hugging Face directory from a GGUF converted from one (an architecture of the README's table)".to_string(),
        ))?
        .to_string();
    let spec = find_spec(src, &arch)?;
    if let Some(why) = super::family_hooks::of(spec.params).not_reversible() {
        return Err(Error::Unsupported {
            path: src.root().to_path_buf(),
            what: format!(
                "a '{arch}' GGUF cannot be converted back to a Hugging Face directory yet: {why}"
            ),
        });
    }
    let k = HfKeys { m, arch: &arch };
    let n_head = k.u64("attention.head_count");
    let n_kv = k.u64("attention.head_count_kv");
    let dtype = opts.dtype.unwrap_or_else(|| default_dtype(src));

    let mut outs = Vec::new();
    let mut has_output = false;
    for (i, t) in src.tensors().iter().enumerate() {
        if t.name == "output.weight" {
            has_output = true;
        }
        let Some(hf) = reverse_name(&t.name, spec) else {
            continue;
        };
        // Vectors and tensors GGUF keeps in F32 stay F32 unless a dtype was asked for, so that the round trip
        // back to GGUF is exact; transformers casts them on load.
        let out_dtype = if opts.dtype.is_none() && t.dtype == DType::F32 {
            DType::F32
        } else {
            dtype
        };
        let (out_dtype, transform) = transform_to(t.dtype, out_dtype);
        let shift =
            (spec.norm_shift != 0.0 && hf.ends_with("norm.weight")).then_some(-spec.norm_shift);
        if let (Some(x), true) = (spec.experts, t.name.contains("_exps.")) {
            // one HF tensor per expert: a slice of the stacked tensor
            let proj = x
                .projections
                .iter()
                .find(|p| hf.contains(&format!(".{p}.")))
                .ok_or_else(|| Error::tensor(t.name.to_string(), "unknown expert projection"))?;
            let bid = t.name.split('.').nth(1).unwrap_or("0");
            let n = t.shape.first().copied().unwrap_or(0);
            let per: u64 = t.shape.iter().skip(1).product();
            for xid in 0..n {
                let name = x
                    .pattern
                    .replace("{bid}", bid)
                    .replace("{xid}", &xid.to_string())
                    .replace("{w}", proj);
                outs.push(Planned::new(
                    name,
                    out_dtype,
                    t.shape[1..].to_vec(),
                    Input::Tensor {
                        src: i,
                        start: xid * per,
                    },
                    transform,
                ));
            }
            continue;
        }
        let permute_heads = if spec.permute_qk {
            if t.name.starts_with("blk.") && t.name.contains(".attn_q.") {
                n_head
            } else if t.name.starts_with("blk.") && t.name.contains(".attn_k.") {
                match (n_head, n_kv) {
                    (Some(a), Some(b)) if a != b => Some(b),
                    (a, _) => a,
                }
            } else {
                None
            }
        } else {
            None
        };
        let mut o = Planned::new(hf, out_dtype, t.shape.clone(), Input::tensor(i), transform);
        if let Some(heads) = permute_heads {
            o.steps.push(Step::Permute {
                heads,
                inverse: true,
            });
        }
        if let Some(add) = shift {
            o.steps.push(Step::Shift { add });
        }
        outs.push(o);
    }

    let mut small = Vec::new();
    let config = config_json(src, spec, &k, dtype, !has_output)?;
    small.push(("config.json".to_string(), pretty(&config)));
    let mut gen = Map::new();
    for (key, name) in [
        ("bos_token_id", "bos_token_id"),
        ("eos_token_id", "eos_token_id"),
    ] {
        if let Some(v) = m
            .get(&format!("tokenizer.ggml.{name}"))
            .and_then(Value::as_u64)
        {
            gen.insert(key.into(), json!(v));
        }
    }
    small.push((
        "generation_config.json".to_string(),
        pretty(&Json::Object(gen)),
    ));
    small.extend(super::vocab_out::tokenizer_files(m, spec)?);
    if let Some(p) = k.u64("pooling_type").filter(|p| (1..=3).contains(p)) {
        // a sentence-transformers layout, so the pooling survives the round trip
        let modules = json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
        ]);
        let pooling = json!({
            "word_embedding_dimension": k.u64("embedding_length").unwrap_or(0),
            "pooling_mode_cls_token": p == 2,
            "pooling_mode_mean_tokens": p == 1,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
            "pooling_mode_lasttoken": p == 3,
        });
        small.push(("modules.json".to_string(), pretty(&modules)));
        small.push(("1_Pooling/config.json".to_string(), pretty(&pooling)));
    }
    Ok((outs, small))
}

/// `config.json` from the GGUF keys.
fn config_json(
    src: &dyn Source,
    spec: &ArchSpec,
    k: &HfKeys<'_>,
    dtype: DType,
    tied: bool,
) -> Result<Json> {
    let m = k.m;
    let model_type = spec.model_type;
    let hidden = k.need_u64("embedding_length")?;
    let heads = k.need_u64("attention.head_count")?;
    let vocab = m
        .get("tokenizer.ggml.tokens")
        .and_then(|v| match v {
            Value::Array(_, a) => Some(a.len() as u64),
            _ => None,
        })
        .or_else(|| k.u64("vocab_size"))
        .ok_or_else(|| Error::Invalid("GGUF has no tokenizer.ggml.tokens".into()))?;
    let mut c = Map::new();
    if spec.vocab == super::arch::VocabOrder::Bert {
        c.insert("architectures".into(), json!([spec.hf[0]]));
        c.insert("model_type".into(), json!(model_type));
        c.insert("hidden_size".into(), json!(hidden));
        c.insert(
            "intermediate_size".into(),
            json!(k.need_u64("feed_forward_length")?),
        );
        c.insert(
            "num_hidden_layers".into(),
            json!(k.need_u64("block_count")?),
        );
        c.insert("num_attention_heads".into(), json!(heads));
        c.insert(
            "max_position_embeddings".into(),
            json!(k.need_u64("context_length")?),
        );
        if let Some(v) = k.f64("attention.layer_norm_epsilon") {
            c.insert("layer_norm_eps".into(), f32_json(v));
        }
        let types = m
            .get("tokenizer.ggml.token_type_count")
            .and_then(Value::as_u64)
            .unwrap_or(2);
        c.insert("type_vocab_size".into(), json!(types));
        c.insert("vocab_size".into(), json!(vocab));
        c.insert(
            "hidden_act".into(),
            json!(super::family_hooks::of(spec.params).hidden_act()),
        );
        c.insert("position_embedding_type".into(), json!("absolute"));
        if let Some(v) = m
            .get("tokenizer.ggml.padding_token_id")
            .and_then(Value::as_u64)
        {
            c.insert("pad_token_id".into(), json!(v));
        }
        c.insert("torch_dtype".into(), json!(torch_name(dtype)));
        return Ok(Json::Object(c));
    }
    let class = super::family_hooks::of(spec.params)
        .hf_class()
        .unwrap_or(spec.hf[0]);
    c.insert("architectures".into(), json!([class]));
    c.insert("model_type".into(), json!(model_type));
    c.insert("hidden_size".into(), json!(hidden));
    c.insert(
        "intermediate_size".into(),
        json!(k.need_u64("feed_forward_length")?),
    );
    c.insert(
        "num_hidden_layers".into(),
        json!(k.need_u64("block_count")?),
    );
    c.insert("num_attention_heads".into(), json!(heads));
    c.insert(
        "num_key_value_heads".into(),
        json!(k.u64("attention.head_count_kv").unwrap_or(heads)),
    );
    if let Some(v) = k.u64("context_length") {
        c.insert("max_position_embeddings".into(), json!(v));
    }
    if let Some(v) = k.f64("attention.layer_norm_rms_epsilon") {
        c.insert("rms_norm_eps".into(), f32_json(v));
    }
    if let Some(v) = k.f64("rope.freq_base") {
        c.insert("rope_theta".into(), f32_json(v));
    }
    if let Some(v) = k.u64("attention.key_length") {
        c.insert("head_dim".into(), json!(v));
    }
    c.insert("vocab_size".into(), json!(vocab));
    c.insert("tie_word_embeddings".into(), json!(tied));
    c.insert("torch_dtype".into(), json!(torch_name(dtype)));
    c.insert(
        "hidden_act".into(),
        json!(super::family_hooks::of(spec.params).hidden_act()),
    );
    for (key, name) in [
        ("bos_token_id", "bos_token_id"),
        ("eos_token_id", "eos_token_id"),
        ("pad_token_id", "padding_token_id"),
    ] {
        if let Some(v) = m
            .get(&format!("tokenizer.ggml.{name}"))
            .and_then(Value::as_u64)
        {
            c.insert(key.into(), json!(v));
        }
    }
    if let Some(x) = spec.experts {
        let n = k.need_u64("expert_count")?;
        c.insert(x.count_keys[x.count_keys.len() - 1].into(), json!(n));
        c.insert(
            "num_experts_per_tok".into(),
            json!(k.need_u64("expert_used_count")?),
        );
    }
    // the row's extra keys back to the first config field each is read from
    for (key, fields) in spec.extra_u32 {
        if let (Some(v), Some(f)) = (k.u64(key), fields.first()) {
            c.insert((*f).into(), json!(v));
        }
    }
    let hooks = super::family_hooks::of(spec.params);
    let ctx = HfCtx {
        k,
        src,
        heads,
        hidden,
    };
    hooks.hf_config(&ctx, &mut c)?;
    Ok(Json::Object(c))
}

#[cfg(test)]
mod tests {
    use super::super::arch;
    use super::super::archs;
    use super::*;

    #[test]
    fn names_reverse_through_the_table() {
        let llama = archs::find("LlamaForCausalLM").unwrap();
        assert_eq!(
            reverse_name("blk.3.attn_q.weight", llama).as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(
            reverse_name("token_embd.weight", llama).as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(reverse_name("rope_freqs.weight", llama), None);
        let mixtral = archs::find("MixtralForCausalLM").unwrap();
        assert_eq!(
            reverse_name("blk.0.ffn_gate_inp.weight", mixtral).as_deref(),
            Some("model.layers.0.block_sparse_moe.gate.weight")
        );
        let qmoe = archs::find("Qwen3MoeForCausalLM").unwrap();
        assert_eq!(
            reverse_name("blk.0.ffn_gate_inp.weight", qmoe).as_deref(),
            Some("model.layers.0.mlp.gate.weight")
        );
        let gemma = archs::find("Gemma2ForCausalLM").unwrap();
        assert_eq!(
            reverse_name("blk.1.post_attention_norm.weight", gemma).as_deref(),
            Some("model.layers.1.post_attention_layernorm.weight")
        );
        // every forward mapping reverses to itself (the shared map's entries whose HF names a row's overrides
        // claim for another GGUF name are not that row's)
        for a in ARCHS {
            for (tmpl, hfs) in TENSOR_MAP.iter().chain(a.tensor_overrides) {
                let shadowed = a
                    .tensor_overrides
                    .iter()
                    .any(|(t, o)| t != tmpl && o.iter().any(|x| hfs.contains(x)));
                if shadowed {
                    continue;
                }
                let g = format!("{}.weight", tmpl.replace("{bid}", "2"));
                if let Some(h) = reverse_name(&g, a) {
                    assert_eq!(
                        arch::map_name_for(&h, 4, a.tensor_overrides).as_deref(),
                        Some(g.as_str()),
                        "{} {h}",
                        a.gguf
                    );
                    let _ = hfs;
                }
            }
        }
    }
}

//! `config.json` against the tensors: vocabulary and hidden sizes against the embedding (MLX-packed and
//! scaled-padded widths undone), the layer count against the layer indices, and the MLX quantization block.

use super::{read_json, Report};
use lbrx_core::{DType, TensorInfo};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Index of the first `.N.` after a layer-container name (`layers`, `h`, `blocks`, `layer`).
fn layer_index(name: &str) -> Option<u64> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find_map(|w| {
        if matches!(w[0], "layers" | "h" | "blocks" | "layer") {
            w[1].parse().ok()
        } else {
            None
        }
    })
}

pub(super) fn check_config(
    dir: &Path,
    tensors: &[&TensorInfo],
    all_readable: bool,
    r: &mut Report,
) {
    let path = dir.join("config.json");
    let Some(cfg) = read_json(&path, r, "corrupt-config") else {
        return;
    };
    if !all_readable {
        r.warn(
            "config-skipped",
            Some(&path),
            None,
            "config.json not checked against the tensors: some shards are unreadable".into(),
        );
        return;
    }
    // Multimodal configs keep the language model's fields in text_config.
    let get = |k: &str| {
        cfg.get(k)
            .or_else(|| cfg.get("text_config").and_then(|t| t.get(k)))
    };
    let by_name: BTreeMap<&str, &TensorInfo> =
        tensors.iter().map(|t| (t.name.as_str(), *t)).collect();
    let quant = cfg
        .get("quantization")
        .or_else(|| cfg.get("quantization_config"))
        .filter(|q| q.get("bits").is_some());
    let embed = tensors.iter().find(|t| {
        [
            "embed_tokens.weight",
            "wte.weight",
            "word_embeddings.weight",
            "tok_embeddings.weight",
        ]
        .iter()
        .any(|s| t.name.ends_with(s))
    });
    if let Some(e) = embed {
        if e.shape.len() == 2 {
            let rows = e.shape[0];
            let mut cols = e.shape[1];
            let prefix = e.name.trim_end_matches(".weight");
            // a scaled layer's stored shape is padded (NVFP4 to 16 and packed in pairs, MXFP8 to 32)
            let mut pad = (1, 1);
            if by_name.contains_key(format!("{prefix}.comfy_quant").as_str()) {
                if by_name.contains_key(format!("{prefix}.weight_scale_2").as_str()) {
                    cols *= 2;
                    pad = (16, 16);
                } else if e.dtype == DType::F8E4M3
                    && by_name
                        .get(format!("{prefix}.weight_scale").as_str())
                        .is_some_and(|s| s.dtype == DType::U8)
                {
                    pad = (32, 32);
                }
            }
            let fits = |want: u64, have: u64, p: u64| {
                want == have || (have >= want && have - want < p && have.is_multiple_of(p))
            };
            if e.dtype == DType::U32 {
                if let Some(bits) = quant
                    .and_then(|q| crate::mlx::layer_params(q, prefix))
                    .map(|(_, b, _)| b)
                {
                    cols = cols * 32 / bits;
                }
            }
            if let Some(v) = get("vocab_size").and_then(Json::as_u64) {
                if !fits(v, rows, pad.0) {
                    r.error(
                        "config-vocab",
                        Some(&path),
                        Some(&e.name),
                        format!("vocab_size is {v} but the embedding has {rows} rows"),
                    );
                }
            }
            if let Some(h) = get("hidden_size").and_then(Json::as_u64) {
                if !fits(h, cols, pad.1) {
                    r.error(
                        "config-hidden",
                        Some(&path),
                        Some(&e.name),
                        format!("hidden_size is {h} but the embedding has {cols} columns"),
                    );
                }
            }
        }
    }
    if let Some(n) = get("num_hidden_layers").and_then(Json::as_u64) {
        let layers: BTreeSet<u64> = tensors
            .iter()
            .filter_map(|t| layer_index(&t.name))
            .collect();
        if !layers.is_empty() {
            let found = layers.iter().max().map_or(0, |m| m + 1);
            if found != n || layers.len() as u64 != n {
                r.error(
                    "config-layers",
                    Some(&path),
                    None,
                    format!(
                        "num_hidden_layers is {n} but the tensors hold layers {}..{} ({} distinct)",
                        layers.first().unwrap_or(&0),
                        found.saturating_sub(1),
                        layers.len()
                    ),
                );
            }
        }
    }
    if let Some(tied) = get("tie_word_embeddings").and_then(Json::as_bool) {
        let has_head = by_name.contains_key("lm_head.weight");
        if !tied && !has_head && embed.is_some() {
            r.error(
                "config-tied",
                Some(&path),
                None,
                "tie_word_embeddings is false but there is no lm_head.weight".into(),
            );
        }
        if tied && has_head {
            r.warn(
                "config-tied",
                Some(&path),
                Some("lm_head.weight"),
                "tie_word_embeddings is true but lm_head.weight is stored too (it is ignored)"
                    .into(),
            );
        }
    }
    if let Some(q) = quant {
        check_mlx_quant(q, tensors, &by_name, &path, r);
    }
}

fn check_mlx_quant(
    q: &Json,
    tensors: &[&TensorInfo],
    by_name: &BTreeMap<&str, &TensorInfo>,
    cfg: &Path,
    r: &mut Report,
) {
    for t in tensors.iter().filter(|t| t.name.ends_with(".scales")) {
        let prefix = t.name.trim_end_matches(".scales");
        let w = format!("{prefix}.weight");
        if !by_name.contains_key(w.as_str()) {
            r.error(
                "quant-orphan",
                Some(cfg),
                Some(&t.name),
                format!("scales without {w}"),
            );
        }
    }
    for t in tensors
        .iter()
        .filter(|t| t.dtype == DType::U32 && t.name.ends_with(".weight"))
    {
        let prefix = t.name.trim_end_matches(".weight");
        let Some((group, bits, lmode)) = crate::mlx::layer_params(q, prefix) else {
            r.error(
                "quant-config",
                Some(cfg),
                Some(&t.name),
                "packed uint32 weight, but the quantization config excludes this layer".into(),
            );
            continue;
        };
        let scales = by_name.get(format!("{prefix}.scales").as_str());
        let biases = by_name.get(format!("{prefix}.biases").as_str());
        let Some(scales) = scales else {
            r.error(
                "quant-missing",
                Some(cfg),
                Some(&t.name),
                format!("packed {bits}-bit weight without {prefix}.scales"),
            );
            continue;
        };
        if lmode == lbrx_quant::mlx::Mode::Affine && biases.is_none() {
            r.error(
                "quant-missing",
                Some(cfg),
                Some(&t.name),
                format!("affine {bits}-bit weight without {prefix}.biases"),
            );
        }
        let (Some(&packed), Some(&groups)) = (t.shape.last(), scales.shape.last()) else {
            continue;
        };
        let cols = packed * 32 / bits.max(1);
        if group == 0
            || cols % group != 0
            || groups != cols / group
            || scales.shape[..scales.shape.len() - 1] != t.shape[..t.shape.len() - 1]
        {
            r.error(
                "quant-shape",
                Some(cfg),
                Some(&t.name),
                format!("weight {:?} at {bits} bits is {cols} columns, which needs scales [.., {}] for group size {group}, found {:?}", t.shape, cols / group.max(1), scales.shape),
            );
        }
    }
}

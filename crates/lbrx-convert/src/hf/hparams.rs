//! What a Hugging Face directory's config says: `config.json` with `transformers`' defaults filled in,
//! llama.cpp's `find_hparam` lookups, and the values derived from it (the auto output type, Llama 3's
//! `rope_freqs`, the sentence-transformers pooling type).

use super::arch::{ArchSpec, ConfigDefault as Dflt};
use lbrx_core::{DType, Error, Result, Source};
use serde_json::{Map, Value as Json};
use std::path::Path;

pub(super) fn read_config(dir: &Path) -> Result<Map<String, Json>> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
    match serde_json::from_str(&text) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(Error::model(&p, "not a JSON object".to_string())),
        Err(e) => Err(Error::model(&p, format!("invalid JSON: {e}"))),
    }
}

/// The model's hyper-parameters: `config.json` (with `text_config` lifted to the top) plus the defaults
/// `transformers` would fill in.
pub(super) struct HParams(pub(crate) Map<String, Json>);

impl HParams {
    pub(super) fn load(dir: &Path, spec: &ArchSpec) -> Result<Self> {
        let mut c = read_config(dir)?;
        if let Some(Json::Object(t)) = c.get("text_config").cloned() {
            c.extend(t);
        }
        for (k, d) in spec.defaults {
            if c.get(*k).is_some_and(|v| !v.is_null()) {
                continue;
            }
            let v = match d {
                Dflt::Int(i) => Json::from(*i),
                Dflt::Float(f) => Json::from(*f),
                Dflt::Same(other) => c.get(*other).cloned().unwrap_or(Json::Null),
                Dflt::HeadDim => {
                    match (
                        c.get("hidden_size").and_then(Json::as_u64),
                        c.get("num_attention_heads").and_then(Json::as_u64),
                    ) {
                        (Some(h), Some(n)) if n > 0 => Json::from(h / n),
                        _ => Json::Null,
                    }
                }
            };
            c.insert(k.to_string(), v);
        }
        Ok(HParams(c))
    }

    /// llama.cpp's `find_hparam`: the first of `keys` present (and not null).
    pub(super) fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter()
            .find_map(|k| self.0.get(*k))
            .filter(|v| !v.is_null())
    }

    pub(super) fn find_u64(&self, keys: &[&str]) -> Option<u64> {
        self.find(keys).and_then(Json::as_u64)
    }

    pub(super) fn find_f64(&self, keys: &[&str]) -> Option<f64> {
        self.find(keys).and_then(Json::as_f64)
    }

    /// `hidden_size / num_attention_heads`, the head width families without `head_dim` use.
    pub(super) fn per_head(&self) -> Result<u64> {
        Ok(
            self.require_u64(&["hidden_size"])?
                / self.require_u64(&["num_attention_heads"])?.max(1),
        )
    }

    pub(super) fn require_u64(&self, keys: &[&str]) -> Result<u64> {
        self.find_u64(keys).ok_or_else(|| Error::Model {
            path: "config.json".into(),
            what: format!("none of {keys:?} is set to a whole number"),
        })
    }
}

/// The output type llama.cpp's `--outtype auto` picks: the dtype of the first matrix, BF16 or F16.
pub(super) fn guess_ftype(src: &dyn Source) -> DType {
    match src
        .tensors()
        .iter()
        .find(|t| t.shape.len() >= 2)
        .map(|t| t.dtype)
    {
        Some(DType::BF16) => DType::BF16,
        _ => DType::F16,
    }
}

/// llama.cpp's Llama 3 `rope_freqs`: per-frequency scaling factors, computed in f32 as torch does.
pub(super) fn llama3_rope_factors(h: &HParams, rope: &Map<String, Json>) -> Result<Vec<f32>> {
    let base = rope
        .get("rope_theta")
        .and_then(Json::as_f64)
        .unwrap_or(10000.0) as f32;
    let dim = match h.find_u64(&["head_dim"]) {
        Some(d) => d,
        None => h.require_u64(&["hidden_size"])? / h.require_u64(&["num_attention_heads"])?.max(1),
    };
    let g = |k: &str, d: f64| rope.get(k).and_then(Json::as_f64).unwrap_or(d);
    let factor = g("factor", 8.0) as f32;
    let low = g("low_freq_factor", 1.0);
    let high = g("high_freq_factor", 4.0);
    let old_ctx = g("original_max_position_embeddings", 8192.0);
    let low_wavelen = (old_ctx / low) as f32;
    let high_wavelen = (old_ctx / high) as f32;
    let mut out = Vec::new();
    for i in (0..dim).step_by(2) {
        let freq = 1.0f32 / base.powf(i as f32 / dim as f32);
        let wavelen = (2.0 * std::f64::consts::PI) as f32 / freq;
        out.push(if wavelen < high_wavelen {
            1.0
        } else if wavelen > low_wavelen {
            factor
        } else {
            let smooth = (old_ctx as f32 / wavelen - low as f32) / (high as f32 - low as f32);
            1.0 / ((1.0 - smooth) / factor + smooth)
        });
    }
    Ok(out)
}

/// llama.cpp's `_try_set_pooling_type`: the pooling of a sentence-transformers model (`modules.json` and the
/// pooling module's config) as llama.cpp numbers it (1 mean, 2 CLS, 3 last token).
pub(super) fn pooling_type(dir: &Path) -> Result<Option<u64>> {
    let read = super::vocab::read_json;
    let Some(Json::Array(mods)) = read(&dir.join("modules.json"))? else {
        return Ok(None);
    };
    let Some(path) = mods.iter().find_map(|m| {
        m.get("type")
            .and_then(Json::as_str)
            .filter(|t| t.ends_with("Pooling"))
            .and(m.get("path").and_then(Json::as_str))
    }) else {
        return Ok(None);
    };
    let cfg_path = dir.join(path).join("config.json");
    let cfg = read(&cfg_path)?
        .ok_or_else(|| Error::io(&cfg_path, "read", std::io::ErrorKind::NotFound.into()))?;
    let on = |k: &str| cfg.get(k).and_then(Json::as_bool).unwrap_or(false);
    let t = if on("pooling_mode_mean_tokens") {
        1
    } else if on("pooling_mode_cls_token") {
        2
    } else if on("pooling_mode_lasttoken") {
        3
    } else {
        match cfg.get("pooling_mode").and_then(Json::as_str) {
            Some("mean") => 1,
            Some("cls") => 2,
            Some("lasttoken") => 3,
            _ => {
                return Err(Error::Unsupported {
                    path: cfg_path,
                    what: "only mean, CLS and last-token pooling are supported".into(),
                })
            }
        }
    };
    Ok(Some(t))
}

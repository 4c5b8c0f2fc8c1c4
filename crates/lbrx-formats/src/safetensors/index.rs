//! The shard index `*.safetensors.index.json` that `transformers` writes beside sharded checkpoints.

use lbrx_core::{Error, Location, Malformed, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// File-name suffix of a shard index.
pub const INDEX_SUFFIX: &str = ".safetensors.index.json";

/// Largest index file accepted (a 1M-tensor model's index is ~100 MB).
const INDEX_CAP: u64 = 256 << 20;

/// A parsed shard index.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardIndex {
    /// Tensor name -> shard file name.
    pub weight_map: BTreeMap<String, String>,
    /// The `metadata` object (usually `total_size`), as JSON.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Reads and checks an index file: valid JSON, a `weight_map` of strings, shard names that stay in the directory.
pub fn read_index(path: &Path) -> Result<ShardIndex> {
    let loc = || Location::file(path);
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, "stat", e))?
        .len();
    if size > INDEX_CAP {
        return Err(Error::malformed(
            loc(),
            Malformed::HeaderTooLarge {
                header_len: size,
                cap: INDEX_CAP,
            },
        ));
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::malformed(loc(), Malformed::InvalidHeader(e.to_string())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| {
            Error::malformed(
                loc(),
                Malformed::InvalidHeader("no \"weight_map\" object".into()),
            )
        })?;
    let mut weight_map = BTreeMap::new();
    for (name, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            Error::malformed(
                loc().tensor(name),
                Malformed::InvalidHeader("shard name is not a string".into()),
            )
        })?;
        let p = Path::new(shard);
        let plain = p.components().count() == 1
            && matches!(p.components().next(), Some(Component::Normal(_)));
        if !plain {
            return Err(Error::malformed(
                loc().tensor(name),
                Malformed::InvalidHeader(format!(
                    "shard '{shard}' is not a file name inside the directory"
                )),
            ));
        }
        weight_map.insert(name.clone(), shard.to_string());
    }
    let metadata = json
        .get("metadata")
        .and_then(|m| m.as_object())
        .cloned()
        .unwrap_or_default();
    Ok(ShardIndex {
        weight_map,
        metadata,
    })
}

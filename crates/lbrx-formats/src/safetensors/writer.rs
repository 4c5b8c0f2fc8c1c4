//! Planning SafeTensors output: headers (byte-identical to the reference writer), shard split, index JSON.
//!
//! Everything here is pure: sizes follow from dtype and shape, so every header and offset is known before any
//! tensor byte is written; the conversion engine then fills the data sections in parallel.

use lbrx_core::{DType, Error, Result};
use std::collections::BTreeMap;

/// A tensor to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTensor {
    /// Name in the output.
    pub name: String,
    /// Element type in the output.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: Vec<u64>,
}

impl OutTensor {
    /// Byte length, or an error naming the tensor when shape and dtype do not give one.
    pub fn byte_len(&self) -> Result<u64> {
        self.dtype.byte_len(&self.shape).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor '{}': shape {:?} is not a valid {} size",
                self.name, self.shape, self.dtype
            ))
        })
    }
}

/// Where one tensor lands in an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedTensor {
    /// Index into the tensor list given to [`header_bytes`].
    pub tensor: usize,
    /// Absolute byte offset in the file.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
}

/// The complete layout of one output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    /// The first bytes of the file: 8-byte length, JSON header, space padding.
    pub header: Vec<u8>,
    /// Every tensor's place, in file order.
    pub tensors: Vec<PlacedTensor>,
    /// Total file size.
    pub size: u64,
}

/// Lays out one file holding `members` (indices into `tensors`) with `metadata`, exactly as the reference
/// `safetensors` writer does: tensors ordered by dtype (descending, in its enum order) then name, header padded
/// with spaces to a multiple of 8, `__metadata__` first when given.
pub fn header_bytes(
    tensors: &[OutTensor],
    members: &[usize],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<FileLayout> {
    let mut order: Vec<usize> = members.to_vec();
    order.sort_by(|&a, &b| {
        let (ta, tb) = (&tensors[a], &tensors[b]);
        tb.dtype
            .info()
            .safetensors_rank
            .cmp(&ta.dtype.info().safetensors_rank)
            .then_with(|| ta.name.cmp(&tb.name))
    });
    let mut json = String::from("{");
    let mut first = true;
    if let Some(meta) = metadata {
        json.push_str("\"__metadata__\":");
        json.push_str(&serde_json::to_string(meta).map_err(|e| Error::Invalid(e.to_string()))?);
        first = false;
    }
    let mut rel = 0u64;
    let mut placed = Vec::with_capacity(order.len());
    for &i in &order {
        let t = &tensors[i];
        if t.dtype.info().safetensors_rank.is_none() {
            return Err(Error::Invalid(format!(
                "tensor '{}': SafeTensors has no {} type; pass --dtype f32, f16 or bf16 to dequantize it",
                t.name, t.dtype
            )));
        }
        if t.name == "__metadata__" {
            return Err(Error::Invalid(
                "a tensor cannot be named __metadata__".into(),
            ));
        }
        let len = t.byte_len()?;
        let end = rel
            .checked_add(len)
            .ok_or_else(|| Error::Invalid("output larger than 2^64 bytes".into()))?;
        if !first {
            json.push(',');
        }
        first = false;
        json.push_str(&serde_json::to_string(&t.name).map_err(|e| Error::Invalid(e.to_string()))?);
        json.push_str(":{\"dtype\":\"");
        json.push_str(t.dtype.name());
        json.push_str("\",\"shape\":");
        json.push_str(&serde_json::to_string(&t.shape).map_err(|e| Error::Invalid(e.to_string()))?);
        json.push_str(&format!(",\"data_offsets\":[{rel},{end}]}}"));
        placed.push(PlacedTensor {
            tensor: i,
            offset: rel,
            len,
        });
        rel = end;
    }
    json.push('}');
    let pad = (8 - json.len() % 8) % 8;
    json.extend(std::iter::repeat_n(' ', pad));
    let n = json.len() as u64;
    let mut header = Vec::with_capacity(8 + json.len());
    header.extend_from_slice(&n.to_le_bytes());
    header.extend_from_slice(json.as_bytes());
    let data_start = 8 + n;
    for p in &mut placed {
        p.offset += data_start;
    }
    Ok(FileLayout {
        header,
        tensors: placed,
        size: data_start + rel,
    })
}

/// Splits tensors (given by their byte sizes, in order) into shards of at most `max` bytes, the way
/// `huggingface_hub` (and so `transformers.save_pretrained`) does: greedy in order, a new shard when the next
/// tensor would overflow, and a tensor larger than `max` alone in a shard of its own.
pub fn plan_shards(sizes: &[u64], max: Option<u64>) -> Vec<Vec<usize>> {
    let Some(max) = max else {
        return vec![(0..sizes.len()).collect()];
    };
    let mut shards = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max {
            shards.push(vec![i]);
            continue;
        }
        if current_size + size > max && !current.is_empty() {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size += size;
    }
    if !current.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

/// Shard file names as `transformers` writes them: `model.safetensors` alone, else `model-00001-of-00003.safetensors`.
pub fn shard_file_names(count: usize, stem: &str) -> Vec<String> {
    if count == 1 {
        return vec![format!("{stem}.safetensors")];
    }
    (1..=count)
        .map(|i| format!("{stem}-{i:05}-of-{count:05}.safetensors"))
        .collect()
}

/// The index JSON, byte-identical to `json.dumps(index, indent=2, sort_keys=True) + "\n"` as `transformers` writes it.
pub fn index_json(total_size: u64, weight_map: &BTreeMap<String, String>) -> Vec<u8> {
    let value = serde_json::json!({
        "metadata": { "total_size": total_size },
        "weight_map": weight_map,
    });
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut out = String::with_capacity(pretty.len() + 1);
    // Python's json.dumps escapes every non-ASCII character (ensure_ascii=True).
    for c in pretty.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_split_follows_hub_rules() {
        assert_eq!(plan_shards(&[4, 4, 4], Some(8)), vec![vec![0, 1], vec![2]]);
        // An oversized tensor gets its own shard, placed before the shard being filled.
        assert_eq!(plan_shards(&[4, 20, 4], Some(8)), vec![vec![1], vec![0, 2]]);
        assert_eq!(plan_shards(&[], Some(8)), vec![Vec::<usize>::new()]);
        assert_eq!(plan_shards(&[1, 2], None), vec![vec![0, 1]]);
    }

    #[test]
    fn names() {
        assert_eq!(shard_file_names(1, "model"), ["model.safetensors"]);
        assert_eq!(
            shard_file_names(2, "model")[1],
            "model-00002-of-00002.safetensors"
        );
    }

    #[test]
    fn index_escapes_like_python() {
        let mut m = BTreeMap::new();
        m.insert("é".to_string(), "model.safetensors".to_string());
        let s = String::from_utf8(index_json(3, &m)).unwrap();
        assert_eq!(
            s,
            "{\n  \"metadata\": {\n    \"total_size\": 3\n  },\n  \"weight_map\": {\n    \"\\u00e9\": \"model.safetensors\"\n  }\n}\n"
        );
    }
}

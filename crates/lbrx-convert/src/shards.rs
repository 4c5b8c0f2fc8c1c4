//! Which shard owns each tensor of a SafeTensors directory when a tensor appears in more than one file: the
//! complete set the shard naming forms (`P-0000i-of-0000N.safetensors`, every i present) owns first, then the
//! other files in name order. Duplicates whose bytes are equal leave the extra files as strays (a stale
//! `model.safetensors` beside the shards, a copied shard); duplicates whose bytes differ are a conflict.

use lbrx_core::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One tensor of a shard: name, and its dtype, shape and data range in the file.
#[derive(Debug, Clone)]
pub struct ShardTensor {
    /// Name.
    pub name: String,
    /// Dtype name and shape (equal for equal tensors).
    pub kind: (String, Vec<u64>),
    /// Absolute byte range of its data.
    pub range: (u64, u64),
}

/// A shard file and its tensors.
#[derive(Debug, Clone)]
pub struct ShardFile {
    /// File name.
    pub name: String,
    /// Path.
    pub path: PathBuf,
    /// Tensors, from its header.
    pub tensors: Vec<ShardTensor>,
}

/// The owner of every tensor, the files left without a tensor (strays: name, the file they duplicate), or
/// the first conflict.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    /// Tensor -> file that owns it.
    pub weight_map: BTreeMap<String, String>,
    /// Files whose every tensor is a byte-equal copy of one owned elsewhere: (stray, owner of its first).
    pub strays: Vec<(String, String)>,
    /// A tensor whose copies differ: (tensor, one file, the other).
    pub conflict: Option<(String, String, String)>,
}

/// Reads the tensors of a SafeTensors file from its header.
pub fn read_shard(name: &str, path: &std::path::Path) -> Result<ShardFile> {
    let map = lbrx_formats::mmap::MappedFile::open(path)?;
    let header = lbrx_formats::safetensors::parse_header(path, map.bytes(), map.len())?;
    let tensors = header
        .tensors
        .iter()
        .map(|t| ShardTensor {
            name: t.name.clone(),
            kind: (t.dtype.name().to_string(), t.shape.clone()),
            range: (t.offset, t.len),
        })
        .collect();
    Ok(ShardFile {
        name: name.to_string(),
        path: path.to_path_buf(),
        tensors,
    })
}

/// The files of the largest complete `P-0000i-of-0000N.safetensors` set.
fn numbered_set(files: &[ShardFile]) -> Vec<String> {
    let mut groups: BTreeMap<(String, u32), Vec<(u32, String)>> = BTreeMap::new();
    for f in files {
        let Some(stem) = f.name.strip_suffix(".safetensors") else {
            continue;
        };
        let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
        if let [n, "of", i, prefix] = parts[..] {
            if let (Ok(i), Ok(n)) = (i.parse::<u32>(), n.parse::<u32>()) {
                groups
                    .entry((prefix.to_string(), n))
                    .or_default()
                    .push((i, f.name.clone()));
            }
        }
    }
    groups
        .into_iter()
        .filter(|((_, n), members)| {
            let mut ids: Vec<u32> = members.iter().map(|m| m.0).collect();
            ids.sort_unstable();
            ids.dedup();
            ids == (1..=*n).collect::<Vec<_>>()
        })
        .max_by_key(|(_, m)| m.len())
        .map(|(_, m)| m.into_iter().map(|x| x.1).collect())
        .unwrap_or_default()
}

/// Decides the owner of every tensor, comparing the bytes of duplicates.
pub fn ownership(files: &[ShardFile]) -> Result<Ownership> {
    let set = numbered_set(files);
    let mut order: Vec<&ShardFile> = files.iter().filter(|f| set.contains(&f.name)).collect();
    order.extend(files.iter().filter(|f| !set.contains(&f.name)));
    let mut own = Ownership::default();
    let mut owner_of: BTreeMap<&str, (&ShardFile, &ShardTensor)> = BTreeMap::new();
    let mut maps: BTreeMap<String, lbrx_formats::mmap::MappedFile> = BTreeMap::new();
    let mut dup_of: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for f in &order {
        let mut all_dup = !f.tensors.is_empty();
        for t in &f.tensors {
            match owner_of.get(t.name.as_str()) {
                None => {
                    owner_of.insert(&t.name, (f, t));
                    own.weight_map.insert(t.name.clone(), f.name.clone());
                    all_dup = false;
                }
                Some((of, ot)) => {
                    let equal = ot.kind == t.kind
                        && ot.range.1 == t.range.1
                        && same_bytes(&mut maps, (of, ot.range), (f, t.range))?;
                    if !equal {
                        all_dup = false;
                        if own.conflict.is_none() {
                            own.conflict = Some((t.name.clone(), of.name.clone(), f.name.clone()));
                        }
                    }
                    dup_of.entry(&f.name).or_insert(Some(of.name.as_str()));
                }
            }
        }
        if all_dup {
            if let Some(Some(of)) = dup_of.get(f.name.as_str()) {
                own.strays.push((f.name.clone(), of.to_string()));
            }
        }
    }
    Ok(own)
}

/// Whether two tensors' data ranges hold the same bytes (compared in the mapped files, without copies).
fn same_bytes(
    maps: &mut BTreeMap<String, lbrx_formats::mmap::MappedFile>,
    a: (&ShardFile, (u64, u64)),
    b: (&ShardFile, (u64, u64)),
) -> Result<bool> {
    for g in [a.0, b.0] {
        if !maps.contains_key(&g.name) {
            maps.insert(
                g.name.clone(),
                lbrx_formats::mmap::MappedFile::open(&g.path)?,
            );
        }
    }
    let slice = |g: &ShardFile, r: (u64, u64)| -> Result<&[u8]> {
        maps[&g.name]
            .bytes()
            .get(r.0 as usize..(r.0 + r.1) as usize)
            .ok_or_else(|| Error::model(&g.path, "a tensor runs past the end of the file"))
    };
    Ok(slice(a.0, a.1)? == slice(b.0, b.1)?)
}

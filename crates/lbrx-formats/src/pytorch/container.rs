//! The containers `torch.save` and `torch.jit.save` write, down to where each storage's bytes are.
//!
//! - zip (`torch.save`, torch >= 1.6; `torch.jit.save`): members `PREFIX/data.pkl` (the object),
//!   `PREFIX/data/KEY` (one per storage), `PREFIX/byteorder` (`little`/`big`, absent in older files),
//!   `PREFIX/version`; TorchScript adds `PREFIX/constants.pkl` with `PREFIX/constants/KEY` and `PREFIX/code/`.
//!   Source: `torch/serialization.py` (`_save`, `_load`) and `caffe2/serialize/inline_container.cc`.
//! - legacy (`_use_new_zipfile_serialization=False`, torch < 1.6): five pickles back to back (the magic number
//!   `0x1950a86a20f9469cfc6c`, the protocol version 1001, a sys-info dict with `little_endian` and
//!   `type_sizes`, the object, the sorted list of storage keys), then for each key in that order an int64
//!   element count and the storage's raw bytes. Source: `torch/serialization.py` (`_legacy_save`,
//!   `_legacy_load`).
//! - tar (torch 0.1): refused with a clear error.

use super::pickle::{self, Limits, Pickle};
use super::rebuild::{flatten, Flattened, Naming, ScriptClasses, TensorRef};
use crate::mmap::MappedFile;
use lbrx_core::{Error, Location, Malformed, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Where a storage's bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Raw in the file at this absolute offset (a stored zip member, a legacy record).
    Mapped(u64),
    /// In a deflated zip member (its index in the archive), decompressed on demand.
    Deflated(usize),
}

/// One storage: where its bytes are and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoragePlace {
    /// Where.
    pub place: Place,
    /// Bytes available.
    pub nbytes: u64,
}

/// What a checkpoint holds, resolved down to byte places.
#[derive(Debug)]
pub(super) struct Opened {
    /// Container kind, for people (`zip`, `legacy`, `torchscript`).
    pub kind: &'static str,
    /// Tensors as flattening found them.
    pub tensors: Vec<TensorRef>,
    /// Storage places by storage key (the key a [`TensorRef`] names; legacy views resolved to their root).
    pub storages: BTreeMap<String, StoragePlace>,
    /// Whether stored values are big-endian.
    pub big_endian: bool,
    /// The zip archive, when a member is deflated.
    pub archive: Option<zip::ZipArchive<File>>,
    /// Skipped objects, for people.
    pub warnings: Vec<String>,
}

/// Largest pickle (`data.pkl`) accepted: a million-tensor checkpoint's is ~100 MB.
const PICKLE_CAP: u64 = 1 << 30;
/// Largest TorchScript `code/` file read for its `__parameters__` declarations.
const CODE_CAP: u64 = 64 << 20;
/// Legacy torch's magic number (the first pickle of a legacy file).
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

fn malformed(path: &Path, offset: Option<u64>, what: impl Into<String>) -> Error {
    let mut loc = Location::file(path);
    loc.offset = offset;
    Error::malformed(loc, Malformed::Other(what.into()))
}

/// A pickle error as an lbrx error naming the file.
pub(crate) fn pickle_err(path: &Path, e: pickle::PickleError) -> Error {
    match e {
        pickle::PickleError::Malicious { offset, global } => Error::malformed(
            Location::file(path).at(offset),
            Malformed::Malicious { global },
        ),
        pickle::PickleError::Malformed { offset, .. }
        | pickle::PickleError::Limit { offset, .. } => Error::malformed(
            Location::file(path).at(offset),
            Malformed::Other(e.to_string()),
        ),
    }
}

/// Opens the container of `map`.
pub(super) fn open(map: &MappedFile) -> Result<Opened> {
    let path = map.path();
    let b = map.bytes();
    if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        return open_zip(map);
    }
    if b.len() >= 262 && &b[257..262] == b"ustar" {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what:
                "a tar checkpoint of torch 0.1 (before the legacy format); load it with that torch \
                   version and save it again with a current one"
                    .into(),
        });
    }
    open_legacy(map)
}

fn zip_err(path: &Path, e: zip::result::ZipError) -> Error {
    malformed(path, None, format!("zip: {e}"))
}

/// The bytes of zip member `index`: borrowed when stored, inflated (at most `cap` bytes, never past the
/// declared size) when deflated.
fn member_bytes<'m>(
    map: &'m MappedFile,
    zip: &mut zip::ZipArchive<File>,
    index: usize,
    cap: u64,
) -> Result<std::borrow::Cow<'m, [u8]>> {
    let path = map.path();
    let f = zip.by_index(index).map_err(|e| zip_err(path, e))?;
    let name = f.name().to_string();
    let size = f.size();
    if size > cap {
        return Err(Error::malformed(
            Location::file(path).tensor(&name),
            Malformed::HeaderTooLarge {
                header_len: size,
                cap,
            },
        ));
    }
    check_member(path, &f)?;
    if f.compression() == zip::CompressionMethod::Stored {
        let start = f.data_start();
        let r = map.range(start, size);
        if r.len() as u64 != size {
            return Err(malformed(
                path,
                Some(start),
                format!("member '{name}' runs past the end"),
            ));
        }
        return Ok(std::borrow::Cow::Borrowed(r));
    }
    let mut out = Vec::new();
    let mut f = f;
    (&mut f)
        .take(size)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, "decompress", e))?;
    check_inflated(path, &name, out.len() as u64, size, &mut f)?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Checks that a member inflated to exactly its declared size: not fewer bytes, and not one byte more (a
/// deflate bomb behind a small declared size is refused, having inflated only the declared bytes).
pub(super) fn check_inflated(
    path: &Path,
    name: &str,
    got: u64,
    size: u64,
    rest: &mut impl Read,
) -> Result<()> {
    let what = if got != size {
        "inflates to fewer bytes than declared"
    } else {
        let mut one = [0u8; 1];
        match rest.read(&mut one) {
            Ok(0) => return Ok(()),
            Ok(_) => "inflates past its declared size",
            Err(e) => return Err(Error::io(path, "decompress", e)),
        }
    };
    Err(malformed(path, None, format!("zip member '{name}' {what}")))
}

/// Refuses members whose declared size cannot come from their stored bytes (DEFLATE expands at most
/// ~1032:1), or whose method lbrx does not read.
fn check_member(path: &Path, f: &zip::read::ZipFile<'_, File>) -> Result<()> {
    let limit = match f.compression() {
        zip::CompressionMethod::Stored => f.compressed_size(),
        zip::CompressionMethod::Deflated => f
            .compressed_size()
            .saturating_mul(1032)
            .saturating_add(4096),
        other => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("zip member '{}' compressed with {other}", f.name()),
            })
        }
    };
    if f.size() > limit {
        return Err(malformed(
            path,
            Some(f.header_start()),
            format!(
                "zip member '{}' declares {} bytes, impossible from {} stored bytes",
                f.name(),
                f.size(),
                f.compressed_size()
            ),
        ));
    }
    Ok(())
}

fn parse_pickle(path: &Path, bytes: &[u8], base: u64) -> Result<Pickle> {
    pickle::parse(bytes, base, Limits::default()).map_err(|e| pickle_err(path, e))
}

fn open_zip(map: &MappedFile) -> Result<Opened> {
    let path = map.path();
    let file = crate::mmap::open_read_only(path)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| zip_err(path, e))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    // The object pickle: `PREFIX/data.pkl` (the shortest such name), the prefix being any one folder.
    let pkl = names
        .iter()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            what: "a zip archive without data.pkl (not a torch.save or TorchScript file)".into(),
        })?
        .clone();
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    let index = |zip: &zip::ZipArchive<File>, n: &str| zip.index_for_name(n);
    let script = names
        .iter()
        .any(|n| n.starts_with(&format!("{prefix}code/")))
        || index(&zip, &format!("{prefix}constants.pkl")).is_some();
    let big_endian = match index(&zip, &format!("{prefix}byteorder")) {
        Some(i) => {
            let b = member_bytes(map, &mut zip, i, 16)?;
            match b.as_ref() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(malformed(
                        path,
                        None,
                        format!("byteorder record says '{}'", String::from_utf8_lossy(other)),
                    ))
                }
            }
        }
        None => false,
    };
    let mut tensors = Vec::new();
    let mut warnings = Vec::new();
    let mut storages = BTreeMap::new();
    let mut any_deflated = false;
    let pickles: Vec<(String, &str, &str)> = if script {
        vec![
            (pkl.clone(), "data", ""),
            (format!("{prefix}constants.pkl"), "constants", "CONSTANTS"),
        ]
    } else {
        vec![(pkl.clone(), "data", "")]
    };
    for (member, folder, name_prefix) in pickles {
        let Some(i) = index(&zip, &member) else {
            continue;
        };
        let base = zip.by_index(i).map_err(|e| zip_err(path, e))?.data_start();
        let bytes = member_bytes(map, &mut zip, i, PICKLE_CAP)?;
        let p = parse_pickle(path, &bytes, base)?;
        let classes = if script && folder == "data" {
            script_classes(map, &mut zip, &prefix, &p)?
        } else {
            ScriptClasses::new()
        };
        let naming = if script {
            Naming::Script
        } else {
            Naming::Plain
        };
        let Flattened {
            tensors: mut found,
            warnings: w,
        } = if folder == "constants" {
            flatten_constants(&p).map_err(|e| malformed(path, None, e))?
        } else {
            flatten(&p, p.root, name_prefix, naming, &classes)
                .map_err(|e| malformed(path, None, e))?
        };
        warnings.extend(w);
        for t in &mut found {
            let member = format!("{prefix}{folder}/{}", t.storage.key);
            let key = format!("{folder}/{}", t.storage.key);
            if !storages.contains_key(&key) {
                let j = index(&zip, &member).ok_or_else(|| {
                    Error::malformed(
                        Location::file(path).tensor(&t.name),
                        Malformed::Other(format!(
                            "its storage record '{member}' is not in the archive"
                        )),
                    )
                })?;
                let f = zip.by_index(j).map_err(|e| zip_err(path, e))?;
                check_member(path, &f)?;
                let place = if f.compression() == zip::CompressionMethod::Stored {
                    if f.data_start()
                        .checked_add(f.size())
                        .is_none_or(|e| e > map.len())
                    {
                        return Err(malformed(
                            path,
                            Some(f.data_start()),
                            format!("'{member}' runs past the end"),
                        ));
                    }
                    Place::Mapped(f.data_start())
                } else {
                    any_deflated = true;
                    Place::Deflated(j)
                };
                storages.insert(
                    key.clone(),
                    StoragePlace {
                        place,
                        nbytes: f.size(),
                    },
                );
            }
            t.storage.key = key;
        }
        tensors.extend(found);
    }
    Ok(Opened {
        kind: if script { "torchscript" } else { "zip" },
        tensors,
        storages,
        big_endian,
        archive: any_deflated.then_some(zip),
        warnings,
    })
}

/// `constants.pkl`: a tuple of constants; its tensors are named `CONSTANTS.cN` as TorchScript code names them.
fn flatten_constants(p: &Pickle) -> std::result::Result<Flattened, String> {
    let mut out = Flattened::default();
    let items = p.seq(p.root).map(|s| s.to_vec()).unwrap_or_default();
    for (i, id) in items.into_iter().enumerate() {
        let f = flatten(
            p,
            id,
            &format!("CONSTANTS.c{i}"),
            Naming::Plain,
            &ScriptClasses::new(),
        )?;
        out.tensors.extend(f.tensors);
        out.warnings.extend(f.warnings);
    }
    Ok(out)
}

/// The `__parameters__` and `__buffers__` lists that the TorchScript classes the pickle names declare in
/// `code/` (only the files of those classes, read as text for those two declarations; nothing in `code/` is
/// run or otherwise interpreted).
fn script_classes(
    map: &MappedFile,
    zip: &mut zip::ZipArchive<File>,
    prefix: &str,
    p: &Pickle,
) -> Result<ScriptClasses> {
    let mut out = ScriptClasses::new();
    let modules: std::collections::BTreeSet<&str> = p
        .nodes
        .iter()
        .filter_map(|n| match n {
            pickle::Node::Global { module, .. } if module.starts_with("__torch__.") => {
                Some(module.as_str())
            }
            _ => None,
        })
        .collect();
    for module in modules {
        let rel = module.replace('.', "/");
        let Some(i) = zip.index_for_name(&format!("{prefix}code/{rel}.py")) else {
            continue;
        };
        let text = member_bytes(map, zip, i, CODE_CAP)?;
        let text = String::from_utf8_lossy(&text);
        let mut class: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("class ") {
                class = rest
                    .split(['(', ':'])
                    .next()
                    .map(|c| format!("{module}.{}", c.trim()));
                continue;
            }
            let Some(c) = &class else { continue };
            let t = line.trim();
            for (key, slot) in [("__parameters__", 0), ("__buffers__", 1)] {
                if let Some(list) = t.strip_prefix(key).and_then(|r| r.trim().strip_prefix('=')) {
                    let names: Vec<String> = list
                        .split('"')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect();
                    let e = out.entry(c.clone()).or_default();
                    if slot == 0 {
                        e.0 = names;
                    } else {
                        e.1 = names;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn open_legacy(map: &MappedFile) -> Result<Opened> {
    let path = map.path();
    let b = map.bytes();
    let not_torch = || {
        Error::Unsupported {
        path: path.to_path_buf(),
        what: "not a PyTorch checkpoint (neither a torch zip archive nor a legacy pickle with torch's \
               magic number)"
            .into(),
    }
    };
    // A bare pickle is what torch.load would unpickle first: a code-running global in it is reported as such.
    let magic = match pickle::parse(b, 0, Limits::default()) {
        Ok(p) => p,
        Err(e @ pickle::PickleError::Malicious { .. }) => return Err(pickle_err(path, e)),
        Err(_) => return Err(not_torch()),
    };
    let magic_ok = match magic.node(magic.root) {
        pickle::Node::BigInt(v) => {
            v.len() <= 16 && {
                let mut a = [0u8; 16];
                a[..v.len()].copy_from_slice(v);
                u128::from_le_bytes(a) == LEGACY_MAGIC
            }
        }
        _ => false,
    };
    if !magic_ok {
        return Err(not_torch());
    }
    let mut at = magic.consumed;
    let next = |at: &mut usize| -> Result<Pickle> {
        let p = parse_pickle(path, &b[*at..], *at as u64)?;
        *at += p.consumed;
        Ok(p)
    };
    let version = next(&mut at)?;
    if version.int(version.root) != Some(1001) {
        return Err(malformed(path, None, "legacy protocol version is not 1001"));
    }
    let sys = next(&mut at)?;
    let mut big_endian = false;
    if let pickle::Node::Dict(items) = sys.node(sys.root) {
        for &(k, v) in items {
            if sys.str(k) == Some("little_endian") {
                big_endian = sys.int(v) == Some(0);
            }
        }
    }
    let obj_at = at;
    let obj = next(&mut at)?;
    let found = flatten(&obj, obj.root, "", Naming::Plain, &ScriptClasses::new())
        .map_err(|e| malformed(path, Some(obj_at as u64), e))?;
    let keys_p = next(&mut at)?;
    let keys: Vec<String> = keys_p
        .seq(keys_p.root)
        .ok_or_else(|| malformed(path, Some(at as u64), "storage key list is not a list"))?
        .iter()
        .map(|&k| keys_p.key_str(k))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed(path, Some(at as u64), "storage keys are not strings"))?;
    // Element size of each root storage, from the tensors that name it.
    let mut elem: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for t in &found.tensors {
        let size = t.storage.dtype.info().type_size as u64;
        elem.insert(&t.storage.key, (size, t.storage.numel));
    }
    let mut storages = BTreeMap::new();
    let mut pos = at as u64;
    for k in &keys {
        let Some(&(size, numel)) = elem.get(k.as_str()) else {
            return Err(malformed(
                path,
                Some(pos),
                format!("storage '{k}' is named by no tensor, so its record size is unknown"),
            ));
        };
        let n = map.range(pos, 8);
        if n.len() != 8 {
            return Err(Error::malformed(
                Location::file(path).at(pos),
                Malformed::Truncated {
                    needed: pos + 8,
                    actual: map.len(),
                },
            ));
        }
        let arr: [u8; 8] = n.try_into().expect("8 bytes");
        let count = if big_endian {
            u64::from_be_bytes(arr)
        } else {
            u64::from_le_bytes(arr)
        };
        if count != numel {
            return Err(malformed(
                path,
                Some(pos),
                format!("storage '{k}' record holds {count} elements, its tensors say {numel}"),
            ));
        }
        let nbytes = count
            .checked_mul(size)
            .filter(|&n| pos + 8 + n <= map.len())
            .ok_or_else(|| {
                Error::malformed(
                    Location::file(path).at(pos),
                    Malformed::Truncated {
                        needed: pos
                            .saturating_add(8)
                            .saturating_add(count.saturating_mul(size)),
                        actual: map.len(),
                    },
                )
            })?;
        storages.insert(
            k.clone(),
            StoragePlace {
                place: Place::Mapped(pos + 8),
                nbytes,
            },
        );
        pos += 8 + nbytes;
    }
    Ok(Opened {
        kind: "legacy",
        tensors: found.tensors,
        storages,
        big_endian,
        archive: None,
        warnings: found.warnings,
    })
}

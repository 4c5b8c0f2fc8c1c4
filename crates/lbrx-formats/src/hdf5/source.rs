//! The HDF5 file as a [`Source`](lbrx_core::Source): datasets mapped where stored raw and little-endian,
//! copied otherwise; a Keras `.keras` zip's `model.weights.h5` read through the zip (CRC checked); the layer
//! names of the model config as metadata `keras.layers`.

use super::{parse, Dataset};
use crate::mmap::MappedFile;
use crate::stored::{StoredBuilder, StoredSource};
use lbrx_core::{Error, Format, Location, Malformed, Result, TensorInfo, Value, ValueKind};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Opens an HDF5 file (`.h5`, `.hdf5`) or a Keras `.keras` zip.
pub fn open(path: &Path) -> Result<StoredSource> {
    let map = Arc::new(MappedFile::open(path)?);
    let mut b = StoredBuilder::new(Format::Hdf5, path);
    let file = b.file(map.clone());
    let keras = if map.bytes().starts_with(b"PK") {
        Some(keras_zip(path, &map)?)
    } else {
        None
    };
    // the HDF5 bytes: the file, a stored member of the zip in place, or an inflated member
    let (base, inflated) = match &keras {
        Some(k) => (k.start, k.inflated.as_deref()),
        None => (0, None),
    };
    let buf = inflated.unwrap_or(&map.bytes()[base..]);
    let parsed = parse(buf, path)?;
    b.warnings = parsed.warnings;
    let config = parsed
        .model_config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    let layers = keras
        .as_ref()
        .and_then(|k| k.layers.clone())
        .or_else(|| config.as_ref().and_then(layer_names));
    if let Some(layers) = layers {
        b.metadata.insert("keras.layers", layers);
    }
    for mut d in parsed.datasets {
        let bytes = match (d.owned.take(), &d.data) {
            (Some(bytes), _) => bytes,
            (None, Some(r)) if inflated.is_none() && !d.big_endian => {
                b.mapped(TensorInfo {
                    len: r.len() as u64,
                    offset: (base + r.start) as u64,
                    name: d.name,
                    dtype: d.dtype,
                    shape: d.shape,
                    file,
                });
                continue;
            }
            (None, Some(r)) => buf[r.clone()].to_vec(),
            (None, None) => zeros(&d),
        };
        push_owned(&mut b, d, bytes)?;
    }
    b.finish()
}

/// Most bytes of zeros an unwritten dataset is given.
const ZEROS_CAP: u64 = 1 << 30;

fn zeros(d: &Dataset) -> Vec<u8> {
    let n = d.dtype.byte_len(&d.shape).unwrap_or(0).min(ZEROS_CAP);
    vec![0; n as usize]
}

fn push_owned(b: &mut StoredBuilder, d: Dataset, mut bytes: Vec<u8>) -> Result<()> {
    if d.big_endian {
        crate::stored::swap_elements(d.dtype, &mut bytes);
    }
    b.owned(d.name, d.dtype, d.shape, bytes);
    Ok(())
}

/// Where a `.keras` zip keeps its weights, and the layer names of its `config.json`.
struct KerasZip {
    /// Offset of `model.weights.h5` in the file when it is stored (read in place).
    start: usize,
    /// Its bytes when it is deflated.
    inflated: Option<Vec<u8>>,
    /// `keras.layers`.
    layers: Option<Value>,
}

/// `model.weights.h5` of a `.keras` zip, its CRC-32 checked (over the mapped bytes when stored, by the zip
/// reader when deflated), and the layer names of `config.json`.
fn keras_zip(path: &Path, map: &MappedFile) -> Result<KerasZip> {
    let zerr = |e: zip::result::ZipError| {
        Error::malformed(Location::file(path), Malformed::Other(format!("zip: {e}")))
    };
    let name = "model.weights.h5";
    let f = crate::mmap::open_read_only(path)?;
    let mut z = zip::ZipArchive::new(f).map_err(zerr)?;
    let (start, inflated) = {
        let mut m = match z.by_name(name) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    what: "zip without model.weights.h5 (not a Keras 3 .keras file)".into(),
                })
            }
            Err(e) => return Err(zerr(e)),
        };
        let loc = || Location::file(path).tensor(name);
        if m.compression() == zip::CompressionMethod::Stored {
            let (start, size) = (m.data_start(), m.size());
            if start.checked_add(size).is_none_or(|e| e > map.len()) {
                return Err(Error::malformed(
                    loc().at(start),
                    Malformed::Truncated {
                        needed: start.saturating_add(size),
                        actual: map.len(),
                    },
                ));
            }
            let computed = crc32fast::hash(map.range(start, size));
            if computed != m.crc32() {
                return Err(Error::malformed(
                    loc().at(start),
                    Malformed::Checksum {
                        what: "zip member".into(),
                        stored: m.crc32(),
                        computed,
                    },
                ));
            }
            (start as usize, None)
        } else {
            // a declared size beyond what the stored bytes can inflate to is a lie; refuse before allocating
            if m.size()
                > m.compressed_size()
                    .saturating_mul(1032)
                    .saturating_add(4096)
                || m.compressed_size() > map.len()
            {
                return Err(Error::malformed(
                    loc(),
                    Malformed::Other(format!(
                        "member declares {} bytes from {} stored",
                        m.size(),
                        m.compressed_size()
                    )),
                ));
            }
            let mut out = Vec::with_capacity(m.size() as usize);
            m.read_to_end(&mut out).map_err(|e| {
                Error::malformed(loc(), Malformed::Other(format!("zip member: {e}")))
            })?;
            (0, Some(out))
        }
    };
    let mut config = Vec::new();
    let layers = match z.by_name("config.json") {
        Ok(mut c) if c.size() < 1 << 30 => c
            .read_to_end(&mut config)
            .ok()
            .and_then(|_| serde_json::from_slice::<serde_json::Value>(&config).ok())
            .and_then(|c| layer_names(&c)),
        _ => None,
    };
    Ok(KerasZip {
        start,
        inflated,
        layers,
    })
}

/// The layer names of a Keras model config (`config.layers[].config.name`, Keras 2 and 3).
fn layer_names(c: &serde_json::Value) -> Option<Value> {
    let names: Vec<Value> = c
        .pointer("/config/layers")?
        .as_array()?
        .iter()
        .filter_map(|l| {
            let n = l.pointer("/config/name").or_else(|| l.get("name"))?;
            n.as_str().map(|s| Value::Str(s.into()))
        })
        .collect();
    Some(Value::Array(ValueKind::Str, names))
}

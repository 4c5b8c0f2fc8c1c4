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
    if map.bytes().starts_with(b"PK") {
        let (weights, config) = keras_zip(path)?;
        let parsed = parse(&weights, path)?;
        if let Some(layers) = config {
            b.metadata.insert("keras.layers", layers);
        }
        b.warnings = parsed.warnings;
        for d in parsed.datasets {
            let bytes = d
                .data
                .clone()
                .map_or_else(|| zeros(&d), |r| weights[r].to_vec());
            push_owned(&mut b, d, bytes)?;
        }
        return b.finish();
    }
    let file = b.file(map.clone());
    let parsed = parse(map.bytes(), path)?;
    b.warnings = parsed.warnings;
    let config = parsed
        .model_config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    if let Some(layers) = config.as_ref().and_then(layer_names) {
        b.metadata.insert("keras.layers", layers);
    }
    for mut d in parsed.datasets {
        if let Some(bytes) = d.owned.take() {
            push_owned(&mut b, d, bytes)?;
            continue;
        }
        match (&d.data, d.big_endian) {
            (Some(r), false) => b.mapped(TensorInfo {
                len: r.len() as u64,
                offset: r.start as u64,
                name: d.name,
                dtype: d.dtype,
                shape: d.shape,
                file,
            }),
            (Some(r), true) => {
                let bytes = map.bytes()[r.clone()].to_vec();
                push_owned(&mut b, d, bytes)?;
            }
            (None, _) => {
                let bytes = zeros(&d);
                push_owned(&mut b, d, bytes)?;
            }
        }
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
        for c in bytes.chunks_exact_mut(d.dtype.info().type_size as usize) {
            c.reverse();
        }
    }
    b.owned(d.name, d.dtype, d.shape, bytes);
    Ok(())
}

/// `model.weights.h5` of a `.keras` zip (its CRC checked by reading it whole) and the layer names of its
/// `config.json`.
fn keras_zip(path: &Path) -> Result<(Vec<u8>, Option<Value>)> {
    let zerr = |e: zip::result::ZipError| {
        Error::malformed(Location::file(path), Malformed::Other(format!("zip: {e}")))
    };
    let f = crate::mmap::open_read_only(path)?;
    let size = f.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
    let mut z = zip::ZipArchive::new(f).map_err(zerr)?;
    let mut read = |name: &str| -> Result<Option<Vec<u8>>> {
        let mut m = match z.by_name(name) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(zerr(e)),
        };
        // a declared size beyond what the stored bytes can inflate to is a lie; refuse before allocating
        if m.size()
            > m.compressed_size()
                .saturating_mul(1032)
                .saturating_add(4096)
            || m.compressed_size() > size
        {
            return Err(Error::malformed(
                Location::file(path).tensor(name),
                Malformed::Other(format!(
                    "member declares {} bytes from {} stored",
                    m.size(),
                    m.compressed_size()
                )),
            ));
        }
        let mut out = Vec::with_capacity(m.size() as usize);
        m.read_to_end(&mut out).map_err(|e| {
            Error::malformed(
                Location::file(path).tensor(name),
                Malformed::Other(format!("zip member: {e}")),
            )
        })?;
        Ok(Some(out))
    };
    let weights = read("model.weights.h5")?.ok_or_else(|| Error::Unsupported {
        path: path.to_path_buf(),
        what: "zip without model.weights.h5 (not a Keras 3 .keras file)".into(),
    })?;
    let layers = read("config.json")?
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
        .and_then(|c| layer_names(&c));
    Ok((weights, layers))
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

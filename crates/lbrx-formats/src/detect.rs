//! Format detection: magic bytes first, then directory layout, then file extension.

use lbrx_core::{Error, Format, Result};
use std::io::Read;
use std::path::Path;

/// Detects the format of a file or model directory.
pub fn detect(path: &Path) -> Result<Format> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // a TensorFlow checkpoint is named by its prefix, which is no file itself
        Err(_) if Path::new(&format!("{}.index", path.display())).is_file() => {
            return Ok(Format::TensorFlow)
        }
        Err(e) => return Err(Error::io(path, "open", e)),
    };
    if meta.is_dir() {
        return detect_dir(path);
    }
    let mut head = [0u8; 16];
    let mut f = crate::mmap::open_read_only(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(path, "read", e)),
        }
    }
    if let Some(fmt) = detect_magic(&head[..n], meta.len()) {
        return Ok(fmt);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => Ok(Format::Safetensors),
        "gguf" => Ok(Format::Gguf),
        "npz" | "npy" => Ok(Format::Npz),
        "bin" | "pt" | "pth" | "ckpt" | "jit" | "tar" => Ok(Format::PyTorch),
        "onnx" => Ok(Format::Onnx),
        "h5" | "hdf5" | "keras" => Ok(Format::Hdf5),
        "tflite" => Ok(Format::TfLite),
        "index" => Ok(Format::TensorFlow),
        _ => Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: match tf_shard_prefix(path) {
                Some(prefix) => format!(
                    "a shard of a TensorFlow checkpoint: open the checkpoint by its prefix {}",
                    prefix.display()
                ),
                None => "unrecognized file format".into(),
            },
        }),
    }
}

/// The prefix of a TensorFlow checkpoint shard (`P.data-00000-of-00002` next to `P.index`).
fn tf_shard_prefix(path: &Path) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_str()?;
    let (prefix, rest) = name.rsplit_once(".data-")?;
    let (a, b) = rest.split_once("-of-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let p = path.with_file_name(prefix);
    Path::new(&format!("{}.index", p.display()))
        .is_file()
        .then_some(p)
}

/// Recognizes a format from a file's first bytes (up to 16) and its size.
pub fn detect_magic(head: &[u8], file_size: u64) -> Option<Format> {
    if head.starts_with(b"GGUF") || head.starts_with(b"FUGG") {
        return Some(Format::Gguf);
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Some(Format::Hdf5);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Some(Format::Npz);
    }
    if head.len() >= 8 && head.get(4..8) == Some(b"TFL3") {
        return Some(Format::TfLite);
    }
    if head.len() >= 9 {
        // SafeTensors: a plausible little-endian header length followed by '{'.
        let n = u64::from_le_bytes(head[..8].try_into().ok()?);
        if head[8] == b'{' && n >= 2 && n.checked_add(8).is_some_and(|end| end <= file_size) {
            return Some(Format::Safetensors);
        }
    }
    // Legacy torch.save: a pickle (any protocol) of torch's magic number 0x1950a86a20f9469cfc6c as LONG1.
    if head.len() >= 14
        && head[0] == 0x80
        && head[2..14]
            == [
                0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
            ]
    {
        return Some(Format::PyTorch);
    }
    // Other zip (npz, PyTorch, .keras) and pickle files are told apart by their extension.
    None
}

fn detect_dir(dir: &Path) -> Result<Format> {
    let names = crate::sharded::list_dir(dir)?;
    let has = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(n));
    if has(&|n| n.ends_with(".safetensors") || n.ends_with(".safetensors.index.json")) {
        Ok(Format::SafetensorsDir)
    } else if has(&|n| n.ends_with(".bin.index.json"))
        || !crate::pytorch::weight_files(&names).is_empty()
    {
        Ok(Format::PyTorchDir)
    } else if has(&|n| n == "saved_model.pb" || n == "checkpoint" || n.ends_with(".index")) {
        Ok(Format::TensorFlow)
    } else {
        Err(Error::Unsupported {
            path: dir.to_path_buf(),
            what: "directory holds no model lbrx recognizes (no *.safetensors, no pytorch_model*.bin, no index)"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_shard_points_to_its_prefix() {
        let d = tempfile::tempdir().unwrap();
        let shard = d.path().join("model.ckpt.data-00000-of-00002");
        std::fs::write(&shard, b"not a tensor file").unwrap();
        // without its index it is just an unknown file
        assert_eq!(tf_shard_prefix(&shard), None);
        std::fs::write(d.path().join("model.ckpt.index"), b"").unwrap();
        assert_eq!(tf_shard_prefix(&shard), Some(d.path().join("model.ckpt")));
        let err = detect(&shard).unwrap_err().to_string();
        assert!(err.contains("open the checkpoint by its prefix"), "{err}");
        for other in [
            "model.ckpt.data-0-of-x",
            "model.ckpt.data-of-2",
            "model.ckpt.datum-0-of-2",
        ] {
            assert_eq!(tf_shard_prefix(&d.path().join(other)), None, "{other}");
        }
    }
}

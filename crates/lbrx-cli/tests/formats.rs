//! ONNX, TensorFlow (checkpoints, SavedModel), TFLite and Keras (HDF5, `.keras`) sources against the reference
//! packages: every file of the corpus and fresh seeded files those packages write convert to SafeTensors whose
//! tensors equal `onnx.numpy_helper.to_array`, `tf.train.load_checkpoint(...).get_tensor`, the TFLite
//! interpreter's `get_tensor` and `h5py`, bit for bit; `health` passes them. Truncated and corrupted copies
//! (every kind: cut short, bytes flipped in the index, in the data, in the flatbuffer) give exit 1 with a
//! message and never a panic.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn oracle(py: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "formats_oracle.py", args);
}

fn seed() -> String {
    (std::process::id() % 10_000).to_string()
}

/// Converts `src` to SafeTensors and has the reference package compare every tensor; `health` must pass.
fn check(py: &Path, kind: &str, src: &Path, out_dir: &Path) {
    let out = out_dir.join("out.safetensors");
    ok(lbrx()
        .arg("convert")
        .arg(src)
        .arg(&out)
        .args(["--quiet", "--force"]));
    oracle(py, &[&"check", &kind, &src, &out]);
    let h = lbrx().arg("health").arg(src).output().unwrap();
    assert!(
        h.status.success(),
        "health of {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&h.stdout)
    );
}

fn corpus(rel: &str) -> Option<PathBuf> {
    shared_dir().map(|d| d.join("corpus").join(rel))
}

#[test]
fn corpus_files_read_as_the_reference_packages_read_them() {
    let (Some(py), Some(_)) = (formats_python(), shared_dir()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    for (kind, rel) in [
        ("onnx", "onnx/silero_vad.onnx"),
        ("onnx", "onnx-external/cartpole/model.onnx"),
        ("tf", "tf-savedmodel/basic-pitch-nmp"),
        ("tf", "tf-savedmodel/basic-pitch-nmp/variables/variables"),
        ("tflite", "tflite/basic-pitch-nmp.tflite"),
        ("h5", "keras-h5/fer-emotion_model.hdf5"),
        ("h5", "keras-h5/graduate-admission-model.h5"),
        ("keras", "keras-v3/graduate-admission-model.keras"),
    ] {
        check(&py, kind, &corpus(rel).unwrap(), d.path());
    }
    // the object graph's names for the checkpoint keys
    let o = ok(lbrx()
        .arg("inspect")
        .arg(corpus("tf-savedmodel/basic-pitch-nmp").unwrap()));
    assert!(String::from_utf8_lossy(&o.stdout).contains(
        "tensorflow.variable_name.layer_with_weights-0/gamma/.ATTRIBUTES/VARIABLE_VALUE = batch_normalization/gamma"
    ));
}

#[test]
fn seeded_onnx_models_inline_and_external_read_as_onnx_reads_them() {
    let Some(py) = formats_python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("onnx");
    oracle(&py, &[&"make-onnx", &m, &seed()]);
    for f in ["inline.onnx", "one/model.onnx", "per/model.onnx"] {
        check(&py, "onnx", &m.join(f), d.path());
    }
    // external data outside the model's directory is refused
    let evil = d.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let text = std::fs::read(m.join("one/model.onnx")).unwrap();
    let at = text.windows(11).position(|w| w == b"weights.bin").unwrap();
    let mut bad = text.clone();
    bad[at..at + 11].copy_from_slice(b"../../x.bin");
    std::fs::write(evil.join("model.onnx"), &bad).unwrap();
    expect_refused(&evil.join("model.onnx"), "inside the model's directory");
}

#[test]
fn seeded_tensorflow_checkpoints_sharded_and_partitioned_read_as_tensorflow_reads_them() {
    let Some(py) = formats_python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("tf");
    oracle(&py, &[&"make-tf", &m, &seed()]);
    let shards = std::fs::read_dir(m.join("sharded")).unwrap().count();
    assert!(shards > 2, "the sharded checkpoint has {shards} files");
    assert!(m.join("empty/.index").is_file());
    for p in ["sharded/ckpt", "sharded/ckpt.index", "sliced", "empty"] {
        check(&py, "tf", &m.join(p), d.path());
    }
}

#[test]
fn seeded_tflite_and_keras_files_read_as_the_interpreter_and_h5py_read_them() {
    let Some(py) = formats_python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("tfl");
    oracle(&py, &[&"make-tflite", &t, &seed()]);
    check(&py, "tflite", &t.join("float.tflite"), d.path());
    check(&py, "tflite", &t.join("int8.tflite"), d.path());
    let o = ok(lbrx()
        .arg("inspect")
        .arg(t.join("int8.tflite"))
        .arg("--json"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("tflite.quantization.") && text.contains("quantized_dimension"),
        "per-channel quantization parameters are not shown"
    );
    let k = d.path().join("keras");
    oracle(&py, &[&"make-keras", &k, &seed()]);
    check(&py, "keras", &k.join("model.keras"), d.path());
    check(&py, "h5", &k.join("model.h5"), d.path());
    check(&py, "h5", &k.join("model.weights.h5"), d.path());
    // the config's layer names: config.json of a .keras, the model_config attribute of an .h5
    for f in ["model.keras", "model.h5"] {
        let o = ok(lbrx().arg("inspect").arg(k.join(f)));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(r#"keras.layers = ["input_layer","hidden","batch_normalization","out"]"#),
            "{f}: {text}"
        );
    }
}

#[test]
fn seeded_h5py_files_chunked_compressed_big_endian_and_latest_format_read_as_h5py_reads_them() {
    let Some(py) = formats_python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("h5");
    oracle(&py, &[&"make-h5", &h, &seed()]);
    check(&py, "h5", &h.join("earliest.h5"), d.path());
    check(&py, "h5", &h.join("latest.h5"), d.path());
    expect_refused(&h.join("lzf.h5"), "lzf filter");
    expect_refused(&h.join("latest-chunked.h5"), "chunk indexes");
}

/// `lbrx inspect` and `lbrx convert` of `path` fail with exit 1, a message containing `needle`, no panic.
fn expect_refused(path: &Path, needle: &str) {
    let out = tempfile::tempdir().unwrap();
    for args in [
        vec!["inspect".into(), path.as_os_str().to_owned()],
        vec![
            "convert".into(),
            path.as_os_str().to_owned(),
            out.path().join("o.safetensors").into_os_string(),
        ],
    ] {
        let o = lbrx().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: '{needle}' not in: {err}");
    }
}

/// A copy of `src` (file or directory) in `dir`, writable.
fn copy_of(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    if src.is_dir() {
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            copy_of(&e.unwrap().path(), &dst);
        }
    } else {
        std::fs::copy(src, &dst).unwrap();
        let mut p = std::fs::metadata(&dst).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        p.set_readonly(false);
        std::fs::set_permissions(&dst, p).unwrap();
    }
    dst
}

fn damage(file: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(file).unwrap();
    f(&mut b);
    std::fs::write(file, b).unwrap();
}

#[test]
fn damaged_files_give_a_clear_error_and_never_a_panic() {
    let Some(_) = shared_dir() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // TensorBundle: a flipped byte in a tensor is its crc32c, in the index a block's crc32c
    let tf = copy_of(&corpus("tf-savedmodel/basic-pitch-nmp").unwrap(), d.path());
    let data = tf.join("variables/variables.data-00000-of-00001");
    damage(&data, |b| b[5000] ^= 0x40);
    expect_refused(&tf, "checksum");
    let h = lbrx().arg("health").arg(&tf).output().unwrap();
    assert_eq!(h.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&h.stdout).contains("checksum-mismatch"));
    std::fs::copy(
        corpus("tf-savedmodel/basic-pitch-nmp/variables/variables.data-00000-of-00001").unwrap(),
        &data,
    )
    .unwrap();
    damage(&tf.join("variables/variables.index"), |b| b[100] ^= 1);
    expect_refused(&tf, "checksum");
    damage(&data, |b| b.truncate(b.len() / 2));
    expect_refused(&tf.join("variables/variables"), "");

    // a .keras zip: a flipped byte in model.weights.h5 is its CRC-32
    let k = copy_of(
        &corpus("keras-v3/graduate-admission-model.keras").unwrap(),
        d.path(),
    );
    damage(&k, |b| {
        let at = b.windows(4).position(|w| w == b"\x89HDF").unwrap();
        b[at + 3000] ^= 1;
    });
    expect_refused(&k, "checksum");

    // every format cut short at many points, and with bytes flipped: an error or a reading, never a panic
    for rel in [
        "onnx/silero_vad.onnx",
        "onnx-external/cartpole/model.onnx",
        "tflite/basic-pitch-nmp.tflite",
        "keras-h5/graduate-admission-model.h5",
        "keras-v3/graduate-admission-model.keras",
        "tf-savedmodel/basic-pitch-nmp/variables/variables.index",
    ] {
        let src = corpus(rel).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = copy_of(&src, dir.path());
        if rel.starts_with("onnx-external") {
            copy_of(&src.with_file_name("model.onnx.data"), dir.path());
        }
        if rel.starts_with("tf-") {
            copy_of(
                &src.with_file_name("variables.data-00000-of-00001"),
                dir.path(),
            );
        }
        let full = std::fs::read(&src).unwrap();
        let n = full.len();
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed().parse::<u64>().unwrap();
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for k in 0..24 {
            let mut b = full.clone();
            if k % 2 == 0 {
                b.truncate((next() as usize) % n);
            } else {
                for _ in 0..4 {
                    let at = (next() as usize) % n;
                    b[at] ^= 1 << (next() % 8);
                }
            }
            std::fs::write(&f, &b).unwrap();
            let o = lbrx().arg("inspect").arg(&f).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                matches!(o.status.code(), Some(0) | Some(1)),
                "{rel} damage {k}: exit {:?}: {err}",
                o.status
            );
            assert!(!err.contains("panicked"), "{rel} damage {k}: {err}");
            if k % 2 == 0 && o.status.code() == Some(1) {
                assert!(!err.trim().is_empty());
            }
        }
        // cut in half: never read as intact
        std::fs::write(&f, &full[..n / 2]).unwrap();
        let o = lbrx().arg("inspect").arg(&f).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{rel} cut in half read as intact");
    }
}

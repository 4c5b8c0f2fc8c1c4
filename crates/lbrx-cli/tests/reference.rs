//! SafeTensors against the reference implementation: files the Python `safetensors` package (with numpy,
//! ml_dtypes and huggingface_hub) writes are read equal, and what lbrx writes is byte-identical to what the
//! reference writes for the same tensors, casts and sharding.

mod common;
use common::*;

const FLOATS: [&str; 6] = ["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn reads_every_dtype_the_reference_writes() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (file, manifest) = (d.path().join("a.safetensors"), d.path().join("a.json"));
    oracle(&py, &[&"all-dtypes", &file, &manifest]);
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let want = want.as_object().unwrap();
    let src = lbrx_formats::open(&file).unwrap();
    assert_eq!(src.tensors().len(), want.len());
    assert_eq!(
        src.metadata().get("format").and_then(|v| v.as_str()),
        Some("pt")
    );
    for (i, t) in src.tensors().iter().enumerate() {
        let w = &want[&t.name];
        assert_eq!(t.dtype.name(), w["dtype"].as_str().unwrap(), "{}", t.name);
        let shape: Vec<u64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
        assert_eq!(
            hex(src.view(i).unwrap().bytes()),
            w["hex"].as_str().unwrap(),
            "{}",
            t.name
        );
    }
}

#[test]
fn copy_is_byte_identical_to_the_reference_writer_and_reads_back() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, manifest, b) = (
        d.path().join("a.safetensors"),
        d.path().join("a.json"),
        d.path().join("b.safetensors"),
    );
    oracle(&py, &[&"all-dtypes", &a, &manifest]);
    ok(lbrx().arg("convert").arg(&a).arg(&b));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    oracle(&py, &[&"verify", &b, &manifest]);
    // Through a directory output too (one shard: model.safetensors, no index).
    let out = d.path().join("dir");
    ok(lbrx().arg("convert").arg(&a).arg(&out));
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(&a).unwrap()
    );
    assert!(!out.join("model.safetensors.index.json").exists());
}

#[test]
fn every_float_cast_matches_numpy_and_ml_dtypes_bit_for_bit() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    oracle(&py, &[&"casts", &d.path()]);
    let mut failures = Vec::new();
    for from in FLOATS {
        for to in FLOATS {
            if from == to {
                continue;
            }
            let src = d.path().join(format!("src-{from}.safetensors"));
            let out = d.path().join(format!("out-{from}-{to}.safetensors"));
            ok(lbrx()
                .args(["convert", "--quiet", "--dtype", to])
                .arg(&src)
                .arg(&out));
            let (ours, theirs) = (
                std::fs::read(&out).unwrap(),
                std::fs::read(d.path().join(format!("exp-{from}-{to}.safetensors"))).unwrap(),
            );
            if ours != theirs {
                let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
                failures.push(format!("{from}->{to}: first differing byte {first:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn sharding_matches_transformers_and_huggingface_hub() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, manifest) = (d.path().join("a.safetensors"), d.path().join("a.json"));
    oracle(&py, &[&"all-dtypes", &a, &manifest]);
    // 100 bytes: many shards, and the 8 KiB tensor alone in an oversized shard; 4000: two shards.
    for max in ["100", "1000", "4000"] {
        let (ours, theirs) = (
            d.path().join(format!("ours-{max}")),
            d.path().join(format!("ref-{max}")),
        );
        std::fs::create_dir(&theirs).unwrap();
        ok(lbrx()
            .args(["convert", "--quiet", "--max-shard-size", max])
            .arg(&a)
            .arg(&ours));
        oracle(&py, &[&"shard", &a, &max, &theirs]);
        assert_same_dir(&ours, &theirs);
        // And the sharded output opens as one model equal to the source.
        let merged = d.path().join(format!("merged-{max}.safetensors"));
        ok(lbrx().arg("convert").arg(&ours).arg(&merged));
        oracle(&py, &[&"verify", &merged, &manifest]);
    }
}

#[test]
fn bundled_example_round_trips_byte_for_byte() {
    // examples/tiny-llama was written by the reference package (examples/make_tiny_llama.py).
    let ex = repo_root().join("examples/tiny-llama");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("copy");
    ok(lbrx().arg("convert").arg(&ex).arg(&out));
    assert_same_dir(&out, &ex);
}

#[test]
fn cast_of_the_example_keeps_everything_else() {
    let ex = repo_root().join("examples/tiny-llama");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f16");
    ok(lbrx()
        .args(["convert", "--dtype", "f16"])
        .arg(&ex)
        .arg(&out));
    let src = lbrx_formats::open(&ex).unwrap();
    let dst = lbrx_formats::open(&out).unwrap();
    assert_eq!(src.tensors().len(), dst.tensors().len());
    for t in dst.tensors() {
        assert_eq!(t.dtype, lbrx_core::DType::F16);
        let s = src.tensors().iter().find(|s| s.name == t.name).unwrap();
        assert_eq!(s.shape, t.shape);
        assert_eq!(s.file, t.file, "{} moved to another shard", t.name);
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "float16");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "special_tokens_map.json",
    ] {
        assert_eq!(
            std::fs::read(ex.join(f)).unwrap(),
            std::fs::read(out.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn npz_and_npy_written_by_numpy_read_equal() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    oracle(&py, &[&"npz", &d.path()]);
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("manifest.json")).unwrap()).unwrap();
    let want = want.as_object().unwrap();
    for archive in ["a.npz", "c.npz"] {
        let src = lbrx_formats::open(&d.path().join(archive)).unwrap();
        assert_eq!(src.tensors().len(), want.len(), "{archive}");
        for (i, t) in src.tensors().iter().enumerate() {
            let w = &want[&t.name];
            assert_eq!(
                t.dtype.name(),
                w["dtype"].as_str().unwrap(),
                "{archive} {}",
                t.name
            );
            let shape: Vec<u64> = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(t.shape, shape, "{archive} {}", t.name);
            assert_eq!(
                hex(src.view(i).unwrap().bytes()),
                w["hex"].as_str().unwrap(),
                "{archive} {}",
                t.name
            );
        }
        // And through a conversion (stored members copy kernel-side, deflated ones are decompressed).
        let out = d.path().join(format!("{archive}.safetensors"));
        ok(lbrx().arg("convert").arg(d.path().join(archive)).arg(&out));
        let st = lbrx_formats::open(&out).unwrap();
        for (i, t) in st.tensors().iter().enumerate() {
            assert_eq!(
                hex(st.view(i).unwrap().bytes()),
                want[&t.name]["hex"].as_str().unwrap(),
                "{archive} -> {}",
                t.name
            );
        }
    }
    let v = lbrx_formats::open(&d.path().join("v.npy")).unwrap();
    assert_eq!(v.tensors()[0].name, "v");
    assert_eq!(
        hex(v.view(0).unwrap().bytes()),
        want["layers.0.weight"]["hex"].as_str().unwrap()
    );
    let out = lbrx()
        .arg("inspect")
        .arg(d.path().join("f.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Fortran-ordered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

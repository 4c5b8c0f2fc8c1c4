//! GGUF against the reference `gguf` package: what `GGUFReader` reports equals `lbrx inspect --json`; a file
//! `GGUFWriter` wrote is re-written byte for byte; big-endian and float conversions keep every value.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn gguf_oracle(py: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "gguf_oracle.py", args);
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Asserts `lbrx inspect --json` of `file` reports what GGUFReader reports.
fn assert_matches_reader(py: &Path, file: &Path, tmp: &Path) {
    let dump = tmp.join("dump.json");
    gguf_oracle(py, &[&"dump", &file, &dump]);
    let want = json_file(&dump);
    let got: Value =
        serde_json::from_slice(&ok(lbrx().args(["inspect", "--json"]).arg(file)).stdout).unwrap();
    let g = &got["gguf"];
    assert_eq!(g["alignment"], want["alignment"], "{}", file.display());
    assert_eq!(g["data_start"], want["data_start"], "{}", file.display());
    let (gk, wk) = (g["kv"].as_array().unwrap(), want["kv"].as_array().unwrap());
    assert_eq!(gk.len(), wk.len(), "{}: KV count", file.display());
    for (a, b) in gk.iter().zip(wk) {
        assert_eq!(a["key"], b["key"]);
        assert_eq!(a["type"], b["type"], "{}", a["key"]);
        if b["type"] == "ARRAY" {
            assert_eq!(a["array_type"], b["array_type"], "{}", a["key"]);
        }
        assert_eq!(a["value"], b["value"], "{}", a["key"]);
    }
    let (gt, wt) = (
        g["tensors"].as_array().unwrap(),
        want["tensors"].as_array().unwrap(),
    );
    assert_eq!(gt.len(), wt.len());
    for (a, b) in gt.iter().zip(wt) {
        for k in ["name", "type_id", "ne", "data_offset", "n_bytes"] {
            assert_eq!(a[k], b[k], "{}: {k}", a["name"]);
        }
    }
}

#[test]
fn inspect_equals_gguf_reader_on_the_corpus_and_on_gguf_writer_files() {
    let (Some(py), Some(shared)) = (python(), shared_dir()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(shared.join("corpus/gguf"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    // Every vocab GGUF shipped with llama.cpp's source, when scripts/build-llama-tools.sh fetched it.
    match std::env::var_os("LBRX_LLAMA_SRC").map(std::path::PathBuf::from) {
        Some(src) if src.join("models").is_dir() => {
            let mut vocab: Vec<_> = std::fs::read_dir(src.join("models"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("ggml-vocab-"))
                        && p.extension().is_some_and(|e| e == "gguf")
                })
                .collect();
            vocab.sort();
            assert!(vocab.len() >= 10, "only {} vocab files", vocab.len());
            files.extend(vocab);
        }
        _ => assert!(
            std::env::var("LBRX_REQUIRE_REFERENCE").as_deref() != Ok("1"),
            "LBRX_LLAMA_SRC is not set"
        ),
    }
    let written = d.path().join("w.gguf");
    gguf_oracle(&py, &[&"write", &written]);
    files.push(written);
    for f in &files {
        assert_matches_reader(&py, f, d.path());
    }
}

#[test]
fn rewriting_a_gguf_writer_file_gives_the_same_bytes() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.gguf"), d.path().join("b.gguf"));
    gguf_oracle(&py, &[&"write", &a]);
    ok(lbrx().arg("convert").arg(&a).arg(&b));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // And the vocab files of the corpus (0 tensors, large string arrays) too, when they end padded.
    if let Some(shared) = shared_dir() {
        let v = shared.join("corpus/gguf/ggml-vocab-llama-spm.gguf");
        let out = d.path().join("v.gguf");
        ok(lbrx().arg("convert").arg(&v).arg(&out));
        assert_matches_reader(&py, &out, d.path());
    }
}

#[test]
fn big_endian_files_read_as_the_little_endian_ones() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (le, be) = (d.path().join("le.gguf"), d.path().join("be.gguf"));
    gguf_oracle(&py, &[&"write", &le, &"--floats"]);
    gguf_oracle(&py, &[&"write", &be, &"--big"]);
    let (a, b) = (
        lbrx_formats::open(&le).unwrap(),
        lbrx_formats::open(&be).unwrap(),
    );
    assert_eq!(a.metadata(), b.metadata());
    assert_eq!(a.tensors().len(), b.tensors().len());
    for (i, t) in a.tensors().iter().enumerate() {
        assert_eq!(t.shape, b.tensors()[i].shape);
        assert_eq!(
            a.view(i).unwrap().bytes(),
            b.view(i).unwrap().bytes(),
            "{}",
            t.name
        );
    }
    // Converting the big-endian file writes a little-endian one equal to the LE original.
    let out = d.path().join("out.gguf");
    ok(lbrx().arg("convert").arg(&be).arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&le).unwrap());
}

#[test]
fn gguf_to_safetensors_and_back_keeps_every_kv_and_tensor() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let (g, st, back) = (
        d.path().join("g.gguf"),
        d.path().join("g.safetensors"),
        d.path().join("back.gguf"),
    );
    gguf_oracle(&py, &[&"write", &g, &"--floats"]);
    ok(lbrx().arg("convert").arg(&g).arg(&st));
    // The reference reads our SafeTensors output: values equal GGUFReader's, shapes row-major.
    let vals = d.path().join("vals.json");
    gguf_oracle(&py, &[&"values", &g, &vals]);
    let want = json_file(&vals);
    let src = lbrx_formats::open(&st).unwrap();
    for (i, t) in src.tensors().iter().enumerate() {
        let w = &want[&t.name];
        let shape: Vec<u64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
        let mut f = vec![0f32; t.elements() as usize];
        lbrx_quant::cast::decode_f32(t.dtype, src.view(i).unwrap().bytes(), &mut f);
        let wv: Vec<f32> = w["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(f, wv, "{}", t.name);
    }
    ok(lbrx().arg("convert").arg(&st).arg(&back));
    let (a, b) = (
        lbrx_formats::open(&g).unwrap(),
        lbrx_formats::open(&back).unwrap(),
    );
    assert_eq!(
        a.metadata(),
        b.metadata(),
        "KVs (order, types, values) differ after the round trip"
    );
    for (i, t) in a.tensors().iter().enumerate() {
        let j = b.tensors().iter().position(|u| u.name == t.name).unwrap();
        assert_eq!(
            (t.dtype, &t.shape),
            (b.tensors()[j].dtype, &b.tensors()[j].shape)
        );
        assert_eq!(
            a.view(i).unwrap().bytes(),
            b.view(j).unwrap().bytes(),
            "{}",
            t.name
        );
    }
    // Quantized tensors cannot go to SafeTensors yet: a clear error, nothing written.
    let q = d.path().join("q.gguf");
    gguf_oracle(&py, &[&"write", &q]);
    let out = lbrx()
        .arg("convert")
        .arg(&q)
        .arg(d.path().join("q.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SafeTensors has no Q8_0 type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.path().join("q.safetensors").exists());
}

#[test]
fn safetensors_model_to_gguf_reads_in_the_reference() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    // The tensors alone (no config.json): names are kept, not mapped through an architecture.
    let plain = d.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    for e in std::fs::read_dir(repo_root().join("examples/tiny-llama")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.contains("safetensors") {
            std::fs::copy(&p, plain.join(&n)).unwrap();
        }
    }
    let out = d.path().join("tiny.gguf");
    ok(lbrx()
        .args(["convert", "--dtype", "f16"])
        .arg(&plain)
        .arg(&out));
    let vals = d.path().join("vals.json");
    gguf_oracle(&py, &[&"values", &out, &vals]);
    let want = json_file(&vals);
    let src = lbrx_formats::open(&plain).unwrap();
    assert_eq!(want.as_object().unwrap().len(), src.tensors().len());
    for (i, t) in src.tensors().iter().enumerate() {
        let mut f32s = vec![0f32; t.elements() as usize];
        lbrx_quant::cast::decode_f32(t.dtype, src.view(i).unwrap().bytes(), &mut f32s);
        // bf16 -> f16 rounds; compare through the same cast.
        let mut f16 = vec![0u8; f32s.len() * 2];
        lbrx_quant::cast::encode_f32(lbrx_core::DType::F16, &f32s, &mut f16);
        let mut expect = vec![0f32; f32s.len()];
        lbrx_quant::cast::decode_f32(lbrx_core::DType::F16, &f16, &mut expect);
        let got: Vec<f32> = want[&t.name]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got, expect, "{}", t.name);
    }
    assert_matches_reader(&py, &out, d.path());
}

#[test]
fn dequantization_equals_gguf_quants_bit_for_bit() {
    let (Some(py), Some(shared)) = (python(), shared_dir()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("golden.gguf");
    gguf_oracle(
        &py,
        &[&"golden-gguf", &shared.join("golden/ggml-quants"), &g],
    );
    let vals = d.path().join("vals.json");
    gguf_oracle(&py, &[&"values", &g, &vals]);
    let want = json_file(&vals);
    let src = lbrx_formats::open(&g).unwrap();
    let types: std::collections::BTreeSet<_> = src.tensors().iter().map(|t| t.dtype).collect();
    assert!(types.len() >= 20, "only {} types in the file", types.len());
    for (dtype, ext) in [("f32", "f32.safetensors"), ("bf16", "bf16.safetensors")] {
        let out = d.path().join(ext);
        ok(lbrx().args(["convert", "--dtype", dtype]).arg(&g).arg(&out));
        let st = lbrx_formats::open(&out).unwrap();
        let mut bad = Vec::new();
        for (i, t) in st.tensors().iter().enumerate() {
            let mut got = vec![0f32; t.elements() as usize];
            lbrx_quant::cast::decode_f32(t.dtype, st.view(i).unwrap().bytes(), &mut got);
            let mut expect: Vec<f32> = want[&t.name]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            if dtype == "bf16" {
                let mut b = vec![0u8; expect.len() * 2];
                lbrx_quant::cast::encode_f32(lbrx_core::DType::BF16, &expect, &mut b);
                lbrx_quant::cast::decode_f32(lbrx_core::DType::BF16, &b, &mut expect);
            }
            let diff = got
                .iter()
                .zip(&expect)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            if diff > 0 {
                bad.push(format!(
                    "{} ({}): {diff} values differ",
                    t.name,
                    src.tensors()
                        .iter()
                        .find(|s| s.name == t.name)
                        .unwrap()
                        .dtype
                ));
            }
        }
        assert!(bad.is_empty(), "--dtype {dtype}:\n{}", bad.join("\n"));
    }
}

fn assert_same_model(a: &Path, b: &Path) {
    let (x, y) = (
        lbrx_formats::open(a).unwrap(),
        lbrx_formats::open(b).unwrap(),
    );
    let strip = |m: &lbrx_core::Metadata| -> Vec<(String, lbrx_core::Value)> {
        m.iter()
            .filter(|(k, _)| !k.starts_with("split."))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    assert_eq!(strip(x.metadata()), strip(y.metadata()), "KVs differ");
    assert_eq!(x.tensors().len(), y.tensors().len());
    for (i, t) in x.tensors().iter().enumerate() {
        let u = &y.tensors()[i];
        assert_eq!((&t.name, t.dtype, &t.shape), (&u.name, u.dtype, &u.shape));
        assert_eq!(
            x.view(i).unwrap().bytes(),
            y.view(i).unwrap().bytes(),
            "{}",
            t.name
        );
    }
}

#[test]
fn split_files_agree_with_llama_gguf_split() {
    let Some(tool) = llama_tool("llama-gguf-split") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let whole = d.path().join("tiny.gguf");
    ok(lbrx()
        .args(["convert", "--quiet", "--dtype", "f16"])
        .arg(repo_root().join("examples/tiny-llama"))
        .arg(&whole));
    // llama-gguf-split's splits open as one model equal to the unsplit file, and merge back into it.
    ok(std::process::Command::new(&tool)
        .args(["--split-max-tensors", "7"])
        .arg(&whole)
        .arg(d.path().join("ref")));
    let first = d.path().join("ref-00001-of-00003.gguf");
    assert_same_model(&whole, &first);
    let merged = d.path().join("merged-by-lbrx.gguf");
    ok(lbrx()
        .arg("convert")
        .arg(d.path().join("ref-00002-of-00003.gguf"))
        .arg(&merged));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    // Our splits merge back with llama-gguf-split --merge into the same model.
    ok(lbrx()
        .args(["convert", "--quiet", "--max-shard-size", "1MB"])
        .arg(&whole)
        .arg(d.path().join("ours.gguf")));
    let ours = d.path().join("ours-00001-of-00004.gguf");
    assert!(ours.is_file());
    let merged2 = d.path().join("merged-by-llama.gguf");
    ok(std::process::Command::new(&tool)
        .arg("--merge")
        .arg(&ours)
        .arg(&merged2));
    assert_same_model(&whole, &merged2);
    // A missing split is a clear error.
    std::fs::remove_file(d.path().join("ours-00003-of-00004.gguf")).unwrap();
    let out = lbrx().arg("inspect").arg(&ours).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ours-00003-of-00004.gguf"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

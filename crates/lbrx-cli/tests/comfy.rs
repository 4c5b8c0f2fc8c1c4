//! Scaled SafeTensors as ComfyUI loads them, against convert-to-quant 1.3.4 (`--simple`, CPU) and
//! comfy-kitchen: for every mode both write (FP8 per tensor, row and block; INT8 per tensor, row and block;
//! NVFP4; MXFP8; with model filters, regexes, `--heur` and `--input-scale`), on fresh seeded bf16, f32 and
//! f16 models, every tensor and the `_quantization_metadata` string equal; ComfyUI's dequantization gives the
//! same tensors on both files and lbrx's own dequantization (`--dtype bf16`) equals it bit for bit. FP8 E5M2
//! equals ComfyUI's own quantizer. The legacy `scaled_fp8` layout migrates as convert-to-quant migrates it and
//! reads as ComfyUI reads the migrated file.

mod common;
use common::*;

fn oracle(py: &std::path::Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "comfy_oracle.py", args);
}

fn seed() -> String {
    (std::process::id() % 10_000).to_string()
}

#[test]
fn every_mode_equals_convert_to_quant_and_dequantizes_as_comfyui() {
    let Some(py) = python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lbrx");
    for dtype in ["bf16", "f32", "f16"] {
        oracle(&py, &[&"suite", &bin, &d.path(), &seed(), &dtype]);
    }
}

#[test]
fn the_legacy_layout_migrates_and_reads_as_comfyui_reads_it() {
    let Some(py) = python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    oracle(
        &py,
        &[&"migrate", &env!("CARGO_BIN_EXE_lbrx"), &d.path(), &seed()],
    );
}

#[test]
fn learned_rounding_lowers_the_subspace_error_of_every_layer_and_repeats() {
    let Some(py) = python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    oracle(&py, &[&"make", &src, &seed(), &"bf16"]);
    for q in [
        &["fp8"][..],
        &["fp8", "--scaling", "row"],
        &["int8", "--scaling", "row"],
    ] {
        let rtn = d.path().join("rtn.safetensors");
        ok(lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&rtn)
            .args(["--quant"])
            .args(q)
            .args(["--quiet", "--force"]));
        let mut outs = Vec::new();
        for run in 0..2 {
            let out = d.path().join(format!("lr{run}.safetensors"));
            let o = ok(lbrx()
                .arg("convert")
                .arg(&src)
                .arg(&out)
                .args(["--quant"])
                .args(q)
                .args([
                    "--learned-rounding",
                    "--rounding-iters",
                    "25",
                    "--rounding-min-k",
                    "4",
                    "--json",
                    "--force",
                ]));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            for l in v["rounding"]["layers"].as_array().unwrap() {
                let (b, a) = (
                    l["subspace_rel_error"]["before"].as_f64().unwrap(),
                    l["subspace_rel_error"]["after"].as_f64().unwrap(),
                );
                assert!(a <= b, "{q:?} {l}");
            }
            outs.push(std::fs::read(&out).unwrap());
        }
        assert!(outs[0] == outs[1], "{q:?}: two runs wrote different bytes");
        oracle(
            &py,
            &[
                &"subspace",
                &src,
                &rtn,
                &d.path().join("lr0.safetensors"),
                &"4",
            ],
        );
    }
}

#[test]
fn health_passes_scaled_files_and_names_a_broken_layer() {
    let Some(py) = python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    write_big(&src, 2, 64 * 96);
    for q in ["fp8", "nvfp4", "mxfp8", "int8"] {
        let out = d.path().join(format!("{q}.safetensors"));
        ok(lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&out)
            .args(["--quant", q, "--quiet"]));
        ok(lbrx().arg("health").arg(&out));
        for how in ["scale", "json", "shape"] {
            let bad = d.path().join(format!("{q}-{how}.safetensors"));
            oracle(&py, &[&"damage", &out, &bad, &how]);
            let h = lbrx().arg("health").arg(&bad).output().unwrap();
            let text = String::from_utf8_lossy(&h.stdout);
            assert_eq!(h.status.code(), Some(1), "{q} {how}: {text}");
            assert!(text.contains("scaled-layer"), "{q} {how}: {text}");
            let c = lbrx()
                .arg("convert")
                .arg(&bad)
                .arg(d.path().join("x.safetensors"))
                .args(["--dtype", "bf16"])
                .output()
                .unwrap();
            assert_eq!(
                c.status.code(),
                Some(1),
                "{q} {how}: a broken layer was dequantized"
            );
        }
    }
}

#[test]
fn a_sharded_source_gives_the_same_file() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    write_big(&src, 6, 64 * 96);
    let dir = d.path().join("shards");
    ok(lbrx()
        .arg("convert")
        .arg(&src)
        .arg(&dir)
        .args(["--max-shard-size", "30KB", "--quiet"]));
    for q in ["fp8", "nvfp4", "mxfp8", "int8"] {
        let (a, b) = (
            d.path().join(format!("a-{q}.safetensors")),
            d.path().join(format!("b-{q}.safetensors")),
        );
        ok(lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&a)
            .args(["--quant", q, "--quiet"]));
        ok(lbrx()
            .arg("convert")
            .arg(&dir)
            .arg(&b)
            .args(["--quant", q, "--quiet"]));
        let (ta, tb) = (tensors_of(&a), tensors_of(&b));
        assert_eq!(ta, tb, "--quant {q} from shards differs");
        assert!(
            ta.keys().any(|k| k.ends_with(".comfy_quant")),
            "{q}: nothing quantized"
        );
    }
}

/// name -> (dtype, shape, bytes) of a SafeTensors file.
fn tensors_of(
    p: &std::path::Path,
) -> std::collections::BTreeMap<String, (String, Vec<u64>, Vec<u8>)> {
    let b = std::fs::read(p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in h.as_object().unwrap() {
        if k == "__metadata__" {
            continue;
        }
        let o = v["data_offsets"].as_array().unwrap();
        let (s, e) = (
            o[0].as_u64().unwrap() as usize,
            o[1].as_u64().unwrap() as usize,
        );
        let shape = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        out.insert(
            k.clone(),
            (
                v["dtype"].as_str().unwrap().to_string(),
                shape,
                b[8 + n + s..8 + n + e].to_vec(),
            ),
        );
    }
    out
}

#[test]
fn dry_run_says_what_happens_to_every_layer_and_why() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    write_big(&src, 3, 200 * 136);
    let out = ok(lbrx()
        .arg("convert")
        .arg(&src)
        .arg(d.path().join("o.safetensors"))
        .args([
            "--quant",
            "fp8",
            "--scaling",
            "block",
            "--dry-run",
            "--json",
        ]));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = plan["layers"].as_array().expect("layers in the plan");
    assert!(!layers.is_empty());
    for l in layers {
        assert!(l["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
        assert!(
            ["quantize", "keep", "remove"].contains(&l["action"].as_str().unwrap()),
            "{l}"
        );
    }
    assert!(!d.path().join("o.safetensors").exists());
}

#[test]
fn bad_requests_are_refused_with_the_choices() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    write_big(&src, 1, 4096);
    for (dst, args, says) in [
        ("o.gguf", &["--quant", "fp8"][..], "SafeTensors"),
        (
            "o.safetensors",
            &["--quant", "fp8", "--scaling", "column"][..],
            "tensor",
        ),
        (
            "o.safetensors",
            &["--quant", "fp8", "--block-size", "64"][..],
            "--scaling block",
        ),
        (
            "o.safetensors",
            &["--quant", "nvfp4", "--scaling", "row"][..],
            "block",
        ),
        (
            "o.safetensors",
            &["--quant", "fp8", "--filter", "nope"][..],
            "flux2",
        ),
        (
            "o.safetensors",
            &["--quant", "fp8", "--dtype", "f32"][..],
            "bf16 or f16",
        ),
        (
            "o.safetensors",
            &["--quant", "fp8", "--exclude", "("][..],
            "--exclude",
        ),
        ("o.safetensors", &["--scaling", "row"][..], "scaled --quant"),
        ("o.safetensors", &["--heur"][..], "scaled --quant"),
        ("o.safetensors", &["--migrate"][..], "scaled_fp8"),
    ] {
        let out = lbrx()
            .arg("convert")
            .arg(&src)
            .arg(d.path().join(dst))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dst} {args:?} was accepted");
        assert!(err.contains(says), "{args:?}: '{err}' does not say {says}");
    }
}

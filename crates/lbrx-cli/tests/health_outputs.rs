//! `lbrx health` on lbrx's own outputs: a GGUF of every `--quant` type, every llama-quantize recipe lbrx writes
//! (with an importance matrix from llama-imatrix), an MLX directory in every quantization mode and SafeTensors
//! of every scaled family and granularity: no warning, no error. (llama.cpp's file-type ids, the types they stand for and the recipes come from one table.)

mod common;
use common::*;
use std::path::Path;

/// Runs `lbrx health --json` on `path` and asserts it found nothing.
fn assert_clean(path: &Path, what: &str) {
    let out = lbrx()
        .arg("health")
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{what}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["findings"], serde_json::json!([]), "{what}: {r}");
    assert_eq!(out.status.code(), Some(0), "{what}");
}

#[test]
fn every_output_type_lbrx_writes_is_healthy() {
    if llama_tool("llama-imatrix").is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/tiny-llama");
    let f16 = d.path().join("f16.gguf");
    ok(lbrx()
        .arg("convert")
        .arg(&example)
        .arg(&f16)
        .args(["--dtype", "f16", "--quiet"]));
    assert_clean(&f16, "F16");
    let im = llama_imatrix(&f16, d.path(), "gguf");

    // every plain --quant type convert writes (those that need an importance matrix exist only as recipes)
    let mut plain = 0;
    for t in lbrx_convert::request::plain_quant_types() {
        let out = d.path().join(format!("plain-{}.gguf", t.name()));
        ok(lbrx()
            .arg("convert")
            .arg(&example)
            .arg(&out)
            .args(["--quant", t.name(), "--quiet"]));
        assert_clean(&out, &format!("--quant {t}"));
        plain += 1;
    }
    assert!(plain >= 20, "only {plain} plain types");

    // every llama-quantize recipe
    let mut recipes = 0;
    for ft in lbrx_convert::ftype::FILE_TYPES.iter().filter(|f| f.recipe) {
        let out = d.path().join(format!("recipe-{}.gguf", ft.name));
        ok(lbrx()
            .arg("quantize")
            .arg(&f16)
            .arg(&out)
            .arg(ft.name)
            .args(["--imatrix", &im]));
        assert_clean(&out, &format!("recipe {}", ft.name));
        recipes += 1;
    }
    assert!(recipes >= 30, "only {recipes} recipes");

    // every scaled family, every granularity, as a file and as a directory
    for family in lbrx_quant::codec::scaled_families() {
        let info = lbrx_quant::scaled::family_named(family).unwrap();
        for scaling in info.granularities {
            for dst in [
                format!("{family}-{scaling}.safetensors"),
                format!("{family}-{scaling}"),
            ] {
                let out = d.path().join(&dst);
                let mut cmd = lbrx();
                cmd.arg("convert").arg(&example).arg(&out).args([
                    "--quant",
                    family,
                    "--scaling",
                    scaling,
                    "--quiet",
                ]);
                if *scaling == "block" && info.pad == 1 {
                    cmd.args(["--block-size", "64"]);
                }
                ok(&mut cmd);
                assert_clean(&out, &dst);
            }
        }
    }

    // every MLX mode (from the codec registry)
    for mode in lbrx_quant::codec::mlx_modes() {
        let out = d.path().join(format!("mlx-{mode}"));
        ok(lbrx()
            .arg("convert")
            .arg(&example)
            .arg(&out)
            .args(["--to", "mlx", "-q", "--q-mode", mode, "--quiet"]));
        assert_clean(&out, &format!("MLX {mode}"));
    }
}

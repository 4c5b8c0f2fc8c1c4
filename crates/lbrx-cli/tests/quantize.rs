//! `lbrx quantize` against `llama-quantize` (built from the llama-cpp-python 0.3.36 sdist): for each recipe,
//! on a reference-converted F16 GGUF of a 12-layer Llama-style model (and a Mixtral-style MoE), the output file
//! is byte-identical: the same tensor types chosen, the same quantized bytes, the same keys in the same order.
//! llama.cpp runs the result.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    py: PathBuf,
    src: PathBuf,
    quantize: PathBuf,
}

fn env() -> Option<Env> {
    Some(Env {
        py: python()?,
        src: llama_src()?,
        quantize: llama_tool("llama-quantize")?,
    })
}

/// A reference F16 GGUF (make_hf_model.py, then convert_hf_to_gguf.py) of `arch` with K-quant-friendly sizes.
fn f16_model(e: &Env, arch: &str, dir: &Path) -> PathBuf {
    let model = dir.join(arch);
    run_oracle(
        &e.py,
        "make_hf_model.py",
        &[
            &arch,
            &model,
            &"--vocab-dir",
            &e.src.join("models"),
            &"--layers",
            &"12",
            &"--hidden",
            &"256",
            &"--inter",
            &"512",
            &"--heads",
            &"4",
            &"--kv-heads",
            &"1",
        ],
    );
    let out = dir.join(format!("{arch}-f16.gguf"));
    ok(Command::new(&e.py)
        .arg(e.src.join("convert_hf_to_gguf.py"))
        .arg(&model)
        .arg("--outfile")
        .arg(&out)
        .args(["--outtype", "f16"]));
    out
}

fn compare(e: &Env, ours: &Path, reference: &Path) {
    if std::fs::read(ours).unwrap() == std::fs::read(reference).unwrap() {
        return;
    }
    let out = ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/gguf_compare.py"))
        .arg(ours)
        .arg(reference));
    panic!(
        "{} differs from llama-quantize's {}:\n{}",
        ours.display(),
        reference.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn check(e: &Env, input: &Path, dir: &Path, recipe: &str, extra: &[&str]) -> PathBuf {
    let tag: String = format!("{recipe}{}", extra.join(""))
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let refp = dir.join(format!("ref-{tag}.gguf"));
    let ours = dir.join(format!("ours-{tag}.gguf"));
    ok(Command::new(&e.quantize)
        .args(extra)
        .arg(input)
        .arg(&refp)
        .args([recipe, "2"]));
    ok(lbrx()
        .arg("quantize")
        .args(extra)
        .arg(input)
        .arg(&ours)
        .args([recipe, "--quiet"]));
    compare(e, &ours, &refp);
    ours
}

#[test]
fn every_recipe_equals_llama_quantize() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let input = f16_model(&e, "llama2", d.path());
    for r in [
        "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q6_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q2_K",
        "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "TQ1_0", "TQ2_0", "IQ4_NL", "IQ4_XS", "Q1_0",
        "Q2_0", "IQ3_S", "IQ3_M",
    ] {
        check(&e, &input, d.path(), r, &[]);
    }
    check(&e, &input, d.path(), "Q4_K_M", &["--pure"]);
    check(&e, &input, d.path(), "Q4_K_M", &["--leave-output-tensor"]);
    check(
        &e,
        &input,
        d.path(),
        "Q4_K_M",
        &["--tensor-type", "attn_v=q8_0"],
    );
    check(
        &e,
        &input,
        d.path(),
        "Q4_K_M",
        &[
            "--output-tensor-type",
            "q8_0",
            "--token-embedding-type",
            "q4_k",
        ],
    );
    // requantizing a quantized file goes through f32 as llama-quantize does
    let q8 = d.path().join("ours-Q8_0.gguf");
    let (refp, ours) = (
        d.path().join("ref-requant.gguf"),
        d.path().join("ours-requant.gguf"),
    );
    ok(Command::new(&e.quantize)
        .arg("--allow-requantize")
        .arg(&q8)
        .arg(&refp)
        .args(["Q4_K_M", "2"]));
    ok(lbrx()
        .arg("quantize")
        .arg(&q8)
        .arg(&ours)
        .args(["Q4_K_M", "--quiet"]));
    compare(&e, &ours, &refp);
}

#[test]
fn moe_recipe_equals_llama_quantize_and_runs() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let input = f16_model(&e, "mixtral", d.path());
    let ours = check(&e, &input, d.path(), "Q4_K_M", &[]);
    check(&e, &input, d.path(), "Q3_K_M", &[]);
    check(&e, &input, d.path(), "MXFP4_MOE", &[]);
    check(&e, &input, d.path(), "IQ4_XS", &[]);
    // an importance matrix with one row of weights per expert
    let im = imatrix(&e, &input, d.path(), "gguf");
    check(&e, &input, d.path(), "Q4_K_M", &["--imatrix", &im]);
    let Some(simple) = llama_tool("llama-simple") else {
        return;
    };
    let out =
        ok(Command::new(&simple)
            .arg("-m")
            .arg(&ours)
            .args(["-n", "8", "The quick brown fox"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("The quick brown fox"), "{text}");
}

/// An importance matrix of `model` from llama-imatrix, in `format` (gguf or dat).
fn imatrix(e: &Env, model: &Path, dir: &Path, format: &str) -> String {
    let _ = e;
    llama_imatrix(model, dir, format)
}

/// With an importance matrix (GGUF and legacy .dat), every type that uses one: the same file as llama-quantize
/// (the weighted `_impl` quantizers, the imatrix-dependent type choices, the `quantize.imatrix.*` keys),
/// including the i-quant recipes (IQ1_S ... IQ3_M), which are refused without one as llama-quantize refuses
/// them.
#[test]
fn imatrix_quantization_equals_llama_quantize() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let input = f16_model(&e, "llama2", d.path());
    let im = imatrix(&e, &input, d.path(), "gguf");
    let mut iq2 = None;
    for r in [
        "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
        "IQ4_XS", "IQ4_NL", "Q8_0", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M",
        "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "Q2_K_S",
    ] {
        let ours = check(&e, &input, d.path(), r, &["--imatrix", &im]);
        if r == "IQ2_XXS" {
            iq2 = Some(ours);
        }
    }
    // the very low-bit recipes are refused without an importance matrix, as llama-quantize refuses them
    for r in ["IQ2_XXS", "IQ1_S", "IQ2_M", "IQ3_XXS", "Q2_K_S"] {
        let out = d.path().join(format!("refused-{r}.gguf"));
        let o = lbrx()
            .arg("quantize")
            .arg(&input)
            .arg(&out)
            .args([r, "--quiet"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("importance matrix"),
            "{r}: {err}"
        );
        assert!(!out.exists());
        assert!(!Command::new(&e.quantize)
            .arg(&input)
            .arg(&out)
            .args([r, "2"])
            .output()
            .unwrap()
            .status
            .success());
    }
    // llama.cpp runs a 2-bit i-quant file
    if let (Some(simple), Some(iq2)) = (llama_tool("llama-simple"), iq2) {
        let out =
            ok(Command::new(&simple)
                .arg("-m")
                .arg(&iq2)
                .args(["-n", "8", "The quick brown fox"]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("The quick brown fox"), "{text}");
    }
    let dat = imatrix(&e, &input, d.path(), "dat");
    let with_dat = check(&e, &input, d.path(), "Q4_K_M", &["--imatrix", &dat]);
    // the imatrix changes the quantized bytes (so the comparison above is not one of two plain files)
    let plain = check(&e, &input, d.path(), "Q4_K_M", &[]);
    let (a, b) = (
        std::fs::read(&plain).unwrap(),
        std::fs::read(&with_dat).unwrap(),
    );
    let tail = a.len().min(b.len()) / 2;
    assert_ne!(a[a.len() - tail..], b[b.len() - tail..]);
}

/// Shared experts (a Qwen2-MoE model built with its transformers class): `--quant Q4_K_M` straight from the
/// directory is the same file as convert_hf_to_gguf.py to F16, then llama-quantize (the shared-expert gate,
/// a [1, n] matrix to llama.cpp's eyes a vector, stays F32).
#[test]
fn shared_experts_q4_k_m_equals_convert_then_llama_quantize() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let hf = d.path().join("qwen2moe");
    ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/make_hf_family.py"))
        .arg("qwen2moe")
        .arg(&hf)
        .arg("--vocab-dir")
        .arg(e.src.join("models"))
        .args([
            "--sizes",
            "hidden_size=256,num_hidden_layers=4,moe_intermediate_size=256,shared_expert_intermediate_size=512",
        ]));
    let f16 = d.path().join("f16.gguf");
    ok(Command::new(&e.py)
        .arg(e.src.join("convert_hf_to_gguf.py"))
        .arg(&hf)
        .arg("--outfile")
        .arg(&f16)
        .args(["--outtype", "f16"]));
    let (refp, ours) = (d.path().join("ref.gguf"), d.path().join("ours.gguf"));
    ok(Command::new(&e.quantize)
        .arg(&f16)
        .arg(&refp)
        .args(["Q4_K_M", "2"]));
    ok(lbrx()
        .arg("convert")
        .arg(&hf)
        .arg(&ours)
        .args(["--quant", "Q4_K_M", "--quiet"]));
    compare(&e, &ours, &refp);
}

/// A Hugging Face directory straight to a recipe (`convert --recipe`, `--quant Q4_K_M`, with or without an
/// imatrix) is the same file as convert_hf_to_gguf.py to F16, then llama-quantize: one pass, no F16 file.
#[test]
fn hf_directory_with_a_recipe_equals_convert_then_llama_quantize() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let f16 = f16_model(&e, "llama2", d.path());
    let hf = d.path().join("llama2");
    let im = imatrix(&e, &f16, d.path(), "gguf");
    // (a recipe-only name also works in --quant; a plain type name there means that type for every matrix)
    let cases: &[(&str, &str, &[&str])] = &[
        ("Q4_K_M", "--quant", &[]),
        ("Q6_K", "--recipe", &[]),
        ("IQ4_XS", "--recipe", &[]),
        ("Q5_K_S", "--recipe", &["--imatrix", &im]),
    ];
    for (recipe, flag, extra) in cases {
        let refp = d.path().join(format!("ref-hf-{recipe}.gguf"));
        let ours = d.path().join(format!("ours-hf-{recipe}.gguf"));
        ok(Command::new(&e.quantize)
            .args(*extra)
            .arg(&f16)
            .arg(&refp)
            .args([recipe, "2"]));
        ok(lbrx()
            .arg("convert")
            .arg(&hf)
            .arg(&ours)
            .args([flag, recipe, "--quiet"])
            .args(*extra));
        compare(&e, &ours, &refp);
    }
    // a plain i-quant type for every matrix: llama.cpp's file type of that name, and llama.cpp runs it
    let iq3 = d.path().join("ours-hf-IQ3_S-every-matrix.gguf");
    ok(lbrx()
        .arg("convert")
        .arg(&hf)
        .arg(&iq3)
        .args(["--quant", "IQ3_S", "--quiet"]));
    let info: serde_json::Value =
        serde_json::from_slice(&ok(lbrx().arg("inspect").arg(&iq3).arg("--json")).stdout).unwrap();
    assert_eq!(
        info["metadata"]["general.file_type"], 26,
        "LLAMA_FTYPE_MOSTLY_IQ3_S"
    );
    if let Some(simple) = llama_tool("llama-simple") {
        let out =
            ok(Command::new(&simple)
                .arg("-m")
                .arg(&iq3)
                .args(["-n", "4", "The quick brown fox"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("The quick brown fox"));
    }
    // --recipe on a GGUF is lbrx quantize
    let ours = d.path().join("ours-gguf-recipe.gguf");
    ok(lbrx()
        .arg("convert")
        .arg(&f16)
        .arg(&ours)
        .args(["--recipe", "Q4_K_M", "--quiet"]));
    compare(&e, &ours, &d.path().join("ref-hf-Q4_K_M.gguf"));
}

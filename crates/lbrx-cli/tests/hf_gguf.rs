//! Hugging Face model directory -> GGUF against llama.cpp's own `convert_hf_to_gguf.py` (from the
//! llama-cpp-python 0.3.36 sdist): for each architecture, a small model with a real tokenizer (rebuilt from
//! llama.cpp's vocabulary files by `tests/oracle/make_hf_model.py`) converts to the same KV pairs and tensors,
//! byte for byte, in F16, BF16, F32, Q8_0 and auto; llama.cpp generates from our Q8_0 file what it generates
//! from its own. The families of make_hf_family.py are built with their real `transformers` class.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    py: PathBuf,
    src: PathBuf,
}

fn env() -> Option<Env> {
    Some(Env {
        py: python()?,
        src: llama_src()?,
    })
}

fn make_model(e: &Env, arch: &str, dir: &Path) {
    run_oracle(
        &e.py,
        "make_hf_model.py",
        &[&arch, &dir, &"--vocab-dir", &e.src.join("models")],
    );
}

fn reference(e: &Env, model: &Path, out: &Path, outtype: &str) {
    ok(Command::new(&e.py)
        .arg(e.src.join("convert_hf_to_gguf.py"))
        .arg(model)
        .arg("--outfile")
        .arg(out)
        .args(["--outtype", outtype]));
}

/// Asserts our GGUF has the reference's KVs (types, values, order) and tensors (names, types, shapes, bytes,
/// order), then that the files are identical.
fn assert_same_gguf(e: &Env, ours: &Path, reference: &Path) {
    let out = ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/gguf_compare.py"))
        .arg(ours)
        .arg(reference));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["kv"],
        serde_json::json!([]),
        "{}: KV differences",
        ours.display()
    );
    assert_eq!(
        r["tensors"],
        serde_json::json!([]),
        "{}: tensor differences",
        ours.display()
    );
    assert_eq!(r["kv_order_equal"], true, "{}", ours.display());
    assert_eq!(r["tensor_order_equal"], true, "{}", ours.display());
    assert!(
        std::fs::read(ours).unwrap() == std::fs::read(reference).unwrap(),
        "{}: same content but not the same bytes as {}",
        ours.display(),
        reference.display()
    );
}

fn check_arch(arch: &str, outtypes: &[&str]) {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join(arch);
    make_model(&e, arch, &model);
    check_model(
        &e,
        arch,
        &model,
        outtypes,
        Some(vocab_of(arch)),
        d.path(),
        true,
    );
}

/// The vocabulary file a make_hf_model.py architecture's tokenizer is rebuilt from.
fn vocab_of(arch: &str) -> &'static str {
    match arch {
        "llama3" => "llama-bpe",
        "qwen2" | "qwen3" | "qwen3moe" => "qwen2",
        "phi3" => "phi-3",
        _ => "llama-spm",
    }
}

/// Writes a tiny model of `family` with its real `transformers` class (make_hf_family.py); returns the
/// vocabulary its tokenizer came from.
fn make_family(e: &Env, family: &str, dir: &Path) -> String {
    let out = ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/make_hf_family.py"))
        .arg(family)
        .arg(dir)
        .arg("--vocab-dir")
        .arg(e.src.join("models")));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or_default().trim().to_string()
}

/// A transformers-built family: the same GGUF as convert_hf_to_gguf.py in each type, llama.cpp generating
/// from ours as from its own, and back to HF.
fn check_family(family: &str, outtypes: &[&str]) {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join(family);
    let vocab = make_family(&e, family, &model);
    check_model(&e, family, &model, outtypes, Some(&vocab), d.path(), true);
}

/// The same GGUF as convert_hf_to_gguf.py in each of `outtypes`; with `vocab`, the F16 one back to HF and to
/// GGUF again (see [`round_trip`]); with `generate`, llama.cpp runs the Q8_0 pair alike.
fn check_model(
    e: &Env,
    arch: &str,
    model: &Path,
    outtypes: &[&str],
    vocab: Option<&str>,
    tmp: &Path,
    generate: bool,
) {
    for t in outtypes {
        let ours = tmp.join(format!("ours-{t}.gguf"));
        let refp = tmp.join(format!("ref-{t}.gguf"));
        reference(e, model, &refp, t);
        let mut c = lbrx();
        c.arg("convert").arg(model).arg(&ours).arg("--quiet");
        match *t {
            "q8_0" => c.args(["--quant", "Q8_0"]),
            "auto" => c.args(["--dtype", "auto"]),
            other => c.args(["--dtype", other]),
        };
        ok(&mut c);
        assert_same_gguf(e, &ours, &refp);
        if *t == "q8_0" && generate {
            generates_alike(arch, &ours, &refp);
        }
        if let (true, Some(vocab)) = (*t == "f16", vocab) {
            round_trip(e, arch, model, &refp, tmp, vocab);
        }
    }
}

/// GGUF -> HF -> GGUF gives the same tensors and keys (the name, taken from the directory, aside), and
/// transformers loads the HF directory with the original's weights (through F16) and tokenization.
fn round_trip(e: &Env, arch: &str, model: &Path, gguf: &Path, tmp: &Path, vocab: &str) {
    let hf = tmp.join(format!("{arch}-hf"));
    let back = tmp.join(format!("{arch}-back.gguf"));
    ok(lbrx()
        .arg("convert")
        .arg(gguf)
        .arg(&hf)
        .args(["--to", "hf", "--quiet"]));
    ok(lbrx().arg("convert").arg(&hf).arg(&back).arg("--quiet"));
    let out = ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/gguf_compare.py"))
        .arg(&back)
        .arg(gguf)
        .args(["--ignore-key", "general.name"]));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["kv"],
        serde_json::json!([]),
        "{arch}: round-trip KV differences"
    );
    assert_eq!(
        r["tensors"],
        serde_json::json!([]),
        "{arch}: round-trip tensor differences"
    );
    run_oracle(
        &e.py,
        "hf_load_check.py",
        &[
            &model,
            &hf,
            &e.src.join(format!("models/ggml-vocab-{vocab}.gguf.inp")),
        ],
    );
}

#[test]
fn llama3_bpe_with_rope_scaling_equals_convert_hf_to_gguf() {
    check_arch("llama3", &["f16", "bf16", "q8_0", "auto", "f32"]);
}

#[test]
fn llama2_sentencepiece_equals_convert_hf_to_gguf() {
    check_arch("llama2", &["f16", "bf16", "q8_0", "auto"]);
}

#[test]
fn mistral_equals_convert_hf_to_gguf() {
    check_arch("mistral", &["f16", "bf16", "q8_0"]);
}

#[test]
fn qwen2_equals_convert_hf_to_gguf() {
    check_arch("qwen2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn qwen3_equals_convert_hf_to_gguf() {
    check_arch("qwen3", &["f16", "bf16", "q8_0"]);
}

/// llama.cpp's `llama-simple` loads both files and generates the same greedy tokens from them.
fn generates_alike(arch: &str, ours: &Path, refp: &Path) {
    let Some(simple) = llama_tool("llama-simple") else {
        return;
    };
    let gen = |m: &Path| {
        let out =
            ok(Command::new(&simple)
                .arg("-m")
                .arg(m)
                .args(["-n", "12", "The quick brown fox"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (gen(ours), gen(refp));
    let generated = a
        .split_once("The quick brown fox")
        .map(|(_, rest)| rest.trim())
        .unwrap_or_else(|| panic!("{arch}: prompt not echoed: {a:?}"));
    assert!(!generated.is_empty(), "{arch}: nothing generated: {a:?}");
    assert_eq!(a, b, "{arch}: generation differs");
}

#[test]
fn unsupported_architecture_names_the_supported_ones() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::copy(
        repo_root().join("examples/tiny-llama/model-00001-of-00002.safetensors"),
        m.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        m.join("config.json"),
        r#"{"architectures": ["FalconMambaForCausalLM"], "num_hidden_layers": 2}"#,
    )
    .unwrap();
    let out = lbrx()
        .arg("convert")
        .arg(&m)
        .arg(d.path().join("o.gguf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FalconMambaForCausalLM"), "{err}");
    assert!(
        err.contains("LlamaForCausalLM") && err.contains("Qwen3ForCausalLM"),
        "{err}"
    );
    assert!(!d.path().join("o.gguf").exists());
}

#[test]
fn smollm3_equals_convert_hf_to_gguf() {
    check_family("smollm3", &["f16", "bf16", "q8_0"]);
}

#[test]
fn granite_equals_convert_hf_to_gguf() {
    check_family("granite", &["f16", "bf16", "q8_0"]);
}

#[test]
fn olmo2_equals_convert_hf_to_gguf() {
    check_family("olmo2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn qwen2moe_shared_experts_equal_convert_hf_to_gguf() {
    check_family("qwen2moe", &["f16", "bf16", "q8_0"]);
}

#[test]
fn olmoe_equals_convert_hf_to_gguf() {
    check_family("olmoe", &["f16", "bf16", "q8_0"]);
}

#[test]
fn starcoder2_equals_convert_hf_to_gguf() {
    check_family("starcoder2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn cohere_command_r_equals_convert_hf_to_gguf() {
    check_family("cohere", &["f16", "bf16", "q8_0"]);
}

#[test]
fn cohere2_equals_convert_hf_to_gguf() {
    check_family("cohere2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn exaone4_llama3_rope_and_window_pattern_equal_convert_hf_to_gguf() {
    check_family("exaone4", &["f16", "bf16", "q8_0"]);
}

#[test]
fn phi2_equals_convert_hf_to_gguf() {
    check_family("phi2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn stablelm_equals_convert_hf_to_gguf() {
    check_family("stablelm", &["f16", "bf16", "q8_0"]);
}

/// GLM-4 (0414): fused gate/up kept fused, post-attention and post-MLP norms, partial rotary dimensions,
/// and its end, turn-end, unknown and begin tokens looked up by name.
#[test]
fn glm4_equals_convert_hf_to_gguf() {
    check_family("glm4", &["f16", "bf16", "q8_0"]);
}

/// GraniteMoe (with a shared expert): each fused `input_linear` is cut into gate and up, for the stacked
/// experts (strided halves) and the shared one; going back to HF is refused, naming why.
#[test]
fn granitemoe_fused_experts_equal_convert_hf_to_gguf() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("granitemoe");
    make_family(&e, "granitemoe", &model);
    check_model(
        &e,
        "granitemoe",
        &model,
        &["f16", "bf16", "q8_0"],
        None,
        d.path(),
        true,
    );
    let out = lbrx()
        .arg("convert")
        .arg(d.path().join("ref-f16.gguf"))
        .arg(d.path().join("back"))
        .args(["--to", "hf", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("input_linear"));
    assert!(!d.path().join("back").exists());
}

/// A vision-language model: its text model, the vision tower and projector left out as llama.cpp does; back
/// to HF it is the text-only `MistralForCausalLM`, which transformers loads with the same weights.
#[test]
fn mistral3_text_model_equals_convert_hf_to_gguf() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("mistral3");
    make_family(&e, "mistral3", &model);
    check_model(
        &e,
        "mistral3",
        &model,
        &["f16", "bf16", "q8_0"],
        None,
        d.path(),
        true,
    );
    let hf = d.path().join("mistral3-hf");
    ok(lbrx()
        .arg("convert")
        .arg(d.path().join("ref-f16.gguf"))
        .arg(&hf)
        .args(["--to", "hf", "--quiet"]));
    run_oracle(
        &e.py,
        "hf_load_check.py",
        &[
            &model,
            &hf,
            &e.src.join("models/ggml-vocab-llama-spm.gguf.inp"),
        ],
    );
}

#[test]
fn mixtral_moe_equals_convert_hf_to_gguf() {
    check_arch("mixtral", &["f16", "bf16", "q8_0"]);
}

#[test]
fn qwen3_moe_equals_convert_hf_to_gguf() {
    check_arch("qwen3moe", &["f16", "bf16", "q8_0"]);
}

#[test]
fn gemma2_equals_convert_hf_to_gguf() {
    check_arch("gemma2", &["f16", "bf16", "q8_0"]);
}

#[test]
fn gemma3_equals_convert_hf_to_gguf() {
    check_arch("gemma3", &["f16", "bf16", "q8_0"]);
}

#[test]
fn phi3_longrope_equals_convert_hf_to_gguf() {
    check_arch("phi3", &["f16", "bf16", "q8_0"]);
}

/// A real model from PyPI (sentence-transformers' all-MiniLM-L6-v2: BERT, WordPiece, a model card with
/// license, datasets and tags, mean pooling): the same file as convert_hf_to_gguf.py, and llama.cpp's
/// embeddings of our output equal those of its own.
#[test]
fn bert_minilm_equals_convert_hf_to_gguf_and_embeds_alike() {
    let Some(e) = env() else { return };
    let models = match std::env::var_os("LBRX_MODELS") {
        Some(m) => PathBuf::from(m),
        None => {
            assert!(
                std::env::var("LBRX_REQUIRE_REFERENCE").as_deref() != Ok("1"),
                "LBRX_MODELS is not set (scripts/fetch-test-models.sh)"
            );
            return;
        }
    };
    let model = models.join("all-MiniLM-L6-v2");
    let d = tempfile::tempdir().unwrap();
    for t in ["f16", "q8_0"] {
        let ours = d.path().join(format!("ours-{t}.gguf"));
        let refp = d.path().join(format!("ref-{t}.gguf"));
        reference(&e, &model, &refp, t);
        let mut c = lbrx();
        c.arg("convert").arg(&model).arg(&ours).arg("--quiet");
        if t == "q8_0" {
            c.args(["--quant", "Q8_0"]);
        } else {
            c.args(["--dtype", "f16"]);
        }
        ok(&mut c);
        assert_same_gguf(&e, &ours, &refp);
        if t == "f16" {
            let Some(embed) = llama_tool("llama-embedding") else {
                return;
            };
            // llama-embedding prints through llama.cpp's asynchronous logger, whose queue is not flushed at
            // exit (a known limitation, llama.cpp #22142): on a loaded machine the tail of the output can be
            // lost. So: the numbers printed, at least 64 of the 384, equal between the two models.
            let run = |m: &Path| -> Vec<String> {
                let mut best = Vec::new();
                for _ in 0..5 {
                    let out = ok(Command::new(&embed).arg("-m").arg(m).args([
                        "-p",
                        "A model that reads, checks and converts weights.",
                        "--embd-output-format",
                        "json",
                    ]));
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let nums: Vec<String> = text
                        .split_once("\"embedding\": [")
                        .map(|(_, rest)| {
                            rest.split([',', ']'])
                                .map(str::trim)
                                .take_while(|t| !t.is_empty() && t.parse::<f32>().is_ok())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    // a number cut in the middle parses too: drop the last one unless the array closed
                    let whole = text.contains("]\n    }");
                    let nums = if whole || nums.is_empty() {
                        nums
                    } else {
                        nums[..nums.len() - 1].to_vec()
                    };
                    if nums.len() > best.len() {
                        best = nums;
                    }
                    if whole {
                        break;
                    }
                }
                best
            };
            let (a, b) = (run(&ours), run(&refp));
            let n = a.len().min(b.len());
            assert!(
                n >= 64 && a.len() <= 384,
                "too few embedding values: {a:?} {b:?}"
            );
            assert_eq!(a[..n], b[..n]);
            // GGUF -> HF -> GGUF: the same tensors and keys (the model card's provenance keys aside, which a
            // rebuilt directory does not carry)
            let hf = d.path().join("minilm-hf");
            let back = d.path().join("minilm-back.gguf");
            ok(lbrx()
                .arg("convert")
                .arg(&refp)
                .arg(&hf)
                .args(["--to", "hf", "--quiet"]));
            assert!(hf.join("1_Pooling/config.json").is_file());
            ok(lbrx()
                .arg("convert")
                .arg(&hf)
                .arg(&back)
                .args(["--dtype", "f16", "--quiet"]));
            let out = ok(Command::new(&e.py)
                .arg(repo_root().join("crates/lbrx-cli/tests/oracle/gguf_compare.py"))
                .arg(&back)
                .arg(&refp)
                .args(["--ignore-prefix", "general."]));
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                r["kv"],
                serde_json::json!([]),
                "BERT round-trip KV differences"
            );
            assert_eq!(
                r["tensors"],
                serde_json::json!([]),
                "BERT round-trip tensor differences"
            );
        }
    }
}

//! MLX model directories against mlx_lm 0.32.2 / mlx 0.32.4 (from PyPI, in their own venv): for small models of
//! each architecture `lbrx convert --to mlx` writes the same tensors (bytes), index and config as
//! `mlx_lm.convert` for every bit width, group size and mixed recipe; mlx_lm loads our output and generates the
//! same tokens; `--dequantize`, MLX -> GGUF and GGUF -> MLX equal the reference tools' results.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    /// The reference venv (torch, gguf) that builds the fixtures.
    py: PathBuf,
    /// The MLX venv.
    mlx: PathBuf,
    /// llama.cpp's source (vocabulary files, converter).
    src: PathBuf,
}

fn env() -> Option<Env> {
    Some(Env {
        py: python()?,
        mlx: mlx_python()?,
        src: llama_src()?,
    })
}

fn make_model(e: &Env, arch: &str, dir: &Path) {
    make_model_as(e, arch, dir, "bfloat16");
}

fn make_model_as(e: &Env, arch: &str, dir: &Path, dtype: &str) {
    run_oracle(
        &e.py,
        "make_hf_model.py",
        &[
            &arch,
            &dir,
            &"--vocab-dir",
            &e.src.join("models"),
            &"--dtype",
            &dtype,
        ],
    );
}

fn mlx_lm_convert(e: &Env, src: &Path, dst: &Path, args: &[&str]) {
    ok(Command::new(&e.mlx)
        .args(["-m", "mlx_lm", "convert", "--hf-path"])
        .arg(src)
        .arg("--mlx-path")
        .arg(dst)
        .args(args));
}

fn ours(src: &Path, dst: &Path, args: &[&str]) {
    ok(lbrx()
        .arg("convert")
        .arg(src)
        .arg(dst)
        .args(["--to", "mlx", "--quiet"])
        .args(args));
}

/// Asserts two MLX directories hold the same tensors (names, dtypes, shapes, bytes), index and config.
fn assert_same_mlx(e: &Env, ours: &Path, reference: &Path) {
    common::assert_same_mlx(&e.mlx, ours, reference);
}

fn generate(e: &Env, model: &Path) -> Vec<u64> {
    let out = ok(Command::new(&e.mlx)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/mlx_generate.py"))
        .arg(model));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The issue's case: a Llama-style model at 4 bits in groups of 64 equals mlx_lm.convert's, and mlx_lm
/// generates the same tokens from both.
#[test]
fn llama_4bit_group64_equals_mlx_lm_and_generates_alike() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("llama3");
    make_model(&e, "llama3", &model);
    let (a, b) = (d.path().join("ours"), d.path().join("ref"));
    let q = ["-q", "--q-bits", "4", "--q-group-size", "64"];
    mlx_lm_convert(&e, &model, &b, &q);
    ours(&model, &a, &q);
    assert_same_mlx(&e, &a, &b);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization"],
        serde_json::json!({"group_size": 64, "bits": 4, "mode": "affine"})
    );
    // intermediate_size 344 is not a multiple of 64: down_proj stays float, as mlx_lm leaves it
    let (ta, tb) = (generate(&e, &a), generate(&e, &b));
    assert_eq!(ta.len(), 12);
    assert_eq!(ta, tb);
}

/// Every bit width, group size and mixed recipe, across the architectures (dense, MoE experts stacked into
/// switch_mlp, Qwen3-MoE's 8-bit router, tied and untied heads).
#[test]
fn every_bit_width_group_size_and_recipe_equals_mlx_lm() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("mixtral", &["-q", "--q-bits", "4", "--q-group-size", "32"]),
        ("qwen3moe", &["-q", "--q-bits", "4", "--q-group-size", "32"]),
        ("qwen2", &["-q", "--q-bits", "3", "--q-group-size", "128"]),
        ("mistral", &["-q", "--q-bits", "5", "--q-group-size", "32"]),
        ("gemma3", &["-q", "--q-bits", "6", "--q-group-size", "32"]),
        ("phi3", &["-q", "--q-bits", "2", "--q-group-size", "32"]),
        ("llama3", &["-q", "--q-bits", "8", "--q-group-size", "128"]),
        ("gemma2", &["-q", "--q-bits", "8", "--q-group-size", "64"]),
        (
            "qwen3",
            &[
                "-q",
                "--quant-predicate",
                "mixed_3_4",
                "--q-group-size",
                "64",
            ],
        ),
        (
            "llama3",
            &[
                "-q",
                "--quant-predicate",
                "mixed_3_6",
                "--q-group-size",
                "64",
            ],
        ),
        (
            "qwen3moe",
            &[
                "-q",
                "--quant-predicate",
                "mixed_2_6",
                "--q-group-size",
                "32",
            ],
        ),
        (
            "mistral",
            &[
                "-q",
                "--quant-predicate",
                "mixed_4_6",
                "--q-group-size",
                "32",
            ],
        ),
        ("llama3", &["-q", "--q-mode", "mxfp4"]),
        ("qwen3moe", &["-q", "--q-mode", "mxfp8"]),
        ("gemma3", &["-q", "--q-mode", "nvfp4"]),
    ];
    for (i, (arch, args)) in cases.iter().enumerate() {
        let model = d.path().join(arch);
        if !model.exists() {
            make_model(&e, arch, &model);
        }
        let (a, b) = (
            d.path().join(format!("ours-{i}")),
            d.path().join(format!("ref-{i}")),
        );
        mlx_lm_convert(&e, &model, &b, args);
        ours(&model, &a, args);
        assert_same_mlx(&e, &a, &b);
    }
}

/// The families built with their real `transformers` class (make_hf_family.py) at 4 bits: the same tensors,
/// index and config as mlx_lm.convert (experts stacked into `switch_mlp`, Granite's 8-bit layers).
#[test]
fn transformers_families_equal_mlx_lm() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    for family in [
        "smollm3",
        "granite",
        "olmo2",
        "qwen2moe",
        "olmoe",
        "starcoder2",
        "cohere",
        "cohere2",
        "exaone4",
        "phi2",
        "stablelm",
        "glm4",
    ] {
        let model = d.path().join(family);
        ok(Command::new(&e.py)
            .arg(repo_root().join("crates/lbrx-cli/tests/oracle/make_hf_family.py"))
            .arg(family)
            .arg(&model)
            .arg("--vocab-dir")
            .arg(e.src.join("models")));
        let (a, b) = (
            d.path().join(format!("{family}-ours")),
            d.path().join(format!("{family}-ref")),
        );
        mlx_lm_convert(&e, &model, &b, &["-q"]);
        ours(&model, &a, &["-q"]);
        assert_same_mlx(&e, &a, &b);
    }
}

/// float32 and float16 sources in every mode (scales one ulp above a power of two, f16 rounding), and the
/// float modes dequantized back as mlx_lm does (bfloat16, whatever the model's dtype).
#[test]
fn float32_and_float16_sources_in_every_mode_equal_mlx_lm() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    for dtype in ["float32", "float16"] {
        let model = d.path().join(dtype);
        make_model_as(&e, "qwen2", &model, dtype);
        for mode in ["affine", "mxfp4", "mxfp8", "nvfp4"] {
            let p = |what: &str| d.path().join(format!("{what}-{dtype}-{mode}"));
            let args = ["-q", "--q-mode", mode];
            mlx_lm_convert(&e, &model, &p("ref"), &args);
            ours(&model, &p("ours"), &args);
            assert_same_mlx(&e, &p("ours"), &p("ref"));
            if mode != "affine" {
                mlx_lm_convert(&e, &p("ref"), &p("ref-dq"), &["-d"]);
                ours(&p("ref"), &p("ours-dq"), &["-d"]);
                assert_same_mlx(&e, &p("ours-dq"), &p("ref-dq"));
            }
        }
    }
}

/// Float conversions (dtype from config.json or --dtype, experts stacked) and --dequantize equal mlx_lm's.
#[test]
fn float_and_dequantized_outputs_equal_mlx_lm() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("qwen3moe");
    make_model(&e, "qwen3moe", &model);
    let p = |n: &str| d.path().join(n);
    mlx_lm_convert(&e, &model, &p("ref-plain"), &[]);
    ours(&model, &p("ours-plain"), &[]);
    assert_same_mlx(&e, &p("ours-plain"), &p("ref-plain"));
    mlx_lm_convert(&e, &model, &p("ref-f16"), &["--dtype", "float16"]);
    ours(&model, &p("ours-f16"), &["--dtype", "f16"]);
    assert_same_mlx(&e, &p("ours-f16"), &p("ref-f16"));
    // dequantize mlx_lm's own quantized output
    mlx_lm_convert(&e, &model, &p("ref-q"), &["-q", "--q-group-size", "32"]);
    mlx_lm_convert(&e, &p("ref-q"), &p("ref-dq"), &["-d"]);
    ours(&p("ref-q"), &p("ours-dq"), &["--dequantize"]);
    assert_same_mlx(&e, &p("ours-dq"), &p("ref-dq"));
    // a quantized source is not silently re-written: it needs -q or --dequantize
    let out = lbrx()
        .arg("convert")
        .arg(p("ref-q"))
        .arg(p("again"))
        .args(["--to", "mlx"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dequantize"));
    assert!(!p("again").exists());
}

/// MLX -> GGUF equals HF -> GGUF of mlx_lm's dequantized model and runs in llama.cpp; GGUF -> MLX equals
/// mlx_lm.convert of the GGUF's Hugging Face directory.
#[test]
fn mlx_to_gguf_and_gguf_to_mlx() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    make_model(&e, "llama3", &p("llama3"));
    mlx_lm_convert(&e, &p("llama3"), &p("q4"), &["-q"]);
    mlx_lm_convert(&e, &p("q4"), &p("dq"), &["-d"]);
    ours(&p("q4"), &p("ours-dq"), &["-d"]);
    assert_same_mlx(&e, &p("ours-dq"), &p("dq"));
    assert_eq!(generate(&e, &p("ours-dq")), generate(&e, &p("dq")));
    for (src, out) in [("q4", "from-mlx.gguf"), ("dq", "from-dq.gguf")] {
        ok(lbrx()
            .arg("convert")
            .arg(p(src))
            .arg(p(out))
            .args(["--quant", "Q8_0", "--quiet"]));
    }
    let out = ok(Command::new(&e.py)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/gguf_compare.py"))
        .arg(p("from-mlx.gguf"))
        .arg(p("from-dq.gguf"))
        .args(["--ignore-key", "general.name"]));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["kv"], serde_json::json!([]));
    assert_eq!(r["tensors"], serde_json::json!([]));
    if let Some(simple) = llama_tool("llama-simple") {
        let out = ok(Command::new(simple)
            .arg("-m")
            .arg(p("from-mlx.gguf"))
            .args(["-n", "8", "The quick brown fox"]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("The quick brown fox"), "{text}");
    }
    // GGUF -> MLX
    ok(lbrx()
        .arg("convert")
        .arg(p("from-dq.gguf"))
        .arg(p("hf"))
        .args(["--to", "hf", "--quiet"]));
    mlx_lm_convert(&e, &p("hf"), &p("ref-g"), &["-q"]);
    ours(&p("from-dq.gguf"), &p("ours-g"), &["-q"]);
    assert_same_mlx(&e, &p("ours-g"), &p("ref-g"));
}

/// Damaged quantized MLX models are refused with the tensor named, and bad settings with the valid ones.
#[test]
fn damaged_mlx_models_and_bad_settings_are_refused() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    make_model(&e, "qwen2", &p("m"));
    ours(&p("m"), &p("q"), &["-q"]);
    let out = lbrx()
        .arg("convert")
        .arg(p("m"))
        .arg(p("bad"))
        .args(["--to", "mlx", "-q", "--q-bits", "7"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bits [2, 3, 4, 5, 6, 8]"));
    // a config that disagrees with the packed tensors
    let cfg = p("q").join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"bits\": 4", "\"bits\": 8")).unwrap();
    let out = lbrx()
        .arg("convert")
        .arg(p("q"))
        .arg(p("x.gguf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json") && err.contains(".weight'"),
        "{err}"
    );
    assert!(!p("x.gguf").exists());
}

/// `.npz` output (as numpy.savez / mlx.core.savez store it) passes zipfile's CRC check and reads in numpy and
/// mlx with every array equal to the source's; the corpus archive (deflated members) round-trips.
#[test]
fn npz_output_reads_in_numpy_and_mlx() {
    let Some(e) = env() else { return };
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    make_model(&e, "qwen2", &p("m"));
    ok(lbrx()
        .arg("convert")
        .arg(p("m"))
        .arg(p("m.npz"))
        .args(["--dtype", "f32", "--quiet"]));
    let check = r#"
import sys, glob, zipfile
import numpy as np, mlx.core as mx
src, npz = sys.argv[1], sys.argv[2]
assert zipfile.ZipFile(npz).testzip() is None
want = {}
for f in glob.glob(src + "/*.safetensors"):
    want.update(mx.load(f))
got, got_mx = np.load(npz), mx.load(npz)
assert sorted(got.files) == sorted(want), (sorted(got.files)[:3], sorted(want)[:3])
for k, v in want.items():
    ref = np.array(v.astype(mx.float32))
    assert got[k].dtype == np.float32 and got[k].shape == ref.shape and (got[k] == ref).all(), k
    assert (np.array(got_mx[k]) == ref).all(), k
print(len(want), flush=True)
# every check has passed; skip the interpreter's teardown, where mlx can abort under load
import os
os._exit(0)
"#;
    let out = ok(Command::new(&e.mlx)
        .args(["-c", check])
        .arg(p("m"))
        .arg(p("m.npz")));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .unwrap()
            > 10
    );
    if let Some(shared) = shared_dir() {
        let corpus = shared.join("corpus/npz/whisper-mel_filters.npz");
        ok(lbrx()
            .arg("convert")
            .arg(&corpus)
            .arg(p("w.npz"))
            .arg("--quiet"));
        let cmp = "import sys, numpy as np, zipfile\n\
                   a, b = np.load(sys.argv[1]), np.load(sys.argv[2])\n\
                   assert zipfile.ZipFile(sys.argv[2]).testzip() is None\n\
                   assert a.files == b.files and all(a[k].dtype == b[k].dtype and (a[k] == b[k]).all() for k in a.files)\n";
        ok(Command::new(&e.mlx)
            .args(["-c", cmp])
            .arg(&corpus)
            .arg(p("w.npz")));
    }
    // a single array to .npy: numpy.save's layout, the values cast as numpy casts them
    let mk = "import sys, numpy as np\n\
              np.save(sys.argv[1], (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7))\n";
    ok(Command::new(&e.mlx).args(["-c", mk]).arg(p("one.npy")));
    ok(lbrx()
        .arg("convert")
        .arg(p("one.npy"))
        .arg(p("half.npy"))
        .args(["--dtype", "f16", "--quiet"]));
    let cmp = "import sys, numpy as np\n\
               a, b = np.load(sys.argv[1]), np.load(sys.argv[2])\n\
               assert b.dtype == np.float16 and b.shape == a.shape and (a.astype(np.float16) == b).all()\n";
    ok(Command::new(&e.mlx)
        .args(["-c", cmp])
        .arg(p("one.npy"))
        .arg(p("half.npy")));
    // bf16 has no NumPy type: refused with the way out, nothing written
    let out = lbrx()
        .arg("convert")
        .arg(p("m"))
        .arg(p("bf.npz"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dtype"));
    assert!(!p("bf.npz").exists());
}

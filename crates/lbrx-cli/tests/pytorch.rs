//! PyTorch checkpoints against torch itself (2.15 from PyPI): every corpus file and fresh seeded `torch.save`
//! files read as `torch.load(weights_only=True)` (TorchScript: `torch.jit.load(..).state_dict()`) loads them,
//! byte for byte through `safetensors.torch.save_file`; a Hugging Face directory of `.bin` shards converts to
//! the GGUF `convert_hf_to_gguf.py` makes from it and to the MLX directory `mlx_lm.convert` makes from its
//! SafeTensors twin; hostile files are refused from the command line with nothing executed.

#![allow(clippy::print_stderr)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn torch_oracle(py: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "torch_oracle.py", args);
}

/// Converts `src` to one `.safetensors` with lbrx and with torch (`reference` mode flags), asserting the same
/// bytes.
fn assert_reads_like_torch(py: &Path, src: &Path, flags: &[&str], work: &Path) {
    let name = src.file_name().unwrap().to_string_lossy().into_owned();
    let (ours, theirs) = (
        work.join(format!("ours-{name}.safetensors")),
        work.join(format!("ref-{name}.safetensors")),
    );
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"reference", &src, &theirs];
    for f in flags {
        args.push(f);
    }
    torch_oracle(py, &args);
    ok(lbrx().arg("convert").arg(src).arg(&ours).arg("--quiet"));
    let (a, b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert!(
        a == b,
        "{}: lbrx's tensors differ from torch's ({} vs {} bytes)",
        src.display(),
        a.len(),
        b.len()
    );
}

#[test]
fn every_corpus_checkpoint_reads_as_torch_loads_it() {
    let (Some(py), Some(shared)) = (python(), shared_dir()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (dir, flags) in [
        ("pytorch-zip", &[][..]),
        ("pytorch-legacy", &[][..]),
        ("torchscript", &["--jit"][..]),
    ] {
        for e in std::fs::read_dir(shared.join("corpus").join(dir)).unwrap() {
            let p = e.unwrap().path();
            assert_reads_like_torch(&py, &p, flags, d.path());
            // inspect reads it too, with no warning for these plain checkpoints
            let out = ok(lbrx().arg("inspect").arg(&p).arg("--json"));
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(j["format"], "pytorch");
            assert_eq!(j["warnings"], serde_json::json!([]), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} corpus files");
}

#[test]
fn fresh_torch_save_files_read_as_torch_loads_them() {
    let Some(py) = python() else { return };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 100_000;
    eprintln!("seed {seed}");
    let d = tempfile::tempdir().unwrap();
    // zip and legacy serialization, pickle protocols 2 and 4, a big-endian archive, deflated members, a nested
    // checkpoint dict; views with offsets, transposes, stride 0, tied weights; bf16/f16/f32/f64/int8/int64/
    // bool/float8; a whole nn.Module, read as its state_dict() (torch's weights-only reader cannot read
    // protocol 4 or modules: those are loaded unsafely, as the trusted files they are).
    for (variant, flags) in [
        ("zip2", &[][..]),
        ("legacy2", &[][..]),
        ("zip4", &["--unsafe"][..]),
        ("legacy4", &["--unsafe"][..]),
        ("big", &[][..]),
        ("deflated", &[][..]),
        ("nested", &[][..]),
        ("module", &["--unsafe"][..]),
    ] {
        let p = d.path().join(format!("{variant}.pt"));
        torch_oracle(&py, &[&"make", &p, &seed.to_string(), &variant]);
        assert_reads_like_torch(&py, &p, flags, d.path());
    }
    // The same checkpoint to every other format lbrx writes. GGUF has no bool type: a clear refusal, no output.
    let p = d.path().join("zip2.pt");
    let g = lbrx()
        .arg("convert")
        .arg(&p)
        .arg(d.path().join("m.gguf"))
        .args(["--dtype", "f16", "--quiet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&g.stderr);
    assert_eq!(g.status.code(), Some(1), "{err}");
    assert!(err.contains("'mask'") && err.contains("BOOL"), "{err}");
    assert!(!d.path().join("m.gguf").exists());
    ok(lbrx()
        .arg("convert")
        .arg(&p)
        .arg(d.path().join("m.npz"))
        .args(["--dtype", "f32", "--quiet"]));
    let h = lbrx().arg("health").arg(&p).output().unwrap();
    assert_eq!(
        h.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&h.stdout)
    );
}

/// A hostile pickle, written by hand: exit code 1, a clear error, nothing created, the payload never run.
#[test]
fn hostile_checkpoints_are_refused_and_nothing_runs() {
    let d = tempfile::tempdir().unwrap();
    let canary = d.path().join("CANARY");
    let touch = format!("S'touch {}'\n", canary.display());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "os-system.bin",
            format!("cos\nsystem\n({touch}tR.").into_bytes(),
            "os.system",
        ),
        (
            "eval.pt",
            [
                &b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93"[..],
                format!("({touch}tR.").as_bytes(),
            ]
            .concat(),
            "builtins.eval",
        ),
        (
            "inst.pth",
            format!("({touch}isubprocess\ncheck_output\n.").into_bytes(),
            "subprocess.check_output",
        ),
    ];
    for (name, bytes, global) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        for args in [
            vec!["inspect".into(), p.clone()],
            vec![
                "convert".into(),
                p.clone(),
                d.path().join(format!("{name}.safetensors")),
            ],
        ] {
            let out = lbrx().args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains("malicious") && err.contains(global) && err.contains("byte offset"),
                "{name}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        }
        assert!(!d.path().join(format!("{name}.safetensors")).exists());
        // health reports it as what it is
        let h = lbrx().arg("health").arg(&p).arg("--json").output().unwrap();
        assert_eq!(h.status.code(), Some(1), "{name}");
        let r: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
        assert_eq!(
            r["findings"][0]["code"], "malicious-checkpoint",
            "{name}: {r}"
        );
    }
    assert!(!canary.exists(), "a payload ran");
}

struct HfEnv {
    py: PathBuf,
    mlx: PathBuf,
    src: PathBuf,
}

/// The case: a Llama-shaped model saved as `.bin` shards converts like its SafeTensors twin.
#[test]
fn bin_shards_convert_like_convert_hf_to_gguf_and_mlx_lm() {
    let Some(e) = (|| {
        Some(HfEnv {
            py: python()?,
            mlx: mlx_python()?,
            src: llama_src()?,
        })
    })() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("llama3");
    let bin = d.path().join("llama3-bin");
    run_oracle(
        &e.py,
        "make_hf_model.py",
        &[
            &"llama3",
            &st,
            &"--vocab-dir",
            &e.src.join("models"),
            &"--max-shard-size",
            &"300000",
        ],
    );
    torch_oracle(&e.py, &[&"bin-twin", &st, &bin]);
    assert!(bin.join("pytorch_model.bin.index.json").is_file());
    for outtype in ["f16", "bf16", "q8_0"] {
        let (ours, theirs) = (
            d.path().join(format!("ours-{outtype}.gguf")),
            d.path().join(format!("ref-{outtype}.gguf")),
        );
        ok(Command::new(&e.py)
            .arg(e.src.join("convert_hf_to_gguf.py"))
            .arg(&bin)
            .arg("--outfile")
            .arg(&theirs)
            .args(["--outtype", outtype]));
        let mut c = lbrx();
        c.arg("convert").arg(&bin).arg(&ours).arg("--quiet");
        if outtype == "q8_0" {
            c.args(["--quant", "Q8_0"]);
        } else {
            c.args(["--dtype", outtype]);
        }
        ok(&mut c);
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
            "{outtype}: our GGUF from .bin shards differs from convert_hf_to_gguf.py's"
        );
    }
    // MLX 4-bit from the .bin shards equals mlx_lm.convert from the SafeTensors twin.
    let (ours, theirs) = (d.path().join("ours-mlx"), d.path().join("ref-mlx"));
    ok(Command::new(&e.mlx)
        .args(["-m", "mlx_lm", "convert", "--hf-path"])
        .arg(&st)
        .arg("--mlx-path")
        .arg(&theirs)
        .arg("-q"));
    ok(lbrx()
        .arg("convert")
        .arg(&bin)
        .arg(&ours)
        .args(["--to", "mlx", "-q", "--quiet"]));
    assert_same_mlx(&e.mlx, &ours, &theirs);
    // And to a SafeTensors directory: the same files as converting the twin.
    let (a, b) = (d.path().join("st-from-bin"), d.path().join("st-from-st"));
    ok(lbrx().arg("convert").arg(&bin).arg(&a).arg("--quiet"));
    ok(lbrx().arg("convert").arg(&st).arg(&b).arg("--quiet"));
    let strip = |v: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .filter(|(n, _)| n != ".lbrx_workspace.json")
            .collect()
    };
    let (fa, fb) = (strip(dir_files(&a)), strip(dir_files(&b)));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fa), names(&fb));
    for ((n, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{n} differs");
    }
    // health reads the .bin directory, deeply, and finds nothing wrong
    let h = lbrx()
        .arg("health")
        .arg(&bin)
        .arg("--deep")
        .output()
        .unwrap();
    assert_eq!(
        h.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&h.stdout)
    );
}

//! `lbrx hash` against llama.cpp's `llama-gguf-hash` (built from the llama-cpp-python 0.3.36 sdist): the same
//! lines, in the same order, for every algorithm set, on the corpus GGUFs and on quantized files lbrx writes;
//! `--check` against intact and tampered manifests prints the same report and exits with the same code. A
//! SafeTensors copy of a GGUF hashes its tensors alike.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn both(tool: &Path, args: &[&str], model: &Path) -> ((String, i32), (String, i32)) {
    let run = |mut c: Command| {
        let o = c.args(args).arg(model).output().unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            o.status.code().unwrap_or(-1),
        )
    };
    let mut ours = lbrx();
    ours.arg("hash");
    (run(Command::new(tool)), run(ours))
}

fn assert_same(tool: &Path, args: &[&str], model: &Path) -> String {
    let (theirs, ours) = both(tool, args, model);
    assert_eq!(
        theirs,
        ours,
        "{} {args:?}: lbrx hash differs from llama-gguf-hash",
        model.display()
    );
    theirs.0
}

#[test]
fn hash_lines_equal_llama_gguf_hash() {
    let Some(tool) = llama_tool("llama-gguf-hash") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    if let Some(shared) = shared_dir() {
        for e in std::fs::read_dir(shared.join("corpus/gguf")).unwrap() {
            models.push(e.unwrap().path());
        }
    }
    for q in ["Q8_0", "Q4_K_M", "IQ4_XS", "Q6_K"] {
        let p = d.path().join(format!("tiny-{q}.gguf"));
        ok(lbrx()
            .arg("convert")
            .arg(repo_root().join("examples/tiny-llama"))
            .arg(&p)
            .args(["--quant", q, "--quiet"]));
        models.push(p);
    }
    let f16 = d.path().join("tiny-f16.gguf");
    ok(lbrx()
        .arg("convert")
        .arg(repo_root().join("examples/tiny-llama"))
        .arg(&f16)
        .args(["--dtype", "f16", "--quiet"]));
    models.push(f16.clone());
    for m in &models {
        for args in [
            &[][..],
            &["--all", "--uuid"][..],
            &["--sha1", "--no-layer"][..],
            &["--uuid"][..],
            &["--sha256", "--xxh64"][..],
        ] {
            assert_same(&tool, args, m);
        }
    }
    // --check: intact, one tensor's hash changed, the model hash changed, a manifest of another model
    let full = assert_same(&tool, &["--all", "--uuid"], &f16);
    let manifest = d.path().join("m.txt");
    let check = |text: &str, args: &[&str]| {
        std::fs::write(&manifest, text).unwrap();
        let mut a = vec!["--check", manifest.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = assert_same(&tool, &a, &f16);
        assert!(out.contains("Verification results"), "{out}");
    };
    check(&full, &[]);
    check(&full, &["--xxh64"]);
    let lines: Vec<&str> = full.lines().collect();
    // the manifest with the hash of line `i` changed in its last digit
    let flip = |i: usize| -> String {
        let mut out = String::new();
        for (k, l) in lines.iter().enumerate() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let mut h = w[1].to_string();
            if k == i {
                let last = if h.ends_with('0') { '1' } else { '0' };
                h.pop();
                h.push(last);
            }
            out += &format!("{}  {h}  {}\n", w[0], w[2]);
        }
        out
    };
    check(&flip(1), &[]);
    check(&flip(lines.len() - 2), &[]);
    check(&flip(0), &["--xxh64", "--no-layer"]);
    check("xxh64  0123456789abcdef  some-other.gguf\n", &[]);
}

#[test]
fn a_safetensors_copy_hashes_its_tensors_alike() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("m.gguf");
    let s = d.path().join("m.safetensors");
    let tiny = repo_root().join("examples/tiny-llama");
    ok(lbrx()
        .arg("convert")
        .arg(&tiny)
        .arg(&g)
        .args(["--dtype", "f16", "--quiet"]));
    ok(lbrx().arg("convert").arg(&g).arg(&s).arg("--quiet"));
    let per = |p: &Path| -> std::collections::BTreeMap<String, String> {
        let o = ok(lbrx().arg("hash").arg("--sha256").arg(p));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let name = w.get(2)?.split_once(':')?.1.to_string();
                Some((name, w[1].to_string()))
            })
            .collect()
    };
    let (a, b) = (per(&g), per(&s));
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "per-tensor hashes of the GGUF and its SafeTensors copy differ"
    );
}

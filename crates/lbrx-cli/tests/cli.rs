//! The `lbrx` binary as a user meets it: real files from ../shared/corpus, malformed inputs (clear error, exit 1,
//! no panic, bounded memory), a conversion killed halfway, refusal to overwrite a source, dry runs and JSON.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

/// Runs `lbrx ARGS` under a 1 GiB address-space limit (so an allocation sized by a hostile length field fails
/// loudly) and returns (exit code, stderr).
fn run_limited(args: &[&Path]) -> (i32, String) {
    let mut script = String::from("ulimit -v 1048576; exec \"$0\"");
    for i in 0..args.len() {
        script.push_str(&format!(" \"${}\"", i + 1));
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_lbrx"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_files_give_clear_errors_and_exit_1() {
    let d = tempfile::tempdir().unwrap();
    let good = st(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
        &[0; 12],
    );
    let mut past_eof = good.clone();
    past_eof[..8].copy_from_slice(&10_000u64.to_le_bytes());
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&1_000_000_000_000_000_000u64.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 5].to_vec(),
            "ends past the data section",
        ),
        ("tiny", good[..5].to_vec(), "truncated"),
        ("empty", Vec::new(), "truncated"),
        ("past-eof", past_eof, "runs past the end of the file"),
        ("huge-header", huge, "exceeds the cap"),
        (
            "overlap",
            st(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "overlaps tensor 'a'",
        ),
        (
            "bad-dtype",
            st(
                r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "unknown dtype 'Q4'",
        ),
        (
            "size-mismatch",
            st(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "needs 12 bytes",
        ),
        (
            "bad-json",
            st(r#"{"a":{"dtype":"F32""#, &[]),
            "invalid header",
        ),
        (
            "hole",
            st(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "unclaimed bytes",
        ),
        (
            "trailing",
            st(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 8],
            ),
            "trailing bytes",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = d.path().join(format!("{name}.safetensors"));
        std::fs::write(&p, &bytes).unwrap();
        for cmd in ["inspect", "convert"] {
            let out = d.path().join(format!("{name}-out.safetensors"));
            let args: Vec<&Path> = if cmd == "inspect" {
                vec![Path::new(cmd), &p]
            } else {
                vec![Path::new(cmd), &p, &out]
            };
            let (code, err) = run_limited(&args);
            assert_eq!(code, 1, "{name} ({cmd}): exit {code}, stderr: {err}");
            assert!(err.starts_with("error: "), "{name}: {err}");
            assert!(
                err.contains(&format!("{name}.safetensors")),
                "{name}: error does not name the file: {err}"
            );
            assert!(
                err.contains(expect),
                "{name}: expected '{expect}' in: {err}"
            );
            assert!(!err.contains("panicked"), "{name}: {err}");
            assert!(!out.exists());
        }
    }
}

#[test]
fn broken_shard_indexes_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let mk = |name: &str, files: &[(&str, Vec<u8>)], index: &str| -> PathBuf {
        let dir = d.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for (f, b) in files {
            std::fs::write(dir.join(f), b).unwrap();
        }
        std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
        dir
    };
    let s1 = st(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
        &[1, 2],
    );
    let s2 = st(
        r#"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
        &[3],
    );
    let missing = mk(
        "missing",
        &[("model-00001-of-00002.safetensors", s1.clone())],
        r#"{"metadata":{"total_size":3},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    );
    let wrong = mk(
        "wrong",
        &[
            ("model-00001-of-00002.safetensors", s1),
            ("model-00002-of-00002.safetensors", s2),
        ],
        r#"{"metadata":{"total_size":3},"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    );
    for (dir, expect) in [(missing, "names shard 'model-00002-of-00002.safetensors', which does not exist"), (wrong, "tensor 'a': index places it in shard 'model-00002-of-00002.safetensors', which does not contain it")] {
        let (code, err) = run_limited(&[Path::new("inspect"), &dir]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(expect) && err.contains("model.safetensors.index.json"), "{err}");
    }
}

#[test]
fn every_safetensors_and_npz_file_in_the_corpus_reads() {
    let Some(shared) = shared_dir() else { return };
    let mut found = Vec::new();
    let mut stack = vec![shared.join("corpus")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("model.safetensors.index.json").exists() {
                    found.push(p.clone());
                }
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "safetensors" || x == "npz")
            {
                found.push(p);
            }
        }
    }
    assert!(!found.is_empty(), "no SafeTensors files in the corpus");
    assert!(
        found
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "npz")),
        "no .npz in the corpus"
    );
    for p in found {
        let out = ok(lbrx().args(["inspect", "--json"]).arg(&p));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["tensor_count"].as_u64().unwrap() > 0, "{}", p.display());
        ok(lbrx().args(["inspect", "--tensors"]).arg(&p));
        // And converts: the copy re-reads equal.
        let d = tempfile::tempdir().unwrap();
        let copy = d.path().join("copy.safetensors");
        ok(lbrx().arg("convert").arg(&p).arg(&copy));
        let (a, b) = (
            lbrx_formats::open(&p).unwrap(),
            lbrx_formats::open(&copy).unwrap(),
        );
        for (i, t) in a.tensors().iter().enumerate() {
            let j = b.tensors().iter().position(|u| u.name == t.name).unwrap();
            assert_eq!(
                a.view(i).unwrap().bytes(),
                b.view(j).unwrap().bytes(),
                "{}",
                t.name
            );
        }
    }
}

fn checksum(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(path).unwrap().hash(&mut h);
    h.finish()
}

fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sigkill_halfway_leaves_no_output_and_an_untouched_source() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("big.safetensors");
    write_big(&src, 32, 2 << 20); // 32 x 8 MiB of F32 = 256 MiB
    let before = checksum(&src);
    for (case, name, extra) in [
        ("file", "out.safetensors", vec!["--dtype", "bf16"]),
        (
            "dir",
            "outdir",
            vec!["--dtype", "f16", "--max-shard-size", "40MB"],
        ),
    ] {
        let work = d.path().join(case);
        std::fs::create_dir(&work).unwrap();
        let dst = work.join(name);
        let mut child = lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&dst)
            .args(&extra)
            .args(["--threads", "1", "--quiet"])
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        // Output is 128 MiB: kill once a quarter of it is written.
        while written_bytes(child.id()) < 32 << 20 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "conversion finished before it could be killed"
            );
            assert!(t0.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = written_bytes(child.id());
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(at < 120 << 20, "killed too late ({at} bytes written)");
        assert!(!dst.exists(), "{} exists after SIGKILL", dst.display());
        let leftovers: Vec<_> = std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        assert_eq!(checksum(&src), before, "source changed");
        // A rerun completes.
        ok(lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&dst)
            .args(&extra)
            .arg("--quiet"));
        assert!(dst.exists());
    }
    assert_eq!(checksum(&src), before);
}

#[test]
fn refuses_to_overwrite_its_source_or_an_existing_output() {
    let ex = repo_root().join("examples/tiny-llama");
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("m");
    ok(lbrx().arg("convert").arg(&ex).arg(&copy).arg("--quiet"));
    let shard = copy.join("model-00001-of-00002.safetensors");
    for dst in [shard.clone(), copy.clone(), d.path().to_path_buf()] {
        let out = lbrx()
            .args(["convert", "--force", "--quiet"])
            .arg(&copy)
            .arg(&dst)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("refusing to write over the source"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let single = d.path().join("one.safetensors");
    ok(lbrx().arg("convert").arg(&shard).arg(&single));
    let out = lbrx()
        .arg("convert")
        .arg(&shard)
        .arg(&single)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    ok(lbrx()
        .args(["convert", "--force", "--dtype", "f32"])
        .arg(&shard)
        .arg(&single));
    assert_same_dir(&copy, &ex);
}

#[test]
fn dry_run_writes_nothing_and_json_is_machine_readable() {
    let ex = repo_root().join("examples/tiny-llama");
    let d = tempfile::tempdir().unwrap();
    let dst = d.path().join("plan");
    let out = ok(lbrx()
        .args([
            "convert",
            "--dry-run",
            "--json",
            "--dtype",
            "bf16",
            "--max-shard-size",
            "1MB",
        ])
        .arg(&ex)
        .arg(&dst));
    assert!(!dst.exists());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["jobs"].as_array().unwrap().len(), 21);
    assert!(plan["files"].as_array().unwrap().len() >= 3);
    let human = ok(lbrx()
        .args(["convert", "--dry-run", "--dtype", "f16"])
        .arg(&ex)
        .arg(&dst));
    assert!(String::from_utf8_lossy(&human.stdout).contains("cast BF16->F16"));
    // Piped: no progress bar on stderr.
    let run = ok(lbrx()
        .args(["convert", "--dtype", "f16"])
        .arg(&ex)
        .arg(&dst));
    assert!(
        run.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let insp = ok(lbrx().args(["inspect", "--json"]).arg(&dst));
    let v: serde_json::Value = serde_json::from_slice(&insp.stdout).unwrap();
    assert_eq!(v["dtypes"]["F16"]["tensors"], 21);
    assert_eq!(v["parameters"], 1_713_408);
}

#[test]
fn unknown_inputs_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.txt");
    std::fs::write(&p, "hello").unwrap();
    let out = lbrx().arg("inspect").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized file format"));
    let out = lbrx()
        .arg("inspect")
        .arg(d.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file"));
}

#[test]
fn ggml_type_table_matches_the_reference_build() {
    let Some(shared) = shared_dir() else { return };
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared.join("golden/ggml-quants/manifest.json")).unwrap(),
    )
    .unwrap();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    for c in cases {
        let id = c["ggml_type_id"].as_u64().unwrap() as u32;
        let d = lbrx_core::DType::from_gguf_id(id).unwrap_or_else(|e| panic!("id {id}: {e:?}"));
        let name = c["type"].as_str().unwrap();
        assert!(
            d.name().eq_ignore_ascii_case(name),
            "id {id}: {} vs {name}",
            d.name()
        );
        assert_eq!(
            d.info().block_size as u64,
            c["block_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            d.info().type_size as u64,
            c["type_size"].as_u64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn dash_q_means_quantize_and_needs_an_mlx_destination() {
    let d = tempfile::tempdir().unwrap();
    let ex = repo_root().join("examples/tiny-llama");
    let dst = d.path().join("x.gguf");
    let out = lbrx()
        .arg("convert")
        .arg(&ex)
        .arg(&dst)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--to mlx") && err.contains("--quiet"), "{err}");
    assert!(!dst.exists());
    // --quiet is spelled out in every command
    for cmd in ["quantize", "health", "repair-index", "clone"] {
        let help = lbrx().args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(!text.contains("-q,"), "{cmd}: {text}");
    }
}

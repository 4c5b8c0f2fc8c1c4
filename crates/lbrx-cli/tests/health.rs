//! `health`, `repair-index`, workspaces and the Hugging Face cache: each kind of index damage is reported
//! precisely and repaired (checked by a transformers-style loader in Python); the cache never changes; a killed
//! clone/convert/repair-index never leaves a workspace that passes for complete.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    repo_root().join("examples/tiny-llama")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

fn index_path(d: &Path) -> PathBuf {
    d.join("model.safetensors.index.json")
}

fn edit_index(d: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(index_path(d)).unwrap()).unwrap();
    f(v["weight_map"].as_object_mut().unwrap());
    std::fs::write(index_path(d), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn health_json(p: &Path) -> (i32, Value) {
    let out = lbrx().args(["health", "--json"]).arg(p).output().unwrap();
    let code = out.status.code().unwrap();
    (
        code,
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

fn codes(report: &Value) -> Vec<(String, String, Option<String>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
                f["tensor"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn hashes(py: &Path, cmd: &str, dir: &Path) -> BTreeMap<String, String> {
    let out = dir.with_extension(format!("{cmd}.json"));
    oracle(py, &[&cmd, &dir, &out]);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

#[test]
fn every_kind_of_index_damage_is_reported_and_repaired() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let reference_index = std::fs::read(index_path(&example())).unwrap();
    let source_tensors = hashes(&py, "shard-tensors", &example());
    type Damage = fn(&Path);
    // (name, damage, expected error findings (code, tensor), whether the repaired index equals the original)
    type Expected = Vec<(&'static str, Option<&'static str>)>;
    let cases: Vec<(&str, Damage, Expected, bool)> = vec![
        (
            "wrong-shard",
            |m| {
                edit_index(m, |w| {
                    w.insert("model.norm.weight".into(), SHARD1.into());
                })
            },
            vec![("not-in-shard", Some("model.norm.weight"))],
            true,
        ),
        (
            "not-in-index",
            |m| {
                edit_index(m, |w| {
                    w.remove("lm_head.weight");
                })
            },
            vec![("not-in-index", Some("lm_head.weight"))],
            true,
        ),
        (
            "stale-entry",
            |m| {
                edit_index(m, |w| {
                    w.insert("model.layers.9.mlp.up_proj.weight".into(), SHARD2.into());
                })
            },
            vec![("not-in-shard", Some("model.layers.9.mlp.up_proj.weight"))],
            true,
        ),
        (
            "renamed-shard",
            |m| {
                std::fs::rename(
                    m.join(SHARD2),
                    m.join("model-00002-of-00002 (1).safetensors"),
                )
                .unwrap()
            },
            vec![("missing-shard", None), ("unreferenced-shard", None)],
            false,
        ),
        (
            "no-index",
            |m| std::fs::remove_file(index_path(m)).unwrap(),
            vec![("missing-index", None)],
            true,
        ),
        (
            "corrupt-index",
            |m| std::fs::write(index_path(m), b"{\"weight_map\": {\"a\": ").unwrap(),
            vec![("corrupt-index", None)],
            true,
        ),
    ];
    for (name, damage, expected, same_index) in cases {
        let m = d.path().join(name);
        copy_dir(&example(), &m);
        damage(&m);
        let (code, report) = health_json(&m);
        assert_eq!(code, 1, "{name}: {report:#}");
        let found = codes(&report);
        let errors: Vec<_> = found
            .iter()
            .filter(|(s, _, _)| s == "error")
            .map(|(_, c, t)| (c.as_str(), t.as_deref()))
            .collect();
        for e in &expected {
            assert!(errors.contains(e), "{name}: expected {e:?} in {errors:?}");
        }
        assert!(
            errors
                .iter()
                .all(|(c, _)| expected.iter().any(|(ec, _)| ec == c)),
            "{name}: unexpected findings {errors:?}"
        );
        // The Python loader refuses the damaged model (where it finds an index to follow).
        let fixed = d.path().join(format!("{name}-fixed"));
        let out = lbrx()
            .args(["repair-index", "--json"])
            .arg(&m)
            .arg(&fixed)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, report) = health_json(&fixed);
        assert_eq!(code, 0, "{name} after repair: {report:#}");
        assert_eq!(report["managed"], true);
        assert!(
            report["findings"].as_array().unwrap().is_empty(),
            "{name}: {report:#}"
        );
        if same_index {
            assert_eq!(
                std::fs::read(index_path(&fixed)).unwrap(),
                reference_index,
                "{name}: repaired index differs from transformers'"
            );
        }
        assert_eq!(
            hashes(&py, "index-tensors", &fixed),
            source_tensors,
            "{name}: tensors differ after repair"
        );
    }
}

#[test]
fn unrepairable_damage_is_reported_and_refused() {
    let d = tempfile::tempdir().unwrap();
    // A stray copy of a shard (byte-equal): health says so, repair-index leaves it out of the index and the
    // workspace.
    let dup = d.path().join("dup");
    copy_dir(&example(), &dup);
    std::fs::copy(dup.join(SHARD1), dup.join("model-extra.safetensors")).unwrap();
    let (code, report) = health_json(&dup);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "stray-shard"
                && f["file"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("model-extra.safetensors"))),
        "{report:#}"
    );
    let fixed = d.path().join("dup-fixed");
    let out = ok(lbrx().arg("repair-index").arg(&dup).arg(&fixed));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("left out model-extra.safetensors"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!fixed.join("model-extra.safetensors").exists());
    let index = std::fs::read_to_string(fixed.join("model.safetensors.index.json")).unwrap();
    assert!(!index.contains("model-extra"), "{index}");
    assert_eq!(health_json(&fixed).0, 0);
    // The same tensor with different bytes in two files: reported and refused, naming both and the tensor.
    let diff = d.path().join("diff");
    copy_dir(&example(), &diff);
    let mut bytes = std::fs::read(diff.join(SHARD1)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(diff.join("model.safetensors"), &bytes).unwrap();
    let (code, report) = health_json(&diff);
    assert_eq!(code, 1);
    assert!(
        codes(&report)
            .iter()
            .any(|(_, c, t)| c == "duplicate-tensor" && t.is_some()),
        "{report:#}"
    );
    let out = lbrx()
        .arg("repair-index")
        .arg(&diff)
        .arg(d.path().join("diff-fixed"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different bytes")
            && err.contains("model.safetensors")
            && err.contains(SHARD1),
        "{err}"
    );
    assert!(!d.path().join("diff-fixed").exists());
    // A truncated shard, a lost shard, a config that disagrees: reported, and a deep check finds NaN.
    let bad = d.path().join("bad");
    copy_dir(&example(), &bad);
    let full = std::fs::read(bad.join(SHARD2)).unwrap();
    std::fs::write(bad.join(SHARD2), &full[..full.len() / 2]).unwrap();
    let (code, report) = health_json(&bad);
    assert_eq!(code, 1);
    assert!(
        codes(&report)
            .iter()
            .any(|(_, c, _)| c == "truncated-shard"),
        "{report:#}"
    );
    let cfgd = d.path().join("cfg");
    copy_dir(&example(), &cfgd);
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(cfgd.join("config.json")).unwrap()).unwrap();
    cfg["num_hidden_layers"] = 3.into();
    cfg["hidden_size"] = 128.into();
    cfg["vocab_size"] = 500.into();
    std::fs::write(cfgd.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    std::fs::write(cfgd.join("tokenizer.json"), b"{ nope").unwrap();
    let (code, report) = health_json(&cfgd);
    assert_eq!(code, 1);
    let c: Vec<_> = codes(&report).into_iter().map(|(_, c, _)| c).collect();
    for want in [
        "config-layers",
        "config-hidden",
        "config-vocab",
        "corrupt-tokenizer",
    ] {
        assert!(c.iter().any(|x| x == want), "{want} not in {c:?}");
    }
    // NaN in a bf16 weight: only --deep reads the data.
    let nan = d.path().join("nan");
    copy_dir(&example(), &nan);
    let src = lbrx_formats::open(&nan).unwrap();
    let t = src
        .tensors()
        .iter()
        .find(|t| t.name == "model.norm.weight")
        .unwrap()
        .clone();
    let shard = src.files()[t.file].path.clone();
    drop(src);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[t.offset as usize..t.offset as usize + 2].copy_from_slice(&0x7fc0u16.to_le_bytes());
    std::fs::write(&shard, bytes).unwrap();
    assert_eq!(health_json(&nan).0, 0);
    let out = lbrx()
        .args(["health", "--deep", "--json"])
        .arg(&nan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        codes(&report)
            .iter()
            .any(|(_, c, t)| c == "nan" && t.as_deref() == Some("model.norm.weight")),
        "{report:#}"
    );
    // Could not check: exit 2.
    assert_eq!(
        lbrx()
            .arg("health")
            .arg(d.path().join("missing"))
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// Everything about a tree that a write would change: names, types, sizes, modes, mtimes, ctimes (a hard link
/// or chmod changes those), symlink targets and file contents. Access times are left out: following a symlink
/// updates the link's atime on Linux, which no reader can avoid.
fn tree_state(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let mut line = format!(
            "{rel} mode={:o} size={} mtime={}.{} ctime={}.{} nlink={}",
            m.mode(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.nlink()
        );
        if m.file_type().is_symlink() {
            line += &format!(" -> {}", std::fs::read_link(&p).unwrap().display());
        } else if m.is_file() {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).unwrap().hash(&mut h);
            line += &format!(" content={:x}", h.finish());
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        }
        out.push(line);
    }
    out.sort();
    out
}

/// Builds a hub cache holding the example as `acme/tiny` (blobs, a snapshot of symlinks, refs/main).
fn make_cache(root: &Path) -> PathBuf {
    let repo = root.join("hub/models--acme--tiny");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for (i, e) in std::fs::read_dir(example()).unwrap().flatten().enumerate() {
        let blob = format!("{:064x}", i + 1);
        std::fs::copy(e.path(), repo.join("blobs").join(&blob)).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(e.file_name()))
            .unwrap();
    }
    snap
}

#[test]
fn the_hugging_face_cache_is_read_never_written() {
    let d = tempfile::tempdir().unwrap();
    let snap = make_cache(d.path());
    let hub = d.path().join("hub");
    std::os::unix::fs::symlink(&hub, d.path().join("hub-link")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let before = tree_state(&hub);
    let run = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = lbrx();
        c.env("HF_HUB_CACHE", &hub).env_remove("HF_HOME");
        for a in args {
            c.arg(a);
        }
        c.output().unwrap()
    };
    // Reads work, from the snapshot path and by repo id.
    for out in [
        run(&[&"inspect", &snap]),
        run(&[&"health", &"--deep", &snap]),
        run(&[&"clone", &"acme/tiny", &d.path().join("ws1")]),
        run(&[&"clone", &"acme/tiny@main", &d.path().join("ws2")]),
        run(&[&"convert", &"--dtype", &"f16", &snap, &d.path().join("f16")]),
        run(&[&"repair-index", &snap, &d.path().join("ws3")]),
    ] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ws1 = d.path().join("ws1");
    assert!(ws1.join(".lbrx_workspace.json").is_file());
    assert!(!std::fs::symlink_metadata(ws1.join(SHARD1))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(health_json(&ws1).1["managed"], true);
    let insp = ok(lbrx().args(["inspect", "--json"]).arg(&ws1));
    assert_eq!(
        serde_json::from_slice::<Value>(&insp.stdout).unwrap()["managed"],
        true
    );
    // Writes into the cache are refused, also through a symlinked path and through HF_HOME.
    let inside = [
        hub.join("models--acme--tiny/out"),
        snap.join("x.safetensors"),
        d.path().join("hub-link/models--acme--tiny/new"),
        hub.clone(),
    ];
    for dst in &inside {
        for out in [
            run(&[&"convert", &ws1, dst]),
            run(&[&"convert", &ws1.join(SHARD1), dst]),
            run(&[&"clone", &ws1, dst]),
            run(&[&"repair-index", &ws1, dst]),
            run(&[&"convert", &"--force", &ws1, dst]),
        ] {
            assert_eq!(out.status.code(), Some(1), "{}", dst.display());
            assert!(
                String::from_utf8_lossy(&out.stderr)
                    .contains("refusing to write inside the Hugging Face cache"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = lbrx()
        .env_remove("HF_HUB_CACHE")
        .env("HF_HOME", d.path())
        .arg("clone")
        .arg(&ws1)
        .arg(hub.join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tree_state(&hub), before, "the cache changed");
}

fn big_model(dir: &Path) -> PathBuf {
    let single = dir.join("big.safetensors");
    write_big(&single, 24, 2 << 20); // 192 MiB
    let m = dir.join("big");
    ok(lbrx()
        .args(["convert", "--quiet", "--max-shard-size", "50MB"])
        .arg(&single)
        .arg(&m));
    std::fs::remove_file(single).unwrap();
    std::fs::remove_file(m.join(".lbrx_workspace.json")).unwrap();
    m
}

#[test]
fn killed_operations_never_leave_a_workspace_that_passes_for_complete() {
    let d = tempfile::tempdir().unwrap();
    let src = big_model(d.path());
    let ops: [(&str, Vec<&str>); 3] = [
        ("clone", vec!["clone"]),
        ("convert", vec!["convert", "--dtype", "f16"]),
        ("repair", vec!["repair-index"]),
    ];
    let mut kills = 0;
    for (name, args) in &ops {
        for (i, delay_ms) in [1u64, 5, 15, 40, 80, 150, 300].iter().enumerate() {
            let work = d.path().join(format!("{name}-{i}"));
            std::fs::create_dir(&work).unwrap();
            let ws = work.join("ws");
            let mut child = lbrx()
                .args(args)
                .arg("--quiet")
                .arg(&src)
                .arg(&ws)
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(*delay_ms)
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            if child.try_wait().unwrap().is_none() {
                kills += 1;
            }
            let _ = child.kill();
            child.wait().unwrap();
            for e in std::fs::read_dir(&work).unwrap().flatten() {
                let p = e.path();
                let healthy = health_json(&p).0 == 0;
                if p == ws {
                    assert!(
                        p.join(".lbrx_workspace.json").is_file(),
                        "{name}: workspace without sentinel"
                    );
                    assert!(healthy, "{name}: finished workspace is not healthy");
                    assert_eq!(lbrx_convert_ws_complete(&p), Some(true));
                } else {
                    assert!(
                        !healthy,
                        "{name}: partial output {} passes health",
                        p.display()
                    );
                }
            }
            ok(lbrx()
                .args(args)
                .args(["--quiet", "--force"])
                .arg(&src)
                .arg(&ws));
            assert_eq!(health_json(&ws).0, 0);
        }
    }
    assert!(
        kills >= 6,
        "too few operations were actually interrupted ({kills})"
    );
}

fn lbrx_convert_ws_complete(p: &Path) -> Option<bool> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(p.join(".lbrx_workspace.json")).ok()?).ok()?;
    v["complete"].as_bool()
}

#[test]
fn gguf_health_checks_headers_and_file_type() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("tiny.gguf");
    ok(lbrx()
        .args(["convert", "--quiet", "--dtype", "f16"])
        .arg(example())
        .arg(&g));
    assert_eq!(health_json(&g).0, 0);
    let out = lbrx().args(["health", "--deep"]).arg(&g).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // general.file_type that contradicts the tensors: 7 = mostly Q8_0, but the matrices are F16.
    let src = lbrx_formats::open(&g).unwrap();
    let mut meta = src.metadata().clone();
    meta.insert("general.file_type", lbrx_core::Value::U32(7));
    let specs: Vec<_> = src
        .tensors()
        .iter()
        .map(|t| lbrx_formats::gguf::GgufTensorSpec {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect();
    let layout = lbrx_formats::gguf::gguf_layout(&meta, &specs).unwrap();
    let mut bytes = layout.header.clone();
    bytes.resize(layout.size as usize, 0);
    for (i, &(off, len)) in layout.tensors.iter().enumerate() {
        bytes[off as usize..(off + len) as usize].copy_from_slice(src.view(i).unwrap().bytes());
    }
    let bad = d.path().join("bad-ftype.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, report) = health_json(&bad);
    assert_eq!(code, 1);
    assert!(
        codes(&report).iter().any(|(_, c, _)| c == "file-type"),
        "{report:#}"
    );
    let cut = d.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, report) = health_json(&cut);
    assert_eq!(code, 1);
    assert!(
        codes(&report)
            .iter()
            .any(|(_, c, _)| c == "truncated-shard"),
        "{report:#}"
    );
}

/// Writes a SafeTensors file with zeroed tensors of the given shapes and dtypes.
fn zero_file(path: &Path, tensors: &[(&str, lbrx_core::DType, Vec<u64>)]) {
    let t: Vec<_> = tensors
        .iter()
        .map(|(n, d, s)| (n.to_string(), *d, s.clone(), Vec::new()))
        .collect();
    write_tensors(path, &t);
}

#[test]
fn mlx_quantization_config_is_checked_against_the_tensors() {
    use lbrx_core::DType::{BF16, U32};
    let d = tempfile::tempdir().unwrap();
    let make = |name: &str, scales_cols: u64, with_biases: bool| -> PathBuf {
        let m = d.path().join(name);
        std::fs::create_dir(&m).unwrap();
        // 4-bit, group 64: a [128, 256] weight packs into [128, 32] uint32 with [128, 4] scales and biases.
        let mut t = vec![
            ("model.embed_tokens.weight", U32, vec![512, 32]),
            ("model.embed_tokens.scales", BF16, vec![512, 4]),
            ("model.embed_tokens.biases", BF16, vec![512, 4]),
            ("model.layers.0.mlp.down_proj.weight", U32, vec![128, 32]),
            (
                "model.layers.0.mlp.down_proj.scales",
                BF16,
                vec![128, scales_cols],
            ),
            ("model.norm.weight", BF16, vec![256]),
        ];
        if with_biases {
            t.push((
                "model.layers.0.mlp.down_proj.biases",
                BF16,
                vec![128, scales_cols],
            ));
        }
        zero_file(&m.join("model.safetensors"), &t);
        let cfg = serde_json::json!({"hidden_size": 256, "vocab_size": 512, "num_hidden_layers": 1,
            "tie_word_embeddings": true, "quantization": {"group_size": 64, "bits": 4}});
        std::fs::write(m.join("config.json"), cfg.to_string()).unwrap();
        std::fs::copy(example().join("tokenizer.json"), m.join("tokenizer.json")).unwrap();
        m
    };
    let good = make("good", 4, true);
    let (code, report) = health_json(&good);
    assert_eq!(code, 0, "{report:#}");
    let (code, report) = health_json(&make("no-biases", 4, false));
    assert_eq!(code, 1);
    assert!(
        codes(&report).iter().any(|(_, c, t)| c == "quant-missing"
            && t.as_deref() == Some("model.layers.0.mlp.down_proj.weight")),
        "{report:#}"
    );
    let (code, report) = health_json(&make("bad-scales", 8, true));
    assert_eq!(code, 1);
    assert!(
        codes(&report).iter().any(|(_, c, _)| c == "quant-shape"),
        "{report:#}"
    );
}

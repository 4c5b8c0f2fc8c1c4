//! Faults made for real: a full tmpfs (the space check, a reservation that fails, assets that do not fit at
//! commit time), a read-only mount, write errors (EIO) and silent corruption from a preloaded shim
//! (`faults/shim.c`, compiled here), signals at random moments, two runs racing to one destination, a source
//! truncated while it is read. Each asserts the exit code, one clear error line, nothing left behind, and the
//! source's bytes and mtimes unchanged. Tests that need `mount` (root) say SKIP where it is refused.

#![allow(clippy::print_stderr)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, read_only: bool) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = format!("size={size}");
        if read_only {
            opts.push_str(",ro");
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Every file below `dir` (hidden ones too), relative.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// Bytes and mtimes of every file below `dir`.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    files_below(dir)
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| {
            let p = dir.join(&n);
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            (n, std::fs::read(&p).unwrap(), m)
        })
        .collect()
}

/// Asserts a failed run: exit `code`, exactly one line on stderr, starting `error: ` and containing `what`.
fn assert_failed(o: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(lines.len(), 1, "one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[0].to_lowercase().contains(&what.to_lowercase()),
        "'{what}' not in: {err}"
    );
}

/// A source directory with one F32 model of about `mb` MB (converted with `--dtype f16`, so that its data
/// goes through the executor's writes) and an asset of `asset_mb` MB.
fn source(mb: u64, asset_mb: u64) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("model");
    std::fs::create_dir(&src).unwrap();
    let n = (mb / 4).max(1) as usize;
    write_big(&src.join("model.safetensors"), n, 1 << 20);
    if asset_mb > 0 {
        std::fs::write(
            src.join("tokenizer.json"),
            vec![b' '; (asset_mb << 20) as usize],
        )
        .unwrap();
        std::fs::write(src.join("config.json"), b"{}").unwrap();
    }
    (d, src)
}

fn convert(src: &Path, dst: &Path, extra: &[&str]) -> Output {
    convert_with(lbrx(), src, dst, extra)
}

/// `lbrx convert SRC DST --dtype f16 --quiet EXTRA` run from `cmd` (the lbrx command, with its environment).
fn convert_with(mut cmd: Command, src: &Path, dst: &Path, extra: &[&str]) -> Output {
    cmd.arg("convert")
        .arg(src)
        .arg(dst)
        .args(["--dtype", "f16", "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_fails_cleanly_at_every_point() {
    let Some(fs) = Tmpfs::mount("24m", false) else {
        return;
    };
    let (_keep, src) = source(64, 0);
    let before = snapshot(&src);
    // the plan does not fit: refused before anything is written, with the numbers
    let o = convert(&src, &fs.path().join("out.safetensors"), &[]);
    assert_failed(&o, 1, "free");
    assert!(
        files_below(fs.path()).is_empty(),
        "{:?}",
        files_below(fs.path())
    );
    // without the check: the space reservation fails
    let o = convert(
        &src,
        &fs.path().join("out.safetensors"),
        &["--no-space-check"],
    );
    assert_failed(&o, 1, "no space left");
    assert!(
        files_below(fs.path()).is_empty(),
        "{:?}",
        files_below(fs.path())
    );
    // the tensors fit, the copied assets do not: the commit fails and removes its staging directory
    let (_keep2, src2) = source(8, 20);
    let before2 = snapshot(&src2);
    let o = convert(&src2, &fs.path().join("outdir"), &["--no-space-check"]);
    assert_failed(&o, 1, "no space left");
    assert!(
        files_below(fs.path()).is_empty(),
        "{:?}",
        files_below(fs.path())
    );
    assert!(
        snapshot(&src) == before && snapshot(&src2) == before2,
        "source changed"
    );
}

#[test]
fn a_read_only_destination_fails_cleanly() {
    let Some(fs) = Tmpfs::mount("64m", true) else {
        return;
    };
    let (_keep, src) = source(8, 0);
    let before = snapshot(&src);
    for dst in ["out.safetensors", "outdir", "out.gguf"] {
        let o = convert(&src, &fs.path().join(dst), &[]);
        assert_failed(&o, 1, "read-only");
    }
    assert!(files_below(fs.path()).is_empty());
    assert!(snapshot(&src) == before, "source changed");
}

/// The fault shim, compiled once per test run; `None` without a C compiler.
fn shim() -> Option<PathBuf> {
    let out = std::env::temp_dir().join(format!("lbrx-fault-shim-{}.so", std::process::id()));
    if out.is_file() {
        return Some(out);
    }
    let c = repo_root().join("crates/lbrx-cli/tests/faults/shim.c");
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&c)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: no C compiler for the fault shim");
        return None;
    }
    Some(out)
}

fn with_fault(fault: &str, dir: &Path, src: &Path, dst: &Path, extra: &[&str]) -> Output {
    let mut cmd = lbrx();
    cmd.env("LD_PRELOAD", shim().unwrap())
        .env("LBRX_FAULT", fault)
        .env("LBRX_FAULT_DIR", dir);
    convert_with(cmd, src, dst, extra)
}

#[test]
fn write_errors_and_silent_corruption_leave_nothing() {
    if shim().is_none() {
        return;
    }
    let (_keep, src) = source(16, 1);
    let before = snapshot(&src);
    let out = tempfile::tempdir().unwrap();
    for dst in ["o.safetensors", "odir", "o.gguf"] {
        let o = with_fault("eio", out.path(), &src, &out.path().join(dst), &[]);
        assert_failed(&o, 1, "input/output error");
        assert!(
            files_below(out.path()).is_empty(),
            "{:?}",
            files_below(out.path())
        );
    }
    // data changed on its way to the disk: --verify catches it before the output is moved into place
    let o = with_fault(
        "flip",
        out.path(),
        &src,
        &out.path().join("v.safetensors"),
        &["--verify"],
    );
    assert_failed(&o, 1, "read back differently");
    assert!(files_below(out.path()).is_empty());
    // without the fault, --verify passes and the output reads as the source does
    let o = convert(&src, &out.path().join("v.safetensors"), &["--verify"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(snapshot(&src) == before, "source changed");
}

#[test]
fn signals_at_random_moments_leave_a_whole_output_or_nothing() {
    let (_keep, src) = source(512, 0);
    let before = snapshot(&src);
    let out = tempfile::tempdir().unwrap();
    let mut seed = std::process::id() as u64 | 1;
    let mut interrupted = 0;
    for (k, (sig, code)) in [("INT", 130), ("TERM", 143), ("HUP", 129)]
        .iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = std::time::Duration::from_millis(5 + seed % 200);
        let dst = out
            .path()
            .join(if k % 2 == 0 { "o.safetensors" } else { "odir" });
        let child = lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&dst)
            .args(["--dtype", "f16", "--quiet", "--force"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status();
        let o = child.wait_with_output().unwrap();
        if o.status.code().is_none() {
            // the signal came before lbrx installed its handlers: killed by it, with nothing written yet
            assert!(!dst.exists(), "{} left behind", dst.display());
        } else if o.status.code() == Some(0) {
            // finished before the signal: a whole output
            let src_r = lbrx_formats::open(&src.join("model.safetensors")).unwrap();
            let dst_r = lbrx_formats::open(&dst).unwrap();
            assert_eq!(src_r.tensors().len(), dst_r.tensors().len());
        } else {
            interrupted += 1;
            assert_failed(&o, *code, "interrupted");
            assert!(!dst.exists(), "{} left behind", dst.display());
        }
        let left: Vec<String> = files_below(out.path())
            .into_iter()
            .filter(|n| n.contains("lbrx-partial") || n.contains("lbrx-old"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dst);
        let _ = std::fs::remove_file(&dst);
    }
    assert!(
        interrupted > 0,
        "no run was interrupted: the model converts too fast for this test"
    );
    assert!(snapshot(&src) == before, "source changed");
}

#[test]
fn two_runs_racing_to_one_destination_never_mix() {
    let (_k1, a) = source(32, 0);
    let d = tempfile::tempdir().unwrap();
    // a second, different model of the same tensor names
    let b = d.path().join("b");
    std::fs::create_dir(&b).unwrap();
    ok(lbrx()
        .arg("convert")
        .arg(a.join("model.safetensors"))
        .arg(b.join("model.safetensors"))
        .args(["--dtype", "bf16", "--quiet"]));
    let out = tempfile::tempdir().unwrap();
    // what each run alone writes
    let (ra, rb) = (out.path().join("ref-a.gguf"), out.path().join("ref-b.gguf"));
    assert!(convert(&a, &ra, &[]).status.success());
    assert!(convert(&b, &rb, &[]).status.success());
    let (ra, rb) = (std::fs::read(&ra).unwrap(), std::fs::read(&rb).unwrap());
    for round in 0..4 {
        for force in [false, true] {
            let dst = out.path().join(format!("race-{round}-{force}.gguf"));
            let spawn = |m: &Path| {
                let mut c = lbrx();
                c.arg("convert")
                    .arg(m)
                    .arg(&dst)
                    .args(["--dtype", "f16", "--quiet"])
                    .stderr(std::process::Stdio::piped());
                if force {
                    c.arg("--force");
                }
                c.spawn().unwrap()
            };
            let (p, q) = (spawn(&a), spawn(&b));
            let (p, q) = (p.wait_with_output().unwrap(), q.wait_with_output().unwrap());
            let wins = [&p, &q].iter().filter(|o| o.status.success()).count();
            assert!(wins >= 1, "neither run finished");
            for o in [&p, &q] {
                if !o.status.success() {
                    assert!(!force, "with --force both should finish");
                    assert_failed(o, 1, "already exists");
                }
            }
            let got = std::fs::read(&dst).unwrap();
            assert!(
                got == ra || got == rb,
                "the output is a mix of the two runs"
            );
        }
    }
    let left: Vec<String> = files_below(out.path())
        .into_iter()
        .filter(|n| n.contains("lbrx-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_source_truncated_while_read_is_an_error_not_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    let out = tempfile::tempdir().unwrap();
    let mut seen = false;
    for delay in [30, 10, 60, 3, 120, 20] {
        write_big(&src, 64, 1 << 20);
        let dst = out.path().join("o.safetensors");
        let child = lbrx()
            .arg("convert")
            .arg(&src)
            .arg(&dst)
            .args(["--dtype", "f16", "--quiet", "--threads", "1", "--force"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&src)
            .unwrap()
            .set_len(50 << 20)
            .unwrap();
        let o = child.wait_with_output().unwrap();
        if o.status.success() {
            continue;
        }
        assert_failed(&o, 1, "truncated");
        assert!(
            files_below(out.path()).is_empty(),
            "{:?}",
            files_below(out.path())
        );
        seen = true;
        break;
    }
    assert!(seen, "every run finished before the truncation");
}

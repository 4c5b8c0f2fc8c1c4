//! Helpers shared by the CLI tests: the binary, the repo, `../shared`, and the Python reference venv.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `lbrx` binary under test.
pub fn lbrx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbrx"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn required() -> bool {
    std::env::var("LBRX_REQUIRE_REFERENCE").is_ok_and(|v| v == "1")
}

/// `../shared` (or `$LBRX_SHARED`); `None` only when neither exists and references are not required.
pub fn shared_dir() -> Option<PathBuf> {
    let p = std::env::var_os("LBRX_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but {} is missing",
        p.display()
    );
    eprintln!("SKIP: {} not found", p.display());
    None
}

/// The reference venv's python (`$LBRX_PYTHON`, else `.venv/bin/python`); `None` when absent and not required.
pub fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LBRX_PYTHON").map(PathBuf::from),
        Some(repo_root().join(".venv/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.exists() {
            return Some(c);
        }
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but no reference python (run scripts/setup-python.sh)"
    );
    eprintln!("SKIP: no reference python venv; run scripts/setup-python.sh");
    None
}

/// Runs `tests/oracle/SCRIPT` with the reference python and `args`, asserting success.
pub fn run_oracle(py: &Path, script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut c = Command::new(py);
    c.arg(
        repo_root()
            .join("crates/lbrx-cli/tests/oracle")
            .join(script),
    );
    for a in args {
        c.arg(a);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{script} {:?} failed:\n{}",
        args.iter()
            .map(|a| a.as_ref().to_os_string())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the SafeTensors oracle script with `args`, asserting success.
pub fn oracle(py: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "safetensors_oracle.py", args);
}

/// Runs a command, asserting success, returning its output.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Names and contents of every file in a directory, sorted.
pub fn dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Asserts two directories hold the same file names with the same bytes (lbrx's workspace sentinel aside).
pub fn assert_same_dir(ours: &Path, reference: &Path) {
    let strip = |v: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .filter(|(n, _)| n != ".lbrx_workspace.json")
            .collect()
    };
    let (a, b) = (strip(dir_files(ours)), strip(dir_files(reference)));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "file names differ");
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{n}: bytes differ ({} vs {} bytes)",
            x.len(),
            y.len()
        );
    }
}

/// Writes a SafeTensors file with lbrx's writer: (name, dtype, shape, data), in the header's order; an empty
/// `data` writes zeros.
pub fn write_tensors(path: &Path, tensors: &[(String, lbrx_core::DType, Vec<u64>, Vec<u8>)]) {
    let specs: Vec<lbrx_formats::safetensors::OutTensor> = tensors
        .iter()
        .map(|(n, d, s, _)| lbrx_formats::safetensors::OutTensor {
            name: n.clone(),
            dtype: *d,
            shape: s.clone(),
        })
        .collect();
    let members: Vec<usize> = (0..specs.len()).collect();
    let layout = lbrx_formats::safetensors::header_bytes(&specs, &members, None).unwrap();
    let mut bytes = layout.header.clone();
    bytes.resize(layout.size as usize, 0);
    for p in &layout.tensors {
        let data = &tensors[p.tensor].3;
        if !data.is_empty() {
            bytes[p.offset as usize..(p.offset + p.len) as usize].copy_from_slice(data);
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes a single-file model of `n_tensors` F32 tensors of `elems` elements each (pseudo-random bytes).
pub fn write_big(path: &Path, n_tensors: usize, elems: u64) {
    use std::io::Write;
    let tensors: Vec<lbrx_formats::safetensors::OutTensor> = (0..n_tensors)
        .map(|i| lbrx_formats::safetensors::OutTensor {
            name: format!("layers.{i}.weight"),
            dtype: lbrx_core::DType::F32,
            shape: vec![elems / 1024, 1024],
        })
        .collect();
    let members: Vec<usize> = (0..n_tensors).collect();
    let layout = lbrx_formats::safetensors::header_bytes(&tensors, &members, None).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&layout.header).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = layout.size - layout.header.len() as u64;
    while left > 0 {
        for c in buf.chunks_exact_mut(4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&(((x >> 40) as f32) / 1e7 - 0.8).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// A llama.cpp tool built by scripts/build-llama-tools.sh (`$LBRX_LLAMA_BIN/NAME`); `None` when absent and not required.
pub fn llama_tool(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LBRX_LLAMA_BIN") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but {name} was not built (scripts/build-llama-tools.sh)"
    );
    eprintln!("SKIP: {name} not built; run scripts/build-llama-tools.sh and set LBRX_LLAMA_BIN");
    None
}

/// llama.cpp's source tree from the llama-cpp-python sdist (`$LBRX_LLAMA_SRC`); `None` when absent and not
/// required.
pub fn llama_src() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LBRX_LLAMA_SRC").map(PathBuf::from) {
        if p.join("convert_hf_to_gguf.py").is_file() {
            return Some(p);
        }
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but LBRX_LLAMA_SRC does not hold llama.cpp's source"
    );
    eprintln!("SKIP: LBRX_LLAMA_SRC not set (scripts/build-llama-tools.sh fetches the source)");
    None
}

/// The MLX venv's python (`$LBRX_MLX_PYTHON`: mlx, mlx_lm); `None` when absent and not required.
pub fn mlx_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LBRX_MLX_PYTHON").map(PathBuf::from) {
        if p.exists() {
            return Some(p);
        }
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but LBRX_MLX_PYTHON is not set (scripts/setup-python.sh DIR scripts/requirements-mlx.txt)"
    );
    eprintln!("SKIP: no MLX python venv (LBRX_MLX_PYTHON)");
    None
}

/// Asserts two MLX directories hold the same tensors (names, dtypes, shapes, bytes), index and config, as the
/// MLX venv's python (`mlx_compare.py`) reads them.
pub fn assert_same_mlx(mlx: &Path, ours: &Path, reference: &Path) {
    let out = ok(Command::new(mlx)
        .arg(repo_root().join("crates/lbrx-cli/tests/oracle/mlx_compare.py"))
        .arg(ours)
        .arg(reference));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["tensors", "config", "index", "header_metadata"] {
        assert_eq!(
            r[k],
            serde_json::json!([]),
            "{} vs {}: {k} differ",
            ours.display(),
            reference.display()
        );
    }
    assert!(r["count"].as_u64().unwrap() > 10, "{r}");
}

/// An importance matrix of `model` from llama-imatrix (text of the repository's README, small chunks), in
/// `format` (gguf or dat). Returns its path as a string (it goes into the output's metadata).
pub fn llama_imatrix(model: &Path, dir: &Path, format: &str) -> String {
    let tool = llama_tool("llama-imatrix").expect("llama-imatrix");
    let text = dir.join("calibration.txt");
    if !text.exists() {
        std::fs::write(&text, std::fs::read(repo_root().join("README.md")).unwrap()).unwrap();
    }
    let stem = model.file_stem().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("{stem}.imatrix.{format}"));
    ok(Command::new(tool)
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(&text)
        .arg("-o")
        .arg(&out)
        .args([
            "-c",
            "64",
            "--chunks",
            "8",
            "--output-format",
            format,
            "-t",
            "2",
        ]));
    out.to_string_lossy().into_owned()
}

/// The python of the ONNX/TensorFlow/TFLite/Keras reference venv (`$LBRX_FORMATS_PYTHON`, else
/// `.venv-tf/bin/python`); `None` when absent and not required.
pub fn formats_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LBRX_FORMATS_PYTHON").map(PathBuf::from),
        Some(repo_root().join(".venv-tf/bin/python")),
    ];
    if let Some(p) = candidates.into_iter().flatten().find(|c| c.exists()) {
        return Some(p);
    }
    assert!(
        !required(),
        "LBRX_REQUIRE_REFERENCE=1 but no formats python (scripts/setup-python.sh .venv-tf scripts/requirements-formats.txt)"
    );
    eprintln!("SKIP: no formats reference venv (LBRX_FORMATS_PYTHON)");
    None
}

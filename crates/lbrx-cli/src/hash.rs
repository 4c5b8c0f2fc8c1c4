//! `lbrx hash`: per-tensor and whole-model hashes as `llama-gguf-hash` prints them, for any format lbrx reads,
//! and `--check` against a saved manifest with its exit codes.

use crate::util::{out, out_json, CliResult};
use lbrx_convert::hash::{format_line, hash_source, Algo, CheckResult, Manifest};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `lbrx hash`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Model file or directory (GGUF, SafeTensors, PyTorch, NumPy, MLX ...).
    model: PathBuf,
    /// xxHash64 (the default when no algorithm is named).
    #[arg(long)]
    xxh64: bool,
    /// SHA-1.
    #[arg(long)]
    sha1: bool,
    /// SHA-256.
    #[arg(long)]
    sha256: bool,
    /// A UUIDv5 of the whole model (llama.cpp's namespace).
    #[arg(long)]
    uuid: bool,
    /// xxh64, sha1 and sha256.
    #[arg(long)]
    all: bool,
    /// Only the whole-model hashes.
    #[arg(long)]
    no_layer: bool,
    /// Compare with a manifest (a saved `lbrx hash` or `llama-gguf-hash` output); exit 0 when it matches,
    /// 1 on a mismatch, 3 when the manifest has nothing of this model, 4 when it has no known hash, 5 when it
    /// cannot be read.
    #[arg(short = 'c', long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: Args) -> CliResult<ExitCode> {
    let mut algos = Vec::new();
    for (on, algo) in [
        (a.xxh64 || a.all, Algo::Xxh64),
        (a.sha1 || a.all, Algo::Sha1),
        (a.sha256 || a.all, Algo::Sha256),
        (a.uuid, Algo::Uuid),
    ] {
        if on {
            algos.push(algo);
        }
    }
    let manifest = match &a.check {
        Some(p) => {
            let m = match Manifest::read(p) {
                Ok(m) => m,
                Err(e) => {
                    crate::print_error(&e);
                    return Ok(ExitCode::from(5));
                }
            };
            let kinds = m.kinds();
            if kinds.is_empty() {
                crate::print_error(&lbrx_core::Error::model(
                    p,
                    "the manifest has no known hash type (xxh64, sha1, sha256, uuid)",
                ));
                return Ok(ExitCode::from(4));
            }
            if !a.json {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                out(&format!(
                    "manifest  {}  {}\n",
                    p.display(),
                    names.join("  ")
                ))?;
            }
            if algos.is_empty() {
                // the strongest hash the manifest has
                algos.push(kinds[0]);
            }
            Some(m)
        }
        None => None,
    };
    if algos.is_empty() {
        algos.push(Algo::Xxh64);
    }
    let src = lbrx_formats::open(&a.model)?;
    crate::util::print_source_warnings(&*src);
    let label = a.model.display().to_string();
    let lines = hash_source(&*src, &label, &algos, a.no_layer)?;
    let outcome = manifest.as_ref().map(|m| m.outcome(&lines, &label));
    if a.json {
        let rows: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                let mut v = serde_json::to_value(l).unwrap_or_default();
                if let (Some(m), Some(o)) = (&manifest, v.as_object_mut()) {
                    o.insert("check".into(), m.verify(l).name().into());
                }
                v
            })
            .collect();
        let mut doc = serde_json::json!({ "model": label, "hashes": rows });
        if let Some(o) = outcome {
            doc["result"] = o.name().into();
        }
        out_json(&doc)?;
    } else {
        let mut text = String::new();
        for l in &lines {
            text += &format_line(l, manifest.as_ref().map(|m| m.verify(l)));
            text.push('\n');
        }
        if let (Some(p), Some(o)) = (&a.check, outcome) {
            text += &format!(
                "\nVerification results for {} - {}\n",
                p.display(),
                o.name()
            );
        }
        out(&text)?;
    }
    Ok(ExitCode::from(outcome.map_or(0, CheckResult::code)))
}

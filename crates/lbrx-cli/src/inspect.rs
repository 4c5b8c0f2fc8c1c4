//! `lbrx inspect`: a summary of a model (or the full tensor table), for people or as JSON.

use crate::util::{out, out_json, short_count, thousands, CliResult};
use lbrx_core::{human_bytes, DType, Format, Source, Value};
use lbrx_formats::gguf::GgufFile;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `lbrx inspect`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Model file or directory.
    path: PathBuf,
    /// List every tensor (name, dtype, shape, bytes, file offset).
    #[arg(long)]
    tensors: bool,
    /// Print JSON (always includes the tensor list).
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct DTypeStats {
    tensors: u64,
    params: u64,
    bytes: u64,
}

/// A metadata value as JSON, with its GGUF type (and element type for arrays).
fn kv_json(key: &str, v: &Value) -> serde_json::Value {
    let mut o = json!({"key": key, "type": v.kind().name(), "value": v.to_json()});
    if let Value::Array(k, items) = v {
        o["array_type"] = json!(k.name());
        o["count"] = json!(items.len());
    }
    o
}

/// Short text of a value for people: long arrays abbreviated.
fn short_value(v: &Value) -> String {
    match v {
        Value::Array(k, items) if items.len() > 8 => {
            let head: Vec<String> = items
                .iter()
                .take(5)
                .map(|i| i.to_json().to_string())
                .collect();
            format!(
                "[{}, ... ] ({} x {})",
                head.join(", "),
                items.len(),
                k.name()
            )
        }
        Value::Str(s) => s.clone(),
        other => other.to_json().to_string(),
    }
}

fn gguf_json(g: &GgufFile) -> serde_json::Value {
    let info = g.info();
    let kv: Vec<_> = g.metadata().iter().map(|(k, v)| kv_json(k, v)).collect();
    let tensors: Vec<_> = g
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"name": t.name, "type": t.dtype.name(), "type_id": t.dtype.info().gguf_id, "ne": g.ne(i),
                   "offset": t.offset - info.data_start, "data_offset": t.offset, "n_bytes": t.len})
        })
        .collect();
    json!({"version": info.version, "big_endian": info.big_endian, "alignment": info.alignment,
           "data_start": info.data_start, "kv": kv, "tensors": tensors})
}

pub(crate) fn run(a: Args) -> CliResult {
    let src = lbrx_formats::open(&a.path)?;
    let src: &dyn Source = &*src;
    let gguf = if src.format() == Format::Gguf {
        Some(GgufFile::open(&a.path)?)
    } else {
        None
    };
    let mut per: BTreeMap<DType, DTypeStats> = BTreeMap::new();
    let (mut params, mut bytes) = (0u64, 0u64);
    for t in src.tensors() {
        let s = per.entry(t.dtype).or_default();
        s.tensors += 1;
        s.params += t.elements();
        s.bytes += t.len;
        params += t.elements();
        bytes += t.len;
    }
    let file_bytes: u64 = src.files().iter().map(|f| f.size).sum();
    let workspace = lbrx_convert::read_workspace(&a.path);
    if a.json {
        let dtypes: serde_json::Map<_, _> = per
            .iter()
            .map(|(d, s)| {
                (
                    d.name().to_string(),
                    json!({"tensors": s.tensors, "parameters": s.params, "bytes": s.bytes}),
                )
            })
            .collect();
        let tensors: Vec<_> = src
            .tensors()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name, "dtype": t.dtype.name(), "shape": t.shape,
                    "file": src.files()[t.file].path, "offset": t.offset, "bytes": t.len,
                })
            })
            .collect();
        let files: Vec<_> = src
            .files()
            .iter()
            .map(|f| json!({"path": f.path, "size": f.size}))
            .collect();
        return out_json(&json!({
            "path": a.path,
            "format": src.format().name(),
            "files": files,
            "file_bytes": file_bytes,
            "tensor_count": src.tensors().len(),
            "parameters": params,
            "tensor_bytes": bytes,
            "dtypes": dtypes,
            "metadata": src.metadata().to_json(),
            "managed": workspace.is_some(),
            "workspace": workspace,
            "assets": src.assets(),
            "warnings": src.warnings(),
            "tensors": tensors,
            "gguf": gguf.as_ref().map(gguf_json),
        }));
    }
    let mut s = String::new();
    s += &format!("path:        {}\n", a.path.display());
    s += &format!(
        "format:      {} ({} file{}, {})\n",
        src.format(),
        src.files().len(),
        if src.files().len() == 1 { "" } else { "s" },
        human_bytes(file_bytes)
    );
    s += &format!("tensors:     {}\n", thousands(src.tensors().len() as u64));
    s += &format!(
        "managed:     {}\n",
        match &workspace {
            Some(w) => format!(
                "true (lbrx workspace: {} of {}, {})",
                w.operation, w.source, w.created_at
            ),
            None => "false".into(),
        }
    );
    s += &format!(
        "parameters:  {} ({})\n",
        short_count(params),
        thousands(params)
    );
    s += &format!("tensor data: {}\n", human_bytes(bytes));
    s += "dtypes:\n";
    for (d, st) in &per {
        s += &format!(
            "  {:<12} {:>7} tensors  {:>16} params  {:>12}\n",
            d.name(),
            thousands(st.tensors),
            thousands(st.params),
            human_bytes(st.bytes)
        );
    }
    if let Some(g) = &gguf {
        let i = g.info();
        let bpw = if params > 0 {
            bytes as f64 * 8.0 / params as f64
        } else {
            0.0
        };
        s +=
            &format!(
            "gguf:        version {}, {}, alignment {}, data at byte {}, {:.2} bits per weight\n",
            i.version,
            if i.big_endian { "big-endian" } else { "little-endian" },
            i.alignment,
            i.data_start,
            bpw
        );
    }
    if !src.metadata().is_empty() {
        s += "metadata:\n";
        for (k, v) in src.metadata().iter() {
            let mut text = short_value(v);
            if gguf.is_some() {
                text = format!("{} = {text}", v.kind().name());
            }
            if text.chars().count() > 120 {
                text = text.chars().take(117).collect::<String>() + "...";
            }
            s += &format!("  {k} = {text}\n");
        }
    }
    if !src.assets().is_empty() {
        let names: Vec<_> = src
            .assets()
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy())
            .collect();
        s += &format!("other files: {}\n", names.join(", "));
    }
    for w in src.warnings() {
        s += &format!("warning:     {w}\n");
    }
    if a.tensors {
        let w = src
            .tensors()
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        s += &format!(
            "\n{:<w$}  {:<8} {:<20} {:>12} {:>14}  file\n",
            "name", "dtype", "shape", "bytes", "offset"
        );
        for t in src.tensors() {
            let shape = format!("{:?}", t.shape);
            let file = src.files()[t.file]
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            s += &format!(
                "{:<w$}  {:<8} {:<20} {:>12} {:>14}  {}\n",
                t.name,
                t.dtype.name(),
                shape,
                thousands(t.len),
                thousands(t.offset),
                file
            );
        }
    }
    out(&s)
}

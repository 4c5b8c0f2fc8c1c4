//! `health`: a full check of a model file or directory that reports every problem it finds, not just the first:
//! shard headers, index <-> shard agreement, config.json against the tensors, MLX quantization tensors, tokenizer
//! files, the workspace sentinel, and (deep) every byte, counting NaN/Inf in float tensors.

mod config;
mod scan;

use crate::workspace::{read_workspace, WorkspaceInfo, SENTINEL};
use lbrx_core::{DType, Error, Result, TensorInfo};
use lbrx_formats::mmap::MappedFile;
use lbrx_formats::safetensors::{parse_header, read_index, INDEX_SUFFIX};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How bad a finding is: errors make a model unhealthy, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The model is broken: a loader fails or loads wrong weights.
    Error,
    /// Suspicious, but loaders accept it.
    Warning,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable machine-readable kind (`missing-shard`, `not-in-index`, `nan` ...).
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The file concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The tensor concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// What was checked.
    pub path: PathBuf,
    /// Whether `--deep` read every byte.
    pub deep: bool,
    /// Whether it is an lbrx workspace.
    pub managed: bool,
    /// The workspace sentinel, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceInfo>,
    /// Weight files examined.
    pub shards: usize,
    /// Tensors found in readable shards.
    pub tensors: usize,
    /// Every problem, errors first.
    pub findings: Vec<Finding>,
    /// No errors.
    pub healthy: bool,
}

struct Shard {
    name: String,
    path: PathBuf,
    tensors: Vec<TensorInfo>,
    /// The opened file, for formats whose tensor bytes are not raw at `TensorInfo::offset` (PyTorch views,
    /// deflated or big-endian storages); `None`: read raw with `pread`.
    source: Option<Box<dyn lbrx_core::Source>>,
}

#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(
        &mut self,
        severity: Severity,
        code: &'static str,
        file: Option<&Path>,
        tensor: Option<&str>,
        message: String,
    ) {
        self.findings.push(Finding {
            severity,
            code,
            message,
            file: file.map(Path::to_path_buf),
            tensor: tensor.map(str::to_string),
        });
    }
    fn error(
        &mut self,
        code: &'static str,
        file: Option<&Path>,
        tensor: Option<&str>,
        message: String,
    ) {
        self.add(Severity::Error, code, file, tensor, message);
    }
    fn warn(
        &mut self,
        code: &'static str,
        file: Option<&Path>,
        tensor: Option<&str>,
        message: String,
    ) {
        self.add(Severity::Warning, code, file, tensor, message);
    }
}

/// Checks a model directory or a single `.safetensors` file. `Err` means it could not be checked at all.
pub fn check(path: &Path, deep: bool) -> Result<HealthReport> {
    // a TensorFlow checkpoint prefix names no file itself
    let tf_prefix = lbrx_formats::detect(path).is_ok_and(|f| f == lbrx_core::Format::TensorFlow);
    if !tf_prefix {
        std::fs::metadata(path).map_err(|e| Error::io(path, "open", e))?;
    }
    let mut r = Report::default();
    let workspace = read_workspace(path);
    if let Some(ws) = &workspace {
        if !ws.complete {
            r.error(
                "incomplete-workspace",
                Some(&sentinel_path(path)),
                None,
                format!(
                    "the '{}' operation that created this workspace did not finish",
                    ws.operation
                ),
            );
        }
    }
    let read_only_format = |p: &Path| {
        matches!(
            lbrx_formats::detect(p),
            Ok(lbrx_core::Format::Onnx
                | lbrx_core::Format::Hdf5
                | lbrx_core::Format::TensorFlow
                | lbrx_core::Format::TfLite
                | lbrx_core::Format::Npz)
        )
    };
    let shards = if read_only_format(path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        read_source_shard(path, &name, &mut r).into_iter().collect()
    } else if path.is_dir() {
        check_dir(path, &mut r)?
    } else {
        let fmt = lbrx_formats::detect(path)?;
        match fmt {
            lbrx_core::Format::Safetensors => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                read_shard(path, &name, &mut r).into_iter().collect()
            }
            lbrx_core::Format::Gguf => check_gguf(path, &mut r),
            lbrx_core::Format::PyTorch => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                read_torch_shard(path, &name, &mut r).into_iter().collect()
            }
            other => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    what: format!("health checks of {other} files are not implemented yet"),
                })
            }
        }
    };
    check_scaled(path, &mut r);
    if deep {
        scan::deep_scan(&shards, &mut r);
    }
    let tensors = shards.iter().map(|s| s.tensors.len()).sum();
    r.findings.sort_by_key(|f| f.severity);
    let healthy = !r.findings.iter().any(|f| f.severity == Severity::Error);
    Ok(HealthReport {
        path: path.to_path_buf(),
        deep,
        managed: workspace.is_some(),
        workspace,
        shards: shards.len(),
        tensors,
        findings: r.findings,
        healthy,
    })
}

/// The scaled (ComfyUI) layers of a SafeTensors model: each layer's weight, scales and `comfy_quant` must
/// agree with one another (the shapes and types its format stores).
fn check_scaled(path: &Path, r: &mut Report) {
    if r.findings.iter().any(|f| f.severity == Severity::Error) {
        return;
    }
    let Ok(src) = lbrx_formats::open(path) else {
        return;
    };
    if !matches!(
        src.format(),
        lbrx_core::Format::Safetensors | lbrx_core::Format::SafetensorsDir
    ) {
        return;
    }
    if let Err(e) = crate::scaled::read::layers_of(src.as_ref()) {
        r.error("scaled-layer", Some(path), None, e.to_string());
    }
}

/// A GGUF file (or split model): headers, and `general.file_type` against the tensor types present.
fn check_gguf(path: &Path, r: &mut Report) -> Vec<Shard> {
    let src = match lbrx_formats::open(path) {
        Ok(s) => s,
        Err(e) => {
            let code = if matches!(
                e.malformed_kind(),
                Some(
                    lbrx_core::Malformed::Truncated { .. }
                        | lbrx_core::Malformed::OutOfBounds { .. }
                )
            ) {
                "truncated-shard"
            } else {
                "corrupt-shard"
            };
            r.error(code, Some(path), None, e.to_string());
            return Vec::new();
        }
    };
    if let Some(ft) = src
        .metadata()
        .get("general.file_type")
        .and_then(lbrx_core::Value::as_u64)
    {
        let present: BTreeSet<DType> = src
            .tensors()
            .iter()
            .filter(|t| t.shape.len() >= 2)
            .map(|t| t.dtype)
            .collect();
        match crate::ftype::file_type_by_id(ft) {
            // the recipe's default type, or the type of the file type's name (IQ2_S: mostly IQ2_XS from
            // llama-quantize's recipe, all IQ2_S from `convert --quant IQ2_S`)
            Some(f)
                if !present.is_empty()
                    && !present.contains(&f.default)
                    && !present.contains(&f.dense)
                    && !DType::from_name(f.name).is_some_and(|d| present.contains(&d)) =>
            {
                r.error(
                    "file-type",
                    Some(path),
                    None,
                    format!(
                        "general.file_type {ft} ({}) means mostly {}, but the weight matrices are {}",
                        f.name,
                        f.default,
                        present.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            None => r.warn(
                "file-type",
                Some(path),
                None,
                format!("general.file_type {ft} is not a type lbrx knows"),
            ),
            _ => {}
        }
    }
    src.files()
        .iter()
        .enumerate()
        .map(|(i, f)| Shard {
            name: f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: f.path.clone(),
            source: None,
            tensors: src
                .tensors()
                .iter()
                .filter(|t| t.file == i)
                .cloned()
                .collect(),
        })
        .collect()
}

fn sentinel_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(SENTINEL)
    } else {
        path.parent().unwrap_or(Path::new(".")).join(SENTINEL)
    }
}

fn read_shard(path: &Path, name: &str, r: &mut Report) -> Option<Shard> {
    let map = match MappedFile::open(path) {
        Ok(m) => m,
        Err(e) => {
            r.error("unreadable-shard", Some(path), None, e.to_string());
            return None;
        }
    };
    match parse_header(path, map.bytes(), map.len()) {
        Ok(h) => Some(Shard {
            name: name.to_string(),
            path: path.to_path_buf(),
            tensors: h.tensors,
            source: None,
        }),
        Err(e) => {
            let message = match &e {
                Error::Malformed { kind, loc } => match loc.offset {
                    Some(o) => format!("byte offset {o}: {kind}"),
                    None => kind.to_string(),
                },
                other => other.to_string(),
            };
            let (code, tensor) = match &e {
                Error::Malformed { kind, loc } => (
                    if matches!(
                        **kind,
                        lbrx_core::Malformed::Truncated { .. }
                            | lbrx_core::Malformed::HeaderPastEof { .. }
                            | lbrx_core::Malformed::OutOfBounds { .. }
                    ) {
                        "truncated-shard"
                    } else {
                        "corrupt-shard"
                    },
                    loc.tensor.clone(),
                ),
                _ => ("corrupt-shard", None),
            };
            r.error(code, Some(path), tensor.as_deref(), message);
            None
        }
    }
}

/// Opens one PyTorch checkpoint; what its reader refuses or skips becomes a finding.
fn read_torch_shard(path: &Path, name: &str, r: &mut Report) -> Option<Shard> {
    let opened = lbrx_formats::pytorch::PyTorchFile::open(path)
        .map(|f| Box::new(f) as Box<dyn lbrx_core::Source>);
    opened_shard(path, name, r, opened)
}

/// A file of a format lbrx only reads (ONNX, TensorFlow, TFLite, HDF5, npz): opening it checks its structure,
/// its lengths and the checksums it carries.
fn read_source_shard(path: &Path, name: &str, r: &mut Report) -> Option<Shard> {
    opened_shard(path, name, r, lbrx_formats::open(path))
}

fn opened_shard(
    path: &Path,
    name: &str,
    r: &mut Report,
    opened: Result<Box<dyn lbrx_core::Source>>,
) -> Option<Shard> {
    match opened {
        Ok(f) => {
            for w in f.warnings() {
                r.warn("skipped-object", Some(path), None, w.clone());
            }
            Some(Shard {
                name: name.to_string(),
                path: path.to_path_buf(),
                tensors: f.tensors().to_vec(),
                source: Some(f),
            })
        }
        Err(e) => {
            let text = e.to_string();
            let code = match e.malformed_kind() {
                Some(lbrx_core::Malformed::Malicious { .. }) => "malicious-checkpoint",
                Some(lbrx_core::Malformed::Truncated { .. }) => "truncated-shard",
                Some(lbrx_core::Malformed::Checksum { .. }) => "checksum-mismatch",
                _ => "corrupt-shard",
            };
            let tensor = match &e {
                Error::Malformed { loc, .. } => loc.tensor.clone(),
                _ => None,
            };
            r.error(code, Some(path), tensor.as_deref(), text);
            None
        }
    }
}

fn check_dir(dir: &Path, r: &mut Report) -> Result<Vec<Shard>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "list directory", e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    // SafeTensors shards, else PyTorch ones (`pytorch_model*.bin` and their index).
    let mut st_names: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    let mut index_suffix = INDEX_SUFFIX;
    let mut index_names: Vec<&String> =
        names.iter().filter(|n| n.ends_with(INDEX_SUFFIX)).collect();
    let mut read: fn(&Path, &str, &mut Report) -> Option<Shard> = read_shard;
    if st_names.is_empty() && index_names.is_empty() {
        let torch = lbrx_formats::pytorch::weight_files(&names);
        index_suffix = ".bin.index.json";
        index_names = names.iter().filter(|n| n.ends_with(index_suffix)).collect();
        st_names = names.iter().filter(|n| torch.contains(n)).collect();
        read = read_torch_shard;
    }
    if st_names.is_empty() && index_names.is_empty() {
        return Err(Error::Unsupported {
            path: dir.to_path_buf(),
            what: "no *.safetensors or pytorch_model*.bin files, and no shard index, to check"
                .into(),
        });
    }
    let shards: Vec<Shard> = st_names
        .iter()
        .filter_map(|n| read(&dir.join(n), n, r))
        .collect();
    let unreadable: BTreeSet<&str> = st_names
        .iter()
        .map(|n| n.as_str())
        .filter(|n| !shards.iter().any(|s| s.name == *n))
        .collect();

    // Duplicates across shards.
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in &shards {
        for t in &s.tensors {
            owners
                .entry(t.name.as_str())
                .or_default()
                .push(s.name.as_str());
        }
    }
    let mut strays: BTreeSet<String> = BTreeSet::new();
    if owners.values().any(|v| v.len() > 1) {
        // which copies are byte-equal (a stray file) and which differ
        let files: Vec<crate::shards::ShardFile> = shards
            .iter()
            .filter(|s| s.source.is_none())
            .map(|s| crate::shards::ShardFile {
                name: s.name.clone(),
                path: s.path.clone(),
                tensors: s
                    .tensors
                    .iter()
                    .map(|t| crate::shards::ShardTensor {
                        name: t.name.clone(),
                        kind: (t.dtype.name().to_string(), t.shape.clone()),
                        range: (t.offset, t.len),
                    })
                    .collect(),
            })
            .collect();
        let own = crate::shards::ownership(&files).unwrap_or_default();
        for (stray, of) in &own.strays {
            strays.insert(stray.clone());
            r.warn(
                "stray-shard",
                Some(&dir.join(stray)),
                None,
                format!(
                    "holds only byte-equal copies of tensors in {of} (a stray file); loaders that read the \
                     index ignore it, and `lbrx repair-index` leaves it out"
                ),
            );
        }
        for (t, in_shards) in &owners {
            if in_shards.len() < 2 || own.strays.iter().any(|s| in_shards.contains(&s.0.as_str())) {
                continue;
            }
            match &own.conflict {
                Some((c, a, b)) if c == t => r.error(
                    "duplicate-tensor",
                    Some(dir),
                    Some(t),
                    format!("tensor is in {a} and {b} with different bytes; remove the wrong file"),
                ),
                _ => r.error(
                    "duplicate-tensor",
                    Some(dir),
                    Some(t),
                    format!(
                        "tensor is in {} shards: {}",
                        in_shards.len(),
                        in_shards.join(", ")
                    ),
                ),
            }
        }
    }

    match index_names.as_slice() {
        [] if shards.len() > 1 => r.error(
            "missing-index",
            Some(dir),
            None,
            format!("{} shards but no *{index_suffix}; loaders cannot find the tensors (lbrx repair-index writes one)", shards.len()),
        ),
        [] => {}
        [index_name, rest @ ..] => {
            for extra in rest {
                r.warn("extra-index", Some(&dir.join(extra)), None, format!("a second index besides {index_name}"));
            }
            let index_path = dir.join(index_name);
            match read_index(&index_path) {
                Err(e) => r.error("corrupt-index", Some(&index_path), None, e.to_string()),
                Ok(idx) => {
                    let referenced: BTreeSet<&str> = idx.weight_map.values().map(String::as_str).collect();
                    for shard in &referenced {
                        if !names.iter().any(|n| n == shard) {
                            let n = idx.weight_map.values().filter(|s| s == shard).count();
                            r.error("missing-shard", Some(&index_path), None, format!("index names shard '{shard}' ({n} tensors), which does not exist"));
                        }
                    }
                    for (t, shard) in &idx.weight_map {
                        if unreadable.contains(shard.as_str()) || !names.iter().any(|n| n == shard) {
                            continue;
                        }
                        let holders = owners.get(t.as_str());
                        if !holders.is_some_and(|h| h.contains(&shard.as_str())) {
                            let elsewhere = match holders {
                                Some(h) => format!(" (it is in {})", h.join(", ")),
                                None if unreadable.is_empty() => " (no shard has it)".into(),
                                None => " (nor does any readable shard)".into(),
                            };
                            r.error("not-in-shard", Some(&index_path), Some(t), format!("index places it in '{shard}', which does not contain it{elsewhere}"));
                        }
                    }
                    for s in shards.iter().filter(|s| !strays.contains(&s.name)) {
                        if !referenced.contains(s.name.as_str()) {
                            r.error("unreferenced-shard", Some(&s.path), None, format!("shard with {} tensors is not referenced by {index_name}", s.tensors.len()));
                        }
                        for t in &s.tensors {
                            if !idx.weight_map.contains_key(&t.name) {
                                r.error("not-in-index", Some(&s.path), Some(&t.name), format!("tensor is in '{}' but not in the index", s.name));
                            }
                        }
                    }
                    let actual: u64 = shards
                        .iter()
                        .filter(|s| !strays.contains(&s.name))
                        .flat_map(|s| &s.tensors)
                        .map(|t| t.len)
                        .sum();
                    match idx.metadata.get("total_size").and_then(Json::as_u64) {
                        Some(total) if unreadable.is_empty() && total != actual => r.warn(
                            "total-size",
                            Some(&index_path),
                            None,
                            format!("metadata.total_size is {total} but the tensors hold {actual} bytes"),
                        ),
                        None => r.warn("total-size", Some(&index_path), None, "metadata.total_size is missing".into()),
                        _ => {}
                    }
                }
            }
        }
    }
    let all: Vec<&TensorInfo> = shards.iter().flat_map(|s| &s.tensors).collect();
    config::check_config(dir, &all, unreadable.is_empty(), r);
    check_tokenizer(dir, r);
    Ok(shards)
}

fn read_json(path: &Path, r: &mut Report, code: &'static str) -> Option<Json> {
    if !path.is_file() {
        return None;
    }
    let parsed = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Json>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            r.error(code, Some(path), None, format!("not valid JSON: {e}"));
            None
        }
    }
}

fn check_tokenizer(dir: &Path, r: &mut Report) {
    let tj = dir.join("tokenizer.json");
    if let Some(v) = read_json(&tj, r, "corrupt-tokenizer") {
        if !v.get("model").is_some_and(Json::is_object) {
            r.error(
                "corrupt-tokenizer",
                Some(&tj),
                None,
                "tokenizer.json has no \"model\" object".into(),
            );
        }
    }
    for f in [
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "generation_config.json",
    ] {
        read_json(&dir.join(f), r, "corrupt-tokenizer");
    }
    let sp = dir.join("tokenizer.model");
    if sp.is_file() {
        let mut head = [0u8; 1];
        let ok = std::fs::File::open(&sp)
            .and_then(|f| f.read_exact_at(&mut head, 0))
            .is_ok()
            && head[0] == 0x0a;
        if !ok {
            r.error(
                "corrupt-tokenizer",
                Some(&sp),
                None,
                "tokenizer.model is empty or not a SentencePiece model (protobuf)".into(),
            );
        }
    }
    if dir.join("config.json").is_file() && !tj.is_file() && !sp.is_file() {
        r.warn(
            "no-tokenizer",
            Some(dir),
            None,
            "no tokenizer.json or tokenizer.model".into(),
        );
    }
}

//! Layouts of the output formats: every tensor's file and offset, and the header bytes, fixed before any data
//! (GGUF files and splits, SafeTensors files and sharded directories, `.npz`, `.npy`), and the planners that
//! write a source's tensors into them name for name.

use crate::atomic::OutputKind;
use crate::plan::{
    choose, gguf_metadata, llama_file_type, string_metadata, CrcPatch, GgufOut, Job, Plan,
    PlannedFile,
};
use crate::request::ConvertOptions;
use lbrx_core::{DType, Error, Format, Metadata, Result, Source, Value};
use lbrx_formats::safetensors::{
    header_bytes, index_json, plan_shards, shard_file_names, OutTensor, INDEX_SUFFIX,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Plans a single GGUF file at `dst`: tensor names kept, float tensors cast per `opts.dtype`, metadata kept.
pub fn plan_gguf(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let mut outs = Vec::with_capacity(src.tensors().len());
    for (i, t) in src.tensors().iter().enumerate() {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        if dtype.info().gguf_id.is_none() {
            let hint = if dtype.is_castable_float() {
                "pass --dtype f16, bf16 or f32"
            } else {
                "llama.cpp stores no such tensors; convert to .safetensors or .npz instead"
            };
            return Err(Error::tensor(
                t.name.to_string(),
                format!("GGUF has no {dtype} type; {hint}"),
            ));
        }
        outs.push(GgufOut {
            spec: lbrx_formats::gguf::GgufTensorSpec {
                name: t.name.clone(),
                dtype,
                shape: t.shape.clone(),
            },
            src: i,
            transform: tr,
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        });
    }
    let mut metadata = gguf_metadata(src);
    for k in lbrx_formats::gguf::SPLIT_KEYS {
        metadata.remove(k);
    }
    if let (Some(d), Some(Value::U32(_))) =
        (opts.quant.or(opts.dtype), metadata.get("general.file_type"))
    {
        if let Some(ft) = llama_file_type(d) {
            metadata.insert("general.file_type", Value::U32(ft));
        }
    }
    layout_gguf(outs, &metadata, dst, opts.max_shard_size, Vec::new())
}

/// Lays GGUF outputs out in one file at `dst`, or in llama-gguf-split-style splits when `max_shard_size` is
/// set: a new split when the running sum of 32-byte-padded tensor sizes would pass the maximum.
pub(crate) fn layout_gguf(
    outs: Vec<GgufOut>,
    metadata: &Metadata,
    dst: &Path,
    max_shard_size: Option<u64>,
    inline: Vec<Vec<u8>>,
) -> Result<Plan> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    if let Some(max) = max_shard_size {
        let mut cur = 0u64;
        for (i, o) in outs.iter().enumerate() {
            let sp = &o.spec;
            let n = sp.dtype.byte_len(&sp.shape).unwrap_or(0).div_ceil(32) * 32;
            if cur + n > max && !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
                cur = n;
            } else {
                cur += n;
            }
            groups.last_mut().expect("one group").push(i);
        }
    } else {
        groups[0] = (0..outs.len()).collect();
    }
    let n_split = groups.len();
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = name.strip_suffix(".gguf").unwrap_or(&name).to_string();
    let mut files = Vec::with_capacity(n_split);
    let mut jobs = Vec::with_capacity(outs.len());
    for (no, members) in groups.iter().enumerate() {
        let mut meta = if no == 0 {
            metadata.clone()
        } else {
            Metadata::new()
        };
        if n_split > 1 {
            meta.insert("split.no", Value::U16(no as u16));
            meta.insert("split.tensors.count", Value::I32(outs.len() as i32));
            meta.insert("split.count", Value::U16(n_split as u16));
        }
        let part: Vec<_> = members.iter().map(|&i| outs[i].spec.clone()).collect();
        let layout = lbrx_formats::gguf::gguf_layout(&meta, &part)?;
        for (&i, &(offset, len)) in members.iter().zip(&layout.tensors) {
            let o = &outs[i];
            jobs.push((
                i,
                Job {
                    src: o.src,
                    name: o.spec.name.clone(),
                    dtype: o.spec.dtype,
                    shape: o.spec.shape.clone(),
                    file: no,
                    offset,
                    len,
                    transform: o.transform,
                    permute_heads: o.permute_heads,
                    parts: o.parts.clone(),
                    shift: o.shift,
                    unpermute: o.unpermute,
                    src_start: o.src_start,
                },
            ));
        }
        let fname = if n_split > 1 {
            format!("{prefix}-{:05}-of-{n_split:05}.gguf", no + 1)
        } else {
            name.clone()
        };
        files.push(PlannedFile {
            name: fname,
            size: layout.size,
            header: layout.header,
        });
    }
    jobs.sort_by_key(|(i, _)| *i);
    let jobs: Vec<Job> = jobs.into_iter().map(|(_, j)| j).collect();
    let data_bytes = jobs.iter().map(|j| j.len).sum();
    let (kind, plan_dst) = if n_split > 1 {
        let parent = dst
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (OutputKind::Files, parent.to_path_buf())
    } else {
        (OutputKind::File, dst.to_path_buf())
    };
    Ok(Plan {
        dst: plan_dst,
        kind,
        files,
        jobs,
        small_files: Vec::new(),
        assets: Vec::new(),
        data_bytes,
        inline,
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Lays planned tensors out as a SafeTensors model directory at `dst`: `model.safetensors`, or shards of at
/// most `max_shard_size` (default 5 GB, as `transformers` saves) with their index; `small_files` are written
/// beside them (config, tokenizer ...).
pub(crate) fn layout_safetensors_dir(
    outs: Vec<GgufOut>,
    dst: &Path,
    max_shard_size: Option<u64>,
    mut small_files: Vec<(String, Vec<u8>)>,
    metadata: Option<BTreeMap<String, String>>,
    index_extra: Option<serde_json::Value>,
) -> Result<Plan> {
    let st: Vec<OutTensor> = outs
        .iter()
        .map(|o| OutTensor {
            name: o.spec.name.clone(),
            dtype: o.spec.dtype,
            shape: o.spec.shape.clone(),
        })
        .collect();
    let sizes: Vec<u64> = st.iter().map(OutTensor::byte_len).collect::<Result<_>>()?;
    let groups = plan_shards(&sizes, Some(max_shard_size.unwrap_or(5_000_000_000)));
    let names = shard_file_names(groups.len(), "model");
    let mut files = Vec::with_capacity(groups.len());
    let mut jobs: Vec<Option<Job>> = vec![None; st.len()];
    let mut weight_map = BTreeMap::new();
    for (fi, (members, name)) in groups.iter().zip(&names).enumerate() {
        let layout = header_bytes(&st, members, metadata.as_ref())?;
        for p in &layout.tensors {
            let o = &outs[p.tensor];
            weight_map.insert(o.spec.name.clone(), name.clone());
            jobs[p.tensor] = Some(Job {
                src: o.src,
                name: o.spec.name.clone(),
                dtype: o.spec.dtype,
                shape: o.spec.shape.clone(),
                file: fi,
                offset: p.offset,
                len: p.len,
                transform: o.transform,
                permute_heads: o.permute_heads,
                parts: o.parts.clone(),
                shift: o.shift,
                unpermute: o.unpermute,
                src_start: o.src_start,
            });
        }
        files.push(PlannedFile {
            name: name.clone(),
            size: layout.size,
            header: layout.header,
        });
    }
    let jobs: Vec<Job> = jobs.into_iter().flatten().collect();
    let data_bytes = sizes.iter().sum();
    if let Some(extra) = index_extra {
        // MLX's index: always written, with the extra metadata (total_parameters)
        let mut meta = serde_json::json!({ "total_size": data_bytes });
        if let (Some(m), serde_json::Value::Object(e)) = (meta.as_object_mut(), extra) {
            m.extend(e);
        }
        let index = serde_json::json!({ "metadata": meta, "weight_map": weight_map });
        small_files.push((format!("model{INDEX_SUFFIX}"), pretty(&index)));
    } else if files.len() > 1 {
        small_files.push((
            format!("model{INDEX_SUFFIX}"),
            index_json(data_bytes, &weight_map),
        ));
    }
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::Dir,
        files,
        jobs,
        small_files,
        assets: Vec::new(),
        data_bytes,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Stem used for shard names: `model`, or the source index's stem (`diffusion_pytorch_model` ...).
fn shard_stem(src: &dyn Source) -> String {
    let idx = std::fs::read_dir(src.root()).ok().and_then(|rd| {
        rd.flatten().find_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(INDEX_SUFFIX).map(str::to_string))
        })
    });
    idx.unwrap_or_else(|| "model".to_string())
}

/// Plans a SafeTensors output at `dst`: a single file if `dst` ends in `.safetensors`, else a directory.
pub fn plan_safetensors(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let is_file = dst.extension().is_some_and(|e| e == "safetensors");
    if is_file && opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            "--max-shard-size needs a directory destination (not a .safetensors file)".into(),
        ));
    }
    let tensors = src.tensors();
    let mut outs = Vec::with_capacity(tensors.len());
    let mut transforms = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        outs.push(OutTensor {
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
        });
        transforms.push(tr);
    }
    let sizes: Vec<u64> = outs
        .iter()
        .map(OutTensor::byte_len)
        .collect::<Result<_>>()?;

    let groups: Vec<Vec<usize>> = if is_file {
        vec![(0..outs.len()).collect()]
    } else if opts.max_shard_size.is_some() {
        plan_shards(&sizes, opts.max_shard_size)
    } else {
        let n = src.files().len().max(1);
        let mut g = vec![Vec::new(); n];
        for (i, t) in tensors.iter().enumerate() {
            g[t.file.min(n - 1)].push(i);
        }
        g.retain(|v| !v.is_empty());
        if g.is_empty() {
            g.push(Vec::new());
        }
        g
    };
    let stem = shard_stem(src);
    let names = if is_file {
        vec![dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()]
    } else {
        shard_file_names(groups.len(), &stem)
    };
    let mut metadata = string_metadata(src);
    if metadata.is_none() && !is_file && src.format() == Format::PyTorchDir {
        // What transformers' save_pretrained writes; its loader checks it.
        metadata = Some(BTreeMap::from([("format".to_string(), "pt".to_string())]));
    }

    let mut files = Vec::with_capacity(groups.len());
    let mut jobs: Vec<Option<Job>> = vec![None; outs.len()];
    let mut weight_map = BTreeMap::new();
    for (fi, (members, name)) in groups.iter().zip(&names).enumerate() {
        let layout = header_bytes(&outs, members, metadata.as_ref())?;
        for p in &layout.tensors {
            let o = &outs[p.tensor];
            weight_map.insert(o.name.clone(), name.clone());
            jobs[p.tensor] = Some(Job {
                src: p.tensor,
                name: o.name.clone(),
                dtype: o.dtype,
                shape: o.shape.clone(),
                file: fi,
                offset: p.offset,
                len: p.len,
                transform: transforms[p.tensor],
                permute_heads: None,
                parts: Vec::new(),
                shift: None,
                unpermute: false,
                src_start: 0,
            });
        }
        files.push(PlannedFile {
            name: name.clone(),
            size: layout.size,
            header: layout.header,
        });
    }
    let jobs: Vec<Job> = jobs.into_iter().flatten().collect();
    let data_bytes = sizes.iter().sum();
    let mut small_files = Vec::new();
    if !is_file && files.len() > 1 {
        small_files.push((
            format!("{stem}{INDEX_SUFFIX}"),
            index_json(data_bytes, &weight_map),
        ));
    }
    let mut assets = Vec::new();
    if !is_file {
        for p in src.assets() {
            let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            match (name.as_str(), opts.dtype) {
                ("config.json", Some(d)) => match config_with_dtype(p, d)? {
                    Some(bytes) => small_files.push((name, bytes)),
                    None => assets.push((name, p.clone())),
                },
                _ => assets.push((name, p.clone())),
            }
        }
    }
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: if is_file {
            OutputKind::File
        } else {
            OutputKind::Dir
        },
        files,
        jobs,
        small_files,
        assets,
        data_bytes,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Plans a NumPy `.npz` archive at `dst` (stored members, as `numpy.savez` / `mlx.core.savez` write): one
/// `NAME.npy` per tensor, cast per `opts.dtype`; CRCs are filled in after the data.
pub fn plan_npz(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    use lbrx_formats::npz::writer::{npz_layout, NpzMember};
    if opts.quant.is_some() || opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            ".npz output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    let mut members = Vec::with_capacity(src.tensors().len());
    let mut transforms = Vec::with_capacity(src.tensors().len());
    for t in src.tensors() {
        let (dtype, tr) = choose(t.dtype, &t.shape, opts);
        if lbrx_formats::npz::npy_descr(dtype).is_none() {
            return Err(Error::tensor(
                t.name.to_string(),
                format!("NumPy has no {dtype} arrays; pass --dtype f16, f32 or f64"),
            ));
        }
        members.push(NpzMember {
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
        });
        transforms.push(tr);
    }
    let layout = npz_layout(&members)?;
    let mut jobs = Vec::with_capacity(members.len());
    let mut fixed = Vec::with_capacity(members.len() + 1);
    let mut crc32 = Vec::with_capacity(members.len());
    for (i, (m, l)) in members.iter().zip(&layout.members).enumerate() {
        fixed.push((0, l.header_offset, l.prefix.clone()));
        crc32.push(CrcPatch {
            file: 0,
            start: l.crc_range.0,
            len: l.crc_range.1,
            at: l.crc_at.to_vec(),
        });
        jobs.push(Job {
            src: i,
            name: m.name.clone(),
            dtype: m.dtype,
            shape: m.shape.clone(),
            file: 0,
            offset: l.data_offset,
            len: l.data_len,
            transform: transforms[i],
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        });
    }
    fixed.push((0, layout.tail_offset, layout.tail.clone()));
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::File,
        files: vec![PlannedFile {
            name,
            size: layout.size,
            header: Vec::new(),
        }],
        data_bytes: jobs.iter().map(|j| j.len).sum(),
        jobs,
        small_files: Vec::new(),
        assets: Vec::new(),
        inline: Vec::new(),
        fixed,
        crc32,
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// Plans a NumPy `.npy` file at `dst`: the source's only tensor (cast per `opts.dtype`) after a `.npy` header,
/// as `numpy.save` writes it.
pub fn plan_npy(src: &dyn Source, dst: &Path, opts: &ConvertOptions) -> Result<Plan> {
    let [t] = src.tensors() else {
        return Err(Error::model(
            src.root(),
            format!(
                "a .npy holds one array and the source has {} tensors; write a .npz instead",
                src.tensors().len()
            ),
        ));
    };
    if opts.quant.is_some() || opts.max_shard_size.is_some() {
        return Err(Error::Invalid(
            ".npy output takes --dtype only (no --quant or --max-shard-size)".into(),
        ));
    }
    let (dtype, transform) = choose(t.dtype, &t.shape, opts);
    let header = lbrx_formats::npz::writer::npy_header(dtype, &t.shape)
        .map_err(|e| Error::tensor(t.name.to_string(), format!("{e}")))?;
    let len = dtype
        .byte_len(&t.shape)
        .ok_or_else(|| Error::tensor(t.name.to_string(), "shape overflows"))?;
    let offset = header.len() as u64;
    Ok(Plan {
        dst: dst.to_path_buf(),
        kind: OutputKind::File,
        files: vec![PlannedFile {
            name: dst
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: offset + len,
            header,
        }],
        jobs: vec![Job {
            src: 0,
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
            file: 0,
            offset,
            len,
            transform,
            permute_heads: None,
            parts: Vec::new(),
            shift: None,
            unpermute: false,
            src_start: 0,
        }],
        small_files: Vec::new(),
        assets: Vec::new(),
        data_bytes: len,
        inline: Vec::new(),
        fixed: Vec::new(),
        crc32: Vec::new(),
        imatrix: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// The torch name of a dtype, as `config.json` spells it.
fn torch_dtype_name(d: DType) -> Option<&'static str> {
    match d {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => d.torch_name(),
        _ => None,
    }
}

/// `config.json` with `torch_dtype` (and `dtype`, its newer name) set to the output dtype; `None` when unchanged.
fn config_with_dtype(path: &Path, d: DType) -> Result<Option<Vec<u8>>> {
    let Some(name) = torch_dtype_name(d) else {
        return Ok(None);
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    if meta.len() > 16 << 20 {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice::<serde_json::Value>(&text)
    else {
        return Ok(None);
    };
    let mut changed = false;
    for key in ["torch_dtype", "dtype"] {
        if let Some(v) = obj.get_mut(key) {
            if v.as_str() != Some(name) {
                *v = serde_json::Value::from(name);
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let mut out = serde_json::to_string_pretty(&serde_json::Value::Object(obj))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    out.push('\n');
    Ok(Some(out.into_bytes()))
}

/// JSON as the Python tools write small files: pretty-printed, two-space indent, a final newline.
pub(crate) fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

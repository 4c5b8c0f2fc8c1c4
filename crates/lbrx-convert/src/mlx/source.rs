//! A quantized MLX model seen as a float model: each `P.weight` (packed uint32) with its `P.scales` and
//! `P.biases` becomes one tensor `P.weight` in the scales' dtype, dequantized on demand, chunk by chunk, as
//! `mlx.core.dequantize` computes it. Every other tensor passes through untouched (zero-copy).

use lbrx_core::{DType, Error, Result, Source, TensorInfo, TensorView};
use lbrx_quant::mlx::Mode;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The `file` index given to dequantized tensors: they have no raw bytes in any file.
pub(crate) const COMPUTED: usize = usize::MAX;

/// Where a presented tensor's bytes come from.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// The inner source's tensor, unchanged.
    Raw(usize),
    /// Dequantized from the inner tensors (weight, scales, and biases in the affine mode).
    Quant {
        weight: usize,
        scales: usize,
        biases: Option<usize>,
        bits: u32,
        group: u64,
        mode: Mode,
    },
}

/// A dequantizing view of a quantized MLX model (see the module docs).
pub struct DequantSource {
    inner: Box<dyn Source>,
    tensors: Vec<TensorInfo>,
    entries: Vec<Entry>,
}

/// The `quantization` block of an MLX model directory's config.json, if it has one.
pub fn quantization_block(dir: &Path) -> Option<Json> {
    let cfg = crate::hf::vocab::read_json(&dir.join("config.json"))
        .ok()
        .flatten()?;
    cfg.get("quantization")
        .or_else(|| cfg.get("quantization_config"))
        .filter(|q| q.get("bits").is_some() && q.get("group_size").is_some())
        .cloned()
}

impl DequantSource {
    /// Wraps `inner` when it is a quantized MLX model (a config.json `quantization` block and `.scales`
    /// tensors); returns it unchanged otherwise.
    pub fn wrap(inner: Box<dyn Source>) -> Result<Box<dyn Source>> {
        let has_scales = inner.tensors().iter().any(|t| t.name.ends_with(".scales"));
        let root: PathBuf = if inner.root().is_dir() {
            inner.root().to_path_buf()
        } else {
            inner
                .root()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        };
        let q = match quantization_block(&root) {
            Some(q) if has_scales => q,
            _ => return Ok(inner),
        };
        let by_name: HashMap<&str, usize> = inner
            .tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut tensors = Vec::new();
        let mut entries = Vec::new();
        let cfg = root.join("config.json");
        for (i, t) in inner.tensors().iter().enumerate() {
            let n = t.name.as_str();
            if n.ends_with(".scales") || n.ends_with(".biases") {
                let stem = &n[..n.len() - 7];
                if by_name.contains_key(format!("{stem}.weight").as_str()) {
                    continue;
                }
            }
            let stem = n.strip_suffix(".weight");
            let scales = stem.and_then(|s| by_name.get(format!("{s}.scales").as_str()));
            let (Some(stem), Some(&si), true) = (stem, scales, t.dtype == DType::U32) else {
                tensors.push(t.clone());
                entries.push(Entry::Raw(i));
                continue;
            };
            let bad = |what: String| Error::model(&cfg, format!("tensor '{n}': {what}"));
            let (group, bits, mode) = super::layer_params(&q, stem).ok_or_else(|| {
                bad("packed weight, but the quantization config excludes this layer".into())
            })?;
            if by_name.contains_key(format!("{stem}.global_scale").as_str()) {
                return Err(Error::Unsupported {
                    path: cfg.clone(),
                    what: format!("tensor '{n}': nvfp4 with a global scale"),
                });
            }
            let s = &inner.tensors()[si];
            let bi = if mode == Mode::Affine {
                let bi = *by_name
                    .get(format!("{stem}.biases").as_str())
                    .ok_or_else(|| bad(format!("no {stem}.biases")))?;
                let b = &inner.tensors()[bi];
                if !matches!(s.dtype, DType::F16 | DType::BF16 | DType::F32)
                    || b.dtype != s.dtype
                    || b.shape != s.shape
                {
                    return Err(bad(format!(
                        "scales {} {:?} and biases {} {:?} (MLX affine scales and biases are one float type and shape)",
                        s.dtype, s.shape, b.dtype, b.shape
                    )));
                }
                if !lbrx_quant::mlx::BITS.contains(&(bits as u32))
                    || !lbrx_quant::mlx::GROUP_SIZES.contains(&(group as usize))
                {
                    return Err(bad(format!(
                        "{bits} bits in groups of {group} is not an MLX affine layout"
                    )));
                }
                Some(bi)
            } else {
                let (dg, db) = mode.defaults();
                if s.dtype != DType::U8 || (group, bits) != (dg as u64, db as u64) {
                    return Err(bad(format!(
                        "MLX {} has {db}-bit values in groups of {dg} with u8 scales; found {bits} bits, groups of {group}, {} scales",
                        mode.name(),
                        s.dtype
                    )));
                }
                None
            };
            // affine dequantizes to the scales' type, the float modes to bfloat16 (mlx's default)
            let dtype = if mode == Mode::Affine {
                s.dtype
            } else {
                DType::BF16
            };
            let (Some(&packed), Some(&groups)) = (t.shape.last(), s.shape.last()) else {
                return Err(bad("scalar weight".into()));
            };
            let cols = packed.checked_mul(32).map(|c| c / bits).unwrap_or(0);
            let lead = &t.shape[..t.shape.len() - 1];
            if packed * 32 % bits != 0
                || cols != groups * group
                || s.shape[..s.shape.len() - 1] != *lead
            {
                return Err(bad(format!(
                    "weight {:?} at {bits} bits needs scales [.., {}] for groups of {group}; found {:?}",
                    t.shape,
                    cols / group,
                    s.shape
                )));
            }
            let mut shape = lead.to_vec();
            shape.push(cols);
            let len = dtype
                .byte_len(&shape)
                .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
            tensors.push(TensorInfo {
                name: t.name.clone(),
                dtype,
                shape,
                file: COMPUTED,
                offset: 0,
                len,
            });
            entries.push(Entry::Quant {
                weight: i,
                scales: si,
                biases: bi,
                bits: bits as u32,
                group,
                mode,
            });
        }
        Ok(Box::new(DequantSource {
            inner,
            tensors,
            entries,
        }))
    }
}

impl Source for DequantSource {
    lbrx_core::source_accessors!(wrapping inner);
    fn view(&self, index: usize) -> Result<TensorView<'_>> {
        lbrx_core::source::view_whole(self, index)
    }
    fn view_range(&self, index: usize, offset: u64, len: u64) -> Result<Cow<'_, [u8]>> {
        let info = self.tensor(index)?;
        match self.entries[index] {
            Entry::Raw(i) => self.inner.view_range(i, offset, len),
            Entry::Quant {
                weight,
                scales,
                biases,
                bits,
                group,
                mode,
            } => {
                let ts = info.dtype.info().type_size as u64;
                if !offset.is_multiple_of(ts) || !len.is_multiple_of(ts) || offset + len > info.len
                {
                    return Err(Error::tensor(
                        info.name.to_string(),
                        format!("range {offset}+{len} outside its {} bytes", info.len),
                    ));
                }
                let (e0, e1) = (offset / ts, (offset + len) / ts);
                if e0 == e1 {
                    return Ok(Cow::Owned(Vec::new()));
                }
                let (g0, g1) = (e0 / group, e1.div_ceil(group));
                let group_bytes = group * bits as u64 / 8;
                let packed =
                    self.inner
                        .view_range(weight, g0 * group_bytes, (g1 - g0) * group_bytes)?;
                let mut out = vec![0u8; ((g1 - g0) * group * ts) as usize];
                let named = |e: Error| Error::tensor(info.name.to_string(), format!("{e}"));
                match biases {
                    Some(biases) => {
                        let s = self.inner.view_range(scales, g0 * ts, (g1 - g0) * ts)?;
                        let b = self.inner.view_range(biases, g0 * ts, (g1 - g0) * ts)?;
                        lbrx_quant::mlx::dequantize_affine(
                            info.dtype,
                            &packed,
                            &s,
                            &b,
                            bits,
                            group as usize,
                            &mut out,
                        )
                        .map_err(named)?;
                    }
                    None => {
                        let s = self.inner.view_range(scales, g0, g1 - g0)?;
                        lbrx_quant::mlx::dequantize_fp(mode, &packed, &s, info.dtype, &mut out)
                            .map_err(named)?;
                    }
                }
                let start = ((e0 - g0 * group) * ts) as usize;
                out.drain(..start);
                out.truncate(len as usize);
                Ok(Cow::Owned(out))
            }
        }
    }
    fn raw_file(&self, file: usize) -> Option<&File> {
        if file == COMPUTED {
            None
        } else {
            self.inner.raw_file(file)
        }
    }
    fn release(&self, file: usize, offset: u64, len: u64) {
        if file != COMPUTED {
            self.inner.release(file, offset, len);
        }
    }
    fn assets(&self) -> &[PathBuf] {
        self.inner.assets()
    }
}

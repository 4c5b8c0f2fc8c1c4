//! Scaled low-precision encodings, as ComfyUI's mixed-precision loader reads them and `convert-to-quant`
//! (PyPI 1.3.4) writes them: a weight matrix multiplied by scales derived from absolute maxima (over the whole
//! tensor, a row, a 2-D tile or a micro-block of a row), clamped and rounded into a narrow type, with the
//! dequantization scales stored beside it. Every formula is the one of `convert-to-quant --simple` on CPU
//! (its `learned_rounding.py` simple paths, `comfy/quant_ops.py` and comfy-kitchen's eager backend), f32
//! operation for f32 operation:
//!
//! - FP8 E4M3 ("fn"): `s = 448 / max(amax, 1e-12)` (torch's `448.0 / t`: `(1 / t) * 448`),
//!   `q = e4m3(clamp(w * s, ±448))`, `weight_scale = 1 / s`; per tensor (`[]`), row (`[M]`) or `n x n` tile.
//! - FP8 E5M2, per tensor, as ComfyUI's `TensorCoreFP8Layout` defines it: `scale = amax / 57344`,
//!   `q = e5m2(clamp(w * (1 / scale), ±57344))` with the product in the source's float type.
//! - INT8: tensor-wise `d = max(amax, 1e-12) / 127`, `q = rne(clamp(w * (1 / d), ±127))`; row-wise
//!   `s = 127 / max(amax, 1e-12)`, `q = rne(clamp(w * s))`, `weight_scale = 1 / s` (`[M, 1]`); block-wise
//!   `d = max(amax / 127, 1e-8)`, `q = rne(clamp(w / d))` (`[M/n, N/n]`, with a unit `input_scale`).
//! - NVFP4 and MXFP8 ([`micro`]): E2M1 codes with E4M3 scales per 16 values and a per-tensor
//!   `weight_scale_2 = amax / 2688`, or E4M3 values with E8M0 scales per 32; shapes padded to 16 or 32,
//!   scales in cuBLAS' swizzled 128x4 tiling.
//!
//! A weight that is zero throughout gets zero codes and unit scales (convert-to-quant's zero-tensor rule;
//! its NVFP4 simple path would divide by a zero scale). The absolute maxima come from a statistics pass over
//! the tensor before any of it is encoded ([`Scheme::stat_len`], [`Scheme::accumulate`]).

pub mod dequant;
pub mod fast;
pub mod learned;
pub mod micro;

use crate::cast::{bf16_bits, f16_bits, f16_to_f32, f32_to_e4m3, f32_to_e5m2};
use lbrx_core::{DType, Error, Result};

/// The scaled families (one row each in [`SCHEMES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// FP8 E4M3 ("fn") values with F32 scales (per tensor, row or tile).
    Fp8,
    /// FP8 E5M2 values with one F32 scale (ComfyUI's `float8_e5m2`).
    Fp8E5m2,
    /// INT8 values with F32 scales (per tensor, row or tile).
    Int8,
    /// NVFP4: E2M1 codes two per byte, E4M3 scales per 16 values, an F32 per-tensor scale.
    Nvfp4,
    /// MXFP8: E4M3 values, E8M0 scales per 32 values.
    Mxfp8,
}

/// One scaled family: its name on the command line, its stored types and what scale granularities it takes.
#[derive(Debug, Clone, Copy)]
pub struct SchemeInfo {
    /// Its family.
    pub family: Family,
    /// Name (`fp8`, `int8`, `nvfp4` ...).
    pub name: &'static str,
    /// The stored value type.
    pub values: DType,
    /// The `weight_scale` type.
    pub scales: DType,
    /// The `--scaling` granularities it takes (the first is its default).
    pub granularities: &'static [&'static str],
    /// Output rows and columns are padded to a multiple of this (1: no padding).
    pub pad: u64,
    /// One line for the CLI's help.
    pub doc: &'static str,
}

/// The registry of scaled encodings (the CLI's lists are generated from it).
pub const SCHEMES: &[SchemeInfo] = &[
    SchemeInfo {
        family: Family::Fp8,
        name: "fp8",
        values: DType::F8E4M3,
        scales: DType::F32,
        granularities: &["tensor", "row", "block"],
        pad: 1,
        doc: "FP8 E4M3 weights with F32 scales per tensor, row or block (float8_e4m3fn[_rowwise|_blockwise])",
    },
    SchemeInfo {
        family: Family::Fp8E5m2,
        name: "fp8_e5m2",
        values: DType::F8E5M2,
        scales: DType::F32,
        granularities: &["tensor"],
        pad: 1,
        doc: "FP8 E5M2 weights with one F32 scale, amax / 57344 (float8_e5m2)",
    },
    SchemeInfo {
        family: Family::Int8,
        name: "int8",
        values: DType::I8,
        scales: DType::F32,
        granularities: &["tensor", "row", "block"],
        pad: 1,
        doc: "INT8 weights with F32 scales per tensor, row or block (int8_tensorwise, int8_blockwise)",
    },
    SchemeInfo {
        family: Family::Nvfp4,
        name: "nvfp4",
        values: DType::U8,
        scales: DType::F8E4M3,
        granularities: &["block"],
        pad: 16,
        doc: "NVFP4: E2M1 pairs, E4M3 scales per 16 values, F32 weight_scale_2 (nvfp4)",
    },
    SchemeInfo {
        family: Family::Mxfp8,
        name: "mxfp8",
        values: DType::F8E4M3,
        scales: DType::U8,
        granularities: &["block"],
        pad: 32,
        doc: "MXFP8: E4M3 values, E8M0 scales per 32 values (mxfp8)",
    },
];

/// Every granularity name any family takes, as the CLI spells them.
pub const GRANULARITIES: &[&str] = &["tensor", "row", "block"];

/// The default tile size of `--scaling block` for FP8 and INT8.
pub const DEFAULT_BLOCK: u32 = 128;

/// The smallest absolute maximum an FP8 or INT8 scale is computed from (an all-zero row gets a finite scale).
const MIN_AMAX: f32 = 1e-12;

/// Over what the absolute maximum (and so the scale) is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale for the whole tensor (an F32 scalar).
    Tensor,
    /// One scale per row.
    Row,
    /// One scale per `n x n` tile for FP8 and INT8; the family's own micro-block of a row for NVFP4 (16)
    /// and MXFP8 (32).
    Block(u32),
}

/// What the `input_scale` companion of an FP8 weight holds (INT8 block-wise always writes a unit one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputScale {
    /// No `input_scale`.
    #[default]
    None,
    /// An F32 scalar 1.0 (`--input-scale`).
    One,
    /// A copy of the weight scale (convert-to-quant's rule for text encoders: t5xxl, mistral, visual).
    WeightScale,
}

/// A scaled encoding: a family with its granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scheme {
    /// The family.
    pub family: Family,
    /// Over what its scales are taken.
    pub granularity: Granularity,
    /// Its `input_scale` companion.
    pub input: InputScale,
}

/// A tensor a scaled weight writes beside its values: `<layer>.<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Companion {
    /// Name after the layer's (`weight_scale`, `weight_scale_2`, `input_scale`).
    pub suffix: &'static str,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u64>,
}

impl Granularity {
    /// Parses `tensor`, `row` or `block` (with the block size given separately).
    pub fn parse(name: &str, block: u32) -> Option<Granularity> {
        match name {
            "tensor" => Some(Granularity::Tensor),
            "row" => Some(Granularity::Row),
            "block" if block > 0 => Some(Granularity::Block(block)),
            _ => None,
        }
    }

    /// Its name (`block 128`).
    pub fn name(self) -> String {
        match self {
            Granularity::Tensor => "tensor".into(),
            Granularity::Row => "row".into(),
            Granularity::Block(n) => format!("block {n}"),
        }
    }
}

/// The registry row of a family name.
pub fn family_named(name: &str) -> Option<&'static SchemeInfo> {
    SCHEMES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// `x` rounded up to a multiple of `m`.
pub fn roundup(x: u64, m: u64) -> u64 {
    x.div_ceil(m.max(1)).saturating_mul(m.max(1))
}

/// f32 rounded through a float dtype (BF16, F16; others unchanged).
pub(crate) fn round_to(d: DType, v: f32) -> f32 {
    match d {
        DType::BF16 => f32::from_bits((bf16_bits(v) as u32) << 16),
        DType::F16 => f16_to_f32(f16_bits(v)),
        _ => v,
    }
}

/// torch's float-to-int8 cast of a clamped, rounded value (NaN becomes 0, as the vector conversion does).
fn to_i8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v as i32 as i8) as u8
    }
}

impl Scheme {
    /// The scheme of family `name` with the granularity `scaling` (the family's default when `None`) and
    /// tile size `block` (FP8 and INT8 `block`; NVFP4 and MXFP8 have their own).
    pub fn new(
        name: &str,
        scaling: Option<&str>,
        block: Option<u32>,
    ) -> std::result::Result<Scheme, String> {
        let info = family_named(name).ok_or_else(|| {
            format!(
                "'{name}' is not a scaled family (use {})",
                SCHEMES
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let g = scaling.unwrap_or(info.granularities[0]);
        if !info.granularities.contains(&g) {
            return Err(format!(
                "--quant {} takes --scaling {} (not {g})",
                info.name,
                info.granularities.join(" or ")
            ));
        }
        let granularity = match info.family {
            Family::Nvfp4 => Granularity::Block(16),
            Family::Mxfp8 => Granularity::Block(32),
            _ => Granularity::parse(g, block.unwrap_or(DEFAULT_BLOCK)).ok_or_else(|| {
                format!("--block-size must be positive (got {})", block.unwrap_or(0))
            })?,
        };
        if block.is_some() && !matches!(info.family, Family::Fp8 | Family::Int8) {
            return Err(format!("--quant {} has a fixed block size", info.name));
        }
        Ok(Scheme {
            family: info.family,
            granularity,
            input: InputScale::None,
        })
    }

    /// The family's registry row.
    pub fn info(self) -> &'static SchemeInfo {
        SCHEMES
            .iter()
            .find(|s| s.family == self.family)
            .unwrap_or(&SCHEMES[0])
    }

    /// Name with its granularity (`fp8 (row scales)`).
    pub fn name(self) -> String {
        match self.family {
            Family::Nvfp4 | Family::Mxfp8 | Family::Fp8E5m2 => self.info().name.to_string(),
            _ => format!("{} ({} scales)", self.info().name, self.granularity.name()),
        }
    }

    /// The layer format as ComfyUI's `comfy_quant` names it.
    pub fn comfy_format(self) -> &'static str {
        match (self.family, self.granularity) {
            (Family::Fp8, Granularity::Tensor) => "float8_e4m3fn",
            (Family::Fp8, Granularity::Row) => "float8_e4m3fn_rowwise",
            (Family::Fp8, Granularity::Block(_)) => "float8_e4m3fn_blockwise",
            (Family::Fp8E5m2, _) => "float8_e5m2",
            (Family::Int8, Granularity::Block(_)) => "int8_blockwise",
            (Family::Int8, _) => "int8_tensorwise",
            (Family::Nvfp4, _) => "nvfp4",
            (Family::Mxfp8, _) => "mxfp8",
        }
    }

    /// The `group_size` the layer's `comfy_quant` records (block formats only).
    pub fn group_size(self) -> Option<u32> {
        match (self.family, self.granularity) {
            (Family::Fp8 | Family::Int8 | Family::Nvfp4 | Family::Mxfp8, Granularity::Block(n)) => {
                Some(n)
            }
            _ => None,
        }
    }

    /// Whether a tensor of `shape` can take this encoding (2-D, non-empty, and whole tiles for FP8 and INT8
    /// block scales); the reason when not.
    pub fn check(self, shape: &[u64]) -> std::result::Result<(), String> {
        let [rows, cols] = shape else {
            return Err(format!("{}-D, not a matrix", shape.len()));
        };
        if *rows == 0 || *cols == 0 {
            return Err("empty".into());
        }
        if let (Family::Fp8 | Family::Int8, Granularity::Block(n)) = (self.family, self.granularity)
        {
            let n = n as u64;
            if rows % n != 0 || cols % n != 0 {
                return Err(format!("{rows}x{cols} is not made of {n}x{n} blocks"));
            }
        }
        Ok(())
    }

    /// The stored value type.
    pub fn out_dtype(self) -> DType {
        self.info().values
    }

    /// The padded logical shape `[rows, cols]` the encoding works on.
    fn padded(self, shape: &[u64]) -> (u64, u64) {
        let (r, c) = dims(shape);
        let p = self.info().pad;
        (roundup(r, p), roundup(c, p))
    }

    /// The stored shape of the weight (NVFP4: two codes per byte; NVFP4 and MXFP8 padded).
    pub fn out_shape(self, shape: &[u64]) -> Vec<u64> {
        let (r, c) = self.padded(shape);
        match self.family {
            Family::Nvfp4 => vec![r, c / 2],
            Family::Mxfp8 => vec![r, c],
            _ => shape.to_vec(),
        }
    }

    /// Bytes of one stored row.
    pub fn out_row_bytes(self, shape: &[u64]) -> u64 {
        self.out_shape(shape).get(1).copied().unwrap_or(1)
    }

    /// Rows of zero bytes the stored weight has after the encoded rows (padding).
    pub fn pad_rows(self, shape: &[u64]) -> u64 {
        self.padded(shape).0 - dims(shape).0
    }

    /// The number of micro-block scales per padded row (NVFP4, MXFP8).
    fn micro_per_row(self, shape: &[u64]) -> u64 {
        let n = match self.granularity {
            Granularity::Block(n) => n as u64,
            _ => 1,
        };
        self.padded(shape).1 / n
    }

    /// The tensors written beside the weight, in order.
    pub fn companions(self, shape: &[u64]) -> Vec<Companion> {
        let (rows, cols) = dims(shape);
        let f32_scalar = |suffix| Companion {
            suffix,
            dtype: DType::F32,
            shape: Vec::new(),
        };
        let mut out = Vec::new();
        match self.family {
            Family::Nvfp4 | Family::Mxfp8 => {
                let (r, _) = self.padded(shape);
                out.push(Companion {
                    suffix: "weight_scale",
                    dtype: self.info().scales,
                    shape: vec![roundup(r, 128), roundup(self.micro_per_row(shape), 4)],
                });
                if self.family == Family::Nvfp4 {
                    out.push(f32_scalar("weight_scale_2"));
                }
            }
            _ => {
                let s = match (self.family, self.granularity) {
                    (_, Granularity::Tensor) => Vec::new(),
                    (Family::Int8, Granularity::Row) => vec![rows, 1],
                    (_, Granularity::Row) => vec![rows],
                    (_, Granularity::Block(n)) => vec![rows / n as u64, cols / n as u64],
                };
                out.push(Companion {
                    suffix: "weight_scale",
                    dtype: DType::F32,
                    shape: s.clone(),
                });
                match self.input_scale() {
                    InputScale::None => {}
                    InputScale::One => out.push(f32_scalar("input_scale")),
                    InputScale::WeightScale => out.push(Companion {
                        suffix: "input_scale",
                        dtype: DType::F32,
                        shape: s,
                    }),
                }
            }
        }
        out
    }

    /// The `input_scale` this weight gets: block-wise INT8 always a unit one, other INT8 layers only the
    /// text encoders' copy of the weight scale, NVFP4 and MXFP8 none (as convert-to-quant writes them).
    pub fn input_scale(self) -> InputScale {
        match (self.family, self.granularity, self.input) {
            (Family::Int8, Granularity::Block(_), _) => InputScale::One,
            (Family::Int8, _, InputScale::WeightScale) => InputScale::WeightScale,
            (Family::Int8 | Family::Nvfp4 | Family::Mxfp8, _, _) => InputScale::None,
            (_, _, i) => i,
        }
    }

    /// How many absolute maxima the statistics pass keeps for a weight of `shape`.
    pub fn stat_len(self, shape: &[u64]) -> u64 {
        let (rows, cols) = dims(shape);
        match (self.family, self.granularity) {
            // micro-block scales are row-local: only NVFP4's per-tensor maximum needs the pre-pass
            (Family::Nvfp4 | Family::Mxfp8, _) => 1,
            (_, Granularity::Tensor) => 1,
            (_, Granularity::Row) => rows,
            (_, Granularity::Block(n)) => (rows / n as u64) * (cols / n as u64),
        }
    }

    /// Folds the absolute values of whole rows (`values`, `cols` wide, starting at row `first_row`) into
    /// `amax` (one entry per statistic; NaN wins, as in torch's `amax`).
    pub fn accumulate(self, values: &[f32], cols: u64, first_row: u64, amax: &mut [f32]) {
        self.accumulate_with(values.len(), cols, first_row, amax, |from, to| {
            fast::amax_f32(&values[from..to])
        })
    }

    /// [`Scheme::accumulate`] on stored values of `from` (BF16, F16 or F32) without decoding them; `false`
    /// when `from` is another type.
    pub fn accumulate_raw(
        self,
        from: DType,
        bytes: &[u8],
        cols: u64,
        first_row: u64,
        amax: &mut [f32],
    ) -> bool {
        let f: fn(&[u8]) -> f32 = match from {
            DType::BF16 => fast::amax_bf16,
            DType::F16 => fast::amax_f16,
            DType::F32 => |b: &[u8]| {
                let m = b.chunks_exact(4).fold(0u32, |m, x| {
                    m.max(u32::from_le_bytes([x[0], x[1], x[2], x[3]]) & 0x7fff_ffff)
                });
                f32::from_bits(m)
            },
            _ => return false,
        };
        let ts = from.info().type_size as usize;
        self.accumulate_with(bytes.len() / ts, cols, first_row, amax, |a, b| {
            f(&bytes[a * ts..b * ts])
        });
        true
    }

    /// Folds the maxima of runs of `n` values (`max_of(from, to)` for the values in `[from, to)`) into the
    /// statistics they belong to.
    fn accumulate_with(
        self,
        n: usize,
        cols: u64,
        first_row: u64,
        amax: &mut [f32],
        max_of: impl Fn(usize, usize) -> f32,
    ) {
        let c = cols.max(1) as usize;
        let rows = n / c;
        match (self.family, self.granularity) {
            (Family::Mxfp8, _) => {}
            (Family::Nvfp4, _) | (_, Granularity::Tensor) => {
                amax[0] = nan_max(amax[0], max_of(0, rows * c));
            }
            (_, Granularity::Row) => {
                for r in 0..rows {
                    let i = (first_row as usize) + r;
                    amax[i] = nan_max(amax[i], max_of(r * c, (r + 1) * c));
                }
            }
            (_, Granularity::Block(bn)) => {
                let (bn, per) = (bn as usize, (cols / bn as u64) as usize);
                for r in 0..rows {
                    let base = (first_row as usize + r) / bn * per;
                    for t in 0..per {
                        let from = r * c + t * bn;
                        amax[base + t] = nan_max(amax[base + t], max_of(from, from + bn));
                    }
                }
            }
        }
    }

    /// Whether the statistics say the whole tensor is zero (convert-to-quant's zero-tensor rule).
    fn all_zero(self, amax: &[f32]) -> bool {
        match self.family {
            Family::Nvfp4 => amax.first() == Some(&0.0),
            Family::Mxfp8 => false,
            _ => amax.iter().all(|&a| a == 0.0),
        }
    }

    /// The FP8 / INT8 quantization multiplier of one statistic (`None` for block-wise INT8, which divides).
    pub(crate) fn multiplier(self, a: f32) -> f32 {
        // torch's clamp keeps a NaN maximum NaN
        let clamped = if a.is_nan() { a } else { a.max(MIN_AMAX) };
        match (self.family, self.granularity) {
            (Family::Fp8, _) => (1.0 / clamped) * 448.0,
            (Family::Int8, Granularity::Tensor) => 1.0 / (clamped / 127.0),
            (Family::Int8, _) => (1.0 / clamped) * 127.0,
            _ => f32::NAN,
        }
    }

    /// The stored F32 scale of one FP8 / INT8 / E5M2 statistic.
    fn scale_of(self, from: DType, a: f32) -> f32 {
        match (self.family, self.granularity) {
            (Family::Int8, Granularity::Tensor) => {
                let c = if a.is_nan() { a } else { a.max(MIN_AMAX) };
                c / 127.0
            }
            (Family::Int8, Granularity::Block(_)) => int8_block_scale(a),
            (Family::Fp8E5m2, _) => e5m2_scale(from, a),
            _ => 1.0 / self.multiplier(a),
        }
    }

    /// Encodes whole rows (`values` decoded from `from`, `cols` wide, from row `first_row`) with the
    /// statistics `amax` into `out` (one stored row per input row: [`Scheme::out_row_bytes`] each).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_rows(
        self,
        from: DType,
        values: &[f32],
        cols: u64,
        first_row: u64,
        amax: &[f32],
        out: &mut [u8],
    ) -> Result<()> {
        let c = cols.max(1) as usize;
        let shape = [0, cols];
        let row_bytes = self.out_row_bytes(&shape) as usize;
        if out.len() != values.len() / c * row_bytes || !values.len().is_multiple_of(c) {
            return Err(Error::Invalid(format!(
                "scaled encoding: {} values of {c}-wide rows into {} bytes",
                values.len(),
                out.len()
            )));
        }
        if self.all_zero(amax) {
            out.fill(0);
            return Ok(());
        }
        match self.family {
            Family::Nvfp4 | Family::Mxfp8 => {
                return Err(Error::Invalid(
                    "NVFP4 and MXFP8 rows are encoded with encode_micro_rows".into(),
                ))
            }
            Family::Fp8E5m2 => {
                let inv = round_to(from, 1.0 / e5m2_scale(from, amax[0]));
                for (v, o) in values.iter().zip(out.iter_mut()) {
                    let p = round_to(from, v * inv);
                    *o = f32_to_e5m2(p.clamp(-57344.0, 57344.0));
                }
            }
            Family::Fp8 | Family::Int8 => {
                // one factor per run of values sharing a statistic (the row, or a tile's part of it)
                let run = match self.granularity {
                    Granularity::Block(n) => n as usize,
                    _ => c,
                };
                for (r, (row, o)) in values.chunks(c).zip(out.chunks_mut(row_bytes)).enumerate() {
                    let r = first_row + r as u64;
                    for (t, (vs, qs)) in row.chunks(run).zip(o.chunks_mut(run)).enumerate() {
                        let a = amax[self.stat_index(r, (t * run) as u64, cols)];
                        self.encode_run(vs, a, qs);
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows a work item of this encoding covers a multiple of (NVFP4 and MXFP8: 128, one tile of the
    /// swizzled scale layout, so that each item writes its own contiguous part of the scales).
    pub fn row_unit(self) -> u64 {
        match self.family {
            Family::Nvfp4 | Family::Mxfp8 => 128,
            _ => 1,
        }
    }

    /// Encodes whole rows of an NVFP4 or MXFP8 weight of `shape` (`values`, from row `first_row`, a multiple
    /// of 128) into `out` (stored rows) and returns the part of the swizzled `weight_scale` these rows fill:
    /// its byte offset and bytes (the last rows also fill the padding's zero scales).
    pub fn encode_micro_rows(
        self,
        values: &[f32],
        shape: &[u64],
        first_row: u64,
        amax: &[f32],
        out: &mut [u8],
    ) -> Result<(u64, Vec<u8>)> {
        let (rows_total, cols) = dims(shape);
        let c = cols.max(1) as usize;
        let row_bytes = self.out_row_bytes(shape) as usize;
        let rows = values.len() / c;
        if !matches!(self.family, Family::Nvfp4 | Family::Mxfp8)
            || !first_row.is_multiple_of(128)
            || out.len() != rows * row_bytes
        {
            return Err(Error::Invalid(format!(
                "micro-block encoding: {} values from row {first_row} into {} bytes",
                values.len(),
                out.len()
            )));
        }
        let per = self.micro_per_row(shape) as usize;
        let last = first_row + rows as u64 == rows_total;
        let (rb0, mut rb1) = (first_row / 128, (first_row + rows as u64).div_ceil(128));
        if last {
            rb1 = roundup(self.padded(shape).0, 128) / 128;
        }
        let col_blocks = roundup(per as u64, 4) / 4;
        let mut region = vec![0u8; ((rb1 - rb0) * col_blocks * 512) as usize];
        let mut scales = vec![0u8; per];
        let zero = self.all_zero(amax);
        for (k, (row, o)) in values.chunks(c).zip(out.chunks_mut(row_bytes)).enumerate() {
            if zero {
                o.fill(0);
                continue;
            }
            if self.family == Family::Nvfp4 {
                micro::nvfp4_row(row, amax[0], o, &mut scales);
            } else {
                micro::mxfp8_row(row, o, &mut scales);
            }
            let r = k as u64 + first_row % 128;
            for (b, &s) in scales.iter().enumerate() {
                region[micro::swizzled_index(r, b as u64, per as u64) as usize] = s;
            }
        }
        Ok((rb0 * col_blocks * 512, region))
    }

    /// FP8 or INT8 values sharing one statistic `a`.
    fn encode_run(self, vs: &[f32], a: f32, qs: &mut [u8]) {
        match (self.family, self.granularity) {
            (Family::Int8, Granularity::Block(_)) => {
                fast::encode_int8_div(vs, int8_block_scale(a), qs)
            }
            (Family::Int8, _) => {
                let k = self.multiplier(a);
                // a NaN multiplier gives its own NaN whatever the value (as torch's product does)
                if k.is_nan() {
                    qs.fill(to_i8(k));
                } else {
                    fast::encode_int8_mul(vs, k, qs);
                }
            }
            _ => {
                let k = self.multiplier(a);
                if k.is_nan() {
                    qs.fill(f32_to_e4m3(k));
                } else {
                    fast::encode_fp8(vs, k, qs);
                }
            }
        }
    }

    /// The dequantization scale and the quantization multiplier (the scaled value is `w * multiplier`) of
    /// element (`row`, `col`) of a `cols`-wide FP8 / INT8 weight with statistics `amax`.
    pub fn element_factors(
        self,
        from: DType,
        amax: &[f32],
        row: u64,
        col: u64,
        cols: u64,
    ) -> (f32, f32) {
        let a = amax[self.stat_index(row, col, cols)];
        let s = self.scale_of(from, a);
        match (self.family, self.granularity) {
            (Family::Int8, Granularity::Block(_)) => (s, 1.0 / s),
            _ => (s, self.multiplier(a)),
        }
    }

    /// Which FP8 / INT8 statistic the element at (`row`, `col`) of a `cols`-wide weight belongs to.
    fn stat_index(self, row: u64, col: u64, cols: u64) -> usize {
        match self.granularity {
            Granularity::Tensor => 0,
            Granularity::Row => row as usize,
            Granularity::Block(n) => {
                let n = n as u64;
                ((row / n) * (cols / n) + col / n) as usize
            }
        }
    }

    /// The companions' bytes (in [`Scheme::companions`] order) from the statistics of a weight of `shape`
    /// decoded from `from`; `None` for NVFP4's and MXFP8's `weight_scale`, which the rows' items write
    /// ([`Scheme::encode_micro_rows`]).
    pub fn companion_bytes(self, from: DType, amax: &[f32]) -> Vec<Option<Vec<u8>>> {
        let zero = self.all_zero(amax);
        match self.family {
            Family::Nvfp4 => {
                let s2 = if zero {
                    1.0
                } else {
                    micro::nvfp4_tensor_scale(amax[0])
                };
                vec![None, Some(s2.to_le_bytes().to_vec())]
            }
            Family::Mxfp8 => vec![None],
            _ => {
                let scales: Vec<u8> = amax
                    .iter()
                    .map(|&a| if zero { 1.0 } else { self.scale_of(from, a) })
                    .flat_map(f32::to_le_bytes)
                    .collect();
                let mut out = vec![Some(scales.clone())];
                match self.input_scale() {
                    InputScale::None => {}
                    InputScale::One => out.push(Some(1f32.to_le_bytes().to_vec())),
                    InputScale::WeightScale => out.push(Some(scales)),
                }
                out
            }
        }
    }
}

/// Block-wise INT8's dequantization scale: `max(amax / 127, 1e-8)` (torch's `maximum` keeps NaN).
fn int8_block_scale(a: f32) -> f32 {
    let s = a / 127.0;
    if s.is_nan() {
        s
    } else {
        s.max(1e-8)
    }
}

/// ComfyUI's E5M2 per-tensor scale: `amax / 57344`, and for an F16 source `1 / clamp(1 / scale, ±65504)`.
fn e5m2_scale(from: DType, a: f32) -> f32 {
    let s = a / 57344.0;
    if from == DType::F16 {
        1.0 / (1.0 / s).clamp(-65504.0, 65504.0)
    } else {
        s
    }
}

/// The larger of two values, NaN if either is (torch's `amax`).
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `[rows, cols]` of a matrix shape (a vector is one row).
fn dims(shape: &[u64]) -> (u64, u64) {
    match shape {
        [r, c] => (*r, *c),
        [c] => (1, *c),
        _ => (
            shape.first().copied().unwrap_or(1),
            shape.iter().skip(1).product(),
        ),
    }
}

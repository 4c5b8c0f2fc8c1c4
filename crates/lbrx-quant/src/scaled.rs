//! Scaled low-precision encodings, as ComfyUI's mixed-precision loader reads them and `convert-to-quant`
//! writes them: a weight multiplied by a scale derived from its absolute maximum (over the whole tensor, a row
//! or a 2-D block), clamped and rounded into a narrow type, with the dequantization scale stored beside it.
//!
//! FP8 E4M3 ("fn"): `s = 448 / max(amax, 1e-12)` (as torch computes `448.0 / tensor`: `(1 / amax) * 448`), `q = e4m3(clamp(w * s, -448, 448))` rounded to nearest even,
//! and the stored `weight_scale = 1 / s` (all in f32). The absolute maxima come from a statistics pass over
//! the tensor before any of it is encoded ([`Scheme::stat_len`], [`Scheme::stat_index`]).

use lbrx_core::{DType, Error, Result};

/// Over what the absolute maximum (and so the scale) is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale for the whole tensor (an F32 scalar).
    Tensor,
    /// One scale per row (`[rows]`).
    Row,
    /// One scale per `n x n` tile (`[rows / n, cols / n]`); both dimensions must be multiples of `n`.
    Block(u32),
}

/// The scaled encodings (one row each in [`SCHEMES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// FP8 E4M3 ("fn") values with F32 dequantization scales.
    Fp8E4m3(Granularity),
}

/// One scaled encoding family: its name on the command line, the value type and the largest value encoded.
#[derive(Debug, Clone, Copy)]
pub struct SchemeInfo {
    /// Name (`fp8`).
    pub name: &'static str,
    /// The stored value type.
    pub values: DType,
    /// The stored scales' type.
    pub scales: DType,
    /// The largest finite magnitude the value type holds (the clamp).
    pub max: f32,
    /// One line for the CLI's help.
    pub doc: &'static str,
}

/// The registry of scaled encodings (the CLI's lists are generated from it).
pub const SCHEMES: &[SchemeInfo] = &[SchemeInfo {
    name: "fp8",
    values: DType::F8E4M3,
    scales: DType::F32,
    max: 448.0,
    doc: "FP8 E4M3 weights with F32 scales (ComfyUI's float8_e4m3fn)",
}];

/// The granularity names, as the CLI spells them.
pub const GRANULARITIES: &[&str] = &["tensor", "row", "block"];

/// The smallest absolute maximum a scale is computed from (an all-zero tensor gets a finite scale).
const MIN_AMAX: f32 = 1e-12;

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

    /// Its name.
    pub fn name(self) -> String {
        match self {
            Granularity::Tensor => "tensor".into(),
            Granularity::Row => "row".into(),
            Granularity::Block(n) => format!("block {n}"),
        }
    }
}

impl Scheme {
    /// The family's registry row.
    pub fn info(self) -> &'static SchemeInfo {
        match self {
            Scheme::Fp8E4m3(_) => &SCHEMES[0],
        }
    }

    /// The granularity of its scales.
    pub fn granularity(self) -> Granularity {
        match self {
            Scheme::Fp8E4m3(g) => g,
        }
    }

    /// Name with its granularity (`fp8 (row scales)`).
    pub fn name(self) -> String {
        format!(
            "{} ({} scales)",
            self.info().name,
            self.granularity().name()
        )
    }

    /// Whether a tensor of `shape` can take this encoding (2-D, and whole tiles for block scales); the reason
    /// when not.
    pub fn check(self, shape: &[u64]) -> std::result::Result<(), String> {
        let [rows, cols] = shape else {
            return Err(format!("{}-D, not a matrix", shape.len()));
        };
        if let Granularity::Block(n) = self.granularity() {
            let n = n as u64;
            if rows % n != 0 || cols % n != 0 {
                return Err(format!("{rows}x{cols} is not made of {n}x{n} blocks"));
            }
        }
        Ok(())
    }

    /// The shape of the scale tensor for a weight of `shape` (`[]`, `[rows]`, `[rows/n, cols/n]`).
    pub fn scale_shape(self, shape: &[u64]) -> Vec<u64> {
        let (rows, cols) = dims(shape);
        match self.granularity() {
            Granularity::Tensor => Vec::new(),
            Granularity::Row => vec![rows],
            Granularity::Block(n) => vec![rows / n as u64, cols / n as u64],
        }
    }

    /// How many absolute maxima the statistics pass keeps for a weight of `shape`.
    pub fn stat_len(self, shape: &[u64]) -> u64 {
        self.scale_shape(shape).iter().product::<u64>().max(1)
    }

    /// Which statistic the element at (`row`, `col`) of a `cols`-wide weight belongs to.
    pub fn stat_index(self, row: u64, col: u64, cols: u64) -> usize {
        match self.granularity() {
            Granularity::Tensor => 0,
            Granularity::Row => row as usize,
            Granularity::Block(n) => {
                let n = n as u64;
                ((row / n) * (cols / n) + col / n) as usize
            }
        }
    }

    /// Folds the absolute values of whole rows (`values`, `cols` wide, starting at row `first_row`) into
    /// `amax` (one entry per statistic).
    pub fn accumulate(self, values: &[f32], cols: u64, first_row: u64, amax: &mut [f32]) {
        let c = cols.max(1) as usize;
        for (r, row) in values.chunks(c).enumerate() {
            let r = first_row + r as u64;
            match self.granularity() {
                Granularity::Block(n) => {
                    for (b, tile) in row.chunks(n as usize).enumerate() {
                        let i = self.stat_index(r, b as u64 * n as u64, cols);
                        amax[i] = tile.iter().fold(amax[i], |m, v| nan_max(m, v.abs()));
                    }
                }
                _ => {
                    let i = self.stat_index(r, 0, cols);
                    amax[i] = row.iter().fold(amax[i], |m, v| nan_max(m, v.abs()));
                }
            }
        }
    }

    /// The multiplier applied before rounding, from an absolute maximum: `max / max(amax, 1e-12)` as torch
    /// evaluates a Python float over a tensor (the reciprocal, then the product).
    pub fn multiplier(self, amax: f32) -> f32 {
        // torch's clamp keeps a NaN maximum NaN
        let a = if amax.is_nan() {
            amax
        } else {
            amax.max(MIN_AMAX)
        };
        (1.0 / a) * self.info().max
    }

    /// The stored dequantization scales (little-endian F32, `1 / multiplier`) for the absolute maxima.
    pub fn scale_bytes(self, amax: &[f32]) -> Vec<u8> {
        amax.iter()
            .flat_map(|&a| (1.0 / self.multiplier(a)).to_le_bytes())
            .collect()
    }

    /// Encodes whole rows (`values`, `cols` wide, from row `first_row`) with the scales of `amax` into `out`
    /// (one value byte per element).
    pub fn encode_rows(
        self,
        values: &[f32],
        cols: u64,
        first_row: u64,
        amax: &[f32],
        out: &mut [u8],
    ) -> Result<()> {
        if out.len() != values.len() {
            return Err(Error::Invalid(format!(
                "scaled encoding: {} values into {} bytes",
                values.len(),
                out.len()
            )));
        }
        let info = self.info();
        let c = cols.max(1) as usize;
        let mut scaled = vec![0f32; c];
        for (r, (row, o)) in values.chunks(c).zip(out.chunks_mut(c)).enumerate() {
            let r = first_row + r as u64;
            for (k, (&v, s)) in row.iter().zip(scaled.iter_mut()).enumerate() {
                let i = self.stat_index(r, k as u64, cols);
                let m = amax.get(i).copied().unwrap_or(0.0);
                let k = self.multiplier(m);
                // a NaN multiplier gives its own NaN whatever the value (as torch's product does)
                let p = if k.is_nan() { k } else { v * k };
                *s = p.clamp(-info.max, info.max);
            }
            crate::cast::encode_f32(info.values, &scaled[..row.len()], o);
        }
        Ok(())
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

//! Dequantization of scaled weights with the formulas ComfyUI runs (comfy-kitchen's eager backend, and
//! convert-to-quant's own loader for the row- and block-wise layouts), operation for operation in the output
//! type:
//!
//! - `float8_e4m3fn`, `float8_e5m2`: `q.to(out) * scale.to(out)` (the product rounded to the output type);
//! - row- and block-wise FP8, INT8: `(f32(q) * scale).to(out)`;
//! - NVFP4: `e2m1.to(out) * (scale_2.to(out) * e4m3.to(out))`, each product in the output type;
//! - MXFP8: `(f32(q) * 2^(e - 127)).to(out)`.
//!
//! Padded NVFP4 and MXFP8 weights are cropped back to the layer's `orig_shape`.

use super::{micro, round_to, Family, Granularity, Scheme};
use crate::cast::{e4m3_to_f32, f16_to_f32};
use lbrx_core::{DType, Error, Result};

/// The stored parts of one scaled weight.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The stored rows being dequantized, from `first_row` on ([`Scheme::out_row_bytes`] each).
    pub rows: &'a [u8],
    /// The first of those rows.
    pub first_row: u64,
    /// The whole `weight_scale` tensor's bytes.
    pub scale: &'a [u8],
    /// NVFP4's `weight_scale_2` (1.0 for the others).
    pub scale_2: f32,
}

/// Dequantizes the stored rows of a weight whose original shape is `shape` (`[M, N]`) into `out` (`N`
/// values per row, each already rounded to `to`).
pub fn dequantize_rows(
    scheme: Scheme,
    shape: &[u64],
    to: DType,
    s: Stored,
    out: &mut [f32],
) -> Result<()> {
    let [_, cols] = shape else {
        return Err(Error::Invalid(format!(
            "a scaled weight is a matrix, not {shape:?}"
        )));
    };
    let cols = *cols;
    let n = cols as usize;
    let row_bytes = scheme.out_row_bytes(shape) as usize;
    let rows = out.len() / n.max(1);
    if s.rows.len() < rows * row_bytes {
        return Err(Error::Invalid(format!(
            "{} stored bytes for {rows} rows of {row_bytes}",
            s.rows.len()
        )));
    }
    let f32_at = |i: usize| -> Result<f32> {
        s.scale
            .get(i * 4..i * 4 + 4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Error::Invalid(format!("weight_scale has no entry {i}")))
    };
    for (k, o) in out.chunks_mut(n).enumerate() {
        let r = s.first_row + k as u64;
        let q = &s.rows[k * row_bytes..(k + 1) * row_bytes];
        match scheme.family {
            Family::Nvfp4 => {
                let per = super::roundup(cols, 16) / 16;
                let t = round_to(to, s.scale_2);
                for (c, v) in o.iter_mut().enumerate() {
                    let b = micro::unswizzled(s.scale, r, c as u64 / 16, per);
                    let total = round_to(to, t * round_to(to, e4m3_to_f32(b)));
                    let byte = q[c / 2];
                    let code = if c % 2 == 0 { byte >> 4 } else { byte & 0xf };
                    *v = round_to(to, micro::E2M1_VALUES[code as usize] * total);
                }
            }
            Family::Mxfp8 => {
                let per = super::roundup(cols, 32) / 32;
                for (c, v) in o.iter_mut().enumerate() {
                    let e = micro::unswizzled(s.scale, r, c as u64 / 32, per);
                    let f = if e == 0 {
                        0.0
                    } else {
                        f32::from_bits((e as u32) << 23)
                    };
                    *v = round_to(to, e4m3_to_f32(q[c]) * f);
                }
            }
            Family::Fp8 | Family::Fp8E5m2 | Family::Int8 => {
                let value = |b: u8| match scheme.family {
                    Family::Int8 => b as i8 as f32,
                    Family::Fp8E5m2 => f16_to_f32((b as u16) << 8),
                    _ => e4m3_to_f32(b),
                };
                let per_tensor =
                    scheme.granularity == Granularity::Tensor && scheme.family != Family::Int8;
                for (c, v) in o.iter_mut().enumerate() {
                    let i = match scheme.granularity {
                        Granularity::Tensor => 0,
                        Granularity::Row => r as usize,
                        Granularity::Block(b) => {
                            let b = b as u64;
                            ((r / b) * (cols / b) + c as u64 / b) as usize
                        }
                    };
                    let sc = f32_at(i)?;
                    *v = if per_tensor {
                        round_to(to, value(q[c]) * round_to(to, sc))
                    } else {
                        round_to(to, value(q[c]) * sc)
                    };
                }
            }
        }
    }
    Ok(())
}

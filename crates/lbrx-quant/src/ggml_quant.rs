//! ggml's reference quantizers (`quantize_row_*_ref` in ggml/src/ggml-quants.c, the path `ggml_quantize_chunk`
//! takes without an importance matrix), bit-exact: same operation order, C's truncating float -> int casts,
//! `roundf` (half away from zero) where ggml uses it, and round-to-nearest-even f16 scales.
//!
//! Types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q1_0, Q2_0, the K-quants Q2_K..Q6_K and Q8_K (in `ggml_kquant`), TQ1_0,
//! TQ2_0, MXFP4, NVFP4, IQ4_NL, IQ4_XS and the float types; with an importance matrix through
//! [`quantize_rows`] (the `_impl` paths, in `ggml_weighted`). The other IQ types are not written yet.

use crate::cast::{encode_f32, f16_bits};
use crate::ggml_kquant::c_int;
use lbrx_core::{DType, Error, Result};

/// Whether [`quantize`] implements `dtype` (without an importance matrix).
pub fn can_quantize(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q8_0
            | DType::Q2K
            | DType::Q3K
            | DType::Q4K
            | DType::Q5K
            | DType::Q6K
            | DType::Q8K
            | DType::TQ1_0
            | DType::TQ2_0
            | DType::MXFP4
            | DType::NVFP4
            | DType::Q1_0
            | DType::Q2_0
            | DType::IQ4NL
            | DType::IQ4XS
            | DType::IQ2XXS
            | DType::IQ2XS
            | DType::IQ2S
            | DType::IQ3XXS
            | DType::IQ3S
            | DType::IQ1S
            | DType::IQ1M
            | DType::F32
            | DType::F16
            | DType::BF16
    )
}

/// Whether ggml quantizes `dtype` only with an importance matrix (`ggml_quantize_requires_imatrix`).
pub fn requires_imatrix(dtype: DType) -> bool {
    matches!(dtype, DType::IQ2XXS | DType::IQ2XS | DType::IQ1S)
}

/// Quantizes `src` (whole blocks) into `out` as ggml's reference quantizer for `dtype` does.
pub fn quantize(dtype: DType, src: &[f32], out: &mut [u8]) -> Result<()> {
    let info = dtype.info();
    let (bs, ts) = (info.block_size as usize, info.type_size as usize);
    if !src.len().is_multiple_of(bs) || out.len() != src.len() / bs * ts {
        return Err(Error::Invalid(format!(
            "quantize {dtype}: {} values do not fill {} bytes",
            src.len(),
            out.len()
        )));
    }
    if requires_imatrix(dtype) {
        return Err(Error::Invalid(format!(
            "quantizing to {dtype} needs an importance matrix (as in llama.cpp): pass one with --imatrix"
        )));
    }
    let f: fn(&[f32], &mut [u8]) = match dtype {
        DType::Q4_0 => q4_0,
        DType::Q4_1 => q4_1,
        DType::Q5_0 => q5_0,
        DType::Q5_1 => q5_1,
        DType::Q2K => crate::ggml_kquant::q2_k,
        DType::Q3K => crate::ggml_kquant::q3_k,
        DType::Q4K => crate::ggml_kquant::q4_k,
        DType::Q5K => crate::ggml_kquant::q5_k,
        DType::Q6K => crate::ggml_kquant::q6_k,
        DType::Q8K => crate::ggml_kquant::q8_k,
        DType::TQ1_0 => crate::ggml_kquant::tq1_0,
        DType::TQ2_0 => crate::ggml_kquant::tq2_0,
        DType::MXFP4 => crate::ggml_kquant::mxfp4,
        DType::NVFP4 => crate::ggml_weighted::nvfp4,
        DType::Q1_0 => crate::ggml_weighted::q1_0,
        DType::Q2_0 => crate::ggml_weighted::q2_0,
        DType::IQ4NL => |x, y| crate::ggml_weighted::iq4_nl(x, None, y),
        DType::IQ4XS => |x, y| crate::ggml_weighted::iq4_xs(x, None, y),
        DType::IQ2S => |x, y| crate::ggml_iq::iq2_s(x, None, y),
        DType::IQ3XXS => |x, y| crate::ggml_iq::iq3_xxs(x, None, y),
        DType::IQ3S => |x, y| crate::ggml_iq::iq3_s(x, None, y),
        DType::IQ1M => |x, y| crate::ggml_iq::iq1_m(x, None, y),
        DType::Q8_0 => {
            let done = crate::simd::q8_0_prefix(src, out);
            for (x, y) in src[done * bs..]
                .chunks_exact(bs)
                .zip(out[done * ts..].chunks_exact_mut(ts))
            {
                q8_0_scalar(x, y);
            }
            return Ok(());
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            encode_f32(dtype, src, out);
            return Ok(());
        }
        other => {
            return Err(Error::Invalid(format!(
                "quantizing to {other} is not implemented yet"
            )))
        }
    };
    for (x, y) in src.chunks_exact(bs).zip(out.chunks_exact_mut(ts)) {
        f(x, y);
    }
    Ok(())
}

/// Quantizes whole rows of `row_len` values as `ggml_quantize_chunk` does, with an importance matrix (one
/// weight per column) when given: the `_impl` paths of the types that use one, the plain quantizer for the
/// others (Q8_0, TQ*, MXFP4, NVFP4, Q1_0, Q2_0 and the float types ignore it, as in ggml).
pub fn quantize_rows(
    dtype: DType,
    src: &[f32],
    row_len: usize,
    imatrix: Option<&[f32]>,
    out: &mut [u8],
) -> Result<()> {
    let Some(qw) = imatrix else {
        return quantize(dtype, src, out);
    };
    let info = dtype.info();
    let (bs, ts) = (info.block_size as usize, info.type_size as usize);
    if row_len == 0
        || !row_len.is_multiple_of(bs)
        || !src.len().is_multiple_of(row_len)
        || qw.len() != row_len
        || out.len() != src.len() / bs * ts
    {
        return Err(Error::Invalid(format!(
            "quantize {dtype}: {} values in rows of {row_len} with {} importance weights do not fill {} bytes",
            src.len(),
            qw.len(),
            out.len()
        )));
    }
    use crate::ggml_weighted as w;
    let row_bytes = row_len / bs * ts;
    type BlockFn = fn(&[f32], &[f32], &mut [u8]);
    let block: BlockFn = match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q4_1 | DType::Q5_1 => {
            for (x, y) in src
                .chunks_exact(row_len)
                .zip(out.chunks_exact_mut(row_bytes))
            {
                match dtype {
                    DType::Q4_0 => w::q_0_row(x, qw, y, false),
                    DType::Q5_0 => w::q_0_row(x, qw, y, true),
                    DType::Q4_1 => w::q_1_row(x, qw, y, false),
                    _ => w::q_1_row(x, qw, y, true),
                }
            }
            return Ok(());
        }
        DType::Q2K => w::q2_k,
        DType::Q3K => w::q3_k,
        DType::Q4K => w::q4_k,
        DType::Q5K => w::q5_k,
        DType::Q6K => w::q6_k,
        DType::IQ4NL => |x, q, y| w::iq4_nl(x, Some(q), y),
        DType::IQ4XS => |x, q, y| w::iq4_xs(x, Some(q), y),
        DType::IQ2XXS => |x, q, y| crate::ggml_iq::iq2_xxs(x, Some(q), y),
        DType::IQ2XS => |x, q, y| crate::ggml_iq::iq2_xs(x, Some(q), y),
        DType::IQ2S => |x, q, y| crate::ggml_iq::iq2_s(x, Some(q), y),
        DType::IQ3XXS => |x, q, y| crate::ggml_iq::iq3_xxs(x, Some(q), y),
        DType::IQ3S => |x, q, y| crate::ggml_iq::iq3_s(x, Some(q), y),
        DType::IQ1S => |x, q, y| crate::ggml_iq::iq1_s(x, Some(q), y),
        DType::IQ1M => |x, q, y| crate::ggml_iq::iq1_m(x, Some(q), y),
        _ => return quantize(dtype, src, out),
    };
    for (x, y) in src
        .chunks_exact(row_len)
        .zip(out.chunks_exact_mut(row_bytes))
    {
        for (b, (xb, yb)) in x.chunks_exact(bs).zip(y.chunks_exact_mut(ts)).enumerate() {
            block(xb, &qw[b * bs..(b + 1) * bs], yb);
        }
    }
    Ok(())
}

fn put_f16(y: &mut [u8], at: usize, v: f32) {
    y[at..at + 2].copy_from_slice(&f16_bits(v).to_le_bytes());
}

/// The value of largest magnitude (the first one on ties), as ggml's `amax`/`max` loop finds it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// C's `(int8_t)f` as x86-64 executes it: a 32-bit truncation whose low byte is kept.
fn trunc_i8(f: f32) -> i32 {
    c_int(f) as i8 as i32
}

fn q4_0(x: &[f32], y: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = inv(d);
    put_f16(y, 0, d);
    for j in 0..16 {
        let xi0 = trunc_i8(x[j] * id + 8.5).min(15) as u8;
        let xi1 = trunc_i8(x[16 + j] * id + 8.5).min(15) as u8;
        y[2 + j] = xi0 | (xi1 << 4);
    }
}

fn q4_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    for j in 0..16 {
        let xi0 = trunc_i8((x[j] - min) * id + 0.5).min(15) as u8;
        let xi1 = trunc_i8((x[16 + j] - min) * id + 0.5).min(15) as u8;
        y[4 + j] = xi0 | (xi1 << 4);
    }
}

fn q5_0(x: &[f32], y: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = inv(d);
    put_f16(y, 0, d);
    let mut qh = 0u32;
    for j in 0..16 {
        let xi0 = trunc_i8(x[j] * id + 16.5).min(31) as u32;
        let xi1 = trunc_i8(x[16 + j] * id + 16.5).min(31) as u32;
        y[6 + j] = ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4)) as u8;
        qh |= ((xi0 & 0x10) >> 4) << j;
        qh |= ((xi1 & 0x10) >> 4) << (j + 16);
    }
    y[2..6].copy_from_slice(&qh.to_le_bytes());
}

fn q5_1(x: &[f32], y: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    let mut qh = 0u32;
    for j in 0..16 {
        // C's (uint8_t)f: a 32-bit truncation whose low byte is kept
        let xi0 = c_int((x[j] - min) * id + 0.5) as u8 as u32;
        let xi1 = c_int((x[16 + j] - min) * id + 0.5) as u8 as u32;
        y[8 + j] = ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4)) as u8;
        qh |= ((xi0 & 0x10) >> 4) << j;
        qh |= ((xi1 & 0x10) >> 4) << (j + 16);
    }
    y[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// `(int)roundf(v)` as x86-64 executes it, without a libm call: truncate (exact), then step away from zero when
/// the exact remainder is at least one half; `INT_MIN` for NaN and |v| >= 2^31 (as `cvttss2si` gives).
#[inline(always)]
fn roundf_small(v: f32) -> i32 {
    if v.is_nan() || v.abs() >= 2147483648.0 {
        return i32::MIN;
    }
    let t = v as i32;
    let frac = v - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// The scalar reference Q8_0 block quantizer (`quantize_row_q8_0_ref`).
pub(crate) fn q8_0_scalar(x: &[f32], y: &mut [u8]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inv(d);
    put_f16(y, 0, d);
    for j in 0..32 {
        // |x * id| <= 127 (plus rounding), so the small-range roundf applies; NaN inputs give 0 as in C.
        y[2 + j] = roundf_small(x[j] * id) as i8 as u8;
    }
}

#[cfg(test)]
mod round_tests {
    use super::roundf_small;

    #[test]
    fn roundf_small_is_c_roundf() {
        let mut vals = vec![
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            126.5,
            -127.5,
            0.0,
            -0.0,
        ];
        let mut x = 0x2545f491u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            vals.push(f32::from_bits(x) % 128.0);
            vals.push((x % 2560) as f32 / 10.0 - 128.0);
        }
        for v in vals.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(roundf_small(v), v.round() as i32, "{v}");
        }
    }
}

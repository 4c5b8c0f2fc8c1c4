//! MLX affine quantization, bit-exact with `mlx.core.quantize` / `mlx.core.dequantize` (CPU).
//!
//! Layout (<https://ml-explore.github.io/mlx/build/html/python/_autosummary/mlx.core.quantize.html>): the last
//! dimension is cut into groups of `group_size` (32, 64, 128); each group gets a `scale` and a `bias` in the
//! input's float dtype, and each value becomes `rint((w - bias) / scale)` clamped to `[0, 2^bits - 1]`, packed
//! as a little-endian LSB-first bit stream (so `bits` in 2, 3, 4, 5, 6, 8 all pack the same way) and stored as
//! uint32 words. Dequantization is `q * scale + bias`, each operation rounded to the dtype, as MLX's array ops do.

use crate::cast::{decode_f32, encode_f32};
use lbrx_core::{DType, Error, Result};

/// Bits MLX supports.
pub const BITS: [u32; 6] = [2, 3, 4, 5, 6, 8];
/// Group sizes MLX supports.
pub const GROUP_SIZES: [usize; 3] = [32, 64, 128];

fn check(dtype: DType, bits: u32, group: usize) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::Invalid(format!(
            "MLX quantizes F32, F16 or BF16, not {dtype}"
        )));
    }
    if !BITS.contains(&bits) || !GROUP_SIZES.contains(&group) {
        return Err(Error::Invalid(format!(
            "MLX supports bits {BITS:?} and group sizes {GROUP_SIZES:?}, not {bits}/{group}"
        )));
    }
    Ok(())
}

/// Rounds an f32 to `dtype` and back (what storing a value in that dtype does).
fn round_to(dtype: DType, v: f32) -> f32 {
    let mut b = [0u8; 4];
    let ts = dtype.info().type_size as usize;
    encode_f32(dtype, &[v], &mut b[..ts]);
    let mut out = [0f32];
    decode_f32(dtype, &b[..ts], &mut out);
    out[0]
}

/// Quantizes `src` (elements of `dtype`, a whole number of groups) into `packed` (`n * bits / 8` bytes) and
/// per-group `scales` and `biases` (in `dtype`).
pub fn quantize_affine(
    dtype: DType,
    src: &[u8],
    bits: u32,
    group: usize,
    packed: &mut [u8],
    scales: &mut [u8],
    biases: &mut [u8],
) -> Result<()> {
    check(dtype, bits, group)?;
    let ts = dtype.info().type_size as usize;
    let n = src.len() / ts;
    let groups = n / group;
    if !n.is_multiple_of(group)
        || packed.len() != n * bits as usize / 8
        || scales.len() != groups * ts
        || biases.len() != groups * ts
    {
        return Err(Error::Invalid(format!(
            "MLX quantize: {n} values do not fit {groups} groups of {group} at {bits} bits"
        )));
    }
    let n_bins = ((1u32 << bits) - 1) as f32;
    let eps = 1e-7f32;
    let mut w = vec![0f32; group];
    let mut bitbuf = 0u64;
    let mut nbits = 0u32;
    let mut out_at = 0usize;
    for g in 0..groups {
        decode_f32(dtype, &src[g * group * ts..(g + 1) * group * ts], &mut w);
        let (mut w_min, mut w_max) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in &w {
            w_max = w_max.max(v);
            w_min = w_min.min(v);
        }
        let mask = w_min.abs() > w_max.abs();
        let mut scale = ((w_max - w_min) / n_bins).max(eps);
        if !mask {
            scale = -scale;
        }
        let edge = if mask { w_min } else { w_max };
        let q0 = (edge / scale).round_ties_even();
        let mut bias = 0f32;
        if q0 != 0.0 {
            scale = edge / q0;
            bias = edge;
        }
        for &v in &w {
            let q = ((v - bias) / scale).round_ties_even().clamp(0.0, n_bins) as u64;
            bitbuf |= q << nbits;
            nbits += bits;
            while nbits >= 8 {
                packed[out_at] = bitbuf as u8;
                out_at += 1;
                bitbuf >>= 8;
                nbits -= 8;
            }
        }
        encode_f32(dtype, &[scale], &mut scales[g * ts..(g + 1) * ts]);
        encode_f32(dtype, &[bias], &mut biases[g * ts..(g + 1) * ts]);
    }
    Ok(())
}

/// Dequantizes `packed` with per-group `scales`/`biases` (in `dtype`) into `out` (elements of `dtype`).
pub fn dequantize_affine(
    dtype: DType,
    packed: &[u8],
    scales: &[u8],
    biases: &[u8],
    bits: u32,
    group: usize,
    out: &mut [u8],
) -> Result<()> {
    check(dtype, bits, group)?;
    let ts = dtype.info().type_size as usize;
    let n = out.len() / ts;
    let groups = n / group;
    if !n.is_multiple_of(group)
        || packed.len() < n * bits as usize / 8
        || scales.len() != groups * ts
        || biases.len() != groups * ts
    {
        return Err(Error::Invalid(format!(
            "MLX dequantize: sizes do not match {n} values in groups of {group} at {bits} bits"
        )));
    }
    let (mut s, mut b) = (vec![0f32; groups], vec![0f32; groups]);
    decode_f32(dtype, scales, &mut s);
    decode_f32(dtype, biases, &mut b);
    let mask = (1u64 << bits) - 1;
    let mut vals = vec![0f32; group];
    let (mut bitbuf, mut nbits, mut at) = (0u64, 0u32, 0usize);
    for g in 0..groups {
        for v in vals.iter_mut() {
            while nbits < bits {
                bitbuf |= (packed[at] as u64) << nbits;
                at += 1;
                nbits += 8;
            }
            let q = (bitbuf & mask) as f32;
            bitbuf >>= bits;
            nbits -= bits;
            *v = if dtype == DType::F32 {
                q * s[g] + b[g]
            } else {
                round_to(dtype, round_to(dtype, q * s[g]) + b[g])
            };
        }
        encode_f32(dtype, &vals, &mut out[g * group * ts..(g + 1) * group * ts]);
    }
    Ok(())
}

//! MLX affine quantization, bit-exact with `mlx.core.quantize` / `mlx.core.dequantize` (CPU).
//!
//! Layout (<https://ml-explore.github.io/mlx/build/html/python/_autosummary/mlx.core.quantize.html>): the last
//! dimension is cut into groups of `group_size` (32, 64, 128); each group gets a `scale` and a `bias` in the
//! input's float dtype, and each value becomes `rint((w - bias) / scale)` clamped to `[0, 2^bits - 1]`, packed
//! as a little-endian LSB-first bit stream (so `bits` in 2, 3, 4, 5, 6, 8 all pack the same way) and stored as
//! uint32 words. Dequantization is `q * scale + bias`, each operation rounded to the dtype, as MLX's array ops do.

use crate::cast::{decode_f32, encode_f32, f32_to_e4m3};
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
    quantize_groups_dispatch(dtype, src, bits, group, packed, scales, biases);
    Ok(())
}

simd_build! {
    /// [`quantize_groups`], built for AVX-512/AVX2 where the CPU has them (measured in BENCHMARKS.md).
    fn quantize_groups_dispatch(
        dtype: DType,
        src: &[u8],
        bits: u32,
        group: usize,
        packed: &mut [u8],
        scales: &mut [u8],
        biases: &mut [u8],
    ) -> () = quantize_groups
}

/// The quantizer proper, on sizes already checked.
#[inline(always)]
fn quantize_groups(
    dtype: DType,
    src: &[u8],
    bits: u32,
    group: usize,
    packed: &mut [u8],
    scales: &mut [u8],
    biases: &mut [u8],
) {
    let ts = dtype.info().type_size as usize;
    let groups = src.len() / ts / group;
    let n_bins = ((1u32 << bits) - 1) as f32;
    let eps = 1e-7f32;
    let mut w = vec![0f32; group];
    let mut q = vec![0u8; group];
    let group_bytes = group * bits as usize / 8;
    for g in 0..groups {
        decode_f32(dtype, &src[g * group * ts..(g + 1) * group * ts], &mut w);
        // eight independent lanes (NaNs skipped, as f32::min/max do), so that it vectorizes
        let (mut lo, mut hi) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
        for c in w.chunks_exact(8) {
            for k in 0..8 {
                lo[k] = if c[k] < lo[k] { c[k] } else { lo[k] };
                hi[k] = if c[k] > hi[k] { c[k] } else { hi[k] };
            }
        }
        let w_min = lo.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        let w_max = hi.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
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
        // element-wise and branch-free, so that it vectorizes; x + 1.5 * 2^23 - 1.5 * 2^23 rounds half to even
        // like `round_ties_even` for |x| <= 2^22 (without a libm call on baseline x86-64), and anything
        // larger clamps to the same end of the range either way
        const MAGIC: f32 = 12_582_912.0;
        for (o, &v) in q.iter_mut().zip(&w) {
            *o = (((v - bias) / scale + MAGIC) - MAGIC).clamp(0.0, n_bins) as i32 as u8;
        }
        pack(
            &q,
            bits,
            &mut packed[g * group_bytes..(g + 1) * group_bytes],
        );
        encode_f32(dtype, &[scale], &mut scales[g * ts..(g + 1) * ts]);
        encode_f32(dtype, &[bias], &mut biases[g * ts..(g + 1) * ts]);
    }
}

/// Packs values of `bits` bits LSB-first into `out` (`q.len() * bits / 8` bytes; `q.len()` a multiple of 8):
/// eight values at a time fill exactly `bits` bytes.
fn pack(q: &[u8], bits: u32, out: &mut [u8]) {
    let b = bits as usize;
    for (vals, dst) in q.chunks_exact(8).zip(out.chunks_exact_mut(b)) {
        let mut word = 0u64;
        for (k, &v) in vals.iter().enumerate() {
            word |= (v as u64) << (k * b);
        }
        dst.copy_from_slice(&word.to_le_bytes()[..b]);
    }
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

/// An MLX quantization mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Integers with a float scale and bias per group (`quantize_affine`).
    Affine,
    /// FP4 (E2M1) values, one power-of-two (E8M0) scale per 32.
    Mxfp4,
    /// FP8 (E4M3) values, one power-of-two (E8M0) scale per 32.
    Mxfp8,
    /// FP4 (E2M1) values, one FP8 (E4M3) scale per 16.
    Nvfp4,
}

/// The modes: (mode, name as mlx spells it, group size, bits; the fixed pair of the float modes, the default
/// of affine).
pub const MODES: [(Mode, &str, usize, u32); 4] = [
    (Mode::Affine, "affine", 64, 4),
    (Mode::Mxfp4, "mxfp4", 32, 4),
    (Mode::Mxfp8, "mxfp8", 32, 8),
    (Mode::Nvfp4, "nvfp4", 16, 4),
];

impl Mode {
    /// The mode mlx calls `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        MODES.iter().find(|m| m.1 == name).map(|m| m.0)
    }
    /// mlx's name.
    pub fn name(self) -> &'static str {
        MODES.iter().find(|m| m.0 == self).map_or("affine", |m| m.1)
    }
    /// (group size, bits): the only pair of a float mode, the default of affine.
    pub fn defaults(self) -> (usize, u32) {
        MODES
            .iter()
            .find(|m| m.0 == self)
            .map_or((64, 4), |m| (m.2, m.3))
    }
}

/// FP4 E2M1 values by code (sign in bit 3).
const FP4: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// f32 -> FP4 E2M1 code as mlx rounds it: to nearest, ties toward zero; a zero result has no sign.
fn to_fp4(x: f32) -> u8 {
    let a = x.abs();
    let code = [0.25f32, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
        .iter()
        .filter(|&&t| a > t)
        .count() as u8;
    if code != 0 && x.is_sign_negative() {
        code | 8
    } else {
        code
    }
}

/// The scale an E8M0 byte stands for (mlx reads 0 as 2^-127).
fn e8m0(s: u8) -> f32 {
    f32::from_bits(if s == 0 {
        0x0040_0000
    } else {
        (s as u32) << 23
    })
}

/// The E8M0 byte mlx picks for a group whose largest magnitude is `amax`: 2^ceil(log2(amax / max)), with the
/// byte wrapping as mlx's cast does outside the range; an all-zero group gets 1.
fn to_e8m0(amax: f32, max: f32) -> u8 {
    if amax == 0.0 {
        return 127;
    }
    // log2 in f64: a quotient one ulp above a power of two must round up (f32's log2 returns the power)
    (((amax / max) as f64).log2().ceil() as i32 + 127) as u8
}

/// Quantizes `src` (elements of `dtype`) in a float mode (`mxfp4`, `mxfp8`, `nvfp4`) into `packed` (4 or 8 bits
/// per value, low nibble first) and one `u8` scale per group, as `mlx.core.quantize(w, mode=...)` does.
pub fn quantize_fp(
    mode: Mode,
    dtype: DType,
    src: &[u8],
    packed: &mut [u8],
    scales: &mut [u8],
) -> Result<()> {
    let (group, bits) = mode.defaults();
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::Invalid(format!(
            "MLX {} quantizes F32, F16 or BF16, not {dtype}",
            mode.name()
        )));
    }
    let ts = dtype.info().type_size as usize;
    let n = src.len() / ts;
    let groups = n / group;
    if mode == Mode::Affine
        || !n.is_multiple_of(group)
        || packed.len() != n * bits as usize / 8
        || scales.len() != groups
    {
        return Err(Error::Invalid(format!(
            "MLX {} quantize: {n} values do not fit groups of {group}",
            mode.name()
        )));
    }
    let mut w = vec![0f32; group];
    let gb = group * bits as usize / 8;
    for g in 0..groups {
        decode_f32(dtype, &src[g * group * ts..(g + 1) * group * ts], &mut w);
        let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (byte, scale) = match mode {
            Mode::Nvfp4 => {
                let b = f32_to_e4m3(amax / 6.0);
                (b, crate::cast::e4m3_to_f32(b))
            }
            Mode::Mxfp8 => {
                let b = to_e8m0(amax, 448.0);
                (b, e8m0(b))
            }
            _ => {
                let b = to_e8m0(amax, 6.0);
                (b, e8m0(b))
            }
        };
        scales[g] = byte;
        let out = &mut packed[g * gb..(g + 1) * gb];
        let scaled = |v: f32| if scale == 0.0 { 0.0 } else { v / scale };
        if bits == 8 {
            for (o, &v) in out.iter_mut().zip(&w) {
                *o = f32_to_e4m3(scaled(v));
            }
        } else {
            for (o, pair) in out.iter_mut().zip(w.chunks_exact(2)) {
                *o = to_fp4(scaled(pair[0])) | (to_fp4(scaled(pair[1])) << 4);
            }
        }
    }
    Ok(())
}

/// Dequantizes a float mode's `packed` values and `u8` scales into `out` (elements of `dtype`), as
/// `mlx.core.dequantize(..., mode=...)` does (each value times its group's scale, rounded once to `dtype`).
pub fn dequantize_fp(
    mode: Mode,
    packed: &[u8],
    scales: &[u8],
    dtype: DType,
    out: &mut [u8],
) -> Result<()> {
    let (group, bits) = mode.defaults();
    let ts = dtype.info().type_size as usize;
    let n = out.len() / ts;
    if mode == Mode::Affine
        || !matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
        || !n.is_multiple_of(group)
        || packed.len() < n * bits as usize / 8
        || scales.len() != n / group
    {
        return Err(Error::Invalid(format!(
            "MLX {} dequantize: sizes do not match {n} values in groups of {group}",
            mode.name()
        )));
    }
    let mut vals = vec![0f32; group];
    let gb = group * bits as usize / 8;
    for (g, &sb) in scales.iter().enumerate() {
        let scale = if mode == Mode::Nvfp4 {
            crate::cast::e4m3_to_f32(sb)
        } else {
            e8m0(sb)
        };
        let codes = &packed[g * gb..(g + 1) * gb];
        if bits == 8 {
            for (v, &c) in vals.iter_mut().zip(codes) {
                *v = crate::cast::e4m3_to_f32(c) * scale;
            }
        } else {
            for (pair, &c) in vals.chunks_exact_mut(2).zip(codes) {
                pair[0] = FP4[(c & 15) as usize] * scale;
                pair[1] = FP4[(c >> 4) as usize] * scale;
            }
        }
        encode_f32(dtype, &vals, &mut out[g * group * ts..(g + 1) * group * ts]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched quantizer (at every level the CPU has: AVX-512, AVX2) equals the portable code on every
    /// bit width.
    #[test]
    fn dispatched_equals_portable() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let vals: Vec<f32> = (0..4096)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                if i % 97 == 0 {
                    v * 40.0
                } else {
                    v
                }
            })
            .collect();
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        for bits in BITS {
            for group in GROUP_SIZES {
                let groups = vals.len() / group;
                let mut a = (
                    vec![0u8; vals.len() * bits as usize / 8],
                    vec![0u8; groups * 4],
                    vec![0u8; groups * 4],
                );
                let mut b = a.clone();
                quantize_groups(DType::F32, &src, bits, group, &mut b.0, &mut b.1, &mut b.2);
                for level in [crate::SimdLevel::Avx2, crate::SimdLevel::Avx512] {
                    crate::cap_simd_level(level);
                    quantize_affine(DType::F32, &src, bits, group, &mut a.0, &mut a.1, &mut a.2)
                        .unwrap();
                    crate::cap_simd_level(crate::SimdLevel::Avx512);
                    assert_eq!(a, b, "{bits} bits, groups of {group}, {level:?}");
                }
                assert!(a.0.iter().any(|&v| v != 0));
            }
        }
    }
}

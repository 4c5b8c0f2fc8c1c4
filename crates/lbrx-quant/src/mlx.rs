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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the function is the portable code below
        // compiled with AVX2 enabled, so it computes the same values (no FMA contraction: Rust never fuses).
        unsafe { quantize_groups_avx2(dtype, src, bits, group, packed, scales, biases) };
        return Ok(());
    }
    quantize_groups(dtype, src, bits, group, packed, scales, biases);
    Ok(())
}

/// [`quantize_groups`] compiled for AVX2 (twice the lanes of baseline SSE2; measured in BENCHMARKS.md).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_groups_avx2(
    dtype: DType,
    src: &[u8],
    bits: u32,
    group: usize,
    packed: &mut [u8],
    scales: &mut [u8],
    biases: &mut [u8],
) {
    quantize_groups(dtype, src, bits, group, packed, scales, biases)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched quantizer (AVX2 where the CPU has it) equals the portable code on every bit width.
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
                quantize_affine(DType::F32, &src, bits, group, &mut a.0, &mut a.1, &mut a.2)
                    .unwrap();
                quantize_groups(DType::F32, &src, bits, group, &mut b.0, &mut b.1, &mut b.2);
                assert_eq!(a, b, "{bits} bits, groups of {group}");
                assert!(a.0.iter().any(|&v| v != 0));
            }
        }
    }
}

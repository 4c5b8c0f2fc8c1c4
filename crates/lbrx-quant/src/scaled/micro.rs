//! The micro-block formats: NVFP4 (E2M1 codes, two per byte high nibble first, an E4M3 scale per 16 values
//! and an F32 per-tensor scale) and MXFP8 (E4M3 values, an E8M0 power-of-two scale per 32 values), as
//! comfy-kitchen's eager backend computes them (`backends/eager/quantization.py`, `float_utils.py`): values
//! are first rounded to bfloat16 (the kernels' input type), scales are stored in cuBLAS' swizzled 128x4 tiling
//! (<https://docs.nvidia.com/cuda/cublas/#d-block-scaling-factors-layout>).
//!
//! The E2M1 rounding is comfy-kitchen's bit-level `_f32_to_floatx_unpacked(x, 2, 1)` (round to nearest even,
//! saturating at 6), ported operation for operation so that NaN inputs give its codes too.

use crate::cast::{e4m3_to_f32, f32_to_e4m3};
use crate::scaled::fast::{bf16_round, clamp, e4m3_clamped};

/// The largest E2M1 magnitude.
pub const E2M1_MAX: f32 = 6.0;
/// The E2M1 values of the 16 codes (sign in bit 3).
pub const E2M1_VALUES: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// f32 -> E2M1 code in the low 4 bits (comfy-kitchen's bit manipulation, NaN included; both paths computed and
/// one selected, so that it vectorizes).
#[inline(always)]
pub fn e2m1(v: f32) -> u8 {
    const MBITS: i32 = 1;
    const DENORM_MASK_INT: i32 = 149 << 23; // ((127 - 1) + (23 - 1) + 1) << 23
    let bits = v.to_bits() as i32;
    let sign = bits & i32::MIN;
    let a = f32::from_bits((bits ^ sign) as u32);
    let saturate = a >= 6.0;
    let denormal = !saturate && a < 1.0;
    let d = (a + f32::from_bits(DENORM_MASK_INT as u32)).to_bits() as i32;
    let den = d.wrapping_sub(DENORM_MASK_INT) as u8;
    let mut n = a.to_bits() as i32;
    let odd = (n >> (23 - MBITS)) & 1;
    n = n.wrapping_add(((1 - 127) << 23) + ((1 << 21) - 1));
    n = n.wrapping_add(odd);
    let norm = (n >> (23 - MBITS)) as u8;
    let code = if saturate {
        7u8
    } else if denormal {
        den
    } else {
        norm
    };
    let sign_lp = ((sign as u32) >> 28) as u8 & 0x8;
    code | sign_lp
}

/// NVFP4's per-tensor scale (`weight_scale_2`): `amax / (448 * 6)`.
pub fn nvfp4_tensor_scale(tensor_amax: f32) -> f32 {
    tensor_amax / 2688.0
}

/// One NVFP4 block's scale relative to the tensor's (from the block's bf16 maximum), clamped to 448 (NaN
/// kept), before its E4M3 rounding.
fn nvfp4_relative(block_amax: f32, tensor_amax: f32) -> f32 {
    let s = (block_amax / E2M1_MAX) / nvfp4_tensor_scale(tensor_amax);
    if s > 448.0 {
        448.0
    } else {
        s
    }
}

simd_build! {
    /// Encodes one row (`row`: its real values; the padded rest is zero) into packed E2M1 pairs `out` and its
    /// blocks' E4M3 scale bytes `scales`, with the tensor's absolute maximum.
    pub fn nvfp4_row(row: &[f32], tensor_amax: f32, out: &mut [u8], scales: &mut [u8]) -> () = nvfp4_row_portable
}

#[inline(always)]
fn nvfp4_row_portable(row: &[f32], tensor_amax: f32, out: &mut [u8], scales: &mut [u8]) {
    let pts = nvfp4_tensor_scale(tensor_amax);
    let mut x = [0f32; 16];
    let mut codes = [0u8; 16];
    for (b, (pair, sc)) in out.chunks_mut(8).zip(scales.iter_mut()).enumerate() {
        let start = (b * 16).min(row.len());
        let end = (start + 16).min(row.len());
        x.fill(0.0);
        for (xi, &v) in x.iter_mut().zip(&row[start..end]) {
            *xi = bf16_round(v);
        }
        let m = crate::scaled::fast::amax_f32(&x);
        let e4 = f32_to_e4m3(nvfp4_relative(m, tensor_amax));
        *sc = e4;
        let total = pts * e4m3_to_f32(e4);
        let zero = total == 0.0;
        let safe = if zero { 1.0 } else { total };
        for (c, &v) in codes.iter_mut().zip(&x) {
            let d = v / safe;
            *c = e2m1(clamp(if zero { 0.0 } else { d }, E2M1_MAX));
        }
        for (i, o) in pair.iter_mut().enumerate() {
            *o = (codes[2 * i] << 4) | codes[2 * i + 1];
        }
    }
}

/// One MXFP8 block's E8M0 exponent and the f32 it stands for, from the block's absolute maximum.
fn mxfp8_exponent(block_amax: f32) -> (u8, f32) {
    let mut need = block_amax / 448.0;
    let min = f32::from_bits(1 << 22); // 2^-127
    if need < min {
        need = min;
    }
    let l = ((need as f64).log2() as f32).ceil();
    // torch's float-to-int32 conversion: NaN and out-of-range values become i32::MIN
    let e = if l.is_finite() { l as i32 } else { i32::MIN };
    let e = e.wrapping_add(127).clamp(0, 254) as u8;
    let f = if e == 0 {
        0.0
    } else {
        f32::from_bits((e as u32) << 23)
    };
    (e, f)
}

simd_build! {
    /// Encodes one row (`row`: its real values; the padded rest is zero) into E4M3 bytes `out` and its blocks'
    /// E8M0 scale bytes `scales` (0 for an all-zero block).
    pub fn mxfp8_row(row: &[f32], out: &mut [u8], scales: &mut [u8]) -> () = mxfp8_row_portable
}

#[inline(always)]
fn mxfp8_row_portable(row: &[f32], out: &mut [u8], scales: &mut [u8]) {
    let mut x = [0f32; 32];
    for (b, (blk, sc)) in out.chunks_mut(32).zip(scales.iter_mut()).enumerate() {
        let start = (b * 32).min(row.len());
        let end = (start + 32).min(row.len());
        x.fill(0.0);
        for (xi, &v) in x.iter_mut().zip(&row[start..end]) {
            *xi = bf16_round(v);
        }
        let m = crate::scaled::fast::amax_f32(&x);
        let zero = m == 0.0;
        let (e, f) = mxfp8_exponent(m);
        *sc = if zero { 0 } else { e };
        let f = if zero { 1.0 } else { f };
        for (o, &v) in blk.iter_mut().zip(&x) {
            let d = v / f;
            *o = e4m3_clamped(clamp(if zero { 0.0 } else { d }, 448.0));
        }
    }
}

/// The position in cuBLAS' swizzled layout of the scale at (`r`, `c`) of a matrix `cols` wide (padded to 4).
pub fn swizzled_index(r: u64, c: u64, cols: u64) -> u64 {
    let col_blocks = cols.div_ceil(4);
    let (rb, i, j) = (r / 128, (r % 128) / 32, r % 32);
    let (cb, cc) = (c / 4, c % 4);
    ((rb * col_blocks + cb) * 32 + j) * 16 + i * 4 + cc
}

/// `scales` (`rows x cols`, row-major) in cuBLAS' swizzled layout, zero-padded to 128 rows and 4 columns.
pub fn swizzle(scales: &[u8], rows: u64, cols: u64) -> Vec<u8> {
    let (pr, pc) = (super::roundup(rows, 128), super::roundup(cols, 4));
    let mut out = vec![0u8; (pr * pc) as usize];
    for r in 0..rows {
        for c in 0..cols {
            out[swizzled_index(r, c, cols) as usize] = scales[(r * cols + c) as usize];
        }
    }
    out
}

/// The scale at (`r`, `c`) of a swizzled layout for a matrix `cols` wide; 0 past its end.
pub fn unswizzled(swizzled: &[u8], r: u64, c: u64, cols: u64) -> u8 {
    swizzled
        .get(swizzled_index(r, c, cols) as usize)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2m1_rounds_to_nearest_even_and_saturates() {
        let cases = [
            (0.0, 0),
            (0.25, 0),
            (0.26, 1),
            (0.75, 2),
            (1.25, 2),
            (1.75, 4),
            (2.5, 4),
            (2.51, 5),
            (3.5, 6),
            (5.0, 6),
            (5.01, 7),
            (6.0, 7),
            (100.0, 7),
            (-0.0, 8),
            (-1.0, 10),
            (-6.0, 15),
        ];
        for (v, code) in cases {
            assert_eq!(e2m1(v), code, "{v}");
            if code != 7 || v == 6.0 {
                assert_eq!(
                    E2M1_VALUES[e2m1(E2M1_VALUES[code as usize]) as usize],
                    E2M1_VALUES[code as usize]
                );
            }
        }
    }

    #[test]
    fn swizzle_places_each_scale_once() {
        let (rows, cols) = (200u64, 9u64);
        let scales: Vec<u8> = (0..rows * cols).map(|i| (i % 251) as u8 + 1).collect();
        let s = swizzle(&scales, rows, cols);
        assert_eq!(s.len(), 256 * 12);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(unswizzled(&s, r, c, cols), scales[(r * cols + c) as usize]);
            }
        }
        assert_eq!(s.iter().filter(|&&b| b != 0).count() as u64, rows * cols);
    }

    #[test]
    fn mxfp8_exponents_are_powers_of_two_covering_the_block() {
        for &m in &[448.0f32, 449.0, 1.0, 0.001, 3e38, 1e-30] {
            let m = bf16_round(m);
            let (e, f) = mxfp8_exponent(m);
            assert!(e > 0);
            assert!(m / f <= 448.0, "{m}");
            assert!(m / (f / 2.0) > 448.0 || e == 1, "{m}");
        }
    }
}

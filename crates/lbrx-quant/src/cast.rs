//! Element-wise casts between the float dtypes F64, F32, F16, BF16, F8_E4M3 and F8_E5M2.
//!
//! Every cast rounds to nearest, ties to even, and follows numpy / ml_dtypes / torch at the edges:
//! Inf stays Inf where the target has it; E4M3 ("fn": no Inf) turns Inf and overflow (> 464) into NaN;
//! E5M2, F16 and BF16 overflow to Inf; NaN stays NaN with its sign (payload bits may differ, as they do
//! between the references). F64 -> F16 rounds once (as numpy does); F64 -> BF16/F8 rounds through F32, as
//! ml_dtypes and torch do.

use crate::simd;
use half::f16;
use lbrx_core::{DType, Error, Result};
use std::sync::OnceLock;

/// Elements converted per step through the f32 staging buffer.
const STEP: usize = 2048;

/// Casts `src` (elements of `from`) into `dst` (elements of `to`). `dst` must hold exactly as many elements.
/// Uses a SIMD path where the CPU has one for the pair (checked equal to [`cast_scalar`] by tests).
pub fn cast(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> Result<()> {
    check(from, src, to, dst)?;
    let done = simd::cast_prefix(from, src, to, dst);
    let (fs, ts) = (from.info().type_size as usize, to.info().type_size as usize);
    cast_unchecked(from, &src[done * fs..], to, &mut dst[done * ts..]);
    Ok(())
}

/// The scalar reference path of [`cast`]: plain Rust, one element at a time, no CPU-specific code.
pub fn cast_scalar(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> Result<()> {
    check(from, src, to, dst)?;
    cast_unchecked(from, src, to, dst);
    Ok(())
}

fn check(from: DType, src: &[u8], to: DType, dst: &[u8]) -> Result<()> {
    if !from.is_castable_float() || !to.is_castable_float() {
        return Err(Error::Invalid(format!(
            "cannot cast {from} to {to}: only F64/F32/F16/BF16/F8_E4M3/F8_E5M2 convert"
        )));
    }
    let (fs, ts) = (from.info().type_size as usize, to.info().type_size as usize);
    if !src.len().is_multiple_of(fs) || dst.len() != src.len() / fs * ts {
        return Err(Error::Invalid(format!(
            "cast {from}->{to}: {} source bytes do not match {} destination bytes",
            src.len(),
            dst.len()
        )));
    }
    Ok(())
}

fn cast_unchecked(from: DType, src: &[u8], to: DType, dst: &mut [u8]) {
    let (fs, ts) = (from.info().type_size as usize, to.info().type_size as usize);
    if from == to {
        dst.copy_from_slice(src);
        return;
    }
    if (from, to) == (DType::F64, DType::F16) {
        for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(2)) {
            let v = f64::from_le_bytes(s.try_into().expect("8 bytes"));
            d.copy_from_slice(&f16::from_f64(v).to_bits().to_le_bytes());
        }
        return;
    }
    let mut buf = [0f32; STEP];
    for (s, d) in src.chunks(STEP * fs).zip(dst.chunks_mut(STEP * ts)) {
        let n = s.len() / fs;
        decode_f32(from, s, &mut buf[..n]);
        encode_f32(to, &buf[..n], d);
    }
}

/// f32 -> IEEE binary16 bits, round to nearest even; overflow to Inf; NaN quieted with its top payload bits
/// (as x86 F16C does).
pub fn f16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let abs = x & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        let nan = if abs > 0x7f80_0000 {
            0x0200 | ((abs >> 13) & 0x3ff) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    if abs >= 0x4780_0000 {
        return sign | 0x7c00; // >= 65536 rounds past the largest finite half
    }
    if abs < 0x3880_0000 {
        // Subnormal or zero half: scale so one half-ulp (2^-24) is 1 and round to an integer.
        let m = f32::from_bits(abs) * 16_777_216.0; // exact: a power-of-two scale of a small value
        return sign | m.round_ties_even() as u16;
    }
    // Normal: re-bias the exponent (127 -> 15) and round 23 mantissa bits to 10; a carry bumps the exponent.
    let rebased = abs - (112 << 23);
    let rounded = (rebased + 0x0fff + ((rebased >> 13) & 1)) >> 13;
    sign | rounded as u16
}

/// IEEE binary16 bits -> f32 (exact; NaN quieted, payload kept).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 => {
            let v = man as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        0x1f if man == 0 => sign | 0x7f80_0000,
        0x1f => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Decodes elements of a castable float dtype into f32 (exact, except F64 which rounds).
pub fn decode_f32(from: DType, src: &[u8], out: &mut [f32]) {
    match from {
        DType::F32 => {
            for (s, o) in src.chunks_exact(4).zip(out) {
                *o = f32::from_le_bytes(s.try_into().expect("4 bytes"));
            }
        }
        DType::F64 => {
            for (s, o) in src.chunks_exact(8).zip(out) {
                *o = f64::from_le_bytes(s.try_into().expect("8 bytes")) as f32;
            }
        }
        DType::F16 => {
            for (s, o) in src.chunks_exact(2).zip(out) {
                *o = f16_to_f32(u16::from_le_bytes([s[0], s[1]]));
            }
        }
        DType::BF16 => {
            for (s, o) in src.chunks_exact(2).zip(out) {
                *o = f32::from_bits((u16::from_le_bytes([s[0], s[1]]) as u32) << 16);
            }
        }
        DType::F8E4M3 => {
            let t = e4m3_table();
            for (s, o) in src.iter().zip(out) {
                *o = t[*s as usize];
            }
        }
        DType::F8E5M2 => {
            for (s, o) in src.iter().zip(out) {
                *o = f16_to_f32((*s as u16) << 8);
            }
        }
        _ => {}
    }
}

/// [`encode_f32`] with the SIMD path where the CPU has one (bit-identical, checked by tests).
pub fn encode_f32_fast(to: DType, src: &[f32], out: &mut [u8]) {
    let done = simd::encode_prefix(to, src, out);
    let ts = to.info().type_size as usize;
    encode_f32(to, &src[done..], &mut out[done * ts..]);
}

/// Encodes f32 values into a castable float dtype, rounding to nearest even (the scalar reference path).
pub fn encode_f32(to: DType, src: &[f32], out: &mut [u8]) {
    match to {
        DType::F32 => {
            for (v, o) in src.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F64 => {
            for (v, o) in src.iter().zip(out.chunks_exact_mut(8)) {
                o.copy_from_slice(&(*v as f64).to_le_bytes());
            }
        }
        DType::F16 => {
            for (v, o) in src.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&f16_bits(*v).to_le_bytes());
            }
        }
        DType::BF16 => {
            for (v, o) in src.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&bf16_bits(*v).to_le_bytes());
            }
        }
        DType::F8E4M3 => {
            for (v, o) in src.iter().zip(out) {
                *o = f32_to_e4m3(*v);
            }
        }
        DType::F8E5M2 => {
            for (v, o) in src.iter().zip(out) {
                *o = f32_to_e5m2(*v);
            }
        }
        _ => {}
    }
}

/// f32 -> bfloat16 bits, round to nearest even; NaN becomes the canonical quiet NaN with its sign.
pub fn bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    if x & 0x7fff_ffff > 0x7f80_0000 {
        return ((x >> 16) as u16 & 0x8000) | 0x7fc0;
    }
    ((x + 0x7fff + ((x >> 16) & 1)) >> 16) as u16
}

/// Rounds |x| (given as f32 bits without sign, finite) to a minifloat with `m` mantissa bits and exponent
/// `bias`, returning the unsigned code (which may exceed the format's range: callers map overflow).
fn round_minifloat(abs_bits: u32, m: u32, bias: i32) -> u32 {
    let exp = (abs_bits >> 23) as i32 - 127 + bias;
    if exp >= 1 {
        // Normal in the target: re-bias the exponent in place, then round the mantissa to m bits (RNE);
        // a carry out of the mantissa correctly bumps the exponent.
        let shift = 23 - m;
        let rebased = abs_bits - (((127 - bias) as u32) << 23);
        let lsb = (rebased >> shift) & 1;
        (rebased + (1 << (shift - 1)) - 1 + lsb) >> shift
    } else {
        // Subnormal (or zero) in the target: scale so one unit of the last place is 1, round to an integer.
        let x = f32::from_bits(abs_bits) * 2f32.powi(bias - 1 + m as i32);
        x.round_ties_even() as u32
    }
}

/// f32 -> FP8 E4M3FN: round to nearest even; NaN, Inf and |x| > 464 become NaN (0x7f, with sign).
pub fn f32_to_e4m3(v: f32) -> u8 {
    let bits = v.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let abs = bits & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        return sign | 0x7f;
    }
    let code = round_minifloat(abs, 3, 7);
    if code > 0x7e {
        sign | 0x7f
    } else {
        sign | code as u8
    }
}

/// f32 -> FP8 E5M2: round to nearest even; overflow and Inf become Inf, NaN stays (quiet) NaN.
pub fn f32_to_e5m2(v: f32) -> u8 {
    let bits = v.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let abs = bits & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        return sign | 0x7e;
    }
    if abs == 0x7f80_0000 {
        return sign | 0x7c;
    }
    let code = round_minifloat(abs, 2, 15);
    if code >= 0x7c {
        sign | 0x7c
    } else {
        sign | code as u8
    }
}

/// FP8 E4M3FN -> f32.
pub fn e4m3_to_f32(b: u8) -> f32 {
    e4m3_table()[b as usize]
}

/// FP8 E4M3FN -> f32, all 256 codes.
fn e4m3_table() -> &'static [f32; 256] {
    static T: OnceLock<[f32; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0f32; 256];
        for (b, slot) in t.iter_mut().enumerate() {
            let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
            let exp = ((b >> 3) & 0xf) as i32;
            let man = (b & 7) as f32;
            *slot = if exp == 0xf && b & 7 == 7 {
                f32::NAN.copysign(sign)
            } else if exp == 0 {
                sign * man * 2f32.powi(-9)
            } else {
                sign * (1.0 + man / 8.0) * 2f32.powi(exp - 7)
            };
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e4m3(v: f32) -> u8 {
        f32_to_e4m3(v)
    }

    #[test]
    fn e4m3_edges_match_ml_dtypes() {
        // Values and codes observed from ml_dtypes 0.5.4 (float32 -> float8_e4m3fn).
        let cases: [(f32, u8); 12] = [
            (448.0, 0x7e),
            (464.0, 0x7e),
            (465.0, 0x7f),
            (480.0, 0x7f),
            (f32::INFINITY, 0x7f),
            (f32::NEG_INFINITY, 0xff),
            (2f32.powi(-9), 0x01),
            (2f32.powi(-10), 0x00),
            (2f32.powi(-10) * 1.0001, 0x01),
            (3.0 * 2f32.powi(-11), 0x01),
            (1e-30, 0x00),
            (-0.0, 0x80),
        ];
        for (v, code) in cases {
            assert_eq!(e4m3(v), code, "{v}");
        }
    }

    #[test]
    fn e5m2_edges_match_ml_dtypes() {
        let cases: [(f32, u8); 8] = [
            (448.0, 0x5f),
            (480.0, 0x60),
            (57344.0, 0x7b),
            (61439.0, 0x7b),
            (61440.0, 0x7c),
            (1e9, 0x7c),
            (2f32.powi(-10), 0x14),
            (3.0 * 2f32.powi(-11), 0x16),
        ];
        for (v, code) in cases {
            assert_eq!(f32_to_e5m2(v), code, "{v}");
        }
    }

    #[test]
    fn e4m3_round_trips_every_code() {
        for b in 0..=255u8 {
            let v = e4m3_table()[b as usize];
            if v.is_nan() {
                assert_eq!(b & 0x7f, 0x7f);
                continue;
            }
            assert_eq!(f32_to_e4m3(v), b, "code {b:#x} -> {v}");
        }
    }

    #[test]
    fn e5m2_round_trips_every_code() {
        for b in 0..=255u8 {
            let v = f16_to_f32((b as u16) << 8);
            if v.is_nan() {
                assert!(f16_to_f32((f32_to_e5m2(v) as u16) << 8).is_nan());
                continue;
            }
            assert_eq!(f32_to_e5m2(v), b, "code {b:#x} -> {v}");
        }
    }

    #[test]
    fn cast_rejects_mismatched_lengths_and_non_floats() {
        let mut out = [0u8; 3];
        assert!(cast(DType::F32, &[0; 8], DType::F16, &mut out).is_err());
        assert!(cast(DType::I32, &[0; 4], DType::F32, &mut [0; 4]).is_err());
    }
}

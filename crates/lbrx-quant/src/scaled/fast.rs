//! Branch-free kernels of the scaled encodings' hot loops, written so that the compiler vectorizes them
//! with the baseline instruction set: absolute maxima as integer maxima of sign-cleared bits (NaN, whose
//! bits exceed infinity's, still wins), E4M3 rounding by integer carry, INT8 rounding by the 1.5 * 2^23
//! addition. Each gives exactly what the reference path gives (`cast::f32_to_e4m3`, `round_ties_even`,
//! `nan_max`); the tests check them against it.

/// The absolute maximum of `v` as torch's `amax(abs(v))` gives it (NaN if any value is NaN).
pub fn amax_f32(v: &[f32]) -> f32 {
    let m = v.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff));
    f32::from_bits(m)
}

/// The absolute maximum of little-endian bfloat16 values, as f32.
pub fn amax_bf16(b: &[u8]) -> f32 {
    let m = b.chunks_exact(2).fold(0u16, |m, x| {
        m.max(u16::from_le_bytes([x[0], x[1]]) & 0x7fff)
    });
    f32::from_bits((m as u32) << 16)
}

/// The absolute maximum of little-endian float16 values, as f32.
pub fn amax_f16(b: &[u8]) -> f32 {
    let m = b.chunks_exact(2).fold(0u16, |m, x| {
        m.max(u16::from_le_bytes([x[0], x[1]]) & 0x7fff)
    });
    crate::cast::f16_to_f32(m)
}

/// `v` clamped to `[-m, m]`, NaN kept.
#[inline(always)]
pub(crate) fn clamp(v: f32, m: f32) -> f32 {
    if v > m {
        m
    } else if v < -m {
        -m
    } else {
        v
    }
}

/// f32 -> E4M3FN for values already clamped to ±448 (or NaN), as [`f32_to_e4m3`] rounds them.
#[inline(always)]
pub(crate) fn e4m3_clamped(v: f32) -> u8 {
    let bits = v.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let abs = bits & 0x7fff_ffff;
    // normal in E4M3 (>= 2^-6): re-bias the exponent by carrying the rounded mantissa
    let r = abs.wrapping_add(0x7_ffff + ((abs >> 20) & 1));
    let normal = (r >> 20).wrapping_sub(120 << 3);
    // subnormal: units of 2^-9, rounded to nearest even by the 2^23 addition
    let sub = ((f32::from_bits(abs) * 512.0 + 8_388_608.0) - 8_388_608.0) as u32;
    let code = if abs < 0x3c80_0000 { sub } else { normal };
    let code = if abs > 0x7f80_0000 { 0x7f } else { code };
    sign | code as u8
}

/// FP8 E4M3 codes of `v * k` clamped to ±448 (`k` not NaN).
pub fn encode_fp8(vs: &[f32], k: f32, qs: &mut [u8]) {
    for (q, &v) in qs.iter_mut().zip(vs) {
        *q = e4m3_clamped(clamp(v * k, 448.0));
    }
}

/// f32 rounded to bfloat16 (as f32), NaN kept NaN (as [`crate::cast::bf16_bits`] rounds).
#[inline(always)]
pub(crate) fn bf16_round(v: f32) -> f32 {
    let x = v.to_bits();
    let r = x.wrapping_add(0x7fff + ((x >> 16) & 1)) & 0xffff_0000;
    let nan = (x & 0x8000_0000) | 0x7fc0_0000;
    f32::from_bits(if x & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        r
    })
}

/// `v` rounded to the nearest integer, ties to even, for |v| <= 2^22 (NaN kept).
#[inline(always)]
fn rne(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// torch's float-to-int8 cast of a clamped, rounded value (NaN becomes 0).
#[inline(always)]
fn i8_of(v: f32) -> u8 {
    // `as i32` saturates and maps NaN to 0, as torch's vector conversion leaves it after narrowing
    (v as i32) as i8 as u8
}

/// INT8 codes of `rne(clamp(v * k, ±127))` (`k` not NaN).
pub fn encode_int8_mul(vs: &[f32], k: f32, qs: &mut [u8]) {
    for (q, &v) in qs.iter_mut().zip(vs) {
        *q = i8_of(rne(clamp(v * k, 127.0)));
    }
}

/// INT8 codes of `rne(clamp(v / d, ±127))`.
pub fn encode_int8_div(vs: &[f32], d: f32, qs: &mut [u8]) {
    for (q, &v) in qs.iter_mut().zip(vs) {
        *q = i8_of(rne(clamp(v / d, 127.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::f32_to_e4m3;

    #[test]
    fn e4m3_equals_the_reference_on_every_clamped_value() {
        // every f32 bit pattern with |x| <= 448, stepped, and the edges of every E4M3 interval
        let mut checked = 0u64;
        let mut bits = 0u32;
        while bits <= 0x43e0_0000 {
            for s in [0u32, 0x8000_0000] {
                let v = f32::from_bits(bits | s);
                assert_eq!(e4m3_clamped(v), f32_to_e4m3(v), "{v:e} ({:#x})", bits | s);
            }
            checked += 1;
            bits += if bits < 0x3c00_0000 { 4099 } else { 61 };
        }
        for code in 0u8..0x7f {
            let lo = crate::cast::e4m3_to_f32(code);
            for d in [-2i32, -1, 0, 1, 2] {
                let v = f32::from_bits((lo.to_bits() as i64 + d as i64).max(0) as u32);
                if v.abs() <= 448.0 {
                    assert_eq!(e4m3_clamped(v), f32_to_e4m3(v), "{v:e}");
                }
            }
        }
        assert_eq!(e4m3_clamped(f32::NAN), f32_to_e4m3(f32::NAN));
        assert_eq!(e4m3_clamped(-f32::NAN), f32_to_e4m3(-f32::NAN));
        assert!(checked > 1_000_000);
    }

    #[test]
    fn int8_rounding_equals_round_ties_even() {
        let mut v = -127.5f32;
        while v <= 127.5 {
            for x in [
                v,
                f32::from_bits(v.to_bits() + 1),
                f32::from_bits(v.to_bits().wrapping_sub(1)),
            ] {
                let want = (x.clamp(-127.0, 127.0).round_ties_even() as i32 as i8) as u8;
                let mut q = [0u8];
                encode_int8_mul(&[x], 1.0, &mut q);
                assert_eq!(q[0], want, "{x}");
            }
            v += 0.25;
        }
        let mut q = [9u8];
        encode_int8_div(&[f32::NAN], 1.0, &mut q);
        assert_eq!(q[0], 0);
    }

    #[test]
    fn bf16_rounding_equals_the_reference() {
        let mut bits = 0u32;
        while bits < u32::MAX - 7919 {
            let v = f32::from_bits(bits);
            let want = f32::from_bits((crate::cast::bf16_bits(v) as u32) << 16);
            assert_eq!(bf16_round(v).to_bits(), want.to_bits(), "{v:e}");
            bits += 7919;
        }
    }

    #[test]
    fn maxima_equal_nan_max() {
        let v = [1.0f32, -3.5, 2.0, -0.0, 1e-30];
        assert_eq!(amax_f32(&v), 3.5);
        assert!(amax_f32(&[1.0, f32::NAN, 2.0]).is_nan());
        assert!(amax_f32(&[f32::NEG_INFINITY, f32::NAN]).is_nan());
        assert_eq!(amax_f32(&[f32::NEG_INFINITY, 1.0]), f32::INFINITY);
        let b: Vec<u8> = [1.5f32, -7.25, 0.5]
            .iter()
            .flat_map(|x| crate::cast::bf16_bits(*x).to_le_bytes())
            .collect();
        assert_eq!(amax_bf16(&b), 7.25);
        let h: Vec<u8> = [1.5f32, -7.25, 0.5]
            .iter()
            .flat_map(|x| crate::cast::f16_bits(*x).to_le_bytes())
            .collect();
        assert_eq!(amax_f16(&h), 7.25);
    }
}

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
    // subnormal: units of 2^-9, rounded to nearest even by the 2^23 addition, read from the sum's low bits
    let sub = (f32::from_bits(abs) * 512.0 + 8_388_608.0).to_bits() & 0xf;
    let code = if abs < 0x3c80_0000 { sub } else { normal };
    let code = if abs > 0x7f80_0000 { 0x7f } else { code };
    sign | code as u8
}

#[inline(always)]
fn encode_fp8_portable(vs: &[f32], k: f32, qs: &mut [u8]) {
    let n = vs.len().min(qs.len());
    let (vs, qs) = (&vs[..n], &mut qs[..n]);
    let mut vc = vs.chunks_exact(16);
    let mut qc = qs.chunks_exact_mut(16);
    for (v, q) in (&mut vc).zip(&mut qc) {
        let (Ok(v), Ok(q)) = (<&[f32; 16]>::try_from(v), <&mut [u8; 16]>::try_from(q)) else {
            continue;
        };
        for (q, &v) in q.iter_mut().zip(v) {
            *q = e4m3_clamped(clamp(v * k, 448.0));
        }
    }
    for (q, &v) in qc.into_remainder().iter_mut().zip(vc.remainder()) {
        *q = e4m3_clamped(clamp(v * k, 448.0));
    }
}

simd_build! {
    /// FP8 E4M3 codes of `v * k` clamped to ±448 (`k` not NaN).
    pub fn encode_fp8(vs: &[f32], k: f32, qs: &mut [u8]) -> () = encode_fp8_portable
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

/// The INT8 code of `v` (|v| <= 127 or NaN) rounded to the nearest integer, ties to even: the 1.5 * 2^23
/// addition leaves the integer in the sum's low mantissa bits; NaN becomes 0 (as torch's vector conversion
/// leaves it after narrowing).
#[inline(always)]
fn rne_i8(v: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let q = ((v + MAGIC).to_bits() & 0x7f_ffff) as i32 - 0x40_0000;
    if v.is_nan() {
        0
    } else {
        q as i8 as u8
    }
}

#[inline(always)]
fn encode_int8_mul_portable(vs: &[f32], k: f32, qs: &mut [u8]) {
    for (q, &v) in qs.iter_mut().zip(vs) {
        *q = rne_i8(clamp(v * k, 127.0));
    }
}

simd_build! {
    /// INT8 codes of `rne(clamp(v * k, ±127))` (`k` not NaN).
    pub fn encode_int8_mul(vs: &[f32], k: f32, qs: &mut [u8]) -> () = encode_int8_mul_portable
}

#[inline(always)]
fn encode_int8_div_portable(vs: &[f32], d: f32, qs: &mut [u8]) {
    for (q, &v) in qs.iter_mut().zip(vs) {
        *q = rne_i8(clamp(v / d, 127.0));
    }
}

simd_build! {
    /// INT8 codes of `rne(clamp(v / d, ±127))`.
    pub fn encode_int8_div(vs: &[f32], d: f32, qs: &mut [u8]) -> () = encode_int8_div_portable
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
    fn every_simd_build_gives_the_portable_bytes() {
        use crate::{cap_simd_level, simd_level, SimdLevel};
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f32::from_bits((x >> 32) as u32)
        };
        // random bit patterns (NaN, inf, subnormals included) and ordinary values
        let v: Vec<f32> = (0..40_000)
            .map(|i| {
                if i % 3 == 0 {
                    next()
                } else {
                    (next().to_bits() % 1000) as f32 / 7.0 - 70.0
                }
            })
            .collect();
        let b: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        let run = |level: SimdLevel| {
            cap_simd_level(level);
            let mut out = Vec::new();
            for k in [1.0f32, 3.7, 1e-3] {
                let mut q = vec![0u8; v.len()];
                encode_fp8(&v, k, &mut q);
                out.extend_from_slice(&q);
                encode_int8_mul(&v, k, &mut q);
                out.extend_from_slice(&q);
                encode_int8_div(&v, k, &mut q);
                out.extend_from_slice(&q);
            }
            out.extend_from_slice(&amax_f32(&v[1..]).to_bits().to_le_bytes());
            out.extend_from_slice(&amax_bf16(&b[2..]).to_bits().to_le_bytes());
            out.extend_from_slice(&amax_f16(&b[..b.len() - 2]).to_bits().to_le_bytes());
            cap_simd_level(SimdLevel::Avx512);
            out
        };
        let portable = run(SimdLevel::Portable);
        for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
            assert!(
                run(level) == portable,
                "{level:?} (this CPU: {:?})",
                simd_level()
            );
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

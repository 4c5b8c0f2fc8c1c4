//! Dequantization of ggml's block types, bit-exact with ggml's reference `dequantize_row_*`
//! (ggml/src/ggml-quants.c). Every product and sum is computed in ggml's order with plain f32 operations (ggml's
//! reference build does not contract multiply-adds), so results match to the bit.
//!
//! Block layouts (ggml-common.h), in bytes: fp16 scales are little-endian IEEE halves.

use crate::cast::f16_to_f32;
use crate::ggml_tables::*;
use lbrx_core::{DType, Error, Result};

fn h(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Dequantizes `src` (whole blocks of `dtype`) into `out` (one f32 per element).
pub fn dequantize(dtype: DType, src: &[u8], out: &mut [f32]) -> Result<()> {
    let info = dtype.info();
    let (bs, ts) = (info.block_size as usize, info.type_size as usize);
    if !src.len().is_multiple_of(ts) || out.len() != src.len() / ts * bs {
        return Err(Error::Invalid(format!(
            "dequantize {dtype}: {} bytes do not make {} elements",
            src.len(),
            out.len()
        )));
    }
    let f: fn(&[u8], &mut [f32]) = match dtype {
        DType::Q4_0 => q4_0,
        DType::Q4_1 => q4_1,
        DType::Q5_0 => q5_0,
        DType::Q5_1 => q5_1,
        DType::Q8_0 => q8_0,
        DType::Q1_0 => q1_0,
        DType::Q2_0 => q2_0,
        DType::MXFP4 => mxfp4,
        DType::NVFP4 => nvfp4,
        DType::Q2K => q2_k,
        DType::Q3K => q3_k,
        DType::Q4K => q4_k,
        DType::Q5K => q5_k,
        DType::Q6K => q6_k,
        DType::Q8K => q8_k,
        DType::TQ1_0 => tq1_0,
        DType::TQ2_0 => tq2_0,
        DType::IQ2XXS => iq2_xxs,
        DType::IQ2XS => iq2_xs,
        DType::IQ2S => iq2_s,
        DType::IQ3XXS => iq3_xxs,
        DType::IQ3S => iq3_s,
        DType::IQ1S => iq1_s,
        DType::IQ1M => iq1_m,
        DType::IQ4NL => iq4_nl,
        DType::IQ4XS => iq4_xs,
        d if d.is_castable_float() => {
            crate::cast::decode_f32(d, src, out);
            return Ok(());
        }
        other => return Err(Error::Invalid(format!("cannot dequantize {other}"))),
    };
    for (b, y) in src.chunks_exact(ts).zip(out.chunks_exact_mut(bs)) {
        f(b, y);
    }
    Ok(())
}

/// Whether [`dequantize`] handles `dtype`.
pub fn can_dequantize(dtype: DType) -> bool {
    dtype.info().kind == lbrx_core::DTypeKind::Quantized && !matches!(dtype, DType::Q8_1)
        || dtype.is_castable_float()
}

fn q1_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, v) in y.iter_mut().enumerate() {
        *v = if (b[2 + j / 8] >> (j % 8)) & 1 != 0 {
            d
        } else {
            -d
        };
    }
}

fn q2_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, v) in y.iter_mut().enumerate() {
        let q = (b[2 + j / 4] >> ((j % 4) * 2)) & 3;
        *v = (q as i32 - 1) as f32 * d;
    }
}

fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for j in 0..16 {
        y[j] = ((b[2 + j] & 0x0f) as i32 - 8) as f32 * d;
        y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    for j in 0..16 {
        y[j] = (b[4 + j] & 0x0f) as f32 * d + m;
        y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
    }
}

fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = (((b[6 + j] & 0x0f) | xh0) as i32 - 16) as f32 * d;
        y[j + 16] = (((b[6 + j] >> 4) | xh1) as i32 - 16) as f32 * d;
    }
}

fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        y[j] = ((b[8 + j] & 0x0f) | xh0) as f32 * d + m;
        y[j + 16] = ((b[8 + j] >> 4) | xh1) as f32 * d + m;
    }
}

fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (j, v) in y.iter_mut().enumerate() {
        *v = b[2 + j] as i8 as f32 * d;
    }
}

/// `ggml_e8m0_to_fp32_half`: 2^(x-128) (the FP4 values are stored doubled).
pub(crate) fn e8m0_half(x: u8) -> f32 {
    let bits = if x < 2 {
        0x0020_0000u32 << x
    } else {
        ((x - 1) as u32) << 23
    };
    f32::from_bits(bits)
}

/// `ggml_ue4m3_to_fp32`: unsigned E4M3 scale, halved.
pub(crate) fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = ((x >> 3) & 0xf) as i32;
    let man = (x & 7) as f32;
    let raw = if exp == 0 {
        man * 2f32.powi(-9)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    raw * 0.5
}

fn mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_half(b[0]);
    for j in 0..16 {
        y[j] = KVALUES_FP4[(b[1 + j] & 0x0f) as usize] as f32 * d;
        y[j + 16] = KVALUES_FP4[(b[1 + j] >> 4) as usize] as f32 * d;
    }
}

fn nvfp4(b: &[u8], y: &mut [f32]) {
    for s in 0..4 {
        let d = ue4m3_half(b[s]);
        let yb = &mut y[s * 16..s * 16 + 16];
        for j in 0..8 {
            let q = b[4 + s * 8 + j];
            yb[j] = KVALUES_FP4[(q & 0x0f) as usize] as f32 * d;
            yb[j + 8] = KVALUES_FP4[(q >> 4) as usize] as f32 * d;
        }
    }
}

fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, min) = (h(b, 80), h(b, 82));
    let mut is = 0;
    let mut o = 0;
    for n in 0..2 {
        let q = &qs[n * 32..];
        for shift in [0, 2, 4, 6] {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0xf) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    y[o] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    o += 1;
                }
            }
        }
    }
}

fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hm, qs, sc_raw) = (&b[0..32], &b[32..96], &b[96..108]);
    let d_all = h(b, 108);
    let (kmask1, kmask2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let mut aux = [0u32; 4];
    for (i, a) in aux.iter_mut().take(3).enumerate() {
        *a = u32::from_le_bytes(sc_raw[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    }
    let tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | ((tmp & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    let scales: Vec<i8> = aux
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .map(|x| x as i8)
        .collect();
    let mut is = 0;
    let mut o = 0;
    let mut m = 1u8;
    for n in 0..2 {
        let q = &qs[n * 32..];
        for shift in [0, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let k = l + 16 * half;
                    let v = ((q[k] >> shift) & 3) as i32 - if hm[k] & m != 0 { 0 } else { 4 };
                    y[o] = dl * v as f32;
                    o += 1;
                }
            }
            m <<= 1;
        }
    }
}

fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (h(b, 0), h(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (n, j) in (0..4).map(|n| (n, n * 64)) {
        let q = &qs[n * 32..n * 32 + 32];
        let (sc, m) = scale_min_k4(2 * n, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * n + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for l in 0..32 {
            y[j + l] = d1 * (q[l] & 0xf) as f32 - m1;
            y[j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (h(b, 0), h(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    let (mut u1, mut u2) = (1u8, 2u8);
    for n in 0..4 {
        let (j, ql) = (n * 64, &qs[n * 32..n * 32 + 32]);
        let (sc, m) = scale_min_k4(2 * n, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * n + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for l in 0..32 {
            y[j + l] = d1 * ((ql[l] & 0xf) + if qh[l] & u1 != 0 { 16 } else { 0 }) as f32 - m1;
            y[j + 32 + l] = d2 * ((ql[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 }) as f32 - m2;
        }
        u1 <<= 2;
        u2 <<= 2;
    }
}

fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = h(b, 208);
    for n in 0..2 {
        let (ql, qh) = (&b[n * 64..n * 64 + 64], &b[128 + n * 32..128 + n * 32 + 32]);
        let sc = |i: usize| b[192 + n * 8 + i] as i8 as f32;
        let yo = &mut y[n * 128..n * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 as i32 - 32;
            let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 as i32 - 32;
            yo[l] = d * sc(is) * q1 as f32;
            yo[l + 32] = d * sc(is + 2) * q2 as f32;
            yo[l + 64] = d * sc(is + 4) * q3 as f32;
            yo[l + 96] = d * sc(is + 6) * q4 as f32;
        }
    }
}

fn q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (j, v) in y.iter_mut().enumerate() {
        *v = d * b[4 + j] as i8 as f32;
    }
}

fn tq1_0(b: &[u8], y: &mut [f32]) {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let (qs, qh) = (&b[0..48], &b[48..52]);
    let d = h(b, 52);
    let trit = |x: u8, n: usize| -> f32 {
        let q = x.wrapping_mul(POW3[n]);
        let xi = ((q as u16 * 3) >> 8) as i16;
        (xi - 1) as f32 * d
    };
    let mut o = 0;
    for (start, width) in [(0usize, 32usize), (32, 16)] {
        for n in 0..5 {
            for m in 0..width {
                y[o] = trit(qs[start + m], n);
                o += 1;
            }
        }
    }
    for n in 0..4 {
        for &x in qh {
            y[o] = trit(x, n);
            o += 1;
        }
    }
}

fn tq2_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 64);
    let mut o = 0;
    for j in (0..64).step_by(32) {
        for l in 0..4 {
            for m in 0..32 {
                let q = ((b[j + m] >> (l * 2)) & 3) as i32;
                y[o] = (q - 1) as f32 * d;
                o += 1;
            }
        }
    }
}

fn sign(signs: u8, j: usize) -> f32 {
    if signs & KMASK_IQ2XS[j] != 0 {
        -1.0
    } else {
        1.0
    }
}

fn grid8(g: u64, j: usize) -> f32 {
    ((g >> (8 * j)) & 0xff) as u8 as f32
}

fn iq2_xxs(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for ib in 0..8 {
        let a = &b[2 + 8 * ib..2 + 8 * ib + 8];
        let aux1 = u32::from_le_bytes([a[4], a[5], a[6], a[7]]);
        let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
        for l in 0..4 {
            let g = IQ2XXS_GRID[a[l] as usize];
            let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
            for j in 0..8 {
                y[ib * 32 + l * 8 + j] = db * grid8(g, j) * sign(signs, j);
            }
        }
    }
}

fn iq2_xs(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let scales = &b[66..74];
    for ib in 0..8 {
        let db = [
            d * (0.5 + (scales[ib] & 0xf) as f32) * 0.25,
            d * (0.5 + (scales[ib] >> 4) as f32) * 0.25,
        ];
        for l in 0..4 {
            let q = u16::from_le_bytes([b[2 + 2 * (4 * ib + l)], b[3 + 2 * (4 * ib + l)]]);
            let g = IQ2XS_GRID[(q & 511) as usize];
            let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
            for j in 0..8 {
                y[ib * 32 + l * 8 + j] = db[l / 2] * grid8(g, j) * sign(signs, j);
            }
        }
    }
}

fn iq2_s(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let (qs, signs, qh, scales) = (&b[2..34], &b[34..66], &b[66..74], &b[74..82]);
    for ib in 0..8 {
        let db = [
            d * (0.5 + (scales[ib] & 0xf) as f32) * 0.25,
            d * (0.5 + (scales[ib] >> 4) as f32) * 0.25,
        ];
        for l in 0..4 {
            let idx = qs[4 * ib + l] as usize | (((qh[ib] as usize) << (8 - 2 * l)) & 0x300);
            let g = IQ2S_GRID[idx];
            for j in 0..8 {
                y[ib * 32 + l * 8 + j] = db[l / 2] * grid8(g, j) * sign(signs[4 * ib + l], j);
            }
        }
    }
}

fn iq3_xxs(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let (qs, ss) = (&b[2..66], &b[66..98]);
    for ib in 0..8 {
        let aux = u32::from_le_bytes(ss[4 * ib..4 * ib + 4].try_into().expect("4 bytes"));
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for l in 0..4 {
            let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
            let g1 = IQ3XXS_GRID[qs[8 * ib + 2 * l] as usize] as u64;
            let g2 = IQ3XXS_GRID[qs[8 * ib + 2 * l + 1] as usize] as u64;
            for j in 0..4 {
                y[ib * 32 + l * 8 + j] = db * grid8(g1, j) * sign(signs, j);
                y[ib * 32 + l * 8 + j + 4] = db * grid8(g2, j) * sign(signs, j + 4);
            }
        }
    }
}

fn iq3_s(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let (qs, qh, signs, scales) = (&b[2..66], &b[66..74], &b[74..106], &b[106..110]);
    let mut o = 0;
    for (ib2, &sc) in scales.iter().enumerate() {
        let dbs = [
            d * (1 + 2 * (sc & 0xf) as i32) as f32,
            d * (1 + 2 * (sc >> 4) as i32) as f32,
        ];
        for (half, db) in dbs.iter().enumerate() {
            let blk = 2 * ib2 + half;
            let (q, h8, s) = (&qs[8 * blk..], qh[blk] as usize, &signs[4 * blk..]);
            for l in 0..4 {
                let g1 = IQ3S_GRID[q[2 * l] as usize | ((h8 << (8 - 2 * l)) & 256)] as u64;
                let g2 = IQ3S_GRID[q[2 * l + 1] as usize | ((h8 << (7 - 2 * l)) & 256)] as u64;
                for j in 0..4 {
                    y[o + j] = db * grid8(g1, j) * sign(s[l], j);
                    y[o + j + 4] = db * grid8(g2, j) * sign(s[l], j + 4);
                }
                o += 8;
            }
        }
    }
}

const IQ1S_DELTA: f32 = 0.125;

fn grid_i8(g: u64, j: usize) -> f32 {
    ((g >> (8 * j)) & 0xff) as u8 as i8 as f32
}

fn iq1_s(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let qs = &b[2..34];
    for ib in 0..8 {
        let qh = u16::from_le_bytes([b[34 + 2 * ib], b[35 + 2 * ib]]);
        let dl = d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32;
        let delta = if qh & 0x8000 != 0 {
            -IQ1S_DELTA
        } else {
            IQ1S_DELTA
        };
        for l in 0..4 {
            let g = IQ1S_GRID[qs[4 * ib + l] as usize | ((((qh >> (3 * l)) & 7) as usize) << 8)];
            for j in 0..8 {
                y[ib * 32 + l * 8 + j] = dl * (grid_i8(g, j) + delta);
            }
        }
    }
}

fn iq1_m(b: &[u8], y: &mut [f32]) {
    let (qs, qh, sc_b) = (&b[0..32], &b[32..48], &b[48..56]);
    let sc: Vec<u16> = sc_b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let scale =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = f16_to_f32(scale);
    for ib in 0..8 {
        let s = sc[ib / 2] as i32;
        let dl1 = d * (2 * ((s >> (6 * (ib % 2))) & 7) + 1) as f32;
        let dl2 = d * (2 * ((s >> (6 * (ib % 2) + 3)) & 7) + 1) as f32;
        let (q, h2) = (&qs[4 * ib..], &qh[2 * ib..]);
        let idx = [
            q[0] as usize | (((h2[0] as usize) << 8) & 0x700),
            q[1] as usize | (((h2[0] as usize) << 4) & 0x700),
            q[2] as usize | (((h2[1] as usize) << 8) & 0x700),
            q[3] as usize | (((h2[1] as usize) << 4) & 0x700),
        ];
        let delta = [
            if h2[0] & 0x08 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            },
            if h2[0] & 0x80 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            },
            if h2[1] & 0x08 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            },
            if h2[1] & 0x80 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            },
        ];
        for l in 0..4 {
            let g = IQ1S_GRID[idx[l]];
            let dl = if l < 2 { dl1 } else { dl2 };
            for j in 0..8 {
                y[ib * 32 + l * 8 + j] = dl * (grid_i8(g, j) + delta[l]);
            }
        }
    }
}

fn iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for j in 0..16 {
        y[j] = d * KVALUES_IQ4NL[(b[2 + j] & 0xf) as usize] as f32;
        y[j + 16] = d * KVALUES_IQ4NL[(b[2 + j] >> 4) as usize] as f32;
    }
}

fn iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let (scales_l, qs) = (&b[4..8], &b[8..136]);
    for ib in 0..8 {
        let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
            | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        for j in 0..16 {
            y[ib * 32 + j] = dl * KVALUES_IQ4NL[(qs[16 * ib + j] & 0xf) as usize] as f32;
            y[ib * 32 + j + 16] = dl * KVALUES_IQ4NL[(qs[16 * ib + j] >> 4) as usize] as f32;
        }
    }
}

//! ggml's TQ1_0, TQ2_0 (ternary) and MXFP4 reference quantizers (`quantize_row_tq{1,2}_0_ref`,
//! `quantize_row_mxfp4_ref` in ggml/src/ggml-quants.c), bit-exact, with C's conversions on x86-64.
//!
//! Layouts: TQ1_0 54 bytes per 256 values (base-3 packed trits, 5 per byte then 4 per byte, and an f16 scale),
//! TQ2_0 66 bytes (2-bit trits and an f16 scale), MXFP4 17 bytes per 32 values (an E8M0 exponent and 32 E2M1
//! codes, two per byte).

#![allow(clippy::needless_range_loop)]

use crate::ggml_kquant::{c_int, put_f16};

const QK_K: usize = 256;

/// glibc's `lroundf` on x86-64: half away from zero, `LONG_MIN` for NaN and out-of-range values.
fn c_lround(v: f32) -> i64 {
    if v.abs() < 9.223_372e18 {
        v.round() as i64
    } else {
        i64::MIN
    }
}

/// ggml's ternary level `lroundf(v) + 1` in a C `int` (the long is cut to 32 bits).
fn trit(v: f32) -> i32 {
    c_lround(v).wrapping_add(1) as i32
}

/// The largest |x| of a super-block, as ggml's `MAX(amax, fabsf(v))` loop finds it.
pub(crate) fn amax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |a, v| if a > v.abs() { a } else { v.abs() })
}

/// One TQ1_0 super-block (ternary, 5 trits per byte; `quantize_row_tq1_0_ref`).
pub(crate) fn tq1_0(x: &[f32], y: &mut [u8]) {
    let d = amax(&x[..QK_K]);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // values `first + k * stride` (k < count) as trits in a C uint8_t, as ggml accumulates them
    let pack = |first: usize, stride: usize, count: usize, shift_first: bool| -> u8 {
        let mut q: u8 = 0;
        for k in 0..count {
            q = q
                .wrapping_mul(3)
                .wrapping_add(trit(x[first + k * stride] * id) as u8);
        }
        if shift_first {
            q = q.wrapping_mul(3);
        }
        // ceiling division by 3^5
        (q as u32 * 256).div_ceil(243) as u8
    };
    for m in 0..32 {
        y[m] = pack(m, 32, 5, false);
    }
    for m in 0..16 {
        y[32 + m] = pack(160 + m, 16, 5, false);
    }
    for j in 0..4 {
        y[48 + j] = pack(240 + j, 4, 4, true);
    }
    put_f16(y, 52, d);
}

/// One TQ2_0 super-block (ternary, 2 bits per value; `quantize_row_tq2_0_ref`).
pub(crate) fn tq2_0(x: &[f32], y: &mut [u8]) {
    let d = amax(&x[..QK_K]);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for j in (0..64).step_by(32) {
        let xo = j * 4;
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..4 {
                let xi = trit(x[xo + m + n * 32] * id);
                q = q.wrapping_add(((xi & 3) << (2 * n)) as u8);
            }
            y[j + m] = q;
        }
    }
    put_f16(y, 64, d);
}

/// The FP4 (E2M1) values, doubled, as ggml's `kvalues_mxfp4`.
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

pub(crate) fn best_index_mxfp4(x: f32, e: f32) -> u8 {
    let mut best = 0;
    let mut best_err = (KVALUES_MXFP4[0] as f32 * e - x).abs();
    for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (k as f32 * e - x).abs();
        if err < best_err {
            best = i;
            best_err = err;
        }
    }
    best as u8
}

/// One MXFP4 block of 32 (`quantize_row_mxfp4_ref`): an E8M0 exponent and 4-bit FP4 codes.
pub(crate) fn mxfp4(x: &[f32], y: &mut [u8]) {
    let mut amax = 0f32;
    for &v in &x[..32] {
        if amax < v.abs() {
            amax = v.abs();
        }
    }
    // C converts the float to uint8_t; x86 truncates through a 32-bit integer (INT_MIN for infinity)
    let e = if amax > 0.0 {
        c_int(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    };
    let d = crate::ggml::e8m0_half(e);
    y[0] = e;
    for j in 0..16 {
        let x0 = best_index_mxfp4(x[j], d);
        let x1 = best_index_mxfp4(x[16 + j], d);
        y[1 + j] = x0 | (x1 << 4);
    }
}

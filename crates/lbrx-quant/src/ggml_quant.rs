//! ggml's reference quantizers (`quantize_row_*_ref` in ggml/src/ggml-quants.c, the path `ggml_quantize_chunk`
//! takes without an importance matrix), bit-exact: same operation order, C's truncating float -> int casts,
//! `roundf` (half away from zero) where ggml uses it, and round-to-nearest-even f16 scales.
//!
//! Types (one table, `QUANTIZERS`): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q1_0, Q2_0, the K-quants Q2_K..Q6_K and Q8_K
//! (in `ggml_kquant`), TQ1_0, TQ2_0, MXFP4, NVFP4, IQ4_NL, IQ4_XS, the i-quants IQ1_S..IQ3_S (in `ggml_iq`) and
//! the float types; with an importance matrix through [`quantize_rows`] (the `_impl` paths, in `ggml_weighted`
//! and `ggml_iq`).

use crate::cast::{encode_f32, f16_bits};
use crate::ggml_kquant::c_int;
use lbrx_core::{DType, Error, Result};

/// How ggml quantizes a type without an importance matrix.
#[derive(Clone, Copy)]
enum Plain {
    /// One block at a time.
    Block(fn(&[f32], &mut [u8])),
    /// The whole buffer at once (the vector builds, the float encoders).
    Whole(fn(&[f32], &mut [u8])),
    /// ggml refuses: the type exists only with an importance matrix.
    NeedsImatrix,
}

/// How ggml quantizes a type with an importance matrix (one weight per column).
#[derive(Clone, Copy)]
enum Weighted {
    /// The matrix is ignored: the plain path.
    Ignored,
    /// One block at a time, with the weights of its columns.
    Block(fn(&[f32], &[f32], &mut [u8])),
    /// One row at a time, with the row's weights.
    Row(fn(&[f32], &[f32], &mut [u8])),
}

/// The registry of ggml quantizers: every type lbrx quantizes to, ggml's path without and with an importance
/// matrix. The only list of quantizable types.
const QUANTIZERS: &[(DType, Plain, Weighted)] = {
    use crate::ggml_iq as iq;
    use crate::ggml_iq1 as iq1;
    use crate::ggml_kquant as k;
    use crate::ggml_ternary as t;
    use crate::ggml_weighted as w;
    use Plain::{Block, NeedsImatrix, Whole};
    &[
        (
            DType::F32,
            Whole(|x, y| encode_f32(DType::F32, x, y)),
            Weighted::Ignored,
        ),
        (
            DType::F16,
            Whole(|x, y| encode_f32(DType::F16, x, y)),
            Weighted::Ignored,
        ),
        (
            DType::BF16,
            Whole(|x, y| encode_f32(DType::BF16, x, y)),
            Weighted::Ignored,
        ),
        (
            DType::Q4_0,
            Whole(q4_0_all),
            Weighted::Row(|x, q, y| w::q_0_row(x, q, y, false)),
        ),
        (
            DType::Q4_1,
            Whole(q4_1_all),
            Weighted::Row(|x, q, y| w::q_1_row(x, q, y, false)),
        ),
        (
            DType::Q5_0,
            Whole(q5_0_all),
            Weighted::Row(|x, q, y| w::q_0_row(x, q, y, true)),
        ),
        (
            DType::Q5_1,
            Whole(q5_1_all),
            Weighted::Row(|x, q, y| w::q_1_row(x, q, y, true)),
        ),
        (DType::Q8_0, Whole(q8_0_all), Weighted::Ignored),
        (DType::Q2K, Block(k::q2_k), Weighted::Block(w::q2_k)),
        (DType::Q3K, Block(k::q3_k), Weighted::Block(w::q3_k)),
        (DType::Q4K, Block(k::q4_k), Weighted::Block(w::q4_k)),
        (DType::Q5K, Block(k::q5_k), Weighted::Block(w::q5_k)),
        (DType::Q6K, Block(k::q6_k), Weighted::Block(w::q6_k)),
        (DType::Q8K, Block(k::q8_k), Weighted::Ignored),
        (DType::TQ1_0, Block(t::tq1_0), Weighted::Ignored),
        (DType::TQ2_0, Block(t::tq2_0), Weighted::Ignored),
        (DType::MXFP4, Block(t::mxfp4), Weighted::Ignored),
        (DType::NVFP4, Block(w::nvfp4), Weighted::Ignored),
        (DType::Q1_0, Block(w::q1_0), Weighted::Ignored),
        (DType::Q2_0, Block(w::q2_0), Weighted::Ignored),
        (
            DType::IQ4NL,
            Block(|x, y| w::iq4_nl(x, None, y)),
            Weighted::Block(|x, q, y| w::iq4_nl(x, Some(q), y)),
        ),
        (
            DType::IQ4XS,
            Block(|x, y| w::iq4_xs(x, None, y)),
            Weighted::Block(|x, q, y| w::iq4_xs(x, Some(q), y)),
        ),
        (
            DType::IQ3S,
            Block(|x, y| iq::iq3_s(x, None, y)),
            Weighted::Block(|x, q, y| iq::iq3_s(x, Some(q), y)),
        ),
        (
            DType::IQ3XXS,
            Block(|x, y| iq::iq3_xxs(x, None, y)),
            Weighted::Block(|x, q, y| iq::iq3_xxs(x, Some(q), y)),
        ),
        (
            DType::IQ2S,
            Block(|x, y| iq::iq2_s(x, None, y)),
            Weighted::Block(|x, q, y| iq::iq2_s(x, Some(q), y)),
        ),
        (
            DType::IQ2XS,
            NeedsImatrix,
            Weighted::Block(|x, q, y| iq::iq2_xs(x, Some(q), y)),
        ),
        (
            DType::IQ2XXS,
            NeedsImatrix,
            Weighted::Block(|x, q, y| iq::iq2_xxs(x, Some(q), y)),
        ),
        (
            DType::IQ1M,
            Block(|x, y| iq1::iq1_m(x, None, y)),
            Weighted::Block(|x, q, y| iq1::iq1_m(x, Some(q), y)),
        ),
        (
            DType::IQ1S,
            NeedsImatrix,
            Weighted::Block(|x, q, y| iq1::iq1_s(x, Some(q), y)),
        ),
    ]
};

fn quantizer(dtype: DType) -> Option<(Plain, Weighted)> {
    QUANTIZERS.iter().find(|q| q.0 == dtype).map(|q| (q.1, q.2))
}

/// Whether lbrx quantizes to `dtype` (with an importance matrix at least; see [`requires_imatrix`]).
pub fn can_quantize(dtype: DType) -> bool {
    quantizer(dtype).is_some()
}

/// Whether quantizing `dtype` uses an importance matrix when one is given (ggml's `_impl` paths).
pub fn has_weighted_path(dtype: DType) -> bool {
    matches!(
        quantizer(dtype),
        Some((_, Weighted::Block(_) | Weighted::Row(_)))
    )
}

/// Whether ggml quantizes `dtype` only with an importance matrix (`ggml_quantize_requires_imatrix`).
pub fn requires_imatrix(dtype: DType) -> bool {
    matches!(quantizer(dtype), Some((Plain::NeedsImatrix, _)))
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
    match quantizer(dtype) {
        Some((Plain::Whole(f), _)) => f(src, out),
        Some((Plain::Block(f), _)) => {
            for (x, y) in src.chunks_exact(bs).zip(out.chunks_exact_mut(ts)) {
                f(x, y);
            }
        }
        Some((Plain::NeedsImatrix, _)) => {
            return Err(Error::Invalid(format!(
                "quantizing to {dtype} needs an importance matrix (as in llama.cpp): pass one with --imatrix"
            )))
        }
        None => {
            return Err(Error::Invalid(format!(
                "quantizing to {dtype} is not implemented"
            )))
        }
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
    let row_bytes = row_len / bs * ts;
    let rows = src
        .chunks_exact(row_len)
        .zip(out.chunks_exact_mut(row_bytes));
    match quantizer(dtype).map(|q| q.1) {
        Some(Weighted::Row(f)) => rows.for_each(|(x, y)| f(x, qw, y)),
        Some(Weighted::Block(f)) => {
            for (x, y) in rows {
                for (b, (xb, yb)) in x.chunks_exact(bs).zip(y.chunks_exact_mut(ts)).enumerate() {
                    f(xb, &qw[b * bs..(b + 1) * bs], yb);
                }
            }
        }
        _ => return quantize(dtype, src, out),
    }
    Ok(())
}

/// A 32-value block type over whole blocks: the vector quantizer where the CPU has one, the scalar reference
/// for the blocks it does not take.
fn vector_or_scalar(to: DType, src: &[f32], out: &mut [u8], scalar: fn(&[f32], &mut [u8])) {
    let ts = to.info().type_size as usize;
    let n = src.len() / 32;
    let mut done = 0;
    while done < n {
        done += crate::simd::quantize_prefix_f32(&src[done * 32..], to, &mut out[done * ts..]);
        if done < n {
            scalar(
                &src[done * 32..done * 32 + 32],
                &mut out[done * ts..(done + 1) * ts],
            );
            done += 1;
        }
    }
}

fn q8_0_all(src: &[f32], out: &mut [u8]) {
    vector_or_scalar(DType::Q8_0, src, out, q8_0_scalar)
}

fn q4_0_all(src: &[f32], out: &mut [u8]) {
    vector_or_scalar(DType::Q4_0, src, out, q4_0)
}

fn q4_1_all(src: &[f32], out: &mut [u8]) {
    vector_or_scalar(DType::Q4_1, src, out, q4_1)
}

fn q5_0_all(src: &[f32], out: &mut [u8]) {
    vector_or_scalar(DType::Q5_0, src, out, q5_0)
}

fn q5_1_all(src: &[f32], out: &mut [u8]) {
    vector_or_scalar(DType::Q5_1, src, out, q5_1)
}

/// Quantizes values stored as `from` (F32, F16 or BF16 bytes, whole blocks) into `out` as [`quantize`] does
/// with the decoded values: Q8_0 and Q4_0 straight from the stored values in vector kernels where the CPU has
/// them, every other case decoded in pieces first.
pub fn quantize_from(from: DType, src: &[u8], to: DType, out: &mut [u8]) -> Result<()> {
    let fs = from.info().type_size as usize;
    let (bs, ts) = (to.info().block_size as usize, to.info().type_size as usize);
    if !matches!(from, DType::F32 | DType::F16 | DType::BF16)
        || !src.len().is_multiple_of(fs * bs)
        || out.len() != src.len() / fs / bs * ts
    {
        return Err(Error::Invalid(format!(
            "quantize {from} -> {to}: {} bytes do not make whole blocks of {} bytes",
            src.len(),
            out.len()
        )));
    }
    let n = src.len() / fs / bs;
    let vector = crate::simd::has_quantize_kernel(from, to);
    let mut floats = Vec::new();
    let mut done = 0;
    while done < n {
        if vector {
            done += crate::simd::quantize_prefix(
                from,
                &src[done * bs * fs..],
                to,
                &mut out[done * ts..],
            );
            if done == n {
                break;
            }
        }
        // what the vector code does not take: the block it stopped at, else pieces of up to 4096 blocks
        let k = if vector { 1 } else { (n - done).min(4096) };
        floats.resize(k * bs, 0.0);
        crate::cast::decode_f32(
            from,
            &src[done * bs * fs..(done + k) * bs * fs],
            &mut floats,
        );
        quantize(to, &floats, &mut out[done * ts..(done + k) * ts])?;
        done += k;
    }
    Ok(())
}

#[inline(always)]
fn put_f16(y: &mut [u8], at: usize, v: f32) {
    y[at..at + 2].copy_from_slice(&f16_bits(v).to_le_bytes());
}

/// The value of largest magnitude (the first one on ties), as ggml's `amax`/`max` loop finds it: the largest
/// magnitude lane by lane (NaN never wins, as in C's `amax < fabsf(v)`), then the first value that has it.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> f32 {
    let mut m = [0f32; 8];
    for c in x.chunks_exact(8) {
        for i in 0..8 {
            let a = c[i].abs();
            m[i] = if m[i] < a { a } else { m[i] };
        }
    }
    let amax = m.iter().fold(0f32, |acc, &v| if acc < v { v } else { acc });
    if amax == 0.0 {
        return 0.0;
    }
    x.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0)
}

/// C's `min`/`max` loop (`v < min`, `v > max` from FLT_MAX/-FLT_MAX): lane by lane, then, as the sign of a zero
/// depends on which one came first, the first value equal to each.
#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::MAX; 8], [-f32::MAX; 8]);
    for c in x.chunks_exact(8) {
        for i in 0..8 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let min = lo.iter().fold(f32::MAX, |a, &v| if v < a { v } else { a });
    let max = hi.iter().fold(-f32::MAX, |a, &v| if v > a { v } else { a });
    let first = |t: f32| x.iter().copied().find(|&v| v == t).unwrap_or(t);
    (first(min), first(max))
}

#[inline(always)]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// C's `(int8_t)f` as x86-64 executes it: a 32-bit truncation whose low byte is kept.
#[inline(always)]
fn trunc_i8(f: f32) -> i32 {
    c_int(f) as i8 as i32
}

#[inline(always)]
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

#[inline(always)]
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

#[inline(always)]
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

#[inline(always)]
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

#[cfg(test)]
mod build_tests {
    use super::*;
    use crate::{cap_simd_level, simd_level, SimdLevel};

    /// Blocks of 32 that stress a quantizer: random, zeros, constants, ties after scaling, huge and tiny
    /// magnitudes, subnormals, NaN and infinities, signed zeros, the largest magnitude negative and repeated.
    fn edge_values() -> Vec<f32> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut vals: Vec<f32> = (0..1 << 14)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 300.0
            })
            .collect();
        vals.extend(vec![0f32; 32]);
        vals.extend(vec![3.25f32; 32]);
        vals.extend(vec![-3.25f32; 32]);
        vals.extend((0..32).map(|i| (i as f32 - 16.0) * 127.0 / 16.0 + 0.5));
        vals.extend((0..32).map(|i| (i as f32 - 16.0) / 2.0));
        vals.extend((0..32).map(|i| if i == 3 { 1e30 } else { 1e-30 * i as f32 }));
        vals.extend((0..32).map(|i| f32::from_bits(i as u32 + 1)));
        vals.extend((0..32).map(|i| match i {
            0 => f32::NAN,
            1 => f32::INFINITY,
            _ => i as f32,
        }));
        vals.extend((0..32).map(|i| if i % 2 == 0 { -0.0 } else { 0.0 }));
        vals.extend((0..32).map(|i| {
            if i == 5 || i == 9 {
                -7.0
            } else {
                i as f32 / 8.0
            }
        }));
        vals.extend((0..32).map(|i| {
            if i == 5 {
                -7.0
            } else if i == 9 {
                7.0
            } else {
                1.0
            }
        }));
        vals.extend((0..32).map(|i| 60000.0 * if i % 3 == 0 { -1.0 } else { 1.0 }));
        vals
    }

    /// Hostile values (NaN, infinities, the float limits, subnormals) never panic any quantizer, with or without
    /// an importance matrix (ggml aborts on some of them; lbrx writes some bytes and goes on).
    #[test]
    fn no_quantizer_panics_on_nan_or_infinity() {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE / 4.0,
            0.0,
            -0.0,
            1.0,
        ];
        let cols = 512;
        let x: Vec<f32> = (0..cols * 6)
            .map(|i| match i / cols {
                0 => specials[i % specials.len()],
                1 => f32::NAN,
                2 => f32::INFINITY,
                3 => specials[(i * 7) % specials.len()] * (i % 5) as f32,
                4 => f32::MAX * if i % 2 == 0 { 1.0 } else { -1.0 },
                _ => (i as f32).sin(),
            })
            .collect();
        let w: Vec<f32> = (0..cols)
            .map(|i| [0.0, 1.0, f32::INFINITY, 1e-30][i % 4])
            .collect();
        for &(t, ..) in QUANTIZERS {
            let mut y =
                vec![0u8; x.len() / t.info().block_size as usize * t.info().type_size as usize];
            quantize_rows(t, &x, cols, Some(&w), &mut y).unwrap();
            if !requires_imatrix(t) {
                quantize(t, &x, &mut y).unwrap();
            }
        }
    }

    /// Quantizing straight from stored F32/F16/BF16 values (the vector kernels of Q8_0 and Q4_0, the decoding
    /// path of the others) gives the bytes of decoding first, then ggml's scalar reference.
    #[test]
    fn quantize_from_stored_values_equals_decode_then_reference() {
        let vals = edge_values();
        for from in [DType::F32, DType::F16, DType::BF16] {
            let mut stored = vec![0u8; vals.len() * from.info().type_size as usize];
            crate::cast::encode_f32(from, &vals, &mut stored);
            let mut decoded = vec![0f32; vals.len()];
            crate::cast::decode_f32(from, &stored, &mut decoded);
            for to in [
                DType::Q8_0,
                DType::Q4_0,
                DType::Q4_1,
                DType::Q5_0,
                DType::Q4K,
            ] {
                let (bs, ts) = (to.info().block_size as usize, to.info().type_size as usize);
                let n = decoded.len() / bs;
                let mut want = vec![0u8; n * ts];
                let reference: fn(&[f32], &mut [u8]) = match to {
                    DType::Q8_0 => q8_0_scalar,
                    DType::Q4_0 => q4_0,
                    DType::Q4_1 => q4_1,
                    DType::Q5_0 => q5_0,
                    DType::Q5_1 => q5_1,
                    _ => crate::ggml_kquant::q4_k,
                };
                for (x, y) in decoded.chunks_exact(bs).zip(want.chunks_exact_mut(ts)) {
                    reference(x, y);
                }
                let fs = from.info().type_size as usize;
                let mut got = vec![0u8; n * ts];
                quantize_from(from, &stored[..n * bs * fs], to, &mut got).unwrap();
                for (b, (g, w)) in got.chunks(ts).zip(want.chunks(ts)).enumerate() {
                    assert_eq!(
                        g,
                        w,
                        "{from} -> {to}, block {b}: {:?}",
                        &decoded[b * bs..(b + 1) * bs]
                    );
                }
                let mut again = vec![0u8; n * ts];
                quantize(to, &decoded[..n * bs], &mut again).unwrap();
                assert_eq!(again, want, "{from} -> {to} through quantize");
            }
        }
    }

    /// Every vector build of the dispatched kernels (AVX-512, AVX2, as far as the CPU has them) gives the
    /// portable code's bytes, for the quantizers that use them, with and without an importance matrix.
    #[test]
    fn every_simd_build_equals_the_portable_code() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let cols = 1024;
        let x: Vec<f32> = (0..cols * 24)
            .map(|i| {
                let v = next();
                if i % 53 == 0 {
                    v * 30.0
                } else {
                    v * (1 + i / cols) as f32 * 0.1
                }
            })
            .collect();
        let w: Vec<f32> = (0..cols).map(|_| next() + 0.5).collect();
        let run = |level: SimdLevel| {
            cap_simd_level(level);
            let mut outs = Vec::new();
            for t in [DType::Q2K, DType::Q3K, DType::Q4K, DType::Q5K, DType::Q6K] {
                for im in [None, Some(&w[..])] {
                    let mut y = vec![0u8; x.len() / 256 * t.info().type_size as usize];
                    quantize_rows(t, &x, cols, im, &mut y).unwrap();
                    outs.push(y);
                }
            }
            cap_simd_level(SimdLevel::Avx512);
            outs
        };
        let portable = run(SimdLevel::Portable);
        for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(
                run(level),
                portable,
                "{level:?} (this CPU: {:?})",
                simd_level()
            );
        }
    }
}

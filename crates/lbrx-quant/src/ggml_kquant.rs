//! ggml's K-quant reference quantizers (`quantize_row_q{2,3,4,5,6,8}_K_ref` in ggml/src/ggml-quants.c, what
//! `ggml_quantize_chunk` runs without an importance matrix), bit-exact: the same float operations in the same
//! order (no fused multiply-add), `nearest_int`'s round-half-even trick, C's integer truncations.
//!
//! Super-blocks of 256 values: Q2_K 84 bytes, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210, Q8_K 292.

// The loops index exactly as the C reference does, so that the port can be checked line by line.
#![allow(clippy::needless_range_loop)]

use crate::cast::{f16_bits, f16_to_f32};

const QK_K: usize = 256;
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even through the 1.5 * 2^23 trick (|v| <= 4194303).
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let val = v + 12582912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// C's float-to-int conversion as x86-64 executes it (`cvttss2si`): truncation toward zero, and `INT_MIN` for
/// NaN and out-of-range values (which C leaves undefined; ggml's references hit them on inputs so small that
/// the inverse scale overflows to infinity).
#[inline(always)]
pub(crate) fn c_int(v: f32) -> i32 {
    if v > -2147483904.0 && v < 2147483648.0 {
        v as i32
    } else {
        i32::MIN
    }
}

pub(crate) fn put_f16(y: &mut [u8], at: usize, v: f32) -> f32 {
    let bits = f16_bits(v);
    y[at..at + 2].copy_from_slice(&bits.to_le_bytes());
    f16_to_f32(bits)
}

/// `make_qx_quants` (symmetric, signed levels in [-nmax, nmax-1], stored as l + nmax).
pub(crate) fn make_qx_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    l_out: &mut [i8],
    rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let x = &x[..n];
    let l_out = &mut l_out[..n];
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (o, &v) in l_out.iter_mut().zip(x) {
            let l = nearest_int(iscale * v);
            *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = if rmse_type < 0 {
        (-rmse_type, true)
    } else {
        (rmse_type, false)
    };
    // the weights are the same on every pass: compute them once (same values as per element)
    let mut wbuf = [0f32; 32];
    let mut wvec = Vec::new();
    let w = if n <= 32 {
        &mut wbuf[..n]
    } else {
        wvec.resize(n, 0f32);
        &mut wvec[..]
    };
    for (i, wi) in w.iter_mut().enumerate() {
        *wi = match qw {
            Some(q) => q[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => x[i].abs().sqrt(),
            },
        };
    }
    let w = &*w;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for ((o, &v), &wi) in l_out.iter_mut().zip(x).zip(w) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = (l + nmax) as i8;
        let lf = l as f32;
        sumlx += wi * v * lf;
        suml2 += wi * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    // The 18 candidate scales are independent: their sums are computed side by side, each in the reference's
    // order (so it vectorizes across candidates, bit-exactly), then chosen among in the reference's order.
    let mut isc = [0f32; 18];
    for (k, is) in (-9..=9).filter(|&is| is != 0).enumerate() {
        isc[k] = -(nmax as f32 + 0.1f32 * is as f32) / max;
    }
    let (slx, sl2) = candidate_sums(&isc, x, w, nmax);
    for k in 0..18 {
        if sl2[k] > 0.0 && slx[k] * slx[k] > best * sl2[k] {
            iscale = isc[k];
            for (o, &v) in l_out.iter_mut().zip(x) {
                let l = nearest_int(iscale * v);
                *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = slx[k] / sl2[k];
            best = scale * slx[k];
        }
    }
    scale
}

simd_build! {
    /// For each candidate inverse scale, the weighted sums `Σ w·x·l` and `Σ w·l²` of the clamped levels, each
    /// accumulated element by element as ggml does.
    fn candidate_sums(isc: &[f32; 18], x: &[f32], w: &[f32], nmax: i32) -> ([f32; 18], [f32; 18])
        = candidate_sums_portable
}

#[inline(always)]
fn candidate_sums_portable(
    isc: &[f32; 18],
    x: &[f32],
    w: &[f32],
    nmax: i32,
) -> ([f32; 18], [f32; 18]) {
    let (mut slx, mut sl2) = ([0f32; 18], [0f32; 18]);
    for (&v, &wi) in x.iter().zip(w) {
        let wv = wi * v;
        for k in 0..18 {
            let l = nearest_int(isc[k] * v).clamp(-nmax, nmax - 1) as f32;
            slx[k] += wv * l;
            sl2[k] += wi * l * l;
        }
    }
    (slx, sl2)
}

/// `make_q3_quants` (signed levels, iterative RMSE refinement), levels stored as l + nmax.
fn make_q3_quants(n: usize, nmax: i32, x: &[f32], l_out: &mut [i8], do_rmse: bool) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in &x[..n] {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    if do_rmse {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            l_out[i] = l as i8;
            let w = x[i] * x[i];
            sumlx += w * x[i] * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        for _ in 0..5 {
            let mut changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l_out[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                    if new_l != l_out[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l_out[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            changed += 1;
                        }
                    }
                }
            }
            if changed == 0 {
                break;
            }
        }
        for l in &mut l_out[..n] {
            *l += nmax as i8;
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = (l + nmax) as i8;
    }
    1.0 / iscale
}

/// `make_qkx2_quants` (asymmetric levels in [0, nmax] with a min); returns (scale, -min).
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let (x, weights, l_out, laux) = (&x[..n], &weights[..n], &mut l_out[..n], &mut laux[..n]);
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for ((o, &v), &w) in l_out.iter_mut().zip(x).zip(weights) {
        let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
        *o = l as u8;
        let diff = scale * l as f32 + min - v;
        let diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += w * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    // The candidates only depend on each other through `min`, which changes when one is taken: evaluate all
    // remaining candidates side by side for the current `min` (each sum in the reference's element order, so
    // it vectorizes across candidates bit-exactly), walk them in order, and start over after the one taken.
    let _ = laux;
    let mut next = 0i32;
    'batches: while next <= nstep {
        let cnt = (nstep - next + 1) as usize;
        let mut isc = [0f32; MAX_STEPS];
        for k in 0..cnt {
            isc[k] = (rmin + rdelta * (next + k as i32) as f32 + nmax as f32) / (max - min);
        }
        let ev = evaluate_candidates(&isc, cnt, x, weights, min, nmax, sum_w, sum_x, use_mad);
        for k in 0..cnt {
            if ev.d[k] > 0.0 && ev.err[k] < best_error {
                for (o, &v) in l_out.iter_mut().zip(x) {
                    *o = nearest_int(isc[k] * (v - min)).clamp(0, nmax) as u8;
                }
                best_error = ev.err[k];
                scale = ev.scale[k];
                min = ev.min[k];
                next += k as i32 + 1;
                continue 'batches;
            }
        }
        break;
    }
    (scale, -min)
}

/// Most search steps of a K-quant scale search (Q4_K's 21).
const MAX_STEPS: usize = 24;

/// Per candidate of `make_qkx2_quants`: the determinant, fitted scale and minimum, and weighted error.
struct Candidates {
    d: [f32; MAX_STEPS],
    scale: [f32; MAX_STEPS],
    min: [f32; MAX_STEPS],
    err: [f32; MAX_STEPS],
}

simd_build! {
    /// Every candidate step of `make_qkx2_quants` for the current minimum.
    fn evaluate_candidates(
        isc: &[f32; MAX_STEPS],
        cnt: usize,
        x: &[f32],
        w: &[f32],
        min: f32,
        nmax: i32,
        sum_w: f32,
        sum_x: f32,
        use_mad: bool,
    ) -> Candidates = evaluate_candidates_portable
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn evaluate_candidates_portable(
    isc: &[f32; MAX_STEPS],
    cnt: usize,
    x: &[f32],
    w: &[f32],
    min: f32,
    nmax: i32,
    sum_w: f32,
    sum_x: f32,
    use_mad: bool,
) -> Candidates {
    let mut c = Candidates {
        d: [0.0; MAX_STEPS],
        scale: [0.0; MAX_STEPS],
        min: [0.0; MAX_STEPS],
        err: [0.0; MAX_STEPS],
    };
    let (mut sl, mut sl2, mut sxl) = ([0f32; MAX_STEPS], [0f32; MAX_STEPS], [0f32; MAX_STEPS]);
    for (&v, &wi) in x.iter().zip(w) {
        let vm = v - min;
        for k in 0..MAX_STEPS {
            let lf = nearest_int(isc[k] * vm).clamp(0, nmax) as f32;
            let wl = wi * lf;
            sl[k] += wl;
            sl2[k] += wl * lf;
            sxl[k] += wl * v;
        }
    }
    for k in 0..cnt {
        let d = sum_w * sl2[k] - sl[k] * sl[k];
        c.d[k] = d;
        if d > 0.0 {
            let mut this_scale = (sum_w * sxl[k] - sum_x * sl[k]) / d;
            let mut this_min = (sl2[k] * sum_x - sl[k] * sxl[k]) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sxl[k] / sl2[k];
            }
            c.scale[k] = this_scale;
            c.min[k] = this_min;
        }
    }
    for (&v, &wi) in x.iter().zip(w) {
        let vm = v - min;
        for k in 0..MAX_STEPS {
            let lf = nearest_int(isc[k] * vm).clamp(0, nmax) as f32;
            let diff = c.scale[k] * lf + c.min[k] - v;
            let diff = if use_mad { diff.abs() } else { diff * diff };
            c.err[k] += wi * diff;
        }
    }
    c
}

pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// One Q2_K super-block.
pub(crate) fn q2_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let (mut mins, mut scales) = ([0f32; 16], [0f32; 16]);
    let q4scale = 15f32;
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..16 {
        for k in 0..16 {
            weights[k] = x[16 * j + k].abs();
        }
        let (s, m) = make_qkx2_quants(
            16,
            3,
            &x[16 * j..],
            &weights,
            &mut l[16 * j..],
            &mut laux,
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let (sc, rest) = y.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    let d = if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        put_f16(dd, 0, max_scale / q4scale)
    } else {
        sc.fill(0);
        put_f16(dd, 0, 0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for j in 0..16 {
            let lv = nearest_int(iscale * mins[j]);
            sc[j] |= (lv << 4) as u8;
        }
        put_f16(dd, 2, max_min / q4scale)
    } else {
        put_f16(dd, 2, 0.0)
    };
    for j in 0..16 {
        let dj = d * (sc[j] & 0xf) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            let lv = nearest_int((x[16 * j + ii] + dm) / dj).clamp(0, 3);
            l[16 * j + ii] = lv as u8;
        }
    }
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

/// One Q3_K super-block.
pub(crate) fn q3_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0f32, 0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(16, 4, &x[16 * j..], &mut l[16 * j..], true);
        let s = scales[j].abs();
        if s > amax {
            amax = s;
            max_scale = scales[j];
        }
    }
    let (hmask, rest) = y.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, dd) = rest.split_at_mut(12);
    sc.fill(0);
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            let mut lv = nearest_int(iscale * scales[j]) as i8;
            lv = (lv as i32).clamp(-32, 31) as i8 + 32;
            if j < 8 {
                sc[j] = (lv & 0xf) as u8;
            } else {
                sc[j - 8] |= ((lv & 0xf) << 4) as u8;
            }
            lv >>= 4;
            sc[j % 4 + 8] |= (lv << (2 * (j / 4))) as u8;
        }
        put_f16(dd, 0, 1.0 / iscale)
    } else {
        put_f16(dd, 0, 0.0)
    };
    q3_k_levels(x, d, sc, &mut l, hmask, qs);
}

/// The end of a Q3_K super-block: every value requantized with its sub-block's stored scale `d * s`, the
/// third bits into `hmask`, the low two bits packed into `qs`.
pub(crate) fn q3_k_levels(
    x: &[f32],
    d: f32,
    sc: &[u8],
    l: &mut [i8; QK_K],
    hmask: &mut [u8],
    qs: &mut [u8],
) {
    for j in 0..16 {
        let low = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 } as i8;
        let s = (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) as i8).wrapping_sub(32);
        let dj = d * s as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let lv = nearest_int(x[16 * j + ii] / dj).clamp(-4, 3);
            l[16 * j + ii] = (lv + 4) as i8;
        }
    }
    hmask.fill(0);
    let (mut m, mut hm) = (0usize, 1u8);
    for lj in l.iter_mut() {
        if *lj > 3 {
            hmask[m] |= hm;
            *lj -= 4;
        }
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm <<= 1;
        }
    }
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                (l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6))
                    as u8;
        }
    }
}

/// Q4_K and Q5_K share the scale search; `nmax` 15 or 31.
fn q45_scales(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8; QK_K],
    y: &mut [u8],
) -> (f32, f32) {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let (mut mins, mut scales) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let mut sum_x2 = 0f32;
        for k in 0..32 {
            sum_x2 += x[32 * j + k] * x[32 * j + k];
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for k in 0..32 {
            weights[k] = av_x + x[32 * j + k].abs();
        }
        let (s, m) = make_qkx2_quants(
            32,
            nmax,
            &x[32 * j..],
            &weights,
            &mut l[32 * j..],
            &mut laux,
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = nearest_int(inv_scale * scales[j]) as u8;
        lm[j] = nearest_int(inv_min * mins[j]) as u8;
    }
    q45_levels(x, nmax, &ls, &lm, max_scale / 63.0, max_min / 63.0, l, y)
}

/// The end of a Q4_K/Q5_K super-block: the 6-bit sub-block scales `ls` and minimums `lm` (capped at 63)
/// packed with the f16 super-scales `d` and `dmin`, then every value requantized with its stored scale and
/// minimum into `l`. Returns the f16-rounded (d, dmin).
#[allow(clippy::too_many_arguments)]
pub(crate) fn q45_levels(
    x: &[f32],
    nmax: i32,
    ls: &[u8; 8],
    lm: &[u8; 8],
    d: f32,
    dmin: f32,
    l: &mut [u8; QK_K],
    y: &mut [u8],
) -> (f32, f32) {
    let sc = &mut y[4..16];
    sc.fill(0);
    for j in 0..8 {
        let (lsj, lmj) = (ls[j].min(63), lm[j].min(63));
        if j < 4 {
            sc[j] = lsj;
            sc[j + 4] = lmj;
        } else {
            sc[j + 4] = (lsj & 0xf) | ((lmj & 0xf) << 4);
            sc[j - 4] |= (lsj >> 4) << 6;
            sc[j] |= (lmj >> 4) << 6;
        }
    }
    let d = put_f16(y, 0, d);
    let dmin = put_f16(y, 2, dmin);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &y[4..16]);
        let dj = d * s as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    (d, dmin)
}

/// One Q4_K super-block.
pub(crate) fn q4_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    q45_scales(x, 15, -1.0, 20, &mut l, y);
    pack_q4_k(&l, y);
}

/// Q4_K's 4-bit levels, two per byte, after the 16 bytes of scales.
pub(crate) fn pack_q4_k(l: &[u8; QK_K], y: &mut [u8]) {
    let q = &mut y[16..144];
    for (n, j) in (0..QK_K).step_by(64).enumerate() {
        for k in 0..32 {
            q[n * 32 + k] = l[j + k] | (l[j + k + 32] << 4);
        }
    }
}

/// One Q5_K super-block.
pub(crate) fn q5_k(x: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    q45_scales(x, 31, -0.5, 15, &mut l, y);
    pack_q5_k(&l, y);
}

/// Q5_K's 5-bit levels: the fifth bits into `qh`, the low four two per byte.
pub(crate) fn pack_q5_k(l: &[u8; QK_K], y: &mut [u8]) {
    let (qh, ql) = y[16..176].split_at_mut(32);
    qh.fill(0);
    let (mut m1, mut m2) = (1u8, 2u8);
    for (blk, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = l[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[blk * 32 + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

/// One Q6_K super-block.
pub(crate) fn q6_k(x: &[f32], y: &mut [u8]) {
    q6_k_weighted(x, None, y)
}

/// One Q6_K super-block, with the importance weights (if any) given to `make_qx_quants` as ggml's `_impl` does.
pub(crate) fn q6_k_weighted(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for ib in 0..16 {
        let w = qw.map(|q| &q[16 * ib..16 * ib + 16]);
        let s = make_qx_quants(16, 32, &x[16 * ib..], &mut l[16 * ib..], 1, w);
        scales[ib] = s;
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = s;
        }
    }
    if max_abs < GROUP_MAX_EPS {
        y[..210].fill(0);
        put_f16(y, 208, 0.0);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = put_f16(y, 208, 1.0 / iscale);
    for ib in 0..16 {
        y[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let dj = d * (y[192 + j] as i8) as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let lv = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
            l[16 * j + ii] = (lv + 32) as i8;
        }
    }
    let (ql, rest) = y.split_at_mut(128);
    let qh = &mut rest[..64];
    for (blk, j) in (0..QK_K).step_by(128).enumerate() {
        let (ql, qh) = (&mut ql[blk * 64..], &mut qh[blk * 32..]);
        for k in 0..32 {
            let q1 = (l[j + k] & 0xf) as u8;
            let q2 = (l[j + k + 32] & 0xf) as u8;
            let q3 = (l[j + k + 64] & 0xf) as u8;
            let q4 = (l[j + k + 96] & 0xf) as u8;
            ql[k] = q1 | (q3 << 4);
            ql[k + 32] = q2 | (q4 << 4);
            qh[k] = ((l[j + k] >> 4)
                | ((l[j + k + 32] >> 4) << 2)
                | ((l[j + k + 64] >> 4) << 4)
                | ((l[j + k + 96] >> 4) << 6)) as u8;
        }
    }
}

/// One Q8_K super-block (the intermediate type of the K-quant dot products).
pub(crate) fn q8_k(x: &[f32], y: &mut [u8]) {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in &x[..QK_K] {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        y[..292].fill(0);
        return;
    }
    let iscale = -127.0 / max;
    for j in 0..QK_K {
        y[4 + j] = nearest_int(iscale * x[j]).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let sum: i32 = (0..16).map(|ii| y[4 + j * 16 + ii] as i8 as i32).sum();
        y[260 + 2 * j..262 + 2 * j].copy_from_slice(&(sum as i16).to_le_bytes());
    }
    y[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::nearest_int;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(2.4999), 2);
        assert_eq!(nearest_int(-7.6), -8);
    }
}

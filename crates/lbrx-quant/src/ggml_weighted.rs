//! ggml's quantizers that take an importance matrix (`quantize_row_*_impl` in ggml/src/ggml-quants.c, what
//! `ggml_quantize_chunk` runs when given `quant_weights`), the IQ4 quantizers (which always run their `_impl`),
//! and Q1_0, Q2_0 and NVFP4 (reference only) - bit-exact, in ggml's operation order, no fused multiply-add.
//!
//! The importance matrix holds one weight per column of the matrix: block `b` of a row uses
//! `imatrix[b * block_size ..]`. Q4_0..Q5_1 also use the whole row (its mean square), so they run row by row.

#![allow(clippy::needless_range_loop)]

use crate::ggml_kquant::{c_int, make_qx_quants, nearest_int, put_f16};

const QK_K: usize = 256;
const GROUP_MAX_EPS: f32 = 1e-15;

/// `make_qkx3_quants`: asymmetric levels in [0, nmax] with a minimum, weighted search. Returns (scale, -min).
#[allow(clippy::too_many_arguments)]
fn make_qkx3_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let w = |i: usize| match weights {
        Some(q) => q[i],
        None => x[i] * x[i],
    };
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w(0);
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let wi = w(i);
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0f32;
    for i in 0..n {
        let li = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = li as u8;
        let mut diff = scale * l[i] as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_mad += w(i) * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let li = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = li as u8;
            let wi = w(i);
            let lf = li as f32;
            sum_l += wi * lf;
            sum_l2 += wi * lf * lf;
            sum_xl += wi * lf * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                mad += w(i) * diff;
            }
            if mad < best_mad {
                l[..n].copy_from_slice(&laux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qp_quants`: non-negative levels in [0, nmax] for non-negative values, weighted.
pub(crate) fn make_qp_quants(n: usize, nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let mut max = 0f32;
    for &v in &x[..n] {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0f32;
    for i in 0..n {
        let diff = x[i] - scale * l[i] as f32;
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0f32;
        for i in 0..n {
            let li = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * li as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    // Levels are stored in C's uint8_t: a negative value (IQ2_XXS passes one sign-flipped value) wraps, and
    // the refinement reads the wrapped value back.
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for i in 0..n {
        let li = nearest_int(iscale * x[i]).min(nmax);
        l[i] = li as u8;
        let w = qw[i];
        sumlx += w * x[i] * li as f32;
        suml2 += w * li as f32 * li as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for i in 0..n {
            let w = qw[i];
            let lf = l[i] as f32;
            let mut slx = sumlx - w * x[i] * lf;
            let mut sl2 = suml2 - w * lf * lf;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l[i] as i32 {
                    let nf = new_l as f32;
                    slx += w * x[i] * nf;
                    sl2 += w * nf * nf;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
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
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// The mean square of a row (`sigma2` of the Q4_0..Q5_1 `_impl` paths).
fn row_sigma2(x: &[f32]) -> f32 {
    let mut s = 0f32;
    for &v in x {
        s += v * v;
    }
    s / x.len() as f32
}

/// `weight[j] = qw[j] * sqrt(sigma2 + x[j]^2)` for a block.
fn weigh(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) {
    for j in 0..out.len() {
        out[j] = qw[j] * (sigma2 + x[j] * x[j]).sqrt();
    }
}

/// One row of Q4_0 or Q5_0 with an importance matrix (`quantize_row_q{4,5}_0_impl`).
pub(crate) fn q_0_row(x: &[f32], qw: &[f32], y: &mut [u8], five: bool) {
    let sigma2 = row_sigma2(x);
    let ts = if five { 22 } else { 18 };
    let mut weight = [0f32; 32];
    let mut l = [0i8; 32];
    for (ib, yb) in y.chunks_exact_mut(ts).enumerate() {
        let xb = &x[32 * ib..32 * ib + 32];
        weigh(xb, &qw[32 * ib..], sigma2, &mut weight);
        let nmax = if five { 16 } else { 8 };
        let d = make_qx_quants(32, nmax, xb, &mut l, 1, Some(&weight));
        put_f16(yb, 0, d);
        if five {
            let mut qh = 0u32;
            for j in 0..16 {
                let (a, b) = (l[j] as u8, l[j + 16] as u8);
                yb[6 + j] = (a & 0x0f) | ((b & 0x0f) << 4);
                qh |= (((a & 0x10) >> 4) as u32) << j;
                qh |= (((b & 0x10) >> 4) as u32) << (j + 16);
            }
            yb[2..6].copy_from_slice(&qh.to_le_bytes());
        } else {
            for j in 0..16 {
                yb[2 + j] = l[j] as u8 | ((l[j + 16] as u8) << 4);
            }
        }
    }
}

/// One row of Q4_1 or Q5_1 with an importance matrix (`quantize_row_q{4,5}_1_impl`).
pub(crate) fn q_1_row(x: &[f32], qw: &[f32], y: &mut [u8], five: bool) {
    let sigma2 = row_sigma2(x);
    let ts = if five { 24 } else { 20 };
    let mut weight = [0f32; 32];
    let (mut l, mut laux) = ([0u8; 32], [0u8; 32]);
    for (ib, yb) in y.chunks_exact_mut(ts).enumerate() {
        let xb = &x[32 * ib..32 * ib + 32];
        weigh(xb, &qw[32 * ib..], sigma2, &mut weight);
        let nmax = if five { 31 } else { 15 };
        let (d, min) = make_qkx3_quants(
            32,
            nmax,
            xb,
            Some(&weight),
            &mut l,
            &mut laux,
            -0.9,
            0.05,
            36,
            false,
        );
        put_f16(yb, 0, d);
        put_f16(yb, 2, -min);
        if five {
            let mut qh = 0u32;
            for j in 0..16 {
                let (a, b) = (l[j], l[j + 16]);
                yb[8 + j] = (a & 0x0f) | ((b & 0x0f) << 4);
                qh |= (((a & 0x10) >> 4) as u32) << j;
                qh |= (((b & 0x10) >> 4) as u32) << (j + 16);
            }
            yb[4..8].copy_from_slice(&qh.to_le_bytes());
        } else {
            for j in 0..16 {
                yb[4 + j] = l[j] | (l[j + 16] << 4);
            }
        }
    }
}

/// One Q2_K super-block with an importance matrix (`quantize_row_q2_K_impl`).
pub(crate) fn q2_k(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let (mut mins, mut scales, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    let mut weight = [0f32; 16];
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let mut sumx2 = 0f32;
    for j in 0..QK_K {
        sumx2 += x[j] * x[j];
    }
    let sigma2 = sumx2 / QK_K as f32;
    for j in 0..16 {
        weigh(&x[16 * j..16 * j + 16], &qw[16 * j..], sigma2, &mut weight);
        for k in 0..16 {
            sw[j] += weight[k];
        }
        let (s, m) = make_qkx3_quants(
            16,
            3,
            &x[16 * j..],
            Some(&weight),
            &mut l[16 * j..],
            &mut laux,
            -0.9,
            0.05,
            36,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let dm = make_qp_quants(16, 15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(16, 15, &mins, &mut lm, &sw);
    let (sc, rest) = y.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    let dm = put_f16(dd, 0, dm);
    let mm = put_f16(dd, 2, mm);
    for j in 0..16 {
        sc[j] = ls[j] | (lm[j] << 4);
    }
    for j in 0..16 {
        let d = dm * (sc[j] & 0xf) as f32;
        if d == 0.0 {
            continue;
        }
        let m = mm * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / d).clamp(0, 3) as u8;
        }
    }
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

/// One Q3_K super-block with an importance matrix (`quantize_row_q3_K_impl`).
pub(crate) fn q3_k(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
    let mut weight = [0f32; 16];
    let mut ls = [0i8; 16];
    let mut sumx2 = 0f32;
    for j in 0..QK_K {
        sumx2 += x[j] * x[j];
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
    for j in 0..16 {
        weigh(&x[16 * j..16 * j + 16], &qw[16 * j..], sigma2, &mut weight);
        let mut sumw = 0f32;
        for k in 0..16 {
            sumw += weight[k];
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(16, 4, &x[16 * j..], &mut l[16 * j..], 1, Some(&weight));
    }
    let (hmask, rest) = y.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, dd) = rest.split_at_mut(12);
    sc.fill(0);
    let d_block = make_qx_quants(16, 32, &scales, &mut ls, 1, Some(&sw));
    for j in 0..16 {
        let mut lv = ls[j] as i32;
        if j < 8 {
            sc[j] = (lv & 0xf) as u8;
        } else {
            sc[j - 8] |= ((lv & 0xf) << 4) as u8;
        }
        lv >>= 4;
        sc[j % 4 + 8] |= (lv << (2 * (j / 4))) as u8;
    }
    let d = put_f16(dd, 0, d_block);
    crate::ggml_kquant::q3_k_levels(x, d, sc, &mut l, hmask, qs);
}

/// Q4_K / Q5_K scales with an importance matrix (`quantize_row_q{4,5}_K_impl`); fills `l` with the levels.
fn q45_scales(x: &[f32], qw: &[f32], nmax: i32, l: &mut [u8; QK_K], y: &mut [u8]) {
    let mut laux = [0u8; 32];
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let (mut weights, mut sw, mut mins, mut scales) = ([0f32; 32], [0f32; 8], [0f32; 8], [0f32; 8]);
    let mut sum_x2 = 0f32;
    for k in 0..QK_K {
        sum_x2 += x[k] * x[k];
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;
    for j in 0..8 {
        weigh(&x[32 * j..32 * j + 32], &qw[32 * j..], sigma2, &mut weights);
        let mut sumw = 0f32;
        for k in 0..32 {
            sumw += weights[k];
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(
            32,
            nmax,
            &x[32 * j..],
            Some(&weights),
            &mut l[32 * j..],
            &mut laux,
            -0.9,
            0.05,
            36,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let d_block = make_qp_quants(8, 63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(8, 63, &mins, &mut lm, &sw);
    crate::ggml_kquant::q45_levels(x, nmax, &ls, &lm, d_block, m_block, l, y);
}

/// One Q4_K super-block with an importance matrix.
pub(crate) fn q4_k(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    q45_scales(x, qw, 15, &mut l, y);
    crate::ggml_kquant::pack_q4_k(&l, y);
}

/// One Q5_K super-block with an importance matrix.
pub(crate) fn q5_k(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let mut l = [0u8; QK_K];
    q45_scales(x, qw, 31, &mut l, y);
    crate::ggml_kquant::pack_q5_k(&l, y);
}

/// One Q6_K super-block with an importance matrix: the reference quantizer with the weights given to
/// `make_qx_quants` (`quantize_row_q6_K_impl`).
pub(crate) fn q6_k(x: &[f32], qw: &[f32], y: &mut [u8]) {
    crate::ggml_kquant::q6_k_weighted(x, Some(qw), y);
}

/// The IQ4_NL values.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// ggml's `best_index_int8`: the nearest table entry by bisection (ties to the upper one).
fn best_index_int8(val: &[i8; 16], x: f32) -> u8 {
    if x <= val[0] as f32 {
        return 0;
    }
    if x >= val[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < val[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (val[mu - 1] as f32) < (val[mu] as f32) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// `quantize_row_iq4_nl_impl` with `ntry` 7 (what `quantize_iq4_nl` / `quantize_iq4_xs` run): one super-block of
/// `sbs` values in blocks of 32. Writes `d` (f16) at `y[0..2]`, then for IQ4_XS the 6-bit block scales, then
/// the packed 4-bit indices.
fn iq4_impl(x: &[f32], qw: Option<&[f32]>, y: &mut [u8], sbs: usize) {
    let ntry = 7i32;
    let values = &KVALUES_IQ4NL;
    let mut sigma2 = 0f32;
    for j in 0..sbs {
        sigma2 += x[j] * x[j];
    }
    sigma2 *= 2.0 / sbs as f32;
    let nb = sbs / 32;
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut weight = [0f32; 32];
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for ib in 0..nb {
        let xb = &x[ib * 32..ib * 32 + 32];
        match qw {
            Some(q) => weigh(xb, &q[ib * 32..], sigma2, &mut weight),
            None => {
                for j in 0..32 {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut d = if ntry > 0 {
            -max / values[0] as f32
        } else {
            max / values[0] as f32
        };
        let mut id = 1.0 / d;
        let (mut sumqx, mut sumq2) = (0f32, 0f32);
        for j in 0..32 {
            let al = id * xb[j];
            let li = best_index_int8(values, al);
            l[ib * 32 + j] = li;
            let q = values[li as usize] as f32;
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -ntry..=ntry {
            id = (itry as f32 + values[0] as f32) / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..32 {
                let al = id * xb[j];
                let q = values[best_index_int8(values, al) as usize] as f32;
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }
    let qs_at;
    if nb > 1 {
        // IQ4_XS: d, scales_h (u16), scales_l (4 bytes), qs
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; 4];
        let d = -max_scale / 32.0;
        put_f16(y, 0, d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for ib in 0..nb {
            let mut li = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * li as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for j in 0..32 {
                l[ib * 32 + j] = best_index_int8(values, idl * x[ib * 32 + j]);
            }
            li += 32;
            let (l_l, l_h) = ((li & 0xf) as u8, (li >> 4) as u16);
            if ib % 2 == 0 {
                scales_l[ib / 2] = l_l;
            } else {
                scales_l[ib / 2] |= l_l << 4;
            }
            scales_h |= l_h << (2 * (ib % 8));
        }
        y[2..4].copy_from_slice(&scales_h.to_le_bytes());
        y[4..8].copy_from_slice(&scales_l);
        qs_at = 8;
    } else {
        put_f16(y, 0, scales[0]);
        let id = if scales[0] != 0.0 {
            1.0 / scales[0]
        } else {
            0.0
        };
        for j in 0..sbs {
            l[j] = best_index_int8(values, id * x[j]);
        }
        qs_at = 2;
    }
    let q4 = &mut y[qs_at..qs_at + sbs / 2];
    for i in 0..sbs / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

/// One IQ4_NL block of 32.
pub(crate) fn iq4_nl(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    iq4_impl(x, qw, y, 32);
}

/// One IQ4_XS super-block of 256.
pub(crate) fn iq4_xs(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    iq4_impl(x, qw, y, QK_K);
}

/// One Q1_0 block of 128 (`quantize_row_q1_0_ref`): the mean |x| and one sign bit per value.
pub(crate) fn q1_0(x: &[f32], y: &mut [u8]) {
    let mut sum_abs = 0f32;
    for &v in &x[..128] {
        sum_abs += v.abs();
    }
    put_f16(y, 0, sum_abs / 128.0);
    let qs = &mut y[2..18];
    qs.fill(0);
    for j in 0..128 {
        if x[j] >= 0.0 {
            qs[j / 8] |= 1 << (j % 8);
        }
    }
}

/// One Q2_0 block of 64 (`quantize_row_q2_0_ref`): max |x| and levels -1..2 of it.
pub(crate) fn q2_0(x: &[f32], y: &mut [u8]) {
    let mut amax = 0f32;
    for &v in &x[..64] {
        if v.abs() > amax {
            amax = v.abs();
        }
    }
    let id = if amax > 0.0 { 1.0 / amax } else { 0.0 };
    put_f16(y, 0, amax);
    let qs = &mut y[2..18];
    qs.fill(0);
    for j in 0..64 {
        let q = c_int((x[j] * id).round()).wrapping_add(1).clamp(0, 3);
        qs[j / 4] |= (q as u8) << ((j % 4) * 2);
    }
}

/// ggml's `ggml_fp32_to_ue4m3`: an unsigned E4M3 scale, truncating the mantissa with one rounding bit.
fn to_ue4m3(x: f32) -> u8 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let x = if x > 448.0 { 448.0 } else { x };
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    let man = ((bits >> 20) & 7) as i32;
    let mut e = exp + 7;
    if e <= 0 {
        let m = ((x * 512.0 + 0.5) as i32).min(7);
        return if m < 1 { 0 } else { m as u8 };
    }
    if e >= 15 {
        return 0x7e;
    }
    let mut m = man + ((bits >> 19) & 1) as i32;
    if m > 7 {
        m = 0;
        e += 1;
        if e >= 15 {
            return 0x7e;
        }
    }
    ((e << 3) | m) as u8
}

/// One NVFP4 block of 64 (`quantize_row_nvfp4_ref`): four UE4M3 scales of 16 values and 4-bit FP4 codes.
pub(crate) fn nvfp4(x: &[f32], y: &mut [u8]) {
    for s in 0..4 {
        let xb = &x[s * 16..s * 16 + 16];
        let mut amax = 0f32;
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        let ue = to_ue4m3(amax / 6.0);
        y[s] = ue;
        let d = crate::ggml::ue4m3_half(ue);
        for j in 0..8 {
            let x0 = crate::ggml_ternary::best_index_mxfp4(xb[j], d);
            let x1 = crate::ggml_ternary::best_index_mxfp4(xb[8 + j], d);
            y[4 + s * 8 + j] = x0 | (x1 << 4);
        }
    }
}

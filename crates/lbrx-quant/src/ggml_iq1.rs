//! ggml's IQ1_S and IQ1_M quantizers (`quantize_row_iq1_{s,m}_impl` in ggml/src/ggml-quants.c), bit-exact:
//! per group of 8 values, the best split into three levels (-1, 0, +1 shifted by the delta) found over the
//! values in sorted order, then snapped to the IQ1 grid through [`crate::ggml_iq`]'s lattice neighbours.
//! Layouts are in [`crate::ggml_iq`].

// The loops index exactly as the C reference does, so that the port can be checked line by line.
#![allow(clippy::needless_range_loop)]

use crate::ggml_iq::{
    cmax, lattice, scale_level, sigma2, weigh, xsq, Grid, Lattice, GROUP_MAX_EPS_IQ1_M,
    GROUP_MAX_EPS_IQ1_S, IQ1_DELTA, QK_K,
};
use crate::ggml_kquant::put_f16;

/// A stable ascending sort of a group's values' indices by value (glibc's qsort of IQ1 is a stable merge
/// sort; an insertion sort gives the same order and cannot fail on NaN).
fn sorted_by_value(xb: &[f32], idx: &mut [usize]) {
    for (j, v) in idx.iter_mut().enumerate() {
        *v = j;
    }
    for j in 1..idx.len() {
        let mut k = j;
        while k > 0 && xb[idx[k - 1]] > xb[idx[k]] {
            idx.swap(k - 1, k);
            k -= 1;
        }
    }
}

/// Levels 0/1/2 of a group from the best split of its sorted values, the split's sign choice and scale.
fn iq1_levels(idx: &[usize], i1: usize, i2: usize, l: &mut [i8]) {
    for (j, &i) in idx.iter().enumerate() {
        l[i] = if j < i1 {
            0
        } else if j < i2 {
            1
        } else {
            2
        };
    }
}

/// The grid indices of a group's sub-groups of 8 at `scale` (level values per sub-group from `xx(k)`), and the
/// scale refit when one was off the grid.
fn iq1_snap(
    lat: &Lattice,
    xb: &[f32],
    w: &[f32],
    mut scale: f32,
    xx: impl Fn(usize) -> [f32; 3],
    l: &mut [i8],
    index: &mut [usize],
) -> f32 {
    let mut all_on_grid = true;
    for k in 0..index.len() {
        let r = 8 * k..8 * k + 8;
        index[k] = match lat.index(&l[r.clone()]) {
            Some(g) => g,
            None => {
                all_on_grid = false;
                let xg = xx(k);
                let value = |p: i8| xg[((p - 1) / 2) as usize];
                lat.best_neighbour(&xb[r.clone()], &w[r.clone()], scale, value, &mut l[r])
            }
        };
    }
    if !all_on_grid {
        let (mut sumqx, mut sumq2) = (0f32, 0f32);
        for k in 0..index.len() {
            let pg = lat.point(index[k]);
            let xg = xx(k);
            for j in 0..8 {
                let wj = w[8 * k + j];
                let q = xg[((pg[j] - 1) / 2) as usize];
                sumqx += wj * q * xb[8 * k + j];
                sumq2 += wj * q * q;
            }
        }
        if sumqx > 0.0 && sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    scale
}

const X_P: [f32; 3] = [-1.0 + IQ1_DELTA, IQ1_DELTA, 1.0 + IQ1_DELTA];
const X_M: [f32; 3] = [-1.0 - IQ1_DELTA, -IQ1_DELTA, 1.0 - IQ1_DELTA];

/// IQ1_S (`quantize_row_iq1_s_impl`; ggml requires an importance matrix, the caller checks).
pub(crate) fn iq1_s(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    const BS: usize = 32;
    let lat = lattice(Grid::Iq1s);
    y.fill(0);
    let s2 = sigma2(x, 2.0);
    let mut scales = [0f32; QK_K / BS];
    let mut shifts = [1i8; QK_K / BS];
    let mut max_scale = 0f32;
    let (mut weight, mut l, mut idx) = ([0f32; BS], [0i8; BS], [0usize; BS]);
    let (mut sumx, mut sumw) = ([0f32; BS + 1], [0f32; BS + 1]);
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * (ib + 1)];
        weigh(xb, qw.map(|q| &q[BS * ib..]), s2, xsq, &mut weight);
        let max = xb[1..].iter().fold(xb[0].abs(), |m, v| cmax(m, v.abs()));
        if max < GROUP_MAX_EPS_IQ1_S {
            continue;
        }
        sorted_by_value(xb, &mut idx);
        for j in 0..BS {
            let i = idx[j];
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        let (mut best_score, mut scale) = (-f32::MAX, max);
        let (mut besti1, mut besti2, mut best_shift) = (usize::MAX, usize::MAX, 0i8);
        for i1 in 0..=BS {
            for i2 in i1..=BS {
                for (xv, shift) in [(&X_P, 1i8), (&X_M, -1)] {
                    let sumqx = (sumx[i1] - sumx[0]) * xv[0]
                        + (sumx[i2] - sumx[i1]) * xv[1]
                        + (sumx[BS] - sumx[i2]) * xv[2];
                    let sumq2 = (sumw[i1] - sumw[0]) * xv[0] * xv[0]
                        + (sumw[i2] - sumw[i1]) * xv[1] * xv[1]
                        + (sumw[BS] - sumw[i2]) * xv[2] * xv[2];
                    if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        (besti1, besti2, best_shift) = (i1, i2, shift);
                    }
                }
            }
        }
        if besti1 == usize::MAX || best_shift == 0 {
            continue;
        }
        iq1_levels(&idx, besti1, besti2, &mut l);
        if scale < 0.0 {
            for v in &mut l {
                *v = 2 - *v;
            }
            scale = -scale;
            best_shift = -best_shift;
        }
        let xx = if best_shift == 1 { X_P } else { X_M };
        let mut index = [0usize; BS / 8];
        scale = iq1_snap(lat, xb, &weight, scale, |_| xx, &mut l, &mut index);
        let mut h = 0u16;
        for k in 0..BS / 8 {
            y[2 + (BS / 8) * ib + k] = index[k] as u8;
            h |= ((index[k] >> 8) << (3 * k)) as u16;
        }
        y[34 + 2 * ib..36 + 2 * ib].copy_from_slice(&h.to_le_bytes());
        scales[ib] = scale;
        shifts[ib] = best_shift;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 15.0;
    put_f16(y, 0, d * 1.125);
    let id = 1.0 / d;
    for ib in 0..QK_K / BS {
        let mut l = scale_level(id, scales[ib], 7) as u16;
        if shifts[ib] == -1 {
            l |= 8;
        }
        y[35 + 2 * ib] |= (l << 4) as u8;
    }
}

/// IQ1_M (`quantize_row_iq1_m_impl`).
pub(crate) fn iq1_m(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    const BS: usize = 16;
    const MASKS: [u8; 4] = [0x00, 0x80, 0x08, 0x88];
    let lat = lattice(Grid::Iq1s);
    y.fill(0);
    let s2 = sigma2(x, 2.0);
    let mut scales = [0f32; QK_K / BS];
    let mut shifts = [0usize; QK_K / BS];
    let mut max_scale = 0f32;
    let (mut weight, mut l, mut idx) = ([0f32; BS], [0i8; BS], [0usize; BS]);
    // The level values of sub-group k (of 2) for a sign choice: 0 (+,+), 1 (+,-), 2 (-,+), 3 (-,-).
    let levels = |shift: usize, k: usize| {
        let plus = if k == 0 {
            shift < 2
        } else {
            shift.is_multiple_of(2)
        };
        if plus {
            X_P
        } else {
            X_M
        }
    };
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * (ib + 1)];
        weigh(xb, qw.map(|q| &q[BS * ib..]), s2, xsq, &mut weight);
        let max = xb[1..].iter().fold(xb[0].abs(), |m, v| cmax(m, v.abs()));
        if max < GROUP_MAX_EPS_IQ1_M {
            continue;
        }
        sorted_by_value(xb, &mut idx);
        // Prefix sums per half of the group (each half may use its own sign choice).
        let (mut px, mut pw) = ([[0f32; BS + 1]; 2], [[0f32; BS + 1]; 2]);
        for j in 0..BS {
            let i = idx[j];
            let h = usize::from(i >= BS / 2);
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        let txs = [px[0][BS], px[1][BS]];
        let tws = [pw[0][BS], pw[1][BS]];
        let (p2, m2) = (X_P[2], X_M[2]);
        let cp1 = X_P[0] * X_P[0] - X_P[1] * X_P[1];
        let cp2 = X_P[1] * X_P[1] - X_P[2] * X_P[2];
        let cm1 = X_M[0] * X_M[0] - X_M[1] * X_M[1];
        let cm2 = X_M[1] * X_M[1] - X_M[2] * X_M[2];
        let (mut best_score, mut scale) = (-f32::MAX, max);
        let (mut besti1, mut besti2, mut best_k) = (usize::MAX, usize::MAX, usize::MAX);
        for i1 in 0..=BS {
            for i2 in i1..=BS {
                let (mut qx_p, mut qx_m, mut q2_p, mut q2_m) =
                    ([0f32; 2], [0f32; 2], [0f32; 2], [0f32; 2]);
                for h in 0..2 {
                    let sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                let sumqx = [
                    qx_p[0] + qx_p[1],
                    qx_p[0] + qx_m[1],
                    qx_m[0] + qx_p[1],
                    qx_m[0] + qx_m[1],
                ];
                let sumq2 = [
                    q2_p[0] + q2_p[1],
                    q2_p[0] + q2_m[1],
                    q2_m[0] + q2_p[1],
                    q2_m[0] + q2_m[1],
                ];
                for k in 0..4 {
                    if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        (besti1, besti2, best_k) = (i1, i2, k);
                    }
                }
            }
        }
        if besti1 == usize::MAX {
            continue;
        }
        iq1_levels(&idx, besti1, besti2, &mut l);
        if scale < 0.0 {
            for v in &mut l {
                *v = 2 - *v;
            }
            scale = -scale;
            best_k = 3 - best_k;
        }
        let mut index = [0usize; 2];
        scale = iq1_snap(
            lat,
            xb,
            &weight,
            scale,
            |k| levels(best_k, k),
            &mut l,
            &mut index,
        );
        y[2 * ib] = index[0] as u8;
        y[2 * ib + 1] = index[1] as u8;
        y[32 + ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
        scales[ib] = scale;
        shifts[ib] = best_k;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let mut sc = [0u16; 4];
    let d = max_scale / 15.0;
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for ib in 0..QK_K / BS {
        let lv = scale_level(id, scales[ib], 7);
        sc[ib / 4] |= (lv << (3 * (ib % 4))) as u16;
        y[32 + ib] |= MASKS[shifts[ib]];
        let xb = &x[BS * ib..BS * (ib + 1)];
        weigh(xb, qw.map(|q| &q[BS * ib..]), s2, xsq, &mut weight);
        let qh = y[32 + ib] as usize;
        for k in 0..2 {
            let xx = levels(shifts[ib], k);
            let pg = lat.point(y[2 * ib + k] as usize + ((qh << (8 - 4 * k)) & 0x700));
            for j in 0..8 {
                let w = weight[8 * k + j];
                let q = xx[((pg[j] - 1) / 2) as usize] * (2 * lv + 1) as f32;
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    let d = if sumq2 > 0.0 { sumqx / sumq2 } else { d };
    let mut s = [0u8; 2];
    put_f16(&mut s, 0, d * 1.1125);
    let s = u16::from_le_bytes(s);
    sc[0] |= (s & 0x000f) << 12;
    sc[1] |= (s & 0x00f0) << 8;
    sc[2] |= (s & 0x0f00) << 4;
    sc[3] |= s & 0xf000;
    for (i, v) in sc.iter().enumerate() {
        y[48 + 2 * i..50 + 2 * i].copy_from_slice(&v.to_le_bytes());
    }
}

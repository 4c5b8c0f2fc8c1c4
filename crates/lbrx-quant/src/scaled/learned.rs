//! Learned rounding of FP8 and INT8 weights: each value is rounded to one of the two grid points around it
//! (its round-to-nearest code, or the other neighbour), chosen so that the reconstruction error projected on
//! the weight's top-k singular subspace, `||U_k^T (dequant(Q) - W) V_k||_F`, is as small as the search finds;
//! the scales stay those of round-to-nearest.
//!
//! - Subspace: a seeded randomized SVD (Halko et al.: Gaussian sketch of k + 10 columns, 4 power iterations
//!   with QR re-orthonormalization, SVD of the projected matrix), `k = clamp(floor(top_p * min(M, N)),
//!   min_k, max_k)`, as convert-to-quant chooses it. Dense linear algebra is faer's.
//! - Optimizer: greedy descent over code flips. Each iteration takes the gradient `G = U_k P V_k^T` of the
//!   squared projected error (`P` the k x k projected error), scores every flip by its exact single-flip
//!   change `2 d G_ij + d^2 |u_i|^2 |v_j|^2` (`d` the flip's change of the dequantized value), applies the
//!   best-scoring batch of improving flips, recomputes the loss exactly and keeps the batch only if the loss
//!   fell (otherwise the batch is halved). The loss never rises, so the result is never worse than
//!   round-to-nearest.
//! - Stopping rule: the iteration budget, no improving flip left, or a batch of one that does not improve.
//! - Deterministic: the sketch comes from a seeded generator and every reduction has a fixed order for a
//!   given machine and thread count; two runs give the same bytes.

use crate::cast::e4m3_to_f32;
use crate::scaled::{Family, Scheme};
use faer::Mat;

/// What the search is allowed to do.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Iteration budget.
    pub iters: u32,
    /// Seed of the randomized SVD's sketch.
    pub seed: u64,
    /// Fraction of min(M, N) the subspace keeps.
    pub top_p: f32,
    /// Smallest k.
    pub min_k: usize,
    /// Largest k.
    pub max_k: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            iters: 200,
            seed: 0,
            top_p: 0.2,
            min_k: 256,
            max_k: 1280,
        }
    }
}

/// One layer's errors before (round-to-nearest) and after the search.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Report {
    /// The subspace's size.
    pub k: usize,
    /// Iterations run.
    pub iters: u32,
    /// Flips kept.
    pub flips: u64,
    /// `||W||_F^2`.
    pub w_norm2: f64,
    /// `||U_k^T W V_k||_F^2`.
    pub w_sub2: f64,
    /// `||dequant(Q) - W||_F^2` before and after.
    pub err2: [f64; 2],
    /// `||U_k^T (dequant(Q) - W) V_k||_F^2` before and after.
    pub sub2: [f64; 2],
}

impl Report {
    /// Relative Frobenius error before and after.
    pub fn rel(&self) -> [f64; 2] {
        self.err2
            .map(|e| (e / self.w_norm2.max(f64::MIN_POSITIVE)).sqrt())
    }

    /// Relative error in the subspace before and after.
    pub fn rel_sub(&self) -> [f64; 2] {
        self.sub2
            .map(|e| (e / self.w_sub2.max(f64::MIN_POSITIVE)).sqrt())
    }
}

/// splitmix64: the sketch's generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A standard normal value (Box-Muller).
    fn normal(&mut self) -> f32 {
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// The subspace size convert-to-quant uses for an `m x n` weight.
pub fn subspace_k(m: usize, n: usize, p: &Params) -> usize {
    let r = m.min(n);
    ((p.top_p * r as f32).floor() as usize)
        .max(p.min_k)
        .min(p.max_k)
        .min(r)
}

/// The top-k left and right singular vectors (`U`: m x k, `V`: n x k) of `a`, by a seeded randomized SVD.
fn top_k(a: &Mat<f32>, k: usize, seed: u64) -> (Mat<f32>, Mat<f32>) {
    let (m, n) = (a.nrows(), a.ncols());
    let q = (k + 10).min(m.min(n));
    let mut rng = Rng(seed);
    let omega = Mat::<f32>::from_fn(n, q, |_, _| rng.normal());
    let mut y = a * &omega;
    for _ in 0..4 {
        let qy = y.qr().compute_thin_Q();
        let z = a.transpose() * &qy;
        let qz = z.qr().compute_thin_Q();
        y = a * &qz;
    }
    let qy = y.qr().compute_thin_Q();
    let b = qy.transpose() * a;
    match b.thin_svd() {
        Ok(svd) => {
            let u = &qy * svd.U();
            let u = Mat::from_fn(m, k, |i, j| u[(i, j)]);
            let v = Mat::from_fn(n, k, |i, j| svd.V()[(i, j)]);
            (u, v)
        }
        Err(_) => (Mat::zeros(m, k), Mat::zeros(n, k)),
    }
}

/// The dequantized value of one code at scale `s`.
fn value(family: Family, code: u8, s: f32) -> f32 {
    match family {
        Family::Int8 => code as i8 as f32 * s,
        _ => e4m3_to_f32(code) * s,
    }
}

/// The code on the other side of `w` (scaled value `p`) from `code`, or `None` at the grid's ends.
fn other(family: Family, code: u8, p: f32) -> Option<u8> {
    match family {
        Family::Int8 => {
            let q = code as i8 as f32;
            let o = if p > q { q + 1.0 } else { q - 1.0 };
            (o.abs() <= 127.0 && p.is_finite()).then_some(o as i32 as i8 as u8)
        }
        _ => {
            let v = e4m3_to_f32(code);
            if !p.is_finite() || !v.is_finite() {
                return None;
            }
            // E4M3 codes in value order: -0x7e .. 0x7e by signed magnitude
            let mag = (code & 0x7f) as i32;
            let idx = if code & 0x80 != 0 { -mag } else { mag };
            let o = if p > v { idx + 1 } else { idx - 1 };
            if o.abs() > 0x7e {
                return None;
            }
            Some(if o < 0 { 0x80 | (-o) as u8 } else { o as u8 })
        }
    }
}

/// `||x||_F^2` in f64.
fn norm2(x: &Mat<f32>) -> f64 {
    let mut s = 0f64;
    for j in 0..x.ncols() {
        for &v in x.col_as_slice(j) {
            s += v as f64 * v as f64;
        }
    }
    s
}

/// Improves the round-to-nearest `codes` (row-major `m x n`) of the weight `w` in place; `scale(i, j)` is
/// the dequantization scale of element (i, j) and `mult(i, j)` the quantization multiplier (the scaled
/// value is `w * mult`). Returns the errors before and after.
#[allow(clippy::too_many_arguments)]
pub fn refine(
    scheme: Scheme,
    w: &[f32],
    m: usize,
    n: usize,
    scale: &dyn Fn(usize, usize) -> f32,
    mult: &dyn Fn(usize, usize) -> f32,
    codes: &mut [u8],
    p: &Params,
) -> Report {
    let family = scheme.family;
    let k = subspace_k(m, n, p);
    let a = Mat::<f32>::from_fn(m, n, |i, j| w[i * n + j]);
    let mut rep = Report {
        k,
        w_norm2: norm2(&a),
        ..Report::default()
    };
    if k == 0 || !w.iter().all(|v| v.is_finite()) {
        return rep;
    }
    let (u, v) = top_k(&a, k, p.seed);
    rep.w_sub2 = norm2(&(u.transpose() * &a * &v));
    let err = |codes: &[u8]| {
        Mat::<f32>::from_fn(m, n, |i, j| {
            value(family, codes[i * n + j], scale(i, j)) - w[i * n + j]
        })
    };
    let mut e = err(codes);
    let mut proj = u.transpose() * &e * &v;
    let mut loss = norm2(&proj);
    rep.err2[0] = norm2(&e);
    rep.sub2[0] = loss;
    let ru: Vec<f32> = (0..m)
        .map(|i| (0..k).map(|c| u[(i, c)] * u[(i, c)]).sum())
        .collect();
    let rv: Vec<f32> = (0..n)
        .map(|j| (0..k).map(|c| v[(j, c)] * v[(j, c)]).sum())
        .collect();
    let mut batch = (m * n / 20).max(1);
    let mut cand: Vec<(f32, u32)> = Vec::new();
    for it in 0..p.iters {
        rep.iters = it + 1;
        let g = &u * &proj * v.transpose();
        cand.clear();
        for i in 0..m {
            for j in 0..n {
                let c = codes[i * n + j];
                let Some(o) = other(family, c, w[i * n + j] * mult(i, j)) else {
                    continue;
                };
                let d = value(family, o, scale(i, j)) - value(family, c, scale(i, j));
                let gain = -(2.0 * d * g[(i, j)] + d * d * ru[i] * rv[j]);
                if gain > 0.0 {
                    cand.push((gain, (i * n + j) as u32));
                }
            }
        }
        if cand.is_empty() {
            break;
        }
        // the best `batch` flips, best first (ties by position: the order is fixed)
        let order = |x: &(f32, u32), y: &(f32, u32)| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1));
        if batch < cand.len() {
            cand.select_nth_unstable_by(batch, order);
            cand.truncate(batch);
        }
        cand.sort_unstable_by(order);
        loop {
            let take = batch.min(cand.len());
            let mut trial = codes.to_vec();
            for &(_, idx) in &cand[..take] {
                let idx = idx as usize;
                let (i, j) = (idx / n, idx % n);
                if let Some(o) = other(family, trial[idx], w[idx] * mult(i, j)) {
                    trial[idx] = o;
                }
            }
            let e2 = err(&trial);
            let proj2 = u.transpose() * &e2 * &v;
            let l2 = norm2(&proj2);
            if l2 < loss {
                codes.copy_from_slice(&trial);
                rep.flips += take as u64;
                (e, proj, loss) = (e2, proj2, l2);
                batch = (batch + batch / 2).max(1);
                break;
            }
            if take == 1 {
                rep.err2[1] = norm2(&e);
                rep.sub2[1] = loss;
                return rep;
            }
            batch = (take / 2).max(1);
        }
    }
    rep.err2[1] = norm2(&e);
    rep.sub2[1] = loss;
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_neighbours_bracket_the_value() {
        for code in 0u8..=255 {
            let v = e4m3_to_f32(code);
            if !v.is_finite() {
                continue;
            }
            for p in [v * 1.01 + 1e-3, v * 0.99 - 1e-3] {
                if let Some(o) = other(Family::Fp8, code, p) {
                    let ov = e4m3_to_f32(o);
                    assert!(ov.is_finite() && ov != v, "{code:#x} {p}");
                    assert_eq!(ov > v, p > v, "{code:#x} -> {o:#x} for {p}");
                }
            }
        }
    }

    #[test]
    fn the_search_never_raises_the_subspace_error_and_is_repeatable() {
        let (m, n) = (96usize, 64usize);
        let mut rng = Rng(7);
        let w: Vec<f32> = (0..m * n).map(|_| rng.normal() * 0.05).collect();
        let scheme = Scheme::new("fp8", None, None).unwrap();
        let amax = crate::scaled::fast::amax_f32(&w);
        let k = scheme.multiplier(amax);
        let mut rtn = vec![0u8; m * n];
        scheme
            .encode_rows(lbrx_core::DType::F32, &w, n as u64, 0, &[amax], &mut rtn)
            .unwrap();
        let params = Params {
            iters: 30,
            min_k: 8,
            ..Params::default()
        };
        let run = || {
            let mut c = rtn.clone();
            let r = refine(
                scheme,
                &w,
                m,
                n,
                &|_, _| 1.0 / k,
                &|_, _| k,
                &mut c,
                &params,
            );
            (c, r)
        };
        let (a, ra) = run();
        let (b, _) = run();
        assert_eq!(a, b, "two runs differ");
        assert!(ra.sub2[1] < ra.sub2[0] * 0.95, "{ra:?}");
        assert_ne!(a, rtn);
    }
}

//! ggml's i-quant quantizers (`quantize_row_iq{2_xxs,2_xs,2_s,3_xxs,3_s,1_s,1_m}_impl` in
//! ggml/src/ggml-quants.c), bit-exact: the same float operations in the same order.
//!
//! Layouts (super-blocks of 256 values, <https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h>):
//! IQ2_XXS 66 bytes (f16 d, 32 x u16: per 32 values four 8-bit grid indices, then 4 x 7 sign bits and a 4-bit
//! scale), IQ2_XS 74 (f16 d, 32 x u16 of 9-bit index + 7 sign bits, 8 bytes of 4-bit scales), IQ2_S 82 (f16 d,
//! 32 index low bytes, 32 sign bytes, 8 bytes of index high bits, 8 bytes of scales), IQ3_XXS 98 (f16 d, 64
//! 8-bit indices, 8 x u32 of 4 x 7 sign bits + 4-bit scale), IQ3_S 110 (f16 d, 64 index low bytes, 8 high-bit
//! bytes, 32 sign bytes, 4 bytes of scales), IQ1_S 50 (f16 d, 32 index low bytes, 8 x u16 of 3 x 3 index high
//! bits, 3-bit scale, delta sign), IQ1_M 56 (32 index low bytes, 16 bytes of high bits + delta signs, 4 x u16
//! of 3-bit scales with the f16 super-scale spread over their top nibbles).
//!
//! Every group of 8 values (IQ1/IQ2) or 4 values (IQ3) is one point of a lattice grid - the grids the
//! dequantizers read (`ggml_tables.rs`). A value is rounded to the nearest lattice level; when the resulting
//! point is not on the grid, its precomputed grid neighbours are searched ([`Lattice`], ggml's
//! `iq2xs_init_impl`/`iq3xs_init_impl`, built here once per grid on first use).

// The loops index exactly as the C reference does, so that the port can be checked line by line.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

use crate::ggml_kquant::{nearest_int, put_f16};
use crate::ggml_tables::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID};
use crate::ggml_weighted::make_qp_quants;

pub(crate) const QK_K: usize = 256;
const GROUP_MAX_EPS: f32 = 1e-15;
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;
pub(crate) const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
pub(crate) const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;
pub(crate) const IQ1_DELTA: f32 = 0.125;

/// A grid of lattice points with a map from every reachable lattice point to its grid index, or to the list
/// of its nearest grid points (by squared distance: all points at the `nwant` smallest distances, ordered by
/// distance, then index - what ggml's qsort of (distance, index) pairs yields).
pub(crate) struct Lattice {
    /// Values per point: 8 (IQ1/IQ2 grids) or 4 (IQ3 grids).
    dim: usize,
    /// Bits per level in a point's key: 2 or 3.
    bits: usize,
    /// Per grid point, `dim` values `2 * level + 1` (ggml's `the_grid`).
    points: Vec<i8>,
    /// Key -> grid index (>= 0), or -(1 + offset of a neighbour list: its length, then grid indices).
    map: Vec<i32>,
    neighbours: Vec<u16>,
}

impl Lattice {
    /// Builds the lattice of a dequantization grid given as its raw little-endian bytes (`dim` per point): a
    /// byte's level is its rank among the grid's distinct values. Keys with levels above `max_level` are never
    /// looked up and get no neighbour list.
    fn new(raw: Vec<i8>, dim: usize, bits: usize, max_level: usize, nwant: usize) -> Lattice {
        let mut distinct = raw.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let points: Vec<i8> = raw
            .iter()
            .map(|v| 2 * distinct.binary_search(v).unwrap_or(0) as i8 + 1)
            .collect();
        let n = points.len() / dim;
        let mut map = vec![-1i32; 1 << (bits * dim)];
        for (j, p) in points.chunks_exact(dim).enumerate() {
            let key = p
                .iter()
                .enumerate()
                .fold(0, |k, (i, &v)| k | (((v - 1) / 2) as usize) << (bits * i));
            map[key] = j as i32;
        }
        let mut neighbours = Vec::new();
        let mut dist = vec![0i32; n];
        let mask = (1 << bits) - 1;
        for key in 0..map.len() {
            let level = |i: usize| (key >> (bits * i)) & mask;
            if map[key] >= 0 || (0..dim).any(|i| level(i) > max_level) {
                continue;
            }
            for (j, p) in points.chunks_exact(dim).enumerate() {
                dist[j] = (0..dim)
                    .map(|i| {
                        let d = p[i] as i32 - (2 * level(i) as i32 + 1);
                        d * d
                    })
                    .sum();
            }
            // The nwant smallest distinct distances, then every point at one of them, in (distance, index) order.
            let mut levels: Vec<i32> = Vec::with_capacity(nwant);
            for _ in 0..nwant {
                let floor = levels.last().copied().unwrap_or(i32::MIN);
                match dist.iter().copied().filter(|&d| d > floor).min() {
                    Some(d) => levels.push(d),
                    None => break,
                }
            }
            let offset = neighbours.len();
            neighbours.push(0u16);
            for &d in &levels {
                neighbours.extend((0..n).filter(|&j| dist[j] == d).map(|j| j as u16));
            }
            neighbours[offset] = (neighbours.len() - offset - 1) as u16;
            map[key] = -(offset as i32 + 1);
        }
        Lattice {
            dim,
            bits,
            points,
            map,
            neighbours,
        }
    }

    pub(crate) fn point(&self, j: usize) -> &[i8] {
        &self.points[j * self.dim..(j + 1) * self.dim]
    }

    fn key(&self, l: &[i8]) -> usize {
        l.iter()
            .enumerate()
            .fold(0, |k, (i, &v)| k | (v as usize) << (self.bits * i))
    }

    /// The grid index of a point given by its levels, or `None` when it is not on the grid.
    pub(crate) fn index(&self, l: &[i8]) -> Option<usize> {
        let g = self.map[self.key(l)];
        (g >= 0).then_some(g as usize)
    }

    /// The neighbour list of an off-grid point.
    fn neighbours(&self, l: &[i8]) -> &[u16] {
        let g = self.map[self.key(l)];
        if g >= 0 {
            return &[];
        }
        let off = (-(g + 1)) as usize;
        let n = self.neighbours[off] as usize;
        &self.neighbours[off + 1..off + 1 + n]
    }

    /// `iq2_find_best_neighbour`/`iq3_find_best_neighbour`/`iq1_find_best_neighbour2`: the neighbour of the
    /// off-grid point `l` closest to `xval` at `scale` (weighted by `w`), a grid value `p` standing for
    /// `value(p)`; writes its levels into `l` and returns its index (the first neighbour when no distance is
    /// below `f32::MAX`, where ggml asserts).
    pub(crate) fn best_neighbour(
        &self,
        xval: &[f32],
        w: &[f32],
        scale: f32,
        value: impl Fn(i8) -> f32,
        l: &mut [i8],
    ) -> usize {
        let list = self.neighbours(l);
        let mut best_d2 = f32::MAX;
        let mut grid_index = list.first().map_or(0, |&j| j as usize);
        for &j in list {
            let pg = self.point(j as usize);
            let mut d2 = 0f32;
            for i in 0..self.dim {
                let diff = scale * value(pg[i]) - xval[i];
                d2 += w[i] * diff * diff;
            }
            if d2 < best_d2 {
                best_d2 = d2;
                grid_index = j as usize;
            }
        }
        self.set_levels(grid_index, l);
        grid_index
    }

    fn set_levels(&self, j: usize, l: &mut [i8]) {
        for (li, &p) in l.iter_mut().zip(self.point(j)) {
            *li = (p - 1) / 2;
        }
    }

    /// The grid index of `l`, or of its best neighbour (which then replaces `l`).
    fn snap(&self, xval: &[f32], w: &[f32], scale: f32, l: &mut [i8]) -> (usize, bool) {
        match self.index(l) {
            Some(g) => (g, true),
            None => (self.best_neighbour(xval, w, scale, |p| p as f32, l), false),
        }
    }
}

fn bytes_u64(grid: &[u64]) -> Vec<i8> {
    grid.iter()
        .flat_map(|g| g.to_le_bytes())
        .map(|b| b as i8)
        .collect()
}

fn bytes_u32(grid: &[u32]) -> Vec<i8> {
    grid.iter()
        .flat_map(|g| g.to_le_bytes())
        .map(|b| b as i8)
        .collect()
}

/// The lattices, one per grid (ggml's `iq2_data`/`iq3_data`), built on first use.
#[derive(Clone, Copy)]
pub(crate) enum Grid {
    Iq2xxs,
    Iq2xs,
    Iq2s,
    Iq1s,
    Iq3xxs,
    Iq3s,
}

pub(crate) fn lattice(g: Grid) -> &'static Lattice {
    static LATTICES: [OnceLock<Lattice>; 6] = [const { OnceLock::new() }; 6];
    LATTICES[g as usize].get_or_init(|| match g {
        Grid::Iq2xxs => Lattice::new(bytes_u64(&IQ2XXS_GRID), 8, 2, 2, 2),
        Grid::Iq2xs => Lattice::new(bytes_u64(&IQ2XS_GRID), 8, 2, 2, 2),
        Grid::Iq2s => Lattice::new(bytes_u64(&IQ2S_GRID), 8, 2, 2, 1),
        Grid::Iq1s => Lattice::new(bytes_u64(&IQ1S_GRID), 8, 2, 2, 3),
        Grid::Iq3xxs => Lattice::new(bytes_u32(&IQ3XXS_GRID), 4, 3, 7, 2),
        Grid::Iq3s => Lattice::new(bytes_u32(&IQ3S_GRID), 4, 3, 7, 3),
    })
}

/// C's `MAX(a, b)`: `a > b ? a : b`.
pub(crate) fn cmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `sum x^2 / 256` (`sigma2` of IQ2_XXS/IQ2_XS) times `factor` (2 for the others), as ggml computes it.
pub(crate) fn sigma2(x: &[f32], factor: f32) -> f32 {
    let mut s = 0f32;
    for &v in &x[..QK_K] {
        s += v * v;
    }
    factor * s / QK_K as f32
}

/// `weight[i] = qw[i] * sqrt(sigma2 + x[i]^2)`, or the type's weighting without an importance matrix.
pub(crate) fn weigh(
    x: &[f32],
    qw: Option<&[f32]>,
    sigma2: f32,
    plain: fn(f32, f32) -> f32,
    w: &mut [f32],
) {
    for i in 0..w.len() {
        w[i] = match qw {
            Some(q) => q[i] * (sigma2 + x[i] * x[i]).sqrt(),
            None => plain(sigma2, x[i]),
        };
    }
}

/// Absolute values of a group of 8 and their sign bits; with `parity`, an odd number of negatives is made
/// even by flipping the value of least weight (so 7 bits suffice), as IQ2_XXS/IQ2_XS/IQ3_XXS store signs.
fn signs8(x: &[f32], w: &[f32], parity: bool, xval: &mut [f32]) -> u8 {
    let (mut s, mut nflip) = (0u8, 0);
    for i in 0..8 {
        if x[i] >= 0.0 {
            xval[i] = x[i];
        } else {
            xval[i] = -x[i];
            nflip += 1;
            s |= 1 << i;
        }
    }
    if parity && nflip % 2 == 1 {
        let mut imin = 0;
        let mut min = w[0] * x[0] * x[0];
        for i in 1..8 {
            let ax = w[i] * x[i] * x[i];
            if ax < min {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= 1 << imin;
    }
    if parity {
        s & 127
    } else {
        s
    }
}

/// `sum w x q` and `sum w q^2` for levels `l` (q = 2l + 1).
fn odd_sums(w: &[f32], xval: &[f32], l: &[i8]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for i in 0..w.len() {
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w[i] * xval[i] * q;
        sumq2 += w[i] * q * q;
    }
    (sumqx, sumq2)
}

/// Rounds `xval` at inverse scale `id` to levels in [0, kmax) (`nearest_int(0.5 (id x - 1))`).
fn round_levels(xval: &[f32], id: f32, kmax: i32, l: &mut [i8]) {
    for i in 0..l.len() {
        l[i] = nearest_int(0.5 * (id * xval[i] - 1.0)).clamp(0, kmax - 1) as i8;
    }
}

/// Which sub-groups the final pass at the chosen scale re-rounds.
#[derive(Clone, Copy, PartialEq)]
enum Refine {
    /// Every sub-group, whenever the scale is positive (IQ2_XXS).
    Always,
    /// Every sub-group, when one of them was off the grid (IQ3_S).
    AllIfAnyOff,
    /// Only the sub-groups that were off the grid (IQ2_XS, IQ2_S, IQ3_XXS).
    OffGrid,
}

/// The scale search shared by IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS/IQ3_S for one group: try the inverse scales
/// `(2 kmax - 1 + is * step) / max` for `is` in `-nsteps..=nsteps`, snapping each sub-group to the grid, keep
/// the best weighted fit, then re-round at that scale. Returns the scale and writes the levels into `l` and the
/// grid indices into `idx`.
#[allow(clippy::too_many_arguments)]
fn search_group(
    lat: &Lattice,
    xval: &[f32],
    weight: &[f32],
    waux: &[f32],
    kmax: i32,
    max: f32,
    start_scale: f32,
    nsteps: i32,
    step: f32,
    refine: Refine,
    l: &mut [i8],
    idx: &mut [usize],
) -> f32 {
    let (n, dim) = (xval.len(), lat.dim);
    let mut laux = [0i8; 32];
    let mut on_grid = [refine != Refine::AllIfAnyOff; 8];
    let mut on_grid_aux = [true; 8];
    let mut best = 0f32;
    let mut scale = start_scale;
    for is in -nsteps..=nsteps {
        let id = ((2 * kmax - 1) as f32 + is as f32 * step) / max;
        let this_scale = 1.0 / id;
        for k in 0..n / dim {
            let r = k * dim..(k + 1) * dim;
            round_levels(&xval[r.clone()], id, kmax, &mut laux[r.clone()]);
            on_grid_aux[k] = lat
                .snap(&xval[r.clone()], &waux[r.clone()], this_scale, &mut laux[r])
                .1;
        }
        let (sumqx, sumq2) = odd_sums(weight, xval, &laux[..n]);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l[..n].copy_from_slice(&laux[..n]);
            on_grid = on_grid_aux;
        }
    }
    let any_off = on_grid[..n / dim].iter().any(|&g| !g);
    if scale > 0.0 && (refine == Refine::Always || any_off) {
        let id = 1.0 / scale;
        for k in 0..n / dim {
            if refine == Refine::OffGrid && on_grid[k] {
                continue;
            }
            let r = k * dim..(k + 1) * dim;
            round_levels(&xval[r.clone()], id, kmax, &mut l[r.clone()]);
            lat.snap(&xval[r.clone()], &waux[r.clone()], scale, &mut l[r]);
        }
        let (sumqx, sumq2) = odd_sums(weight, xval, &l[..n]);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    for k in 0..n / dim {
        // Every sub-group's levels are a grid point by now (ggml aborts otherwise).
        idx[k] = lat.index(&l[k * dim..(k + 1) * dim]).unwrap_or(0);
    }
    scale
}

/// The 4-bit group scale `nearest_int(0.5 (id s - 1))` clamped to [0, top].
pub(crate) fn scale_level(id: f32, s: f32, top: i32) -> u32 {
    nearest_int(0.5 * (id * s - 1.0)).clamp(0, top) as u32
}

/// The per-group results of the IQ2/IQ3 searches of one super-block.
struct Groups {
    scales: [f32; 16],
    signs: [[u8; 4]; 16],
    idx: [[usize; 8]; 16],
    /// Whether the group was all below the type's threshold (nothing written for it).
    empty: [bool; 16],
    max_scale: f32,
}

/// Parameters of the IQ2/IQ3 group search that differ between the types.
struct Spec {
    grid: Grid,
    group: usize,
    parity: bool,
    sigma_factor: f32,
    plain: fn(f32, f32) -> f32,
    eps: f32,
    nsteps: i32,
    step: f32,
    refine: Refine,
    kmax: i32,
    /// IQ2_XXS starts from `make_qp_quants` and scales relative to its effective maximum.
    qp_start: bool,
}

/// The IQ2/IQ3 search parameters, one row per type (ggml's constants in each `_impl`).
const IQ2_XXS: Spec = Spec {
    grid: Grid::Iq2xxs,
    group: 32,
    parity: true,
    sigma_factor: 1.0,
    plain: xsq,
    eps: GROUP_MAX_EPS,
    nsteps: 6,
    step: 0.1,
    refine: Refine::Always,
    kmax: 3,
    qp_start: true,
};
const IQ2_XS: Spec = Spec {
    grid: Grid::Iq2xs,
    group: 16,
    parity: true,
    sigma_factor: 1.0,
    plain: xsq,
    eps: GROUP_MAX_EPS,
    nsteps: 9,
    step: 0.1,
    refine: Refine::OffGrid,
    kmax: 3,
    qp_start: false,
};
const IQ2_S: Spec = Spec {
    grid: Grid::Iq2s,
    group: 16,
    parity: false,
    sigma_factor: 2.0,
    plain: |s2, x| 0.25 * s2 + x * x,
    eps: GROUP_MAX_EPS_IQ2_S,
    nsteps: 9,
    step: 0.1,
    refine: Refine::OffGrid,
    kmax: 3,
    qp_start: false,
};
const IQ3_XXS: Spec = Spec {
    grid: Grid::Iq3xxs,
    group: 32,
    parity: true,
    sigma_factor: 2.0,
    plain: xsq,
    eps: GROUP_MAX_EPS_IQ3_XXS,
    nsteps: 15,
    step: 0.2,
    refine: Refine::OffGrid,
    kmax: 8,
    qp_start: false,
};
const IQ3_S: Spec = Spec {
    grid: Grid::Iq3s,
    group: 32,
    parity: false,
    sigma_factor: 2.0,
    plain: xsq,
    eps: 0.0,
    nsteps: 9,
    step: 0.2,
    refine: Refine::AllIfAnyOff,
    kmax: 8,
    qp_start: false,
};

fn search_superblock(spec: &Spec, x: &[f32], qw: Option<&[f32]>) -> Groups {
    let lat = lattice(spec.grid);
    let mut g = Groups {
        scales: [0.0; 16],
        signs: [[0; 4]; 16],
        idx: [[0; 8]; 16],
        empty: [false; 16],
        max_scale: 0.0,
    };
    let s2 = sigma2(x, spec.sigma_factor);
    let n = spec.group;
    let (mut weight, mut waux, mut xval) = ([0f32; 32], [0f32; 32], [0f32; 32]);
    let mut l = [0i8; 32];
    for ib in 0..QK_K / n {
        let xb = &x[n * ib..n * (ib + 1)];
        weigh(
            xb,
            qw.map(|q| &q[n * ib..n * (ib + 1)]),
            s2,
            spec.plain,
            &mut weight[..n],
        );
        for i in 0..n {
            waux[i] = weight[i].sqrt();
        }
        for k in 0..n / 8 {
            g.signs[ib][k] = signs8(
                &xb[8 * k..],
                &weight[8 * k..],
                spec.parity,
                &mut xval[8 * k..8 * k + 8],
            );
        }
        let max = xval[1..n].iter().fold(xval[0], |m, &v| cmax(m, v));
        l[..n].fill(0);
        let too_small = if spec.eps == 0.0 {
            max == 0.0
        } else {
            max < spec.eps
        };
        if too_small {
            g.empty[ib] = true;
            continue;
        }
        let (start, max) = if spec.qp_start {
            let mut lq = [0u8; 32];
            let s = make_qp_quants(n, spec.kmax + 1, &xval[..n], &mut lq, &weight[..n]);
            let eff_max = s * spec.kmax as f32;
            if eff_max <= 0.0 {
                g.empty[ib] = true;
                continue;
            }
            (s, eff_max)
        } else {
            (max / (2 * spec.kmax - 1) as f32, max)
        };
        let mut scale = search_group(
            lat,
            &xval[..n],
            &weight[..n],
            &waux[..n],
            spec.kmax,
            max,
            start,
            spec.nsteps,
            spec.step,
            spec.refine,
            &mut l,
            &mut g.idx[ib],
        );
        if scale < 0.0 {
            scale = -scale;
            let m = if spec.parity { 127 } else { 255 };
            for s in &mut g.signs[ib][..n / 8] {
                *s = !*s & m;
            }
        }
        g.scales[ib] = scale;
        g.max_scale = cmax(g.max_scale, scale);
    }
    g
}

/// Writes the super-block scale `max_scale / 31` (times ggml's fudge factor for the type) and returns the
/// inverse of the unfudged scale, which the 4-bit group scales are rounded with.
fn super_scale(y: &mut [u8], max_scale: f32, fudge: f32) -> f32 {
    let d = max_scale / 31.0;
    put_f16(y, 0, d * fudge);
    1.0 / d
}

pub(crate) fn xsq(_: f32, x: f32) -> f32 {
    x * x
}

/// IQ2_XXS (`quantize_row_iq2_xxs_impl`; ggml requires an importance matrix, the caller checks).
pub(crate) fn iq2_xxs(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let g = search_superblock(&IQ2_XXS, x, qw);
    y.fill(0);
    if g.max_scale == 0.0 {
        return;
    }
    let id = super_scale(y, g.max_scale, 1.0);
    for ib in 0..8 {
        let (mut a, mut b) = (0u32, 0u32);
        if !g.empty[ib] {
            for k in 0..4 {
                a |= (g.idx[ib][k] as u32) << (8 * k);
                b |= (g.signs[ib][k] as u32) << (7 * k);
            }
        }
        b |= scale_level(id, g.scales[ib], 15) << 28;
        y[2 + 8 * ib..6 + 8 * ib].copy_from_slice(&a.to_le_bytes());
        y[6 + 8 * ib..10 + 8 * ib].copy_from_slice(&b.to_le_bytes());
    }
}

/// IQ2_XS (`quantize_row_iq2_xs_impl`; ggml requires an importance matrix, the caller checks).
pub(crate) fn iq2_xs(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let g = search_superblock(&IQ2_XS, x, qw);
    y.fill(0);
    if g.max_scale == 0.0 {
        return;
    }
    let id = super_scale(y, g.max_scale, 1.0);
    for ib in 0..16 {
        if !g.empty[ib] {
            for k in 0..2 {
                let v = g.idx[ib][k] as u16 | (g.signs[ib][k] as u16) << 9;
                let at = 2 + 2 * (2 * ib + k);
                y[at..at + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        y[66 + ib / 2] |= (scale_level(id, g.scales[ib], 15) << (4 * (ib % 2))) as u8;
    }
}

/// IQ2_S (`quantize_row_iq2_s_impl`).
pub(crate) fn iq2_s(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let g = search_superblock(&IQ2_S, x, qw);
    y.fill(0);
    for ib in 0..16 {
        if g.empty[ib] {
            continue;
        }
        for k in 0..2 {
            let i8 = 2 * ib + k;
            let gi = g.idx[ib][k];
            y[2 + i8] = gi as u8;
            y[66 + i8 / 4] |= ((gi >> 8) << (2 * (i8 % 4))) as u8;
            y[2 + 32 + i8] = g.signs[ib][k];
        }
    }
    if g.max_scale == 0.0 {
        return;
    }
    let id = super_scale(y, g.max_scale, 0.9875);
    for ib in 0..16 {
        y[74 + ib / 2] |= (scale_level(id, g.scales[ib], 15) << (4 * (ib % 2))) as u8;
    }
}

/// IQ3_XXS (`quantize_row_iq3_xxs_impl` with the 256-point grid).
pub(crate) fn iq3_xxs(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let g = search_superblock(&IQ3_XXS, x, qw);
    y.fill(0);
    if g.max_scale == 0.0 {
        return;
    }
    let id = super_scale(y, g.max_scale, 1.0125);
    for ib in 0..8 {
        let mut ss = 0u32;
        if !g.empty[ib] {
            for k in 0..8 {
                y[2 + 8 * ib + k] = g.idx[ib][k] as u8;
            }
            let s = &g.signs[ib];
            ss = s[0] as u32 | (s[1] as u32) << 7 | (s[2] as u32) << 14 | (s[3] as u32) << 21;
        }
        ss |= scale_level(id, g.scales[ib], 15) << 28;
        y[66 + 4 * ib..70 + 4 * ib].copy_from_slice(&ss.to_le_bytes());
    }
}

/// IQ3_S (`quantize_row_iq3_s_impl`, groups of 32). As in ggml, an all-zero group does not advance the index
/// and sign write positions, so the following groups' indices and signs move up by one group.
pub(crate) fn iq3_s(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let g = search_superblock(&IQ3_S, x, qw);
    y.fill(0);
    let (mut qs, mut signs) = (2usize, 2 + 64 + 8);
    for ib in 0..8 {
        if g.empty[ib] {
            continue;
        }
        for k in 0..8 {
            let gi = g.idx[ib][k];
            y[qs + k] = gi as u8;
            y[66 + (ib * 8 + k) / 8] |= ((gi >> 8) << ((ib * 8 + k) % 8)) as u8;
        }
        qs += 8;
        y[signs..signs + 4].copy_from_slice(&g.signs[ib]);
        signs += 4;
    }
    if g.max_scale == 0.0 {
        return;
    }
    let id = super_scale(y, g.max_scale, 1.033);
    for ib in (0..8).step_by(2) {
        let l1 = scale_level(id, g.scales[ib], 15);
        let l2 = scale_level(id, g.scales[ib + 1], 15);
        y[106 + ib / 2] = (l1 | (l2 << 4)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grids' levels derived from the dequantization tables equal the first entries of ggml's
    /// `kgrid_*` index tables (ggml-quants.c), which pack 2 or 3 bits per value.
    #[test]
    fn lattice_points_match_ggml_kgrid_tables() {
        let cases: [(Grid, usize, &[u16]); 6] = [
            (
                Grid::Iq2xxs,
                2,
                &[0, 2, 5, 8, 10, 17, 20, 32, 34, 40, 42, 65],
            ),
            (
                Grid::Iq2xs,
                2,
                &[0, 2, 5, 8, 10, 17, 20, 22, 25, 32, 34, 37],
            ),
            (Grid::Iq2s, 2, &[0, 2, 5, 8, 10, 17, 20, 22, 25, 32, 34, 37]),
            (Grid::Iq1s, 2, &[0, 2, 5, 8, 10, 17, 21, 32, 34, 40, 42, 69]),
            (
                Grid::Iq3xxs,
                3,
                &[0, 2, 4, 9, 11, 15, 16, 18, 25, 34, 59, 61],
            ),
            (Grid::Iq3s, 3, &[0, 1, 2, 5, 7, 8, 9, 10, 12, 14, 16, 17]),
        ];
        for (g, bits, want) in cases {
            let lat = lattice(g);
            assert_eq!(lat.bits, bits);
            for (j, &k) in want.iter().enumerate() {
                let l: Vec<i8> = lat.point(j).iter().map(|p| (p - 1) / 2).collect();
                assert_eq!(lat.key(&l), k as usize, "grid {} point {j}", g as usize);
            }
        }
    }

    #[test]
    fn off_grid_points_have_neighbours_on_the_grid() {
        for g in [
            Grid::Iq2xxs,
            Grid::Iq2s,
            Grid::Iq1s,
            Grid::Iq3xxs,
            Grid::Iq3s,
        ] {
            let lat = lattice(g);
            let l = vec![1i8; lat.dim];
            if lat.index(&l).is_none() {
                assert!(!lat.neighbours(&l).is_empty());
            }
            let n = lat.points.len() / lat.dim;
            for key in 0..lat.map.len() {
                let m = lat.map[key];
                if m < -1 {
                    let off = (-(m + 1)) as usize;
                    let len = lat.neighbours[off] as usize;
                    assert!(len > 0);
                    assert!(lat.neighbours[off + 1..off + 1 + len]
                        .iter()
                        .all(|&j| (j as usize) < n));
                }
            }
        }
    }
}

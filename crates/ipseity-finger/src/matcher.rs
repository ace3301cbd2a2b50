//! Minutiae matching: bit-based Minutia Cylinder-Code (MCC) with a relaxation consolidation,
//! and a fixed-length descriptor for 1:N candidate pre-filtering.
//!
//! Each minutia gets a *cylinder* (Cappelli, Ferrara and Maltoni, 2010): a disc of radius
//! [`MatcherConfig::radius`] around it, in the minutia's own frame, cut into `NS × NS` cells
//! and [`ND`] direction layers. A cell's bit says whether some neighbouring minutia, near
//! that cell, points in that layer's direction relative to the centre minutia. Because the
//! frame follows the minutia, cylinders do not change with the finger's rotation or
//! translation, and because every neighbour spreads over nearby cells, they tolerate
//! moderate distortion. Cells outside the template's useful area (the convex hull of its
//! minutiae, dilated) are marked invalid so that partial overlap is not mistaken for
//! disagreement; two cylinders are compared on the cells valid in both.
//!
//! Comparing two templates ([`score`]) is the hot path and works on [`Prepared`] templates:
//! 1. local similarities: for every pair of minutiae whose directions differ by less than
//!    a right angle, one minus the normalised Hamming distance of the cylinders (popcounts
//!    over packed `u64`s);
//! 2. consolidation: the best pairs, one-to-one, are re-weighted by how many other pairs
//!    agree with them on distances and angles (relaxation); the score is the mean weight of
//!    the pairs that kept their weight best. Geometric agreement is what separates a true
//!    mate from an impostor whose ridge flow merely looks alike.
//!
//! [`descriptor`] summarises a template as a histogram of minutia-pair features (distance and
//! both directions relative to the joining segment), invariant to rotation and translation,
//! for a cosine-similarity pre-filter before [`score`].

use crate::FingerTemplate;
#[cfg(test)]
use crate::{FingerPosition, Minutia, MinutiaKind};
use std::cell::RefCell;
use std::f32::consts::{PI, TAU};
use std::sync::Arc;

mod cylinder;
mod descriptor;
#[cfg(test)]
pub(crate) mod synthetic;
#[cfg(test)]
mod tests;

use cylinder::Cylinder;
pub use descriptor::{descriptor, DESCRIPTOR_DIM};

/// Matcher parameters. [`Default`] is tuned for 500-ppi templates.
#[derive(Debug, Clone, PartialEq)]
pub struct MatcherConfig {
    /// Cylinder radius, pixels.
    pub radius: f32,
    /// Spatial spread of a neighbour's contribution (Gaussian sigma), pixels.
    pub sigma_s: f32,
    /// Directional spread of a neighbour's contribution (Gaussian sigma), radians.
    pub sigma_d: f32,
    /// A cell's bit is set when the summed contribution reaches this.
    pub mu_psi: f32,
    /// Dilation of the minutiae's convex hull that bounds valid cells, pixels.
    pub omega: f32,
    /// A cylinder is kept only if this fraction of its disc's cells is valid.
    pub min_valid_cells: f32,
    /// A cylinder is kept only if at least this many other minutiae lie near it.
    pub min_neighbours: usize,
    /// Two cylinders are compared only if this fraction of the disc is valid in both.
    pub min_common_cells: f32,
    /// Most pairs entering the relaxation.
    pub max_relax_pairs: usize,
    /// Relaxation iterations.
    pub relax_iterations: usize,
    /// Weight of a pair's own value in each relaxation step (the rest is its support).
    pub relax_keep: f32,
    /// Fewest pairs averaged into the score.
    pub min_score_pairs: usize,
    /// Most pairs averaged into the score.
    pub max_score_pairs: usize,
    /// Pairs' distance disagreement fully tolerated, pixels, plus this fraction of the
    /// distance (`dist_tol_rel`) for elastic distortion.
    pub dist_tol: f32,
    /// Disagreement beyond which two pairs are incompatible, pixels (plus the same
    /// relative allowance).
    pub dist_max: f32,
    /// Relative part of the distance tolerance, per pixel of distance.
    pub dist_tol_rel: f32,
    /// Angular disagreement fully tolerated, radians.
    pub angle_tol: f32,
    /// Angular disagreement beyond which two pairs are incompatible, radians.
    pub angle_max: f32,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            radius: 70.0,
            sigma_s: 28.0 / 3.0,
            sigma_d: 2.0 * PI / 9.0,
            mu_psi: 0.01,
            omega: 50.0,
            min_valid_cells: 0.75,
            min_neighbours: 2,
            min_common_cells: 0.6,
            max_relax_pairs: 24,
            relax_iterations: 5,
            relax_keep: 0.5,
            min_score_pairs: 4,
            max_score_pairs: 12,
            dist_tol: 3.0,
            dist_max: 10.0,
            dist_tol_rel: 0.06,
            angle_tol: 10.0_f32.to_radians(),
            angle_max: 30.0_f32.to_radians(),
        }
    }
}

/// A minutia as the matcher sees it: a y-up frame (so angles are the usual
/// counter-clockwise ones) and its direction as a unit vector.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    x: f32,
    y: f32,
    angle: f32,
    cos: f32,
    sin: f32,
}

/// Per-comparison constants derived from the configuration once, at [`prepare`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Consolidation {
    max_relax_pairs: usize,
    relax_iterations: usize,
    relax_keep: f32,
    min_score_pairs: usize,
    max_score_pairs: usize,
    dist_tol: f32,
    dist_max: f32,
    dist_tol_rel: f32,
    cos_angle_tol: f32,
    cos_angle_max: f32,
    min_common_cells: u32,
}

/// A template ready for [`score`]: cylinders and geometry, sorted by minutia direction.
/// Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Prepared {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Minutiae with a valid cylinder, by increasing angle.
    points: Vec<Point>,
    /// Their angles, same order (the kernel's search keys).
    angles: Vec<f32>,
    /// Their cylinders, same order.
    cylinders: Vec<Cylinder>,
    /// Every minutia (with or without a cylinder), for the descriptor.
    all: Vec<Point>,
    /// Minutiae in the template (before dropping invalid cylinders).
    n_minutiae: usize,
    consolidation: Consolidation,
    /// Orders two templates so that `score(a, b)` and `score(b, a)` do the same work.
    key: u64,
}

/// Prepares a template for matching. Non-finite or absurd coordinates are ignored; at most
/// [`FingerTemplate::MAX_MINUTIAE`] minutiae are used.
pub fn prepare(t: &FingerTemplate, cfg: &MatcherConfig) -> Prepared {
    let all: Vec<Point> = t
        .minutiae
        .iter()
        .filter(|m| {
            m.x.is_finite()
                && m.y.is_finite()
                && m.angle.is_finite()
                && m.x.abs() < 1.0e5
                && m.y.abs() < 1.0e5
        })
        .take(FingerTemplate::MAX_MINUTIAE)
        .map(|m| {
            let angle = crate::minutia::wrap_angle(m.angle);
            Point {
                x: m.x,
                y: -m.y,
                angle,
                cos: angle.cos(),
                sin: angle.sin(),
            }
        })
        .collect();
    let mut built = cylinder::build_all(&all, cfg);
    built.sort_by(|a, b| a.0.angle.total_cmp(&b.0.angle));
    let (points, cylinders): (Vec<Point>, Vec<Cylinder>) = built.into_iter().unzip();
    let key = template_key(&cylinders, points.len());
    let consolidation = Consolidation {
        max_relax_pairs: cfg.max_relax_pairs.clamp(2, MAX_RELAX),
        relax_iterations: cfg.relax_iterations.min(50),
        relax_keep: cfg.relax_keep.clamp(0.0, 1.0),
        min_score_pairs: cfg.min_score_pairs.max(1),
        max_score_pairs: cfg.max_score_pairs.max(cfg.min_score_pairs.max(1)),
        dist_tol: cfg.dist_tol,
        dist_max: cfg.dist_max.max(cfg.dist_tol + 1.0e-3),
        dist_tol_rel: cfg.dist_tol_rel,
        cos_angle_tol: cfg.angle_tol.cos(),
        cos_angle_max: cfg.angle_max.cos().min(cfg.angle_tol.cos() - 1.0e-4),
        min_common_cells: (cfg.min_common_cells * cylinder::disc_cells() as f32).ceil() as u32,
    };
    Prepared {
        inner: Arc::new(Inner {
            n_minutiae: all.len(),
            angles: points.iter().map(|p| p.angle).collect(),
            all,
            points,
            cylinders,
            consolidation,
            key,
        }),
    }
}

impl Prepared {
    /// Minutiae whose cylinder is valid (the ones [`score`] can pair).
    pub fn matchable(&self) -> usize {
        self.inner.points.len()
    }
}

fn template_key(cylinders: &[Cylinder], n: usize) -> u64 {
    // FNV-1a over the cylinder bits: any deterministic total order on templates works.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ n as u64;
    for c in cylinders {
        for w in c.words() {
            h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Most pairs the relaxation can hold (bounds the scratch).
const MAX_RELAX: usize = 64;

/// One candidate correspondence: minutia `i` of the first template, `j` of the second.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    sim: f32,
    i: u16,
    j: u16,
}

#[derive(Debug, Default)]
struct Scratch {
    pairs: Vec<Pair>,
    chosen: Vec<Pair>,
    rho: Vec<f32>,
    lambda: Vec<f32>,
    next: Vec<f32>,
    eff: Vec<(f32, f32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Similarity of two prepared templates, in `[0, 1]`; higher is more alike. Exactly
/// symmetric. Templates prepared with different configurations are compared with the
/// first argument's consolidation settings after ordering, so use one configuration.
pub fn score(a: &Prepared, b: &Prepared) -> f32 {
    let (a, b) = if (a.inner.key, a.inner.points.len()) <= (b.inner.key, b.inner.points.len()) {
        (&a.inner, &b.inner)
    } else {
        (&b.inner, &a.inner)
    };
    if a.points.len() < 2 || b.points.len() < 2 {
        return 0.0;
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => score_with(a, b, &mut s),
        // Only reachable if score were re-entered on this thread; stay correct anyway.
        Err(_) => score_with(a, b, &mut Scratch::default()),
    })
}

fn score_with(a: &Inner, b: &Inner, s: &mut Scratch) -> f32 {
    let c = &a.consolidation;
    s.pairs.clear();
    cylinder::local_similarities(
        &a.points,
        &a.cylinders,
        &b.angles,
        &b.cylinders,
        c.min_common_cells,
        &mut s.pairs,
    );
    if s.pairs.is_empty() {
        return 0.0;
    }
    let n_relax = a
        .points
        .len()
        .min(b.points.len())
        .min(c.max_relax_pairs)
        .min(MAX_RELAX);
    select_one_to_one(&mut s.pairs, n_relax, &mut s.chosen);
    let r = s.chosen.len();
    if r == 0 {
        return 0.0;
    }
    relax(a, b, c, s);
    // Score pairs: the number grows with the smaller template (the paper's sigmoid).
    let n_min = a.n_minutiae.min(b.n_minutiae) as f32;
    let z = 1.0 / (1.0 + (-0.4 * (n_min - 20.0)).exp());
    let n_p =
        c.min_score_pairs + ((z * (c.max_score_pairs - c.min_score_pairs) as f32).round() as usize);
    s.eff.clear();
    for (k, p) in s.chosen.iter().enumerate() {
        let lam = s.lambda.get(k).copied().unwrap_or(0.0);
        let e = if p.sim > 0.0 { lam / p.sim } else { 0.0 };
        s.eff.push((e, lam));
    }
    s.eff
        .sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(y.1.total_cmp(&x.1)));
    let total: f32 = s.eff.iter().take(n_p).map(|e| e.1).sum();
    // Fewer pairs than n_p count as zeros: a handful of agreeing minutiae is weak evidence.
    (total / n_p as f32).clamp(0.0, 1.0)
}

/// Keeps the best `n` pairs by similarity such that no minutia is used twice.
fn select_one_to_one(pairs: &mut [Pair], n: usize, chosen: &mut Vec<Pair>) {
    chosen.clear();
    let by_sim = |x: &Pair, y: &Pair| {
        y.sim
            .total_cmp(&x.sim)
            .then(x.i.cmp(&y.i))
            .then(x.j.cmp(&y.j))
    };
    let mut considered = 0usize;
    let mut used_a = [0u64; 4];
    let mut used_b = [0u64; 4];
    let is_used = |set: &[u64; 4], k: u16| {
        let k = usize::from(k);
        set.get(k / 64).is_some_and(|w| w >> (k % 64) & 1 == 1)
    };
    let mark = |set: &mut [u64; 4], k: u16| {
        let k = usize::from(k);
        if let Some(w) = set.get_mut(k / 64) {
            *w |= 1 << (k % 64);
        }
    };
    // Usually the best 4n pairs hold n disjoint ones; widen if not.
    let mut window = (4 * n).max(16);
    loop {
        let end = window.min(pairs.len());
        if end < pairs.len() {
            let rest = &mut pairs[considered..];
            let k = end - considered;
            rest.select_nth_unstable_by(k, by_sim);
        }
        if let Some(slice) = pairs.get_mut(considered..end) {
            slice.sort_unstable_by(by_sim);
            for p in slice.iter() {
                if chosen.len() >= n {
                    break;
                }
                if !is_used(&used_a, p.i) && !is_used(&used_b, p.j) {
                    mark(&mut used_a, p.i);
                    mark(&mut used_b, p.j);
                    chosen.push(*p);
                }
            }
        }
        considered = end;
        if chosen.len() >= n || considered >= pairs.len() {
            break;
        }
        window *= 2;
    }
}

/// Linear ramp: 1 at or below `lo`, 0 at or above `hi`.
#[inline]
fn ramp_down(v: f32, lo: f32, hi: f32) -> f32 {
    ((hi - v) / (hi - lo)).clamp(0.0, 1.0)
}

/// Linear ramp on cosines: 1 at or above `c_tol`, 0 at or below `c_max`.
#[inline]
fn ramp_cos(c: f32, c_tol: f32, c_max: f32) -> f32 {
    ((c - c_max) / (c_tol - c_max)).clamp(0.0, 1.0)
}

/// Compatibility of two correspondences (both in `[0, 1]`): do the two minutiae sit at the
/// same distance, with the same relative directions, in both templates?
#[inline]
fn compatibility(c: &Consolidation, ai: &Point, ak: &Point, bi: &Point, bk: &Point) -> f32 {
    let (vax, vay) = (ak.x - ai.x, ak.y - ai.y);
    let (vbx, vby) = (bk.x - bi.x, bk.y - bi.y);
    let da = (vax * vax + vay * vay).sqrt();
    let db = (vbx * vbx + vby * vby).sqrt();
    let mean = 0.5 * (da + db);
    let rel = c.dist_tol_rel * mean;
    let r1 = ramp_down((da - db).abs(), c.dist_tol + rel, c.dist_max + rel);
    if r1 == 0.0 || da < 1.0e-3 || db < 1.0e-3 {
        return 0.0;
    }
    // Relative direction of k seen from i, in each template: e_k * conj(e_i).
    let (za_re, za_im) = (
        ak.cos * ai.cos + ak.sin * ai.sin,
        ak.sin * ai.cos - ak.cos * ai.sin,
    );
    let (zb_re, zb_im) = (
        bk.cos * bi.cos + bk.sin * bi.sin,
        bk.sin * bi.cos - bk.cos * bi.sin,
    );
    let c2 = za_re * zb_re + za_im * zb_im;
    let r2 = ramp_cos(c2, c.cos_angle_tol, c.cos_angle_max);
    if r2 == 0.0 {
        return 0.0;
    }
    // Direction of the joining segment relative to each end's own direction.
    let inv = 1.0 / (da * db);
    let radial = |v: (f32, f32), w: (f32, f32), pa: &Point, pb: &Point| {
        // (v conj e_a) · conj(w conj e_b), real part, over |v||w|.
        let (ra, ia) = (v.0 * pa.cos + v.1 * pa.sin, v.1 * pa.cos - v.0 * pa.sin);
        let (rb, ib) = (w.0 * pb.cos + w.1 * pb.sin, w.1 * pb.cos - w.0 * pb.sin);
        (ra * rb + ia * ib) * inv
    };
    let c3 = radial((vax, vay), (vbx, vby), ai, bi);
    let c4 = radial((-vax, -vay), (-vbx, -vby), ak, bk);
    let r3 = ramp_cos(c3.min(c4), c.cos_angle_tol, c.cos_angle_max);
    r1 * r2 * r3
}

fn relax(a: &Inner, b: &Inner, c: &Consolidation, s: &mut Scratch) {
    let r = s.chosen.len();
    s.rho.clear();
    s.rho.resize(r * r, 0.0);
    for (p, pp) in s.chosen.iter().enumerate() {
        let (Some(ai), Some(bi)) = (
            a.points.get(usize::from(pp.i)),
            b.points.get(usize::from(pp.j)),
        ) else {
            continue;
        };
        for (q, qq) in s.chosen.iter().enumerate().skip(p + 1) {
            let (Some(ak), Some(bk)) = (
                a.points.get(usize::from(qq.i)),
                b.points.get(usize::from(qq.j)),
            ) else {
                continue;
            };
            let v = compatibility(c, ai, ak, bi, bk);
            if let Some(x) = s.rho.get_mut(p * r + q) {
                *x = v;
            }
            if let Some(x) = s.rho.get_mut(q * r + p) {
                *x = v;
            }
        }
    }
    s.lambda.clear();
    s.lambda.extend(s.chosen.iter().map(|p| p.sim));
    s.next.clear();
    s.next.resize(r, 0.0);
    let support_scale = if r > 1 {
        (1.0 - c.relax_keep) / (r - 1) as f32
    } else {
        0.0
    };
    for _ in 0..c.relax_iterations {
        for (p, row) in s.rho.chunks_exact(r).enumerate() {
            let support: f32 = row.iter().zip(&s.lambda).map(|(x, l)| x * l).sum();
            if let (Some(n), Some(l)) = (s.next.get_mut(p), s.lambda.get(p)) {
                *n = c.relax_keep * l + support_scale * support;
            }
        }
        std::mem::swap(&mut s.lambda, &mut s.next);
    }
}

/// Angle difference `a - b` wrapped into `[-π, π)`.
#[inline]
fn angle_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(TAU);
    if d >= PI {
        d - TAU
    } else {
        d
    }
}

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
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::f32::consts::{PI, TAU};
use std::sync::Arc;

mod cylinder;
mod descriptor;
#[cfg(test)]
pub(crate) mod synthetic;
#[cfg(test)]
mod tests;

use cylinder::{Cylinder, Cylinders};
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
    /// Pairs whose local similarity is at or below this never enter the consolidation.
    /// Off (0) by default: on synthetic impressions a floor of 0.3 changed nothing and 0.4
    /// doubled speed but raised FNMR at FMR 1e-3 from 10% to 22%, because impostors left
    /// with few pairs then get more relaxation support each.
    pub min_local_similarity: f32,
    /// Most minutiae given a cylinder: those nearest the centre of the template are kept.
    /// The local-similarity step costs the product of the two templates' counts, so this
    /// bounds comparison time; every minutia still contributes to its neighbours'
    /// cylinders and to the descriptor.
    pub max_cylinders: usize,
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
    /// Weight of the global pairing score (see [`score`]) in the final score, 0 to 1.
    pub global_weight: f32,
    /// Largest distance, pixels, between an aligned minutia and its mate in the global
    /// pairing.
    pub global_dist: f32,
    /// Largest direction difference, radians, between an aligned minutia and its mate.
    pub global_angle: f32,
    /// An aligned minutia counts as inside the other template's area when some minutia of
    /// that template lies within this distance, pixels.
    pub global_overlap: f32,
    /// Number of the relaxation's best pairs tried as anchors of the global alignment.
    pub global_anchors: usize,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            radius: 70.0,
            // The paper's 28/3 px and 0.01 suit 16 × 16 cells; with 8 × 8 cells a wider
            // spread and lower threshold measured better on synthetic impressions (bench
            // EER 6.0% -> 4.7%, FNMR at FMR 1e-3 16% -> 11%, 300 fingers).
            sigma_s: 12.0,
            sigma_d: 2.0 * PI / 9.0,
            mu_psi: 0.005,
            omega: 50.0,
            min_valid_cells: 0.75,
            min_neighbours: 2,
            min_common_cells: 0.6,
            min_local_similarity: 0.0,
            // 200 extracted fingers x 8 hard impressions: uncapped EER 0.46%, FNMR 0.73% /
            // 0.88% at FMR 1e-3 / 1e-4; 40 gave 0.46%, 0.75% / 0.93% and ~10-15% more
            // comparisons per second; 32 gave 0.61%, 1.00% / 1.18%.
            max_cylinders: 40,
            // 1,000 synthetic fingers: 24 pairs gave EER 3.9%, FNMR 10.3% / 15.8% at FMR
            // 1e-3 / 1e-4 and 86k comparisons per CPU-second; 16 pairs 4.5%, 10.0% / 14.2%
            // and 117k. The low-FMR operating points matter more than the EER.
            max_relax_pairs: 16,
            relax_iterations: 5,
            relax_keep: 0.5,
            min_score_pairs: 4,
            max_score_pairs: 12,
            dist_tol: 3.0,
            dist_max: 10.0,
            dist_tol_rel: 0.06,
            angle_tol: 10.0_f32.to_radians(),
            angle_max: 30.0_f32.to_radians(),
            global_weight: 0.8,
            global_dist: 10.0,
            global_angle: 30.0_f32.to_radians(),
            global_overlap: 40.0,
            global_anchors: 3,
        }
    }
}

impl MatcherConfig {
    /// Applies `name=value,name=value` overrides (angles in degrees), for tuning runs (the
    /// matcher bench's `MATCHER_CFG`, `examples/real_sweep`). Counts are truncated.
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, String> {
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item}: expected name=value"))?;
            let f: f32 = v.parse().map_err(|_| format!("{item}: not a number"))?;
            let n = f.max(0.0) as usize;
            match k {
                "radius" => self.radius = f,
                "sigma_s" => self.sigma_s = f,
                "sigma_d" => self.sigma_d = f,
                "mu_psi" => self.mu_psi = f,
                "omega" => self.omega = f,
                "min_valid_cells" => self.min_valid_cells = f,
                "min_neighbours" => self.min_neighbours = n,
                "min_common_cells" => self.min_common_cells = f,
                "min_local_similarity" => self.min_local_similarity = f,
                "max_cylinders" => self.max_cylinders = n,
                "max_relax_pairs" => self.max_relax_pairs = n,
                "relax_iterations" => self.relax_iterations = n,
                "relax_keep" => self.relax_keep = f,
                "min_score_pairs" => self.min_score_pairs = n,
                "max_score_pairs" => self.max_score_pairs = n,
                "dist_tol" => self.dist_tol = f,
                "dist_max" => self.dist_max = f,
                "dist_tol_rel" => self.dist_tol_rel = f,
                "angle_tol" => self.angle_tol = f.to_radians(),
                "angle_max" => self.angle_max = f.to_radians(),
                "global_weight" => self.global_weight = f,
                "global_dist" => self.global_dist = f,
                "global_angle" => self.global_angle = f.to_radians(),
                "global_overlap" => self.global_overlap = f,
                "global_anchors" => self.global_anchors = n,
                _ => return Err(format!("{k}: no such matcher setting")),
            }
        }
        Ok(self)
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
    min_local_similarity: f32,
    global_weight: f32,
    global_dist: f32,
    cos_global_angle: f32,
    global_overlap: f32,
    global_anchors: usize,
}

/// A template ready for [`score`]: cylinders and geometry, sorted by minutia direction.
/// Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Prepared {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Coords {
    x: Vec<f32>,
    y: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Lanes of the global pairing's loops; [`Coords`] is padded to a multiple.
const LANES: usize = 8;

impl Coords {
    /// Padded with minutiae far outside any image, which never pair and are never near.
    fn new(v: &[Point]) -> Self {
        let n = v.len().div_ceil(LANES) * LANES;
        let pad = |f: &dyn Fn(&Point) -> f32, fill: f32| {
            let mut out: Vec<f32> = v.iter().map(f).collect();
            out.resize(n, fill);
            out
        };
        Self {
            x: pad(&|p| p.x, 1.0e9),
            y: pad(&|p| p.y, 1.0e9),
            cos: pad(&|p| p.cos, 0.0),
            sin: pad(&|p| p.sin, 0.0),
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Minutiae with a valid cylinder, by increasing angle.
    points: Vec<Point>,
    /// Their angles, same order (the kernel's search keys).
    angles: Vec<f32>,
    /// Their cylinders, same order.
    cylinders: Cylinders,
    /// Every minutia (with or without a cylinder), for the descriptor.
    all: Vec<Point>,
    /// Every minutia again, one array per coordinate, so the global pairing's loops
    /// vectorise.
    coords: Coords,
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
    let cap = cfg.max_cylinders.max(2);
    if built.len() > cap && !all.is_empty() {
        let inv = 1.0 / all.len() as f32;
        let cx = all.iter().map(|p| p.x).sum::<f32>() * inv;
        let cy = all.iter().map(|p| p.y).sum::<f32>() * inv;
        let d2 = |p: &Point| (p.x - cx) * (p.x - cx) + (p.y - cy) * (p.y - cy);
        built.sort_by(|a, b| d2(&a.0).total_cmp(&d2(&b.0)));
        built.truncate(cap);
    }
    built.sort_by(|a, b| a.0.angle.total_cmp(&b.0.angle));
    let (points, cylinders): (Vec<Point>, Vec<Cylinder>) = built.into_iter().unzip();
    let cylinders = Cylinders::new(&cylinders);
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
        min_local_similarity: if cfg.min_local_similarity.is_finite() {
            cfg.min_local_similarity.max(0.0)
        } else {
            0.0
        },
        min_common_cells: (cfg.min_common_cells * cylinder::disc_cells() as f32).ceil() as u32,
        global_weight: if cfg.global_weight.is_finite() {
            cfg.global_weight.clamp(0.0, 1.0)
        } else {
            0.0
        },
        global_dist: cfg.global_dist.max(0.0),
        cos_global_angle: cfg.global_angle.cos(),
        global_overlap: cfg.global_overlap.max(0.0),
        global_anchors: cfg.global_anchors.clamp(1, MAX_RELAX),
    };
    Prepared {
        inner: Arc::new(Inner {
            n_minutiae: all.len(),
            coords: Coords::new(&all),
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

fn template_key(cylinders: &Cylinders, n: usize) -> u64 {
    // FNV-1a over the cylinder bits: any deterministic total order on templates works.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ n as u64;
    for w in cylinders.words() {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Most pairs the relaxation can hold (bounds the scratch).
const MAX_RELAX: usize = 64;

/// One candidate correspondence: minutia `i` of the first template, `j` of the second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Pair {
    sim: f32,
    i: u16,
    j: u16,
}

/// Packs a pair (positive similarity) into a `u64` whose ascending order is decreasing
/// similarity, then increasing `i`, then `j`: integer sorting is several times faster than
/// sorting structs with a float comparator, and the order is total, so results do not
/// depend on the sort algorithm.
#[inline(always)]
fn pair_key(sim: f32, i: u16, j: u16) -> u64 {
    (u64::from(!sim.to_bits()) << 32) | (u64::from(i) << 16) | u64::from(j)
}

#[inline]
fn unpack(key: u64) -> Pair {
    Pair {
        sim: f32::from_bits(!((key >> 32) as u32)),
        i: (key >> 16) as u16,
        j: key as u16,
    }
}

/// The chosen pairs' geometry, one array per coordinate so the compatibility loop
/// vectorises.
#[derive(Debug, Default)]
struct Geometry {
    ax: Vec<f32>,
    ay: Vec<f32>,
    ac: Vec<f32>,
    as_: Vec<f32>,
    bx: Vec<f32>,
    by: Vec<f32>,
    bc: Vec<f32>,
    bs: Vec<f32>,
}

#[derive(Debug, Default)]
struct Scratch {
    pairs: Vec<u64>,
    chosen: Vec<Pair>,
    selection: Selection,
    geometry: Geometry,
    rho: Vec<f32>,
    lambda: Vec<f32>,
    next: Vec<f32>,
    eff: Vec<u64>,
    /// Global pairing: per second-template minutia, the nearest aligned distance² and a
    /// penalty once it is paired.
    near: Vec<f32>,
    taken: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Similarity of two prepared templates, in `[0, 1]`; higher is more alike. Exactly
/// symmetric. Templates prepared with different configurations are compared with the
/// first argument's consolidation settings after ordering, so use one configuration.
pub fn score(a: &Prepared, b: &Prepared) -> f32 {
    let (a, b) = ordered(a, b);
    if a.points.len() < 2 || b.points.len() < 2 {
        return 0.0;
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => score_with(a, b, &mut s),
        // Only reachable if score were re-entered on this thread; stay correct anyway.
        Err(_) => score_with(a, b, &mut Scratch::default()),
    })
}

/// The two templates in the order [`score`] compares them.
fn ordered<'a>(a: &'a Prepared, b: &'a Prepared) -> (&'a Inner, &'a Inner) {
    if (a.inner.key, a.inner.points.len()) <= (b.inner.key, b.inner.points.len()) {
        (&a.inner, &b.inner)
    } else {
        (&b.inner, &a.inner)
    }
}

/// The widest build of the comparison that [`score`] may choose, where the CPU offers
/// it: for benchmarks that time a narrower build on the same machine. Every build gives
/// the same scores (tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstructionSet {
    /// The portable build (with the hardware popcount where the CPU has it).
    Portable = 0,
    /// AVX2 (x86-64).
    Avx2 = 1,
    /// AVX-512 with VPOPCNTDQ (x86-64).
    Avx512 = 2,
}

static WIDEST: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);

/// Limits the builds [`score`] chooses to `widest` and narrower, for the whole process.
pub fn limit_instruction_set(widest: InstructionSet) {
    WIDEST.store(widest as u8, std::sync::atomic::Ordering::Relaxed);
}

fn score_with(a: &Inner, b: &Inner, s: &mut Scratch) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        let widest = WIDEST.load(std::sync::atomic::Ordering::Relaxed);
        if widest >= InstructionSet::Avx512 as u8 && cylinder::has_avx512() {
            // SAFETY: the CPU supports every feature the function is compiled with.
            return unsafe { score_with_avx512(a, b, s) };
        }
        if widest >= InstructionSet::Avx2 as u8 && cylinder::has_avx2() {
            // SAFETY: the CPU supports every feature the function is compiled with.
            return unsafe { score_with_avx2(a, b, s) };
        }
    }
    score_portable(a, b, s)
}

/// [`score_portable`] compiled for AVX2: the global pairing's and the relaxation's loops
/// run in eight lanes (the baseline's SSE2 has no unsigned minimum, so the pairing's
/// integer minimum was scalar), and the cylinder kernel compares four cylinders at once
/// ([`cylinder::local_similarities_avx2`]). The
/// same operations in the same order (no contraction into fused multiply-adds), so the
/// same score.
///
/// # Safety
/// The CPU must support the enabled features ([`cylinder::has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn score_with_avx2(a: &Inner, b: &Inner, s: &mut Scratch) -> f32 {
    score_body(a, b, s, |a, b, n, s| {
        // SAFETY: this function's features include the callee's.
        unsafe {
            cylinder::local_similarities_avx2(
                &a.points,
                &a.cylinders,
                &b.angles,
                &b.cylinders,
                a.consolidation.min_common_cells,
                a.consolidation.min_local_similarity,
                &mut s.pairs,
                &mut s.selection.rows,
            )
        };
        select_rows(
            &s.pairs,
            &s.selection.rows,
            n,
            &mut s.chosen,
            &mut s.selection.heap,
        );
    })
}

/// The comparison without AVX-512: the popcount kernel and the scalar selection.
fn score_portable(a: &Inner, b: &Inner, s: &mut Scratch) -> f32 {
    score_body(a, b, s, |a, b, n, s| {
        cylinder::local_similarities(
            &a.points,
            &a.cylinders,
            &b.angles,
            &b.cylinders,
            a.consolidation.min_common_cells,
            a.consolidation.min_local_similarity,
            &mut s.pairs,
        );
        select_one_to_one(&mut s.pairs, n, &mut s.chosen, &mut s.selection);
    })
}

/// The whole comparison compiled for AVX-512: the vector kernel also reports each first
/// minutia's run of pairs and best key, the selection runs on those in vectors, and the
/// relaxation is vectorised by the compiler; the same operations in the same order, so
/// the same score.
///
/// # Safety
/// The CPU must support the enabled features ([`cylinder::has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,avx512dq,avx512vl,avx512bw,avx2,popcnt")]
unsafe fn score_with_avx512(a: &Inner, b: &Inner, s: &mut Scratch) -> f32 {
    score_body(a, b, s, |a, b, n, s| {
        // SAFETY: this function's features are the callees'.
        unsafe {
            cylinder::local_similarities_avx512(
                &a.points,
                &a.cylinders,
                &b.angles,
                &b.cylinders,
                a.consolidation.min_common_cells,
                a.consolidation.min_local_similarity,
                &mut s.pairs,
                &mut s.selection.rows,
            );
            select_rows_avx512(&s.pairs, &mut s.selection.rows, n, &mut s.chosen);
        }
    })
}

/// A comparison from the pair selection on; `pairs_and_select` fills `s.chosen` with at
/// most `n` one-to-one pairs.
#[inline(always)]
fn score_body<F>(a: &Inner, b: &Inner, s: &mut Scratch, pairs_and_select: F) -> f32
where
    F: Fn(&Inner, &Inner, usize, &mut Scratch),
{
    let c = &a.consolidation;
    s.pairs.clear();
    s.selection.rows.clear();
    s.chosen.clear();
    let n_relax = a
        .points
        .len()
        .min(b.points.len())
        .min(c.max_relax_pairs)
        .min(MAX_RELAX);
    pairs_and_select(a, b, n_relax, s);
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
        let lam = s.lambda.get(k).copied().unwrap_or(0.0).max(0.0);
        let e = if p.sim > 0.0 { lam / p.sim } else { 0.0 };
        // Ascending keys: decreasing efficiency, then decreasing value.
        s.eff
            .push((u64::from(!e.to_bits()) << 32) | u64::from(!lam.to_bits()));
    }
    s.eff.sort_unstable();
    let total: f32 = s
        .eff
        .iter()
        .take(n_p)
        .map(|&k| f32::from_bits(!(k as u32)))
        .sum();
    // Fewer pairs than n_p count as zeros: a handful of agreeing minutiae is weak evidence.
    let local = (total / n_p as f32).clamp(0.0, 1.0);
    if c.global_weight <= 0.0 {
        return local;
    }
    let global = global_pairing(a, b, c, s, n_p);
    (local.powf(1.0 - c.global_weight) * global.powf(c.global_weight)).clamp(0.0, 1.0)
}

/// The share of minutiae that find a mate once the whole of one template is aligned on the
/// other by the relaxation's best pairs: `m² / (n_a · n_b)`, with `m` one-to-one mates and
/// `n_a`, `n_b` the minutiae of each template that fall inside the other's area. The local
/// score looks at a dozen pairs; this one asks whether the rest of the finger agrees too.
#[inline(always)]
fn global_pairing(a: &Inner, b: &Inner, c: &Consolidation, s: &mut Scratch, n_p: usize) -> f32 {
    // Anchor pairs: the best few by relaxed weight; each aligns the templates on its own
    // (one right anchor is enough) and the best alignment counts.
    s.eff.clear();
    for (k, _) in s.chosen.iter().enumerate() {
        let lam = s.lambda.get(k).copied().unwrap_or(0.0).max(0.0);
        s.eff.push((u64::from(!lam.to_bits()) << 32) | k as u64);
    }
    s.eff.sort_unstable();
    let bc = &b.coords;
    let nb_all = bc.x.len();
    let ov2 = c.global_overlap * c.global_overlap;
    let floor = c.min_score_pairs.max(8);
    let mut best_score = 0.0f32;
    let mut done = [(0.0f32, 0.0f32, 0.0f32); MAX_RELAX];
    let mut n_done = 0usize;
    for &key in s.eff.iter().take(n_p.min(c.global_anchors)) {
        let k = (key & 0xffff_ffff) as usize;
        let Some(pp) = s.chosen.get(k) else { continue };
        let (Some(pa0), Some(pb0)) = (
            a.points.get(usize::from(pp.i)),
            b.points.get(usize::from(pp.j)),
        ) else {
            continue;
        };
        let rot = angle_diff(pb0.angle, pa0.angle);
        let (sr, cr) = rot.sin_cos();
        let tx = pb0.x - (cr * pa0.x - sr * pa0.y);
        let ty = pb0.y - (sr * pa0.x + cr * pa0.y);
        // An anchor that only repeats an earlier one's alignment (within 4.6 degrees and 6 px)
        // would pair nearly the same way: skipping it measured 25% more comparisons per
        // second on the synthetic set for one or two genuine pairs in a thousand.
        if done[..n_done].iter().any(|&(r0, x0, y0)| {
            angle_diff(rot, r0).abs() < 0.08 && (tx - x0).abs() < 6.0 && (ty - y0).abs() < 6.0
        }) {
            continue;
        }
        if let Some(slot) = done.get_mut(n_done) {
            *slot = (rot, tx, ty);
            n_done += 1;
        }
        s.near.clear();
        s.near.resize(nb_all, f32::INFINITY);
        s.taken.clear();
        s.taken.resize(nb_all, 0.0);
        let (mut m, mut na) = (0usize, 0usize);
        for pa in &a.all {
            let x = cr * pa.x - sr * pa.y + tx;
            let y = sr * pa.x + cr * pa.y + ty;
            // Distortion grows with the distance from the anchor.
            let r = ((x - pb0.x) * (x - pb0.x) + (y - pb0.y) * (y - pb0.y)).sqrt();
            let tol = c.global_dist + 0.08 * r;
            let d2max = tol * tol;
            // Direction of the aligned minutia: a's rotated by `rot`.
            let ca = pa.cos * cr - pa.sin * sr;
            let sa = pa.sin * cr + pa.cos * sr;
            // Branch-free loops over plain slices of one length, so that they vectorise:
            // the nearest minutia of b (for the overlap) and the free ones that pair.
            let n = nb_all;
            let (bx, by) = (&bc.x[..n], &bc.y[..n]);
            let (bcos, bsin) = (&bc.cos[..n], &bc.sin[..n]);
            let (near, taken) = (&mut s.near[..n], &s.taken[..n]);
            let mut inside = 0u32;
            // The best mate as one integer: a non-negative f32's bits order like the float,
            // and the low 8 bits (a relative 3e-5 of the distance) carry the index, so an
            // integer minimum, which vectorises, finds the nearest free mate and breaks ties
            // by the lower index.
            let mut best = u32::MAX;
            for j in 0..n {
                let dx = bx[j] - x;
                let dy = by[j] - y;
                let d2 = dx * dx + dy * dy;
                // An unconditional store of the minimum: a conditional one becomes a
                // masked store, which is microcoded and slow on some cores (AMD Zen).
                near[j] = near[j].min(d2);
                inside |= u32::from(d2 <= ov2);
                // `&`, not `&&`: no branch.
                let ok = (d2 <= d2max)
                    & (taken[j] == 0.0)
                    & (ca * bcos[j] + sa * bsin[j] >= c.cos_global_angle);
                let key = if ok {
                    (d2.to_bits() & !0xff) | (j as u32 & 0xff)
                } else {
                    u32::MAX
                };
                best = best.min(key);
            }
            na += inside as usize;
            let (d, j) = if best == u32::MAX {
                (f32::INFINITY, usize::MAX)
            } else {
                (0.0, (best & 0xff) as usize)
            };
            if d.is_finite() {
                if let Some(t) = s.taken.get_mut(j) {
                    *t = f32::INFINITY;
                    m += 1;
                }
            }
        }
        let nb = s.near.iter().filter(|&&d| d <= ov2).count();
        let (na, nb) = (na.max(floor), nb.max(floor));
        best_score = best_score.max((m * m) as f32 / (na * nb) as f32);
    }
    best_score.clamp(0.0, 1.0)
}

/// [`select_one_to_one`]'s buffers, kept between comparisons.
#[derive(Debug, Default)]
struct Selection {
    rows: RowTable,
    heap: Vec<Reverse<u64>>,
}

/// Keeps the best `n` pairs by similarity such that no minutia is used twice: the result
/// of visiting the pairs in ascending key order (best first) until `n` are disjoint.
///
/// The next pair that visit accepts is the smallest key whose two minutiae are both free,
/// that is the smallest of the free rows' best free keys. So each row's best is found in
/// one pass ([`RowTable`]) and [`select_rows`] picks from them. Impostor comparisons
/// often need hundreds of the best keys to find `n` disjoint ones (a few cylinders
/// resemble many), which rounds of selection paid for.
fn select_one_to_one(pairs: &mut [u64], n: usize, chosen: &mut Vec<Pair>, sel: &mut Selection) {
    chosen.clear();
    let rows = &mut sel.rows;
    rows.clear();
    let mut idx = 0usize;
    let mut last_i = None;
    while let Some(&first) = pairs.get(idx) {
        let i = (first >> 16) as u16;
        // The kernels emit pairs grouped by first minutia; stay exact if not.
        if last_i.is_some_and(|l| l >= i) {
            return select_widening(pairs, n, chosen);
        }
        last_i = Some(i);
        let (start, mut best) = (idx, first);
        idx += 1;
        while let Some(&k) = pairs.get(idx) {
            if (k >> 16) as u16 != i {
                break;
            }
            best = best.min(k);
            idx += 1;
        }
        rows.push(start, idx, best);
    }
    select_rows(pairs, &sel.rows, n, chosen, &mut sel.heap);
}

/// [`select_one_to_one`] on rows already found: `rows` holds each first minutia's run of
/// keys in `pairs` (in increasing first minutia) and its smallest key.
///
/// A min-heap of the rows' best keys, refreshed lazily: a key whose second minutia was
/// taken since it was pushed is replaced by its row's best free key when it surfaces. A
/// stale key is never larger than its row's true best, so the first fresh key popped is
/// the smallest free key of all: the same pick as rescanning every row after each pick,
/// which cost a pass over all rows per pick.
fn select_rows(
    pairs: &[u64],
    rows: &RowTable,
    n: usize,
    chosen: &mut Vec<Pair>,
    buf: &mut Vec<Reverse<u64>>,
) {
    chosen.clear();
    // Each row by its first minutia (every key's `i` is below 256: at most 255 minutiae).
    let mut row_of = [0u8; 256];
    let mut v = std::mem::take(buf);
    v.clear();
    for (r, &best) in rows.best.iter().enumerate().take(256) {
        row_of[(best >> 16) as usize & 0xff] = r as u8;
        v.push(Reverse(best));
    }
    let mut heap = BinaryHeap::from(v);
    let mut used = Used::default();
    while chosen.len() < n {
        let Some(Reverse(key)) = heap.pop() else {
            break;
        };
        let j = key as usize & 0xff;
        if (used.b[(j >> 6) & 3] >> (j & 63)) & 1 == 0 {
            // Its row retires with it: a first minutia is paired once.
            used.take(key, chosen);
            continue;
        }
        let r = usize::from(row_of[(key >> 16) as usize & 0xff]);
        let (Some(&start), Some(&end)) = (rows.start.get(r), rows.end.get(r)) else {
            continue;
        };
        // Branch-free: a used second minutia turns its key into u64::MAX.
        let ub = used.b;
        let best = pairs
            .get(start as usize..end as usize)
            .unwrap_or(&[])
            .iter()
            .fold(u64::MAX, |m, &k| {
                let j = k as usize & 0xff;
                let taken = (ub[(j >> 6) & 3] >> (j & 63)) & 1;
                m.min(k | taken.wrapping_neg())
            });
        if best != u64::MAX {
            heap.push(Reverse(best));
        }
    }
    *buf = heap.into_vec();
}

/// Minutiae already in a chosen pair, per template.
#[derive(Default)]
struct Used {
    a: [u64; 4],
    b: [u64; 4],
}

impl Used {
    /// Appends the pair to `chosen` unless one of its minutiae is already used.
    #[inline(always)]
    fn take(&mut self, key: u64, chosen: &mut Vec<Pair>) {
        let p = unpack(key);
        let (ia, ib) = (usize::from(p.i), usize::from(p.j));
        let (Some(wa), Some(wb)) = (self.a.get_mut(ia / 64), self.b.get_mut(ib / 64)) else {
            return;
        };
        if (*wa >> (ia % 64)) & 1 == 0 && (*wb >> (ib % 64)) & 1 == 0 {
            *wa |= 1 << (ia % 64);
            *wb |= 1 << (ib % 64);
            chosen.push(p);
        }
    }
}

/// [`select_one_to_one`] by rounds of `select_nth_unstable` over a doubling window.
fn select_widening(pairs: &mut [u64], n: usize, chosen: &mut Vec<Pair>) {
    chosen.clear();
    let mut used = Used::default();
    let mut considered = 0usize;
    let mut window = (2 * n).max(8);
    loop {
        let end = window.min(pairs.len());
        if let Some(rest) = pairs.get_mut(considered..) {
            if end < considered + rest.len() && end > considered {
                rest.select_nth_unstable(end - considered);
            }
        }
        if let Some(slice) = pairs.get_mut(considered..end) {
            slice.sort_unstable();
            for &key in slice.iter() {
                if chosen.len() >= n {
                    break;
                }
                used.take(key, chosen);
            }
        }
        considered = end;
        if chosen.len() >= n || considered >= pairs.len() {
            break;
        }
        window *= 2;
    }
}

/// Each first minutia's run of pairs, as the vector kernel reports them: `pairs[start[r]..
/// end[r]]` holds row `r`'s keys and `best[r]` the smallest of them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct RowTable {
    pub(super) start: Vec<u32>,
    pub(super) end: Vec<u32>,
    pub(super) best: Vec<u64>,
}

impl RowTable {
    fn clear(&mut self) {
        self.start.clear();
        self.end.clear();
        self.best.clear();
    }

    #[inline(always)]
    pub(super) fn push(&mut self, start: usize, end: usize, best: u64) {
        self.start.push(start as u32);
        self.end.push(end as u32);
        self.best.push(best);
    }
}

/// [`select_one_to_one`] on the kernel's rows, eight rows or keys at a time: the same
/// picks in the same order. A row is one first minutia, so it retires when picked, and
/// only the second minutiae need a used set.
///
/// # Safety
/// The CPU must support the enabled features ([`cylinder::has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,avx512dq,avx512vl,avx512bw,avx2,popcnt")]
unsafe fn select_rows_avx512(pairs: &[u64], rows: &mut RowTable, n: usize, chosen: &mut Vec<Pair>) {
    use std::arch::x86_64::*;
    chosen.clear();
    let nr = rows.best.len().min(rows.start.len()).min(rows.end.len());
    rows.best.truncate(nr);
    // Padding rows hold no key.
    rows.best.resize(nr.div_ceil(8) * 8, u64::MAX);
    let none = _mm512_set1_epi64(-1);
    let low16 = _mm512_set1_epi64(0xffff);
    // Second minutiae already paired; lanes 4 to 7 stay zero (indices are below 256).
    let mut used = [0u64; 8];
    while chosen.len() < n {
        let mut m = none;
        for v in rows.best.chunks_exact(8) {
            // SAFETY: a chunk is 8 `u64`s.
            m = _mm512_min_epu64(m, unsafe { _mm512_loadu_epi64(v.as_ptr().cast()) });
        }
        let pick = _mm512_reduce_min_epu64(m);
        if pick == u64::MAX {
            break;
        }
        let p = unpack(pick);
        chosen.push(p);
        if chosen.len() >= n {
            break;
        }
        let j = usize::from(p.j) & 0xff;
        used[(j >> 6) & 3] |= 1 << (j & 63);
        // SAFETY: `used` is 8 `u64`s.
        let used_v = unsafe { _mm512_loadu_epi64(used.as_ptr().cast()) };
        let (pick_v, j_v) = (
            _mm512_set1_epi64(pick as i64),
            _mm512_set1_epi64(i64::from(p.j)),
        );
        for (v, chunk) in rows.best.chunks_exact_mut(8).enumerate() {
            // SAFETY: a chunk is 8 `u64`s.
            let b = unsafe { _mm512_loadu_epi64(chunk.as_ptr().cast()) };
            let is_pick = _mm512_cmpeq_epu64_mask(b, pick_v);
            // Padding and spent rows hold u64::MAX, whose second index (0xffff) is no
            // minutia's.
            let mut stale = _mm512_cmpeq_epu64_mask(_mm512_and_si512(b, low16), j_v) & !is_pick;
            if is_pick != 0 {
                // SAFETY: a chunk is 8 `u64`s; only the picked lane is written.
                unsafe { _mm512_mask_storeu_epi64(chunk.as_mut_ptr().cast(), is_pick, none) };
            }
            while stale != 0 {
                let lane = stale.trailing_zeros() as usize;
                stale &= stale - 1;
                let r = v * 8 + lane;
                let (Some(&start), Some(&end), Some(slot)) =
                    (rows.start.get(r), rows.end.get(r), chunk.get_mut(lane))
                else {
                    continue;
                };
                let keys = pairs
                    .get(start as usize..(end as usize).min(pairs.len()))
                    .unwrap_or(&[]);
                // SAFETY: same features as this function.
                *slot = unsafe { best_free_avx512(keys, used_v) };
            }
        }
    }
}

/// The smallest key whose second minutia is not in `used` (bit `j` of lane `j / 64`), or
/// `u64::MAX`.
///
/// # Safety
/// The CPU must support the features this function is compiled for (the caller checks
/// them at run time before choosing the AVX-512 path). `keys` is read only within its
/// length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,avx512dq,avx512vl,avx512bw,avx2,popcnt")]
#[inline]
unsafe fn best_free_avx512(keys: &[u64], used: std::arch::x86_64::__m512i) -> u64 {
    use std::arch::x86_64::*;
    let (low8, low6, one) = (
        _mm512_set1_epi64(0xff),
        _mm512_set1_epi64(63),
        _mm512_set1_epi64(1),
    );
    let mut m = _mm512_set1_epi64(-1);
    let mut k = 0;
    while k < keys.len() {
        let rest = keys.len() - k;
        let lanes: __mmask8 = if rest >= 8 { 0xff } else { (1u8 << rest) - 1 };
        // SAFETY: the lanes read are `keys[k..k + rest.min(8)]`.
        let v = unsafe { _mm512_maskz_loadu_epi64(lanes, keys.as_ptr().add(k).cast()) };
        let j = _mm512_and_si512(v, low8);
        let word = _mm512_permutexvar_epi64(_mm512_srli_epi64::<6>(j), used);
        let bit = _mm512_srlv_epi64(word, _mm512_and_si512(j, low6));
        let free = _mm512_mask_testn_epi64_mask(lanes, bit, one);
        m = _mm512_mask_min_epu64(m, free, m, v);
        k += 8;
    }
    _mm512_reduce_min_epu64(m)
}

/// Compatibility of correspondence `p` with each later one (`q > p`), written to
/// `row[q]`: do the two minutiae sit at the same distance, with the same relative
/// directions, in both templates? Each factor is a ramp from 1 (within tolerance) to 0.
#[inline]
fn compatibility_row(c: &Consolidation, g: &Geometry, p: usize, row: &mut [f32]) {
    let (Some(&aix), Some(&aiy), Some(&aic), Some(&ais)) =
        (g.ax.get(p), g.ay.get(p), g.ac.get(p), g.as_.get(p))
    else {
        return;
    };
    let (Some(&bix), Some(&biy), Some(&bic), Some(&bis)) =
        (g.bx.get(p), g.by.get(p), g.bc.get(p), g.bs.get(p))
    else {
        return;
    };
    let start = p + 1;
    let n = row
        .len()
        .min(g.ax.len())
        .min(g.ay.len())
        .min(g.ac.len())
        .min(g.as_.len())
        .min(g.bx.len())
        .min(g.by.len())
        .min(g.bc.len())
        .min(g.bs.len());
    if start >= n {
        return;
    }
    let (ax, ay, ac, as_) = (
        &g.ax[start..n],
        &g.ay[start..n],
        &g.ac[start..n],
        &g.as_[start..n],
    );
    let (bx, by, bc, bs) = (
        &g.bx[start..n],
        &g.by[start..n],
        &g.bc[start..n],
        &g.bs[start..n],
    );
    let out = &mut row[start..n];
    let m = out.len();
    let dist_span = c.dist_max - c.dist_tol;
    let cos_span = c.cos_angle_tol - c.cos_angle_max;
    for k in 0..m {
        let (vax, vay) = (ax[k] - aix, ay[k] - aiy);
        let (vbx, vby) = (bx[k] - bix, by[k] - biy);
        let da = (vax * vax + vay * vay).sqrt();
        let db = (vbx * vbx + vby * vby).sqrt();
        let rel = c.dist_tol_rel * 0.5 * (da + db);
        let r1 = ((c.dist_max + rel - (da - db).abs()) / dist_span).clamp(0.0, 1.0);
        // Relative direction of k seen from i in each template, e_k * conj(e_i), compared.
        let (za_re, za_im) = (ac[k] * aic + as_[k] * ais, as_[k] * aic - ac[k] * ais);
        let (zb_re, zb_im) = (bc[k] * bic + bs[k] * bis, bs[k] * bic - bc[k] * bis);
        let c2 = za_re * zb_re + za_im * zb_im;
        // Direction of the joining segment relative to each end's own direction.
        let inv = 1.0 / (da * db).max(1.0e-6);
        let (ra, ia) = (vax * aic + vay * ais, vay * aic - vax * ais);
        let (rb, ib) = (vbx * bic + vby * bis, vby * bic - vbx * bis);
        let c3 = (ra * rb + ia * ib) * inv;
        let (ra, ia) = (-vax * ac[k] - vay * as_[k], -vay * ac[k] + vax * as_[k]);
        let (rb, ib) = (-vbx * bc[k] - vby * bs[k], -vby * bc[k] + vbx * bs[k]);
        let c4 = (ra * rb + ia * ib) * inv;
        let r2 = ((c2 - c.cos_angle_max) / cos_span).clamp(0.0, 1.0);
        let r3 = ((c3.min(c4) - c.cos_angle_max) / cos_span).clamp(0.0, 1.0);
        // Coincident minutiae carry no geometry.
        let valid = if da > 1.0e-3 && db > 1.0e-3 { 1.0 } else { 0.0 };
        out[k] = r1 * r2 * r3 * valid;
    }
}

fn relax(a: &Inner, b: &Inner, c: &Consolidation, s: &mut Scratch) {
    let r = s.chosen.len();
    let g = &mut s.geometry;
    for v in [
        &mut g.ax, &mut g.ay, &mut g.ac, &mut g.as_, &mut g.bx, &mut g.by, &mut g.bc, &mut g.bs,
    ] {
        v.clear();
    }
    for pp in &s.chosen {
        let (Some(pa), Some(pb)) = (
            a.points.get(usize::from(pp.i)),
            b.points.get(usize::from(pp.j)),
        ) else {
            continue;
        };
        g.ax.push(pa.x);
        g.ay.push(pa.y);
        g.ac.push(pa.cos);
        g.as_.push(pa.sin);
        g.bx.push(pb.x);
        g.by.push(pb.y);
        g.bc.push(pb.cos);
        g.bs.push(pb.sin);
    }
    // Rows padded to a multiple of 8 (zeros) so the support sums run in 8 lanes.
    let stride = r.div_ceil(8) * 8;
    s.rho.clear();
    s.rho.resize(stride * r, 0.0);
    for p in 0..r {
        if let Some(row) = s.rho.get_mut(p * stride..p * stride + r) {
            compatibility_row(c, &s.geometry, p, row);
        }
    }
    // Mirror the upper triangle.
    for p in 0..r {
        for q in 0..p {
            let v = s.rho.get(q * stride + p).copied().unwrap_or(0.0);
            if let Some(x) = s.rho.get_mut(p * stride + q) {
                *x = v;
            }
        }
    }
    s.lambda.clear();
    s.lambda.extend(s.chosen.iter().map(|p| p.sim));
    s.lambda.resize(stride, 0.0);
    s.next.clear();
    s.next.resize(stride, 0.0);
    let support_scale = if r > 1 {
        (1.0 - c.relax_keep) / (r - 1) as f32
    } else {
        0.0
    };
    for _ in 0..c.relax_iterations {
        for (p, row) in s.rho.chunks_exact(stride).enumerate() {
            let mut acc = [0.0f32; 8];
            for (x, l) in row.chunks_exact(8).zip(s.lambda.chunks_exact(8)) {
                for k in 0..8 {
                    acc[k] += x[k] * l[k];
                }
            }
            let support: f32 = acc.iter().sum();
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

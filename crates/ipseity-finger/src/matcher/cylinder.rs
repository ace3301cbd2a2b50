//! Bit cylinders: construction (at prepare time) and the local-similarity kernel (the hot
//! loop of every comparison).

use super::{angle_diff, pair_key, MatcherConfig, Point};
use std::f32::consts::{FRAC_PI_2, PI, TAU};

/// Cells along each side of a cylinder's square grid.
pub(super) const NS: usize = 8;
/// Direction layers.
pub(super) const ND: usize = 6;
/// `u64` words per layer.
const L: usize = NS * NS / 64;
const _: () = assert!((NS * NS).is_multiple_of(64));

/// One minutia's cylinder: a validity mask of the disc's cells, one bit plane per
/// direction layer (bits outside the mask are zero), and norms for the common case where
/// both cylinders are entirely valid.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub(super) struct Cylinder {
    mask: [u64; L],
    layers: [[u64; L]; ND],
    /// Set bits over all layers.
    norm: u32,
    /// Its square root (the full-disc kernel's denominator term).
    sqrt_norm: f32,
    /// Whether `mask` is the whole disc.
    full: bool,
}

impl Cylinder {
    /// The bits, for hashing.
    pub(super) fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.mask
            .iter()
            .chain(self.layers.iter().flatten())
            .copied()
    }
}

fn cell_offset(k: usize, radius: f32) -> f32 {
    let delta = 2.0 * radius / NS as f32;
    (k as f32 + 0.5) * delta - radius
}

/// The disc's cells (centre within one radius of the cylinder's centre), as a mask.
fn disc_mask() -> [u64; L] {
    let mut m = [0u64; L];
    // Unit radius: membership depends only on the grid.
    for i in 0..NS {
        for j in 0..NS {
            let (u, v) = (cell_offset(j, 1.0), cell_offset(i, 1.0));
            if u * u + v * v <= 1.0 {
                let c = i * NS + j;
                m[c / 64] |= 1 << (c % 64);
            }
        }
    }
    m
}

/// Number of cells in the disc.
pub(super) fn disc_cells() -> u32 {
    disc_mask().iter().map(|w| w.count_ones()).sum()
}

/// Error function, Abramowitz and Stegun 7.1.26 (absolute error below 2e-7).
fn erf(x: f32) -> f32 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    s * (1.0 - poly * (-x * x).exp())
}

/// Convex hull (counter-clockwise, no collinear points) by the monotone chain.
fn convex_hull(points: &[Point]) -> Vec<(f32, f32)> {
    let mut p: Vec<(f32, f32)> = points.iter().map(|q| (q.x, q.y)).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f32, f32)> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f32, f32)>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2 {
                let n = hull.len();
                if cross(hull[n - 2], hull[n - 1], q) <= 0.0 {
                    hull.pop();
                } else {
                    break;
                }
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// Whether a point lies inside the hull dilated by `omega`.
fn in_dilated_hull(hull: &[(f32, f32)], x: f32, y: f32, omega: f32) -> bool {
    let seg_dist2 = |a: (f32, f32), b: (f32, f32)| {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((x - a.0) * dx + (y - a.1) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (px, py) = (a.0 + t * dx - x, a.1 + t * dy - y);
        px * px + py * py
    };
    let n = hull.len();
    if n == 0 {
        return false;
    }
    let mut inside = n >= 3;
    let mut near = false;
    for k in 0..n {
        let a = hull[k];
        let b = hull[(k + 1) % n];
        if (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0) < 0.0 {
            inside = false;
        }
        if seg_dist2(a, b) <= omega * omega {
            near = true;
        }
    }
    inside || near
}

/// Builds the cylinders of every minutia, keeping the minutiae whose cylinder is valid.
pub(super) fn build_all(points: &[Point], cfg: &MatcherConfig) -> Vec<(Point, Cylinder)> {
    let radius = if cfg.radius.is_finite() && cfg.radius > 1.0 {
        cfg.radius
    } else {
        70.0
    };
    let sigma_s = cfg.sigma_s.max(0.5);
    let sigma_d = cfg.sigma_d.max(0.01);
    let hull = convex_hull(points);
    let disc = disc_mask();
    let disc_n: u32 = disc.iter().map(|w| w.count_ones()).sum();
    let min_valid = (cfg.min_valid_cells * disc_n as f32).ceil() as u32;
    let reach = radius + 3.0 * sigma_s;
    let cut2 = (3.0 * sigma_s) * (3.0 * sigma_s);
    let gs_norm = 1.0 / (sigma_s * (TAU).sqrt());
    let delta_d = TAU / ND as f32;
    let erf_scale = 1.0 / (sigma_d * std::f32::consts::SQRT_2);

    let mut out = Vec::with_capacity(points.len());
    let mut neighbours: Vec<(f32, f32, [f32; ND])> = Vec::new();
    for (m_idx, m) in points.iter().enumerate() {
        neighbours.clear();
        for (t_idx, t) in points.iter().enumerate() {
            if t_idx == m_idx {
                continue;
            }
            let (dx, dy) = (t.x - m.x, t.y - m.y);
            if dx * dx + dy * dy > reach * reach {
                continue;
            }
            let dtheta = angle_diff(m.angle, t.angle);
            let mut gd = [0.0f32; ND];
            for (d, g) in gd.iter_mut().enumerate() {
                let phi = -PI + (d as f32 + 0.5) * delta_d;
                let c = angle_diff(phi, dtheta);
                *g = 0.5
                    * (erf((c + 0.5 * delta_d) * erf_scale) - erf((c - 0.5 * delta_d) * erf_scale));
            }
            neighbours.push((t.x, t.y, gd));
        }
        if neighbours.len() < cfg.min_neighbours {
            continue;
        }
        let mut cyl = Cylinder {
            mask: [0; L],
            layers: [[0; L]; ND],
            norm: 0,
            sqrt_norm: 0.0,
            full: false,
        };
        for i in 0..NS {
            for j in 0..NS {
                let c = i * NS + j;
                let bit = 1u64 << (c % 64);
                if disc[c / 64] & bit == 0 {
                    continue;
                }
                let (u, v) = (cell_offset(j, radius), cell_offset(i, radius));
                let cx = m.x + u * m.cos - v * m.sin;
                let cy = m.y + u * m.sin + v * m.cos;
                if !in_dilated_hull(&hull, cx, cy, cfg.omega) {
                    continue;
                }
                cyl.mask[c / 64] |= bit;
                let mut acc = [0.0f32; ND];
                for (tx, ty, gd) in &neighbours {
                    let d2 = (tx - cx) * (tx - cx) + (ty - cy) * (ty - cy);
                    if d2 > cut2 {
                        continue;
                    }
                    let gs = gs_norm * (-d2 / (2.0 * sigma_s * sigma_s)).exp();
                    for (a, g) in acc.iter_mut().zip(gd) {
                        *a += gs * g;
                    }
                }
                for (d, a) in acc.iter().enumerate() {
                    if *a >= cfg.mu_psi {
                        cyl.layers[d][c / 64] |= bit;
                    }
                }
            }
        }
        let valid: u32 = cyl.mask.iter().map(|w| w.count_ones()).sum();
        if valid < min_valid {
            continue;
        }
        cyl.norm = cyl.layers.iter().flatten().map(|w| w.count_ones()).sum();
        cyl.sqrt_norm = sqrt_bits(cyl.norm);
        cyl.full = cyl.mask == disc;
        out.push((*m, cyl));
    }
    out
}

/// Most set bits a cylinder can have.
const MAX_BITS: usize = ND * NS * NS;

/// Square roots of bit counts, computed at compile time (Newton in `f64`, then rounded): a
/// lookup is several times cheaper than `sqrtss` in the kernel, where every pair needs
/// up to three.
static SQRT: [f32; MAX_BITS + 1] = {
    let mut t = [0.0f32; MAX_BITS + 1];
    let mut i = 1;
    while i <= MAX_BITS {
        let x = i as f64;
        let mut r = x;
        let mut k = 0;
        while k < 40 {
            r = 0.5 * (r + x / r);
            k += 1;
        }
        t[i] = r as f32;
        i += 1;
    }
    t
};

#[inline(always)]
pub(super) fn sqrt_bits(n: u32) -> f32 {
    match SQRT.get(n as usize) {
        Some(&v) => v,
        None => (n as f32).sqrt(),
    }
}

/// Local similarity of two cylinders (bit MCC): one minus the Hamming distance over the sum
/// of the two norms, on the cells valid in both; zero if too few cells are common.
#[inline(always)]
fn similarity(a: &Cylinder, b: &Cylinder, min_common: u32) -> f32 {
    if a.full && b.full {
        let mut x = 0u32;
        for d in 0..ND {
            for w in 0..L {
                x += (a.layers[d][w] ^ b.layers[d][w]).count_ones();
            }
        }
        let denom = a.sqrt_norm + b.sqrt_norm;
        if denom > 0.0 {
            1.0 - sqrt_bits(x) / denom
        } else {
            0.0
        }
    } else {
        let mut m = [0u64; L];
        let mut common = 0u32;
        for w in 0..L {
            m[w] = a.mask[w] & b.mask[w];
            common += m[w].count_ones();
        }
        if common < min_common {
            return 0.0;
        }
        let (mut x, mut na, mut nb) = (0u32, 0u32, 0u32);
        for d in 0..ND {
            for w in 0..L {
                let (ca, cb) = (a.layers[d][w] & m[w], b.layers[d][w] & m[w]);
                x += (ca ^ cb).count_ones();
                na += ca.count_ones();
                nb += cb.count_ones();
            }
        }
        let denom = sqrt_bits(na) + sqrt_bits(nb);
        if denom > 0.0 {
            1.0 - sqrt_bits(x) / denom
        } else {
            0.0
        }
    }
}

/// Indices of `angles` (sorted ascending, in `[0, 2π)`) within a right angle of `theta`,
/// as up to two ranges.
#[inline]
fn window(angles: &[f32], theta: f32) -> [(usize, usize); 2] {
    let n = angles.len();
    // A branch-free count equals the partition point on sorted keys and, over a few dozen
    // angles, vectorises instead of mispredicting a binary search's every step.
    let pp = |v: f32| angles.iter().map(|&a| usize::from(a < v)).sum::<usize>();
    let (lo, hi) = (theta - FRAC_PI_2, theta + FRAC_PI_2);
    if lo < 0.0 {
        [(0, pp(hi)), (pp(lo + TAU), n)]
    } else if hi > TAU {
        [(pp(lo), n), (0, pp(hi - TAU))]
    } else {
        [(pp(lo), pp(hi)), (0, 0)]
    }
}

#[inline(always)]
fn local_similarities_generic(
    pa: &[Point],
    ca: &[Cylinder],
    angles_b: &[f32],
    cb: &[Cylinder],
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    for (i, (p, a)) in pa.iter().zip(ca).enumerate() {
        for (start, end) in window(angles_b, p.angle) {
            let Some(bs) = cb.get(start..end) else {
                continue;
            };
            for (k, b) in bs.iter().enumerate() {
                let sim = similarity(a, b, min_common);
                if sim > floor {
                    out.push(pair_key(sim, i as u16, (start + k) as u16));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn local_similarities_popcnt(
    pa: &[Point],
    ca: &[Cylinder],
    angles_b: &[f32],
    cb: &[Cylinder],
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    local_similarities_generic(pa, ca, angles_b, cb, min_common, floor, out);
}

/// Every pair (first template's minutia, second's) with directions within a right angle and
/// a positive local similarity, appended to `out`.
pub(super) fn local_similarities(
    pa: &[Point],
    ca: &[Cylinder],
    angles_b: &[f32],
    cb: &[Cylinder],
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU supports popcnt (checked just above), the only feature the
            // function is compiled with.
            unsafe { local_similarities_popcnt(pa, ca, angles_b, cb, min_common, floor, out) };
            return;
        }
    }
    local_similarities_generic(pa, ca, angles_b, cb, min_common, floor, out);
}

/// Scalar twin of the dispatched kernel, for tests.
#[cfg(test)]
pub(super) fn local_similarities_scalar(
    pa: &[Point],
    ca: &[Cylinder],
    pb: &[Point],
    cb: &[Cylinder],
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    let angles: Vec<f32> = pb.iter().map(|p| p.angle).collect();
    local_similarities_generic(pa, ca, &angles, cb, min_common, floor, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windows by binary search, for comparison.
    fn window_reference(angles: &[f32], theta: f32) -> [(usize, usize); 2] {
        let n = angles.len();
        let pp = |v: f32| angles.partition_point(|&a| a < v);
        let (lo, hi) = (theta - FRAC_PI_2, theta + FRAC_PI_2);
        if lo < 0.0 {
            [(0, pp(hi)), (pp(lo + TAU), n)]
        } else if hi > TAU {
            [(pp(lo), n), (0, pp(hi - TAU))]
        } else {
            [(pp(lo), pp(hi)), (0, 0)]
        }
    }

    #[test]
    fn window_matches_binary_search() {
        // Deterministic spread of angles with repeats, and thetas on and between them.
        for n in [0usize, 1, 2, 7, 40, 64] {
            let mut angles: Vec<f32> = (0..n)
                .map(|k| ((k * 37 % 53) as f32 / 53.0 * TAU).min(TAU - 1.0e-4))
                .collect();
            angles.sort_by(f32::total_cmp);
            let mut thetas: Vec<f32> = (0..200).map(|k| k as f32 / 200.0 * TAU).collect();
            thetas.extend(angles.iter().map(|a| (a + FRAC_PI_2).rem_euclid(TAU)));
            for theta in thetas {
                assert_eq!(
                    window(&angles, theta),
                    window_reference(&angles, theta),
                    "n {n}, theta {theta}"
                );
            }
        }
    }
}

//! Bit cylinders: construction (at prepare time) and the local-similarity kernel (the hot
//! loop of every comparison).

use super::{angle_diff, pair_key, MatcherConfig, Point, RowTable};
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
/// both cylinders are entirely valid. Prepared templates keep them as [`Cylinders`].
#[derive(Debug, Clone, Copy, PartialEq)]
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

const fn cell_offset(k: usize, radius: f32) -> f32 {
    let delta = 2.0 * radius / NS as f32;
    (k as f32 + 0.5) * delta - radius
}

/// The disc's cells (centre within one radius of the cylinder's centre), as a mask.
const DISC: [u64; L] = {
    let mut m = [0u64; L];
    // Unit radius: membership depends only on the grid.
    let mut i = 0;
    while i < NS {
        let mut j = 0;
        while j < NS {
            let (u, v) = (cell_offset(j, 1.0), cell_offset(i, 1.0));
            if u * u + v * v <= 1.0 {
                let c = i * NS + j;
                m[c / 64] |= 1 << (c % 64);
            }
            j += 1;
        }
        i += 1;
    }
    m
};

/// Number of cells in the disc.
pub(super) fn disc_cells() -> u32 {
    DISC.iter().map(|w| w.count_ones()).sum()
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
    let disc = DISC;
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

/// A template's cylinders, one plane at a time: plane 0 holds every cylinder's validity
/// mask, plane `1 + d` every cylinder's layer `d`, each padded with zeros to a multiple of
/// eight cylinders. The vector kernel compares one cylinder with eight of the other
/// template at once, which needs the eight cylinders' same word side by side; 7 words and
/// a root per cylinder is also half the memory of a cache-aligned array of structs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Cylinders {
    n: usize,
    stride: usize,
    words: Vec<u64>,
    sqrt_norm: Vec<f32>,
    full: Vec<bool>,
}

/// Planes per cylinder: the mask and the layers, one word each.
const PLANES: usize = 1 + ND;
// The kernels keep a cylinder in one word per plane.
const _: () = assert!(L == 1);

impl Cylinders {
    pub(super) fn new(cylinders: &[Cylinder]) -> Self {
        let n = cylinders.len();
        let stride = n.div_ceil(8) * 8;
        let mut words = vec![0u64; PLANES * stride];
        for (j, c) in cylinders.iter().enumerate() {
            words[j] = c.mask[0];
            for d in 0..ND {
                words[(1 + d) * stride + j] = c.layers[d][0];
            }
        }
        Self {
            n,
            stride,
            words,
            sqrt_norm: cylinders.iter().map(|c| c.sqrt_norm).collect(),
            full: cylinders.iter().map(|c| c.full).collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.n
    }

    /// Cylinder `j` (all zeros past the end).
    #[inline(always)]
    pub(super) fn get(&self, j: usize) -> Cylinder {
        let w = |p: usize| self.words.get(p * self.stride + j).copied().unwrap_or(0);
        let mut layers = [[0u64; L]; ND];
        for (d, l) in layers.iter_mut().enumerate() {
            l[0] = w(1 + d);
        }
        let sqrt_norm = self.sqrt_norm.get(j).copied().unwrap_or(0.0);
        Cylinder {
            mask: [w(0)],
            layers,
            norm: 0,
            sqrt_norm,
            full: self.full.get(j).copied().unwrap_or(false),
        }
    }

    /// Every cylinder's words in turn (mask, then layers), for hashing.
    pub(super) fn words(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.n).flat_map(move |j| (0..PLANES).map(move |p| self.words[p * self.stride + j]))
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
    ca: &Cylinders,
    angles_b: &[f32],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    let nb = cb.len().min(angles_b.len());
    for (i, p) in pa.iter().enumerate().take(ca.len()) {
        let a = ca.get(i);
        for (start, end) in window(angles_b, p.angle) {
            for j in start..end.min(nb) {
                let sim = similarity(&a, &cb.get(j), min_common);
                if sim > floor {
                    out.push(pair_key(sim, i as u16, j as u16));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn local_similarities_popcnt(
    pa: &[Point],
    ca: &Cylinders,
    angles_b: &[f32],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    local_similarities_generic(pa, ca, angles_b, cb, min_common, floor, out);
}

/// Whether this CPU runs the AVX2 build of the comparison.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// Whether this CPU runs [`local_similarities_avx512`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx2")
}

/// [`local_similarities_generic`] eight second-template cylinders at a time: the same
/// pairs, in the same order, with bit-identical similarities (the square roots of bit
/// counts are exact in `f32` either way, and every other step is one correctly rounded
/// operation in the same order). Each first minutia with pairs also gets a row in `rows`
/// (its run of keys in `out` and the smallest of them).
///
/// # Safety
/// The CPU must support the enabled features ([`has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,avx512dq,avx512vl,avx512bw,avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn local_similarities_avx512(
    pa: &[Point],
    ca: &Cylinders,
    angles_b: &[f32],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
    rows: &mut RowTable,
) {
    use std::arch::x86_64::*;
    let base = out.len();
    let na = pa.len().min(ca.len());
    let nb = cb.len().min(angles_b.len());
    // Every lane is stored and only the kept ones counted, so the last store may write
    // up to 8 keys past the kept ones: room for all pairs plus one vector.
    out.reserve(na * nb + 8);
    let spare = out.spare_capacity_mut();
    let room = spare.len();
    let dst = spare.as_mut_ptr().cast::<u64>();
    let mut len = 0usize;
    let disc = _mm512_set1_epi64(DISC[0] as i64);
    let lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    let low32 = _mm512_set1_epi64(0xffff_ffff);
    let min_common_v = _mm512_set1_epi64(i64::from(min_common));
    let one = _mm256_set1_ps(1.0);
    let zero_ps = _mm256_setzero_ps();
    let floor_v = _mm256_set1_ps(floor);
    let plane = |p: usize| cb.words.as_ptr().wrapping_add(p * cb.stride);
    for (i, p) in pa.iter().enumerate().take(na) {
        let a = ca.get(i);
        let am = _mm512_set1_epi64(a.mask[0] as i64);
        let al: [__m512i; ND] = std::array::from_fn(|d| _mm512_set1_epi64(a.layers[d][0] as i64));
        let sa = _mm256_set1_ps(a.sqrt_norm);
        let ikey = _mm512_set1_epi64((i as i64) << 16);
        let row_start = len;
        let mut row_min = _mm512_set1_epi64(-1);
        for (start, end) in window(angles_b, p.angle) {
            let end = end.min(nb);
            let mut j = start;
            while j < end {
                let k: __mmask8 = if end - j >= 8 {
                    0xff
                } else {
                    (1u8 << (end - j)) - 1
                };
                // SAFETY: lanes in `k` are cylinders `j..end`, `end <= n`, inside every
                // plane; masked-off lanes are not read. The loads below rely on the same.
                let bm = unsafe { _mm512_maskz_loadu_epi64(k, plane(0).add(j).cast()) };
                let full = if a.full {
                    _mm512_mask_cmpeq_epi64_mask(k, bm, disc)
                } else {
                    0
                };
                let sim = if full == k {
                    // Both discs whole: the norms are known and only the XORs are counted.
                    let mut x = _mm512_setzero_si512();
                    for (d, &ald) in al.iter().enumerate() {
                        // SAFETY: plane `1 + d` has `n` cylinders; only lanes `j..end` in
                        // `k` are read.
                        let bl = unsafe { _mm512_maskz_loadu_epi64(k, plane(1 + d).add(j).cast()) };
                        x = _mm512_add_epi64(x, _mm512_popcnt_epi64(_mm512_xor_si512(ald, bl)));
                    }
                    // SAFETY: `sqrt_norm` has one entry per cylinder; only lanes in `k`.
                    let sb = unsafe { _mm256_maskz_loadu_ps(k, cb.sqrt_norm.as_ptr().add(j)) };
                    let sx = _mm256_sqrt_ps(_mm512_cvtepi64_ps(x));
                    let denom = _mm256_add_ps(sa, sb);
                    let pos = _mm256_cmp_ps_mask::<_CMP_GT_OQ>(denom, zero_ps);
                    _mm256_maskz_sub_ps(pos, one, _mm256_div_ps(sx, denom))
                } else {
                    let m = _mm512_and_si512(am, bm);
                    let common = _mm512_popcnt_epi64(m);
                    let (mut x, mut xa) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    let sb = if a.full {
                        // The common cells are all of b's: b's count is its norm.
                        for (d, &ald) in al.iter().enumerate() {
                            // SAFETY: as above, lanes `j..end` of plane `1 + d`.
                            let bl =
                                unsafe { _mm512_maskz_loadu_epi64(k, plane(1 + d).add(j).cast()) };
                            let ca_ = _mm512_and_si512(ald, m);
                            x = _mm512_add_epi64(x, _mm512_popcnt_epi64(_mm512_xor_si512(ca_, bl)));
                            xa = _mm512_add_epi64(xa, _mm512_popcnt_epi64(ca_));
                        }
                        // SAFETY: one `sqrt_norm` per cylinder; only lanes in `k`.
                        unsafe { _mm256_maskz_loadu_ps(k, cb.sqrt_norm.as_ptr().add(j)) }
                    } else {
                        let mut xb = _mm512_setzero_si512();
                        for (d, &ald) in al.iter().enumerate() {
                            // SAFETY: as above, lanes `j..end` of plane `1 + d`.
                            let bl =
                                unsafe { _mm512_maskz_loadu_epi64(k, plane(1 + d).add(j).cast()) };
                            let (ca_, cb_) = (_mm512_and_si512(ald, m), _mm512_and_si512(bl, m));
                            x = _mm512_add_epi64(
                                x,
                                _mm512_popcnt_epi64(_mm512_xor_si512(ca_, cb_)),
                            );
                            xa = _mm512_add_epi64(xa, _mm512_popcnt_epi64(ca_));
                            xb = _mm512_add_epi64(xb, _mm512_popcnt_epi64(cb_));
                        }
                        _mm256_sqrt_ps(_mm512_cvtepi64_ps(xb))
                    };
                    // Whole discs skip the common-cells test, as in the scalar kernel.
                    let enough = _mm512_cmpge_epu64_mask(common, min_common_v) | full;
                    let sx = _mm256_sqrt_ps(_mm512_cvtepi64_ps(x));
                    let denom = _mm256_add_ps(_mm256_sqrt_ps(_mm512_cvtepi64_ps(xa)), sb);
                    let pos = _mm256_cmp_ps_mask::<_CMP_GT_OQ>(denom, zero_ps) & enough;
                    _mm256_maskz_sub_ps(pos, one, _mm256_div_ps(sx, denom))
                };
                let keep = _mm256_mask_cmp_ps_mask::<_CMP_GT_OQ>(k, sim, floor_v);
                let bits = _mm512_cvtepu32_epi64(_mm256_castps_si256(sim));
                let hi = _mm512_slli_epi64::<32>(_mm512_xor_si512(bits, low32));
                let jv = _mm512_add_epi64(_mm512_set1_epi64(j as i64), lanes);
                let keys = _mm512_or_si512(hi, _mm512_or_si512(ikey, jv));
                // Compress in a register, then one full store: a compressing store to
                // memory is microcoded and slow on some cores.
                row_min = _mm512_mask_min_epu64(row_min, keep, row_min, keys);
                let packed = _mm512_maskz_compress_epi64(keep, keys);
                if len + 8 <= room {
                    // SAFETY: `len + 8 <= room`, within the spare capacity.
                    unsafe { _mm512_storeu_si512(dst.add(len).cast(), packed) };
                    len += keep.count_ones() as usize;
                }
                j += 8;
            }
        }
        if len > row_start {
            rows.push(
                base + row_start,
                base + len,
                _mm512_reduce_min_epu64(row_min),
            );
        }
    }
    let new_len = base + len;
    // SAFETY: the first `len` spare slots were written above (`len + 8 <= room` at every
    // store, and `len` only grows by the lanes that store wrote).
    unsafe { out.set_len(new_len) };
}

/// Population count of each byte, with AVX2 alone: a 16-entry table of nibble counts
/// looked up by `vpshufb` (Muła's method); [`lane_sums_avx2`] adds them up per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn byte_counts_avx2(
    v: std::arch::x86_64::__m256i,
    table: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let nibble = _mm256_set1_epi8(0x0f);
    let lo = _mm256_and_si256(v, nibble);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
    _mm256_add_epi8(
        _mm256_shuffle_epi8(table, lo),
        _mm256_shuffle_epi8(table, hi),
    )
}

/// The sum of each 64-bit lane's eight bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lane_sums_avx2(v: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_sad_epu8(v, _mm256_setzero_si256())
}

/// The low 32 bits of each 64-bit lane (counts, far below 2^31) as four `f32`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn counts_to_ps(v: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    let packed = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    _mm_cvtepi32_ps(_mm256_castsi256_si128(packed))
}

/// [`local_similarities_generic`] four second-template cylinders at a time with AVX2 (no
/// AVX-512): the same pairs in the same order with bit-identical similarities, as
/// [`local_similarities_avx512`] argues for its eight lanes (square roots of bit counts
/// are exact in `f32`, every other step one correctly rounded operation in the same
/// order).
///
/// # Safety
/// The CPU must support the enabled features ([`has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn local_similarities_avx2(
    pa: &[Point],
    ca: &Cylinders,
    angles_b: &[f32],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
    rows: &mut RowTable,
) {
    use std::arch::x86_64::*;
    let base = out.len();
    let na = pa.len().min(ca.len());
    let nb = cb.len().min(angles_b.len());
    // Every lane is stored and only the kept ones counted, so the last store may write
    // up to 4 keys past the kept ones: room for all pairs plus one vector.
    out.reserve(na * nb + 4);
    let spare = out.spare_capacity_mut();
    let room = spare.len();
    let dst = spare.as_mut_ptr().cast::<u64>();
    let mut len = 0usize;
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let disc = _mm256_set1_epi64x(DISC[0] as i64);
    let below_min = _mm256_set1_epi64x(i64::from(min_common) - 1);
    let one = _mm_set1_ps(1.0);
    let zero_ps = _mm_setzero_ps();
    let floor_v = _mm_set1_ps(floor);
    let lane_ids = _mm256_setr_epi64x(0, 1, 2, 3);
    let plane = |p: usize| cb.words.as_ptr().wrapping_add(p * cb.stride);
    for (i, p) in pa.iter().enumerate().take(na) {
        let a = ca.get(i);
        let am = _mm256_set1_epi64x(a.mask[0] as i64);
        let al: [__m256i; ND] = std::array::from_fn(|d| _mm256_set1_epi64x(a.layers[d][0] as i64));
        let sa = _mm_set1_ps(a.sqrt_norm);
        let ikey = _mm256_set1_epi64x((i as i64) << 16);
        let row_start = len;
        for (start, end) in window(angles_b, p.angle) {
            let end = end.min(nb);
            let mut j = start;
            while j < end {
                let lanes = (end - j).min(4);
                // All ones in the lanes `j..end` covers, for the masked loads.
                let k64 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes as i64), lane_ids);
                let k32 = _mm_cmpgt_epi32(_mm_set1_epi32(lanes as i32), _mm_setr_epi32(0, 1, 2, 3));
                let load = |q: usize| {
                    // SAFETY: lanes in `k64` are cylinders `j..end`, `end <= n`, inside
                    // every plane; masked-off lanes are not read.
                    unsafe { _mm256_maskload_epi64(plane(q).add(j).cast(), k64) }
                };
                let bm = load(0);
                // SAFETY: one `sqrt_norm` per cylinder; only lanes in `k32` are read.
                let sb = unsafe { _mm_maskload_ps(cb.sqrt_norm.as_ptr().add(j), k32) };
                let full_lanes = if a.full {
                    _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(bm, disc)))
                } else {
                    0
                };
                let all = (1 << lanes) - 1;
                // Bit counts are summed per byte over the layers (at most 8 per layer, so
                // at most 48) and per lane once at the end.
                let sim = if full_lanes & all == all {
                    // Both discs whole: the norms are known and only the XORs are counted.
                    let mut x = _mm256_setzero_si256();
                    for (d, &ald) in al.iter().enumerate() {
                        let bl = load(1 + d);
                        x = _mm256_add_epi8(x, byte_counts_avx2(_mm256_xor_si256(ald, bl), table));
                    }
                    let sx = _mm_sqrt_ps(counts_to_ps(lane_sums_avx2(x)));
                    let denom = _mm_add_ps(sa, sb);
                    let pos = _mm_cmpgt_ps(denom, zero_ps);
                    _mm_and_ps(pos, _mm_sub_ps(one, _mm_div_ps(sx, denom)))
                } else {
                    let m = _mm256_and_si256(am, bm);
                    let common = lane_sums_avx2(byte_counts_avx2(m, table));
                    let (mut x, mut xa) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    let sb = if a.full {
                        // The common cells are all of b's: b's count is its norm.
                        for (d, &ald) in al.iter().enumerate() {
                            let bl = load(1 + d);
                            let ca_ = _mm256_and_si256(ald, m);
                            x = _mm256_add_epi8(
                                x,
                                byte_counts_avx2(_mm256_xor_si256(ca_, bl), table),
                            );
                            xa = _mm256_add_epi8(xa, byte_counts_avx2(ca_, table));
                        }
                        sb
                    } else {
                        let mut xb = _mm256_setzero_si256();
                        for (d, &ald) in al.iter().enumerate() {
                            let bl = load(1 + d);
                            let (ca_, cb_) = (_mm256_and_si256(ald, m), _mm256_and_si256(bl, m));
                            x = _mm256_add_epi8(
                                x,
                                byte_counts_avx2(_mm256_xor_si256(ca_, cb_), table),
                            );
                            xa = _mm256_add_epi8(xa, byte_counts_avx2(ca_, table));
                            xb = _mm256_add_epi8(xb, byte_counts_avx2(cb_, table));
                        }
                        _mm_sqrt_ps(counts_to_ps(lane_sums_avx2(xb)))
                    };
                    // Whole discs skip the common-cells test, as in the scalar kernel; their
                    // counts are their norms, so the general formula gives their value.
                    let full_v = if a.full {
                        _mm256_cmpeq_epi64(bm, disc)
                    } else {
                        _mm256_setzero_si256()
                    };
                    let enough64 = _mm256_or_si256(_mm256_cmpgt_epi64(common, below_min), full_v);
                    let enough =
                        _mm_castsi128_ps(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                            enough64,
                            _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6),
                        )));
                    let sx = _mm_sqrt_ps(counts_to_ps(lane_sums_avx2(x)));
                    let denom = _mm_add_ps(_mm_sqrt_ps(counts_to_ps(lane_sums_avx2(xa))), sb);
                    let pos = _mm_and_ps(_mm_cmpgt_ps(denom, zero_ps), enough);
                    _mm_and_ps(pos, _mm_sub_ps(one, _mm_div_ps(sx, denom)))
                };
                let keep = (_mm_movemask_ps(_mm_cmpgt_ps(sim, floor_v)) & all) as usize;
                if keep != 0 {
                    // Keys in four lanes: the similarity's bits inverted above `i` and `j`.
                    let hi = _mm256_slli_epi64::<32>(_mm256_cvtepu32_epi64(_mm_castps_si128(
                        _mm_xor_ps(sim, _mm_castsi128_ps(_mm_set1_epi32(-1))),
                    )));
                    let jv = _mm256_add_epi64(_mm256_set1_epi64x(j as i64), lane_ids);
                    let keys = _mm256_or_si256(hi, _mm256_or_si256(ikey, jv));
                    // The kept lanes moved to the front, then one full store.
                    let idx = COMPRESS_4X64.get(keep).copied().unwrap_or([0; 8]);
                    // SAFETY: `idx` is 8 `i32`s.
                    let perm = unsafe { _mm256_loadu_si256(idx.as_ptr().cast()) };
                    let packed = _mm256_permutevar8x32_epi32(keys, perm);
                    if len + 4 <= room {
                        // SAFETY: `len + 4 <= room`, within the spare capacity.
                        unsafe { _mm256_storeu_si256(dst.add(len).cast(), packed) };
                        len += keep.count_ones() as usize;
                    }
                }
                j += 4;
            }
        }
        if len > row_start {
            // SAFETY: the first `len` spare slots are written (see the store above).
            let keys = unsafe { std::slice::from_raw_parts(dst.add(row_start), len - row_start) };
            let best = keys.iter().copied().min().unwrap_or(u64::MAX);
            rows.push(base + row_start, base + len, best);
        }
    }
    // SAFETY: the first `len` spare slots were written above (`len + 4 <= room` at every
    // store, and `len` only grows by the lanes that store wrote).
    unsafe { out.set_len(base + len) };
}

/// For each 4-bit mask of kept 64-bit lanes, the 32-bit lane indices that move the kept
/// lanes, in order, to the front (AVX2 has no compress instruction).
#[cfg(target_arch = "x86_64")]
const COMPRESS_4X64: [[i32; 8]; 16] = {
    let mut t = [[0i32; 8]; 16];
    let mut m = 0;
    while m < 16 {
        let mut out = 0;
        let mut lane = 0usize;
        while lane < 4 {
            if m & (1 << lane) != 0 {
                t[m][2 * out] = (2 * lane) as i32;
                t[m][2 * out + 1] = (2 * lane + 1) as i32;
                out += 1;
            }
            lane += 1;
        }
        m += 1;
    }
    t
};

/// Every pair (first template's minutia, second's) with directions within a right angle and
/// a positive local similarity, appended to `out`, grouped by first minutia.
pub(super) fn local_similarities(
    pa: &[Point],
    ca: &Cylinders,
    angles_b: &[f32],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU supports every feature the function is compiled with.
            unsafe {
                local_similarities_avx512(
                    pa,
                    ca,
                    angles_b,
                    cb,
                    min_common,
                    floor,
                    out,
                    &mut RowTable::default(),
                )
            };
            return;
        }
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
    ca: &Cylinders,
    pb: &[Point],
    cb: &Cylinders,
    min_common: u32,
    floor: f32,
    out: &mut Vec<u64>,
) {
    let angles: Vec<f32> = pb.iter().map(|p| p.angle).collect();
    local_similarities_generic(pa, ca, &angles, cb, min_common, floor, out);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random cylinder: the whole disc or a random part of it (sometimes too little to
    /// compare), layers random within the mask (sometimes empty), norms as `build_all` sets.
    fn random_cylinder(rng: &mut ChaCha8Rng) -> Cylinder {
        let disc = DISC[0];
        let mask = match rng.gen_range(0..4) {
            0 | 1 => disc,
            2 => disc & rng.gen::<u64>() & rng.gen::<u64>(),
            _ => disc & !(u64::MAX << rng.gen_range(20..64)),
        };
        let density = rng.gen_range(0..4);
        let layers = std::array::from_fn(|_| {
            let mut w = rng.gen::<u64>();
            for _ in 0..density {
                w &= rng.gen::<u64>();
            }
            [if density == 3 && rng.gen_bool(0.3) {
                0
            } else {
                w & mask
            }]
        });
        let mut c = Cylinder {
            mask: [mask],
            layers,
            norm: 0,
            sqrt_norm: 0.0,
            full: mask == disc,
        };
        c.norm = c.layers.iter().flatten().map(|w| w.count_ones()).sum();
        c.sqrt_norm = sqrt_bits(c.norm);
        c
    }

    /// `n` random cylinders (the first `shared.len().min(n / 4)` copied from `shared`, so
    /// that similarities of 1 occur) at random sorted angles.
    fn random_template(
        rng: &mut ChaCha8Rng,
        n: usize,
        shared: &[Cylinder],
    ) -> (Vec<Point>, Vec<Cylinder>) {
        let mut cyl: Vec<Cylinder> = (0..n).map(|_| random_cylinder(rng)).collect();
        for (c, s) in cyl.iter_mut().zip(shared).take(n / 4) {
            *c = *s;
        }
        let mut angles: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..TAU)).collect();
        angles.sort_by(f32::total_cmp);
        let points = angles
            .iter()
            .map(|&angle| Point {
                x: 0.0,
                y: 0.0,
                angle,
                cos: angle.cos(),
                sin: angle.sin(),
            })
            .collect();
        (points, cyl)
    }

    /// The runs of equal first minutia in `keys[from..]`, with their smallest keys.
    pub(in crate::matcher) fn rows_of(keys: &[u64], from: usize) -> RowTable {
        let mut rows = RowTable::default();
        let mut k = from;
        while k < keys.len() {
            let i = keys[k] >> 16 & 0xffff;
            let end = (k..keys.len())
                .find(|&e| keys[e] >> 16 & 0xffff != i)
                .unwrap_or(keys.len());
            rows.push(
                k,
                end,
                keys[k..end].iter().copied().min().unwrap_or(u64::MAX),
            );
            k = end;
        }
        rows
    }

    #[test]
    fn kernels_match_scalar_twin_on_random_cylinders() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let disc = disc_cells();
        let (mut pairs, mut exact) = (0usize, 0usize);
        for round in 0..400 {
            let (na, nb) = (rng.gen_range(0..48), rng.gen_range(0..48));
            let (pa, ca) = random_template(&mut rng, na, &[]);
            let (pb, cb) = random_template(&mut rng, nb, &ca);
            let (ca, cb) = (Cylinders::new(&ca), Cylinders::new(&cb));
            let angles_b: Vec<f32> = pb.iter().map(|p| p.angle).collect();
            let min_common = match round % 4 {
                0 => 0,
                1 => (0.6 * disc as f32).ceil() as u32,
                2 => disc,
                _ => disc + 1,
            };
            let floor = if round % 5 == 0 { 0.3 } else { 0.0 };
            let mut want = Vec::new();
            local_similarities_scalar(&pa, &ca, &pb, &cb, min_common, floor, &mut want);
            pairs += want.len();
            exact += want
                .iter()
                .filter(|&&k| (k >> 32) as u32 == !1.0f32.to_bits())
                .count();
            let mut got = vec![7u64];
            local_similarities(&pa, &ca, &angles_b, &cb, min_common, floor, &mut got);
            assert_eq!(got.first(), Some(&7), "round {round}: appends");
            assert_eq!(&got[1..], &want[..], "round {round}: dispatched");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("popcnt") {
                    let mut got = Vec::new();
                    // SAFETY: popcnt is supported (checked above).
                    unsafe {
                        local_similarities_popcnt(
                            &pa, &ca, &angles_b, &cb, min_common, floor, &mut got,
                        )
                    };
                    assert_eq!(got, want, "round {round}: popcnt");
                }
                if has_avx2() {
                    let mut got = vec![5u64; round % 2];
                    let mut rows = RowTable::default();
                    // SAFETY: every feature it is compiled with is supported (checked above).
                    unsafe {
                        local_similarities_avx2(
                            &pa, &ca, &angles_b, &cb, min_common, floor, &mut got, &mut rows,
                        )
                    };
                    assert_eq!(&got[round % 2..], &want[..], "round {round}: avx2");
                    assert_eq!(rows, rows_of(&got, round % 2), "round {round}: avx2 rows");
                }
                if has_avx512() {
                    let mut got = vec![9u64; round % 3];
                    let mut rows = RowTable::default();
                    // SAFETY: every feature it is compiled with is supported (checked above).
                    unsafe {
                        local_similarities_avx512(
                            &pa, &ca, &angles_b, &cb, min_common, floor, &mut got, &mut rows,
                        )
                    };
                    assert_eq!(&got[round % 3..], &want[..], "round {round}: avx512");
                    assert_eq!(rows, rows_of(&got, round % 3), "round {round}: rows");
                } else {
                    eprintln!("no AVX-512 here: vector kernel not tested");
                }
            }
        }
        // The cases the kernels branch on all occurred.
        assert!(
            pairs > 10_000 && exact > 50,
            "{pairs} pairs, {exact} of similarity 1"
        );
    }

    #[test]
    fn cylinders_round_trip_through_planes() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for n in [0usize, 1, 7, 8, 9, 40] {
            let cyl: Vec<Cylinder> = (0..n).map(|_| random_cylinder(&mut rng)).collect();
            let planes = Cylinders::new(&cyl);
            assert_eq!(planes.len(), n);
            for (j, c) in cyl.iter().enumerate() {
                let back = planes.get(j);
                assert_eq!((back.mask, back.layers), (c.mask, c.layers));
                assert_eq!((back.sqrt_norm, back.full), (c.sqrt_norm, c.full));
            }
            let words: Vec<u64> = cyl
                .iter()
                .flat_map(|c| c.mask.iter().chain(c.layers.iter().flatten()).copied())
                .collect();
            assert_eq!(planes.words().collect::<Vec<_>>(), words);
        }
    }

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

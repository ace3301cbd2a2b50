//! Ground-truth minutiae of a master: binarise, thin (Zhang–Suen), classify skeleton pixels
//! by crossing number, take each minutia's direction by following its branches, then drop
//! the ones an extractor could not be expected to agree on (near the edge, or in close
//! pairs, which are bridges, spurs, short islands and broken ridges).
//! The image border counts as an edge: the finger runs off the bottom of the master.
//!
//! `extract` has its own thinning and crossing number; this one is kept separate on
//! purpose, so the ground truth does not share code (or bugs) with the extractor it grades.

use super::field::FingerShape;
use super::math;
use crate::{Minutia, MinutiaKind};

/// Neighbour offsets in cyclic order: N, NE, E, SE, S, SW, W, NW.
const RING: [(i32, i32); 8] = [
    (0, -1),
    (1, -1),
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
];

/// How far the direction of a minutia is measured along its ridge, pixels.
const TRACE_STEPS: usize = 10;

/// Binary ridge map (1 = ridge) inside the shape, zero on the image border.
pub(crate) fn binarise(field: &[f32], w: usize, h: usize, shape: &FingerShape) -> Vec<u8> {
    let mut b = vec![0u8; w * h];
    for y in 1..h.saturating_sub(1) {
        for x in 1..w - 1 {
            let i = y * w + x;
            if field[i] > 0.0 && shape.edge_distance(x as f32, y as f32) >= 0.0 {
                b[i] = 1;
            }
        }
    }
    b
}

fn neighbours(img: &[u8], w: usize, x: usize, y: usize) -> [u8; 8] {
    let mut n = [0u8; 8];
    for (k, &(dx, dy)) in RING.iter().enumerate() {
        let (nx, ny) = ((x as i32 + dx) as usize, (y as i32 + dy) as usize);
        n[k] = img[ny * w + nx];
    }
    n
}

/// Zhang–Suen thinning in place; the one-pixel border must be zero.
pub(crate) fn thin(img: &mut [u8], w: usize, h: usize) {
    let mut remove = Vec::new();
    loop {
        let mut changed = false;
        for pass in 0..2 {
            remove.clear();
            for y in 1..h.saturating_sub(1) {
                for x in 1..w - 1 {
                    if img[y * w + x] == 0 {
                        continue;
                    }
                    let n = neighbours(img, w, x, y);
                    let b: u8 = n.iter().sum();
                    if !(2..=6).contains(&b) {
                        continue;
                    }
                    let a = (0..8).filter(|&k| n[k] == 0 && n[(k + 1) % 8] == 1).count();
                    if a != 1 {
                        continue;
                    }
                    // n[0]=N (P2), n[2]=E (P4), n[4]=S (P6), n[6]=W (P8).
                    let ok = if pass == 0 {
                        n[0] * n[2] * n[4] == 0 && n[2] * n[4] * n[6] == 0
                    } else {
                        n[0] * n[2] * n[6] == 0 && n[0] * n[4] * n[6] == 0
                    };
                    if ok {
                        remove.push(y * w + x);
                    }
                }
            }
            for &i in &remove {
                img[i] = 0;
            }
            changed |= !remove.is_empty();
        }
        if !changed {
            break;
        }
    }
}

/// Starting pixels of the branches leaving `(x, y)`: one per run of set neighbours.
fn branches(skel: &[u8], w: usize, x: usize, y: usize) -> Vec<Vec<(usize, usize)>> {
    let n = neighbours(skel, w, x, y);
    let Some(start) = (0..8).find(|&k| n[k] == 0) else {
        return Vec::new();
    };
    let mut runs: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut in_run = false;
    for j in 1..=8 {
        let k = (start + j) % 8;
        if n[k] == 1 {
            let (dx, dy) = RING[k];
            let p = ((x as i32 + dx) as usize, (y as i32 + dy) as usize);
            if !in_run {
                runs.push(Vec::new());
            }
            if let Some(r) = runs.last_mut() {
                // Four-connected neighbours first: they are the natural continuation.
                if k % 2 == 0 {
                    r.insert(0, p);
                } else {
                    r.push(p);
                }
            }
            in_run = true;
        } else {
            in_run = false;
        }
    }
    runs
}

/// Follows the skeleton from `first` for up to [`TRACE_STEPS`] pixels; returns the end.
fn trace(
    skel: &[u8],
    w: usize,
    h: usize,
    first: (usize, usize),
    blocked: &[(usize, usize)],
) -> (usize, usize) {
    let mut visited: Vec<(usize, usize)> = blocked.to_vec();
    let mut cur = first;
    visited.push(cur);
    for _ in 1..TRACE_STEPS {
        let mut next = None;
        for k in [0, 2, 4, 6, 1, 3, 5, 7] {
            let (dx, dy) = RING[k];
            let (nx, ny) = (cur.0 as i32 + dx, cur.1 as i32 + dy);
            if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                continue;
            }
            let p = (nx as usize, ny as usize);
            if skel[p.1 * w + p.0] == 1 && !visited.contains(&p) {
                next = Some(p);
                break;
            }
        }
        let Some(p) = next else { break };
        visited.push(p);
        cur = p;
    }
    cur
}

fn unit(from: (usize, usize), to: (usize, usize)) -> (f32, f32) {
    let (dx, dy) = (to.0 as f32 - from.0 as f32, to.1 as f32 - from.1 as f32);
    let n = (dx * dx + dy * dy).sqrt().max(1e-6);
    (dx / n, dy / n)
}

/// Minutiae of a thinned ridge map, filtered as the module comment says.
pub(crate) fn minutiae(
    skel: &[u8],
    w: usize,
    h: usize,
    shape: &FingerShape,
    border_margin: f32,
    min_pair_distance: f32,
) -> Vec<Minutia> {
    let mut found: Vec<Minutia> = Vec::new();
    for y in 2..h.saturating_sub(2) {
        for x in 2..w - 2 {
            if skel[y * w + x] == 0 || shape.edge_distance(x as f32, y as f32) < 3.0 {
                continue;
            }
            let n = neighbours(skel, w, x, y);
            let cn = (0..8).filter(|&k| n[k] == 0 && n[(k + 1) % 8] == 1).count();
            let kind = match cn {
                1 => MinutiaKind::Ending,
                3 => MinutiaKind::Bifurcation,
                _ => continue,
            };
            // A thick junction shows as several adjacent crossing-number-3 pixels.
            let (fx, fy) = (x as f32, y as f32);
            if found
                .iter()
                .any(|m| m.kind == kind && (m.x - fx).abs() <= 2.0 && (m.y - fy).abs() <= 2.0)
            {
                continue;
            }
            let runs = branches(skel, w, x, y);
            let all: Vec<(usize, usize)> = runs.iter().flatten().copied().collect();
            let mut dirs = Vec::with_capacity(3);
            for run in &runs {
                let Some(&first) = run.first() else { continue };
                let mut blocked = vec![(x, y)];
                blocked.extend(all.iter().filter(|p| !run.contains(p)));
                dirs.push(unit((x, y), trace(skel, w, h, first, &blocked)));
            }
            let dir = match (kind, dirs.as_slice()) {
                (MinutiaKind::Ending, [d]) => *d,
                (MinutiaKind::Bifurcation, [a, b, c]) => {
                    // The two fork branches are the closest pair; point along their bisector.
                    let dot = |p: &(f32, f32), q: &(f32, f32)| p.0 * q.0 + p.1 * q.1;
                    let pairs = [(a, b, dot(a, b)), (a, c, dot(a, c)), (b, c, dot(b, c))];
                    let mut best = pairs[0];
                    for p in pairs {
                        if p.2 > best.2 {
                            best = p;
                        }
                    }
                    (best.0 .0 + best.1 .0, best.0 .1 + best.1 .1)
                }
                _ => continue,
            };
            let angle = math::atan2(f64::from(-dir.1), f64::from(dir.0)) as f32;
            found.push(Minutia::new(fx, fy, angle, kind, 100));
        }
    }
    let d2 = min_pair_distance * min_pair_distance;
    let keep: Vec<bool> = found
        .iter()
        .enumerate()
        .map(|(i, m)| {
            shape.edge_distance(m.x, m.y) >= border_margin
                && m.x
                    .min(m.y)
                    .min(w as f32 - 1.0 - m.x)
                    .min(h as f32 - 1.0 - m.y)
                    >= border_margin
                && !found.iter().enumerate().any(|(j, o)| {
                    j != i && (o.x - m.x) * (o.x - m.x) + (o.y - m.y) * (o.y - m.y) < d2
                })
        })
        .collect();
    found
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect()
}

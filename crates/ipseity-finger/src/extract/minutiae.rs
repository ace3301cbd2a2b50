//! Minutiae from the skeleton: crossing-number detection, direction by tracing the ridge,
//! refinement with the orientation field, false-minutia removal and per-minutia quality.

use super::enhance::RidgeMap;
use super::field::{Fields, CELL};
use super::skeleton::{code, crossing_number, RING};
use super::ExtractConfig;
use crate::{Minutia, MinutiaKind};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    /// Walked the whole length.
    Length,
    /// Reached a ridge end.
    End,
    /// Reached a junction.
    Junction,
}

struct Trace {
    /// Pixel index where the walk stopped.
    last: usize,
    /// Steps walked.
    steps: usize,
    stop: Stop,
    /// Position reached after `dir_len` steps, or the last one if shorter.
    dir_point: usize,
}

struct Cand {
    x: f32,
    y: f32,
    kind: MinutiaKind,
    /// Unit direction in pixel coordinates (y down).
    d: (f32, f32),
    traces: Vec<Trace>,
    dead: bool,
}

fn xy(i: usize, stride: usize) -> (f32, f32) {
    // The ridge map has a one-pixel frame.
    ((i % stride) as f32 - 1.0, (i / stride) as f32 - 1.0)
}

fn offset(i: usize, stride: usize, d: (isize, isize)) -> usize {
    (i as isize + d.1 * stride as isize + d.0) as usize
}

/// Walks the skeleton from `start` through `first`, never revisiting `avoid` or its own path.
fn trace(
    px: &[u8],
    stride: usize,
    start: usize,
    first: usize,
    avoid: &[usize],
    max_len: usize,
    dir_len: usize,
) -> Trace {
    let mut path: Vec<usize> = Vec::with_capacity(max_len + 1);
    path.push(start);
    let mut cur = first;
    let mut steps = 1;
    let mut dir_point = cur;
    loop {
        path.push(cur);
        if steps <= dir_len {
            dir_point = cur;
        }
        let c = code(px, stride, cur);
        let cn = crossing_number(c);
        if cn >= 3 {
            return Trace {
                last: cur,
                steps,
                stop: Stop::Junction,
                dir_point,
            };
        }
        if steps >= max_len {
            return Trace {
                last: cur,
                steps,
                stop: Stop::Length,
                dir_point,
            };
        }
        let mut next = None;
        let mut count = 0;
        for (k, &d) in RING.iter().enumerate() {
            if c >> k & 1 == 0 {
                continue;
            }
            let j = offset(cur, stride, d);
            if path.contains(&j) || avoid.contains(&j) {
                continue;
            }
            // A pixel touching the previous one is a corner of the same line, not a branch.
            if path.len() >= 2 && is_adjacent(j, path[path.len() - 2], stride) {
                continue;
            }
            count += 1;
            next = Some(j);
        }
        match (count, next) {
            (1, Some(j)) => {
                cur = j;
                steps += 1;
            }
            (0, _) => {
                return Trace {
                    last: cur,
                    steps,
                    stop: Stop::End,
                    dir_point,
                }
            }
            _ => {
                return Trace {
                    last: cur,
                    steps,
                    stop: Stop::Junction,
                    dir_point,
                }
            }
        }
    }
}

fn is_adjacent(a: usize, b: usize, stride: usize) -> bool {
    let (ax, ay) = ((a % stride) as isize, (a / stride) as isize);
    let (bx, by) = ((b % stride) as isize, (b / stride) as isize);
    (ax - bx).abs() <= 1 && (ay - by).abs() <= 1 && a != b
}

fn unit(v: (f32, f32)) -> Option<(f32, f32)> {
    let n = (v.0 * v.0 + v.1 * v.1).sqrt();
    (n > 1e-6).then(|| (v.0 / n, v.1 / n))
}

fn dot(a: (f32, f32), b: (f32, f32)) -> f32 {
    a.0 * b.0 + a.1 * b.1
}

/// Detects, orients, filters and scores the minutiae of a thinned ridge map.
pub(super) fn find(skel: &RidgeMap, fields: &Fields, cfg: &ExtractConfig) -> Vec<Minutia> {
    let s = skel.stride;
    let px = &skel.px;
    let (w, h) = (s - 2, skel.rows - 2);
    let max_len = cfg
        .trace_length
        .max((cfg.spur_length.max(cfg.bridge_length) * cfg.max_period).ceil() as usize)
        .clamp(4, 64);
    let dir_len = cfg.trace_length.max(2);

    let mut cands: Vec<Cand> = Vec::new();
    for i in 0..px.len() {
        if px[i] != 1 {
            continue;
        }
        let c = code(px, s, i);
        let cn = crossing_number(c);
        let (x, y) = xy(i, s);
        let kind = match cn {
            1 => MinutiaKind::Ending,
            3 => MinutiaKind::Bifurcation,
            _ => continue,
        };
        // Bifurcations one pixel apart are one fork seen twice.
        if kind == MinutiaKind::Bifurcation
            && cands.iter().rev().take(8).any(|o| {
                o.kind == MinutiaKind::Bifurcation
                    && (o.x - x).abs() <= 2.0
                    && (o.y - y).abs() <= 2.0
            })
        {
            continue;
        }
        let neighbours: Vec<usize> = RING
            .iter()
            .enumerate()
            .filter(|(k, _)| c >> k & 1 == 1)
            .map(|(_, &d)| offset(i, s, d))
            .collect();
        let mut traces = Vec::new();
        if kind == MinutiaKind::Ending {
            if let Some(&first) = neighbours.first() {
                traces.push(trace(px, s, i, first, &neighbours, max_len, dir_len));
            }
        } else {
            // One starting pixel per run of set bits, preferring a 4-neighbour.
            for k in 0..8u32 {
                let prev = (k + 7) % 8;
                if c >> k & 1 == 1 && c >> prev & 1 == 0 {
                    let mut pick = k;
                    let mut j = k;
                    while c >> j & 1 == 1 {
                        if j % 2 == 0 {
                            pick = j;
                            break;
                        }
                        j = (j + 1) % 8;
                        if j == k {
                            break;
                        }
                    }
                    let first = offset(i, s, RING[pick as usize]);
                    traces.push(trace(px, s, i, first, &neighbours, max_len, dir_len));
                }
            }
        }
        let dirs: Vec<(f32, f32)> = traces
            .iter()
            .filter_map(|t| {
                let (tx, ty) = xy(t.dir_point, s);
                unit((tx - x, ty - y))
            })
            .collect();
        let d = match (kind, dirs.len()) {
            (MinutiaKind::Ending, 1) => dirs[0],
            (MinutiaKind::Bifurcation, 3) => {
                // The two branches closest in angle; the fork points between them.
                let pairs = [(0, 1), (0, 2), (1, 2)];
                let (a, b) = pairs
                    .iter()
                    .copied()
                    .max_by(|p, q| dot(dirs[p.0], dirs[p.1]).total_cmp(&dot(dirs[q.0], dirs[q.1])))
                    .unwrap_or((0, 1));
                match unit((dirs[a].0 + dirs[b].0, dirs[a].1 + dirs[b].1)) {
                    Some(u) => u,
                    None => continue,
                }
            }
            _ => continue,
        };
        cands.push(Cand {
            x,
            y,
            kind,
            d,
            traces,
            dead: false,
        });
    }

    // Refine each direction with the orientation field, which averages over several ridges
    // and is steadier than a 12-pixel trace, as long as the two roughly agree.
    for c in cands.iter_mut() {
        if let Some(ci) = fields.cell_of(c.x, c.y) {
            let th = fields.orient[ci];
            let mut r = (th.cos(), th.sin());
            if dot(r, c.d) < 0.0 {
                r = (-r.0, -r.1);
            }
            if dot(r, c.d) > cfg.refine_max_angle.cos() {
                if let Some(u) = unit((r.0 + c.d.0, r.1 + c.d.1)) {
                    c.d = u;
                }
            }
        }
    }

    let period_at = |x: f32, y: f32| {
        fields
            .cell_of(x, y)
            .and_then(|i| fields.period.get(i).copied())
            .unwrap_or(cfg.default_period)
    };
    let find_at = |cands: &[Cand], p: usize, not: usize| -> Option<usize> {
        let (px_, py_) = xy(p, s);
        cands
            .iter()
            .enumerate()
            .position(|(k, o)| k != not && (o.x - px_).abs() <= 2.0 && (o.y - py_).abs() <= 2.0)
    };

    // Structural rules from the traces: spurs, short fragments, bridges.
    let mut kill: Vec<usize> = Vec::new();
    for (k, c) in cands.iter().enumerate() {
        let t = period_at(c.x, c.y);
        for tr in &c.traces {
            let short = (tr.steps as f32) <= cfg.spur_length * t;
            match (c.kind, tr.stop) {
                (MinutiaKind::Ending, Stop::End) | (MinutiaKind::Ending, Stop::Junction)
                    if short =>
                {
                    kill.push(k);
                    if let Some(o) = find_at(&cands, tr.last, k) {
                        kill.push(o);
                    }
                }
                (MinutiaKind::Bifurcation, Stop::Junction)
                    if (tr.steps as f32) <= cfg.bridge_length * t =>
                {
                    if let Some(o) = find_at(&cands, tr.last, k) {
                        kill.push(k);
                        kill.push(o);
                    }
                }
                (MinutiaKind::Bifurcation, Stop::End) if short => {
                    // A tiny branch: the fork and the branch's end are both artefacts.
                    kill.push(k);
                    if let Some(o) = find_at(&cands, tr.last, k) {
                        kill.push(o);
                    }
                }
                _ => {}
            }
        }
    }
    for k in kill {
        if let Some(c) = cands.get_mut(k) {
            c.dead = true;
        }
    }

    // Breaks: two endings facing each other across a gap shorter than a period or so, along
    // the ridge direction.
    let cos_break = cfg.break_max_angle.cos();
    let n = cands.len();
    let mut kill = Vec::new();
    for a in 0..n {
        if cands[a].dead || cands[a].kind != MinutiaKind::Ending {
            continue;
        }
        for b in a + 1..n {
            if cands[b].dead || cands[b].kind != MinutiaKind::Ending {
                continue;
            }
            let (ca, cb) = (&cands[a], &cands[b]);
            let v = (cb.x - ca.x, cb.y - ca.y);
            let dist = (v.0 * v.0 + v.1 * v.1).sqrt();
            if dist > cfg.break_distance * period_at(ca.x, ca.y) || dist < 1e-3 {
                continue;
            }
            let u = (v.0 / dist, v.1 / dist);
            if dot(ca.d, cb.d) < -cos_break && dot(u, ca.d) < -cos_break && dot(u, cb.d) > cos_break
            {
                kill.push(a);
                kill.push(b);
            }
        }
    }
    for k in kill {
        if let Some(c) = cands.get_mut(k) {
            c.dead = true;
        }
    }

    // Near the edge of the finger area or of the image, endings are where the enhanced area
    // stops, not where ridges do.
    for c in cands.iter_mut().filter(|c| !c.dead) {
        let r = cfg.border_margin;
        let inside = (0..16).all(|k| {
            let a = k as f32 * std::f32::consts::TAU / 16.0;
            let (x, y) = (c.x + r * a.cos(), c.y + r * a.sin());
            x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32 && fields.in_mask(x, y)
        });
        if !inside {
            c.dead = true;
        }
    }

    // Clusters: survivors closer than a fraction of a period are noise.
    let mut kill = Vec::new();
    for a in 0..n {
        if cands[a].dead {
            continue;
        }
        for b in a + 1..n {
            if cands[b].dead {
                continue;
            }
            let (ca, cb) = (&cands[a], &cands[b]);
            let d2 = (ca.x - cb.x).powi(2) + (ca.y - cb.y).powi(2);
            let lim = cfg.cluster_distance * period_at(ca.x, ca.y);
            if d2 < lim * lim {
                kill.push(a);
                kill.push(b);
            }
        }
    }
    for k in kill {
        if let Some(c) = cands.get_mut(k) {
            c.dead = true;
        }
    }

    let dist = border_distance(fields);
    let mut out: Vec<Minutia> = cands
        .iter()
        .filter(|c| !c.dead)
        .filter_map(|c| {
            let ci = fields.cell_of(c.x, c.y)?;
            let coh = fields.coherence.get(ci).copied().unwrap_or(0.0);
            let clar = fields.clarity.get(ci).copied().unwrap_or(0.0);
            let bd = dist.get(ci).copied().unwrap_or(0.0) * CELL as f32;
            let border = (bd / (4.0 * cfg.default_period)).clamp(0.0, 1.0);
            let q = 100.0 * (0.5 * coh + 0.5 * clar) * (0.5 + 0.5 * border);
            let quality = q.round().clamp(1.0, 100.0) as u8;
            (quality >= cfg.min_minutia_quality).then(|| {
                // Pixel direction (dx, dy) with y down → angle counter-clockwise as seen.
                let angle = (-c.d.1).atan2(c.d.0);
                Minutia::new(c.x, c.y, angle, c.kind, quality)
            })
        })
        .collect();
    if out.len() > crate::FingerTemplate::MAX_MINUTIAE {
        out.sort_by_key(|m| std::cmp::Reverse(m.quality));
        out.truncate(crate::FingerTemplate::MAX_MINUTIAE);
    }
    out
}

/// Chamfer distance (in cells) from each foreground cell to the nearest background cell or
/// the grid edge.
fn border_distance(f: &Fields) -> Vec<f32> {
    let (cw, ch) = (f.cw, f.ch);
    let big = (cw + ch) as f32;
    let mut d: Vec<f32> = f.mask.iter().map(|&m| if m { big } else { 0.0 }).collect();
    let get = |d: &[f32], x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x as usize >= cw || y as usize >= ch {
            0.0
        } else {
            d[y as usize * cw + x as usize]
        }
    };
    let diag = std::f32::consts::SQRT_2;
    for y in 0..ch as isize {
        for x in 0..cw as isize {
            let i = y as usize * cw + x as usize;
            if d[i] == 0.0 {
                continue;
            }
            let v = d[i]
                .min(get(&d, x - 1, y) + 1.0)
                .min(get(&d, x, y - 1) + 1.0)
                .min(get(&d, x - 1, y - 1) + diag)
                .min(get(&d, x + 1, y - 1) + diag);
            d[i] = v;
        }
    }
    for y in (0..ch as isize).rev() {
        for x in (0..cw as isize).rev() {
            let i = y as usize * cw + x as usize;
            if d[i] == 0.0 {
                continue;
            }
            let v = d[i]
                .min(get(&d, x + 1, y) + 1.0)
                .min(get(&d, x, y + 1) + 1.0)
                .min(get(&d, x + 1, y + 1) + diag)
                .min(get(&d, x - 1, y + 1) + diag);
            d[i] = v;
        }
    }
    d
}

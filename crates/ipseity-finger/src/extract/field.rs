//! Field estimation on a grid of small cells: local normalisation, orientation and
//! coherence, foreground segmentation, ridge period and ridge clarity. Everything the
//! quality score needs comes from here, so [`super::quality`] stops after this stage.

use super::ExtractConfig;
use std::f32::consts::PI;

/// Side of a grid cell, pixels. Smaller than a ridge period (about 9 px at 500 ppi) so the
/// fields follow curved ridges near cores and deltas; the estimation windows span several
/// cells.
pub(super) const CELL: usize = 8;

/// A single-channel float image, row-major.
pub(super) struct Plane {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// Nearest-pixel sample. (A cast after adding one half rounds without the library call
    /// `round` compiles to on baseline x86-64.)
    fn sample(&self, x: f32, y: f32) -> Option<f32> {
        if !(x >= -0.5 && y >= -0.5) {
            return None;
        }
        let (x, y) = ((x + 0.5) as usize, (y + 0.5) as usize);
        if x >= self.w || y >= self.h {
            return None;
        }
        self.data.get(y * self.w + x).copied()
    }
}

/// Per-cell fields, each `cw * ch` long, row-major.
pub(super) struct Fields {
    pub cw: usize,
    pub ch: usize,
    /// Ridge orientation, radians in `[0, π)` in pixel coordinates (y down): the ridge runs
    /// along `(cos θ, sin θ)`. Smoothed in the doubled-angle domain.
    pub orient: Vec<f32>,
    /// Coherence of the structure tensor, 0 (isotropic) to 1 (perfectly parallel ridges).
    pub coherence: Vec<f32>,
    /// Ridge period, pixels (filled in where unreliable, smoothed).
    pub period: Vec<f32>,
    /// Whether the period was measured in this cell rather than filled in.
    pub period_valid: Vec<bool>,
    /// Share of the local variance explained by a pattern constant along the ridge
    /// (0 noise, 1 clean ridges).
    pub clarity: Vec<f32>,
    /// Gray-level standard deviation around the cell.
    pub contrast: Vec<f32>,
    /// Foreground (finger) cells.
    pub mask: Vec<bool>,
}

impl Fields {
    /// Cell index of a pixel position, if inside the grid.
    pub fn cell_of(&self, x: f32, y: f32) -> Option<usize> {
        if !(x >= 0.0 && y >= 0.0) {
            return None;
        }
        let (cx, cy) = ((x as usize) / CELL, (y as usize) / CELL);
        (cx < self.cw && cy < self.ch).then_some(cy * self.cw + cx)
    }

    /// Whether a pixel position lies in a foreground cell.
    pub fn in_mask(&self, x: f32, y: f32) -> bool {
        self.cell_of(x, y)
            .and_then(|i| self.mask.get(i).copied())
            .unwrap_or(false)
    }
}

/// Local normalisation: zero mean, unit variance over a `(2r+1)²` window, negated so ridges
/// (dark) are positive. Box sums run separably on integers so the cost is linear in pixels
/// whatever the window.
pub(super) fn normalise(px: &[u8], w: usize, h: usize, r: usize) -> Plane {
    let n = w * h;
    let mut hs = vec![0u32; n];
    let mut hs2 = vec![0u32; n];
    for y in 0..h {
        let row = &px[y * w..(y + 1) * w];
        let (mut s, mut s2) = (0u32, 0u32);
        // Running window [x - r, x + r] clamped to the row.
        for &v in row.iter().take(r.min(w)) {
            s += u32::from(v);
            s2 += u32::from(v) * u32::from(v);
        }
        for x in 0..w {
            if x + r < w {
                let v = u32::from(row[x + r]);
                s += v;
                s2 += v * v;
            }
            if x > r {
                let v = u32::from(row[x - r - 1]);
                s -= v;
                s2 -= v * v;
            }
            hs[y * w + x] = s;
            hs2[y * w + x] = s2;
        }
    }
    let mut out = vec![0f32; n];
    let mut vs = vec![0u32; w];
    let mut vs2 = vec![0u32; w];
    for y in 0..r.min(h) {
        for x in 0..w {
            vs[x] += hs[y * w + x];
            vs2[x] += hs2[y * w + x];
        }
    }
    for y in 0..h {
        if y + r < h {
            let o = (y + r) * w;
            for x in 0..w {
                vs[x] += hs[o + x];
                vs2[x] += hs2[o + x];
            }
        }
        if y > r {
            let o = (y - r - 1) * w;
            for x in 0..w {
                vs[x] -= hs[o + x];
                vs2[x] -= hs2[o + x];
            }
        }
        let rows = (y + r).min(h - 1) + 1 - y.saturating_sub(r);
        for x in 0..w {
            let cols = (x + r).min(w - 1) + 1 - x.saturating_sub(r);
            let cnt = (rows * cols) as f32;
            let mean = vs[x] as f32 / cnt;
            let var = (vs2[x] as f32 / cnt - mean * mean).max(0.0);
            // The floor keeps flat areas flat instead of amplifying sensor noise.
            let sd = var.sqrt().max(4.0);
            out[y * w + x] = ((mean - f32::from(px[y * w + x])) / sd).clamp(-3.0, 3.0);
        }
    }
    Plane { w, h, data: out }
}

/// Separable 5-tap binomial blur (sigma 1 px), edges clamped.
fn binomial_blur(p: &Plane) -> Plane {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let (w, h) = (p.w, p.h);
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        let row = &p.data[y * w..(y + 1) * w];
        for x in 0..w {
            tmp[y * w + x] = K
                .iter()
                .enumerate()
                .map(|(k, c)| c * row[clamp(x as isize + k as isize - 2, w)])
                .sum();
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for (k, c) in K.iter().enumerate() {
            let src = clamp(y as isize + k as isize - 2, h) * w;
            for x in 0..w {
                out[y * w + x] += c * tmp[src + x];
            }
        }
    }
    Plane { w, h, data: out }
}

/// Separable Gaussian smoothing of a cell field, edges handled by renormalising the weights.
fn smooth(data: &[f32], cw: usize, ch: usize, sigma: f32) -> Vec<f32> {
    let r = (2.5 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let mut tmp = vec![0f32; data.len()];
    for y in 0..ch {
        for x in 0..cw {
            let (mut s, mut ws) = (0f32, 0f32);
            for (j, &kw) in k.iter().enumerate() {
                let xx = x as isize + j as isize - r;
                if xx >= 0 && (xx as usize) < cw {
                    s += kw * data[y * cw + xx as usize];
                    ws += kw;
                }
            }
            tmp[y * cw + x] = s / ws;
        }
    }
    let mut out = vec![0f32; data.len()];
    for y in 0..ch {
        for x in 0..cw {
            let (mut s, mut ws) = (0f32, 0f32);
            for (j, &kw) in k.iter().enumerate() {
                let yy = y as isize + j as isize - r;
                if yy >= 0 && (yy as usize) < ch {
                    s += kw * tmp[yy as usize * cw + x];
                    ws += kw;
                }
            }
            out[y * cw + x] = s / ws;
        }
    }
    out
}

/// Estimates every field. `px` is the raw image, `norm` its normalisation.
pub(super) fn estimate(px: &[u8], norm: &Plane, cfg: &ExtractConfig) -> Fields {
    let (w, h) = (norm.w, norm.h);
    let cw = w.div_ceil(CELL);
    let ch = h.div_ceil(CELL);
    let nc = cw * ch;

    // Structure tensor and raw gray moments per cell.
    let mut gxx = vec![0f32; nc];
    let mut gyy = vec![0f32; nc];
    let mut gxy = vec![0f32; nc];
    let mut s1 = vec![0f32; nc];
    let mut s2 = vec![0f32; nc];
    let mut cnt = vec![0f32; nc];
    // Gradients of a lightly blurred copy: the pores and breaks of dry ridges and sensor
    // noise are finer than a ridge, and left in they scatter the tensor's orientation.
    let blurred = binomial_blur(norm);
    let d = &blurred.data;
    // Row by row and cell by cell, accumulating in locals: the per-pixel cell lookup and
    // read-modify-write of six arrays cost more than the Sobel arithmetic.
    for y in 0..h {
        let cy = y / CELL;
        let row = &px[y * w..(y + 1) * w];
        let interior = y > 0 && y + 1 < h;
        for cx in 0..cw {
            let x0 = cx * CELL;
            let x1 = (x0 + CELL).min(w);
            let (mut a1, mut a2) = (0f32, 0f32);
            for &p in &row[x0..x1] {
                let v = f32::from(p);
                a1 += v;
                a2 += v * v;
            }
            let c = cy * cw + cx;
            s1[c] += a1;
            s2[c] += a2;
            cnt[c] += (x1 - x0) as f32;
            if !interior {
                continue;
            }
            let (mut bxx, mut byy, mut bxy) = (0f32, 0f32, 0f32);
            let up = &d[(y - 1) * w..y * w];
            let mid = &d[y * w..(y + 1) * w];
            let dn = &d[(y + 1) * w..(y + 2) * w];
            for x in x0.max(1)..x1.min(w - 1) {
                let gx = (up[x + 1] + 2.0 * mid[x + 1] + dn[x + 1])
                    - (up[x - 1] + 2.0 * mid[x - 1] + dn[x - 1]);
                let gy =
                    (dn[x - 1] + 2.0 * dn[x] + dn[x + 1]) - (up[x - 1] + 2.0 * up[x] + up[x + 1]);
                bxx += gx * gx;
                byy += gy * gy;
                bxy += gx * gy;
            }
            gxx[c] += bxx;
            gyy[c] += byy;
            gxy[c] += bxy;
        }
    }
    let mean: Vec<f32> = s1.iter().zip(&cnt).map(|(s, n)| s / n).collect();
    let sq: Vec<f32> = s2.iter().zip(&cnt).map(|(s, n)| s / n).collect();
    let mean_s = smooth(&mean, cw, ch, 1.0);
    let sq_s = smooth(&sq, cw, ch, 1.0);
    let contrast: Vec<f32> = mean_s
        .iter()
        .zip(&sq_s)
        .map(|(m, s)| (s - m * m).max(0.0).sqrt())
        .collect();

    // Tensor over about three cells: coherence and a first orientation.
    let sxx = smooth(&gxx, cw, ch, 1.0);
    let syy = smooth(&gyy, cw, ch, 1.0);
    let sxy = smooth(&gxy, cw, ch, 1.0);
    let mut coherence = vec![0f32; nc];
    let mut dc = vec![0f32; nc];
    let mut ds = vec![0f32; nc];
    for i in 0..nc {
        let a = sxx[i] - syy[i];
        let b = 2.0 * sxy[i];
        let num = (a * a + b * b).sqrt();
        let den = sxx[i] + syy[i];
        if den > 1e-6 && num > 1e-9 {
            let coh = (num / den).min(1.0);
            coherence[i] = coh;
            // Ridges run perpendicular to the gradient: doubled angle turns by π.
            dc[i] = -a / num * coh;
            ds[i] = -b / num * coh;
        }
    }
    let dc = smooth(&dc, cw, ch, cfg.orientation_smoothing);
    let ds = smooth(&ds, cw, ch, cfg.orientation_smoothing);
    let orient: Vec<f32> = dc
        .iter()
        .zip(&ds)
        .map(|(c, s)| (0.5 * s.atan2(*c)).rem_euclid(PI))
        .collect();

    // Period and clarity from an oriented signature, where there is contrast at all.
    let max_contrast = contrast.iter().fold(0f32, |a, &b| a.max(b));
    let contrast_floor = cfg.min_contrast.max(0.15 * max_contrast);
    let mut period = vec![0f32; nc];
    let mut period_valid = vec![false; nc];
    let mut clarity = vec![0f32; nc];
    // One signature per 2x2 group of cells (16 px, as in Hong, Wan and Jain's blocks): the
    // 33-px window spans the group anyway, and this is the dearest part of the stage.
    for gy in (0..ch).step_by(2) {
        for gx in (0..cw).step_by(2) {
            let group: Vec<usize> = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .filter(|(dx, dy)| gx + dx < cw && gy + dy < ch)
                .map(|(dx, dy)| (gy + dy) * cw + gx + dx)
                .filter(|&i| contrast[i] >= contrast_floor)
                .collect();
            if group.is_empty() {
                continue;
            }
            let (c2, s2) = group.iter().fold((0f32, 0f32), |(c, s), &i| {
                (c + (2.0 * orient[i]).cos(), s + (2.0 * orient[i]).sin())
            });
            let theta = 0.5 * s2.atan2(c2);
            let centre = (
                ((gx * CELL + CELL) as f32).min(w as f32 - 1.0),
                ((gy * CELL + CELL) as f32).min(h as f32 - 1.0),
            );
            let (p, c) = signature(norm, centre, theta, cfg);
            for &i in &group {
                clarity[i] = c;
                if let Some(p) = p {
                    period[i] = p;
                    period_valid[i] = true;
                }
            }
        }
    }

    let fg: Vec<bool> = (0..nc)
        .map(|i| {
            contrast[i] >= contrast_floor
                && coherence[i] >= cfg.min_coherence
                && clarity[i] >= cfg.min_clarity
                // A lone edge (the finger's outline) is coherent and clear but not periodic.
                && period_valid[i]
        })
        .collect();
    let ridged = clean_mask(&fg, cw, ch);
    // Dry, wet or faint patches inside a finger lose clarity or coherence (dotted or merged
    // ridges) but not contrast; cutting them out leaves holes whose edges then veto every
    // minutia near them. The finger is roughly convex, so cells with contrast inside the
    // hull of the clearly ridged area are finger too.
    let contrasty: Vec<bool> = contrast.iter().map(|&c| c >= contrast_floor).collect();
    let mask = fill_hull(&ridged, &contrasty, cw, ch);

    let period = fill_period(&period, &period_valid, &mask, cw, ch, cfg.default_period);

    Fields {
        cw,
        ch,
        orient,
        coherence,
        period,
        period_valid,
        clarity,
        contrast,
        mask,
    }
}

/// Number of samples across the ridges in a signature (about three periods).
const SIG_LEN: usize = 33;
/// Number of samples along the ridges averaged into each signature value.
const SIG_ALONG: usize = 12;

/// Projects a window centred on `c`, oriented by the ridge angle, onto the axis across the
/// ridges (the "x-signature"). Returns the period from its zero crossings, when plausible,
/// and the clarity: variance of the signature over variance of the samples. Averaging along
/// the ridge keeps a clean ridge pattern's variance and divides white noise's by the number
/// of samples averaged.
fn signature(n: &Plane, c: (f32, f32), theta: f32, cfg: &ExtractConfig) -> (Option<f32>, f32) {
    let (ux, uy) = (theta.cos(), theta.sin());
    let (vx, vy) = (-uy, ux);
    let mut sig = [0f32; SIG_LEN];
    let (mut all, mut all2, mut nall) = (0f32, 0f32, 0f32);
    let half = (SIG_LEN / 2) as f32;
    for (k, s) in sig.iter_mut().enumerate() {
        let t = k as f32 - half;
        let (mut acc, mut m) = (0f32, 0f32);
        for j in 0..SIG_ALONG {
            let a = (j as f32 - (SIG_ALONG as f32 - 1.0) / 2.0) * 1.25;
            let x = c.0 + t * vx + a * ux;
            let y = c.1 + t * vy + a * uy;
            if let Some(v) = n.sample(x, y) {
                acc += v;
                m += 1.0;
                all += v;
                all2 += v * v;
                nall += 1.0;
            }
        }
        *s = if m > 0.0 { acc / m } else { 0.0 };
    }
    let nall = nall.max(1.0);
    let mean_all = all / nall;
    let var_all = (all2 / nall - mean_all * mean_all).max(1e-6);
    let mean_sig = sig.iter().sum::<f32>() / SIG_LEN as f32;
    let var_sig = sig.iter().map(|s| (s - mean_sig).powi(2)).sum::<f32>() / SIG_LEN as f32;
    let clarity = (var_sig / var_all).clamp(0.0, 1.0);

    // Light smoothing so one noisy sample does not add a pair of crossings.
    let mut sm = [0f32; SIG_LEN];
    for k in 0..SIG_LEN {
        let a = sig[k.saturating_sub(1)];
        let b = sig[(k + 1).min(SIG_LEN - 1)];
        sm[k] = 0.25 * a + 0.5 * sig[k] + 0.25 * b - mean_sig;
    }
    let mut first = None;
    let mut last = 0f32;
    let mut count = 0usize;
    for k in 1..SIG_LEN {
        let (a, b) = (sm[k - 1], sm[k]);
        if (a < 0.0) != (b < 0.0) {
            let z = (k - 1) as f32 + a / (a - b);
            first.get_or_insert(z);
            last = z;
            count += 1;
        }
    }
    let period = match first {
        Some(f) if count >= 3 => {
            let p = 2.0 * (last - f) / (count - 1) as f32;
            (p >= cfg.min_period && p <= cfg.max_period).then_some(p)
        }
        _ => None,
    };
    (period, clarity)
}

/// Morphological clean-up of the raw foreground: closing to bridge gaps (singular points
/// have low coherence), hole filling, and the largest 8-connected component only.
fn clean_mask(fg: &[bool], cw: usize, ch: usize) -> Vec<bool> {
    // Work on a grid with a background margin wider than the closing, so the closing
    // neither eats a finger that fills the frame nor grows a finger out to the image edge.
    const P: usize = 3;
    let (pw, ph) = (cw + 2 * P, ch + 2 * P);
    let mut m = vec![false; pw * ph];
    for cy in 0..ch {
        for cx in 0..cw {
            m[(cy + P) * pw + cx + P] = fg[cy * cw + cx];
        }
    }
    // Opening by one cell drops isolated speckle before the closing can grow it.
    m = erode(&m, pw, ph);
    m = dilate(&m, pw, ph);
    for _ in 0..2 {
        m = dilate(&m, pw, ph);
    }
    for _ in 0..2 {
        m = erode(&m, pw, ph);
    }
    let m: Vec<bool> = (0..cw * ch)
        .map(|i| m[(i / cw + P) * pw + i % cw + P])
        .collect();
    // Fill holes: background is what the grid border reaches through background.
    let mut outside = vec![false; m.len()];
    let mut stack: Vec<usize> = Vec::new();
    for cy in 0..ch {
        for cx in 0..cw {
            if (cx == 0 || cy == 0 || cx + 1 == cw || cy + 1 == ch) && !m[cy * cw + cx] {
                outside[cy * cw + cx] = true;
                stack.push(cy * cw + cx);
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (cx, cy) = (i % cw, i / cw);
        for (nx, ny) in neighbours4(cx, cy, cw, ch) {
            let j = ny * cw + nx;
            if !m[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    let filled: Vec<bool> = outside.iter().map(|o| !o).collect();
    largest_component(&filled, cw, ch)
}

/// `m` plus the cells of `allowed` inside `m`'s orthogonal hull (between its first and last
/// cell on both the row and the column), kept to the component that holds `m`.
fn fill_hull(m: &[bool], allowed: &[bool], cw: usize, ch: usize) -> Vec<bool> {
    let mut rows = vec![(usize::MAX, 0usize); ch];
    let mut cols = vec![(usize::MAX, 0usize); cw];
    for cy in 0..ch {
        for cx in 0..cw {
            if m[cy * cw + cx] {
                rows[cy] = (rows[cy].0.min(cx), rows[cy].1.max(cx));
                cols[cx] = (cols[cx].0.min(cy), cols[cx].1.max(cy));
            }
        }
    }
    let grown: Vec<bool> = (0..cw * ch)
        .map(|i| {
            let (cx, cy) = (i % cw, i / cw);
            m[i] || (allowed[i]
                && (rows[cy].0..=rows[cy].1).contains(&cx)
                && (cols[cx].0..=cols[cx].1).contains(&cy))
        })
        .collect();
    // An opening keeps the fill from hanging thin fringes of background speckle on the finger.
    let opened = dilate(&erode(&grown, cw, ch), cw, ch);
    let merged: Vec<bool> = opened.iter().zip(m).map(|(a, b)| *a || *b).collect();
    largest_component(&merged, cw, ch)
}

fn neighbours4(cx: usize, cy: usize, cw: usize, ch: usize) -> impl Iterator<Item = (usize, usize)> {
    let cand = [
        (cx.wrapping_sub(1), cy),
        (cx + 1, cy),
        (cx, cy.wrapping_sub(1)),
        (cx, cy + 1),
    ];
    cand.into_iter().filter(move |&(x, y)| x < cw && y < ch)
}

/// Erosion with a 3x3 square; cells outside the grid are ignored.
fn erode(m: &[bool], cw: usize, ch: usize) -> Vec<bool> {
    morph(m, cw, ch, true)
}

fn dilate(m: &[bool], cw: usize, ch: usize) -> Vec<bool> {
    morph(m, cw, ch, false)
}

fn morph(m: &[bool], cw: usize, ch: usize, erode: bool) -> Vec<bool> {
    let mut out = vec![false; m.len()];
    for cy in 0..ch {
        for cx in 0..cw {
            let mut all = true;
            let mut any = false;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (x, y) = (cx as isize + dx, cy as isize + dy);
                    if x < 0 || y < 0 || x as usize >= cw || y as usize >= ch {
                        continue;
                    }
                    let v = m[y as usize * cw + x as usize];
                    all &= v;
                    any |= v;
                }
            }
            out[cy * cw + cx] = if erode { all } else { any };
        }
    }
    out
}

fn largest_component(m: &[bool], cw: usize, ch: usize) -> Vec<bool> {
    let mut label = vec![0u32; m.len()];
    let mut best = (0u32, 0usize);
    let mut next = 1u32;
    let mut stack = Vec::new();
    for start in 0..m.len() {
        if !m[start] || label[start] != 0 {
            continue;
        }
        let mut size = 0usize;
        label[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (cx, cy) = (i % cw, i / cw);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (x, y) = (cx as isize + dx, cy as isize + dy);
                    if x < 0 || y < 0 || x as usize >= cw || y as usize >= ch {
                        continue;
                    }
                    let j = y as usize * cw + x as usize;
                    if m[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        if size > best.1 {
            best = (next, size);
        }
        next += 1;
    }
    label.iter().map(|&l| l != 0 && l == best.0).collect()
}

/// Fills unmeasured periods inside the mask from measured neighbours (growing inwards), then
/// the rest with the median, then smooths over the mask.
fn fill_period(
    period: &[f32],
    valid: &[bool],
    mask: &[bool],
    cw: usize,
    ch: usize,
    default: f32,
) -> Vec<f32> {
    let mut p = period.to_vec();
    let mut known: Vec<bool> = valid.iter().zip(mask).map(|(v, m)| *v && *m).collect();
    let mut vals: Vec<f32> = (0..p.len()).filter(|&i| known[i]).map(|i| p[i]).collect();
    let median = if vals.is_empty() {
        default
    } else {
        let mid = vals.len() / 2;
        vals.select_nth_unstable_by(mid, f32::total_cmp);
        vals[mid]
    };
    for _ in 0..4 {
        let mut changed = false;
        let snapshot = known.clone();
        for cy in 0..ch {
            for cx in 0..cw {
                let i = cy * cw + cx;
                if snapshot[i] || !mask[i] {
                    continue;
                }
                let (mut s, mut n) = (0f32, 0f32);
                for dy in -1isize..=1 {
                    for dx in -1isize..=1 {
                        let (x, y) = (cx as isize + dx, cy as isize + dy);
                        if x < 0 || y < 0 || x as usize >= cw || y as usize >= ch {
                            continue;
                        }
                        let j = y as usize * cw + x as usize;
                        if snapshot[j] {
                            s += p[j];
                            n += 1.0;
                        }
                    }
                }
                if n > 0.0 {
                    p[i] = s / n;
                    known[i] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (v, k) in p.iter_mut().zip(&known) {
        if !k {
            *v = median;
        }
    }
    smooth(&p, cw, ch, 1.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_zero_mean_and_ridges_positive() {
        let (w, h) = (64, 64);
        let px: Vec<u8> = (0..w * h)
            .map(|i| {
                let x = (i % w) as f32;
                (128.0 + 60.0 * (2.0 * PI * x / 9.0).cos()) as u8
            })
            .collect();
        let n = normalise(&px, w, h, 8);
        // Column 0 is a bright valley, column 4-5 dark ridge.
        assert!(n.data[32 * w + 9] < -0.5);
        assert!(n.data[32 * w + 13] > 0.5);
        let m: f32 = n.data.iter().sum::<f32>() / n.data.len() as f32;
        assert!(m.abs() < 0.2, "mean {m}");
    }

    #[test]
    fn orientation_and_period_of_vertical_stripes() {
        let (w, h) = (128, 128);
        let px: Vec<u8> = (0..w * h)
            .map(|i| {
                let x = (i % w) as f32;
                (128.0 + 60.0 * (2.0 * PI * x / 10.0).cos()) as u8
            })
            .collect();
        let n = normalise(&px, w, h, 8);
        let f = estimate(&px, &n, &ExtractConfig::default());
        let i = 8 * f.cw + 8;
        // Vertical ridges run along y: θ = π/2.
        assert!((f.orient[i] - PI / 2.0).abs() < 0.05, "{}", f.orient[i]);
        assert!(f.coherence[i] > 0.9);
        assert!((f.period[i] - 10.0).abs() < 0.5, "{}", f.period[i]);
        assert!(f.clarity[i] > 0.8, "{}", f.clarity[i]);
        assert!(f.mask[i]);
    }
}

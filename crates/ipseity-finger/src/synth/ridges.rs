//! Ridge pattern growth by iterated contextual Gabor filtering: every pixel is filtered with
//! the kernel of its own quantised orientation and period, then clipped to [-1, 1]. Starting
//! from a few seed blobs, ridges spread along the orientation field and meet with a phase
//! mismatch where the fronts collide, which is where minutiae appear.

use super::field::{FingerShape, PeriodMap, SingularityModel};
use super::math;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::f32::consts::PI;

/// Kernel radius at full resolution; 11x11 kernels cover about one ridge period either side.
const FINE_RADIUS: usize = 5;
/// Kernel radius at half resolution (7x7).
const COARSE_RADIUS: usize = 3;
/// Orientation bins over [0, π).
pub(crate) const ORIENTATIONS: usize = 32;
/// Period bins over the configured range.
pub(crate) const PERIODS: usize = 6;
const INACTIVE: u16 = u16::MAX;
/// Spacing of the grid on which the orientation model is evaluated exactly, in pixels of
/// the level being indexed.
const GRID: usize = 4;
/// Full-resolution iterations after the half-resolution growth.
const REFINE_ITERATIONS: u32 = 2;

/// Gabor kernels of one radius, indexed by `orientation * PERIODS + period`.
pub(crate) struct Bank {
    side: usize,
    taps: Vec<f32>,
}

impl Bank {
    /// Kernels for periods given in pixels of the level they filter.
    pub(crate) fn new(radius: usize, min_period: f32, max_period: f32) -> Self {
        let side = 2 * radius + 1;
        let mut taps = Vec::with_capacity(ORIENTATIONS * PERIODS * side * side);
        for o in 0..ORIENTATIONS {
            let theta = f64::from(o as u16) * std::f64::consts::PI / ORIENTATIONS as f64;
            let (st, ct) = math::sin_cos(theta);
            for p in 0..PERIODS {
                let t = p as f64 / (PERIODS - 1) as f64;
                let period = f64::from(min_period) + (f64::from(max_period - min_period)) * t;
                taps.extend(kernel(radius, ct, st, period));
            }
        }
        Self { side, taps }
    }

    fn get(&self, id: u16) -> Option<&[f32]> {
        let n = self.side * self.side;
        self.taps
            .get(usize::from(id) * n..(usize::from(id) + 1) * n)
    }
}

fn kernel(radius: usize, ct: f64, st: f64, period: f64) -> Vec<f32> {
    let side = 2 * radius + 1;
    let taps = side * side;
    let sigma_across = 0.45 * period;
    let sigma_along = 0.55 * period;
    let mut wave = vec![0.0f64; taps];
    let mut env = vec![0.0f64; taps];
    let r = radius as f64;
    for (i, (w, e)) in wave.iter_mut().zip(env.iter_mut()).enumerate() {
        let dx = (i % side) as f64 - r;
        let dy = (i / side) as f64 - r;
        let along = dx * ct + dy * st;
        let across = -dx * st + dy * ct;
        let g = math::exp(
            -0.5 * (along * along / (sigma_along * sigma_along)
                + across * across / (sigma_across * sigma_across)),
        );
        *e = g;
        *w = math::sin_cos(2.0 * std::f64::consts::PI * across / period).1;
    }
    // Zero mean, so flat regions decay instead of drifting to one sign.
    let sum_g: f64 = env.iter().zip(&wave).map(|(e, w)| e * w).sum();
    let sum_e: f64 = env.iter().sum();
    let dc = sum_g / sum_e;
    let k: Vec<f64> = env.iter().zip(&wave).map(|(e, w)| e * (w - dc)).collect();
    // Unit response to a matched sinusoid.
    let response: f64 = k.iter().zip(&wave).map(|(k, w)| k * w).sum();
    k.iter().map(|k| (k / response) as f32).collect()
}

/// Per-pixel kernel index (or inactive outside the shape's neighbourhood) for an image
/// whose pixel `(x, y)` lies at `(x, y) * scale` in master pixels; `min_period` and
/// `max_period` are in master pixels too.
#[allow(clippy::too_many_arguments)]
pub(crate) fn kernel_index(
    w: usize,
    h: usize,
    scale: f32,
    model: &SingularityModel,
    shape: &FingerShape,
    periods: &PeriodMap,
    min_period: f32,
    max_period: f32,
) -> Vec<u16> {
    let gw = w / GRID + 2;
    let gh = h / GRID + 2;
    let mut grid = Vec::with_capacity(gw * gh);
    for gy in 0..gh {
        for gx in 0..gw {
            let (x, y) = ((gx * GRID) as f32 * scale, (gy * GRID) as f32 * scale);
            let (c, s) = model.doubled(x, y, shape);
            grid.push((c, s, periods.period(x, y)));
        }
    }
    let margin = -((FINE_RADIUS + 2) as f32);
    let span = (max_period - min_period).max(1e-3);
    let mut index = vec![INACTIVE; w * h];
    for y in 0..h {
        let gy = y / GRID;
        let fy = (y % GRID) as f32 / GRID as f32;
        for x in 0..w {
            if shape.edge_distance(x as f32 * scale, y as f32 * scale) < margin {
                continue;
            }
            let gx = x / GRID;
            let fx = (x % GRID) as f32 / GRID as f32;
            let at = |dx: usize, dy: usize| grid[(gy + dy) * gw + gx + dx];
            let (a, b, c, d) = (at(0, 0), at(1, 0), at(0, 1), at(1, 1));
            let lerp = |p: f32, q: f32, r: f32, s: f32| {
                (p * (1.0 - fx) + q * fx) * (1.0 - fy) + (r * (1.0 - fx) + s * fx) * fy
            };
            let cos2 = lerp(a.0, b.0, c.0, d.0);
            let sin2 = lerp(a.1, b.1, c.1, d.1);
            let period = lerp(a.2, b.2, c.2, d.2);
            let theta = 0.5 * math::atan2_fast(sin2, cos2);
            let o = ((theta / PI * ORIENTATIONS as f32).round() as i32)
                .rem_euclid(ORIENTATIONS as i32) as usize;
            let p = (((period - min_period) / span) * (PERIODS - 1) as f32)
                .round()
                .clamp(0.0, (PERIODS - 1) as f32) as usize;
            index[y * w + x] = (o * PERIODS + p) as u16;
        }
    }
    index
}

/// Grows the ridge field; returns `w * h` values in [-1, 1], positive on ridges.
///
/// Fronts spread about one kernel radius per iteration, so the growth runs at half
/// resolution (a quarter of the pixels, 7x7 kernels) and only the last iterations at full
/// resolution, where they restore the ridge profile blurred by upsampling.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grow(
    w: usize,
    h: usize,
    model: &SingularityModel,
    shape: &FingerShape,
    periods: &PeriodMap,
    (min_period, max_period): (f32, f32),
    rng: &mut ChaCha8Rng,
    seed_spacing: f32,
    iterations: u32,
) -> Vec<f32> {
    // Amplifies the faint fringe of a growing front so it spreads by about a kernel radius
    // per iteration; the clipping that follows keeps ridges at full contrast.
    let gain: f32 = 4.0;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let coarse_index = kernel_index(cw, ch, 2.0, model, shape, periods, min_period, max_period);
    let coarse_bank = Bank::new(COARSE_RADIUS, 0.5 * min_period, 0.5 * max_period);
    let mut coarse = Plane::new(cw, ch, COARSE_RADIUS);
    let mut spare = Plane::new(cw, ch, COARSE_RADIUS);
    // Seeds on a jittered grid inside the shape.
    let step = seed_spacing.max(4.0);
    let mut y = step * 0.5;
    while y < h as f32 {
        let mut x = step * 0.5;
        while x < w as f32 {
            let sx = x + rng.gen_range(-0.4..0.4) * step;
            let sy = y + rng.gen_range(-0.4..0.4) * step;
            if shape.edge_distance(sx, sy) > 0.0 {
                coarse.stamp(sx * 0.5, sy * 0.5);
            }
            x += step;
        }
        y += step;
    }
    for _ in 0..iterations {
        filter_once::<{ 2 * COARSE_RADIUS + 1 }>(
            &coarse,
            &mut spare,
            &coarse_index,
            &coarse_bank,
            gain,
        );
        std::mem::swap(&mut coarse, &mut spare);
    }
    // Upsample (bilinear) and refine.
    let mut fine = Plane::new(w, h, FINE_RADIUS);
    for y in 0..h {
        let fy = ((y as f32 - 0.5) * 0.5).clamp(0.0, (ch - 1) as f32);
        let y0 = fy as usize;
        let y1 = (y0 + 1).min(ch - 1);
        let ty = fy - y0 as f32;
        for x in 0..w {
            let fx = ((x as f32 - 0.5) * 0.5).clamp(0.0, (cw - 1) as f32);
            let x0 = fx as usize;
            let x1 = (x0 + 1).min(cw - 1);
            let tx = fx - x0 as f32;
            let v = (coarse.at(x0, y0) * (1.0 - tx) + coarse.at(x1, y0) * tx) * (1.0 - ty)
                + (coarse.at(x0, y1) * (1.0 - tx) + coarse.at(x1, y1) * tx) * ty;
            fine.set(x, y, v);
        }
    }
    let mut fine_index = vec![INACTIVE; w * h];
    for y in 0..h {
        for x in 0..w {
            fine_index[y * w + x] = coarse_index[(y / 2) * cw + x / 2];
        }
    }
    let fine_bank = Bank::new(FINE_RADIUS, min_period, max_period);
    let mut spare = Plane::new(w, h, FINE_RADIUS);
    for _ in 0..REFINE_ITERATIONS {
        filter_once::<{ 2 * FINE_RADIUS + 1 }>(&fine, &mut spare, &fine_index, &fine_bank, gain);
        std::mem::swap(&mut fine, &mut spare);
    }
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        out.extend_from_slice(fine.row(y));
    }
    out
}

/// An image with a zero border as wide as the kernel radius, so filtering needs no checks.
struct Plane {
    w: usize,
    h: usize,
    r: usize,
    v: Vec<f32>,
}

impl Plane {
    fn new(w: usize, h: usize, r: usize) -> Self {
        Self {
            w,
            h,
            r,
            v: vec![0.0; (w + 2 * r) * (h + 2 * r)],
        }
    }

    fn stride(&self) -> usize {
        self.w + 2 * self.r
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        self.v[(y + self.r) * self.stride() + x + self.r]
    }

    fn set(&mut self, x: usize, y: usize, v: f32) {
        let s = self.stride();
        self.v[(y + self.r) * s + x + self.r] = v;
    }

    fn row(&self, y: usize) -> &[f32] {
        &self.v[(y + self.r) * self.stride() + self.r..][..self.w]
    }

    /// A small positive blob: the start of a ridge.
    fn stamp(&mut self, x: f32, y: f32) {
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (px, py) = (cx + dx, cy + dy);
                if px >= 0 && py >= 0 && (px as usize) < self.w && (py as usize) < self.h {
                    self.set(px as usize, py as usize, 1.0);
                }
            }
        }
    }
}

fn filter_once<const SIDE: usize>(
    src: &Plane,
    dst: &mut Plane,
    index: &[u16],
    bank: &Bank,
    gain: f32,
) {
    let (w, h, r) = (src.w, src.h, src.r);
    let pw = src.stride();
    for y in 0..h {
        let out_row = &mut dst.v[(y + r) * pw + r..][..w];
        let idx_row = &index[y * w..][..w];
        for x in 0..w {
            let Some(k) = bank.get(idx_row[x]) else {
                out_row[x] = 0.0;
                continue;
            };
            // Per-column partial sums: element-wise, so the compiler vectorises them while
            // the summation order stays fixed.
            let mut acc = [0.0f32; SIDE];
            for ky in 0..SIDE {
                let row = &src.v[(y + ky) * pw + x..][..SIDE];
                let kr = &k[ky * SIDE..][..SIDE];
                for i in 0..SIDE {
                    acc[i] += kr[i] * row[i];
                }
            }
            let s: f32 = acc.iter().sum();
            out_row[x] = (gain * s).clamp(-1.0, 1.0);
        }
    }
}

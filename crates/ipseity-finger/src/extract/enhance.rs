//! Contextual enhancement: each foreground cell is filtered with the even Gabor kernel
//! tuned to its ridge orientation and period, then thresholded at zero into a ridge map.
//!
//! This is the costly stage. Kernels are precomputed for quantised orientations and
//! periods, and a whole cell (constant orientation and period) is filtered with one kernel
//! so the inner loop runs over eight adjacent output pixels with the same tap, which the
//! compiler turns into vector instructions.

use super::field::{Fields, Plane, CELL};
use super::ExtractConfig;
use std::f32::consts::PI;

/// Bank of zero-mean even Gabor kernels, `orientations × periods`, each `(2r+1)²`.
pub(super) struct GaborBank {
    radius: usize,
    orientations: usize,
    periods: Vec<f32>,
    kernels: Vec<f32>,
}

impl GaborBank {
    pub fn new(cfg: &ExtractConfig) -> Self {
        let radius = cfg.gabor_radius;
        let size = 2 * radius + 1;
        let orientations = cfg.gabor_orientations.max(1);
        let mut periods = Vec::new();
        let mut p = cfg.min_period;
        while p <= cfg.max_period + 1e-3 {
            periods.push(p);
            p += cfg.gabor_period_step.max(0.25);
        }
        let mut kernels = Vec::with_capacity(orientations * periods.len() * size * size);
        for o in 0..orientations {
            let theta = o as f32 * PI / orientations as f32;
            let (c, s) = (theta.cos(), theta.sin());
            for &t in &periods {
                let sa = cfg.gabor_sigma_across * t;
                let sl = cfg.gabor_sigma_along * t;
                let start = kernels.len();
                for dy in 0..size {
                    for dx in 0..size {
                        let (x, y) = (dx as f32 - radius as f32, dy as f32 - radius as f32);
                        let along = x * c + y * s;
                        let across = -x * s + y * c;
                        let env = (-0.5
                            * (across * across / (sa * sa) + along * along / (sl * sl)))
                            .exp();
                        kernels.push(env * (2.0 * PI * across / t).cos());
                    }
                }
                // Zero mean: the response must not depend on the local gray level.
                let k = &mut kernels[start..];
                let m = k.iter().sum::<f32>() / k.len() as f32;
                let norm: f32 = k.iter().map(|v| (v - m).abs()).sum::<f32>().max(1e-6);
                for v in k.iter_mut() {
                    *v = (*v - m) / norm;
                }
            }
        }
        Self {
            radius,
            orientations,
            periods,
            kernels,
        }
    }

    fn kernel(&self, theta: f32, period: f32) -> &[f32] {
        let step = PI / self.orientations as f32;
        let o = ((theta.rem_euclid(PI) / step).round() as usize) % self.orientations;
        let mut pi = 0;
        let mut best = f32::INFINITY;
        for (i, &p) in self.periods.iter().enumerate() {
            let d = (p - period).abs();
            if d < best {
                best = d;
                pi = i;
            }
        }
        let size = (2 * self.radius + 1) * (2 * self.radius + 1);
        let start = (o * self.periods.len() + pi) * size;
        self.kernels.get(start..start + size).unwrap_or(&[])
    }
}

/// Binary ridge map with a one-pixel frame of background: `(w + 2) × (h + 2)`, 1 = ridge.
pub(super) struct RidgeMap {
    pub stride: usize,
    pub rows: usize,
    pub px: Vec<u8>,
}

/// Filters every foreground cell of `norm` and thresholds the response at zero.
pub(super) fn enhance(norm: &Plane, fields: &Fields, bank: &GaborBank) -> RidgeMap {
    let (w, h) = (norm.w, norm.h);
    let r = bank.radius;
    let size = 2 * r + 1;
    // Zero-padded copy (the normalised image has zero mean) so taps need no bounds checks;
    // extra columns let the last cell of a row read a full CELL-wide window.
    let pw = w + 2 * r + CELL;
    let ph = h + 2 * r + CELL;
    let mut pad = vec![0f32; pw * ph];
    for y in 0..h {
        let dst = (y + r) * pw + r;
        pad[dst..dst + w].copy_from_slice(&norm.data[y * w..(y + 1) * w]);
    }
    let stride = w + 2;
    let mut px = vec![0u8; stride * (h + 2)];
    for cy in 0..fields.ch {
        for cx in 0..fields.cw {
            let i = cy * fields.cw + cx;
            if !fields.mask[i] {
                continue;
            }
            let k = bank.kernel(fields.orient[i], fields.period[i]);
            if k.len() != size * size {
                continue;
            }
            let (x0, y0) = (cx * CELL, cy * CELL);
            for ty in 0..CELL {
                let y = y0 + ty;
                if y >= h {
                    break;
                }
                let mut acc = [0f32; CELL];
                for ky in 0..size {
                    let row = (y + ky) * pw + x0;
                    let krow = &k[ky * size..(ky + 1) * size];
                    for (kx, &kv) in krow.iter().enumerate() {
                        let src: &[f32; CELL] = match pad[row + kx..row + kx + CELL].try_into() {
                            Ok(s) => s,
                            Err(_) => continue,
                        };
                        for j in 0..CELL {
                            acc[j] += kv * src[j];
                        }
                    }
                }
                let out = (y + 1) * stride + x0 + 1;
                for (j, &a) in acc.iter().enumerate() {
                    if x0 + j < w {
                        px[out + j] = u8::from(a > 0.0);
                    }
                }
            }
        }
    }
    RidgeMap {
        stride,
        rows: h + 2,
        px,
    }
}

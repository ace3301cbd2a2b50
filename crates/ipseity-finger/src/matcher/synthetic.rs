//! Synthetic minutiae for testing and benchmarking the matcher without images: a "master"
//! finger (minutiae whose directions follow a loop-shaped orientation field, so that
//! different fingers share the local look that makes real impostors hard) and noisy
//! impressions of it (rotation, translation, smooth elastic distortion, partial overlap,
//! lost, spurious and jittered minutiae).
//!
//! Shared by the matcher's tests and its bench (included there by path), so it names its
//! dependencies through `super`.

use super::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use rand::Rng;
use std::f32::consts::{PI, TAU};

/// Image size of the master and of every impression.
pub const WIDTH: f32 = 400.0;
/// Image height.
pub const HEIGHT: f32 = 480.0;

/// A finger: minutiae in master coordinates (y down, angles as in [`Minutia`]).
#[derive(Debug, Clone)]
pub struct Master {
    /// The finger's true minutiae.
    pub minutiae: Vec<Minutia>,
}

/// Noise levels of an impression.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    /// Largest rotation, radians (uniform in ±).
    pub rotation: f32,
    /// Largest translation, pixels (uniform in ± on each axis).
    pub translation: f32,
    /// Largest elastic displacement, pixels.
    pub distortion: f32,
    /// Fraction of visible minutiae lost, uniform in this range.
    pub drop: (f32, f32),
    /// Spurious minutiae added, uniform count in `0..=spurious`.
    pub spurious: usize,
    /// Position jitter, pixels (uniform in ±).
    pub jitter_xy: f32,
    /// Direction jitter, radians (uniform in ±).
    pub jitter_angle: f32,
    /// Largest offset of the contact area from the finger's centre, pixels.
    pub offset: f32,
}

impl Default for Noise {
    fn default() -> Self {
        Self {
            rotation: 30.0_f32.to_radians(),
            translation: 40.0,
            distortion: 8.0,
            drop: (0.2, 0.4),
            spurious: 6,
            jitter_xy: 3.0,
            jitter_angle: 10.0_f32.to_radians(),
            offset: 50.0,
        }
    }
}

/// Loop-type orientation (Sherlock and Monro's zero-pole model with one core, one delta).
fn orientation(core: (f32, f32), delta: (f32, f32), base: f32, x: f32, y: f32) -> f32 {
    let a = (y - core.1).atan2(x - core.0);
    let b = (y - delta.1).atan2(x - delta.0);
    0.5 * (a - b) + base
}

/// A random finger with `55..80` minutiae at least 9 px apart.
pub fn master<R: Rng>(rng: &mut R) -> Master {
    let core = (
        WIDTH / 2.0 + rng.gen_range(-40.0..40.0),
        HEIGHT * 0.4 + rng.gen_range(-40.0..40.0),
    );
    let delta = (
        core.0 + rng.gen_range(-90.0..90.0),
        core.1 + rng.gen_range(110.0..180.0),
    );
    let base = rng.gen_range(-0.3..0.3);
    let n = rng.gen_range(55..80);
    let mut minutiae: Vec<Minutia> = Vec::with_capacity(n);
    let mut tries = 0;
    while minutiae.len() < n && tries < 10_000 {
        tries += 1;
        let (x, y) = (
            rng.gen_range(20.0..WIDTH - 20.0),
            rng.gen_range(20.0..HEIGHT - 20.0),
        );
        if minutiae
            .iter()
            .any(|m| (m.x - x).powi(2) + (m.y - y).powi(2) < 81.0)
        {
            continue;
        }
        let flow = orientation(core, delta, base, x, y);
        let angle = flow + if rng.gen_bool(0.5) { 0.0 } else { PI } + rng.gen_range(-0.1..0.1);
        let kind = if rng.gen_bool(0.5) {
            MinutiaKind::Ending
        } else {
            MinutiaKind::Bifurcation
        };
        minutiae.push(Minutia::new(x, y, angle, kind, rng.gen_range(40..=100)));
    }
    Master { minutiae }
}

/// Rigid transform of one minutia about the image centre: rotation by `rot` (counter-
/// clockwise as seen), then translation.
pub fn rigid(m: &Minutia, rot: f32, tx: f32, ty: f32) -> Minutia {
    let (cx, cy) = (WIDTH / 2.0, HEIGHT / 2.0);
    let (dx, dy) = (m.x - cx, -(m.y - cy));
    let (c, s) = (rot.cos(), rot.sin());
    let (rx, ry) = (c * dx - s * dy, s * dx + c * dy);
    Minutia::new(cx + rx + tx, cy - ry + ty, m.angle + rot, m.kind, m.quality)
}

/// One impression of `master` with the given noise.
pub fn impression<R: Rng>(master: &Master, noise: &Noise, rng: &mut R) -> FingerTemplate {
    let rot = rng.gen_range(-1.0..=1.0) * noise.rotation;
    let (tx, ty) = (
        rng.gen_range(-1.0..=1.0) * noise.translation,
        rng.gen_range(-1.0..=1.0) * noise.translation,
    );
    // Elastic part: two smooth waves, wavelength 300 to 600 px.
    let waves: Vec<(f32, f32, f32, f32, f32)> = (0..2)
        .map(|_| {
            let dir = rng.gen_range(0.0..TAU);
            let k = TAU / rng.gen_range(300.0..600.0);
            (
                k * dir.cos(),
                k * dir.sin(),
                rng.gen_range(0.0..TAU),
                rng.gen_range(-1.0..=1.0) * noise.distortion / 2.0,
                rng.gen_range(-1.0..=1.0) * noise.distortion / 2.0,
            )
        })
        .collect();
    let centre = (
        WIDTH / 2.0 + rng.gen_range(-1.0..=1.0) * noise.offset,
        HEIGHT / 2.0 + rng.gen_range(-1.0..=1.0) * noise.offset,
    );
    let (ax, ay) = (150.0, 190.0);
    let drop = rng.gen_range(noise.drop.0..=noise.drop.1);
    let mut out = Vec::new();
    for m in &master.minutiae {
        let (ex, ey) = ((m.x - centre.0) / ax, (m.y - centre.1) / ay);
        if ex * ex + ey * ey > 1.0 || rng.gen_bool(f64::from(drop)) {
            continue;
        }
        let (mut x, mut y) = (m.x, m.y);
        for &(kx, ky, phase, amp_x, amp_y) in &waves {
            let s = (kx * m.x + ky * m.y + phase).sin();
            x += amp_x * s;
            y += amp_y * s;
        }
        let jittered = Minutia::new(
            x + rng.gen_range(-1.0..=1.0) * noise.jitter_xy,
            y + rng.gen_range(-1.0..=1.0) * noise.jitter_xy,
            m.angle + rng.gen_range(-1.0..=1.0) * noise.jitter_angle,
            m.kind,
            m.quality,
        );
        out.push(rigid(&jittered, rot, tx, ty));
    }
    let spurious = rng.gen_range(0..=noise.spurious);
    for _ in 0..spurious {
        let t = rng.gen_range(0.0..TAU);
        let r = rng.gen_range(0.0f32..1.0).sqrt();
        let m = Minutia::new(
            centre.0 + r * ax * t.cos(),
            centre.1 + r * ay * t.sin(),
            rng.gen_range(0.0..TAU),
            MinutiaKind::Ending,
            30,
        );
        out.push(rigid(&m, rot, tx, ty));
    }
    out.retain(|m| m.x >= 0.0 && m.y >= 0.0 && m.x < WIDTH && m.y < HEIGHT);
    FingerTemplate {
        width: WIDTH as u16,
        height: HEIGHT as u16,
        resolution_ppi: 500,
        position: FingerPosition::RightIndex,
        quality: 60,
        minutiae: out,
    }
}

/// Equal error rate of genuine and impostor scores (higher = more alike), by a sweep over
/// every observed score.
pub fn eer(genuine: &[f32], impostor: &[f32]) -> f32 {
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&s| (s, true))
        .chain(impostor.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ng, ni) = (genuine.len() as f32, impostor.len() as f32);
    // Threshold just above all[k]: genuine at or below are rejected, impostors above accepted.
    let mut rejected_g = 0.0;
    let mut rejected_i = 0.0;
    let mut best = 1.0f32;
    let mut k = 0;
    while k < all.len() {
        let s = all[k].0;
        while k < all.len() && all[k].0 == s {
            if all[k].1 {
                rejected_g += 1.0;
            } else {
                rejected_i += 1.0;
            }
            k += 1;
        }
        let frr = rejected_g / ng;
        let far = (ni - rejected_i) / ni;
        best = best.min(frr.max(far));
    }
    best.min(1.0)
}

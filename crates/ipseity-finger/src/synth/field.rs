//! The finger's global layout: contact shape, pattern class with its singular points, the
//! orientation field they induce (Sherlock–Monro zero-pole model) and the ridge-period map.

use super::math;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Henry class of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternClass {
    /// Plain arch: no core, no delta.
    Arch,
    /// Tented arch: a core with a delta right below it.
    TentedArch,
    /// Left loop: ridges enter and leave on the left of the image; delta on the right.
    LeftLoop,
    /// Right loop: ridges enter and leave on the right of the image; delta on the left.
    RightLoop,
    /// Whorl: two cores (or a circular core) and two deltas.
    Whorl,
}

impl PatternClass {
    /// Short lower-case name, e.g. `left_loop`.
    pub fn name(self) -> &'static str {
        match self {
            PatternClass::Arch => "arch",
            PatternClass::TentedArch => "tented_arch",
            PatternClass::LeftLoop => "left_loop",
            PatternClass::RightLoop => "right_loop",
            PatternClass::Whorl => "whorl",
        }
    }
}

/// Core or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SingularityKind {
    /// Innermost point of a recurving ridge (Poincaré index +1/2).
    Core,
    /// Point where three ridge flows meet (index −1/2).
    Delta,
}

/// A singular point of the orientation field, in master-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Singularity {
    /// Column.
    pub x: f32,
    /// Row.
    pub y: f32,
    /// Core or delta.
    pub kind: SingularityKind,
}

/// The orientation model of one master finger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingularityModel {
    /// Pattern class the singular points were placed for.
    pub class: PatternClass,
    /// Cores and deltas (none for a plain arch).
    pub points: Vec<Singularity>,
    /// Orientation far from every singular point, radians (0 = horizontal ridges).
    pub base_angle: f32,
    /// Strength of the plain arch's bump (only used by [`PatternClass::Arch`]).
    pub arch_height: f32,
}

/// The finger's contact region on the master: an ellipse whose lower half is longer, so
/// that the finger runs off the bottom of the image as on a live-scan platen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FingerShape {
    /// Centre column.
    pub cx: f32,
    /// Centre row.
    pub cy: f32,
    /// Horizontal semi-axis.
    pub half_width: f32,
    /// Vertical semi-axis above the centre.
    pub half_height_top: f32,
    /// Vertical semi-axis below the centre.
    pub half_height_bottom: f32,
}

impl FingerShape {
    /// Approximate signed distance to the edge of the shape in pixels, positive inside.
    pub fn edge_distance(&self, x: f32, y: f32) -> f32 {
        let dy = y - self.cy;
        let b = if dy < 0.0 {
            self.half_height_top
        } else {
            self.half_height_bottom
        };
        let a = self.half_width;
        let (u, v) = ((x - self.cx) / a, dy / b);
        let r = (u * u + v * v).sqrt();
        // Scale the normalised radius back to pixels with the local semi-axis.
        let local = if r > 0.0 {
            let (cu, cv) = (u.abs() / r, v.abs() / r);
            1.0 / ((cu / a) * (cu / a) + (cv / b) * (cv / b)).sqrt()
        } else {
            a.min(b)
        };
        (1.0 - r) * local
    }
}

/// Natural class frequencies (loops about 65 %, whorls about 28 %, arches about 7 %).
fn draw_class(rng: &mut ChaCha8Rng) -> PatternClass {
    let u: f32 = rng.gen();
    if u < 0.338 {
        PatternClass::LeftLoop
    } else if u < 0.655 {
        PatternClass::RightLoop
    } else if u < 0.934 {
        PatternClass::Whorl
    } else if u < 0.971 {
        PatternClass::Arch
    } else {
        PatternClass::TentedArch
    }
}

/// Draws the shape from the image size.
pub(crate) fn draw_shape(rng: &mut ChaCha8Rng, w: f32, h: f32) -> FingerShape {
    FingerShape {
        cx: w * (0.5 + rng.gen_range(-0.03..0.03)),
        cy: h * (0.5 + rng.gen_range(-0.03..0.03)),
        half_width: w * rng.gen_range(0.40..0.47),
        half_height_top: h * rng.gen_range(0.40..0.47),
        half_height_bottom: h * rng.gen_range(0.55..0.70),
    }
}

/// Draws the class and places its singular points relative to the shape.
pub(crate) fn draw_model(rng: &mut ChaCha8Rng, shape: &FingerShape) -> SingularityModel {
    let class = draw_class(rng);
    let (cx, cy) = (shape.cx, shape.cy);
    let s = shape.half_width.min(shape.half_height_top);
    let core = |x: f32, y: f32| Singularity {
        x,
        y,
        kind: SingularityKind::Core,
    };
    let delta = |x: f32, y: f32| Singularity {
        x,
        y,
        kind: SingularityKind::Delta,
    };
    let jx = rng.gen_range(-0.12..0.12) * s;
    let jy = rng.gen_range(-0.15..0.10) * s;
    let points = match class {
        PatternClass::Arch => Vec::new(),
        PatternClass::TentedArch => {
            let d = rng.gen_range(0.25..0.45) * s;
            vec![
                core(cx + jx, cy + jy),
                delta(cx + jx + rng.gen_range(-0.05..0.05) * s, cy + jy + d),
            ]
        }
        PatternClass::LeftLoop | PatternClass::RightLoop => {
            let side = if class == PatternClass::LeftLoop {
                1.0
            } else {
                -1.0
            };
            let c = core(cx + jx - side * 0.1 * s, cy + jy - 0.1 * s);
            let d = delta(
                c.x + side * rng.gen_range(0.45..0.75) * s,
                c.y + rng.gen_range(0.55..0.85) * s,
            );
            vec![c, d]
        }
        PatternClass::Whorl => {
            let sep = rng.gen_range(0.05..0.25) * s;
            let tilt = rng.gen_range(-0.15..0.15) * s;
            let c1 = core(cx + jx - tilt, cy + jy - sep);
            let c2 = core(cx + jx + tilt, cy + jy + sep);
            let dy = rng.gen_range(0.6..0.85) * s;
            let d1 = delta(
                cx + jx - rng.gen_range(0.6..0.85) * s,
                cy + jy + dy + rng.gen_range(-0.1..0.1) * s,
            );
            let d2 = delta(
                cx + jx + rng.gen_range(0.6..0.85) * s,
                cy + jy + dy + rng.gen_range(-0.1..0.1) * s,
            );
            vec![c1, c2, d1, d2]
        }
    };
    SingularityModel {
        class,
        points,
        base_angle: rng.gen_range(-0.12..0.12),
        arch_height: rng.gen_range(0.8..1.6),
    }
}

impl SingularityModel {
    /// Draws a model as [`super::master`] does for `(seed, finger)`, without drawing ridges.
    pub fn for_finger(cfg: &super::SynthConfig, seed: u64, finger: u32) -> Self {
        let (w, h) = cfg.size();
        let mut rng = super::finger_rng(seed, finger);
        let shape = draw_shape(&mut rng, w as f32, h as f32);
        draw_model(&mut rng, &shape)
    }

    /// Ridge orientation at a point as a doubled-angle unit vector `(cos 2θ, sin 2θ)`, with θ
    /// the ridge direction in pixel coordinates (`atan2(dy, dx)`, y down).
    pub fn doubled(&self, x: f32, y: f32, shape: &FingerShape) -> (f32, f32) {
        let theta = self.orientation(x, y, shape);
        let (s, c) = math::sin_cos(2.0 * theta);
        (c as f32, s as f32)
    }

    /// Ridge orientation θ in radians (defined modulo π).
    pub fn orientation(&self, x: f32, y: f32, shape: &FingerShape) -> f64 {
        let (x, y) = (f64::from(x), f64::from(y));
        let mut theta = f64::from(self.base_angle);
        if self.class == PatternClass::Arch {
            // Ridges y = y0 - h(y0) g(x): a bump that grows towards the fingertip.
            let sx = f64::from(shape.half_width) * 0.55;
            let u = (x - f64::from(shape.cx)) / sx;
            let t = ((f64::from(shape.cy) + f64::from(shape.half_height_bottom) - y)
                / f64::from(shape.half_height_bottom + shape.half_height_top))
            .clamp(0.0, 1.0);
            let slope = f64::from(self.arch_height) * t * 2.0 * u * math::exp(-u * u);
            theta += math::atan2(slope, 1.0);
        } else {
            for p in &self.points {
                let a = math::atan2(y - f64::from(p.y), x - f64::from(p.x));
                match p.kind {
                    SingularityKind::Core => theta += 0.5 * a,
                    SingularityKind::Delta => theta -= 0.5 * a,
                }
            }
        }
        // Above the cores the ridges follow the fingertip: a gentle arch whose slope grows
        // away from the vertical axis.
        let top = f64::from(shape.cy - 0.2 * shape.half_height_top);
        if y < top {
            let u = (x - f64::from(shape.cx)) / f64::from(shape.half_width);
            let v = ((top - y) / f64::from(shape.half_height_top)).min(1.0);
            theta += 0.6 * v * math::atan2(u, 1.0);
        }
        theta.rem_euclid(PI)
    }
}

/// Smooth ridge-period map: a few long random waves between the configured bounds.
#[derive(Debug, Clone)]
pub(crate) struct PeriodMap {
    waves: Vec<(f32, f32, f32, f32)>,
    min: f32,
    max: f32,
}

impl PeriodMap {
    pub(crate) fn draw(rng: &mut ChaCha8Rng, min: f32, max: f32) -> Self {
        let waves = (0..3)
            .map(|_| {
                let angle = rng.gen_range(0.0..PI);
                let wavelength = rng.gen_range(250.0..600.0);
                let (s, c) = math::sin_cos(angle);
                let k = 2.0 * PI / wavelength;
                (
                    (c * k) as f32,
                    (s * k) as f32,
                    rng.gen_range(0.0..(2.0 * PI)) as f32,
                    rng.gen_range(0.5..1.0),
                )
            })
            .collect();
        Self { waves, min, max }
    }

    pub(crate) fn period(&self, x: f32, y: f32) -> f32 {
        let mut s = 0.0f32;
        let mut norm = 0.0f32;
        for &(kx, ky, phase, amp) in &self.waves {
            s += amp * math::sin_cos(f64::from(kx * x + ky * y + phase)).0 as f32;
            norm += amp;
        }
        let t = 0.5 + 0.5 * s / norm.max(1e-6);
        self.min + (self.max - self.min) * t
    }
}

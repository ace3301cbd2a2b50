//! Synthetic fingerprints with ground truth, in the spirit of SFinGe (Cappelli, Maio and
//! Maltoni): test data for the extractor and matcher, accuracy runs in the FVC protocol and
//! galleries for benchmarks, with no personal data involved.
//!
//! A **master** finger is made in stages: a contact shape; a pattern class drawn with natural
//! frequencies and its cores and deltas; the orientation field of the Sherlock–Monro
//! zero-pole model around them ([`SingularityModel`]); a smooth ridge-period map; ridges
//! grown from random seed blobs by iterated contextual Gabor filtering (minutiae appear
//! where growing fronts meet out of phase); and the ground-truth minutiae, read back from
//! the thinned ridges by crossing number. An **impression** ([`impression`]) places the
//! master with a random translation and rotation, applies Cappelli's plastic distortion,
//! crops it to a contact region and renders it with pressure, noise and blur, and, as
//! [`SynthConfig::sensor_conditions`] asks, with real sensors' failure modes (a dry or wet
//! finger, creased skin, a finger presented differently each time, fixed-pattern sensor
//! noise, a small capture window); its ground truth is the master's minutiae through the
//! same mapping.
//!
//! Ground truth. A master keeps the crossing-number minutiae of its thinned ridges except
//! those closer than [`SynthConfig::border_margin`] to the finger's edge or the image border,
//! and both minutiae of any pair closer than [`SynthConfig::min_minutia_distance`] (bridges,
//! spurs, islands and broken ridges, on which extractors disagree). Directions are measured
//! 10 pixels along the skeleton: an ending towards its ridge, a bifurcation along the bisector
//! of its two closest branches. An impression keeps a mapped minutia when a circle of radius
//! `border_margin` around it lies inside the image and the contact ellipse; its angle is
//! turned by the mapping's Jacobian, so rotation and distortion both show in it.
//!
//! Everything is a pure function of `(config, seed, finger[, impression])`: each finger and
//! each impression has its own ChaCha8 stream, and all transcendental functions are computed
//! here from basic arithmetic, so the bytes are the same on every machine and any number of
//! threads may generate different fingers at once.

mod field;
mod math;
mod render;
mod ridges;
mod skeleton;

pub use field::{FingerShape, PatternClass, Singularity, SingularityKind, SingularityModel};
pub use render::{Crease, ImpressionParams, Warp};

use crate::Minutia;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Generator settings. The default is a 500-ppi live-scan of about 400x480 pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Image width, pixels (clamped to 64..=4096). Every other knob is clamped to a
    /// workable range too (e.g. `distortion` to 40 pixels), and a non-finite one takes its
    /// default.
    pub width: u32,
    /// Image height, pixels (clamped to 64..=4096).
    pub height: u32,
    /// Shortest ridge period (ridge to ridge), pixels.
    pub min_ridge_period: f32,
    /// Longest ridge period, pixels.
    pub max_ridge_period: f32,
    /// Mean distance between the seeds ridges grow from, pixels; closer seeds give more
    /// minutiae.
    pub seed_spacing: f32,
    /// Half-resolution Gabor filtering iterations (two more run at full resolution); enough
    /// for the fronts from neighbouring seeds to meet (each spreads about 6 pixels).
    pub gabor_iterations: u32,
    /// Largest translation of an impression along each axis, pixels.
    pub max_translation: f32,
    /// Largest rotation of an impression, degrees.
    pub max_rotation_deg: f32,
    /// Largest displacement of the distortion model's outer region, pixels.
    pub distortion: f32,
    /// Largest ridge-thickness change (dry to wet), in ridge units (0 to about 0.5).
    pub pressure: f32,
    /// Largest grey-level noise amplitude.
    pub noise: f32,
    /// How partial the contact may be, 0 (full) to 1 (strongly moved and shrunk).
    pub partial_contact: f32,
    /// Ground-truth minutiae must be at least this far inside the contact area, pixels.
    pub border_margin: f32,
    /// Master minutiae closer than this to another are both dropped, pixels.
    pub min_minutia_distance: f32,
    /// How often and how strongly real sensors' failure modes appear, 0 (never) to 1:
    /// dry fingers (broken, faint ridges), wet fingers (merged ridges), creased or scarred
    /// skin, fingers presented differently each time, fixed-pattern sensor noise and small
    /// capacitive capture windows.
    pub sensor_conditions: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            width: 400,
            height: 480,
            min_ridge_period: 8.0,
            max_ridge_period: 10.0,
            seed_spacing: 48.0,
            gabor_iterations: 12,
            max_translation: 40.0,
            max_rotation_deg: 20.0,
            distortion: 12.0,
            pressure: 0.35,
            noise: 14.0,
            partial_contact: 0.5,
            border_margin: 14.0,
            min_minutia_distance: 7.0,
            sensor_conditions: 0.0,
        }
    }
}

impl SynthConfig {
    /// Harsher capture conditions than the defaults: large rotation, strong elastic
    /// distortion, heavy noise, pressure changes and small partial contact.
    pub fn hard() -> Self {
        Self {
            max_translation: 60.0,
            max_rotation_deg: 35.0,
            distortion: 22.0,
            pressure: 0.5,
            noise: 32.0,
            partial_contact: 0.9,
            ..Self::default()
        }
    }

    /// [`SynthConfig::hard`] with real sensors' failure modes at full strength (see
    /// [`SynthConfig::sensor_conditions`]) and the stronger distortion of a live press:
    /// the setting whose error rates are meant to predict those of real sensors.
    pub fn sensor() -> Self {
        Self {
            sensor_conditions: 1.0,
            // With `hard`'s 22 px the genuine scores stayed well above the real sets'
            // (median 0.73 against 0.41-0.63).
            distortion: 34.0,
            ..Self::hard()
        }
    }

    /// Width and height after clamping.
    pub fn size(&self) -> (usize, usize) {
        (
            self.width.clamp(64, 4096) as usize,
            self.height.clamp(64, 4096) as usize,
        )
    }

    /// A copy with every knob finite and in a workable range; non-finite values take the
    /// default.
    fn sanitised(&self) -> Self {
        let d = Self::default();
        let bound = |v: f32, lo: f32, hi: f32, default: f32| {
            if v.is_finite() {
                v.clamp(lo, hi)
            } else {
                default
            }
        };
        Self {
            width: self.width,
            height: self.height,
            min_ridge_period: self.min_ridge_period,
            max_ridge_period: self.max_ridge_period,
            seed_spacing: bound(self.seed_spacing, 8.0, 1000.0, d.seed_spacing),
            gabor_iterations: self.gabor_iterations.min(64),
            max_translation: bound(self.max_translation, 0.0, 1000.0, d.max_translation),
            max_rotation_deg: bound(self.max_rotation_deg, 0.0, 180.0, d.max_rotation_deg),
            // Larger displacements would fold the distortion over itself.
            distortion: bound(self.distortion, 0.0, 40.0, d.distortion),
            pressure: bound(self.pressure, 0.0, 1.0, d.pressure),
            noise: bound(self.noise, 0.0, 128.0, d.noise),
            partial_contact: bound(self.partial_contact, 0.0, 1.0, d.partial_contact),
            border_margin: bound(self.border_margin, 0.0, 200.0, d.border_margin),
            min_minutia_distance: bound(
                self.min_minutia_distance,
                0.0,
                100.0,
                d.min_minutia_distance,
            ),
            sensor_conditions: bound(self.sensor_conditions, 0.0, 1.0, d.sensor_conditions),
        }
    }

    fn periods(&self) -> (f32, f32) {
        let lo = if self.min_ridge_period.is_finite() {
            self.min_ridge_period.clamp(4.0, 20.0)
        } else {
            8.0
        };
        let hi = if self.max_ridge_period.is_finite() {
            self.max_ridge_period.clamp(lo, 20.0)
        } else {
            lo
        };
        (lo, hi)
    }
}

/// A master finger: the clean ridge pattern and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    /// Clean ridge image (dark ridges, white outside the finger).
    pub image: image::GrayImage,
    /// Ground-truth minutiae, master pixels.
    pub minutiae: Vec<Minutia>,
    /// Pattern class.
    pub class: PatternClass,
    /// Cores, deltas and the orientation model.
    pub model: SingularityModel,
    /// Contact shape of the finger.
    pub shape: FingerShape,
}

/// One impression of a master and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    /// The live-scan-like image.
    pub image: image::GrayImage,
    /// The master's minutiae mapped into this image, only those well inside the contact.
    pub minutiae: Vec<Minutia>,
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser: neighbouring inputs give unrelated seeds.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn finger_rng(seed: u64, finger: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(seed) ^ u64::from(finger)))
}

fn impression_rng(seed: u64, finger: u32, impression: u32) -> ChaCha8Rng {
    let f = mix(mix(seed) ^ u64::from(finger));
    ChaCha8Rng::seed_from_u64(mix(f ^ mix(0x1000_0000 ^ u64::from(impression))))
}

/// What stays the same across a finger's impressions under
/// [`SynthConfig::sensor_conditions`]: its skin and the sensor it is captured on. Drawn
/// from a stream of its own, so masters and every earlier draw are unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FingerTraits {
    pub(crate) dry: bool,
    pub(crate) wet: bool,
    pub(crate) small_window: bool,
    /// Side of the capture window when one applies, pixels.
    pub(crate) window_side: f32,
    /// Flexion creases and scars across the skin (0: none), drawn from `crease_seed` in
    /// master coordinates, so they sit in the same place of the finger every time.
    pub(crate) creases: u32,
    pub(crate) crease_seed: u64,
    /// A finger presented differently each time (another part of it, at another angle):
    /// its impressions share less area than most.
    pub(crate) unsteady: bool,
}

impl FingerTraits {
    pub(crate) fn of(seed: u64, finger: u32, real: f32) -> Self {
        use rand::Rng as _;
        let mut rng = finger_rng(seed ^ 0x7a17_5e45_0c0d_e5ed, finger);
        let skin = rng.gen_range(0.0f32..1.0);
        let sensor = rng.gen_range(0.0f32..1.0);
        let small_window = sensor < 0.35 * real;
        let window_side = if small_window {
            rng.gen_range(230.0f32..300.0)
        } else {
            300.0
        };
        // Drawn after the traits above, so that those stay as they were.
        let creased = rng.gen_range(0.0f32..1.0) < 0.3 * real;
        let creases = if creased { rng.gen_range(3..=10) } else { 0 };
        Self {
            dry: skin < 0.3 * real,
            wet: skin >= 0.3 * real && skin < 0.45 * real,
            small_window,
            window_side,
            creases,
            crease_seed: rng.gen(),
            unsteady: rng.gen_range(0.0f32..1.0) < 0.25 * real,
        }
    }
}

/// Generates master finger `finger` of the population `seed`.
pub fn master(cfg: &SynthConfig, seed: u64, finger: u32) -> Master {
    let cfg = &cfg.sanitised();
    let (w, h) = cfg.size();
    let (pmin, pmax) = cfg.periods();
    let mut rng = finger_rng(seed, finger);
    let shape = field::draw_shape(&mut rng, w as f32, h as f32);
    let model = field::draw_model(&mut rng, &shape);
    let periods = field::PeriodMap::draw(&mut rng, pmin, pmax);
    let spacing = cfg.seed_spacing;
    let ridge = ridges::grow(
        w,
        h,
        &model,
        &shape,
        &periods,
        (pmin, pmax),
        &mut rng,
        spacing,
        cfg.gabor_iterations,
    );
    let mut skel = skeleton::binarise(&ridge, w, h, &shape);
    skeleton::thin(&mut skel, w, h);
    let minutiae = skeleton::minutiae(
        &skel,
        w,
        h,
        &shape,
        cfg.border_margin,
        cfg.min_minutia_distance,
    );
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let inside = shape.edge_distance(x as f32, y as f32) >= 0.0;
            let v = if inside { ridge[y * w + x] } else { -1.0 };
            pixels.push((128.0 - 127.0 * v).round().clamp(0.0, 255.0) as u8);
        }
    }
    let image = image::GrayImage::from_raw(w as u32, h as u32, pixels).unwrap_or_default();
    Master {
        image,
        minutiae,
        class: model.class,
        model,
        shape,
    }
}

/// Generates impression `impression` of a master made by [`master`] with the same `cfg`,
/// `seed` and `finger`.
pub fn impression(
    cfg: &SynthConfig,
    master: &Master,
    seed: u64,
    finger: u32,
    impression: u32,
) -> Impression {
    let params = ImpressionParams::random(cfg, master, seed, finger, impression);
    impression_with(cfg, master, &params)
}

/// Renders an impression with explicit parameters (e.g. [`ImpressionParams::identity`]).
pub fn impression_with(
    cfg: &SynthConfig,
    master: &Master,
    params: &ImpressionParams,
) -> Impression {
    let cfg = &cfg.sanitised();
    let warp = Warp::new(cfg, params);
    Impression {
        image: render::render(cfg, master, params, &warp),
        minutiae: render::truth(cfg, master, params, &warp),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::MinutiaKind;
    use std::f32::consts::{PI, TAU};

    fn angle_diff(a: f32, b: f32) -> f32 {
        let d = (a - b).rem_euclid(TAU);
        d.min(TAU - d)
    }

    #[test]
    fn deterministic_per_seed() {
        let cfg = SynthConfig::default();
        let a = master(&cfg, 11, 2);
        let b = master(&cfg, 11, 2);
        assert_eq!(a, b);
        let ia = impression(&cfg, &a, 11, 2, 1);
        let ib = impression(&cfg, &b, 11, 2, 1);
        assert_eq!(ia, ib);
        assert_ne!(master(&cfg, 12, 2).image, a.image);
        assert_ne!(master(&cfg, 11, 3).image, a.image);
        assert_ne!(impression(&cfg, &a, 11, 2, 2).image, ia.image);
    }

    #[test]
    fn master_minutiae_are_plausible() {
        let cfg = SynthConfig::default();
        let (w, h) = cfg.size();
        for finger in 0..6 {
            let m = master(&cfg, 5, finger);
            let n = m.minutiae.len();
            assert!((20..=90).contains(&n), "finger {finger}: {n} minutiae");
            let endings = m
                .minutiae
                .iter()
                .filter(|m| m.kind == MinutiaKind::Ending)
                .count();
            assert!(
                endings > 0 && endings < n,
                "finger {finger}: {endings} of {n}"
            );
            for mi in &m.minutiae {
                assert!(mi.x >= cfg.border_margin && mi.x <= w as f32 - cfg.border_margin);
                assert!(mi.y >= cfg.border_margin && mi.y <= h as f32 - cfg.border_margin);
                assert!(m.shape.edge_distance(mi.x, mi.y) >= cfg.border_margin);
            }
        }
    }

    /// Ridge pixels of the master image (dark) at a rounded point, if inside.
    fn ridge_at(m: &Master, x: f32, y: f32) -> Option<bool> {
        let (x, y) = (x.round(), y.round());
        if x < 0.0 || y < 0.0 || x >= m.image.width() as f32 || y >= m.image.height() as f32 {
            return None;
        }
        Some(m.image.get_pixel(x as u32, y as u32).0[0] < 128)
    }

    #[test]
    fn minutia_directions_follow_the_convention() {
        // An ending points into its ridge: ridge ahead, valley behind. A bifurcation points
        // towards its branches: the valley between them ahead, the stem behind.
        let cfg = SynthConfig::default();
        let (mut agree, mut total) = (0, 0);
        for finger in 0..4 {
            let m = master(&cfg, 21, finger);
            for mi in &m.minutiae {
                let (dx, dy) = (mi.angle.cos(), -mi.angle.sin());
                let ahead = ridge_at(&m, mi.x + 5.0 * dx, mi.y + 5.0 * dy);
                let behind = ridge_at(&m, mi.x - 5.0 * dx, mi.y - 5.0 * dy);
                let want = mi.kind == MinutiaKind::Ending;
                total += 1;
                if ahead == Some(want) && behind == Some(!want) {
                    agree += 1;
                }
            }
        }
        assert!(
            agree * 10 >= total * 8,
            "{agree} of {total} minutiae agree with the direction convention"
        );
    }

    #[test]
    fn identity_impression_keeps_the_master_minutiae() {
        let cfg = SynthConfig::default();
        let m = master(&cfg, 3, 9);
        let imp = impression_with(&cfg, &m, &ImpressionParams::identity(&cfg));
        assert_eq!(imp.minutiae.len(), m.minutiae.len());
        for (a, b) in imp.minutiae.iter().zip(&m.minutiae) {
            assert!((a.x - b.x).abs() < 1e-3 && (a.y - b.y).abs() < 1e-3);
            assert!(angle_diff(a.angle, b.angle) < 1e-3);
            assert_eq!(a.kind, b.kind);
        }
        // Same ridges where the master has its finger (away from the faded contact edge).
        let (mut same, mut inside) = (0, 0);
        for ((x, y, p), q) in imp.image.enumerate_pixels().zip(m.image.pixels()) {
            if m.shape.edge_distance(x as f32, y as f32) >= 8.0 {
                inside += 1;
                if (p.0[0] < 128) == (q.0[0] < 128) {
                    same += 1;
                }
            }
        }
        assert!(same * 100 >= inside * 97, "{same} of {inside}");
    }

    #[test]
    fn rotation_turns_positions_and_angles() {
        let cfg = SynthConfig::default();
        let m = master(&cfg, 3, 4);
        let mut p = ImpressionParams::identity(&cfg);
        p.rotation = 0.3;
        p.translation = (5.0, -7.0);
        let warp = Warp::new(&cfg, &p);
        let (cx, cy) = (cfg.width as f32 * 0.5, cfg.height as f32 * 0.5);
        for mi in &m.minutiae {
            let t = warp.map_minutia(mi);
            assert!(angle_diff(t.angle, mi.angle + 0.3) < 1e-3);
            // Counter-clockwise as seen: the vector from the centre turns by the same angle.
            let a0 = (-(mi.y - cy)).atan2(mi.x - cx);
            let a1 = (-(t.y - cy - -7.0)).atan2(t.x - cx - 5.0);
            assert!(angle_diff(a1, a0 + 0.3) < 1e-3);
        }
    }

    #[test]
    fn random_impressions_are_consistent() {
        let cfg = SynthConfig::default();
        let (w, h) = cfg.size();
        let m = master(&cfg, 8, 1);
        let mut kept = 0;
        for i in 0..4 {
            let p = ImpressionParams::random(&cfg, &m, 8, 1, i);
            let warp = Warp::new(&cfg, &p);
            let imp = impression_with(&cfg, &m, &p);
            assert_eq!(imp, impression(&cfg, &m, 8, 1, i));
            assert_eq!(imp.image.dimensions(), (w as u32, h as u32));
            assert!(imp.minutiae.len() <= m.minutiae.len());
            kept += imp.minutiae.len();
            for t in &imp.minutiae {
                assert!(t.x >= 0.0 && t.y >= 0.0 && t.x < w as f32 && t.y < h as f32);
                // Back through the inverse lands on a master minutia of the same kind.
                let (x, y) = warp.inverse(t.x, t.y);
                assert!(m
                    .minutiae
                    .iter()
                    .any(|o| o.kind == t.kind && (o.x - x).abs() < 0.1 && (o.y - y).abs() < 0.1));
                // Ground truth lies on the contact: the impression is dark somewhere near.
                let dark = (-4i32..=4).any(|dy| {
                    (-4i32..=4).any(|dx| {
                        let (px, py) = (t.x as i32 + dx, t.y as i32 + dy);
                        px >= 0
                            && py >= 0
                            && (px as usize) < w
                            && (py as usize) < h
                            && imp.image.get_pixel(px as u32, py as u32).0[0] < 160
                    })
                });
                assert!(dark, "minutia at ({}, {}) on no ridge", t.x, t.y);
            }
        }
        assert!(kept > 0);
    }

    #[test]
    fn warp_inverse_undoes_forward() {
        let cfg = SynthConfig::default();
        let m = master(&cfg, 4, 0);
        for i in 0..6 {
            let p = ImpressionParams::random(&cfg, &m, 4, 0, i);
            let warp = Warp::new(&cfg, &p);
            for (x, y) in [(50.0, 60.0), (200.0, 240.0), (350.0, 400.0), (120.0, 300.0)] {
                let (u, v) = warp.forward(x, y);
                let (a, b) = warp.inverse(u, v);
                assert!((a - x).abs() < 0.05 && (b - y).abs() < 0.05, "{i}: {x},{y}");
            }
        }
    }

    #[test]
    fn ridge_period_is_in_the_configured_range() {
        // Count ridge/valley changes along the normal to the model's orientation.
        let cfg = SynthConfig::default();
        for finger in 0..3 {
            let m = master(&cfg, 30, finger);
            let s = &m.shape;
            let mut periods = Vec::new();
            for (fx, fy) in [
                (-0.5, -0.4),
                (0.5, -0.4),
                (-0.5, 0.5),
                (0.5, 0.5),
                (0.0, 0.8),
            ] {
                let (x, y) = (s.cx + fx * s.half_width, s.cy + fy * s.half_height_top);
                let theta = m.model.orientation(x, y, s) as f32;
                let (nx, ny) = (-theta.sin(), theta.cos());
                let len = 40.0;
                let mut changes = 0;
                let mut prev = None;
                let mut t = -len / 2.0;
                while t <= len / 2.0 {
                    let r = ridge_at(&m, x + t * nx, y + t * ny);
                    if let (Some(a), Some(b)) = (prev, r) {
                        if a != b {
                            changes += 1;
                        }
                    }
                    prev = r;
                    t += 0.5;
                }
                if changes >= 4 {
                    periods.push(2.0 * len / changes as f32);
                }
            }
            assert!(periods.len() >= 3, "finger {finger}: {periods:?}");
            periods.sort_by(f32::total_cmp);
            let median = periods[periods.len() / 2];
            assert!(
                median >= cfg.min_ridge_period * 0.85 && median <= cfg.max_ridge_period * 1.15,
                "finger {finger}: periods {periods:?}"
            );
        }
    }

    #[test]
    fn class_frequencies_are_natural() {
        let cfg = SynthConfig::default();
        let mut counts = std::collections::HashMap::new();
        for finger in 0..200 {
            let model = SingularityModel::for_finger(&cfg, 77, finger);
            *counts.entry(model.class).or_insert(0u32) += 1;
        }
        let get = |c| counts.get(&c).copied().unwrap_or(0);
        let loops = get(PatternClass::LeftLoop) + get(PatternClass::RightLoop);
        let whorls = get(PatternClass::Whorl);
        let arches = get(PatternClass::Arch) + get(PatternClass::TentedArch);
        assert!((100..=160).contains(&loops), "{counts:?}");
        assert!((36..=84).contains(&whorls), "{counts:?}");
        assert!((3..=28).contains(&arches), "{counts:?}");
        assert!(get(PatternClass::LeftLoop) >= 40 && get(PatternClass::RightLoop) >= 40);
        // The model agrees with the master generator.
        assert_eq!(
            SingularityModel::for_finger(&cfg, 77, 5).class,
            master(&cfg, 77, 5).class
        );
    }

    #[test]
    fn singular_points_have_their_poincare_index() {
        let cfg = SynthConfig::default();
        let mut checked = 0;
        for finger in 0..20 {
            let mut rng = finger_rng(1, finger);
            let (w, h) = cfg.size();
            let shape = field::draw_shape(&mut rng, w as f32, h as f32);
            let model = field::draw_model(&mut rng, &shape);
            for p in &model.points {
                let mut total = 0.0f32;
                let n = 64;
                let at = |k: i32| {
                    let a = k as f32 * TAU / n as f32;
                    model.orientation(p.x + 4.0 * a.cos(), p.y + 4.0 * a.sin(), &shape) as f32
                };
                for k in 0..n {
                    let mut d = at(k + 1) - at(k);
                    // Orientations are modulo π.
                    while d > PI / 2.0 {
                        d -= PI;
                    }
                    while d < -PI / 2.0 {
                        d += PI;
                    }
                    total += d;
                }
                let want = match p.kind {
                    SingularityKind::Core => PI,
                    SingularityKind::Delta => -PI,
                };
                assert!((total - want).abs() < 0.2, "{:?}: {total}", p.kind);
                checked += 1;
            }
        }
        assert!(checked > 20);
    }

    #[test]
    fn hostile_config_does_not_panic() {
        let cfg = SynthConfig {
            width: 10,
            height: 100_000,
            min_ridge_period: f32::NAN,
            max_ridge_period: -3.0,
            seed_spacing: f32::INFINITY,
            gabor_iterations: u32::MAX,
            max_translation: f32::INFINITY,
            max_rotation_deg: f32::NAN,
            distortion: 1e30,
            pressure: -1.0,
            noise: f32::NEG_INFINITY,
            partial_contact: 7.0,
            border_margin: f32::NAN,
            min_minutia_distance: -1.0,
            sensor_conditions: 5.0,
        };
        let m = master(&cfg, 0, 0);
        assert_eq!(m.image.dimensions(), (64, 4096));
        let imp = impression(&cfg, &m, 0, 0, 0);
        assert_eq!(imp.image.dimensions(), (64, 4096));
    }

    #[test]
    fn skin_and_sensor_belong_to_the_finger() {
        let cfg = SynthConfig {
            sensor_conditions: 1.0,
            ..SynthConfig::default()
        };
        let traits: Vec<FingerTraits> = (0..60).map(|f| FingerTraits::of(5, f, 1.0)).collect();
        let find = |want: fn(&FingerTraits) -> bool| {
            traits.iter().position(want).expect("some finger has it") as u32
        };
        let (dry, wet, small) = (find(|t| t.dry), find(|t| t.wet), find(|t| t.small_window));
        let normal = find(|t| !t.dry && !t.wet && !t.small_window);
        let share = |finger: u32, of: fn(&ImpressionParams) -> bool| {
            let m = master(&cfg, 5, finger);
            (0..20)
                .filter(|&k| of(&ImpressionParams::random(&cfg, &m, 5, finger, k)))
                .count()
        };
        assert!(
            share(dry, |p| p.dryness > 0.0) >= 14,
            "a dry finger is dry most times"
        );
        assert!(
            share(wet, |p| p.moisture > 0.0) >= 14,
            "a wet finger is wet most times"
        );
        assert_eq!(
            share(small, |p| p.window.0 > f32::MIN),
            20,
            "a small sensor every time"
        );
        assert!(share(normal, |p| p.dryness > 0.0) < 14);
        // Without sensor conditions no finger has traits.
        assert!((0..60).all(|f| {
            let t = FingerTraits::of(5, f, 0.0);
            !t.dry && !t.wet && !t.small_window
        }));
    }

    #[test]
    fn creases_and_unsteadiness_belong_to_the_finger() {
        let cfg = SynthConfig {
            sensor_conditions: 1.0,
            ..SynthConfig::default()
        };
        let plain = SynthConfig::default();
        let traits: Vec<FingerTraits> = (0..60).map(|f| FingerTraits::of(5, f, 1.0)).collect();
        let find = |want: fn(&FingerTraits) -> bool| {
            traits.iter().position(want).expect("some finger has it") as u32
        };
        let creased = find(|t| t.creases > 0);
        let smooth = find(|t| t.creases == 0);
        let unsteady = find(|t| t.unsteady);
        let steady = find(|t| !t.unsteady);
        // The same creases, in the master's frame, in every impression; only their
        // opening changes with the press.
        let m = master(&cfg, 5, creased);
        let first = ImpressionParams::random(&cfg, &m, 5, creased, 0).creases;
        assert_eq!(first.len() as u32, traits[creased as usize].creases);
        for k in 1..8 {
            let c = ImpressionParams::random(&cfg, &m, 5, creased, k).creases;
            assert_eq!(c.len(), first.len());
            for (a, b) in c.iter().zip(&first) {
                assert_eq!((a.from, a.to), (b.from, b.to));
                assert!(a.width > 0.0 && (a.width / b.width - 1.0).abs() < 0.9);
            }
        }
        let m_smooth = master(&cfg, 5, smooth);
        assert!(ImpressionParams::random(&cfg, &m_smooth, 5, smooth, 0)
            .creases
            .is_empty());
        // Where a crease runs, no ridge touches: along its middle line the clean
        // rendering is background, and without the crease ridges cross it.
        let clean = ImpressionParams::identity(&cfg);
        let c = first
            .iter()
            .max_by(|a, b| a.width.total_cmp(&b.width))
            .copied()
            .expect("creases");
        let with = impression_with(
            &cfg,
            &m,
            &ImpressionParams {
                creases: vec![Crease { width: 6.0, ..c }],
                ..clean.clone()
            },
        );
        let without = impression_with(&cfg, &m, &clean);
        let (w, h) = m.image.dimensions();
        let line: Vec<(u32, u32)> = (0..=50)
            .map(|t| {
                let t = t as f32 / 50.0;
                (
                    (c.from.0 + t * (c.to.0 - c.from.0)).round(),
                    (c.from.1 + t * (c.to.1 - c.from.1)).round(),
                )
            })
            .filter(|&(x, y)| x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32)
            .map(|(x, y)| (x as u32, y as u32))
            .filter(|&(x, y)| m.shape.edge_distance(x as f32, y as f32) > 10.0)
            .collect();
        assert!(line.len() > 10, "the crease crosses the finger");
        let dark = |img: &image::GrayImage| {
            line.iter()
                .filter(|&&(x, y)| img.get_pixel(x, y)[0] < 128)
                .count()
        };
        assert_eq!(dark(&with.image), 0, "ink inside a crease");
        assert!(dark(&without.image) > 3, "ridges cross the crease's line");
        // An unsteady finger lands elsewhere every time; a steady one only in FVC's
        // displaced impressions (the third and fourth).
        let moved = |finger: u32| {
            let m = master(&cfg, 5, finger);
            (0..8)
                .filter(|&k| {
                    let p = ImpressionParams::random(&cfg, &m, 5, finger, k);
                    let q = ImpressionParams::random(&plain, &m, 5, finger, k);
                    p.translation != q.translation
                })
                .count()
        };
        assert_eq!(moved(unsteady), 8);
        assert_eq!(moved(steady), 2);
        // Without sensor conditions no finger is creased or unsteady.
        assert!((0..60).all(|f| {
            let t = FingerTraits::of(5, f, 0.0);
            t.creases == 0 && !t.unsteady
        }));
    }

    #[test]
    fn sensor_conditions_appear_and_keep_truth_inside_the_window() {
        let plain = SynthConfig::default();
        let cfg = SynthConfig {
            sensor_conditions: 1.0,
            ..SynthConfig::default()
        };
        let m = master(&cfg, 3, 1);
        let (mut dry, mut wet, mut striped, mut windowed) = (0, 0, 0, 0);
        for k in 0..40 {
            let p = ImpressionParams::random(&cfg, &m, 3, 1, k);
            // Everything drawn before the conditions is what a plain configuration draws
            // (the fifth and sixth impressions then turn further, as FVC's protocol asks).
            let q = ImpressionParams::random(&plain, &m, 3, 1, k);
            assert_eq!(p.noise_seed, q.noise_seed);
            let unsteady = FingerTraits::of(3, 1, 1.0).unsteady;
            assert_eq!(
                p.rotation == q.rotation,
                !unsteady && !matches!(k % 8, 4 | 5),
                "{k}"
            );
            dry += usize::from(p.dryness > 0.0);
            wet += usize::from(p.moisture > 0.0);
            striped += usize::from(p.stripes > 0.0);
            if p.window.0 > f32::MIN {
                windowed += 1;
                let imp = impression(&cfg, &m, 3, 1, k);
                let (x0, y0, x1, y1) = p.window;
                assert!(imp
                    .minutiae
                    .iter()
                    .all(|t| t.x >= x0 && t.y >= y0 && t.x < x1 && t.y < y1));
                // Outside the window (past the blur's reach) the sensor saw nothing:
                // background, noise and stripes only.
                let bg = f32::from(p.background);
                let outside = imp
                    .image
                    .enumerate_pixels()
                    .filter(|(x, y, _)| {
                        let (x, y) = (*x as f32, *y as f32);
                        !(x >= x0 - 2.0 && y >= y0 - 2.0 && x < x1 + 2.0 && y < y1 + 2.0)
                    })
                    .all(|(_, _, v)| (f32::from(v[0]) - bg).abs() <= p.noise + p.stripes + 1.0);
                assert!(outside, "ridges outside the capture window");
            }
        }
        assert!(
            dry > 0 && wet > 0 && striped > 0 && windowed > 0,
            "{dry} {wet} {striped} {windowed}"
        );
        // Without sensor conditions the impression is the same as before they existed.
        let a = impression(&plain, &m, 3, 1, 0);
        let p = ImpressionParams::random(&plain, &m, 3, 1, 0);
        assert_eq!((p.dryness, p.moisture, p.stripes), (0.0, 0.0, 0.0));
        assert_eq!(a.image, impression(&plain, &m, 3, 1, 0).image);
    }
}

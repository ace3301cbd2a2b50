//! Impressions of a master: a rigid placement, Cappelli's plastic distortion (a rigid core
//! region, a braked transition and a displaced outer region), a contact region, pressure,
//! noise and blur, rendered like a live-scan (dark ridges on a light background).

use super::math;
use super::{Master, SynthConfig};
use crate::Minutia;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Everything random about one impression; [`ImpressionParams::identity`] reproduces the
/// master's geometry exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpressionParams {
    /// Translation applied after rotation, pixels `(dx, dy)`.
    pub translation: (f32, f32),
    /// Rotation about the image centre, radians, counter-clockwise as a person sees it.
    pub rotation: f32,
    /// Centre of the undistorted core region, master pixels.
    pub distortion_center: (f32, f32),
    /// Radius of the undistorted core region, pixels.
    pub distortion_radius: f32,
    /// Width of the transitional region (the brake's scale), pixels.
    pub distortion_brake: f32,
    /// Displacement of the outer region, pixels.
    pub distortion_shift: (f32, f32),
    /// Rotation of the outer region about the core region's centre, radians.
    pub distortion_rotation: f32,
    /// Centre of the contact ellipse, impression pixels.
    pub contact_center: (f32, f32),
    /// Semi-axes of the contact ellipse, pixels.
    pub contact_half_axes: (f32, f32),
    /// Ridge-thickness shift in master ridge units: positive thickens ridges (more pressure
    /// or a wet finger), negative thins and breaks them (a dry finger).
    pub pressure: f32,
    /// Amplitude of the pressure's slow variation across the contact.
    pub pressure_variation: f32,
    /// Grey-level noise amplitude.
    pub noise: f32,
    /// Depth of the skin texture that leaves spots of a ridge lighter, 0 to 1.
    pub texture: f32,
    /// Depth of the slow contrast variation across the contact, 0 to 1.
    pub contrast_variation: f32,
    /// Number of 3x3 binomial blur passes.
    pub blur: u32,
    /// Background grey level.
    pub background: u8,
    /// How much darker a full ridge is than the background.
    pub ridge_depth: u8,
    /// Seed of the pixel noise.
    pub noise_seed: u64,
    /// A dry finger, 0 to 1: ridges break into pores and dots and lose contrast.
    #[serde(default)]
    pub dryness: f32,
    /// A wet finger, 0 to 1: patches where valleys fill in and ridges merge.
    #[serde(default)]
    pub moisture: f32,
    /// Fixed-pattern sensor noise (column and row offsets), grey levels.
    #[serde(default)]
    pub stripes: f32,
    /// The sensor's capture window `(x0, y0, x1, y1)`, impression pixels; outside it the
    /// image is background (a small capacitive sensor).
    #[serde(default = "full_window")]
    pub window: (f32, f32, f32, f32),
    /// Creases and scars of the finger's skin: where they run no ridge touches the sensor.
    #[serde(default)]
    pub creases: Vec<Crease>,
}

/// A crease or scar: a segment of the master, where the skin folds away from the sensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Crease {
    /// One end, master pixels.
    pub from: (f32, f32),
    /// The other end, master pixels.
    pub to: (f32, f32),
    /// Width, master pixels.
    pub width: f32,
}

impl Crease {
    /// Distance from a master point to the crease's edge (negative inside it).
    fn edge_distance(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (self.to.0 - self.from.0, self.to.1 - self.from.1);
        let len2 = (dx * dx + dy * dy).max(1.0e-6);
        let t = (((x - self.from.0) * dx + (y - self.from.1) * dy) / len2).clamp(0.0, 1.0);
        let (px, py) = (self.from.0 + t * dx - x, self.from.1 + t * dy - y);
        (px * px + py * py).sqrt() - 0.5 * self.width
    }
}

/// The finger's creases, from its traits: most run across the finger (flexion creases
/// and the wrinkles of older skin), a few in any direction (scars, cuts).
fn draw_creases(shape: &super::field::FingerShape, n: u32, seed: u64) -> Vec<Crease> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|k| {
            let across = k % 4 != 3;
            let angle = if across {
                rng.gen_range(-0.45f32..0.45)
            } else {
                rng.gen_range(0.0f32..std::f32::consts::PI)
            };
            let half = if across {
                shape.half_width * rng.gen_range(0.4f32..1.1)
            } else {
                rng.gen_range(20.0f32..70.0)
            };
            let cx = shape.cx + rng.gen_range(-0.6f32..0.6) * shape.half_width;
            let cy = shape.cy
                + rng.gen_range(-0.8f32..0.9)
                    * if across {
                        shape.half_height_bottom
                    } else {
                        shape.half_height_top
                    };
            let (s, c) = angle.sin_cos();
            Crease {
                from: (cx - half * c, cy - half * s),
                to: (cx + half * c, cy + half * s),
                width: rng.gen_range(1.5f32..5.0),
            }
        })
        .collect()
}

fn full_window() -> (f32, f32, f32, f32) {
    (f32::MIN, f32::MIN, f32::MAX, f32::MAX)
}

impl ImpressionParams {
    /// A clean impression with no geometric change: the master's ridges in the master's
    /// place, no noise, every master minutia kept.
    pub fn identity(cfg: &SynthConfig) -> Self {
        let (w, h) = cfg.size();
        Self {
            translation: (0.0, 0.0),
            rotation: 0.0,
            distortion_center: (w as f32 * 0.5, h as f32 * 0.5),
            distortion_radius: 1.0,
            distortion_brake: 1.0,
            distortion_shift: (0.0, 0.0),
            distortion_rotation: 0.0,
            contact_center: (w as f32 * 0.5, h as f32 * 0.5),
            contact_half_axes: (w as f32 * 4.0, h as f32 * 4.0),
            pressure: 0.0,
            pressure_variation: 0.0,
            noise: 0.0,
            texture: 0.0,
            contrast_variation: 0.0,
            blur: 0,
            background: 255,
            ridge_depth: 255,
            noise_seed: 0,
            dryness: 0.0,
            moisture: 0.0,
            stripes: 0.0,
            window: full_window(),
            creases: Vec::new(),
        }
    }

    /// Draws the parameters of impression `impression` of `(seed, finger)`.
    pub fn random(
        cfg: &SynthConfig,
        master: &Master,
        seed: u64,
        finger: u32,
        impression: u32,
    ) -> Self {
        let cfg = &cfg.sanitised();
        let mut rng = super::impression_rng(seed, finger, impression);
        let (w, h) = cfg.size();
        let (w, h) = (w as f32, h as f32);
        let sym = |rng: &mut ChaCha8Rng, r: f32| {
            if r > 0.0 {
                rng.gen_range(-r..r)
            } else {
                0.0
            }
        };
        let mut translation = (
            sym(&mut rng, cfg.max_translation),
            sym(&mut rng, cfg.max_translation),
        );
        let mut rotation = sym(&mut rng, cfg.max_rotation_deg.to_radians());
        let shape = &master.shape;
        let distortion_center = (
            shape.cx + sym(&mut rng, 0.2 * shape.half_width),
            shape.cy + sym(&mut rng, 0.2 * shape.half_height_top),
        );
        let s = w.min(h);
        let distortion_radius = s * rng.gen_range(0.12..0.22);
        let distortion_brake = s * rng.gen_range(0.12..0.22);
        let shift_angle = rng.gen_range(0.0..std::f64::consts::TAU);
        let shift = cfg.distortion.max(0.0) * rng.gen_range(0.3f32..1.0);
        let (sa, ca) = math::sin_cos(shift_angle);
        let distortion_shift = (shift * ca as f32, shift * sa as f32);
        let distortion_rotation = sym(&mut rng, cfg.distortion.max(0.0) * 0.006);
        let partial = cfg.partial_contact.clamp(0.0, 1.0);
        let mut contact_center = (
            w * 0.5 + translation.0 + sym(&mut rng, partial * 0.25 * w),
            h * 0.55 + translation.1 + sym(&mut rng, partial * 0.2 * h),
        );
        let contact_half_axes = (
            w * 0.5 * rng.gen_range((1.0 - 0.35 * partial)..1.05),
            h * 0.62 * rng.gen_range((1.0 - 0.35 * partial)..1.05),
        );
        let pressure = sym(&mut rng, cfg.pressure);
        let pressure_variation = cfg.pressure.max(0.0) * rng.gen_range(0.3f32..0.8);
        let noise = cfg.noise.max(0.0) * rng.gen_range(0.4f32..1.0);
        let texture = rng.gen_range(0.2f32..0.5);
        let contrast_variation = rng.gen_range(0.1f32..0.35);
        let blur = rng.gen_range(0..=1);
        let background = rng.gen_range(220..=250);
        let ridge_depth = rng.gen_range(140..=200);
        let noise_seed = rng.gen();
        // Real sensors' failure modes, drawn after everything else so that a configuration
        // without them gives the same impressions as before they existed.
        let real = cfg.sensor_conditions.clamp(0.0, 1.0);
        let (mut dryness, mut moisture, mut stripes, mut window) = (0.0, 0.0, 0.0, full_window());
        let mut creases = Vec::new();
        if real > 0.0 {
            // A finger's skin and the sensor it was captured on are the finger's, not the
            // impression's: a dry finger is dry in every impression and a capacitive
            // sensor's window is small every time. Drawn per impression (as first
            // built), the hard cases were spread thin over all fingers, and the set's
            // error rates stayed an order of magnitude under the real sets'.
            let traits = super::FingerTraits::of(seed, finger, real);
            if traits.dry && rng.gen_range(0.0f32..1.0) < 0.85 {
                dryness = rng.gen_range(0.3f32..0.7);
            } else if traits.wet && rng.gen_range(0.0f32..1.0) < 0.85 {
                moisture = rng.gen_range(0.4f32..0.9);
            } else if rng.gen_range(0.0f32..1.0) < 0.3 * real {
                dryness = rng.gen_range(0.2f32..0.6);
            } else if rng.gen_range(0.0f32..1.0) < 0.2 * real {
                moisture = rng.gen_range(0.3f32..0.9);
            }
            // FVC's acquisition protocol, which the real sets follow: of each finger's eight
            // impressions the third and fourth are placed with exaggerated displacement,
            // the fifth and sixth with exaggerated rotation, the seventh and eighth dry or
            // wet.
            match impression % 8 {
                2 | 3 => {
                    let (dx, dy) = (sym(&mut rng, 0.3 * w * real), sym(&mut rng, 0.3 * h * real));
                    translation = (translation.0 + dx, translation.1 + dy);
                    contact_center = (contact_center.0 + dx, contact_center.1 + dy);
                }
                4 | 5 => {
                    let turn = rng.gen_range(20.0f32..40.0).to_radians() * real;
                    rotation += if rng.gen_bool(0.5) { turn } else { -turn };
                }
                6 | 7 if dryness == 0.0 && moisture == 0.0 => {
                    if rng.gen_bool(0.6) {
                        dryness = rng.gen_range(0.2f32..0.6);
                    } else {
                        moisture = rng.gen_range(0.3f32..0.9);
                    }
                }
                _ => {}
            }
            if rng.gen_range(0.0f32..1.0) < 0.3 * real {
                stripes = rng.gen_range(4.0f32..16.0);
            }
            if traits.small_window || rng.gen_range(0.0f32..1.0) < 0.25 * real {
                // A capacitive window somewhere over the contact: 300x300 or, on a
                // small-window sensor, the finger's own side.
                let side = traits.window_side.min(w).min(h);
                let x0 = (contact_center.0 - side / 2.0 + sym(&mut rng, 30.0)).clamp(0.0, w - side);
                let y0 = (contact_center.1 - side / 2.0 + sym(&mut rng, 30.0)).clamp(0.0, h - side);
                window = (x0, y0, x0 + side, y0 + side);
            }
            // A finger presented differently each time, after the capture window is placed:
            // on a small sensor it lands off the window's centre, so another part of it
            // is seen.
            if traits.unsteady {
                let (dx, dy) = (sym(&mut rng, 0.2 * w * real), sym(&mut rng, 0.2 * h * real));
                translation = (translation.0 + dx, translation.1 + dy);
                contact_center = (contact_center.0 + dx, contact_center.1 + dy);
                rotation += sym(&mut rng, 15.0f32.to_radians() * real);
            }
            if traits.creases > 0 {
                // The same creases every time; how far they open depends on the press.
                let open = rng.gen_range(0.7f32..1.3);
                creases = draw_creases(&master.shape, traits.creases, traits.crease_seed);
                for c in &mut creases {
                    c.width *= open;
                }
            }
        }
        Self {
            translation,
            rotation,
            distortion_center,
            distortion_radius,
            distortion_brake,
            distortion_shift,
            distortion_rotation,
            contact_center,
            contact_half_axes,
            pressure,
            pressure_variation,
            noise,
            texture,
            contrast_variation,
            blur,
            background,
            ridge_depth,
            noise_seed,
            dryness,
            moisture,
            stripes,
            window,
            creases,
        }
    }
}

/// The geometric part of an impression: master pixels to impression pixels.
#[derive(Debug, Clone)]
pub struct Warp {
    center: (f32, f32),
    cos: f32,
    sin: f32,
    t: (f32, f32),
    dc: (f32, f32),
    dr: f32,
    dk: f32,
    dcos: f32,
    dsin: f32,
    dt: (f32, f32),
}

impl Warp {
    /// The mapping of `params` for images of the size of `cfg`.
    pub fn new(cfg: &SynthConfig, params: &ImpressionParams) -> Self {
        let (w, h) = cfg.size();
        let (s, c) = math::sin_cos(f64::from(params.rotation));
        let (ds, dcos) = math::sin_cos(f64::from(params.distortion_rotation));
        Self {
            center: (w as f32 * 0.5, h as f32 * 0.5),
            cos: c as f32,
            sin: s as f32,
            t: params.translation,
            dc: params.distortion_center,
            dr: params.distortion_radius.max(0.0),
            dk: params.distortion_brake.max(1e-3),
            dcos: dcos as f32,
            dsin: ds as f32,
            dt: params.distortion_shift,
        }
    }

    /// Plastic displacement at a master point: zero in the core region, growing through the
    /// transition to the outer region's rigid motion.
    fn displacement(&self, x: f32, y: f32) -> (f32, f32) {
        let (rx, ry) = (x - self.dc.0, y - self.dc.1);
        let d = ((rx * rx + ry * ry).sqrt() - self.dr).max(0.0);
        if d == 0.0 {
            return (0.0, 0.0);
        }
        let brake =
            1.0 - math::exp(-f64::from(d * d) / (2.0 * f64::from(self.dk * self.dk))) as f32;
        // Outer region: rotation about the core centre (counter-clockwise as seen) and shift.
        let tx = self.dc.0 + rx * self.dcos + ry * self.dsin + self.dt.0;
        let ty = self.dc.1 - rx * self.dsin + ry * self.dcos + self.dt.1;
        ((tx - x) * brake, (ty - y) * brake)
    }

    /// Master point to impression point.
    pub fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = self.displacement(x, y);
        let (ux, uy) = (x + dx - self.center.0, y + dy - self.center.1);
        (
            self.center.0 + ux * self.cos + uy * self.sin + self.t.0,
            self.center.1 - ux * self.sin + uy * self.cos + self.t.1,
        )
    }

    /// Impression point to master point (fixed-point inversion of the distortion, which is
    /// a contraction for the braked displacements drawn here).
    pub fn inverse(&self, px: f32, py: f32) -> (f32, f32) {
        let (vx, vy) = (px - self.t.0 - self.center.0, py - self.t.1 - self.center.1);
        let ux = self.center.0 + vx * self.cos - vy * self.sin;
        let uy = self.center.1 + vx * self.sin + vy * self.cos;
        let (mut x, mut y) = (ux, uy);
        for _ in 0..12 {
            let (dx, dy) = self.displacement(x, y);
            x = ux - dx;
            y = uy - dy;
        }
        (x, y)
    }

    /// A master minutia in impression coordinates; the direction goes through the mapping's
    /// Jacobian (central differences one pixel either side).
    pub fn map_minutia(&self, m: &Minutia) -> Minutia {
        let (p, q) = self.forward(m.x, m.y);
        let (s, c) = math::sin_cos(f64::from(m.angle));
        let (ux, uy) = (c as f32, -s as f32);
        let a = self.forward(m.x + ux, m.y + uy);
        let b = self.forward(m.x - ux, m.y - uy);
        let angle = math::atan2(f64::from(-(a.1 - b.1)), f64::from(a.0 - b.0)) as f32;
        Minutia::new(p, q, angle, m.kind, m.quality)
    }
}

fn in_window(p: &ImpressionParams, x: f32, y: f32) -> bool {
    let (x0, y0, x1, y1) = p.window;
    x >= x0 && y >= y0 && x < x1 && y < y1
}

fn ellipse_distance(p: &ImpressionParams, x: f32, y: f32) -> f32 {
    let (a, b) = (
        p.contact_half_axes.0.max(1.0),
        p.contact_half_axes.1.max(1.0),
    );
    let (u, v) = ((x - p.contact_center.0) / a, (y - p.contact_center.1) / b);
    (1.0 - (u * u + v * v).sqrt()) * a.min(b)
}

/// Ground truth of an impression: mapped master minutiae at least `margin` pixels inside
/// the visible contact area (the image, the contact ellipse and the finger's own shape).
pub(crate) fn truth(
    cfg: &SynthConfig,
    master: &Master,
    params: &ImpressionParams,
    warp: &Warp,
) -> Vec<Minutia> {
    let (w, h) = cfg.size();
    let (w, h) = (w as f32, h as f32);
    let margin = cfg.border_margin.max(0.0);
    let visible = |x: f32, y: f32| {
        x >= 0.0
            && y >= 0.0
            && x <= w - 1.0
            && y <= h - 1.0
            && ellipse_distance(params, x, y) >= 0.0
            && in_window(params, x, y)
    };
    master
        .minutiae
        .iter()
        .filter(|m| master.shape.edge_distance(m.x, m.y) >= margin)
        .map(|m| warp.map_minutia(m))
        .filter(|m| {
            (0..8).all(|k| {
                let (s, c) = math::sin_cos(f64::from(k) * std::f64::consts::FRAC_PI_4);
                visible(m.x + margin * c as f32, m.y + margin * s as f32)
            }) && visible(m.x, m.y)
        })
        .collect()
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A field of slow random variation in [-1, 1]: random values on a coarse grid, bilinearly
/// interpolated.
struct ValueNoise {
    step: f32,
    gw: usize,
    gh: usize,
    v: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut ChaCha8Rng, w: usize, h: usize, step: f32) -> Self {
        let gw = (w as f32 / step) as usize + 2;
        let gh = (h as f32 / step) as usize + 2;
        let v = (0..gw * gh).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        Self { step, gw, gh, v }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let fx = (x / self.step).clamp(0.0, (self.gw - 2) as f32);
        let fy = (y / self.step).clamp(0.0, (self.gh - 2) as f32);
        let (ix, iy) = (fx as usize, fy as usize);
        let (tx, ty) = (smoothstep(fx - ix as f32), smoothstep(fy - iy as f32));
        let g = |dx: usize, dy: usize| self.v[(iy + dy) * self.gw + ix + dx];
        (g(0, 0) * (1.0 - tx) + g(1, 0) * tx) * (1.0 - ty)
            + (g(0, 1) * (1.0 - tx) + g(1, 1) * tx) * ty
    }
}

fn sample(img: &image::GrayImage, x: f32, y: f32) -> f32 {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return 255.0;
    }
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (ix, iy) = (x as u32, y as u32);
    let (ix1, iy1) = ((ix + 1).min(w - 1), (iy + 1).min(h - 1));
    let (tx, ty) = (x - ix as f32, y - iy as f32);
    let raw = img.as_raw();
    let g = |x: u32, y: u32| f32::from(raw[(y * w + x) as usize]);
    (g(ix, iy) * (1.0 - tx) + g(ix1, iy) * tx) * (1.0 - ty)
        + (g(ix, iy1) * (1.0 - tx) + g(ix1, iy1) * tx) * ty
}

/// Renders the impression image.
pub(crate) fn render(
    cfg: &SynthConfig,
    master: &Master,
    params: &ImpressionParams,
    warp: &Warp,
) -> image::GrayImage {
    const GRID: usize = 8;
    let (w, h) = cfg.size();
    let mut rng = ChaCha8Rng::seed_from_u64(params.noise_seed);
    let gw = w / GRID + 2;
    let gh = h / GRID + 2;
    let mut grid = Vec::with_capacity(gw * gh);
    for gy in 0..gh {
        for gx in 0..gw {
            grid.push(warp.inverse((gx * GRID) as f32, (gy * GRID) as f32));
        }
    }
    let pressure_field = ValueNoise::new(&mut rng, w, h, 40.0);
    let contrast_field = ValueNoise::new(&mut rng, w, h, 64.0);
    let texture = ValueNoise::new(&mut rng, w, h, 4.0);
    // The sensor-condition fields come from their own stream, so that impressions without
    // them keep their bytes.
    let mut crng = ChaCha8Rng::seed_from_u64(params.noise_seed ^ 0x5e45_0a5d_c0de_f00d);
    let pores = ValueNoise::new(&mut crng, w, h, 2.5);
    let wet = ValueNoise::new(&mut crng, w, h, 28.0);
    let columns: Vec<f32> = (0..w).map(|_| crng.gen_range(-1.0f32..1.0)).collect();
    let rows: Vec<f32> = (0..h / 16 + 1)
        .map(|_| crng.gen_range(-1.0f32..1.0))
        .collect();
    let (mw, mh) = (master.image.width() as f32, master.image.height() as f32);
    let bg = f32::from(params.background);
    let depth = f32::from(params.ridge_depth);
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        let gy = y / GRID;
        let ty = (y % GRID) as f32 / GRID as f32;
        for x in 0..w {
            let gx = x / GRID;
            let tx = (x % GRID) as f32 / GRID as f32;
            let at = |dx: usize, dy: usize| grid[(gy + dy) * gw + gx + dx];
            let (a, b, c, d) = (at(0, 0), at(1, 0), at(0, 1), at(1, 1));
            let qx =
                (a.0 * (1.0 - tx) + b.0 * tx) * (1.0 - ty) + (c.0 * (1.0 - tx) + d.0 * tx) * ty;
            let qy =
                (a.1 * (1.0 - tx) + b.1 * tx) * (1.0 - ty) + (c.1 * (1.0 - tx) + d.1 * tx) * ty;
            let (fx, fy) = (x as f32, y as f32);
            // The master ends at its image border too (the finger runs off its bottom).
            let inside_master = qx.min(qy).min(mw - 1.0 - qx).min(mh - 1.0 - qy);
            let edge = master
                .shape
                .edge_distance(qx, qy)
                .min(ellipse_distance(params, fx, fy))
                .min(inside_master);
            let mut g = bg;
            if edge > 0.0 && in_window(params, fx, fy) {
                let contact = smoothstep(edge / 8.0);
                let v = (128.0 - sample(&master.image, qx, qy)) / 127.0;
                let mut bias =
                    params.pressure + params.pressure_variation * pressure_field.at(fx, fy);
                if params.moisture > 0.0 {
                    // Wet patches: the valleys fill with moisture and the ridges merge.
                    bias += 1.2 * params.moisture * wet.at(fx, fy).max(0.0);
                }
                // Skin texture: ridges are not evenly inked, some spots barely touch.
                let mut s =
                    smoothstep(0.5 + 0.75 * (v + bias)) * (1.0 - 0.4 * texture.at(fx, fy).max(0.0));
                if params.dryness > 0.0 {
                    // A dry ridge touches in dots between its pores, faintly.
                    let keep = smoothstep(4.0 * (pores.at(fx, fy) + 1.0 - 1.2 * params.dryness));
                    s *= keep * (1.0 - 0.3 * params.dryness);
                }
                if !params.creases.is_empty() {
                    let d = params
                        .creases
                        .iter()
                        .map(|c| c.edge_distance(qx, qy))
                        .fold(f32::INFINITY, f32::min);
                    s *= smoothstep(d / 1.5);
                }
                let contrast =
                    1.0 - params.contrast_variation * (contrast_field.at(fx, fy) + 1.0) * 0.5;
                g -= contact * contrast * depth * s;
            }
            if params.stripes > 0.0 {
                g += params.stripes * (0.7 * columns[x] + 0.3 * rows[y / 16]);
            }
            if params.noise > 0.0 {
                let r: u32 = rng.gen();
                let n = ((r & 0xffff) + (r >> 16)) as f32 / 65536.0 - 1.0;
                g += params.noise * n;
            }
            out[y * w + x] = g;
        }
    }
    for _ in 0..params.blur.min(4) {
        blur3(&mut out, w, h);
    }
    let bytes = out
        .iter()
        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    image::GrayImage::from_raw(w as u32, h as u32, bytes).unwrap_or_default()
}

/// One pass of the separable [1 2 1]/4 filter, edges replicated.
fn blur3(img: &mut [f32], w: usize, h: usize) {
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        let row = &img[y * w..][..w];
        for x in 0..w {
            let l = row[x.saturating_sub(1)];
            let r = row[(x + 1).min(w - 1)];
            tmp[y * w + x] = 0.25 * l + 0.5 * row[x] + 0.25 * r;
        }
    }
    for y in 0..h {
        let up = y.saturating_sub(1);
        let dn = (y + 1).min(h - 1);
        for x in 0..w {
            img[y * w + x] = 0.25 * tmp[up * w + x] + 0.5 * tmp[y * w + x] + 0.25 * tmp[dn * w + x];
        }
    }
}

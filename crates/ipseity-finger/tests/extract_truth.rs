//! The extractor against the synthetic generator's ground truth: recall, precision and
//! direction agreement of minutiae on impressions whose true minutiae are known.

use ipseity_finger::extract::{extract, ExtractConfig};
use ipseity_finger::synth::{impression, master, SynthConfig};
use ipseity_finger::{FingerPosition, Minutia};
use std::f32::consts::TAU;

const MAX_DIST: f32 = 12.0;
const MAX_ANGLE_DEG: f32 = 30.0;

fn angle_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(TAU);
    d.min(TAU - d)
}

/// Greedy one-to-one pairing, closest pairs first, of minutiae within `MAX_DIST` and, when
/// `with_angle`, within `MAX_ANGLE_DEG`. Returns the pairs (truth index, found index).
fn pair(truth: &[Minutia], found: &[Minutia], with_angle: bool) -> Vec<(usize, usize)> {
    let mut cand = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, f) in found.iter().enumerate() {
            let d = (t.x - f.x).hypot(t.y - f.y);
            let ok_angle =
                !with_angle || angle_diff(t.angle, f.angle) <= MAX_ANGLE_DEG.to_radians();
            if d <= MAX_DIST && ok_angle {
                cand.push((d, i, j));
            }
        }
    }
    cand.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut ut, mut uf) = (vec![false; truth.len()], vec![false; found.len()]);
    let mut out = Vec::new();
    for (_, i, j) in cand {
        if !ut[i] && !uf[j] {
            ut[i] = true;
            uf[j] = true;
            out.push((i, j));
        }
    }
    out
}

struct Totals {
    truth: usize,
    found: usize,
    matched: usize,
    located: usize,
    agreeing: usize,
    same_kind: usize,
    refused: usize,
}

fn run(n_fingers: u32, impressions: u32) -> Totals {
    let cfg = SynthConfig::default();
    let xcfg = ExtractConfig::default();
    let mut t = Totals {
        truth: 0,
        found: 0,
        matched: 0,
        located: 0,
        agreeing: 0,
        same_kind: 0,
        refused: 0,
    };
    for finger in 0..n_fingers {
        let m = master(&cfg, 2024, finger);
        for k in 0..impressions {
            let imp = impression(&cfg, &m, 2024, finger, k);
            let ex = match extract(&imp.image, FingerPosition::Unknown, &xcfg) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("finger {finger} impression {k}: {e}");
                    t.refused += 1;
                    t.truth += imp.minutiae.len();
                    continue;
                }
            };
            let found = &ex.template.minutiae;
            let full = pair(&imp.minutiae, found, true);
            let pos = pair(&imp.minutiae, found, false);
            t.truth += imp.minutiae.len();
            t.found += found.len();
            t.matched += full.len();
            t.located += pos.len();
            t.agreeing += pos
                .iter()
                .filter(|(i, j)| {
                    angle_diff(imp.minutiae[*i].angle, found[*j].angle)
                        <= MAX_ANGLE_DEG.to_radians()
                })
                .count();
            t.same_kind += full
                .iter()
                .filter(|(i, j)| imp.minutiae[*i].kind == found[*j].kind)
                .count();
            eprintln!(
                "finger {finger} impression {k}: truth {} found {} matched {} quality {}",
                imp.minutiae.len(),
                found.len(),
                full.len(),
                ex.quality.score
            );
        }
    }
    t
}

fn report(t: &Totals) -> (f32, f32, f32) {
    let recall = t.matched as f32 / t.truth.max(1) as f32;
    let precision = t.matched as f32 / t.found.max(1) as f32;
    let agreement = t.agreeing as f32 / t.located.max(1) as f32;
    eprintln!(
        "truth {} found {} matched {} (recall {recall:.3}, precision {precision:.3}); \
         located {} of which direction within 30°: {agreement:.3}; same kind {:.3}; refused {}",
        t.truth,
        t.found,
        t.matched,
        t.located,
        t.same_kind as f32 / t.matched.max(1) as f32,
        t.refused
    );
    (recall, precision, agreement)
}

#[test]
fn minutiae_match_the_ground_truth() {
    // Ten impressions: five fingers, two impressions each. Measured when written (generator
    // and extractor defaults of 2026-11-23): 577 true minutiae, 527 found, 516 matched within
    // 12 px and 30° (recall 0.894, precision 0.979); of 520 located within 12 px, 0.992 agree
    // in direction within 30°; 0.94 of the matched have the same kind. Most misses are an
    // ending and a fork closer than a ridge period (read as a spur) or near the contact's
    // edge. Bounds sit below the measured values.
    let t = run(5, 2);
    let (recall, precision, agreement) = report(&t);
    assert_eq!(t.refused, 0, "synthetic impressions are all usable");
    assert!(recall >= 0.82, "recall {recall}");
    assert!(precision >= 0.92, "precision {precision}");
    assert!(agreement >= 0.95, "direction agreement {agreement}");
}

/// The same on a larger set, for the report (`--ignored`).
#[test]
#[ignore]
fn minutiae_match_the_ground_truth_large() {
    let t = run(20, 4);
    report(&t);
}

#[test]
fn quality_falls_as_the_impression_degrades() {
    use rand::{Rng, SeedableRng};
    let cfg = SynthConfig::default();
    let xcfg = ExtractConfig::default();
    let m = master(&cfg, 2024, 0);
    let imp = impression(&cfg, &m, 2024, 0, 0);
    let mut scores = Vec::new();
    // Uniform noise of growing amplitude, added after rendering (the generator blurs its own).
    for amp in [0.0f32, 100.0, 200.0, 300.0] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut img = imp.image.clone();
        for p in img.pixels_mut() {
            let n = if amp > 0.0 {
                rng.gen_range(-amp..amp)
            } else {
                0.0
            };
            p.0[0] = (f32::from(p.0[0]) + n).clamp(0.0, 255.0) as u8;
        }
        let q = ipseity_finger::extract::quality(&img, &xcfg).unwrap();
        scores.push(q.score);
    }
    eprintln!("scores by added noise 0, 100, 200, 300: {scores:?}");
    assert!(scores.windows(2).all(|w| w[1] <= w[0]), "{scores:?}");
    assert!(scores[0] >= scores[3] + 30, "{scores:?}");
}

/// Share of `a`'s minutiae that have a counterpart in `b` within `dist` px and `angle_deg`,
/// after mapping `a` by `map`; kinds are ignored.
fn agreement(
    a: &[Minutia],
    b: &[Minutia],
    dist: f32,
    angle_deg: f32,
    map: impl Fn(&Minutia) -> (f32, f32, f32),
) -> f32 {
    let mapped: Vec<Minutia> = a
        .iter()
        .map(|m| {
            let (x, y, ang) = map(m);
            Minutia::new(x, y, ang, m.kind, m.quality)
        })
        .collect();
    let mut hits = 0;
    let mut used = vec![false; b.len()];
    for m in &mapped {
        let best = b
            .iter()
            .enumerate()
            .filter(|(j, n)| {
                !used[*j]
                    && (n.x - m.x).hypot(n.y - m.y) <= dist
                    && angle_diff(n.angle, m.angle) <= angle_deg.to_radians()
            })
            .min_by(|(_, p), (_, q)| {
                (p.x - m.x)
                    .hypot(p.y - m.y)
                    .total_cmp(&(q.x - m.x).hypot(q.y - m.y))
            });
        if let Some((j, _)) = best {
            used[j] = true;
            hits += 1;
        }
    }
    hits as f32 / a.len().max(1) as f32
}

#[test]
fn rotated_and_inverted_impressions() {
    let cfg = SynthConfig::default();
    let xcfg = ExtractConfig::default();
    let (mut rot, mut inv) = (Vec::new(), Vec::new());
    for finger in 0..3 {
        let m = master(&cfg, 99, finger);
        let imp = impression(&cfg, &m, 99, finger, 0);
        let base = extract(&imp.image, FingerPosition::Unknown, &xcfg)
            .unwrap()
            .template;
        let h = imp.image.height() as f32;

        let turned = image::imageops::rotate90(&imp.image);
        let r = extract(&turned, FingerPosition::Unknown, &xcfg)
            .unwrap()
            .template;
        // A clockwise quarter turn: (x, y) -> (h - 1 - y, x), angle - 90°.
        rot.push(agreement(&base.minutiae, &r.minutiae, 4.0, 15.0, |m| {
            (h - 1.0 - m.y, m.x, m.angle - std::f32::consts::FRAC_PI_2)
        }));

        let mut negative = imp.image.clone();
        image::imageops::invert(&mut negative);
        match extract(&negative, FingerPosition::Unknown, &xcfg) {
            Ok(n) => inv.push(agreement(
                &base.minutiae,
                &n.template.minutiae,
                12.0,
                30.0,
                |m| (m.x, m.y, m.angle),
            )),
            Err(e) => panic!("inverted impression refused: {e}"),
        }
    }
    eprintln!("rotation agreement {rot:?}, inversion agreement {inv:?}");
    // Measured when written: rotation [1.0, 1.0, 0.977] within 4 px and 15°; inversion (the
    // dual template, kinds ignored) [0.923, 0.957, 0.953] within 12 px and 30°.
    assert!(rot.iter().all(|&a| a >= 0.9), "{rot:?}");
    assert!(inv.iter().all(|&a| a >= 0.8), "{inv:?}");
}

//! Unit tests on drawn patterns whose minutiae are known by construction.

use super::*;
use crate::{Minutia, MinutiaKind};
use rand::{Rng, SeedableRng};
use std::f32::consts::{FRAC_PI_2, PI, TAU};

/// Vertical ridges of period `t`; the ridge through `x0` starts at `y0` and runs down, so
/// there is one ridge ending at `(x0, y0)` pointing down the image (angle 3π/2).
fn stripes_with_ending(w: u32, h: u32, t: f32, x0: f32, y0: f32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let mut v = 0.5 + 0.5 * (TAU * (xf - x0) / t).cos();
        if (xf - x0).abs() < t / 2.0 {
            // Fade the planted ridge out above y0 over two pixels.
            v *= ((yf - y0) / 2.0 + 0.5).clamp(0.0, 1.0);
        }
        image::Luma([(225.0 - 170.0 * v) as u8])
    })
}

/// A finger-like pattern: curved ridge flow with a phase singularity (one minutia each) at
/// every point of `planted`, inside an elliptical finger area on a light background.
fn phase_finger(w: u32, h: u32, planted: &[(f32, f32, f32)], noise: f32, seed: u64) -> GrayImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (ax, ay) = (w as f32 * 0.44, h as f32 * 0.46);
    GrayImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let mut phase = TAU / 9.0 * (0.8 * xf + 0.6 * yf + 0.0012 * (xf - cx).powi(2));
        for &(px, py, s) in planted {
            phase += s * (yf - py).atan2(xf - px);
        }
        let inside = ((xf - cx) / ax).powi(2) + ((yf - cy) / ay).powi(2);
        let fade = ((1.0 - inside) * 12.0).clamp(0.0, 1.0);
        let ridge = 0.5 + 0.5 * phase.cos();
        let n: f32 = if noise > 0.0 {
            rng.gen_range(-noise..noise)
        } else {
            0.0
        };
        let v = 230.0 - fade * 170.0 * ridge + n;
        image::Luma([v.clamp(0.0, 255.0) as u8])
    })
}

fn planted_points() -> Vec<(f32, f32, f32)> {
    vec![
        (150.0, 140.0, 1.0),
        (250.0, 130.0, -1.0),
        (320.0, 200.0, 1.0),
        (130.0, 240.0, -1.0),
        (220.0, 230.0, 1.0),
        (300.0, 300.0, -1.0),
        (180.0, 330.0, 1.0),
        (240.0, 380.0, -1.0),
        (120.0, 330.0, -1.0),
        (290.0, 400.0, 1.0),
    ]
}

fn angle_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(TAU);
    d.min(TAU - d)
}

fn loose() -> ExtractConfig {
    ExtractConfig {
        min_minutiae: 1,
        ..ExtractConfig::default()
    }
}

fn near(ms: &[Minutia], x: f32, y: f32, r: f32) -> Vec<Minutia> {
    ms.iter()
        .copied()
        .filter(|m| (m.x - x).hypot(m.y - y) <= r)
        .collect()
}

#[test]
fn planted_ending_position_kind_and_direction() {
    let img = stripes_with_ending(200, 200, 9.0, 99.0, 100.0);
    let e = extract(&img, FingerPosition::RightIndex, &loose()).unwrap();
    assert_eq!(e.template.position, FingerPosition::RightIndex);
    assert_eq!((e.template.width, e.template.height), (200, 200));
    let found = near(&e.template.minutiae, 99.0, 100.0, 8.0);
    assert_eq!(found.len(), 1, "{:?}", e.template.minutiae);
    let m = found[0];
    assert_eq!(m.kind, MinutiaKind::Ending);
    assert!(
        angle_diff(m.angle, 3.0 * FRAC_PI_2) < 20f32.to_radians(),
        "angle {}",
        m.angle.to_degrees()
    );
    // Nothing else: the pattern has one minutia.
    assert_eq!(e.template.minutiae.len(), 1, "{:?}", e.template.minutiae);
}

#[test]
fn inverted_ending_reads_as_a_bifurcation_with_the_same_direction() {
    let mut img = stripes_with_ending(200, 200, 9.0, 99.0, 100.0);
    image::imageops::invert(&mut img);
    let e = extract(&img, FingerPosition::Unknown, &loose()).unwrap();
    let found = near(&e.template.minutiae, 99.0, 100.0, 10.0);
    assert_eq!(found.len(), 1, "{:?}", e.template.minutiae);
    let m = found[0];
    assert_eq!(m.kind, MinutiaKind::Bifurcation);
    assert!(
        angle_diff(m.angle, 3.0 * FRAC_PI_2) < 20f32.to_radians(),
        "angle {}",
        m.angle.to_degrees()
    );
}

#[test]
fn planted_singularities_are_found() {
    let pts = planted_points();
    let img = phase_finger(440, 520, &pts, 0.0, 1);
    let e = extract(&img, FingerPosition::Unknown, &ExtractConfig::default()).unwrap();
    let ms = &e.template.minutiae;
    let hit = pts
        .iter()
        .filter(|p| !near(ms, p.0, p.1, 10.0).is_empty())
        .count();
    let genuine = ms
        .iter()
        .filter(|m| pts.iter().any(|p| (m.x - p.0).hypot(m.y - p.1) <= 10.0))
        .count();
    assert!(hit >= 9, "found {hit} of {} planted: {ms:?}", pts.len());
    assert!(
        genuine as f32 >= 0.8 * ms.len() as f32,
        "{genuine} of {} genuine",
        ms.len()
    );
    assert!(e.quality.usable);
    assert!(e.quality.score >= 60, "score {}", e.quality.score);
}

#[test]
fn rotating_the_image_rotates_the_minutiae() {
    let pts = planted_points();
    let img = phase_finger(440, 520, &pts, 0.0, 1);
    // The finger area is a mask of 8-px cells, which a quarter turn shifts by a pixel, so
    // within a cell or so of its edge a minutia may survive in one orientation only. The
    // property is for the interior: 18 px from the edge, as this test always used.
    let cfg = ExtractConfig {
        border_margin: 18.0,
        ..ExtractConfig::default()
    };
    let a = extract(&img, FingerPosition::Unknown, &cfg)
        .unwrap()
        .template;
    let rot = image::imageops::rotate90(&img);
    let b = extract(&rot, FingerPosition::Unknown, &cfg)
        .unwrap()
        .template;
    let h = img.height() as f32;
    let mut matched = 0;
    for m in &a.minutiae {
        // Clockwise quarter turn: (x, y) -> (h - 1 - y, x), angle - 90°.
        let (x, y) = (h - 1.0 - m.y, m.x);
        let ang = m.angle - FRAC_PI_2;
        if b.minutiae.iter().any(|n| {
            (n.x - x).hypot(n.y - y) <= 4.0 && angle_diff(n.angle, ang) < 15f32.to_radians()
        }) {
            matched += 1;
        }
    }
    assert!(
        matched as f32 >= 0.8 * a.minutiae.len() as f32,
        "{matched} of {} (rotated has {})",
        a.minutiae.len(),
        b.minutiae.len()
    );
}

#[test]
fn noise_lowers_the_score() {
    let pts = planted_points();
    let clean = quality(
        &phase_finger(440, 520, &pts, 0.0, 1),
        &ExtractConfig::default(),
    )
    .unwrap();
    let noisy = quality(
        &phase_finger(440, 520, &pts, 150.0, 2),
        &ExtractConfig::default(),
    )
    .unwrap();
    assert!(
        noisy.score + 10 < clean.score,
        "noisy {} clean {}",
        noisy.score,
        clean.score
    );
    assert!(clean.foreground_fraction > 0.4 && clean.foreground_fraction < 0.9);
}

#[test]
fn blank_image_is_refused() {
    let img = GrayImage::from_pixel(300, 300, image::Luma([210]));
    let q = quality(&img, &ExtractConfig::default()).unwrap();
    assert!(!q.usable);
    assert_eq!(q.score, 0);
    match extract(&img, FingerPosition::Unknown, &ExtractConfig::default()) {
        Err(ExtractError::LowQuality { reason, .. }) => {
            assert!(reason.contains("no contrast"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn uniform_noise_is_refused() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let img = GrayImage::from_fn(400, 400, |_, _| image::Luma([rng.gen::<u8>()]));
    match extract(&img, FingerPosition::Unknown, &ExtractConfig::default()) {
        Err(ExtractError::LowQuality { reason, score }) => {
            assert!(reason.contains("no ridge pattern"), "{reason}");
            assert!(score < 20, "{score}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn small_finger_area_is_refused_with_its_share() {
    // A 90-px disc of ridges in a 500x500 image: about 2.5% of it.
    let img = GrayImage::from_fn(500, 500, |x, y| {
        let (xf, yf) = (x as f32 - 250.0, y as f32 - 250.0);
        if xf.hypot(yf) < 45.0 {
            let v = 0.5 + 0.5 * (TAU * (0.8 * xf + 0.6 * yf) / 9.0).cos();
            image::Luma([(225.0 - 170.0 * v) as u8])
        } else {
            image::Luma([225])
        }
    });
    match extract(&img, FingerPosition::Unknown, &ExtractConfig::default()) {
        Err(ExtractError::LowQuality { reason, .. }) => {
            assert!(reason.contains("too little finger area"), "{reason}");
            assert!(reason.contains("% of the image"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_few_minutiae_is_refused() {
    let img = stripes_with_ending(200, 200, 9.0, 99.0, 100.0);
    match extract(&img, FingerPosition::Unknown, &ExtractConfig::default()) {
        Err(ExtractError::LowQuality { reason, .. }) => {
            assert!(reason.contains("too few reliable minutiae: 1"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sizes_are_bounded() {
    let cfg = ExtractConfig::default();
    let small = GrayImage::new(63, 300);
    assert!(matches!(
        quality(&small, &cfg),
        Err(ExtractError::TooSmall {
            width: 63,
            height: 300,
            min: 64
        })
    ));
    let large = GrayImage::new(64, 2001);
    assert!(matches!(
        extract(&large, FingerPosition::Unknown, &cfg),
        Err(ExtractError::TooLarge { max: 2000, .. })
    ));
    assert!(quality(&GrayImage::new(64, 64), &cfg).is_ok());
}

#[test]
fn bad_config_is_an_error() {
    let cfg = ExtractConfig {
        gabor_radius: 0,
        ..ExtractConfig::default()
    };
    let img = GrayImage::new(100, 100);
    assert!(matches!(
        quality(&img, &cfg),
        Err(ExtractError::InvalidConfig(_))
    ));
    let cfg = ExtractConfig {
        min_period: f32::NAN,
        ..ExtractConfig::default()
    };
    assert!(matches!(
        quality(&img, &cfg),
        Err(ExtractError::InvalidConfig(_))
    ));
}

#[test]
fn odd_sizes_and_flat_patches_do_not_panic() {
    let cfg = ExtractConfig::default();
    for (w, h) in [(64, 64), (65, 97), (131, 64), (257, 255)] {
        let img = phase_finger(w, h, &[(w as f32 / 2.0, h as f32 / 2.0, 1.0)], 20.0, 3);
        let _ = extract(&img, FingerPosition::Unknown, &cfg);
        let _ = quality(&img, &cfg);
    }
    // Half black, half white: a hard edge and nothing else.
    let img = GrayImage::from_fn(200, 200, |x, _| {
        image::Luma([if x < 100 { 0 } else { 255 }])
    });
    assert!(extract(&img, FingerPosition::Unknown, &cfg).is_err());
    let _ = PI;
}

/// Writes the stages of the planted pattern to /tmp for eyeballing.
#[test]
#[ignore]
fn dump_stages() {
    let pts = planted_points();
    let img = phase_finger(440, 520, &pts, 0.0, 1);
    dump(&img, "planted");
    let img = stripes_with_ending(200, 200, 9.0, 99.0, 100.0);
    dump(&img, "stripes");
}

pub(super) fn dump(img: &GrayImage, name: &str) {
    let cfg = loose();
    let a = analyse(img, &cfg).unwrap();
    let bank = enhance::GaborBank::new(&cfg);
    let ridges = enhance::enhance(&a.norm, &a.fields, &bank);
    let mut sk = enhance::enhance(&a.norm, &a.fields, &bank);
    skeleton::thin(&mut sk);
    let ms = minutiae::find(&sk, &a.fields, &cfg);
    let (w, h) = img.dimensions();
    let mut out = image::RgbImage::new(w * 2, h);
    for y in 0..h {
        for x in 0..w {
            let g = img.get_pixel(x, y)[0];
            let i = (y as usize + 1) * ridges.stride + x as usize + 1;
            let cell = a.fields.cell_of(x as f32, y as f32).unwrap();
            let m = a.fields.mask[cell];
            out.put_pixel(x, y, image::Rgb([g, g, if m { g } else { g / 2 }]));
            let r = if sk.px[i] == 1 {
                [255, 0, 0]
            } else if ridges.px[i] == 1 {
                [90, 90, 90]
            } else {
                [255, 255, 255]
            };
            out.put_pixel(x + w, y, image::Rgb(r));
        }
    }
    for m in &ms {
        let col = if m.kind == MinutiaKind::Ending {
            [0, 160, 0]
        } else {
            [0, 0, 255]
        };
        for t in 0..12 {
            let (x, y) = (
                m.x + t as f32 * m.angle.cos(),
                m.y - t as f32 * m.angle.sin(),
            );
            for off in [0, w] {
                if x >= 0.0 && y >= 0.0 && (x as u32) < w && (y as u32) < h {
                    out.put_pixel(x as u32 + off, y as u32, image::Rgb(col));
                }
            }
        }
    }
    out.save(format!("/tmp/extract_{name}.png")).unwrap();
    eprintln!("{name}: {} minutiae, quality {:?}", ms.len(), a.report);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn arbitrary_images_never_panic(
        w in 64u32..120,
        h in 64u32..120,
        seed in proptest::prelude::any::<u64>(),
        period in 2.0f32..30.0,
        amp in 0.0f32..128.0,
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let img = GrayImage::from_fn(w, h, |x, y| {
            let v = 128.0 + amp * (TAU * (x as f32 + 0.3 * y as f32) / period).cos()
                + rng.gen_range(-40.0f32..40.0);
            image::Luma([v.clamp(0.0, 255.0) as u8])
        });
        let cfg = ExtractConfig { min_minutiae: 0, ..ExtractConfig::default() };
        if let Ok(e) = extract(&img, FingerPosition::Unknown, &cfg) {
            for m in &e.template.minutiae {
                proptest::prop_assert!(m.x >= 0.0 && m.y >= 0.0 && m.x < w as f32 && m.y < h as f32);
                proptest::prop_assert!((0.0..TAU).contains(&m.angle));
            }
        }
        let _ = quality(&img, &cfg);
    }
}

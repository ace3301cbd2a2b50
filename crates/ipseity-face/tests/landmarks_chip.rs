//! Agreement of our landmarks and aligned chips with dlib's, on the reference in
//! `tests/data/face_reference.json` (made by `tools/reference/make_reference.sh`).
//!
//! Needs the test images (`IPSEITY_TEST_IMAGES`) and the models
//! (`IPSEITY_MODELS_DIR`); without them it skips with a message, unless
//! `IPSEITY_REQUIRE_MODELS` is set, when it fails instead.

use std::path::{Path, PathBuf};

use ipseity_face::chip::{extract_chip, face_chip_details};
use ipseity_face::geom::{Rect, RgbImage};
use ipseity_face::landmarks::predict_landmarks;
use serde_json::Value;

/// Largest landmark distance from dlib's, per coordinate, in pixels, on a losslessly
/// stored image, which both sides decode to the same pixels. Our arithmetic is
/// dlib's, so the landmarks are in fact identical.
const LANDMARK_TOL_PX: f64 = 1.0;
/// The same on a JPEG. The `image` crate's decoder and the libjpeg-turbo behind
/// PIL disagree on about 0.5% of samples by 1 to 3 levels; the trees compare pixel
/// differences against thresholds, so now and then a split flips and a point moves
/// by a pixel or two (2 px measured, on the nose of `obama3.jpg`).
const JPEG_LANDMARK_TOL_PX: f64 = 2.0;
/// Largest difference of a chip channel mean from dlib's.
const CHIP_MEAN_TOL: f64 = 1.0;

/// The inputs, or `None` (after saying why) when the test should be skipped.
fn inputs() -> Option<(Value, PathBuf, PathBuf)> {
    let require = std::env::var_os("IPSEITY_REQUIRE_MODELS").is_some();
    let skip = |why: String| {
        assert!(!require, "IPSEITY_REQUIRE_MODELS is set but {why}");
        eprintln!("skipping landmarks_chip: {why}");
        None
    };
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/face_reference.json");
    let Ok(text) = std::fs::read_to_string(&reference) else {
        return skip(format!("{} is missing", reference.display()));
    };
    let Some(images) = std::env::var_os("IPSEITY_TEST_IMAGES") else {
        return skip("IPSEITY_TEST_IMAGES is not set".into());
    };
    let Some(models) = std::env::var_os("IPSEITY_MODELS_DIR") else {
        return skip("IPSEITY_MODELS_DIR is not set".into());
    };
    let doc = serde_json::from_str(&text).expect("face_reference.json is not JSON");
    Some((doc, images.into(), models.into()))
}

fn load_rgb(path: &Path) -> RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    RgbImage::from_raw(w, h, img.into_raw()).expect("RGB8 buffer of the right size")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn landmarks_and_chips_agree_with_dlib() {
    let Some((doc, images, models)) = inputs() else {
        return;
    };
    let model = models.join("shape_predictor_5_face_landmarks.dat");
    let bytes =
        std::fs::read(&model).unwrap_or_else(|e| panic!("cannot read {}: {e}", model.display()));
    let sp = ipseity_dlib::read_shape_predictor(&bytes).expect("valid shape predictor");

    let (mut worst_landmark, mut worst_mean, mut worst_sample) = (0.0f64, 0.0f64, 0i64);
    let mut faces = 0;
    for entry in doc["images"].as_array().expect("images") {
        let file = entry["file"].as_str().expect("file");
        let img = load_rgb(&images.join(file));
        for face in entry["faces"].as_array().expect("faces") {
            faces += 1;
            let r = f64s(&face["rect"]);
            let rect = Rect {
                left: r[0] as i64,
                top: r[1] as i64,
                right: r[2] as i64,
                bottom: r[3] as i64,
            };
            let tol = if file.to_ascii_lowercase().ends_with(".png") {
                LANDMARK_TOL_PX
            } else {
                JPEG_LANDMARK_TOL_PX
            };
            let ours = predict_landmarks(&sp, &img, rect);
            let theirs = face["landmarks"].as_array().expect("landmarks");
            assert_eq!(ours.len(), theirs.len(), "{file}: landmark count");
            for (p, q) in ours.iter().zip(theirs) {
                let q = f64s(q);
                let err = (p.x - q[0]).abs().max((p.y - q[1]).abs());
                worst_landmark = worst_landmark.max(err);
                assert!(
                    err <= tol,
                    "{file} {rect:?}: landmark ({}, {}) vs dlib ({}, {})",
                    p.x,
                    p.y,
                    q[0],
                    q[1]
                );
            }

            let chip = extract_chip(&img, &face_chip_details(&ours, 150, 0.25));
            assert_eq!((chip.width, chip.height), (150, 150));
            let want = f64s(&face["chip_mean"]);
            let mut face_mean_err = 0.0f64;
            for (c, want) in want.iter().enumerate() {
                let sum: u64 = chip.data.iter().skip(c).step_by(3).map(|&v| v as u64).sum();
                let mean = sum as f64 / (150.0 * 150.0);
                face_mean_err = face_mean_err.max((mean - want).abs());
                assert!(
                    (mean - want).abs() <= CHIP_MEAN_TOL,
                    "{file} {rect:?}: chip channel {c} mean {mean} vs dlib {want}"
                );
            }
            worst_mean = worst_mean.max(face_mean_err);
            let face_landmark_err = ours
                .iter()
                .zip(theirs)
                .map(|(p, q)| {
                    let q = f64s(q);
                    (p.x - q[0]).abs().max((p.y - q[1]).abs())
                })
                .fold(0.0, f64::max);
            eprintln!(
                "landmarks_chip: {file} {rect:?}: landmark error {face_landmark_err} px, \
                 chip channel-mean difference {face_mean_err:.4}"
            );
            for s in face["chip_samples"].as_array().into_iter().flatten() {
                let xy = f64s(&s["xy"]);
                let rgb = f64s(&s["rgb"]);
                let got = chip.get(xy[0] as usize, xy[1] as usize);
                for (g, w) in got.iter().zip(&rgb) {
                    worst_sample = worst_sample.max((*g as i64 - *w as i64).abs());
                }
            }
        }
    }
    assert!(faces > 0, "the reference lists no faces");
    eprintln!(
        "landmarks_chip: {faces} faces; worst landmark error {worst_landmark} px, \
         worst chip channel-mean difference {worst_mean:.4}, \
         worst sampled chip pixel difference {worst_sample} (not asserted)"
    );
}

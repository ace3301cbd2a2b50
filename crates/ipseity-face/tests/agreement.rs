//! End-to-end agreement with dlib (through face_recognition 1.3.0): detection
//! boxes, landmarks and 128-D embeddings on the reference portraits, from the
//! file on disk through our own decoder. The reference is
//! `tests/data/face_reference.json`, made by `tools/reference/make_reference.sh`.
//!
//! Needs `IPSEITY_TEST_IMAGES` and `IPSEITY_MODELS_DIR` (the README's test
//! command sets both); skips with a message without them, unless
//! `IPSEITY_REQUIRE_MODELS` is set.

use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::{distance, FaceEngine, Params};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIN_IOU: f64 = 0.9;
/// JPEGs decode through libjpeg-turbo as in the reference, so the pixels are
/// identical and the 1 px bound holds for every file.
const LANDMARK_TOL_PX: f64 = 1.0;
const MAX_L2: f32 = 0.01;

fn inputs() -> Option<(Value, PathBuf, PathBuf)> {
    let require = std::env::var_os("IPSEITY_REQUIRE_MODELS").is_some();
    let (Some(images), Some(models)) = (
        std::env::var_os("IPSEITY_TEST_IMAGES"),
        std::env::var_os("IPSEITY_MODELS_DIR"),
    ) else {
        assert!(
            !require,
            "IPSEITY_REQUIRE_MODELS is set but IPSEITY_TEST_IMAGES or IPSEITY_MODELS_DIR is not"
        );
        eprintln!("skipping agreement: IPSEITY_TEST_IMAGES / IPSEITY_MODELS_DIR not set");
        return None;
    };
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/face_reference.json");
    let text = std::fs::read_to_string(reference).expect("reference JSON");
    Some((
        serde_json::from_str(&text).expect("JSON"),
        images.into(),
        models.into(),
    ))
}

fn engine(models: &Path, params: Params) -> FaceEngine {
    let read = |n: &str| std::fs::read(models.join(n)).expect("model file");
    FaceEngine::from_bytes(
        &read("mmod_human_face_detector.dat"),
        &read("shape_predictor_5_face_landmarks.dat"),
        &read("dlib_face_recognition_resnet_model_v1.dat"),
        params,
    )
    .expect("models load")
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn ref_rect(face: &Value) -> ipseity_face::geom::Rect {
    let rect = nums(&face["rect"]);
    ipseity_face::geom::Rect {
        left: rect[0] as i64,
        top: rect[1] as i64,
        right: rect[2] as i64,
        bottom: rect[3] as i64,
    }
}

#[test]
fn pipeline_agrees_with_dlib() {
    let Some((doc, images, models)) = inputs() else {
        return;
    };
    let engine = engine(&models, Params::exact());
    let mut worst_l2 = 0f32;
    let mut checked = 0;
    for entry in doc["images"].as_array().expect("images") {
        let file = entry["file"].as_str().expect("file");
        let img = load_image(&images.join(file), &DecodeLimits::default()).expect("decodes");
        let faces = engine.analyze(&img).expect("analysis");
        let refs = entry["faces"].as_array().expect("faces");
        assert_eq!(faces.len(), refs.len(), "{file}: face count");
        for (face, r) in faces.iter().zip(refs) {
            let want = ref_rect(r);
            let iou = face.rect.iou(&want);
            assert!(iou >= MIN_IOU, "{file}: box IoU {iou}");
            let tol = LANDMARK_TOL_PX;
            for (p, q) in face
                .landmarks
                .iter()
                .zip(r["landmarks"].as_array().expect("lm"))
            {
                let q = nums(q);
                assert!(
                    (p.x - q[0]).abs() <= tol && (p.y - q[1]).abs() <= tol,
                    "{file}: landmark ({}, {}) vs ({}, {})",
                    p.x,
                    p.y,
                    q[0],
                    q[1]
                );
            }
            let want: Vec<f32> = nums(&r["embedding"])
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let d = distance(&face.embedding, &want);
            let dot: f32 = face.embedding.iter().zip(&want).map(|(a, b)| a * b).sum();
            let na: f32 = face.embedding.iter().map(|a| a * a).sum::<f32>().sqrt();
            let nb: f32 = want.iter().map(|a| a * a).sum::<f32>().sqrt();
            let cos = dot / (na * nb);
            eprintln!("{file}: iou {iou:.4} l2 {d:.5} cos {cos:.6}");
            assert!(d <= MAX_L2, "{file}: embedding L2 {d} > {MAX_L2}");
            assert!(cos >= 0.9999, "{file}: cosine {cos}");
            worst_l2 = worst_l2.max(d);
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} faces checked");
    eprintln!("worst embedding L2 distance to dlib: {worst_l2}");
}

/// The cooperative (default) detector searches a shrunken image, so its boxes
/// are not dlib's to the pixel; what matters is that it finds the same faces
/// and that the templates stay far closer to dlib's than two photos of one
/// person are (dlib's same-person threshold is a distance of 0.6).
const COOPERATIVE_MIN_IOU: f64 = 0.55;
const COOPERATIVE_MAX_L2: f32 = 0.15;

#[test]
fn cooperative_detection_finds_the_same_faces_and_templates() {
    let Some((doc, images, models)) = inputs() else {
        return;
    };
    let engine = engine(&models, Params::default());
    let mut checked = 0;
    for entry in doc["images"].as_array().expect("images") {
        let file = entry["file"].as_str().expect("file");
        let img = load_image(&images.join(file), &DecodeLimits::default()).expect("decodes");
        let faces = engine.analyze(&img).expect("analysis");
        let refs = entry["faces"].as_array().expect("faces");
        assert_eq!(faces.len(), refs.len(), "{file}: face count");
        for (face, r) in faces.iter().zip(refs) {
            let want = ref_rect(r);
            let iou = face.rect.iou(&want);
            let want: Vec<f32> = nums(&r["embedding"])
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let d = distance(&face.embedding, &want);
            eprintln!("{file}: cooperative iou {iou:.4} l2 {d:.5}");
            assert!(iou >= COOPERATIVE_MIN_IOU, "{file}: box IoU {iou}");
            assert!(d <= COOPERATIVE_MAX_L2, "{file}: embedding L2 {d}");
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} faces checked");
}

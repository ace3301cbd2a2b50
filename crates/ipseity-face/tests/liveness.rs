//! MiniFASNet liveness on the model repository's sample images, and its
//! agreement with PyTorch.
//!
//! Reads `../shared/models` (or `IPSEITY_SHARED_DIR`) for the `.pth` files
//! and sample photos, and `IPSEITY_MODELS_DIR` for dlib's detector; without
//! them the tests skip with a message, unless `IPSEITY_REQUIRE_SHARED=1`.
//!
//! `tools/liveness/reference.sh` runs the PyTorch reference: it sets
//! `IPSEITY_LIVENESS_CROPS_OUT` to have `write_crops` save the exact patches
//! our code feeds the networks, runs them through PyTorch, and then sets
//! `IPSEITY_LIVENESS_REFERENCE` to the resulting file for
//! `agrees_with_pytorch`.

use std::path::{Path, PathBuf};

use ipseity_face::cnn::Tensor;
use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::geom::RgbImage;
use ipseity_face::liveness::{self, Liveness, MiniFasNet, INPUT_SIDE, MODELS};
use ipseity_face::{presented_face, FaceEngine, Params};

/// Agreement required of each class probability against PyTorch.
const TOLERANCE: f32 = 1e-4;

fn skip(why: String) {
    assert!(
        std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
        "IPSEITY_REQUIRE_SHARED is set but {why}"
    );
    eprintln!("skipped: {why}");
}

fn shared() -> PathBuf {
    std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("models/silent_face_anti_spoofing")
}

fn models() -> Option<Vec<MiniFasNet>> {
    let dir = shared().join("resources/anti_spoof_models");
    let mut out = Vec::new();
    for (name, scale) in MODELS {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            skip(format!("{} is missing", dir.join(name).display()));
            return None;
        };
        out.push(MiniFasNet::from_pth(&bytes, scale).expect("model loads"));
    }
    Some(out)
}

fn engine() -> Option<FaceEngine> {
    let Some(dir) = std::env::var_os("IPSEITY_MODELS_DIR").map(PathBuf::from) else {
        skip("IPSEITY_MODELS_DIR is not set".into());
        return None;
    };
    let read = |n: &str| std::fs::read(dir.join(n));
    match (
        read("mmod_human_face_detector.dat"),
        read("shape_predictor_5_face_landmarks.dat"),
        read("dlib_face_recognition_resnet_model_v1.dat"),
    ) {
        (Ok(d), Ok(l), Ok(e)) => {
            Some(FaceEngine::from_bytes(&d, &l, &e, Params::default()).expect("models load"))
        }
        _ => {
            skip(format!("dlib models missing in {}", dir.display()));
            None
        }
    }
}

const SAMPLES: [(&str, bool); 3] = [
    ("image_F1.jpg", false),
    ("image_F2.jpg", false),
    ("image_T1.jpg", true),
];

/// A sample photo and the face box our detector gives for it.
fn sample(engine: &FaceEngine, name: &str) -> (RgbImage, ipseity_face::geom::Rect) {
    let img = load_image(
        &shared().join("images/sample").join(name),
        &DecodeLimits::default(),
    )
    .expect("sample decodes");
    let dets = engine.detect(&img).expect("detection runs");
    let i = presented_face(&dets, img.width, img.height).expect("a face in the sample");
    (img, dets[i].rect)
}

/// Synthetic patches that exercise the networks away from faces.
fn synthetic(seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
    let mut img = RgbImage::new(INPUT_SIDE, INPUT_SIDE);
    for v in img.data.iter_mut() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *v = (s >> 24) as u8;
    }
    img
}

/// Every (case name, model index, patch) the reference is asked about.
fn cases(engine: &FaceEngine) -> Vec<(String, usize, RgbImage)> {
    let mut out = Vec::new();
    for (name, _) in SAMPLES {
        let (img, rect) = sample(engine, name);
        for (m, (file, scale)) in MODELS.iter().enumerate() {
            let patch = liveness::crop(&img, rect, *scale, INPUT_SIDE).expect("crop");
            out.push((format!("{name}@{file}"), m, patch));
        }
    }
    for seed in 0..2 {
        for (m, (file, _)) in MODELS.iter().enumerate() {
            out.push((format!("noise{seed}@{file}"), m, synthetic(seed)));
        }
    }
    out
}

/// The patch as the reference script reads it: rows of BGR bytes.
fn bgr_bytes(patch: &RgbImage) -> Vec<u8> {
    patch
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}

/// A 32-bit FNV-1a digest, so a reference run on other patches is caught.
fn digest(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x01000193)
    })
}

#[test]
fn write_crops() {
    let Some(out) = std::env::var_os("IPSEITY_LIVENESS_CROPS_OUT").map(PathBuf::from) else {
        return;
    };
    let Some(engine) = engine() else { return };
    std::fs::create_dir_all(&out).expect("crop folder");
    for (name, _, patch) in cases(&engine) {
        let bytes = bgr_bytes(&patch);
        std::fs::write(out.join(format!("{name}.bgr")), &bytes).expect("crop written");
    }
}

#[test]
fn agrees_with_pytorch() {
    let Some(file) = std::env::var_os("IPSEITY_LIVENESS_REFERENCE") else {
        eprintln!(
            "skipped: IPSEITY_LIVENESS_REFERENCE is not set (see tools/liveness/reference.sh)"
        );
        return;
    };
    let (Some(nets), Some(engine)) = (models(), engine()) else {
        return;
    };
    let text = std::fs::read_to_string(&file).expect("reference file");
    let mut worst = 0f32;
    let mut seen = 0;
    for (name, m, patch) in cases(&engine) {
        // Line: `<case> <digest> <p0> <p1> <p2>`.
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no reference for {name}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let want_digest: u32 = fields[1].parse().expect("digest");
        assert_eq!(
            digest(&bgr_bytes(&patch)),
            want_digest,
            "{name}: the reference ran on a different patch"
        );
        let want: Vec<f32> = fields[2..]
            .iter()
            .map(|v| v.parse().expect("probability"))
            .collect();
        let got = nets[m]
            .probabilities(&liveness::to_input(&patch))
            .expect("runs");
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
        seen += 1;
    }
    eprintln!("{seen} patches, max |Rust - PyTorch| = {worst:e}");
    assert!(
        worst <= TOLERANCE,
        "max difference {worst:e} exceeds {TOLERANCE:e}"
    );
}

#[test]
fn samples_are_classified_as_the_model_repository_says() {
    let (Some(nets), Some(engine)) = (models(), engine()) else {
        return;
    };
    let live = Liveness { models: nets };
    for (name, bona_fide) in SAMPLES {
        let (img, rect) = sample(&engine, name);
        let score = live.assess(&img, rect).expect("liveness runs");
        eprintln!("{name}: {score:?}");
        assert_eq!(score.is_bona_fide, bona_fide, "{name}: {score:?}");
    }
}

#[test]
fn a_wrong_input_size_is_an_error() {
    let Some(nets) = models() else { return };
    assert!(nets[0].probabilities(&Tensor::zeros(3, 64, 64)).is_err());
    assert!(nets[0].probabilities(&Tensor::zeros(1, 80, 80)).is_err());
}

#[test]
fn the_engine_runs_liveness_on_a_detected_face() {
    let (Some(nets), Some(engine)) = (models(), engine()) else {
        return;
    };
    let (img, rect) = sample(&engine, "image_T1.jpg");
    assert!(matches!(
        engine.assess_liveness(&img, rect),
        Err(ipseity_face::FaceError::NoLivenessModels)
    ));
    let live = Liveness {
        models: nets.clone(),
    };
    let direct = live.assess(&img, rect).expect("runs");
    let engine = engine.with_liveness(live);
    assert!(engine.has_liveness());
    assert_eq!(engine.assess_liveness(&img, rect).expect("runs"), direct);
}

#[test]
fn a_live_capture_passes_and_an_attack_is_refused() {
    let (Some(nets), Some(engine)) = (models(), engine()) else {
        return;
    };
    let load = |name: &str| {
        load_image(
            &shared().join("images/sample").join(name),
            &DecodeLimits::default(),
        )
        .expect("sample decodes")
    };
    // Without the models a live capture is refused, never passed unchecked.
    assert!(matches!(
        engine.live_face(&load("image_T1.jpg"), true),
        Err(ipseity_face::FaceError::NoLivenessModels)
    ));
    let engine = engine.with_liveness(Liveness { models: nets });
    let live = engine
        .live_face(&load("image_T1.jpg"), true)
        .expect("the bona fide sample passes");
    let plain = engine
        .single_face(&load("image_T1.jpg"), true)
        .expect("face");
    assert_eq!(live.embedding, plain.embedding);
    for name in ["image_F1.jpg", "image_F2.jpg"] {
        let err = engine.live_face(&load(name), true).unwrap_err();
        assert!(
            matches!(err, ipseity_face::FaceError::PresentationAttack),
            "{name}: {err}"
        );
        assert_eq!(ipseity_core::Classified::code(&err), "presentation_attack");
    }
}

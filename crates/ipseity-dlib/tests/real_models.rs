//! Parses the real dlib model files when they are installed (the CI setup
//! installs them; see `ipseity models install`), and checks truncations of
//! them fail cleanly.

use ipseity_dlib::*;
use std::path::PathBuf;

fn models_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IPSEITY_MODELS_DIR").map(PathBuf::from)?;
    dir.join("mmod_human_face_detector.dat")
        .exists()
        .then_some(dir)
}

macro_rules! need_models {
    () => {
        match models_dir() {
            Some(d) => d,
            None if std::env::var_os("IPSEITY_REQUIRE_MODELS").is_some() => {
                panic!("IPSEITY_REQUIRE_MODELS is set but IPSEITY_MODELS_DIR has no models")
            }
            None => {
                eprintln!("skipping: IPSEITY_MODELS_DIR not set");
                return;
            }
        }
    };
}

#[test]
fn mmod_detector_parses() {
    let dir = need_models!();
    let bytes = std::fs::read(dir.join("mmod_human_face_detector.dat")).unwrap();
    let net = read_net(&bytes, &mmod_detector_slots()).unwrap();
    let Loss::Mmod(opts) = &net.loss else {
        panic!("not an MMOD net")
    };
    assert!(!opts.windows.is_empty());
    assert_eq!(net.input.fixed_size, None);
    assert_eq!(net.layers.len(), 19);
    match &net.layers[0] {
        Layer::Con { filters, k, .. } => assert_eq!((*filters, *k), (16, 3)),
        l => panic!("first layer {l:?}"),
    }
    // Every prefix must fail with an error, not a panic. Sampled to keep the test fast.
    for cut in (0..bytes.len()).step_by(bytes.len() / 97) {
        assert!(read_net(&bytes[..cut], &mmod_detector_slots()).is_err());
    }
}

#[test]
fn resnet_parses() {
    let dir = need_models!();
    let bytes = std::fs::read(dir.join("dlib_face_recognition_resnet_model_v1.dat")).unwrap();
    let net = read_net(&bytes, &resnet_embedding_slots()).unwrap();
    assert_eq!(net.input.fixed_size, Some((150, 150)));
    match net.layers.last().unwrap() {
        Layer::Fc {
            inputs, outputs, ..
        } => assert_eq!((*inputs, *outputs), (256, 128)),
        l => panic!("last layer {l:?}"),
    }
    for cut in [1, 100, 10_000, bytes.len() / 2, bytes.len() - 1] {
        assert!(read_net(&bytes[..cut], &resnet_embedding_slots()).is_err());
    }
    // The wrong architecture is an error too.
    assert!(read_net(&bytes, &mmod_detector_slots()).is_err());
}

#[test]
fn shape_predictor_parses() {
    let dir = need_models!();
    let bytes = std::fs::read(dir.join("shape_predictor_5_face_landmarks.dat")).unwrap();
    let sp = read_shape_predictor(&bytes).unwrap();
    assert_eq!(sp.landmarks(), 5);
    assert!(!sp.forests.is_empty());
    for cut in [0, 1, 1000, bytes.len() / 3, bytes.len() - 1] {
        assert!(read_shape_predictor(&bytes[..cut]).is_err());
    }
}

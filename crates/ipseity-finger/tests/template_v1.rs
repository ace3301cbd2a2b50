//! The stored fingerprint template format, version 1 (`FingerTemplate::to_vector`, the
//! `f32` vector the store seals under model `ipseity-finger-mcc-v1`), pinned by a fixture:
//! a change to the layout that would make enrolled fingers unreadable fails here.
//! `IPSEITY_REGEN_FIXTURES=1` rewrites the fixture (only for a deliberate new version).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::path::PathBuf;

use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/finger_template_v1.f32le")
}

/// Exact binary fractions, so the fixture is the same on every machine.
fn content() -> FingerTemplate {
    FingerTemplate {
        width: 416,
        height: 560,
        resolution_ppi: 500,
        position: FingerPosition::LeftThumb,
        quality: 73,
        minutiae: vec![
            Minutia::new(12.5, 40.25, 0.5, MinutiaKind::Ending, 90),
            Minutia::new(200.0, 301.75, 3.0, MinutiaKind::Bifurcation, 55),
            Minutia::new(399.5, 8.0, 6.0, MinutiaKind::Other, 0),
        ],
    }
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn the_v1_fixture_reads_back_and_is_what_this_build_writes() {
    let expected = content();
    let written = to_bytes(&expected.to_vector());
    if std::env::var("IPSEITY_REGEN_FIXTURES").as_deref() == Ok("1") {
        std::fs::write(fixture(), &written).unwrap();
    }
    let bytes = std::fs::read(fixture()).unwrap();
    assert_eq!(bytes.len() % 4, 0);
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(v.len(), 6 + 5 * 3, "header plus five values a minutia");
    assert_eq!(FingerTemplate::from_vector(&v).unwrap(), expected);
    assert_eq!(bytes, written, "this build writes the v1 layout");
}

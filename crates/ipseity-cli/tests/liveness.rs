//! Presentation-attack detection in `enroll` and `verify`: on by default, an attack refused
//! with `presentation_attack` (audited, nothing written, a failed attempt), the check
//! turned off with `--no-liveness` (audited), missing models refused rather than skipped;
//! and `eval --pad-bona-fide` reporting BPCER and APCER. The attack photos are the liveness
//! model repository's own samples in `../shared/models`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::{Path, PathBuf};

use common::{error_code, fixtures, ipseity, json, run, shared};
use serde_json::Value;

fn attack_samples() -> Option<PathBuf> {
    shared("models/silent_face_anti_spoofing", "LICENSE").map(|d| d.join("images/sample"))
}

fn audit(data: &Path) -> Vec<Value> {
    let (rc, out, err) = run(ipseity(data).args(["--json", "audit"]));
    assert_eq!(rc, 0, "{out}{err}");
    json(&out)["entries"].as_array().expect("entries").clone()
}

fn outcomes(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or("").to_owned(),
                e["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_attack_is_refused_at_enrolment_and_verification_and_the_check_is_only_skipped_on_purpose() {
    let (Some((models, images)), Some(attacks)) = (fixtures(), attack_samples()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cli = |args: &[&str], face: &Path| {
        run(ipseity(&data)
            .arg("--models-dir")
            .arg(&models)
            .args(["--json", "--purpose", "onboarding"])
            .args(args)
            .arg(face))
    };

    // A live capture enrols with the check on (the default).
    let (rc, out, err) = cli(
        &["enroll", "--subject", "obama", "--face"],
        &images.join("obama.jpg"),
    );
    assert_eq!(rc, 0, "{out}{err}");

    // A photo shown to the camera is refused and nothing is written.
    let (rc, out, err) = cli(
        &["enroll", "--subject", "mallory", "--face"],
        &attacks.join("image_F1.jpg"),
    );
    assert_eq!(rc, 2, "{out}{err}");
    assert_eq!(error_code(&out), "presentation_attack", "{out}");
    let (rc, out, _) = run(ipseity(&data).args(["--json", "list"]));
    assert_eq!(rc, 0);
    assert!(!out.contains("mallory"), "{out}");

    // At verification it is refused before any comparison, and counts as a failed attempt.
    let (rc, out, err) = cli(
        &["verify", "--subject", "obama", "--face"],
        &attacks.join("image_F2.jpg"),
    );
    assert_eq!(rc, 2, "{out}{err}");
    assert_eq!(error_code(&out), "presentation_attack", "{out}");
    assert!(!out.contains("decision"), "{out}");

    // A genuine live capture still verifies.
    let (rc, out, err) = cli(
        &["verify", "--subject", "obama", "--face"],
        &images.join("obama2.jpg"),
    );
    assert_eq!(
        (rc, json(&out)["decision"].clone()),
        (0, "accept".into()),
        "{out}{err}"
    );

    // Turned off on purpose, the attack photo reaches the comparison (and is rejected as
    // another person); the audit log says the check was off.
    let (rc, out, err) = cli(
        &["verify", "--no-liveness", "--subject", "obama", "--face"],
        &attacks.join("image_F2.jpg"),
    );
    assert_eq!(
        (rc, json(&out)["decision"].clone()),
        (1, "reject".into()),
        "{out}{err}"
    );

    let got = outcomes(&audit(&data));
    let pos = |op: &str, outcome: &str| {
        got.iter()
            .position(|(o, r)| o == op && r == outcome)
            .unwrap_or_else(|| panic!("no {op} {outcome} in {got:?}"))
    };
    pos("enroll", "presentation_attack");
    pos("verify", "presentation_attack");
    pos("verify", "liveness_off");
    assert_eq!(
        got.iter().filter(|(_, r)| r == "liveness_off").count(),
        1,
        "{got:?}"
    );
    // No entry carries a score or a probability.
    for e in audit(&data) {
        let d = e["detail"].as_str().unwrap_or("");
        assert!(!d.contains('.'), "a number with a fraction in {e}");
    }
}

#[test]
fn without_the_liveness_models_enrolment_is_refused_unless_the_check_is_turned_off() {
    let Some((models, images)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The face models alone.
    let plain = tmp.path().join("models");
    std::fs::create_dir(&plain).unwrap();
    for e in std::fs::read_dir(&models).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dat") {
            std::fs::copy(&p, plain.join(p.file_name().unwrap())).unwrap();
        }
    }
    ipseity_models::locate(&plain).expect("the face models alone are a model set");
    let data = tmp.path().join("data");
    let enrol = |extra: &[&str]| {
        run(ipseity(&data)
            .arg("--models-dir")
            .arg(&plain)
            .args(["--json", "--purpose", "onboarding", "enroll"])
            .args(extra)
            .args(["--subject", "obama", "--face"])
            .arg(images.join("obama.jpg")))
    };
    let (rc, out, err) = enrol(&[]);
    assert_ne!(rc, 0, "{out}{err}");
    assert_eq!(error_code(&out), "models_missing", "{out}");
    assert!(out.contains("--no-liveness"), "{out}");
    let (rc, out, err) = enrol(&["--no-liveness"]);
    assert_eq!(rc, 0, "{out}{err}");
    let got = outcomes(&audit(&data));
    assert!(
        got.contains(&("enroll".into(), "liveness_off".into())),
        "{got:?}"
    );
}

#[test]
fn eval_reports_bpcer_and_apcer() {
    let (Some((models, images)), Some(attacks)) = (fixtures(), attack_samples()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let attack_dir = tmp.path().join("attacks");
    std::fs::create_dir(&attack_dir).unwrap();
    for n in ["image_F1.jpg", "image_F2.jpg"] {
        std::fs::copy(attacks.join(n), attack_dir.join(n)).unwrap();
    }
    let (rc, out, err) = run(ipseity(&tmp.path().join("data"))
        .arg("--models-dir")
        .arg(&models)
        .args(["--json", "eval", "--pad-bona-fide"])
        .arg(&images)
        .arg("--pad-attacks")
        .arg(&attack_dir));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    let bona = &v["bona_fide"];
    let listed = std::fs::read_dir(&images).unwrap().count();
    assert_eq!(bona["presentations"], listed, "{v}");
    let assessed = bona["assessed"].as_u64().unwrap();
    assert!(assessed >= 5, "{v}");
    assert_eq!(
        bona["rate"].as_f64().unwrap(),
        bona["misclassified"].as_f64().unwrap() / assessed as f64
    );
    let a = &v["attacks"];
    assert_eq!(
        (a["presentations"].clone(), a["assessed"].clone()),
        (2.into(), 2.into()),
        "{v}"
    );
    assert_eq!(a["misclassified"], 0, "{v}");
    assert_eq!(a["rate"], 0.0, "{v}");
}

//! Regression tests for the hostile trial of the CLI (arguments and records): each case
//! once did work it should have refused, or accepted what it should have refused.
//! The races it found are tested in `crates/ipseity-engine/tests/races.rs`, where the
//! interleaving can be forced.

mod common;

use std::path::Path;

use common::{error_code, ipseity, json, run};
use ipseity_finger::{iso, FingerPosition, FingerTemplate, Minutia, MinutiaKind};

fn audit_len(data: &Path) -> usize {
    let (code, out, err) = run(ipseity(data).args(["--json", "audit"]));
    assert_eq!(code, 0, "{out}{err}");
    json(&out)["entries"].as_array().map_or(0, Vec::len)
}

#[test]
fn top_zero_is_a_usage_error_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let missing = tmp.path().join("missing.png");
    // The probe file does not exist: a usage error proves nothing was read first.
    let (code, out, _) = run(ipseity(&data)
        .args([
            "--json",
            "--purpose",
            "p",
            "finger",
            "identify",
            "--top",
            "0",
            "--finger",
        ])
        .arg(&missing));
    assert_eq!((code, error_code(&out).as_str()), (2, "usage"), "{out}");
    let (code, out, _) = run(ipseity(&data)
        .args([
            "--json",
            "--purpose",
            "p",
            "identify",
            "--top",
            "0",
            "--face",
        ])
        .arg(&missing));
    assert_eq!((code, error_code(&out).as_str()), (2, "usage"), "{out}");
    assert!(!data.exists(), "no store was opened");
}

#[test]
fn an_empty_purpose_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let missing = tmp.path().join("missing.png");
    let cases: [&[&str]; 4] = [
        &["finger", "identify", "--finger"],
        &["finger", "enroll", "--subject", "a", "--finger"],
        &["identify", "--face"],
        &["enroll", "--subject", "a", "--face"],
    ];
    for args in cases {
        let (code, out, _) = run(ipseity(&data)
            .args(["--json", "--purpose", ""])
            .args(args)
            .arg(&missing));
        assert_eq!(
            (code, error_code(&out).as_str()),
            (2, "invalid_input"),
            "{args:?}: {out}"
        );
    }
    assert!(!data.exists(), "no store was opened");
}

#[test]
fn an_enrolment_takes_a_bounded_number_of_images() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let f = tmp.path().join("f.jpg");
    let mut cmd = ipseity(&data);
    cmd.args(["--json", "enroll", "--subject", "m", "--face"]);
    for _ in 0..17 {
        cmd.arg(&f);
    }
    let (code, out, _) = run(&mut cmd);
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "too_many_files"),
        "{out}"
    );
}

#[test]
fn read_only_commands_never_create_a_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("typo");
    for cmd in ["list", "audit"] {
        let (code, out, _) = run(ipseity(&data).args(["--json", cmd]));
        assert_eq!(
            (code, error_code(&out).as_str()),
            (2, "no_store"),
            "{cmd}: {out}"
        );
        assert!(!data.exists(), "{cmd} created {}", data.display());
    }
}

fn record(path: &Path, minutiae: &[(f32, f32)], width: u16, height: u16) {
    let t = FingerTemplate {
        width,
        height,
        resolution_ppi: 500,
        position: FingerPosition::RightIndex,
        quality: 60,
        minutiae: minutiae
            .iter()
            .map(|&(x, y)| Minutia::new(x, y, 0.5, MinutiaKind::Ending, 60))
            .collect(),
    };
    let bytes = iso::write(&[t], iso::Format::Iso19794_2).expect("record");
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn records_pass_the_quality_gate_impressions_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let few = tmp.path().join("few.iso");
    record(&few, &[(50.0, 50.0), (90.0, 120.0)], 300, 300);
    let same = tmp.path().join("same.iso");
    record(&same, &[(60.0, 60.0); 255], 300, 300);
    let empty = tmp.path().join("empty.iso");
    record(&empty, &[], 0, 0);
    for (i, r) in [few, same, empty].iter().enumerate() {
        let (code, out, err) = run(ipseity(&data)
            .args(["--json", "finger", "enroll", "--subject"])
            .arg(format!("s{i}"))
            .arg("--finger")
            .arg(format!("right-index={}", r.display())));
        assert_eq!(code, 2, "{}: {out}{err}", r.display());
        let c = error_code(&out);
        assert!(
            c == "low_quality" || c == "bad_template",
            "{}: {out}",
            r.display()
        );
    }
    // A usable record still enrols.
    let good = tmp.path().join("good.iso");
    let grid: Vec<(f32, f32)> = (0..30)
        .map(|i| (30.0 + 8.0 * i as f32, 40.0 + 7.0 * ((i * 7) % 30) as f32))
        .collect();
    record(&good, &grid, 300, 300);
    let (code, out, err) = run(ipseity(&data)
        .args(["--json", "finger", "enroll", "--subject", "ok", "--finger"])
        .arg(format!("right-index={}", good.display())));
    assert_eq!(code, 0, "{out}{err}");
    // One audit row: the enrolment; the refusals wrote nothing.
    assert_eq!(audit_len(&data), 1);
}

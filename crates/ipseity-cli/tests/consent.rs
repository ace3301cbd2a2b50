//! `ipseity consent give|withdraw` on the embedded store: a withdrawal stops verification
//! (exit 2, `no_consent`) and search for that purpose at once, and giving it again restores
//! both. (Both backends and the API are tested in `ipseity-store` and `ipseity-server`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::Path;

use common::{error_code, ipseity, json, run, synth};

fn print(dir: &Path, finger: u32, k: u32) -> String {
    format!(
        "right-index={}",
        dir.join(format!("{finger:05}_{k}.png")).display()
    )
}

#[test]
fn a_withdrawn_consent_stops_verification_and_search_for_its_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let prints = synth(tmp.path(), 2, 2, 9);
    let data = tmp.path().join("data");
    let cmd = |args: &[&str]| {
        run(ipseity(&data)
            .args(["--json", "--purpose", "onboarding"])
            .args(args))
    };
    let (code, out, err) = cmd(&[
        "finger",
        "enroll",
        "--subject",
        "alice",
        "--finger",
        &print(&prints, 1, 1),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let verify = || {
        cmd(&[
            "finger",
            "verify",
            "--subject",
            "alice",
            "--finger",
            &print(&prints, 1, 2),
        ])
    };
    let identify = || cmd(&["finger", "identify", "--finger", &print(&prints, 1, 2)]);
    let (code, out, _) = verify();
    assert_eq!(
        (code, json(&out)["decision"].as_str()),
        (0, Some("accept")),
        "{out}"
    );
    let (_, out, _) = identify();
    assert!(out.contains("\"alice\""), "{out}");

    let (code, out, _) = cmd(&["consent", "withdraw", "--subject", "alice"]);
    assert_eq!(
        (code, json(&out)["consent"].as_str()),
        (0, Some("withdrawn")),
        "{out}"
    );
    let (code, out, _) = verify();
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "no_consent"),
        "{out}"
    );
    let (_, out, _) = identify();
    assert!(
        !out.contains("\"alice\""),
        "a withdrawn subject is still found: {out}"
    );
    // Consent for another purpose does not bring it back for this one.
    let (code, out, _) = run(ipseity(&data).args([
        "--json",
        "--purpose",
        "fraud-check",
        "consent",
        "give",
        "--subject",
        "alice",
    ]));
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = verify();
    assert_eq!(code, 2);

    let (code, out, _) = cmd(&["consent", "give", "--subject", "alice"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = verify();
    assert_eq!(
        (code, json(&out)["decision"].as_str()),
        (0, Some("accept")),
        "{out}"
    );
    let (_, out, _) = identify();
    assert!(out.contains("\"alice\""), "{out}");

    // Without --purpose the command says what it needs; an unknown subject is not found.
    let (code, out, _) =
        run(ipseity(&data).args(["--json", "consent", "give", "--subject", "alice"]));
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "purpose_required"),
        "{out}"
    );
    let (code, out, _) = cmd(&["consent", "withdraw", "--subject", "nobody"]);
    assert_eq!(error_code(&out), "unknown_subject", "{code} {out}");
}

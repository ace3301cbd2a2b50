//! `ipseity keys rotate-master` end to end, with the master key in the key file and in
//! the environment: enrolled subjects verify after the rotation, the old key no longer
//! opens the store, and a rotation from the environment needs the new key stated.
//! (Concurrent readers and writers, interrupted rotations and PostgreSQL are tested in
//! `ipseity-store`'s `tests/envelope.rs`.)

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

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

#[test]
fn rotating_the_master_key_keeps_every_subject_and_retires_the_old_key() {
    let tmp = tempfile::tempdir().unwrap();
    let prints = synth(tmp.path(), 2, 2, 5);

    // The key file.
    let data = tmp.path().join("data");
    let (code, out, err) = run(ipseity(&data).env_remove("IPSEITY_MASTER_KEY").args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "alice",
        "--finger",
        &print(&prints, 1, 1),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let key_file = data.join("template.key");
    let old = std::fs::read(&key_file).unwrap();
    let (code, out, _) = run(ipseity(&data).env_remove("IPSEITY_MASTER_KEY").args([
        "--json",
        "keys",
        "rotate-master",
    ]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["rewrapped_templates"], 1);
    assert_ne!(std::fs::read(&key_file).unwrap(), old);
    let verify = |data: &Path, key: Option<&str>| {
        let mut c = ipseity(data);
        match key {
            Some(k) => c.env("IPSEITY_MASTER_KEY", k),
            None => c.env_remove("IPSEITY_MASTER_KEY"),
        };
        run(c.args([
            "--json",
            "finger",
            "verify",
            "--subject",
            "alice",
            "--finger",
            &print(&prints, 1, 2),
        ]))
    };
    let (code, out, _) = verify(&data, None);
    assert_eq!(
        (code, json(&out)["decision"].as_str()),
        (0, Some("accept")),
        "{out}"
    );
    // The old key back in its place no longer opens the store.
    std::fs::write(&key_file, &old).unwrap();
    let (code, out, _) = verify(&data, None);
    assert_ne!(code, 0);
    assert_eq!(error_code(&out), "store_key", "{out}");

    // The environment: no key file is written, and the rotation takes the new key from
    // IPSEITY_NEW_MASTER_KEY.
    let data = tmp.path().join("data-env");
    let (code, out, err) = run(ipseity(&data).env("IPSEITY_MASTER_KEY", K1).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "alice",
        "--finger",
        &print(&prints, 1, 1),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!data.join("template.key").exists());
    let (code, out, _) = run(ipseity(&data)
        .env("IPSEITY_MASTER_KEY", K1)
        .env_remove("IPSEITY_NEW_MASTER_KEY")
        .args(["--json", "keys", "rotate-master"]));
    assert_ne!(code, 0);
    assert_eq!(error_code(&out), "invalid_input", "{out}");
    let (code, out, _) = run(ipseity(&data)
        .env("IPSEITY_MASTER_KEY", K1)
        .env("IPSEITY_NEW_MASTER_KEY", K2)
        .args(["--json", "keys", "rotate-master"]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["rewrapped_templates"], 1);
    let (code, out, _) = verify(&data, Some(K1));
    assert_eq!(error_code(&out), "store_key", "{code} {out}");
    let (code, out, _) = verify(&data, Some(K2));
    assert_eq!(
        (code, json(&out)["decision"].as_str()),
        (0, Some("accept")),
        "{out}"
    );
    // A malformed key is refused with what it must be.
    let (code, out, _) = verify(&data, Some("not-hex"));
    assert_ne!(code, 0);
    assert!(out.contains("64 hex digits"), "{out}");
}

//! `ipseity document mrz`: fields, named checks, and exit codes.

mod common;

use common::{error_code, ipseity, json, run};

const TD3: [&str; 2] = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
];

#[test]
fn a_zone_reads_with_its_checks_and_a_wrong_digit_fails_by_name() {
    let data = tempfile::tempdir().expect("tempdir");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "mrz"])
        .args(TD3));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["format"], "TD3");
    assert_eq!(v["primary_identifier"], "ERIKSSON");
    assert_eq!(v["secondary_identifier"], "ANNA MARIA");
    assert_eq!(v["checks"].as_array().expect("checks").len(), 5);

    // The same zone from a file, with the date of expiry's check digit altered.
    let file = data.path().join("mrz.txt");
    std::fs::write(
        &file,
        format!("{}\n{}\n", TD3[0], TD3[1].replace("1204159", "1204158")),
    )
    .expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["document", "mrz", "--file"])
        .arg(&file));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        out.contains("check date_of_expiry: FAILED (printed 8, computed 9)"),
        "{out}"
    );
    assert!(out.contains("check composite: FAILED"), "{out}");
    assert!(out.contains("check document_number: ok"), "{out}");
}

#[test]
fn text_that_is_not_a_zone_is_an_input_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let (rc, out, err) = run(ipseity(data.path()).args(["--json", "document", "mrz", "P<UTO"]));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "malformed_mrz"),
        "{out}{err}"
    );
    let big = data.path().join("big.txt");
    std::fs::write(&big, "<".repeat(10_000)).expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "mrz", "--file"])
        .arg(&big));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "too_large"),
        "{out}{err}"
    );
    // Reading a zone touches no store: the data directory stays empty.
    assert_eq!(std::fs::read_dir(data.path()).expect("dir").count(), 1);
}

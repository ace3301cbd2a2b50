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

/// The shared ICAO vectors (`../shared/icao`), or `None` with a message.
fn icao() -> Option<std::path::PathBuf> {
    common::shared("icao", "SOURCE.md")
}

#[test]
fn a_chip_dump_reads_and_the_printed_zone_is_compared_with_dg1() {
    let Some(icao) = icao() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    let chip = data.path().join("chip");
    std::fs::create_dir(&chip).expect("mkdir");
    for (from, to) in [
        ("vectors/ef/com_9303p10_example.bin", "EF.COM"),
        ("vectors/dg/dg1_td2_example.bin", "DG1.bin"),
        ("vectors/dg/dg2_iso19794_example.bin", "EF_DG2.bin"),
    ] {
        std::fs::copy(icao.join(from), chip.join(to)).expect("copy");
    }
    let zone = [
        "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
        "D231458907UTO7408122F1204159<<<<<<<6",
    ];
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip)
        .arg("--mrz")
        .args(zone));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["files"], serde_json::json!(["EF.COM", "DG1", "DG2"]));
    assert_eq!(v["dg1"]["document_number"], "D23145890");
    assert_eq!(v["faces"][0]["format"], "jpeg");
    assert_eq!(v["faces"][0]["width"], 148);
    assert_eq!(v["printed_zone_matches_dg1"], true);
    assert!(v["authenticity"]
        .as_str()
        .expect("authenticity")
        .starts_with("not checked"));

    // Another document's printed zone: reported as a mismatch, exit 1.
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip)
        .arg("--mrz")
        .args([zone[0], &zone[1].replace("D231458907", "D231458915")]));
    assert_eq!(rc, 1, "{out}{err}");
    assert_eq!(json(&out)["printed_zone_matches_dg1"], false);

    // A damaged DG2 is an error named in the report, exit 1.
    let mut dg2 = std::fs::read(chip.join("EF_DG2.bin")).expect("read");
    dg2.truncate(dg2.len() / 2);
    std::fs::write(chip.join("EF_DG2.bin"), dg2).expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        json(&out)["errors"][0]
            .as_str()
            .expect("error")
            .contains("DG2"),
        "{out}"
    );
}

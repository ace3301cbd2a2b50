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
        ("vectors/dg/dg11_9303p10_example.bin", "DG11.bin"),
        ("vectors/dg/dg12_fr_real.bin", "DG12.bin"),
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
    assert_eq!(
        v["files"],
        serde_json::json!(["EF.COM", "DG1", "DG2", "DG11", "DG12"])
    );
    assert_eq!(v["dg1"]["document_number"], "D23145890");
    assert_eq!(v["dg11"]["name_of_holder"]["primary"], "SMITH");
    assert_eq!(v["dg11"]["profession"], "TRAVEL AGENT");
    assert_eq!(v["dg12"]["date_of_issue"], "20170905");
    let (rc, text, err) = run(ipseity(data.path())
        .args(["document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 0, "{text}{err}");
    assert!(text.contains("name of holder: SMITH, JOHN J"), "{text}");
    assert!(
        text.contains("address: 123 MAPLE RD, ANYTOWN, MN"),
        "{text}"
    );
    assert!(
        text.contains("issuing authority: JAKARTA - AMBASSADE DE FRANCE EN INDONESIE"),
        "{text}"
    );
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

#[test]
fn security_infos_and_the_card_security_signature_are_reported() {
    let Some(icao) = icao() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    let chip = data.path().join("chip");
    std::fs::create_dir(&chip).expect("mkdir");
    for (from, to) in [
        ("vectors/ef/card_access_de.bin", "EF.CardAccess"),
        (
            "vectors/card_security/card_security_de.bin",
            "EF.CardSecurity",
        ),
        ("vectors/dg/dg14_at_real.bin", "DG14.bin"),
        ("vectors/dg/dg15_rsa_aa_key.bin", "DG15.bin"),
    ] {
        std::fs::copy(icao.join(from), chip.join(to)).expect("copy");
    }
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    let infos = |file: &str| {
        v["security_infos"]
            .as_array()
            .expect("security infos")
            .iter()
            .find(|i| i["file"] == file)
            .unwrap_or_else(|| panic!("no {file}: {v}"))["kinds"]
            .clone()
    };
    assert_eq!(infos("EF.CardAccess")["pace"], 2, "{v}");
    assert_eq!(
        infos("EF.CardSecurity")["chip_authentication_public_key"],
        2,
        "{v}"
    );
    assert_eq!(infos("DG14")["terminal_authentication"], 1, "{v}");
    assert_eq!(v["active_authentication_key_bytes"], 258, "{v}");
    assert!(v.get("card_security_authentication").is_none(), "{v}");

    // With the German CSCA, EF.CardSecurity's signature is checked and passes (the dump
    // has no SOD, so passive authentication itself fails: exit 1).
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip)
        .arg("--csca")
        .arg(icao.join("vectors/sod/csca_de.der")));
    assert_eq!(rc, 1, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["card_security_authentication"]["verdict"], "pass", "{v}");
    // Under another state's CSCA it fails by name.
    let (_, out, _) = run(ipseity(data.path())
        .args(["document", "read", "--chip"])
        .arg(&chip)
        .arg("--csca")
        .arg(icao.join("vectors/sod/csca_fi.der")));
    assert!(
        out.contains("EF.CardSecurity authentication: FAIL"),
        "{out}"
    );
}

mod passive_auth {
    //! `document read --csca/--crl` on a chip dump generated here: a test
    //! CSCA, a document signer and a SOD over DG1 (ipseity-document's testkit).

    use std::path::{Path, PathBuf};

    use ipseity_document::testkit::{self, CertSpec, KeyKind, SodSpec, TestKey, SIGNED_AT};

    use super::common::{error_code, ipseity, json, run};

    struct Dump {
        chip: PathBuf,
        cscas: PathBuf,
        other_csca: PathBuf,
        revoking_crl: PathBuf,
    }

    /// Writes a genuine chip dump (DG1 and EF.SOD), a CSCA folder, another
    /// state's CSCA and a CRL revoking the signer.
    fn dump(dir: &Path) -> Dump {
        let csca_key = TestKey::generate(KeyKind::P256, 1).expect("key");
        let signer_key = TestKey::generate(KeyKind::P256, 2).expect("key");
        let other_key = TestKey::generate(KeyKind::P256, 3).expect("key");
        let csca_name = testkit::name("UT", "Utopia Test CSCA");
        let year = 365 * 86_400;
        let cert = |serial, subject: &str, key, issuer_key| {
            testkit::certificate(&CertSpec {
                serial,
                issuer: csca_name.clone(),
                subject: if subject.is_empty() {
                    csca_name.clone()
                } else {
                    testkit::name("UT", subject)
                },
                not_before: SIGNED_AT - year,
                not_after: SIGNED_AT + 20 * year,
                subject_key: key,
                issuer_key,
            })
            .expect("certificate")
        };
        let csca = cert(1, "", &csca_key, &csca_key);
        let other = cert(9, "", &other_key, &other_key);
        let signer = cert(0x42, "Utopia Test Document Signer", &signer_key, &csca_key);
        let dg1 = testkit::specimen_dg1();
        let sod = testkit::sod(&SodSpec {
            data_groups: &[(1, &dg1)],
            signer_certificate: &signer,
            signer_issuer: &csca_name,
            signer_serial: 0x42,
            signer_key: &signer_key,
            signing_time: Some(SIGNED_AT),
        })
        .expect("sod");
        let chip = dir.join("chip");
        let cscas = dir.join("cscas");
        std::fs::create_dir(&chip).expect("mkdir");
        std::fs::create_dir(&cscas).expect("mkdir");
        std::fs::write(chip.join("DG1.bin"), &dg1).expect("write");
        std::fs::write(chip.join("EF.SOD"), &sod).expect("write");
        std::fs::write(cscas.join("utopia.der"), &csca).expect("write");
        std::fs::write(cscas.join("README.txt"), "not a certificate").expect("write");
        let other_csca = dir.join("other.cer");
        std::fs::write(&other_csca, &other).expect("write");
        let revoking_crl = dir.join("utopia.crl");
        let crl = testkit::crl(&csca_name, &csca_key, SIGNED_AT + 86_400, &[0x42]).expect("crl");
        std::fs::write(&revoking_crl, crl).expect("write");
        Dump {
            chip,
            cscas,
            other_csca,
            revoking_crl,
        }
    }

    fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        v["passive_authentication"]["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no check {name} in {v}"))
    }

    #[test]
    fn a_generated_chip_authenticates_and_each_tampering_fails_by_name() {
        let data = tempfile::tempdir().expect("tempdir");
        let d = dump(data.path());
        let read = |extra: &[&std::ffi::OsStr]| {
            run(ipseity(data.path())
                .args(["--json", "document", "read", "--chip"])
                .arg(&d.chip)
                .args(extra))
        };

        // Genuine, against the CSCA folder: every check passes, exit 0.
        let (rc, out, err) = read(&["--csca".as_ref(), d.cscas.as_os_str()]);
        assert_eq!(rc, 0, "{out}{err}");
        let v = json(&out);
        assert_eq!(v["passive_authentication"]["verdict"], "pass", "{out}");
        assert_eq!(check(&v, "dg1_hash")["outcome"], "pass");
        assert_eq!(check(&v, "document_signer_certificate")["outcome"], "pass");
        assert_eq!(
            v["passive_authentication"]["validity_time_source"],
            "signing_time"
        );
        assert_eq!(v["trust"]["certificates"], 1);
        assert!(v["authenticity"]
            .as_str()
            .expect("text")
            .starts_with("genuine"));
        assert_eq!(v["dg1"]["primary_identifier"], "ERIKSSON");

        // The same in text.
        let (rc, out, err) = run(ipseity(data.path())
            .args(["document", "read", "--chip"])
            .arg(&d.chip)
            .arg("--csca")
            .arg(&d.cscas));
        assert_eq!(rc, 0, "{out}{err}");
        assert!(out.contains("passive authentication: pass"), "{out}");
        assert!(out.contains("check dg1_hash: pass"), "{out}");
        assert!(out.contains("CSCA: C=UT, CN=Utopia Test CSCA"), "{out}");

        // Without --csca: the SOD and DG1 agree, but nothing is proven; exit 0.
        let (rc, out, err) = read(&[]);
        assert_eq!(rc, 0, "{out}{err}");
        let v = json(&out);
        assert_eq!(
            check(&v, "document_signer_certificate")["outcome"],
            "not_checked"
        );
        assert!(v["authenticity"]
            .as_str()
            .expect("text")
            .starts_with("not checked"));

        // Another state's CSCA: the chain fails, exit 1.
        let (rc, out, err) = read(&["--csca".as_ref(), d.other_csca.as_os_str()]);
        assert_eq!(rc, 1, "{out}{err}");
        assert_eq!(
            check(&json(&out), "document_signer_certificate")["outcome"],
            "fail"
        );

        // A CRL revoking the signer: exit 1, named.
        let (rc, out, err) = read(&[
            "--csca".as_ref(),
            d.cscas.as_os_str(),
            "--crl".as_ref(),
            d.revoking_crl.as_os_str(),
        ]);
        assert_eq!(rc, 1, "{out}{err}");
        assert_eq!(
            check(&json(&out), "document_signer_revocation")["outcome"],
            "fail"
        );

        // Not a certificate nor a master list: an input error, exit 2.
        let (rc, out, err) = read(&["--csca".as_ref(), d.chip.join("DG1.bin").as_os_str()]);
        assert_eq!(
            (rc, error_code(&out).as_str()),
            (2, "invalid_trust_anchor"),
            "{out}{err}"
        );

        // A changed name in DG1 (the zone's check digits do not cover names):
        // DG1 still reads, its hash fails, exit 1.
        let dg1 = std::fs::read(d.chip.join("DG1.bin")).expect("read");
        let text = String::from_utf8_lossy(&dg1).replace("ANNA", "ANNE");
        std::fs::write(d.chip.join("DG1.bin"), text.as_bytes()).expect("write");
        let (rc, out, err) = read(&["--csca".as_ref(), d.cscas.as_os_str()]);
        assert_eq!(rc, 1, "{out}{err}");
        let v = json(&out);
        assert_eq!(v["dg1"]["valid"], true);
        assert_eq!(check(&v, "dg1_hash")["outcome"], "fail");
        assert!(v["authenticity"]
            .as_str()
            .expect("text")
            .starts_with("FAILED"));
        // Without --csca a failed hash still fails the command.
        let (rc, out, err) = read(&[]);
        assert_eq!(rc, 1, "{out}{err}");
    }

    #[test]
    fn a_real_sod_chains_to_the_german_master_list() {
        let Some(icao) = super::icao() else { return };
        let data = tempfile::tempdir().expect("tempdir");
        let chip = data.path().join("chip");
        std::fs::create_dir(&chip).expect("mkdir");
        std::fs::copy(icao.join("vectors/sod/sod_de.bin"), chip.join("EF.SOD")).expect("copy");
        let ml = icao.join("files/cms/master_list/DE_ML_2026-05-28-08-28-45.ml");
        let (rc, out, err) = run(ipseity(data.path())
            .args(["--json", "document", "read", "--chip"])
            .arg(&chip)
            .arg("--csca")
            .arg(&ml));
        assert_eq!(rc, 0, "{out}{err}");
        let v = json(&out);
        assert_eq!(v["passive_authentication"]["verdict"], "pass", "{out}");
        assert_eq!(
            v["trust"]["master_lists"][0]["signature"]["outcome"],
            "pass"
        );
        assert_eq!(check(&v, "data_groups")["outcome"], "not_checked");
    }
}

mod chip_to_live {
    //! `document verify`: a chip dump written by `document sample` around a
    //! portrait, checked against a live capture. The passive-authentication
    //! and printed-zone rejections need no models (and prove no face was
    //! compared: the models directory given is empty); the face outcomes use
    //! the portraits and models of `common::fixtures()`.

    use std::path::{Path, PathBuf};

    use ipseity_document::testkit::{self, CertSpec, KeyKind, TestKey, SIGNED_AT};

    use super::common::{error_code, fixtures, ipseity, json, run};
    use super::TD3;

    /// Writes a chip dump (and its CSCA, `csca.der`) into `dir` with `portrait` in DG2.
    fn sample(data: &Path, dir: &Path, portrait: &Path) {
        let (rc, out, err) = run(ipseity(data)
            .args(["document", "sample", "--out"])
            .arg(dir)
            .arg("--face")
            .arg(portrait));
        assert_eq!(rc, 0, "{out}{err}");
        assert!(out.contains("TEST MATERIAL"), "{out}");
    }

    /// A small JPEG with no face in it, for the cases decided before any comparison.
    fn plain_jpeg(dir: &Path) -> PathBuf {
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let p = dir.join("plain.jpg");
        img.save(&p).expect("jpeg");
        p
    }

    /// `document verify` with `--json`, the chip's own CSCA unless `extra` gives another.
    fn verify(
        data: &Path,
        models: &Path,
        chip: &Path,
        csca: &Path,
        face: &Path,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        let (rc, out, err) = run(ipseity(data)
            .arg("--models-dir")
            .arg(models)
            .args(["--json", "document", "verify", "--chip"])
            .arg(chip)
            .arg("--csca")
            .arg(csca)
            .arg("--face")
            .arg(face)
            .args(extra));
        assert!(!out.contains("similarity"), "{out}");
        let v = json(&out);
        (rc, v, format!("{out}{err}"))
    }

    fn codes(v: &serde_json::Value) -> Vec<String> {
        v["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .map(|r| r["code"].as_str().expect("code").to_owned())
            .collect()
    }

    #[test]
    fn passive_authentication_and_the_printed_zone_reject_before_any_comparison() {
        let data = tempfile::tempdir().expect("tempdir");
        let chip = data.path().join("chip");
        let face = plain_jpeg(data.path());
        sample(data.path(), &chip, &face);
        let csca = chip.join("csca.der");
        // No models at all: reaching the face pipeline would be an error (exit 2).
        let no_models = data.path().join("no-models");
        std::fs::create_dir(&no_models).expect("mkdir");

        // The genuine chip gets past passive authentication and the printed zone, and
        // then needs the models: so the rejections below really happen earlier.
        let (rc, out, err) = run(ipseity(data.path())
            .arg("--models-dir")
            .arg(&no_models)
            .args(["--json", "document", "verify", "--chip"])
            .arg(&chip)
            .arg("--csca")
            .arg(&csca)
            .arg("--face")
            .arg(&face)
            .arg("--mrz")
            .args(TD3));
        assert_eq!(rc, 2, "{out}{err}");
        assert_eq!(error_code(&out), "models_missing", "{out}");

        // Another state's CSCA: rejected, the chain named, nothing compared.
        let other_key = TestKey::generate(KeyKind::P256, 99).expect("key");
        let other_name = testkit::name("XX", "Other Test CSCA");
        let other = testkit::certificate(&CertSpec {
            serial: 1,
            issuer: other_name.clone(),
            subject: other_name,
            not_before: SIGNED_AT - 86_400,
            not_after: SIGNED_AT + 86_400,
            subject_key: &other_key,
            issuer_key: &other_key,
        })
        .expect("certificate");
        let other_csca = data.path().join("other.der");
        std::fs::write(&other_csca, other).expect("write");
        let (rc, v, all) = verify(data.path(), &no_models, &chip, &other_csca, &face, &[]);
        assert_eq!(rc, 1, "{all}");
        assert_eq!(v["decision"], "reject", "{all}");
        assert_eq!(codes(&v), ["passive_authentication_failed"], "{all}");
        assert!(
            v["reasons"][0]["detail"]
                .as_str()
                .expect("detail")
                .contains("document_signer_certificate"),
            "{all}"
        );
        assert_eq!(v["face"], serde_json::Value::Null, "{all}");
        assert_eq!(v["liveness"], "not_run", "{all}");

        // The printed zone of another document: rejected after a passing passive
        // authentication, before the face.
        let other_zone = [TD3[0], &TD3[1].replace("L898902C36", "L898902C44")];
        let mut extra = vec!["--mrz"];
        extra.extend(other_zone);
        let (rc, v, all) = verify(data.path(), &no_models, &chip, &csca, &face, &extra);
        assert_eq!(rc, 1, "{all}");
        assert_eq!(v["passive_authentication"], "pass", "{all}");
        assert_eq!(v["printed_zone"], "differs", "{all}");
        assert_eq!(codes(&v), ["mrz_mismatch"], "{all}");
        assert_eq!(v["face"], serde_json::Value::Null, "{all}");

        // One byte of DG2's image changed: its hash fails, named; nothing compared, even
        // with the printed zone right.
        let dg2_path = chip.join("DG2.bin");
        let mut dg2 = std::fs::read(&dg2_path).expect("read");
        let last = dg2.len() - 3;
        dg2[last] ^= 0x01;
        std::fs::write(&dg2_path, &dg2).expect("write");
        let mut extra = vec!["--mrz"];
        extra.extend(TD3);
        let (rc, v, all) = verify(data.path(), &no_models, &chip, &csca, &face, &extra);
        assert_eq!(rc, 1, "{all}");
        assert_eq!(v["decision"], "reject", "{all}");
        assert_eq!(v["passive_authentication"], "fail", "{all}");
        assert_eq!(codes(&v), ["passive_authentication_failed"], "{all}");
        let detail = v["reasons"][0]["detail"].as_str().expect("detail");
        assert!(detail.contains("dg2_hash"), "{all}");
        assert!(!detail.contains("dg1_hash"), "{all}");
        assert_eq!(v["printed_zone"], "not_compared", "{all}");
        assert_eq!(v["face"], serde_json::Value::Null, "{all}");

        // The same in text: the decision first, the reason named.
        let (rc, out, err) = run(ipseity(data.path())
            .arg("--models-dir")
            .arg(&no_models)
            .args(["document", "verify", "--chip"])
            .arg(&chip)
            .arg("--csca")
            .arg(&csca)
            .arg("--face")
            .arg(&face));
        assert_eq!(rc, 1, "{out}{err}");
        assert!(out.starts_with("reject\n"), "{out}");
        assert!(
            out.contains("reason passive_authentication_failed: dg2_hash"),
            "{out}"
        );
        assert!(out.contains("face: not compared"), "{out}");

        // Without EF.SOD nothing is authenticated.
        std::fs::remove_file(chip.join("EF.SOD")).expect("rm");
        let (rc, v, all) = verify(data.path(), &no_models, &chip, &csca, &face, &[]);
        assert_eq!(
            (rc, codes(&v)),
            (1, vec!["passive_authentication_failed".to_owned()]),
            "{all}"
        );
        // A chip-to-live check creates no store in the data directory.
        assert!(matches!(
            ipseity_store::Store::open_existing(data.path()),
            Err(ipseity_store::StoreError::NoStore(_))
        ));
    }

    /// A models directory holding only the face models of `from` (links), so the
    /// liveness models are absent whatever `from` holds.
    fn without_liveness(from: &Path, to: &Path) -> PathBuf {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("models dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "dat") {
                link(&p, &to.join(p.file_name().expect("name")));
            }
        }
        to.to_owned()
    }

    /// The face models of `from` and the liveness models, from `from` itself or from
    /// `../shared/models`; `None` where neither holds them.
    fn with_liveness(from: &Path, to: &Path) -> Option<PathBuf> {
        if ipseity_models::locate_liveness(from).is_ok() {
            return Some(from.to_owned());
        }
        let shared = super::common::shared(
            "models",
            "silent_face_anti_spoofing/resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth",
        )?;
        let dir = without_liveness(from, to);
        let src = shared.join("silent_face_anti_spoofing/resources/anti_spoof_models");
        for m in [ipseity_models::LIVENESS_V2, ipseity_models::LIVENESS_V1SE] {
            link(&src.join(m.name), &dir.join(m.name));
        }
        ipseity_models::locate_liveness(&dir).ok().map(|_| dir)
    }

    fn link(from: &Path, to: &Path) {
        #[cfg(unix)]
        std::os::unix::fs::symlink(from, to).expect("symlink");
        #[cfg(not(unix))]
        std::fs::copy(from, to).map(drop).expect("copy");
    }

    #[test]
    fn the_chip_portrait_is_compared_with_the_live_capture() {
        let Some((models, images)) = fixtures() else {
            return;
        };
        let data = tempfile::tempdir().expect("tempdir");
        let chip = data.path().join("chip");
        sample(data.path(), &chip, &images.join("obama.jpg"));
        let csca = chip.join("csca.der");
        let plain = without_liveness(&models, &data.path().join("plain-models"));

        // Same person, no liveness models: the face matches but the answer is at most
        // needs_review, with that one reason.
        let mut zone = vec!["--mrz"];
        zone.extend(TD3);
        let same = images.join("obama2.jpg");
        let (rc, v, all) = verify(data.path(), &plain, &chip, &csca, &same, &zone);
        assert_eq!(rc, 4, "{all}");
        assert_eq!(v["decision"], "needs_review", "{all}");
        assert_eq!(v["face"], "accept", "{all}");
        assert_eq!(v["liveness"], "not_checked", "{all}");
        assert_eq!(v["printed_zone"], "matches", "{all}");
        assert_eq!(codes(&v), ["liveness_not_checked"], "{all}");
        assert_eq!(v["audited"], false, "{all}");

        // Another person: rejected for the face.
        let other = images.join("biden.jpg");
        let (rc, v, all) = verify(data.path(), &plain, &chip, &csca, &other, &[]);
        assert_eq!(rc, 1, "{all}");
        assert_eq!(v["decision"], "reject", "{all}");
        assert_eq!(v["face"], "reject", "{all}");
        assert!(codes(&v).contains(&"face_mismatch".to_owned()), "{all}");

        // With the liveness models: a live capture of the same person is accepted, and
        // another person is still rejected.
        if let Some(live) = with_liveness(&models, &data.path().join("live-models")) {
            let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &same, &zone);
            assert_eq!(v["liveness"], "bona_fide", "{all}");
            assert_eq!((rc, v["decision"].as_str()), (0, Some("accept")), "{all}");
            assert_eq!(codes(&v), Vec::<String>::new(), "{all}");
            let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &other, &[]);
            assert_eq!(
                (rc, codes(&v)),
                (1, vec!["face_mismatch".to_owned()]),
                "{all}"
            );
        }

        // With a store in the data directory the decision is audited (and nothing else
        // of it: no score, no portrait).
        assert!(matches!(
            ipseity_store::Store::open_existing(data.path()),
            Err(ipseity_store::StoreError::NoStore(_))
        ));
        drop(ipseity_store::Store::open(data.path()).expect("store"));
        let (_, v, all) = verify(data.path(), &plain, &chip, &csca, &other, &[]);
        assert_eq!(v["audited"], true, "{all}");
        let (rc, out, err) = run(ipseity(data.path()).args(["--json", "audit"]));
        assert_eq!(rc, 0, "{out}{err}");
        let entries = json(&out)["entries"].as_array().expect("entries").clone();
        let last = entries
            .iter()
            .find(|e| e["operation"] == "verify")
            .unwrap_or_else(|| panic!("not audited: {out}"));
        assert_eq!(last["outcome"], "reject", "{out}");
    }

    /// The subjects enrolled in the data directory's store, with their template counts.
    fn enrolled(data: &Path) -> Vec<(String, u64)> {
        let (rc, out, err) = run(ipseity(data).args(["--json", "list"]));
        assert_eq!(rc, 0, "{out}{err}");
        json(&out)["subjects"]
            .as_array()
            .expect("subjects")
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().expect("id").to_owned(),
                    s["templates"].as_u64().expect("templates"),
                )
            })
            .collect()
    }

    #[test]
    fn an_accepted_holder_is_enrolled_with_the_document_as_its_source() {
        let Some((models, images)) = fixtures() else {
            return;
        };
        let data = tempfile::tempdir().expect("tempdir");
        let Some(live) = with_liveness(&models, &data.path().join("live-models")) else {
            eprintln!("skipping: no liveness models, so no check can accept");
            return;
        };
        let chip = data.path().join("chip");
        sample(data.path(), &chip, &images.join("obama.jpg"));
        let csca = chip.join("csca.der");
        let holder = images.join("obama2.jpg");
        let enrol = |id: &'static str| -> Vec<&'static str> {
            vec!["--purpose", "onboarding", "--enrol", id]
        };

        // An id that is not one: refused before any work, nothing created.
        let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &holder, &enrol("bad id!"));
        assert_eq!(
            (rc, v["error"]["code"].as_str()),
            (2, Some("invalid_subject_id")),
            "{all}"
        );
        assert!(matches!(
            ipseity_store::Store::open_existing(data.path()),
            Err(ipseity_store::StoreError::NoStore(_))
        ));

        // Another person: rejected, and the answer says nothing was enrolled and why.
        let other = images.join("biden.jpg");
        let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &other, &enrol("holder"));
        assert_eq!((rc, v["decision"].as_str()), (1, Some("reject")), "{all}");
        assert_eq!(v["enrolment"]["enrolled"], false, "{all}");
        assert_eq!(v["enrolment"]["subject"], "holder", "{all}");
        let reason = v["enrolment"]["reason"].as_str().expect("reason");
        assert!(reason.contains("reject (face_mismatch)"), "{all}");
        assert_eq!(enrolled(data.path()), vec![], "{all}");
        // The same in text: the decision first, the enrolment not done last.
        let (rc, out, err) = run(ipseity(data.path())
            .arg("--models-dir")
            .arg(&live)
            .args(["document", "verify", "--chip"])
            .arg(&chip)
            .arg("--csca")
            .arg(&csca)
            .arg("--face")
            .arg(&other)
            .args(enrol("holder")));
        assert_eq!(rc, 1, "{out}{err}");
        assert!(out.starts_with("reject\n"), "{out}");
        assert!(
            out.contains(
                "enrolment: holder NOT enrolled: the check answered reject (face_mismatch)"
            ),
            "{out}"
        );
        assert_eq!(enrolled(data.path()), vec![], "{out}");

        // The holder with a tampered DG2: refused by passive authentication, nothing enrolled.
        let tampered = data.path().join("tampered");
        std::fs::create_dir(&tampered).expect("mkdir");
        for e in std::fs::read_dir(&chip).expect("chip") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, tampered.join(p.file_name().expect("name"))).expect("copy");
        }
        let mut dg2 = std::fs::read(tampered.join("DG2.bin")).expect("read");
        let last = dg2.len() - 3;
        dg2[last] ^= 0x01;
        std::fs::write(tampered.join("DG2.bin"), &dg2).expect("write");
        let (rc, v, all) = verify(
            data.path(),
            &live,
            &tampered,
            &csca,
            &holder,
            &enrol("holder"),
        );
        assert_eq!(rc, 1, "{all}");
        assert_eq!(codes(&v), ["passive_authentication_failed"], "{all}");
        assert_eq!(v["enrolment"]["enrolled"], false, "{all}");
        assert_eq!(enrolled(data.path()), vec![], "{all}");

        // The holder, without the liveness models: at most needs_review, so nothing.
        let plain = without_liveness(&models, &data.path().join("plain-models"));
        let (rc, v, all) = verify(data.path(), &plain, &chip, &csca, &holder, &enrol("holder"));
        assert_eq!(
            (rc, v["decision"].as_str()),
            (4, Some("needs_review")),
            "{all}"
        );
        assert_eq!(v["enrolment"]["enrolled"], false, "{all}");
        assert_eq!(enrolled(data.path()), vec![], "{all}");

        // The holder, live, with the printed zone: accepted and enrolled (the alias
        // `--enroll` works too), one template from the live capture.
        let mut extra = vec!["--purpose", "onboarding", "--enroll", "holder", "--mrz"];
        extra.extend(TD3);
        let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &holder, &extra);
        assert_eq!((rc, v["decision"].as_str()), (0, Some("accept")), "{all}");
        assert_eq!(v["enrolment"]["enrolled"], true, "{all}");
        assert_eq!(v["enrolment"]["source"], "document", "{all}");
        assert_eq!(v["audited"], true, "{all}");
        assert!(
            !all.contains("L898902C3"),
            "the answer names no document number: {all}"
        );
        assert_eq!(
            enrolled(data.path()),
            vec![("holder".to_owned(), 1)],
            "{all}"
        );

        // The document is the enrolment's source, sealed in the store.
        let store = ipseity_store::Store::open_existing(data.path()).expect("store");
        let source = store
            .enrolment_source(&ipseity_core::SubjectId::new("holder").expect("id"))
            .expect("read")
            .expect("a source");
        assert_eq!(source.kind, ipseity_core::SourceKind::Document);
        assert_eq!(source.get("document_number"), Some("L898902C3"));
        assert_eq!(source.get("issuing_state"), Some("UTO"));
        assert_eq!(source.get("date_of_expiry"), Some("120415"));
        assert_eq!(source.get("passive_authentication"), Some("pass"));
        assert_eq!(source.get("printed_zone"), Some("matches"));
        assert!(source
            .get("csca")
            .is_some_and(|c| c.contains("Utopia Test CSCA")));
        drop(store);
        let db = std::fs::read(data.path().join(ipseity_store::DB_FILE)).expect("db");
        assert!(!db.windows(9).any(|w| w == b"L898902C3"), "sealed at rest");

        // Audited as an enrolment with its source kind, and nothing of the document.
        let (rc, out, err) = run(ipseity(data.path()).args(["--json", "audit"]));
        assert_eq!(rc, 0, "{out}{err}");
        let entries = json(&out)["entries"].as_array().expect("entries").clone();
        let of = |outcome: &str| {
            entries
                .iter()
                .find(|e| e["outcome"] == outcome && e["subject"] == "holder")
                .unwrap_or_else(|| panic!("no {outcome} row: {out}"))
                .clone()
        };
        assert_eq!(of("source_recorded")["detail"], "source=document", "{out}");
        assert_eq!(of("source_recorded")["operation"], "enroll", "{out}");
        assert_eq!(of("ok")["operation"], "enroll", "{out}");
        assert!(
            !out.contains("L898902C3") && !out.contains("ERIKSSON"),
            "{out}"
        );

        // The enrolled subject verifies with a live capture of the holder.
        let (rc, out, err) = run(ipseity(data.path())
            .arg("--models-dir")
            .arg(&live)
            .args([
                "--json",
                "--purpose",
                "onboarding",
                "verify",
                "--subject",
                "holder",
                "--face",
            ])
            .arg(&holder));
        assert_eq!(
            (rc, json(&out)["decision"].as_str()),
            (0, Some("accept")),
            "{out}{err}"
        );

        // The same id again: `enroll`'s error, before any work, and nothing changes (not
        // even the audit log: no decision was taken).
        let rows = || {
            let (_, out, _) =
                run(ipseity(data.path()).args(["--json", "audit", "--limit", "100000"]));
            json(&out)["entries"].as_array().expect("entries").len()
        };
        let before = rows();
        let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &holder, &enrol("holder"));
        assert_eq!(
            (rc, v["error"]["code"].as_str()),
            (2, Some("duplicate_subject")),
            "{all}"
        );
        assert_eq!(
            enrolled(data.path()),
            vec![("holder".to_owned(), 1)],
            "{all}"
        );
        assert_eq!(rows(), before, "{all}");

        // The same person under another id: `enroll`'s possible duplicate (exit 3), held
        // for review rather than enrolled.
        let (rc, v, all) = verify(data.path(), &live, &chip, &csca, &holder, &enrol("again"));
        assert_eq!(
            (rc, v["error"]["code"].as_str()),
            (3, Some("possible_duplicate")),
            "{all}"
        );
        assert_eq!(
            enrolled(data.path()),
            vec![("holder".to_owned(), 1)],
            "{all}"
        );
    }
}

/// A chip dump with a DG3 the testkit built around the repository's WSQ fixture
/// (NBIS-encoded synthetic ridges, 253x317 at 1000 ppi): its finger images are reported,
/// and the WSQ decodes; a record that understates the image's size is an error.
#[test]
fn dg3_finger_images_are_reported_and_their_wsq_decodes() {
    use ipseity_document::testkit;
    const WSQ: &[u8] =
        include_bytes!("../../ipseity-finger/tests/data/wsq/ridges_253x317_r150.wsq");
    let data = tempfile::tempdir().expect("tempdir");
    let chip = data.path().join("chip");
    std::fs::create_dir(&chip).expect("mkdir");
    std::fs::write(chip.join("DG1.bin"), testkit::specimen_dg1()).expect("write");
    let dg3 = testkit::dg3_with_images(2, 1000, &[(1, (253, 317), WSQ), (6, (253, 317), WSQ)]);
    std::fs::write(chip.join("EF_DG3.bin"), &dg3).expect("write");

    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["files"], serde_json::json!(["DG1", "DG3"]), "{v}");
    let fingers = v["fingers"].as_array().expect("fingers");
    assert_eq!(fingers.len(), 2, "{v}");
    assert_eq!(fingers[0]["position"], 1);
    assert_eq!(fingers[0]["position_name"], "right thumb");
    assert_eq!(fingers[1]["position_name"], "left thumb");
    assert_eq!(fingers[0]["compression"], "wsq");
    assert_eq!(fingers[0]["ppi"], 1000);
    assert_eq!(fingers[0]["width"], 253);
    assert_eq!(fingers[0]["height"], 317);
    assert_eq!(fingers[0]["bytes"], WSQ.len());
    assert_eq!(
        fingers[0]["decoded"],
        serde_json::json!({"width": 253, "height": 317})
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");

    let (rc, text, err) = run(ipseity(data.path())
        .args(["document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 0, "{text}{err}");
    assert!(
        text.contains(
            "DG3 finger 1: right thumb, 253x317, 1000 ppi, WSQ, 13069 bytes \
             (ISO/IEC 19794-4:2005); decodes to 253x317"
        ),
        "{text}"
    );

    // The record says 200 pixels wide over a 253-pixel WSQ image: refused before
    // decoding, an error naming DG3, exit 1.
    let small = testkit::dg3_with_images(2, 1000, &[(1, (200, 317), WSQ)]);
    std::fs::write(chip.join("EF_DG3.bin"), &small).expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 1, "{out}{err}");
    let v = json(&out);
    assert!(v["fingers"][0].get("decoded").is_none(), "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .expect("error")
            .starts_with("DG3: finger image 1: WSQ image size 253x317"),
        "{v}"
    );

    // A damaged DG3: an error naming DG3, exit 1.
    std::fs::write(chip.join("EF_DG3.bin"), &dg3[..dg3.len() / 2]).expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--chip"])
        .arg(&chip));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        json(&out)["errors"][0]
            .as_str()
            .expect("error")
            .starts_with("DG3"),
        "{out}"
    );
}

/// A build without the `pcsc` feature refuses `--reader` with a clear error (what to
/// build, or how else to read the chip), in `read` and `verify` alike, and `--reader`
/// needs the printed zone, whose key opens the chip.
#[cfg(not(feature = "pcsc"))]
#[test]
fn reading_through_a_reader_needs_the_pcsc_build_and_the_zone() {
    let data = tempfile::tempdir().expect("tempdir");
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--reader", "--mrz"])
        .args(TD3));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "reader_unsupported"),
        "{out}{err}"
    );
    assert!(out.contains("--features pcsc"), "{out}");
    let face = data.path().join("face.jpg");
    std::fs::write(&face, b"not read").expect("write");
    let (rc, out, err) = run(ipseity(data.path())
        .args([
            "--json",
            "document",
            "verify",
            "--reader",
            "Some Reader",
            "--csca",
        ])
        .arg(data.path())
        .arg("--face")
        .arg(&face)
        .arg("--mrz")
        .args(TD3));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "reader_unsupported"),
        "{out}{err}"
    );
    // Without the zone there is no key to open the chip with.
    let (rc, _, err) = run(ipseity(data.path()).args(["document", "read", "--reader"]));
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("--mrz"), "{err}");
}

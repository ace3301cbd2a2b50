//! Passive authentication against the real EF.SODs, master lists and CSCA
//! certificates in `../shared/icao` (gmrtd's test data; see its SOURCE.md and
//! vectors.json). Real SODs come without their data groups, so what these
//! test is the SOD's signature and the document signer's chain to a CSCA;
//! the data-group hashes the SOD holds are compared with those vectors.json
//! asserts. Skips with a message where that folder is absent.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ipseity_document::passive::{authenticate, Outcome, PassiveAuthInput, Sod, TrustStore};
use ipseity_document::pki::{self, Certificate};
use serde_json::Value;

/// 2026-12-01, after every real SOD here was signed: where a SOD has no
/// signingTime, validity is judged at this fixed "now" so the test does not
/// age.
const NOW: i64 = 1_796_083_200;

fn read(icao: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(icao.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn vectors(icao: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(icao.join("vectors.json")).expect("vectors.json");
    let v: Value = serde_json::from_str(&text).expect("vectors JSON");
    v["vectors"].as_array().expect("vectors").clone()
}

const MASTER_LISTS: [&str; 2] = [
    "files/cms/master_list/DE_ML_2026-05-28-08-28-45.ml",
    "files/cms/master_list/NL_ML_2026-07-22.ml",
];
const IDN_CSCAS: [&str; 3] = [
    "files/cms/master_list/IDN_2010_SERIES_CSCA_CERT/2010-12_CSCA.cer",
    "files/cms/master_list/IDN_2010_SERIES_CSCA_CERT/2016-01_CSCA.cer",
    "files/cms/master_list/IDN_2010_SERIES_CSCA_CERT/2020-10_CSCA.cer",
];

/// The trust anchors gmrtd's tests use: both master lists and the three
/// Indonesian 2010-series CSCAs.
fn default_trust(icao: &Path) -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut t = TrustStore::new();
        for ml in MASTER_LISTS {
            let r = t
                .add_master_list(&read(icao, ml))
                .unwrap_or_else(|e| panic!("{ml}: {e}"));
            assert_eq!(r.signature.outcome, Outcome::Pass, "{ml}: {r:?}");
        }
        for c in IDN_CSCAS {
            t.add_certificates(&read(icao, c)).expect(c);
        }
        t
    })
}

fn icao() -> Option<PathBuf> {
    common::icao()
}

#[test]
fn master_lists_verify_with_their_own_signers() {
    let Some(icao) = icao() else { return };
    for (ml, root, count) in [
        (
            MASTER_LISTS[0],
            "files/cms/master_list/DE_ROOT_CA_CSCA07.cer",
            588,
        ),
        (MASTER_LISTS[1], "files/cms/master_list/NL_ROOT_CA.cer", 411),
    ] {
        let mut t = TrustStore::new();
        let r = t.add_master_list(&read(&icao, ml)).expect(ml);
        assert_eq!(r.signature.outcome, Outcome::Pass, "{ml}: {r:?}");
        assert_eq!(r.certificates + r.unreadable, count, "{ml}: {r:?}");
        assert_eq!(r.unreadable, 0, "{ml}: {r:?}");
        // The list's signer was issued by the state's CSCA, which the list
        // itself carries and which SOURCE.md names as the list's root.
        assert_eq!(r.signer_certificate.outcome, Outcome::Pass, "{ml}: {r:?}");
        let root = Certificate::from_der(&read(&icao, root)).expect(root);
        assert!(
            r.signer_certificate
                .detail
                .contains(&root.subject.to_string())
                && r.signer_certificate.detail.contains(&root.serial_hex()),
            "{ml}: {} vs {}",
            r.signer_certificate.detail,
            root.subject
        );
        eprintln!("{ml}: {r:?}");
    }
    // A master list with one byte of its content altered is refused whole.
    let mut bad = read(&icao, MASTER_LISTS[1]);
    let i = bad.len() / 2;
    bad[i] ^= 0x01;
    assert!(TrustStore::new().add_master_list(&bad).is_err());
}

#[test]
fn every_real_sod_verifies_and_chains_to_its_csca() {
    let Some(icao) = icao() else { return };
    let trust = default_trust(&icao);
    let mut seen = 0;
    for v in vectors(&icao) {
        if v["category"] != "sod" {
            continue;
        }
        let file = v["file"].as_str().expect("file");
        let sod_bytes = read(&icao, file);
        let rep = authenticate(&PassiveAuthInput {
            sod: &sod_bytes,
            data_groups: &[],
            trust: Some(trust),
            crl: None,
            now: NOW,
        });
        let outcome = |n: &str| rep.check(n).map(|c| c.outcome);
        assert_eq!(rep.verdict, Outcome::Pass, "{file}: {rep:#?}");
        for n in [
            "sod_parse",
            "sod_signature",
            "document_signer_certificate",
            "document_signer_validity",
        ] {
            assert_eq!(outcome(n), Some(Outcome::Pass), "{file} {n}: {rep:#?}");
        }
        let asserted = &v["asserted_by_test"];
        let sod = Sod::parse(&sod_bytes).expect(file);
        for (dg, key) in [(1, "dg1_hash_hex"), (2, "dg2_hash_hex")] {
            if let Some(h) = asserted[key].as_str() {
                assert_eq!(
                    sod.hash_of(dg).map(pki::hex).as_deref(),
                    Some(h),
                    "{file} DG{dg}"
                );
            }
        }
        if let Some(lds) = asserted["ldsVersion"].as_str().filter(|s| !s.is_empty()) {
            let uni = asserted["unicodeVersion"].as_str().unwrap_or_default();
            assert_eq!(
                sod.lds_version,
                Some((lds.to_string(), uni.to_string())),
                "{file}"
            );
        }
        // The chain closes on the CSCA the vector names.
        if let Some(csca_file) = asserted["certChain[1] (CSCA) equals file"].as_str() {
            let want = Certificate::from_der(&read(&icao, csca_file)).expect(csca_file);
            let got = rep.csca.as_ref().expect("csca");
            assert_eq!(got.serial, want.serial_hex(), "{file}");
            assert_eq!(got.subject, want.subject.to_string(), "{file}");
            let dsc_file = asserted["certChain[0] (DSC) equals file"]
                .as_str()
                .expect("dsc");
            let dsc = Certificate::from_der(&read(&icao, dsc_file)).expect(dsc_file);
            let signer = rep.document_signer.as_ref().expect("signer");
            assert_eq!(signer.serial, dsc.serial_hex(), "{file}");
        }
        eprintln!(
            "{file}: {:?} {:?}, signer {}, CSCA {}, validity at {:?} ({:?})",
            rep.hash_algorithm,
            rep.signature_scheme,
            rep.document_signer
                .as_ref()
                .map(|s| s.key.as_str())
                .unwrap_or(""),
            rep.csca.as_ref().map(|s| s.key.as_str()).unwrap_or(""),
            rep.validity_time,
            rep.validity_time_source,
        );
        seen += 1;
    }
    assert_eq!(seen, 14, "13 SODs from TestNewSod and Indonesia's");
}

#[test]
fn each_real_sod_chains_to_its_own_csca_folder_and_not_to_anothers() {
    let Some(icao) = icao() else { return };
    for cc in [
        "at", "au", "cn", "de", "fi", "fr", "my", "nz", "ph", "ru", "sg", "uk", "us",
    ] {
        let sod = read(&icao, &format!("vectors/sod/sod_{cc}.bin"));
        let mut own = TrustStore::new();
        own.add_certificates(&read(&icao, &format!("vectors/sod/csca_{cc}.der")))
            .expect(cc);
        let run = |trust: &TrustStore| {
            authenticate(&PassiveAuthInput {
                sod: &sod,
                data_groups: &[],
                trust: Some(trust),
                crl: None,
                now: NOW,
            })
        };
        let rep = run(&own);
        assert!(rep.passed(), "{cc}: {rep:#?}");
        // Against another state's CSCA the chain does not close.
        let other = if cc == "at" { "au" } else { "at" };
        let mut wrong = TrustStore::new();
        wrong
            .add_certificates(&read(&icao, &format!("vectors/sod/csca_{other}.der")))
            .expect(other);
        let rep = run(&wrong);
        assert!(!rep.passed(), "{cc}");
        assert_eq!(
            rep.check("document_signer_certificate").map(|c| c.outcome),
            Some(Outcome::Fail),
            "{cc}"
        );
        // And without any CSCA it is not checked, so the verdict fails.
        let rep = run(&TrustStore::new());
        assert_eq!(
            rep.check("document_signer_certificate").map(|c| c.outcome),
            Some(Outcome::NotChecked),
            "{cc}"
        );
        assert!(!rep.passed(), "{cc}");
    }
}

#[test]
fn the_nz_sod_reads_alike_in_ber_and_der() {
    let Some(icao) = icao() else { return };
    let ber = Sod::parse(&read(&icao, "vectors/sod/sod_nz.bin")).expect("BER");
    assert!(ber.was_ber);
    let der = Sod::parse(&read(
        &icao,
        "vectors/cms/signeddata_nz_definite_length.der",
    ))
    .expect("DER");
    assert!(!der.was_ber);
    assert_eq!(ber.hashes, der.hashes);
    let rep = authenticate(&PassiveAuthInput {
        sod: &read(&icao, "vectors/cms/signeddata_nz_definite_length.der"),
        data_groups: &[],
        trust: Some(default_trust(&icao)),
        crl: None,
        now: NOW,
    });
    assert!(rep.passed(), "{rep:#?}");
}

#[test]
fn negative_vectors_fail_by_name() {
    let Some(icao) = icao() else { return };
    let trust = default_trust(&icao);
    for (file, failing) in [
        (
            "vectors/negative/signeddata_fr_no_signerinfo.der",
            "sod_parse",
        ),
        (
            "vectors/negative/signeddata_at_bad_contenttype_oid.der",
            "sod_parse",
        ),
        ("vectors/negative/signeddata_sg_bad_length.der", "sod_parse"),
        ("vectors/negative/sod_uk_bad_econtenttype.bin", "sod_parse"),
        ("vectors/negative/sod_uk_bad_lds_length.bin", "sod_parse"),
        (
            "vectors/negative/sod_de_last_byte_corrupted.bin",
            "sod_signature",
        ),
    ] {
        let rep = authenticate(&PassiveAuthInput {
            sod: &read(&icao, file),
            data_groups: &[],
            trust: Some(trust),
            crl: None,
            now: NOW,
        });
        assert_eq!(rep.verdict, Outcome::Fail, "{file}");
        assert_eq!(
            rep.check(failing).map(|c| c.outcome),
            Some(Outcome::Fail),
            "{file}: {rep:#?}"
        );
    }
    // EF.CardSecurity is SignedData too, but not a SOD.
    for file in [
        "vectors/card_security/card_security_de.bin",
        "vectors/card_security/card_security_fi.bin",
    ] {
        assert!(Sod::parse(&read(&icao, file)).is_err(), "{file}");
    }
}

#[test]
fn real_certificates_read_with_their_dates() {
    let Some(icao) = icao() else { return };
    let mut n = 0;
    for v in vectors(&icao) {
        if v["category"] != "certificate" {
            continue;
        }
        let file = v["file"].as_str().expect("file");
        let c = Certificate::from_der(&read(&icao, file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let d = &v["derived_here_not_asserted"];
        assert_eq!(
            c.serial_hex().trim_start_matches('0'),
            d["serial_hex"].as_str().unwrap_or("?"),
            "{file}"
        );
        let nb = d["not_before"]
            .as_str()
            .unwrap_or("?")
            .replace("+00:00", "Z");
        assert_eq!(
            ipseity_document::asn1::format_time(c.not_before),
            nb,
            "{file}"
        );
        assert!(c.key.is_ok(), "{file}: {:?}", c.key);
        n += 1;
    }
    assert_eq!(n, 26);
}

#[test]
fn indonesian_link_certificates_are_signed_by_the_previous_csca() {
    let Some(icao) = icao() else { return };
    let dir = "files/cms/master_list/IDN_2010_SERIES_CSCA_CERT";
    let cert =
        |name: &str| Certificate::from_der(&read(&icao, &format!("{dir}/{name}"))).expect(name);
    for (link, previous, other) in [
        (
            "2016-01_CSCA_LINK.cer",
            "2010-12_CSCA.cer",
            "2020-10_CSCA.cer",
        ),
        (
            "2020-10_CSCA_LINK.cer",
            "2016-01_CSCA.cer",
            "2010-12_CSCA.cer",
        ),
    ] {
        let link = cert(link);
        let previous = cert(previous);
        let key = previous.key.as_ref().expect("key");
        assert!(link.verify_signed_by(key).is_ok(), "{link:?}");
        assert!(link.issuer.matches(&previous.subject));
        let other = cert(other);
        let other_key = other.key.as_ref().expect("key");
        assert!(link.verify_signed_by(other_key).is_err());
    }
    // Each self-signed CSCA verifies under its own key.
    for name in ["2010-12_CSCA.cer", "2016-01_CSCA.cer", "2020-10_CSCA.cer"] {
        let c = cert(name);
        assert!(
            c.verify_signed_by(c.key.as_ref().expect("key")).is_ok(),
            "{name}"
        );
    }
}

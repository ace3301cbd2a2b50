//! DG11 and DG12 against the vectors in `../shared/icao/vectors` (the ICAO 9303 part 10
//! examples, real French and New Zealand-style files, and states' deviations), with the
//! negative cases refused. Skips with a message where the folder is absent;
//! `IPSEITY_REQUIRE_SHARED=1`, as in CI, turns the skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use ipseity_document::lds::{
    parse_card_security, parse_dg11, parse_dg12, parse_dg14, parse_dg15, Name, SecurityInfoKind,
};

fn name(primary: &str, secondary: &str) -> Name {
    Name {
        primary: primary.into(),
        secondary: secondary.into(),
    }
}

#[test]
fn dg11_reads_as_its_vectors_say() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors").join(n)).expect("vector");

    let d = parse_dg11(&read("dg/dg11_9303p10_example.bin")).expect("9303 example");
    assert_eq!(d.name_of_holder, Some(name("SMITH", "JOHN J")));
    assert_eq!(d.place_of_birth, ["ANYTOWN", "MN"]);
    assert_eq!(d.address, ["123 MAPLE RD", "ANYTOWN", "MN"]);
    assert_eq!(d.telephone.as_deref(), Some("16125551212"));
    assert_eq!(d.profession.as_deref(), Some("TRAVEL AGENT"));

    let d = parse_dg11(&read("dg/dg11_china_utf8_name.bin")).expect("UTF-8 name");
    assert_eq!(d.name_of_holder, Some(name("\u{8d75}\u{5f6c}", "")));
    assert_eq!(d.other_names, [name("ZHAO", "BIN")]);

    let two = [name("SMITH", "JOHN"), name("JOHN SMITH", "")];
    for f in [
        "dg/dg11_othernames_a0_nominal.bin",
        "dg/dg11_othernames_a0_in_taglist.bin",
    ] {
        assert_eq!(parse_dg11(&read(f)).expect(f).other_names, two, "{f}");
    }
    let d = parse_dg11(&read("dg/dg11_othernames_no_a0.bin")).expect("bare other name");
    assert_eq!(d.other_names, [name("SMITH", "JOHN")]);
    let d = parse_dg11(&read("dg/dg11_othernames_count_exceeds_nodes.bin")).expect("lenient count");
    assert_eq!(d.other_names, [name("AAAA", "")]);

    for (f, says) in [
        ("negative/dg11_err_line176.bin", "more than two components"),
        ("negative/dg11_err_line223.bin", "length must be 1 byte"),
        ("negative/dg11_err_line230.bin", "must be 1-99"),
        ("negative/dg11_err_line237.bin", "must be 1-99"),
    ] {
        let err = parse_dg11(&read(f)).expect_err(f).to_string();
        assert!(err.contains(says), "{f}: {err}");
    }
    // Another data group is not DG11.
    assert!(parse_dg11(&read("dg/dg12_fr_real.bin")).is_err());
}

#[test]
fn dg12_reads_as_its_vectors_say() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors/dg").join(n)).expect("vector");
    let d = parse_dg12(&read("dg12_fr_real.bin")).expect("French DG12");
    assert_eq!(
        d.issuing_authority.as_deref(),
        Some("JAKARTA - AMBASSADE DE FRANCE EN INDONESIE")
    );
    assert_eq!(d.date_of_issue.as_deref(), Some("20170905"));
    let d = parse_dg12(&read("dg12_nz_style.bin")).expect("NZ-style DG12");
    assert_eq!(d.personalization_time.as_deref(), Some("20161115013612"));
    assert_eq!(d.personalization_system.as_deref(), Some("N-4962"));
    assert!(parse_dg12(&read("dg11_9303p10_example.bin")).is_err());
}

#[test]
fn dg14_and_dg15_read_as_their_vectors_say() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors/dg").join(n)).expect("vector");
    let count = |f: &str, k: SecurityInfoKind| {
        parse_dg14(&read(f))
            .expect(f)
            .iter()
            .filter(|i| i.kind == k)
            .count()
    };
    use SecurityInfoKind::*;
    // (file, PACE, chip authentication, its public keys, terminal authentication, total)
    for (f, pace, ca, pk, ta, total) in [
        ("dg14_example.bin", 2, 1, 1, 1, 5),
        ("dg14_at_real.bin", 1, 1, 1, 1, 4),
        ("dg14_my_real.bin", 0, 1, 1, 1, 3),
    ] {
        assert_eq!(
            (
                count(f, Pace),
                count(f, ChipAuthentication),
                count(f, ChipAuthenticationPublicKey)
            ),
            (pace, ca, pk),
            "{f}"
        );
        assert_eq!(count(f, TerminalAuthentication), ta, "{f}");
        assert_eq!(parse_dg14(&read(f)).expect(f).len(), total, "{f}");
    }
    let key = parse_dg15(&read("dg15_rsa_aa_key.bin")).expect("DG15");
    assert_eq!(key.len(), 258);
    assert_eq!(&key[..4], [0x30, 0x81, 0xFF, 0x30]);
    assert!(parse_dg15(&read("dg14_at_real.bin")).is_err());
    assert!(parse_dg14(&read("dg15_rsa_aa_key.bin")).is_err());
}

#[test]
fn card_security_reads_as_its_vectors_say() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors").join(n)).expect("vector");
    use SecurityInfoKind::*;
    let de = parse_card_security(&read("card_security/card_security_de.bin")).expect("DE");
    let n = |k| de.iter().filter(|i| i.kind == k).count();
    // Seven infos: two PACE, one chip authentication, two of its keys, terminal
    // authentication, and one misspelt chip-authentication info left as other.
    assert_eq!(de.len(), 7);
    assert_eq!(
        (
            n(Pace),
            n(ChipAuthentication),
            n(ChipAuthenticationPublicKey)
        ),
        (2, 1, 2)
    );
    assert_eq!((n(TerminalAuthentication), n(Other)), (1, 1));
    assert!(
        !parse_card_security(&read("card_security/card_security_fi.bin"))
            .expect("FI")
            .is_empty()
    );
    for f in [
        "negative/card_security_de_bad_econtent_oid.bin",
        "negative/card_security_de_bad_securityinfos.bin",
    ] {
        assert!(parse_card_security(&read(f)).is_err(), "{f}");
    }
}

#[test]
fn card_security_is_signed_by_a_document_signer_of_its_state() {
    let Some(dir) = common::icao() else { return };
    let read = |n: &str| std::fs::read(dir.join("vectors").join(n)).expect("vector");
    let mut trust = ipseity_document::passive::TrustStore::new();
    trust
        .add_certificates(&read("sod/csca_de.der"))
        .expect("German CSCA");
    let auth = |f: &str, t| ipseity_document::passive::authenticate_card_security(&read(f), t);

    let r = auth("card_security/card_security_de.bin", Some(&trust));
    assert!(r.passed(), "{r:?}");
    // The signer is the SOD's.
    let dsc = ipseity_document::pki::Certificate::from_der(&read("sod/dsc_de.der")).expect("DSC");
    assert_eq!(
        r.document_signer.as_ref().map(|d| d.serial.clone()),
        Some(dsc.serial_hex())
    );

    // One byte changed at the end (inside the signature): refused by name.
    let r = auth(
        "negative/card_security_de_last_byte_corrupted.bin",
        Some(&trust),
    );
    assert!(!r.passed());
    assert_eq!(
        r.check("card_security_signature").map(|c| c.outcome),
        Some(ipseity_document::passive::Outcome::Fail),
        "{r:?}"
    );
    // Without a trusted CSCA the chain is not traced, so it does not pass.
    assert!(!auth("card_security/card_security_de.bin", None).passed());
    // Another state's CSCA does not vouch for it.
    let mut other = ipseity_document::passive::TrustStore::new();
    other
        .add_certificates(&read("sod/csca_fi.der"))
        .expect("Finnish CSCA");
    assert!(!auth("card_security/card_security_de.bin", Some(&other)).passed());
}

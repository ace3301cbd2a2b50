//! Passive authentication on synthetic documents made by `testkit` (a test
//! CSCA, a document signer and a SOD over generated data groups), signed
//! with RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256 and ECDSA brainpoolP256r1
//! (explicit parameters): the genuine document passes every check, and each
//! kind of tampering fails the check named for it.

use std::sync::OnceLock;

use ipseity_document::passive::{
    authenticate, Outcome, PassiveAuthInput, PassiveAuthReport, TimeSource, TrustStore,
};
use ipseity_document::testkit::{self, Document, KeyKind, SodSpec, TestKey, SIGNED_AT};
use ipseity_document::verify::Scheme;

const DAY: i64 = 86_400;
const VALID: (i64, i64) = (SIGNED_AT - 30 * DAY, SIGNED_AT + 3650 * DAY);
const NOW: i64 = SIGNED_AT + 400 * DAY;

/// One document per signer algorithm (RSA keys take a while to generate, so
/// they are made once for all tests).
fn doc(kind: KeyKind) -> &'static Document {
    static DOCS: OnceLock<Vec<(KeyKind, Document)>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        [
            (KeyKind::RsaPkcs1, KeyKind::RsaPkcs1, 10),
            (KeyKind::RsaPss, KeyKind::RsaPss, 20),
            (KeyKind::P256, KeyKind::P256, 30),
            (KeyKind::BrainpoolP256, KeyKind::BrainpoolP256, 40),
        ]
        .into_iter()
        .map(|(c, s, seed)| (s, testkit::document(c, s, seed, VALID).expect("fixture")))
        .collect()
    });
    &docs.iter().find(|(k, _)| *k == kind).expect("kind").1
}

const KINDS: [KeyKind; 4] = [
    KeyKind::RsaPkcs1,
    KeyKind::RsaPss,
    KeyKind::P256,
    KeyKind::BrainpoolP256,
];

fn trust(csca: &[u8]) -> TrustStore {
    let mut t = TrustStore::new();
    t.add_certificates(csca).expect("CSCA");
    t
}

fn run(
    sod: &[u8],
    dgs: &[(u8, Vec<u8>)],
    trust: &TrustStore,
    crl: Option<&[u8]>,
) -> PassiveAuthReport {
    let refs: Vec<(u8, &[u8])> = dgs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    authenticate(&PassiveAuthInput {
        sod,
        data_groups: &refs,
        trust: Some(trust),
        crl,
        now: NOW,
    })
}

fn outcome(r: &PassiveAuthReport, name: &str) -> Option<Outcome> {
    r.check(name).map(|c| c.outcome)
}

#[test]
fn a_genuine_document_passes_every_check_with_each_algorithm() {
    for kind in KINDS {
        let d = doc(kind);
        let rep = run(&d.sod, &d.data_groups, &trust(&d.csca), None);
        assert!(rep.passed(), "{kind:?}: {rep:#?}");
        for n in [
            "sod_parse",
            "sod_signature",
            "document_signer_certificate",
            "document_signer_validity",
            "dg1_hash",
            "dg2_hash",
        ] {
            assert_eq!(outcome(&rep, n), Some(Outcome::Pass), "{kind:?} {n}");
        }
        let rev = rep.check("document_signer_revocation").expect("revocation");
        assert_eq!((rev.outcome, rev.required), (Outcome::NotChecked, false));
        assert_eq!(rep.validity_time_source, Some(TimeSource::SigningTime));
        let want = match kind {
            KeyKind::RsaPkcs1 => "rsa-pkcs1",
            KeyKind::RsaPss => "rsa-pss",
            KeyKind::P256 | KeyKind::BrainpoolP256 => "ecdsa",
        };
        let scheme = serde_json::to_value(rep.signature_scheme).expect("json");
        assert_eq!(scheme["scheme"], want, "{kind:?}");
        if kind == KeyKind::RsaPss {
            assert!(matches!(
                rep.signature_scheme,
                Some(Scheme::RsaPss { salt_len: 32, .. })
            ));
        }
        // The report serialises, every check by name.
        let json = serde_json::to_value(&rep).expect("json");
        assert_eq!(json["verdict"], "pass");
        assert!(json["checks"].as_array().is_some_and(|c| c.len() >= 6));
    }
}

#[test]
fn a_flipped_byte_in_a_data_group_fails_that_groups_hash() {
    for kind in KINDS {
        let d = doc(kind);
        let mut dgs = d.data_groups.clone();
        let last = dgs[1].1.len() - 1;
        dgs[1].1[last] ^= 0x01;
        let rep = run(&d.sod, &dgs, &trust(&d.csca), None);
        assert!(!rep.passed(), "{kind:?}");
        assert_eq!(outcome(&rep, "dg1_hash"), Some(Outcome::Pass));
        assert_eq!(outcome(&rep, "dg2_hash"), Some(Outcome::Fail));
        assert_eq!(outcome(&rep, "sod_signature"), Some(Outcome::Pass));
    }
}

#[test]
fn a_data_group_the_sod_does_not_list_fails() {
    let d = doc(KeyKind::P256);
    let mut dgs = d.data_groups.clone();
    dgs.push((11, vec![0x6B, 0x02, 0x5C, 0x00]));
    let rep = run(&d.sod, &dgs, &trust(&d.csca), None);
    assert!(!rep.passed());
    let c = rep.check("dg11_hash").expect("dg11");
    assert_eq!(c.outcome, Outcome::Fail);
    assert!(c.detail.contains("no hash"), "{}", c.detail);
    // A group in the SOD but not read is noted, not required.
    let rep = run(&d.sod, &d.data_groups[..1], &trust(&d.csca), None);
    assert!(rep.passed());
    let c = rep.check("dg2_hash").expect("dg2");
    assert_eq!((c.outcome, c.required), (Outcome::NotChecked, false));
}

#[test]
fn a_wrong_csca_fails_the_chain() {
    for kind in KINDS {
        let d = doc(kind);
        // Another document's CSCA has the same name but another key.
        let other = if kind == KeyKind::P256 {
            doc(KeyKind::BrainpoolP256)
        } else {
            doc(KeyKind::P256)
        };
        let rep = run(&d.sod, &d.data_groups, &trust(&other.csca), None);
        assert!(!rep.passed(), "{kind:?}");
        assert_eq!(
            outcome(&rep, "document_signer_certificate"),
            Some(Outcome::Fail),
            "{kind:?}"
        );
        assert_eq!(outcome(&rep, "sod_signature"), Some(Outcome::Pass));
        assert!(rep.csca.is_none());
    }
}

#[test]
fn an_expired_signer_fails_validity_at_signing_time() {
    let expired = testkit::document(
        KeyKind::P256,
        KeyKind::P256,
        50,
        (SIGNED_AT - 800 * DAY, SIGNED_AT - 10 * DAY),
    )
    .expect("fixture");
    let rep = run(
        &expired.sod,
        &expired.data_groups,
        &trust(&expired.csca),
        None,
    );
    assert!(!rep.passed());
    assert_eq!(
        outcome(&rep, "document_signer_validity"),
        Some(Outcome::Fail)
    );
    assert_eq!(
        outcome(&rep, "document_signer_certificate"),
        Some(Outcome::Pass)
    );
    let c = rep.check("document_signer_validity").expect("validity");
    assert!(c.detail.contains("signingTime"), "{}", c.detail);
}

#[test]
fn without_signing_time_validity_is_judged_now_and_says_so() {
    let d = doc(KeyKind::P256);
    let key = TestKey::generate(KeyKind::P256, 31).expect("key");
    let refs: Vec<(u8, &[u8])> = d
        .data_groups
        .iter()
        .map(|(n, b)| (*n, b.as_slice()))
        .collect();
    let sod = testkit::sod(&SodSpec {
        data_groups: &refs,
        signer_certificate: &d.signer,
        signer_issuer: &d.csca_name,
        signer_serial: d.signer_serial,
        signer_key: &key,
        signing_time: None,
    })
    .expect("sod");
    let rep = run(&sod, &d.data_groups, &trust(&d.csca), None);
    assert!(rep.passed(), "{rep:#?}");
    assert_eq!(rep.validity_time_source, Some(TimeSource::Now));
    assert_eq!(rep.signing_time, None);
}

#[test]
fn a_revoked_signer_fails_and_a_clean_crl_passes() {
    for kind in [KeyKind::RsaPkcs1, KeyKind::BrainpoolP256] {
        let d = doc(kind);
        let t = trust(&d.csca);
        let revoked =
            testkit::crl(&d.csca_name, &d.csca_key, NOW - DAY, &[7, d.signer_serial]).expect("crl");
        let rep = run(&d.sod, &d.data_groups, &t, Some(&revoked));
        assert!(!rep.passed(), "{kind:?}");
        let c = rep.check("document_signer_revocation").expect("revocation");
        assert_eq!(
            (c.outcome, c.required),
            (Outcome::Fail, true),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("revoked"), "{}", c.detail);

        let clean = testkit::crl(&d.csca_name, &d.csca_key, NOW - DAY, &[7]).expect("crl");
        let rep = run(&d.sod, &d.data_groups, &t, Some(&clean));
        assert!(rep.passed(), "{kind:?}: {rep:#?}");
        assert_eq!(
            outcome(&rep, "document_signer_revocation"),
            Some(Outcome::Pass)
        );

        // A CRL not signed by the CSCA counts for nothing: it fails.
        let forged_key = TestKey::generate(KeyKind::P256, 99).expect("key");
        let forged = testkit::crl(&d.csca_name, &forged_key, NOW - DAY, &[]).expect("crl");
        let rep = run(&d.sod, &d.data_groups, &t, Some(&forged));
        assert!(!rep.passed());
        assert_eq!(
            outcome(&rep, "document_signer_revocation"),
            Some(Outcome::Fail)
        );
        // Garbage as a CRL fails too.
        let rep = run(&d.sod, &d.data_groups, &t, Some(b"not a CRL"));
        assert_eq!(
            outcome(&rep, "document_signer_revocation"),
            Some(Outcome::Fail)
        );
    }
}

#[test]
fn a_sod_from_another_document_fails_the_hashes() {
    let a = doc(KeyKind::P256);
    let b = doc(KeyKind::BrainpoolP256);
    // b's SOD is genuine and chains to b's CSCA, but hashes b's data groups.
    let mut t = trust(&a.csca);
    t.add_certificates(&b.csca).expect("csca");
    let rep = run(&b.sod, &a.data_groups, &t, None);
    assert!(!rep.passed());
    assert_eq!(outcome(&rep, "sod_signature"), Some(Outcome::Pass));
    assert_eq!(
        outcome(&rep, "document_signer_certificate"),
        Some(Outcome::Pass)
    );
    // DG1 is the same specimen zone in both; DG2 differs.
    assert_eq!(outcome(&rep, "dg1_hash"), Some(Outcome::Pass));
    assert_eq!(outcome(&rep, "dg2_hash"), Some(Outcome::Fail));
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
}

#[test]
fn a_tampered_signature_or_content_fails_the_sod_signature() {
    for kind in KINDS {
        let d = doc(kind);
        let t = trust(&d.csca);
        // The signature is the SOD's last element: flip a byte in it.
        let mut sig = d.sod.clone();
        let i = sig.len() - 5;
        sig[i] ^= 0x40;
        let rep = run(&sig, &d.data_groups, &t, None);
        assert!(!rep.passed(), "{kind:?}");
        assert_eq!(
            outcome(&rep, "sod_signature"),
            Some(Outcome::Fail),
            "{kind:?}"
        );

        // Rewrite DG2's hash in the SOD to the tampered group's: the hashes
        // now agree, but messageDigest does not.
        let mut dgs = d.data_groups.clone();
        dgs[1].1.push(0);
        let old = ipseity_document::verify::HashAlg::Sha256.digest(&d.data_groups[1].1);
        let new = ipseity_document::verify::HashAlg::Sha256.digest(&dgs[1].1);
        let mut forged = d.sod.clone();
        let at = find(&forged, &old);
        forged[at..at + 32].copy_from_slice(&new);
        let rep = run(&forged, &dgs, &t, None);
        assert!(!rep.passed(), "{kind:?}");
        assert_eq!(outcome(&rep, "dg2_hash"), Some(Outcome::Pass));
        let c = rep.check("sod_signature").expect("signature");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.detail.contains("messageDigest"), "{}", c.detail);
    }
}

#[test]
fn truncations_of_a_generated_sod_never_pass_or_panic() {
    let d = doc(KeyKind::P256);
    let t = trust(&d.csca);
    for cut in (0..d.sod.len()).step_by(7) {
        let rep = run(&d.sod[..cut], &d.data_groups, &t, None);
        assert!(!rep.passed(), "cut at {cut}");
    }
}

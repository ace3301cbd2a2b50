//! The chip reader against a simulated chip holding a generated document: PACE
//! (both curves, AES-128 and AES-256) or BAC, then every file under secure
//! messaging, a DG2 large enough to need the odd READ BINARY, DG3 withheld behind
//! extended access control; the files read pass passive authentication. A misread
//! zone, a tampered answer, a chip that lies about a file's length and a PACE
//! protocol we do not run are each met with the right outcome.

use std::sync::OnceLock;

use ipseity_document::bac::{AccessError, Chip};
use ipseity_document::passive::{authenticate, PassiveAuthInput, TrustStore};
use ipseity_document::reader::{read_chip, Access, ChipRead};
use ipseity_document::sim::SimulatedChip;
use ipseity_document::sm::Cipher;
use ipseity_document::testkit::{self, Document, KeyKind, SIGNED_AT};
use ipseity_document::{chip, ChipFile};

/// EF.CardAccess offering PACE-ECDH-GM-AES-128 on brainpoolP256r1 (parameters 13).
const CA_BP256_AES128: [u8; 22] = [
    0x31, 0x14, 0x30, 0x12, 0x06, 0x0A, 0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02,
    0x02, 0x01, 0x02, 0x02, 0x01, 0x0D,
];

/// The specimen zone's key information (document number, birth, expiry, each
/// with its check digit), read from the document's DG1.
fn key() -> String {
    ipseity_document::parse_dg1(&testkit::specimen_dg1())
        .expect("DG1")
        .key_information()
        .expect("key information")
}

fn card_access(last_arc: u8, parameters: u8) -> Vec<u8> {
    let mut v = CA_BP256_AES128.to_vec();
    v[15] = last_arc;
    v[21] = parameters;
    v
}

/// A document whose DG2 is 40,000 bytes, so that reading it goes past offset 32,767.
fn doc() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let body: Vec<u8> = (0..40_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let dg2 = testkit::tlv(0x75, &body);
        testkit::document_with_dg2(
            KeyKind::P256,
            KeyKind::P256,
            7,
            (SIGNED_AT - 86_400, SIGNED_AT + 3650 * 86_400),
            dg2,
        )
        .expect("fixture")
    })
}

/// The chip's files: EF.COM listing DG1-DG3, EF.SOD, DG1, DG2, a DG3 (never
/// given) and, for PACE, EF.CardAccess.
fn files(card_access: Option<Vec<u8>>) -> Vec<(ChipFile, Vec<u8>)> {
    let d = doc();
    let mut f = vec![
        (ChipFile::Com, testkit::ef_com(&[0x61, 0x75, 0x63])),
        (ChipFile::Sod, d.sod.clone()),
        (
            ChipFile::Dg(3),
            testkit::tlv(0x63, b"finger images behind EAC"),
        ),
    ];
    for (n, b) in &d.data_groups {
        f.push((ChipFile::Dg(*n), b.clone()));
    }
    if let Some(ca) = card_access {
        f.push((ChipFile::CardAccess, ca));
    }
    f
}

fn chip(card_access: Option<Vec<u8>>, bac: bool) -> SimulatedChip {
    SimulatedChip::new(&files(card_access), &key(), bac).with_eac(&[ChipFile::Dg(3)])
}

fn file(read: &ChipRead, f: ChipFile) -> &[u8] {
    &read
        .files
        .iter()
        .find(|(k, _)| *k == f)
        .expect("file read")
        .1
}

/// Everything read is what the chip holds, DG3 is withheld, and passive
/// authentication passes on what was read.
fn check_read(read: &ChipRead) {
    let d = doc();
    assert_eq!(file(read, ChipFile::Sod), d.sod.as_slice());
    for (n, b) in &d.data_groups {
        assert_eq!(file(read, ChipFile::Dg(*n)), b.as_slice(), "DG{n}");
    }
    assert_eq!(read.withheld, vec![(ChipFile::Dg(3), 0x6982)]);
    let mut trust = TrustStore::new();
    trust.add_certificates(&d.csca).expect("CSCA");
    let dgs = chip::data_groups(&read.files);
    let report = authenticate(&PassiveAuthInput {
        sod: file(read, ChipFile::Sod),
        data_groups: &dgs,
        trust: Some(&trust),
        crl: None,
        now: SIGNED_AT + 86_400,
    });
    assert!(report.passed(), "{report:?}");
}

/// After the access protocol, every command went under secure messaging.
fn all_protected_after(chip: &SimulatedChip, protocol_commands: usize) {
    let after: Vec<&Vec<u8>> = chip
        .received
        .iter()
        .skip_while(|c| c[1] != 0x82 && c[1] != 0x86)
        .skip(protocol_commands)
        .collect();
    assert!(
        after.len() > 10,
        "{} commands after the protocol",
        after.len()
    );
    for c in after {
        assert_eq!(c[0] & 0x0C, 0x0C, "a command in clear: {:02X?}", &c[..4]);
    }
}

#[test]
fn pace_opens_the_chip_and_every_file_is_read_under_aes_secure_messaging() {
    for (arc, params, protocol) in [
        (2, 13, "0.4.0.127.0.7.2.2.4.2.2"),
        (4, 12, "0.4.0.127.0.7.2.2.4.2.4"),
        (3, 12, "0.4.0.127.0.7.2.2.4.2.3"),
    ] {
        let ca = card_access(arc, params);
        let mut c = chip(Some(ca.clone()), false);
        let read = read_chip(&mut c, &key()).expect("read");
        assert_eq!(
            read.access,
            Access::Pace {
                protocol: protocol.into()
            }
        );
        assert_eq!(read.cipher, Cipher::Aes);
        assert_eq!(read.pace_skipped, None);
        assert_eq!(file(&read, ChipFile::CardAccess), ca.as_slice());
        check_read(&read);
        // Four GENERAL AUTHENTICATE steps, then only protected commands.
        all_protected_after(&c, 4);
        // DG2 is past 32,767 bytes: the odd READ BINARY was used.
        assert!(c.received.iter().any(|a| a[1] == 0xB1));
    }
}

#[test]
fn a_chip_without_pace_is_opened_with_bac_and_read_under_3des() {
    let mut c = chip(None, true);
    let read = read_chip(&mut c, &key()).expect("read");
    assert_eq!(read.access, Access::Bac);
    assert_eq!(read.cipher, Cipher::Tdes);
    check_read(&read);
    all_protected_after(&c, 1);
}

#[test]
fn a_pace_protocol_we_do_not_run_falls_back_to_bac() {
    // PACE-ECDH-IM (integrated mapping, 0.4.0.127.0.7.2.2.4.4.2): announced, not run.
    let mut integrated = card_access(2, 13);
    integrated[14] = 0x04;
    let mut c = chip(Some(integrated), true);
    let read = read_chip(&mut c, &key()).expect("read");
    assert_eq!(read.access, Access::Bac);
    assert!(read.pace_skipped.is_some());
    check_read(&read);
}

#[test]
fn a_misread_zone_is_refused_by_either_protocol() {
    let wrong = key().replacen("7408122", "7408132", 1);
    assert_ne!(wrong, key());
    let mut c = chip(Some(card_access(2, 13)), true);
    assert!(matches!(
        read_chip(&mut c, &wrong),
        Err(AccessError::Authentication(_))
    ));
    assert!(!c.secured());
    let mut c = chip(None, true);
    assert_eq!(
        read_chip(&mut c, &wrong).unwrap_err(),
        AccessError::Status(0x6300)
    );
    assert!(!c.secured());
}

/// A chip in the middle of which someone changes one byte of one answer.
struct Tampered {
    chip: SimulatedChip,
    at: usize,
    seen: usize,
}

impl Chip for Tampered {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, AccessError> {
        let mut r = self.chip.transmit(apdu)?;
        self.seen += 1;
        if self.seen == self.at && r.len() > 4 {
            r[3] ^= 0x01;
        }
        Ok(r)
    }
}

#[test]
fn a_changed_byte_in_a_protected_answer_is_refused() {
    for (ca, bac) in [(Some(card_access(2, 13)), false), (None, true)] {
        // Find how many exchanges a clean read takes, then tamper with later ones.
        let mut clean = chip(ca.clone(), bac);
        read_chip(&mut clean, &key()).expect("read");
        let total = clean.received.len();
        for at in [total - 1, total - 5, total / 2] {
            let mut t = Tampered {
                chip: chip(ca.clone(), bac),
                at,
                seen: 0,
            };
            let err = read_chip(&mut t, &key()).expect_err("tampered");
            assert!(
                matches!(
                    err,
                    AccessError::Authentication(_) | AccessError::Malformed(_)
                ),
                "{err:?}"
            );
        }
    }
}

#[test]
fn a_file_whose_stated_length_is_too_large_is_refused() {
    let mut f = files(Some(card_access(2, 13)));
    f.retain(|(k, _)| *k != ChipFile::Dg(1));
    f.push((
        ChipFile::Dg(1),
        vec![0x61, 0x83, 0x20, 0x00, 0x00, 0, 0, 0, 0],
    ));
    let mut c = SimulatedChip::new(&f, &key(), false);
    assert!(matches!(
        read_chip(&mut c, &key()),
        Err(AccessError::Malformed(_))
    ));
}

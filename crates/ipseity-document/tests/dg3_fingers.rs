//! DG3 built by the testkit around the repository's own WSQ fixture (NBIS-encoded
//! synthetic ridges, 253x317 at 1000 ppi, see `crates/ipseity-finger/tests/data/wsq`):
//! read back through `parse_dg3` and `ChipContents`, its WSQ bytes decode with
//! ipseity-finger (a dev-dependency only), and damaged copies are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use ipseity_document::finger::Compression;
use ipseity_document::{parse_dg3, testkit, ChipContents, ChipFile};

const WSQ: &[u8] = include_bytes!("../../ipseity-finger/tests/data/wsq/ridges_253x317_r150.wsq");

#[test]
fn a_wsq_finger_reads_back_and_decodes() {
    let dg3 = testkit::dg3_with_images(2, 1000, &[(2, (253, 317), WSQ), (7, (253, 317), WSQ)]);
    let fingers = parse_dg3(&dg3).expect("DG3 reads");
    assert_eq!(fingers.len(), 2);
    let f = &fingers[0];
    assert_eq!(f.position, 2);
    assert_eq!(f.position_name(), "right index finger");
    assert_eq!(fingers[1].position_name(), "left index finger");
    assert_eq!((f.width, f.height, f.ppi), (253, 317, 1000));
    assert_eq!(f.compression, Compression::Wsq);
    assert_eq!(f.record, "ISO/IEC 19794-4:2005");
    assert_eq!(f.data, WSQ);

    let decoded = ipseity_finger::wsq::decode(&f.data).expect("WSQ decodes");
    assert_eq!(decoded.image.dimensions(), (253, 317));
    assert_eq!(decoded.ppi, Some(1000));

    // Through the chip reader, under its dump name.
    let c = ChipContents::read([(ChipFile::from_name("EF_DG3.bin").expect("name"), &dg3[..])]);
    assert_eq!(c.present, [ChipFile::Dg(3)]);
    assert_eq!(c.dg3.expect("DG3").expect("reads").len(), 2);
}

#[test]
fn a_damaged_dg3_is_an_error_not_a_panic() {
    let dg3 = testkit::dg3_with_images(2, 1000, &[(1, (253, 317), WSQ)]);
    // Cut anywhere: an error naming DG3.
    for cut in (0..dg3.len()).step_by(97) {
        let e = parse_dg3(&dg3[..cut]).expect_err("truncated");
        assert!(e.to_string().starts_with("DG3"), "{e}");
    }
    // Stated JPEG over WSQ bytes.
    let e = parse_dg3(&testkit::dg3_with_images(3, 1000, &[(1, (253, 317), WSQ)])).unwrap_err();
    assert!(e.to_string().contains("JPEG"), "{e}");
    // Every single byte of the headers changed: never a panic.
    for at in 0..80.min(dg3.len()) {
        for v in [0x00, 0x7F, 0x80, 0xFF] {
            let mut d = dg3.clone();
            d[at] = v;
            let _ = parse_dg3(&d);
        }
    }
}

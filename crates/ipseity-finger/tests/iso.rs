//! ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 records: hand-built golden fixtures read and
//! written byte for byte, round trips within the documented quantisation, truncation and
//! corruption refused, format detection, and a replay of the `finger_template` fuzz corpus.
#![allow(clippy::unwrap_used)]

use ipseity_finger::iso::{self, Format, RecordError};
use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use proptest::prelude::*;
use std::f32::consts::{PI, TAU};
use std::path::{Path, PathBuf};

fn data(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/iso")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn deg(d: f32) -> f32 {
    d.to_radians()
}

fn unit(format: Format) -> f32 {
    match format {
        Format::Iso19794_2 => TAU / 256.0,
        Format::Ansi378 => TAU / 180.0,
    }
}

/// Smallest difference between two directions, radians.
fn angle_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(TAU);
    d.min(TAU - d)
}

/// The template of `iso_single.fmr` and `ansi_single.fmr` (see tests/data/iso/README.md).
fn single() -> FingerTemplate {
    FingerTemplate {
        width: 256,
        height: 360,
        resolution_ppi: 500,
        position: FingerPosition::RightIndex,
        quality: 80,
        minutiae: vec![
            Minutia::new(100.0, 200.0, PI / 2.0, MinutiaKind::Ending, 60),
            Minutia::new(16383.0, 0.0, 0.0, MinutiaKind::Bifurcation, 100),
            Minutia::new(0.0, 16383.0, PI, MinutiaKind::Other, 0),
        ],
    }
}

/// The three views of `iso_multi.fmr` and `ansi_multi.fmr`.
fn multi() -> Vec<FingerTemplate> {
    let t = |position, quality, minutiae| FingerTemplate {
        width: 400,
        height: 500,
        resolution_ppi: 1000,
        position,
        quality,
        minutiae,
    };
    vec![
        t(
            FingerPosition::LeftThumb,
            70,
            vec![Minutia::new(10.0, 20.0, deg(2.0), MinutiaKind::Ending, 55)],
        ),
        t(FingerPosition::LeftThumb, 0, vec![]),
        t(
            FingerPosition::RightThumb,
            100,
            vec![
                Minutia::new(399.0, 499.0, deg(358.0), MinutiaKind::Bifurcation, 1),
                Minutia::new(0.0, 0.0, 0.0, MinutiaKind::Other, 100),
            ],
        ),
    ]
}

/// Asserts that `got` equals `want` after the record's quantisation: integer positions,
/// angles within half a unit, everything else exact.
fn assert_quantised(got: &[FingerTemplate], want: &[FingerTemplate], format: Format) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.width, g.height, g.resolution_ppi),
            (want[0].width, want[0].height, want[0].resolution_ppi)
        );
        assert_eq!(g.position, w.position);
        assert_eq!(g.quality, w.quality);
        assert_eq!(g.minutiae.len(), w.minutiae.len());
        for (gm, wm) in g.minutiae.iter().zip(&w.minutiae) {
            assert_eq!(gm.x, wm.x.round(), "{gm:?} vs {wm:?}");
            assert_eq!(gm.y, wm.y.round(), "{gm:?} vs {wm:?}");
            assert_eq!(gm.kind, wm.kind);
            assert_eq!(gm.quality, wm.quality);
            assert!(
                angle_diff(gm.angle, wm.angle) <= unit(format) / 2.0 + 1e-5,
                "{gm:?} vs {wm:?}"
            );
            assert!((0.0..TAU).contains(&gm.angle));
        }
    }
}

#[test]
fn golden_single_view_iso() {
    let bytes = data("iso_single.fmr");
    assert_eq!(iso::write(&[single()], Format::Iso19794_2).unwrap(), bytes);
    let (format, got) = iso::read(&bytes).unwrap();
    assert_eq!(format, Format::Iso19794_2);
    // Every angle of this template is a whole number of units, so reading is exact.
    assert_quantised(&got, &[single()], format);
    assert!(angle_diff(got[0].minutiae[0].angle, PI / 2.0) < 1e-6);
    assert!(angle_diff(got[0].minutiae[2].angle, PI) < 1e-6);
}

#[test]
fn golden_single_view_ansi() {
    let bytes = data("ansi_single.fmr");
    assert_eq!(iso::write(&[single()], Format::Ansi378).unwrap(), bytes);
    let (format, got) = iso::read(&bytes).unwrap();
    assert_eq!(format, Format::Ansi378);
    assert_quantised(&got, &[single()], format);
    assert!(angle_diff(got[0].minutiae[0].angle, PI / 2.0) < 1e-6);
}

#[test]
fn golden_multi_view_both_formats() {
    for (name, format) in [
        ("iso_multi.fmr", Format::Iso19794_2),
        ("ansi_multi.fmr", Format::Ansi378),
    ] {
        let bytes = data(name);
        assert_eq!(iso::write(&multi(), format).unwrap(), bytes, "{name}");
        let (got_format, got) = iso::read(&bytes).unwrap();
        assert_eq!(got_format, format);
        assert_quantised(&got, &multi(), format);
        // Re-writing what was read gives the same bytes.
        assert_eq!(iso::write(&got, format).unwrap(), bytes, "{name}");
    }
    // 2 degrees is one ANSI unit exactly; ISO keeps the nearest 1/256 turn (code 1).
    let (_, iso_views) = iso::read(&data("iso_multi.fmr")).unwrap();
    assert!(angle_diff(iso_views[0].minutiae[0].angle, deg(1.40625)) < 1e-6);
    let (_, ansi_views) = iso::read(&data("ansi_multi.fmr")).unwrap();
    assert!(angle_diff(ansi_views[0].minutiae[0].angle, deg(2.0)) < 1e-6);
}

#[test]
fn extended_data_and_foreign_fields_are_skipped() {
    let (format, got) = iso::read(&data("iso_extended.fmr")).unwrap();
    assert_eq!(format, Format::Iso19794_2);
    assert_eq!(got.len(), 1);
    let t = &got[0];
    assert_eq!((t.width, t.height, t.resolution_ppi), (250, 300, 500));
    assert_eq!((t.position, t.quality), (FingerPosition::LeftIndex, 42));
    assert_eq!(t.minutiae.len(), 1);
    let m = t.minutiae[0];
    assert_eq!(
        (m.x, m.y, m.kind, m.quality),
        (5.0, 6.0, MinutiaKind::Ending, 77)
    );
    assert!(angle_diff(m.angle, 200.0 * TAU / 256.0) < 1e-6);
}

#[test]
fn every_truncation_is_an_error() {
    let mut records = vec![
        data("iso_single.fmr"),
        data("ansi_single.fmr"),
        data("iso_multi.fmr"),
        data("ansi_multi.fmr"),
        data("iso_extended.fmr"),
    ];
    records.push(iso::write(&multi(), Format::Ansi378).unwrap());
    for bytes in &records {
        assert!(iso::read(bytes).is_ok());
        for n in 0..bytes.len() {
            assert!(iso::read(&bytes[..n]).is_err(), "prefix of {n} bytes read");
        }
    }
}

#[test]
fn truncated_fields_report_truncation_when_length_agrees() {
    // Cut the last minutia short but fix the length field, so the view parser runs out.
    let mut bytes = data("iso_single.fmr");
    bytes.truncate(bytes.len() - 5);
    let len = bytes.len() as u32;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(iso::read(&bytes), Err(RecordError::Truncated(_))));
}

/// Sets the record length field of an ISO record to its actual length.
fn fix_iso_length(bytes: &mut [u8]) {
    let len = bytes.len() as u32;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
}

#[test]
fn corrupt_fields_are_refused() {
    let base = data("iso_single.fmr");
    let first_minutia = 24 + 4;
    let field = |at: usize, value: u8| {
        let mut b = base.clone();
        b[at] = value;
        iso::read(&b)
    };
    let is_field = |r: Result<_, RecordError>, name: &str| matches!(r, Err(RecordError::Field { field, .. }) if field == name);
    assert!(is_field(field(24, 11), "finger position"));
    assert!(is_field(field(26, 101), "finger quality"));
    assert!(is_field(field(first_minutia, 0xC0), "minutia type"));
    assert!(is_field(field(first_minutia + 5, 101), "minutia quality"));
    assert!(matches!(
        field(21, 0xC6),
        Err(RecordError::AnisotropicResolution { x: 197, y: 198 })
    ));
    let mut zero = base.clone();
    zero[18..22].copy_from_slice(&[0, 0, 0, 0]);
    assert!(is_field(iso::read(&zero), "resolution"));

    // ANSI angles stop at 179 (358 degrees).
    let mut ansi = data("ansi_single.fmr");
    ansi[26 + 4 + 4] = 180;
    assert!(is_field(iso::read(&ansi), "minutia angle"));
    ansi[26 + 4 + 4] = 179;
    assert!(iso::read(&ansi).is_ok());

    // Declared length must match.
    let mut long = base.clone();
    long.push(0);
    assert!(matches!(
        iso::read(&long),
        Err(RecordError::Length {
            declared: 48,
            actual: 49
        })
    ));
    // Bytes after the last view, with a length that covers them.
    fix_iso_length(&mut long);
    assert_eq!(iso::read(&long), Err(RecordError::TrailingBytes(1)));

    // A view count the bytes cannot hold.
    let mut views = base.clone();
    views[22] = 200;
    assert!(matches!(iso::read(&views), Err(RecordError::Truncated(_))));

    // A minutiae count the bytes cannot hold is refused before reading them.
    let mut count = base.clone();
    count[27] = 255;
    assert_eq!(iso::read(&count), Err(RecordError::Truncated("minutiae")));

    // Extended data longer than the record.
    let mut ext = base;
    let n = ext.len();
    ext[n - 2..].copy_from_slice(&[0xFF, 0xFF]);
    assert_eq!(
        iso::read(&ext),
        Err(RecordError::Truncated("extended data"))
    );

    assert_eq!(iso::read(b"GIF89a"), Err(RecordError::NotARecord));
    assert_eq!(
        iso::read(b""),
        Err(RecordError::Truncated("format identifier"))
    );
    assert_eq!(
        iso::read(b"FMR"),
        Err(RecordError::Truncated("format identifier"))
    );
    assert!(matches!(
        iso::read(b"FMR\0 21\0\0\0\0\x18"),
        Err(RecordError::NotARecord)
    ));
}

#[test]
fn detection() {
    assert_eq!(
        iso::detect(&data("iso_single.fmr")),
        Some(Format::Iso19794_2)
    );
    assert_eq!(
        iso::detect(&data("iso_multi.fmr")),
        Some(Format::Iso19794_2)
    );
    assert_eq!(
        iso::detect(&data("iso_extended.fmr")),
        Some(Format::Iso19794_2)
    );
    assert_eq!(iso::detect(&data("ansi_single.fmr")), Some(Format::Ansi378));
    assert_eq!(iso::detect(&data("ansi_multi.fmr")), Some(Format::Ansi378));
    // Without the full record the length field's value still decides.
    assert_eq!(
        iso::detect(&data("iso_single.fmr")[..12]),
        Some(Format::Iso19794_2)
    );
    assert_eq!(
        iso::detect(&data("ansi_single.fmr")[..12]),
        Some(Format::Ansi378)
    );
    assert_eq!(iso::detect(b"FMR\0 20\0\0"), None);
    assert_eq!(iso::detect(b"\xff\xa0\xff\xa8"), None);
    assert_eq!(iso::detect(b""), None);
}

/// Many full views: past 0xFFFF bytes ANSI switches to `00 00` + a 4-byte length.
fn big(format: Format) -> Vec<FingerTemplate> {
    let minutiae: Vec<Minutia> = (0..255)
        .map(|i| {
            let f = i as f32;
            Minutia::new(
                f * 3.0,
                f * 2.0,
                f * 0.1,
                MinutiaKind::Ending,
                (i % 101) as u8,
            )
        })
        .collect();
    let n = match format {
        Format::Ansi378 => 43,
        Format::Iso19794_2 => 176,
    };
    (0..n)
        .map(|i| FingerTemplate {
            width: 800,
            height: 800,
            resolution_ppi: 500,
            position: FingerPosition::ALL[i % 11],
            quality: 50,
            minutiae: minutiae.clone(),
        })
        .collect()
}

#[test]
fn ansi_long_length_form() {
    let views = big(Format::Ansi378);
    let bytes = iso::write(&views, Format::Ansi378).unwrap();
    let body = 43 * (4 + 255 * 6 + 2);
    assert_eq!(bytes.len(), 30 + body);
    assert!(26 + body > 0xFFFF);
    assert_eq!(&bytes[8..10], &[0, 0]);
    assert_eq!(
        u32::from_be_bytes(bytes[10..14].try_into().unwrap()) as usize,
        bytes.len()
    );
    assert_eq!(&bytes[14..18], &[0x01, 0x03, 0x00, 0x00]);
    assert_eq!(iso::detect(&bytes), Some(Format::Ansi378));
    let (format, got) = iso::read(&bytes).unwrap();
    assert_eq!(format, Format::Ansi378);
    assert_quantised(&got, &views, format);
    assert_eq!(iso::write(&got, Format::Ansi378).unwrap(), bytes);

    // The largest record this writer can make: 176 full views (16 of each finger).
    let views = big(Format::Iso19794_2);
    let bytes = iso::write(&views, Format::Iso19794_2).unwrap();
    assert_eq!(iso::detect(&bytes), Some(Format::Iso19794_2));
    let (_, got) = iso::read(&bytes).unwrap();
    assert_quantised(&got, &views, Format::Iso19794_2);
}

#[test]
fn writer_refuses_what_the_record_cannot_hold() {
    let t = single();
    for format in [Format::Iso19794_2, Format::Ansi378] {
        assert_eq!(iso::write(&[], format), Err(RecordError::NoTemplates));

        let mut many = t.clone();
        many.minutiae = vec![Minutia::new(1.0, 1.0, 0.0, MinutiaKind::Ending, 1); 256];
        assert_eq!(
            iso::write(&[t.clone(), many], format),
            Err(RecordError::TooManyMinutiae {
                view: 1,
                count: 256
            })
        );

        for (x, ok) in [
            (16383.4, true),
            (16383.5, false),
            (-0.4, true),
            (-0.6, false),
            (f32::NAN, false),
            (f32::INFINITY, false),
        ] {
            let mut c = t.clone();
            c.minutiae[1].y = x;
            let r = iso::write(&[c], format);
            assert_eq!(r.is_ok(), ok, "y = {x}: {r:?}");
            if !ok {
                assert!(matches!(
                    r,
                    Err(RecordError::Coordinate {
                        view: 0,
                        index: 1,
                        ..
                    })
                ));
            }
        }

        let mut angle = t.clone();
        angle.minutiae[0].angle = f32::NAN;
        assert!(iso::write(&[angle], format).is_err());

        let mut q = t.clone();
        q.quality = 101;
        assert!(iso::write(&[q], format).is_err());
        let mut q = t.clone();
        q.minutiae[0].quality = 200;
        assert!(iso::write(&[q], format).is_err());

        let mut ppi = t.clone();
        ppi.resolution_ppi = 1000;
        assert!(matches!(
            iso::write(&[t.clone(), ppi], format),
            Err(RecordError::MixedResolution { view: 1, .. })
        ));
        let mut zero = t.clone();
        zero.resolution_ppi = 0;
        assert!(iso::write(&[zero], format).is_err());

        // Sixteen views of one finger fit the 4-bit view number; seventeen do not.
        let sixteen = vec![t.clone(); 16];
        let bytes = iso::write(&sixteen, format).unwrap();
        assert_eq!(iso::read(&bytes).unwrap().1.len(), 16);
        assert!(matches!(
            iso::write(&vec![t.clone(); 17], format),
            Err(RecordError::TooManyViews { .. })
        ));
        // So a record holds at most 11 x 16 = 176 views, below the 255 of the count byte.
        let spread = |n: usize| -> Vec<FingerTemplate> {
            (0..n)
                .map(|i| FingerTemplate {
                    position: FingerPosition::ALL[i % 11],
                    minutiae: vec![],
                    ..t.clone()
                })
                .collect()
        };
        assert_eq!(
            iso::read(&iso::write(&spread(176), format).unwrap())
                .unwrap()
                .1
                .len(),
            176
        );
        assert!(matches!(
            iso::write(&spread(177), format),
            Err(RecordError::TooManyViews { count: 17 })
        ));
        assert!(matches!(
            iso::write(&spread(256), format),
            Err(RecordError::TooManyViews { count: 256 })
        ));
    }
}

#[test]
fn view_numbers_count_per_finger() {
    let bytes = iso::write(&multi(), Format::Iso19794_2).unwrap();
    // View header bytes: position, view number << 4 | impression type.
    assert_eq!(&bytes[24..26], &[6, 0x00]);
    assert_eq!(&bytes[36..38], &[6, 0x10]);
    assert_eq!(&bytes[42..44], &[1, 0x00]);
}

fn arb_minutia() -> impl Strategy<Value = Minutia> {
    (
        0.0f32..16383.49,
        0.0f32..16383.49,
        0.0f32..TAU,
        0u8..3,
        0u8..=100,
    )
        .prop_map(|(x, y, a, k, q)| Minutia::new(x, y, a, MinutiaKind::from_code(k).unwrap(), q))
}

fn arb_templates() -> impl Strategy<Value = Vec<FingerTemplate>> {
    let view = (
        0u8..=10,
        0u8..=100,
        proptest::collection::vec(arb_minutia(), 0..40),
    );
    (
        1u16..=u16::MAX,
        1u16..=u16::MAX,
        // Every multiple of 5 reads back exactly; 500 and 1000 are what sensors use.
        (1u16..=13107).prop_map(|k| k * 5),
        proptest::collection::vec(view, 1..5),
    )
        .prop_map(|(width, height, ppi, views)| {
            views
                .into_iter()
                .map(|(p, quality, minutiae)| FingerTemplate {
                    width,
                    height,
                    resolution_ppi: ppi,
                    position: FingerPosition::from_code(p).unwrap(),
                    quality,
                    minutiae,
                })
                .collect()
        })
}

proptest! {
    #[test]
    fn round_trip_within_quantisation(views in arb_templates(), ansi in any::<bool>()) {
        let format = if ansi { Format::Ansi378 } else { Format::Iso19794_2 };
        let bytes = iso::write(&views, format).unwrap();
        prop_assert_eq!(iso::detect(&bytes), Some(format));
        let (got_format, got) = iso::read(&bytes).unwrap();
        prop_assert_eq!(got_format, format);
        assert_quantised(&got, &views, format);
        // Once quantised, a template survives further trips unchanged.
        let again = iso::write(&got, format).unwrap();
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(iso::read(&again).unwrap().1, got);
    }

    #[test]
    fn other_ppi_read_back_to_the_same_record(ppi in 2u16..=u16::MAX) {
        let t = FingerTemplate { resolution_ppi: ppi, ..single() };
        let bytes = iso::write(&[t], Format::Iso19794_2).unwrap();
        let (_, got) = iso::read(&bytes).unwrap();
        // Both lie among the ppi values that share one ppcm, which span less than 2.54.
        prop_assert!(got[0].resolution_ppi.abs_diff(ppi) <= 2);
        prop_assert_eq!(iso::write(&got, Format::Iso19794_2).unwrap(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), ansi in any::<bool>()) {
        // Behind a valid header so the parser gets past the magic.
        let mut bytes = b"FMR\0 20\0".to_vec();
        let len = 8 + if ansi { 2 } else { 4 } + tail.len();
        if ansi {
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            bytes.extend_from_slice(&(len as u32).to_be_bytes());
        }
        bytes.extend_from_slice(&tail);
        let _ = iso::read(&bytes);
        let _ = iso::read(&tail);
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/finger_template")
}

/// Replays the `finger_template` fuzz corpus (`fuzz/corpus/finger_template/`): every file
/// must return; one that reads must survive a write and read back unchanged, as the fuzz
/// target asserts.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = corpus_dir();
    let mut seen = 0;
    let mut read_ok = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("directory entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read corpus file");
        let _ = iso::detect(&bytes);
        if let Ok((format, views)) = iso::read(&bytes) {
            read_ok += 1;
            if let Ok(again) = iso::write(&views, format) {
                assert_eq!(
                    iso::read(&again).unwrap(),
                    (format, views),
                    "{}",
                    path.display()
                );
            }
        }
        seen += 1;
    }
    assert!(seen >= 5, "expected the seed files in {}", dir.display());
    assert!(read_ok >= 1, "no corpus file is a valid record");
}

//! ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 records: hand-built golden fixtures read and
//! written byte for byte, round trips within the documented quantisation, truncation and
//! corruption refused, format detection, extended data (ridge counts, cores and deltas,
//! vendor blocks) parsed, validated and written back, and a replay of the `finger_template`
//! fuzz corpus.
#![allow(clippy::unwrap_used)]

use ipseity_finger::iso::{
    self, Core, CoresAndDeltas, Delta, ExtendedBlock, ExtendedData, Format, RecordError,
    RidgeCount, RidgeCountMethod, RidgeCounts,
};
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
    let (_, with) = iso::read_with_extended(&data("iso_extended.fmr")).unwrap();
    assert_eq!(
        with[0].1.blocks,
        vec![ExtendedBlock::RidgeCounts(RidgeCounts {
            method: RidgeCountMethod::NonSpecific,
            counts: vec![RidgeCount {
                from: 0,
                to: 0,
                ridges: 0
            }],
        })]
    );
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
        data("iso_extended_blocks.fmr"),
        data("ansi_extended_blocks.fmr"),
    ];
    records.push(iso::write(&multi(), Format::Ansi378).unwrap());
    for bytes in &records {
        assert!(iso::read(bytes).is_ok());
        assert!(iso::read_with_extended(bytes).is_ok());
        for n in 0..bytes.len() {
            assert!(iso::read(&bytes[..n]).is_err(), "prefix of {n} bytes read");
            assert!(iso::read_with_extended(&bytes[..n]).is_err());
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
/// must return; one that reads must survive a write and read back unchanged, with and
/// without its extended data, as the fuzz target asserts.
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
        // As the fuzz target asserts, both readers accept the same records.
        assert_eq!(
            iso::read(&bytes).is_ok(),
            iso::read_with_extended(&bytes).is_ok(),
            "{}",
            path.display()
        );
        if let Ok((format, views)) = iso::read_with_extended(&bytes) {
            if let Ok(again) = iso::write_with_extended(&views, format) {
                assert_eq!(
                    iso::read_with_extended(&again).unwrap(),
                    (format, views),
                    "{}",
                    path.display()
                );
            }
        }
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

/// The extended data of `iso_extended_blocks.fmr` (see tests/data/iso/README.md).
fn iso_blocks() -> ExtendedData {
    ExtendedData {
        blocks: vec![
            ExtendedBlock::RidgeCounts(RidgeCounts {
                method: RidgeCountMethod::FourNeighbour,
                counts: vec![
                    RidgeCount {
                        from: 1,
                        to: 2,
                        ridges: 3,
                    },
                    RidgeCount {
                        from: 1,
                        to: 3,
                        ridges: 5,
                    },
                    RidgeCount {
                        from: 2,
                        to: 0,
                        ridges: 0,
                    },
                ],
            }),
            ExtendedBlock::CoresAndDeltas(CoresAndDeltas {
                cores: vec![
                    Core {
                        x: 120,
                        y: 150,
                        angle: Some(64),
                    },
                    Core {
                        x: 130,
                        y: 200,
                        angle: None,
                    },
                ],
                deltas: vec![Delta {
                    x: 60,
                    y: 300,
                    angles: Some([10, 100, 200]),
                }],
            }),
            ExtendedBlock::Vendor {
                type_code: 0x1234,
                data: vec![0xAB, 0xCD, 0xEF],
            },
        ],
    }
}

/// The two views of `ansi_extended_blocks.fmr`.
fn ansi_blocks() -> Vec<(FingerTemplate, ExtendedData)> {
    let first = ExtendedData {
        blocks: vec![
            ExtendedBlock::RidgeCounts(RidgeCounts {
                method: RidgeCountMethod::EightNeighbour,
                counts: vec![RidgeCount {
                    from: 3,
                    to: 1,
                    ridges: 7,
                }],
            }),
            ExtendedBlock::CoresAndDeltas(CoresAndDeltas {
                cores: vec![
                    Core {
                        x: 120,
                        y: 150,
                        angle: Some(32),
                    },
                    Core {
                        x: 130,
                        y: 200,
                        angle: Some(179),
                    },
                ],
                deltas: vec![Delta {
                    x: 60,
                    y: 300,
                    angles: None,
                }],
            }),
        ],
    };
    let second = ExtendedData {
        blocks: vec![ExtendedBlock::Vendor {
            type_code: 3,
            data: vec![],
        }],
    };
    let empty = FingerTemplate {
        quality: 0,
        minutiae: vec![],
        ..single()
    };
    vec![(single(), first), (empty, second)]
}

#[test]
fn golden_extended_blocks_iso() {
    let bytes = data("iso_extended_blocks.fmr");
    let (format, got) = iso::read_with_extended(&bytes).unwrap();
    assert_eq!(format, Format::Iso19794_2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, iso_blocks());
    assert_quantised(&[got[0].0.clone()], &[single()], format);
    assert_eq!(
        iso::write_with_extended(&[(single(), iso_blocks())], format).unwrap(),
        bytes
    );
    assert_eq!(iso::write_with_extended(&got, format).unwrap(), bytes);
    // The plain reader gives the same templates; the plain writer drops the blocks.
    let (_, plain) = iso::read(&bytes).unwrap();
    assert_eq!(plain, vec![got[0].0.clone()]);
    assert_eq!(iso::write(&plain, format).unwrap(), data("iso_single.fmr"));
    let ext = &got[0].1;
    assert_eq!(ext.ridge_counts().map(|r| r.counts.len()), Some(3));
    assert_eq!(ext.cores().count(), 2);
    assert_eq!(ext.deltas().count(), 1);
}

#[test]
fn golden_extended_blocks_ansi() {
    let bytes = data("ansi_extended_blocks.fmr");
    let (format, got) = iso::read_with_extended(&bytes).unwrap();
    assert_eq!(format, Format::Ansi378);
    let want = ansi_blocks();
    assert_eq!(got.len(), 2);
    for ((gt, ge), (wt, we)) in got.iter().zip(&want) {
        assert_eq!(ge, we);
        assert_quantised(std::slice::from_ref(gt), std::slice::from_ref(wt), format);
    }
    assert_eq!(iso::write_with_extended(&want, format).unwrap(), bytes);
    assert_eq!(iso::write_with_extended(&got, format).unwrap(), bytes);
}

/// `base` (a one-view record from this module, ending in its `00 00` extended data length)
/// with `area` as that view's extended data and the record length fixed.
fn with_area(base: &[u8], area: &[u8]) -> Vec<u8> {
    let mut b = base[..base.len() - 2].to_vec();
    b.extend_from_slice(&(area.len() as u16).to_be_bytes());
    b.extend_from_slice(area);
    let len = b.len();
    if iso::detect(base) == Some(Format::Ansi378) {
        b[8..10].copy_from_slice(&(len as u16).to_be_bytes());
    } else {
        b[8..12].copy_from_slice(&(len as u32).to_be_bytes());
    }
    b
}

/// The extended data area of a one-view fixture.
fn area_of(bytes: &[u8], header: usize) -> Vec<u8> {
    let count = usize::from(bytes[header + 3]);
    let at = header + 4 + 6 * count + 2;
    bytes[at..].to_vec()
}

#[test]
fn every_truncation_of_the_extended_area_is_an_error() {
    // Record and area lengths agree with the bytes, so only the block structure can tell.
    // A cut at a block boundary is a shorter valid area holding the leading blocks; a cut
    // anywhere else is an error.
    let iso_base = data("iso_single.fmr");
    let ansi_base = data("ansi_single.fmr");
    let iso_area = area_of(&data("iso_extended_blocks.fmr"), 24);
    let ansi_area = area_of(&data("ansi_extended_blocks.fmr"), 26);
    // View 1's area runs up to view 2's header and area (10 bytes from the end).
    let ansi_area = &ansi_area[..ansi_area.len() - 10];
    for (base, area, boundaries) in [
        (&iso_base, &iso_area[..], vec![0, 14, 36, 43]),
        (&ansi_base, ansi_area, vec![0, 8, 28]),
    ] {
        let (_, full) = iso::read_with_extended(&with_area(base, area)).unwrap();
        let blocks = &full[0].1.blocks;
        assert_eq!(blocks.len(), boundaries.len() - 1);
        for n in 0..=area.len() {
            let cut = with_area(base, &area[..n]);
            match boundaries.iter().position(|&b| b == n) {
                Some(k) => {
                    let (_, got) = iso::read_with_extended(&cut).unwrap();
                    assert_eq!(got[0].1.blocks, blocks[..k], "cut at {n}");
                }
                None => {
                    assert!(iso::read(&cut).is_err(), "area cut to {n} bytes read");
                    assert!(iso::read_with_extended(&cut).is_err());
                }
            }
        }
    }
}

#[test]
fn malformed_blocks_are_refused() {
    let iso_base = data("iso_single.fmr"); // 3 minutiae
    let ansi_base = data("ansi_single.fmr");
    let read = |area: &[u8]| iso::read_with_extended(&with_area(&iso_base, area));
    let read_ansi = |area: &[u8]| iso::read_with_extended(&with_area(&ansi_base, area));
    let is_field = |r: Result<_, RecordError>, name: &str| matches!(r, Err(RecordError::Field { field, .. }) if field == name);

    // Sanity: a well-formed vendor block reads, in both formats.
    assert!(read(&[0x00, 0x03, 0x00, 0x05, 0x77]).is_ok());
    assert!(read_ansi(&[0x00, 0x03, 0x00, 0x05, 0x77]).is_ok());

    // Block lengths under 4, or past the area.
    for len in 0u8..4 {
        assert!(matches!(
            read(&[0x00, 0x03, 0x00, len, 0x77]),
            Err(RecordError::ExtendedBlockLength {
                view: 0,
                type_code: Some(3),
                ..
            })
        ));
    }
    assert!(matches!(
        read(&[0x00, 0x03, 0x00, 0x06, 0x77]),
        Err(RecordError::ExtendedBlockLength {
            length: 6,
            available: 5,
            ..
        })
    ));
    // Blocks that stop short of the area's end leave a partial header behind.
    for tail in 1..4 {
        let mut area = vec![0x00, 0x03, 0x00, 0x04];
        area.extend(std::iter::repeat_n(0u8, tail));
        assert!(matches!(
            read(&area),
            Err(RecordError::ExtendedBlockLength {
                type_code: None,
                ..
            })
        ));
    }
    // Reserved type code 0.
    assert!(is_field(read(&[0, 0, 0, 4]), "extended data type"));

    // Ridge counts: method, whole entries, indices 0..=3 for three minutiae.
    assert!(read(&[0, 1, 0, 4]).is_err());
    assert!(read(&[0, 1, 0, 5, 2]).is_ok());
    assert!(is_field(
        read(&[0, 1, 0, 5, 3]),
        "ridge count extraction method"
    ));
    assert!(matches!(
        read(&[0, 1, 0, 7, 0, 1, 2]),
        Err(RecordError::ExtendedBlockContent { .. })
    ));
    assert!(read(&[0, 1, 0, 8, 0, 3, 0, 9]).is_ok());
    assert_eq!(
        read(&[0, 1, 0, 8, 0, 4, 1, 9]),
        Err(RecordError::RidgeCountIndex {
            view: 0,
            index: 4,
            minutiae: 3
        })
    );
    assert!(matches!(
        read(&[0, 1, 0, 8, 0, 1, 255, 9]),
        Err(RecordError::RidgeCountIndex { index: 255, .. })
    ));
    // A view without minutiae admits only index 0.
    let empty = iso::write(
        &[FingerTemplate {
            minutiae: vec![],
            ..single()
        }],
        Format::Iso19794_2,
    )
    .unwrap();
    assert!(iso::read(&with_area(&empty, &[0, 1, 0, 8, 0, 0, 0, 0])).is_ok());
    assert!(iso::read(&with_area(&empty, &[0, 1, 0, 8, 0, 1, 0, 0])).is_err());

    // Core and delta data, ISO: 0 cores and 0 deltas is 2 bytes.
    assert!(read(&[0, 2, 0, 6, 0, 0]).is_ok());
    assert!(read(&[0, 2, 0, 5, 0]).is_err());
    assert!(matches!(
        read(&[0, 2, 0, 7, 0, 0, 0]),
        Err(RecordError::ExtendedBlockContent { .. })
    ));
    // A core without angle, then with its angle cut off by the block length.
    assert!(read(&[0, 2, 0, 10, 1, 0x00, 5, 0, 6, 0]).is_ok());
    assert!(read(&[0, 2, 0, 10, 1, 0x40, 5, 0, 6, 0]).is_err());
    assert!(read(&[0, 2, 0, 11, 1, 0x40, 5, 0, 6, 200, 0]).is_ok());
    assert!(is_field(
        read(&[0, 2, 0, 10, 1, 0x80, 5, 0, 6, 0]),
        "core type"
    ));
    assert!(is_field(
        read(&[0, 2, 0, 10, 1, 0xC0, 5, 0, 6, 0]),
        "core type"
    ));
    assert!(is_field(
        read(&[0, 2, 0, 10, 1, 0x00, 5, 0x40, 6, 0]),
        "core or delta reserved bits"
    ));
    assert!(is_field(read(&[0, 2, 0, 6, 64, 0]), "number of cores"));
    assert!(is_field(read(&[0, 2, 0, 6, 0, 64]), "number of deltas"));
    assert!(is_field(
        read(&[0, 2, 0, 10, 0, 1, 0x80, 5, 0, 6]),
        "delta type"
    ));
    // A count the block cannot hold.
    assert!(matches!(
        read(&[0, 2, 0, 6, 63, 0]),
        Err(RecordError::Truncated(_))
    ));

    // Core and delta data, ANSI: flag and count share a byte; angles stop at 179.
    assert!(read_ansi(&[0, 2, 0, 11, 0x41, 0, 5, 0, 6, 179, 0]).is_ok());
    assert!(is_field(
        read_ansi(&[0, 2, 0, 11, 0x41, 0, 5, 0, 6, 180, 0]),
        "core angle"
    ));
    assert!(is_field(read_ansi(&[0, 2, 0, 6, 0x81, 0]), "core type"));
    assert!(is_field(
        read_ansi(&[0, 2, 0, 6, 0x10, 0]),
        "number of cores"
    ));
    assert!(is_field(
        read_ansi(&[0, 2, 0, 6, 0, 0x20]),
        "number of deltas"
    ));
    assert!(is_field(
        read_ansi(&[0, 2, 0, 10, 1, 0x40, 5, 0, 6, 0]),
        "core or delta reserved bits"
    ));
    assert!(is_field(
        read_ansi(&[0, 2, 0, 13, 0, 0x41, 0, 5, 0, 6, 1, 2, 190]),
        "delta angle"
    ));
    // ISO takes 190 as an angle code (1/256 turn units), so the same bytes differ only in
    // where the angle flag lives.
    assert!(read(&[0, 2, 0, 13, 0, 1, 0x40, 5, 0, 6, 1, 2, 190]).is_ok());
    // The ANSI angle flag on an empty list reads, and is written back without it.
    let (format, got) = read_ansi(&[0, 2, 0, 6, 0x40, 0x40]).unwrap();
    assert_eq!(
        got[0].1.blocks,
        vec![ExtendedBlock::CoresAndDeltas(CoresAndDeltas::default())]
    );
    assert_eq!(
        iso::write_with_extended(&got, format).unwrap(),
        with_area(&ansi_base, &[0, 2, 0, 6, 0, 0])
    );

    // Errors name the view they were found in.
    let mut two = vec![(single(), ExtendedData::default()); 2];
    two[1].1 = iso_blocks();
    let bytes = iso::write_with_extended(&two, Format::Iso19794_2).unwrap();
    let mut bad = bytes.clone();
    let at = bad.len() - iso_blocks_len() + 4 + 1 + 3; // view 2, first ridge count entry
    bad[at] = 9;
    assert_eq!(
        iso::read(&bad),
        Err(RecordError::RidgeCountIndex {
            view: 1,
            index: 9,
            minutiae: 3
        })
    );
}

/// Bytes of the `iso_blocks()` area.
fn iso_blocks_len() -> usize {
    14 + 22 + 7
}

#[test]
fn writer_refuses_extended_data_it_cannot_encode() {
    let t = single();
    let one = |ext: ExtendedData, format| iso::write_with_extended(&[(t.clone(), ext)], format);
    let block = |b: ExtendedBlock| ExtendedData { blocks: vec![b] };
    let core = |angle| Core { x: 1, y: 2, angle };
    let points = |cores: Vec<Core>| {
        block(ExtendedBlock::CoresAndDeltas(CoresAndDeltas {
            cores,
            deltas: vec![],
        }))
    };
    for format in [Format::Iso19794_2, Format::Ansi378] {
        for code in [0u16, 1, 2] {
            assert!(matches!(
                one(
                    block(ExtendedBlock::Vendor {
                        type_code: code,
                        data: vec![]
                    }),
                    format
                ),
                Err(RecordError::Field {
                    field: "extended data type",
                    ..
                })
            ));
        }
        assert!(one(
            block(ExtendedBlock::Vendor {
                type_code: 3,
                data: vec![0; 65531]
            }),
            format
        )
        .is_ok());
        assert!(matches!(
            one(
                block(ExtendedBlock::Vendor {
                    type_code: 3,
                    data: vec![0; 65532]
                }),
                format
            ),
            Err(RecordError::ExtendedTooLong {
                view: 0,
                length: 65536
            })
        ));
        let two = ExtendedData {
            blocks: vec![
                ExtendedBlock::Vendor {
                    type_code: 3,
                    data: vec![0; 40000],
                },
                ExtendedBlock::Vendor {
                    type_code: 4,
                    data: vec![0; 40000],
                },
            ],
        };
        assert!(matches!(
            one(two, format),
            Err(RecordError::ExtendedTooLong { .. })
        ));
        let rc = |to| {
            block(ExtendedBlock::RidgeCounts(RidgeCounts {
                method: RidgeCountMethod::NonSpecific,
                counts: vec![RidgeCount {
                    from: 1,
                    to,
                    ridges: 2,
                }],
            }))
        };
        assert!(one(rc(3), format).is_ok());
        assert!(matches!(
            one(rc(4), format),
            Err(RecordError::RidgeCountIndex {
                view: 0,
                index: 4,
                minutiae: 3
            })
        ));
        let far = Core {
            x: 16384,
            y: 0,
            angle: None,
        };
        assert!(matches!(
            one(points(vec![far]), format),
            Err(RecordError::Field {
                field: "core or delta coordinate",
                ..
            })
        ));
    }
    // Limits differ: 63 ISO points, 15 ANSI, and ANSI angles stop at 179.
    assert!(one(points(vec![core(Some(255)); 63]), Format::Iso19794_2).is_ok());
    assert!(matches!(
        one(points(vec![core(None); 64]), Format::Iso19794_2),
        Err(RecordError::TooManyPoints {
            what: "cores",
            count: 64,
            max: 63,
            ..
        })
    ));
    assert!(one(points(vec![core(Some(179)); 15]), Format::Ansi378).is_ok());
    assert!(matches!(
        one(points(vec![core(None); 16]), Format::Ansi378),
        Err(RecordError::TooManyPoints {
            count: 16,
            max: 15,
            ..
        })
    ));
    assert!(matches!(
        one(points(vec![core(Some(180))]), Format::Ansi378),
        Err(RecordError::Field {
            field: "core angle",
            ..
        })
    ));
    // ISO flags each point; ANSI has one flag per list.
    let mixed = points(vec![core(Some(3)), core(None)]);
    assert!(one(mixed.clone(), Format::Iso19794_2).is_ok());
    assert!(matches!(
        one(mixed, Format::Ansi378),
        Err(RecordError::MixedAngles {
            view: 0,
            what: "cores"
        })
    ));
    let deltas = block(ExtendedBlock::CoresAndDeltas(CoresAndDeltas {
        cores: vec![],
        deltas: vec![
            Delta {
                x: 1,
                y: 1,
                angles: None,
            },
            Delta {
                x: 1,
                y: 1,
                angles: Some([1, 2, 3]),
            },
        ],
    }));
    assert!(matches!(
        one(deltas, Format::Ansi378),
        Err(RecordError::MixedAngles { what: "deltas", .. })
    ));
}

fn arb_extended(minutiae: usize, ansi: bool) -> impl Strategy<Value = ExtendedData> {
    let index = 0..=(minutiae as u8);
    let max_angle = if ansi { 179u8 } else { 255 };
    let max_points = if ansi { 15 } else { 63 };
    let ridge_counts = (
        0u8..3,
        proptest::collection::vec((index.clone(), index, any::<u8>()), 0..20),
    )
        .prop_map(|(m, counts)| {
            ExtendedBlock::RidgeCounts(RidgeCounts {
                method: RidgeCountMethod::from_code(m).unwrap(),
                counts: counts
                    .into_iter()
                    .map(|(from, to, ridges)| RidgeCount { from, to, ridges })
                    .collect(),
            })
        });
    let coordinate = 0u16..=16383;
    let core = (
        coordinate.clone(),
        coordinate.clone(),
        0..=max_angle,
        any::<bool>(),
    );
    let delta = (
        coordinate.clone(),
        coordinate,
        proptest::array::uniform3(0..=max_angle),
        any::<bool>(),
    );
    let cores_and_deltas = (
        proptest::collection::vec(core, 0..=max_points.min(20)),
        proptest::collection::vec(delta, 0..=max_points.min(20)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(cores, deltas, core_angles, delta_angles)| {
            // ANSI: one flag per list; ISO: each point its own.
            ExtendedBlock::CoresAndDeltas(CoresAndDeltas {
                cores: cores
                    .into_iter()
                    .map(|(x, y, a, own)| Core {
                        x,
                        y,
                        angle: (if ansi { core_angles } else { own }).then_some(a),
                    })
                    .collect(),
                deltas: deltas
                    .into_iter()
                    .map(|(x, y, a, own)| Delta {
                        x,
                        y,
                        angles: (if ansi { delta_angles } else { own }).then_some(a),
                    })
                    .collect(),
            })
        });
    let vendor = (
        3u16..=u16::MAX,
        proptest::collection::vec(any::<u8>(), 0..30),
    )
        .prop_map(|(type_code, data)| ExtendedBlock::Vendor { type_code, data });
    proptest::collection::vec(prop_oneof![ridge_counts, cores_and_deltas, vendor], 0..4)
        .prop_map(|blocks| ExtendedData { blocks })
}

fn arb_views_with_extended() -> impl Strategy<Value = (Vec<(FingerTemplate, ExtendedData)>, bool)> {
    (arb_templates(), any::<bool>()).prop_flat_map(|(templates, ansi)| {
        let exts: Vec<_> = templates
            .iter()
            .map(|t| arb_extended(t.minutiae.len(), ansi))
            .collect();
        (Just(templates), exts, Just(ansi))
            .prop_map(|(t, e, ansi)| (t.into_iter().zip(e).collect(), ansi))
    })
}

proptest! {
    #[test]
    fn extended_data_round_trips((views, ansi) in arb_views_with_extended()) {
        let format = if ansi { Format::Ansi378 } else { Format::Iso19794_2 };
        let bytes = iso::write_with_extended(&views, format).unwrap();
        let (got_format, got) = iso::read_with_extended(&bytes).unwrap();
        prop_assert_eq!(got_format, format);
        prop_assert_eq!(got.len(), views.len());
        for ((_, ge), (_, we)) in got.iter().zip(&views) {
            prop_assert_eq!(ge, we);
        }
        let templates: Vec<FingerTemplate> = views.iter().map(|(t, _)| t.clone()).collect();
        let got_templates: Vec<FingerTemplate> = got.iter().map(|(t, _)| t.clone()).collect();
        assert_quantised(&got_templates, &templates, format);
        prop_assert_eq!(&iso::write_with_extended(&got, format).unwrap(), &bytes);
        // The plain reader agrees on the templates.
        prop_assert_eq!(iso::read(&bytes).unwrap().1, got_templates);
    }

    #[test]
    fn arbitrary_extended_areas_never_panic(area in proptest::collection::vec(any::<u8>(), 0..80), ansi in any::<bool>()) {
        let base = if ansi { data("ansi_single.fmr") } else { data("iso_single.fmr") };
        let bytes = with_area(&base, &area);
        if let Ok((format, views)) = iso::read_with_extended(&bytes) {
            // Whatever reads writes back to a record that reads the same.
            let again = iso::write_with_extended(&views, format).unwrap();
            prop_assert_eq!(iso::read_with_extended(&again).unwrap(), (format, views));
        }
    }
}

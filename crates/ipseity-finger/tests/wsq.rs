//! Conformance of the WSQ decoder against NIST NBIS, and its refusal of malformed input.
//!
//! The fixtures in `tests/data/wsq/` were encoded and decoded by NBIS 5.0.0 (see the
//! README there and `tools/wsq/make_fixtures.sh`). Our decoder evaluates the same
//! single-precision expressions in the same order as NBIS's, so its output is expected
//! to equal NBIS's decoded PNG exactly: the tolerance is zero grey levels.

use ipseity_finger::wsq::{self, WsqError, WsqLimits};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wsq")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).expect("fixture")
}

fn gray_png(name: &str) -> image::GrayImage {
    image::open(data_dir().join(name)).expect("png").to_luma8()
}

/// name, original, NBIS's decoded image, PPI, PSNR floor in dB (see `psnr_floor`).
const FIXTURES: [(&str, &str, u16, f64); 3] = [
    (
        "ridges_400x500_r075",
        "ridges_400x500_original.png",
        500,
        34.3,
    ),
    (
        "ridges_400x500_r225",
        "ridges_400x500_original.png",
        500,
        38.9,
    ),
    (
        "ridges_253x317_r150",
        "ridges_253x317_original.png",
        1000,
        36.2,
    ),
];

fn psnr(a: &image::GrayImage, b: &image::GrayImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[test]
fn decodes_nbis_files_exactly_as_nbis_does() {
    for (name, _, ppi, _) in FIXTURES {
        let bytes = read(&format!("{name}.wsq"));
        assert!(wsq::is_wsq(&bytes));
        let ours = wsq::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let nbis = gray_png(&format!("{name}.nbis.png"));
        assert_eq!(ours.image.dimensions(), nbis.dimensions(), "{name}");
        assert_eq!(ours.ppi, Some(ppi), "{name}");
        let differing: Vec<(usize, u8, u8)> = ours
            .image
            .as_raw()
            .iter()
            .zip(nbis.as_raw())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (&a, &b))| (i, a, b))
            .collect();
        assert!(
            differing.is_empty(),
            "{name}: {} pixels differ from NBIS, first (index, ours, nbis): {:?}",
            differing.len(),
            &differing[..differing.len().min(5)]
        );
    }
}

/// The floors are the PSNR NBIS's own decoding reaches against the original
/// (35.32, 39.89 and 37.20 dB, printed by `tools/wsq/make_fixtures.py`) less 1 dB: a
/// decoder error large enough to matter (a misplaced subband, a wrong filter tap or bin
/// centre) costs several dB, while a bit-exact decoder meets the floors with room.
#[test]
fn decoded_images_are_close_to_the_originals() {
    let mut by_rate = Vec::new();
    for (name, original, _, floor) in FIXTURES {
        let ours = wsq::decode(&read(&format!("{name}.wsq"))).expect("decode");
        let p = psnr(&ours.image, &gray_png(original));
        assert!(p > floor, "{name}: PSNR {p:.2} dB is below {floor} dB");
        by_rate.push(p);
    }
    // More bits, less loss.
    assert!(by_rate[1] > by_rate[0] + 2.0, "{by_rate:?}");
}

/// Offsets of each marker in a WSQ stream, walking segment lengths and skipping
/// entropy-coded data (where 0xFF is followed by a stuffed 0x00).
fn marker_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    let mut pos = 2;
    while pos + 1 < bytes.len() {
        out.push(pos);
        let marker = u16::from_be_bytes([bytes[pos], bytes[pos + 1]]);
        if marker == 0xFFA1 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        pos += 2 + len;
        if marker == 0xFFA3 {
            while !(bytes[pos] == 0xFF && bytes[pos + 1] != 0) {
                pos += 1;
            }
        }
    }
    out
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = read("ridges_253x317_r150.wsq");
    let markers = marker_offsets(&bytes);
    // SOI, COM, DTT, DQT, DHT, SOF, then three blocks (SOB, DHT before the second) and EOI.
    assert!(markers.len() >= 9, "{markers:?}");
    assert_eq!(
        markers.last().map(|&m| &bytes[m..]),
        Some(&[0xFF, 0xA1][..])
    );
    let mut cuts: Vec<usize> = markers
        .iter()
        .flat_map(|&m| [m, m + 1, m + 2, m + 3, m + 4])
        .filter(|&c| c < bytes.len())
        .collect();
    cuts.extend((0..bytes.len()).step_by(97));
    for cut in cuts {
        assert!(
            wsq::decode(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
}

/// NBIS writes no restart markers; one placed where the first block's padding ends (a
/// byte boundary between codes, as an encoder would) must be skipped without changing a
/// pixel.
#[test]
fn restart_markers_between_codes_are_skipped() {
    let bytes = read("ridges_253x317_r150.wsq");
    let plain = wsq::decode(&bytes).expect("decode");
    let markers = marker_offsets(&bytes);
    let first_sob = markers
        .iter()
        .position(|&m| bytes[m + 1] == 0xA3)
        .expect("a block");
    let block_end = markers[first_sob + 1];
    let mut with_rst = bytes[..block_end].to_vec();
    with_rst.extend_from_slice(&[0xFF, 0xB0]);
    with_rst.extend_from_slice(&bytes[block_end..]);
    let restarted = wsq::decode(&with_rst).expect("decode with RST0");
    assert_eq!(restarted.image, plain.image);
    // A marker the format does not define inside block data is an error.
    with_rst[block_end + 1] = 0xC0;
    assert!(wsq::decode(&with_rst).is_err());
}

/// Byte offset of the first segment body after marker `marker`.
fn segment_body(bytes: &[u8], marker: u16) -> usize {
    let at = marker_offsets(bytes)
        .into_iter()
        .find(|&m| u16::from_be_bytes([bytes[m], bytes[m + 1]]) == marker)
        .expect("marker present");
    at + 4
}

#[test]
fn corrupted_huffman_tables_are_errors() {
    let bytes = read("ridges_253x317_r150.wsq");
    let dht = segment_body(&bytes, 0xFFA6);

    // Three 1-bit codes cannot exist.
    let mut oversubscribed = bytes.clone();
    oversubscribed[dht + 1] = 3;
    assert!(matches!(
        wsq::decode(&oversubscribed),
        Err(WsqError::InvalidSegment { .. })
    ));

    // Every code decoding to category 0, which the format does not define.
    let mut bad_values = bytes.clone();
    let count: usize = bytes[dht + 1..dht + 17]
        .iter()
        .map(|&c| usize::from(c))
        .sum();
    bad_values[dht + 17..dht + 17 + count].fill(0);
    assert!(matches!(
        wsq::decode(&bad_values),
        Err(WsqError::InvalidCode)
    ));

    // A block naming a table that was never defined.
    let sob = segment_body(&bytes, 0xFFA3);
    let mut undefined = bytes.clone();
    undefined[sob] = 7;
    assert!(matches!(
        wsq::decode(&undefined),
        Err(WsqError::UndefinedHuffmanTable(7))
    ));
}

#[test]
fn declared_sizes_are_checked_before_decoding() {
    let bytes = read("ridges_253x317_r150.wsq");
    let sof = segment_body(&bytes, 0xFFA2);
    let with_size = |w: u16, h: u16| {
        let mut b = bytes.clone();
        b[sof + 2..sof + 4].copy_from_slice(&h.to_be_bytes());
        b[sof + 4..sof + 6].copy_from_slice(&w.to_be_bytes());
        b
    };
    for (w, h) in [(65535, 65535), (9000, 10), (0, 317), (253, 0)] {
        assert!(
            matches!(
                wsq::decode(&with_size(w, h)),
                Err(WsqError::UnsupportedSize { .. })
            ),
            "{w}x{h}"
        );
    }
    let small = WsqLimits {
        max_side: 8192,
        max_pixels: 200 * 200,
    };
    assert!(matches!(
        wsq::decode_with_limits(&bytes, &small),
        Err(WsqError::UnsupportedSize { .. })
    ));
    // A size the data does not fill: the coefficient count no longer matches.
    assert!(matches!(
        wsq::decode(&with_size(253, 318)),
        Err(WsqError::CoefficientCount { .. })
    ));
}

#[test]
fn non_wsq_input_is_refused() {
    assert!(!wsq::is_wsq(b""));
    assert!(!wsq::is_wsq(b"\xFF\xD8\xFF\xE0"));
    assert!(matches!(wsq::decode(b"\x89PNG"), Err(WsqError::NotWsq)));
    assert!(matches!(
        wsq::decode(b"\xFF\xA0\xFF\xA1"),
        Err(WsqError::UnexpectedMarker { .. })
    ));
}

/// Replays the `wsq` fuzz corpus (`fuzz/corpus/wsq/`): every file must return, errors are
/// fine, panics are not. Crashers found by `cargo fuzz run wsq` are minimised and added
/// there, so this keeps them fixed without libFuzzer.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wsq");
    let limits = WsqLimits {
        max_side: 4096,
        max_pixels: 1 << 20,
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("directory entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read corpus file");
        let _ = wsq::decode_with_limits(&bytes, &limits);
        seen += 1;
    }
    assert!(seen >= 3, "expected the seed files in {}", dir.display());
}

#[test]
fn a_1000_ppi_wsq_is_brought_to_500_ppi() {
    use ipseity_finger::sample;
    let bytes = read("ridges_253x317_r150.wsq");
    let d = sample::decode_impression_at(&bytes, None).expect("decodes");
    assert_eq!((d.source_ppi, d.resampled), (1000, true));
    assert_eq!(d.image.dimensions(), (127, 159));
    // A caller who knows the header is wrong overrides it.
    let d = sample::decode_impression_at(&bytes, Some(500)).expect("decodes");
    assert_eq!((d.source_ppi, d.image.dimensions()), (500, (253, 317)));
    let e = sample::decode_impression_at(&bytes, Some(2000)).expect_err("refused");
    assert_eq!(ipseity_core::Classified::code(&e), "unsupported_resolution");
}

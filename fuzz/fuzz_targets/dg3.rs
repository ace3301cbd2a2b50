//! Fuzz target: DG3 (ICAO 9303 finger images) and the ISO/IEC 19794-4:2005 records in
//! it, from arbitrary bytes, as `document read` takes them: an error, never a panic or an
//! allocation beyond the input. What is accepted must hold what its header says.
#![no_main]

use ipseity_document::finger::{parse_iso19794_4, Compression, MAX_FINGERS};
use ipseity_document::{parse_dg3, ChipContents, ChipFile, FingerImage};
use ipseity_finger::wsq::{decode_with_limits, WsqLimits};
use libfuzzer_sys::fuzz_target;

fn check(fingers: &[FingerImage], input: &[u8]) {
    assert!(!fingers.is_empty() && fingers.len() <= MAX_FINGERS);
    let total: usize = fingers.iter().map(|f| f.data.len()).sum();
    assert!(total <= input.len());
    for f in fingers {
        assert!(f.width > 0 && f.height > 0 && f.ppi > 0 && !f.data.is_empty());
        // As the CLI does: a WSQ image no larger than its record states.
        if f.compression == Compression::Wsq {
            let limits = WsqLimits {
                max_side: u32::from(f.width.max(f.height)).min(1024),
                max_pixels: (u64::from(f.width) * u64::from(f.height)).min(1 << 18),
            };
            let _ = decode_with_limits(&f.data, &limits);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = parse_dg3(data) {
        check(&f, data);
    }
    if let Ok(f) = parse_iso19794_4(data) {
        check(&f, data);
    }
    let c = ChipContents::read([(ChipFile::Dg(3), data)]);
    assert!(c.dg3.is_some());
});

//! Fuzz target: the ISO/IEC 19794-2 and ANSI INCITS 378 record reader must reject bad bytes with an error, never panic, and whatever it accepts must write and read back unchanged.
#![no_main]

use ipseity_finger::iso;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let detected = iso::detect(data);
    if let Ok((format, views)) = iso::read(data) {
        assert_eq!(detected, Some(format));
        // A record with no views, or more than 16 views of one finger, has no writable form.
        if let Ok(again) = iso::write(&views, format) {
            assert_eq!(iso::read(&again).ok(), Some((format, views)));
        }
    }
});

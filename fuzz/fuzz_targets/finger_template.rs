//! Fuzz target: the ISO/IEC 19794-2 and ANSI INCITS 378 record reader must reject bad bytes with an error, never panic, and whatever it accepts must write and read back unchanged, with and without each view's extended data.
#![no_main]

use ipseity_finger::iso;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let detected = iso::detect(data);
    let with_extended = iso::read_with_extended(data);
    if let Ok((format, views)) = iso::read(data) {
        assert_eq!(detected, Some(format));
        // A record with no views, or more than 16 views of one finger, has no writable form.
        if let Ok(again) = iso::write(&views, format) {
            assert_eq!(iso::read(&again).ok(), Some((format, views.clone())));
        }
        // Both readers accept the same records and agree on the templates.
        let Ok((ext_format, ext_views)) = with_extended else {
            panic!("read accepted a record read_with_extended refused");
        };
        assert_eq!(ext_format, format);
        assert!(ext_views.iter().map(|(t, _)| t).eq(views.iter()));
        if let Ok(again) = iso::write_with_extended(&ext_views, format) {
            assert_eq!(
                iso::read_with_extended(&again).ok(),
                Some((format, ext_views))
            );
        }
    } else {
        assert!(with_extended.is_err());
    }
});

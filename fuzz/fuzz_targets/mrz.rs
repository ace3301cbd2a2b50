//! Fuzz target: `ipseity_document::Mrz::parse` on arbitrary text must return, never panic.
#![no_main]

use ipseity_document::Mrz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = Mrz::parse(text) {
            let _ = m.key_information();
        }
    }
});

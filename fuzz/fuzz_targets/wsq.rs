//! Fuzz target: `ipseity_finger::wsq::decode_with_limits` on arbitrary bytes must return, never panic or allocate without bound.
#![no_main]

use ipseity_finger::wsq::{decode_with_limits, WsqLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small pixel budget keeps each run fast and makes the size guard reachable.
    let limits = WsqLimits {
        max_side: 4096,
        max_pixels: 1 << 20,
    };
    let _ = decode_with_limits(data, &limits);
});

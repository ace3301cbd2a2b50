//! Fuzz target: `ipseity_face::decode::decode_image` on arbitrary bytes must return, never panic or allocate without bound.
#![no_main]

use ipseity_face::decode::{decode_image, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast and make the size guards reachable.
    let limits = DecodeLimits {
        max_pixels: 512 * 512,
        max_bytes: 1 << 20,
        max_side: 2048,
    };
    let _ = decode_image(data, &limits);
});

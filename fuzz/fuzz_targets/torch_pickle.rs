//! Fuzz target: `ipseity_torch::read_state_dict_with` (legacy `.pth` state_dicts, a
//! bounded pickle interpreter) must reject bad bytes with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small caps keep each run fast; the code paths are the same as the defaults'.
    let limits = ipseity_torch::Limits {
        max_ops: 1 << 14,
        max_elements: 1 << 16,
        ..ipseity_torch::Limits::default()
    };
    let _ = ipseity_torch::read_state_dict_with(data, &limits);
});

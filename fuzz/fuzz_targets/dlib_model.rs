//! Fuzz target: the dlib model readers (`read_net` with the MMOD detector layout, `read_shape_predictor`) must reject bad bytes with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ipseity_dlib::read_net(data, &ipseity_dlib::mmod_detector_slots());
    let _ = ipseity_dlib::read_shape_predictor(data);
});

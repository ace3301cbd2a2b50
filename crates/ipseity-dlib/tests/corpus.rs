//! Replays the `dlib_model` fuzz corpus (`fuzz/corpus/dlib_model/`) through both model readers: every file must return, errors are fine, panics are not.
//!
//! Crashers found by `cargo fuzz run dlib_model` are minimised and added to
//! that directory, so this test keeps them fixed without needing libFuzzer.

use std::path::Path;

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dlib_model");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("directory entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read corpus file");
        // Ok or Err are both acceptable outcomes; returning at all is the test.
        let _ = ipseity_dlib::read_net(&bytes, &ipseity_dlib::mmod_detector_slots());
        let _ = ipseity_dlib::read_shape_predictor(&bytes);
        seen += 1;
    }
    assert!(seen >= 3, "expected the seed files in {}", dir.display());
}

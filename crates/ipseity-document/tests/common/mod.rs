//! Where the shared test data lives (`../shared`, or `IPSEITY_SHARED_DIR`).
//! Absent in a user's clone: tests skip with a message, unless
//! `IPSEITY_REQUIRE_SHARED=1` (as in CI) makes that a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared folder (which may not exist).
pub fn shared() -> PathBuf {
    std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// `shared()/icao` when it holds the vectors, else `None` after saying so
/// (or a failure under `IPSEITY_REQUIRE_SHARED`).
pub fn icao() -> Option<PathBuf> {
    let dir = shared().join("icao");
    if dir.join("vectors.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
        "IPSEITY_REQUIRE_SHARED is set but {} is missing",
        dir.display()
    );
    eprintln!("skipped: no ICAO vectors at {}", dir.display());
    None
}

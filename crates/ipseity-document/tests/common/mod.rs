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

/// Bytes from hex digits, up to the first character that is not one (the worked
/// examples' values carry notes after them).
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The value of the first key starting with `prefix` (the file's keys carry notes).
pub fn field<'a>(v: &'a serde_json::Value, prefix: &str) -> &'a str {
    v.as_object()
        .expect("object")
        .iter()
        .find(|(k, _)| k.starts_with(prefix))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {prefix}"))
}

/// A chip that answers a recorded exchange and refuses anything else, as a real chip
/// refuses a cryptogram, point or token it cannot verify.
pub struct Recorded {
    /// (command, response) pairs in order.
    pub exchange: Vec<(Vec<u8>, Vec<u8>)>,
    /// The next pair to be used.
    pub next: usize,
}

impl ipseity_document::bac::Chip for Recorded {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ipseity_document::bac::AccessError> {
        let (cmd, resp) = self
            .exchange
            .get(self.next)
            .ok_or(ipseity_document::bac::AccessError::Status(0x6D00))?;
        self.next += 1;
        if apdu != cmd.as_slice() {
            return Ok(vec![0x63, 0x00]);
        }
        Ok(resp.clone())
    }
}

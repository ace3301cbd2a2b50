//! Helpers shared by the integration tests that run the built `ipseity` binary.
// Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ipseity");

/// The binary on a data directory, with a fresh environment for the variables it reads.
pub fn ipseity(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data);
    c.env_remove("IPSEITY_DATA_DIR");
    c.env("IPSEITY_NO_AUTO_INSTALL", "1");
    c
}

/// Exit code, stdout and stderr.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("runs the binary");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Parses a `--json` stdout.
pub fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The stable error code of a `--json` error.
pub fn error_code(stdout: &str) -> String {
    json(stdout)["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {stdout}"))
        .to_owned()
}

/// Models and image directories, or `None` (with a message) to skip.
pub fn fixtures() -> Option<(PathBuf, PathBuf)> {
    let models = std::env::var_os("IPSEITY_MODELS_DIR");
    let images = std::env::var_os("IPSEITY_TEST_IMAGES");
    match (models, images) {
        (Some(m), Some(i)) => {
            let m = PathBuf::from(m);
            // Enrolment and verification check liveness by default; its models are not on
            // a package index, so a clone without ../shared may lack them (tools/test.sh
            // installs them from ../shared/models).
            if ipseity_models::locate_liveness(&m).is_err() {
                assert!(
                    std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
                    "IPSEITY_REQUIRE_SHARED is set but the liveness models are not installed in {}",
                    m.display()
                );
                eprintln!(
                    "skipping: the liveness models are not installed in {} \
                     (`ipseity models install --from DIR`)",
                    m.display()
                );
                return None;
            }
            Some((m, i.into()))
        }
        _ => {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_MODELS").is_none(),
                "IPSEITY_REQUIRE_MODELS is set but IPSEITY_MODELS_DIR or IPSEITY_TEST_IMAGES is not"
            );
            eprintln!("skipping: set IPSEITY_MODELS_DIR and IPSEITY_TEST_IMAGES to run this test");
            None
        }
    }
}

/// A folder of `../shared` (the real data sets beside the repository), or
/// `None` with a message where it is absent; `IPSEITY_REQUIRE_SHARED` (set in
/// CI) turns the skip into a failure. `IPSEITY_SHARED_DIR` moves `../shared`.
pub fn shared(sub: &str, marker: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join(sub);
    if dir.join(marker).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
        "IPSEITY_REQUIRE_SHARED is set but {} is missing",
        dir.display()
    );
    eprintln!(
        "skipped: nothing at {} (set IPSEITY_SHARED_DIR)",
        dir.display()
    );
    None
}
/// Writes `fingers x impressions` synthetic prints into `dir` and returns it.
pub fn synth(dir: &Path, fingers: u32, impressions: u32, seed: u64) -> PathBuf {
    let out = dir.join(format!("synth-{seed}"));
    let (code, stdout, stderr) = run(ipseity(&dir.join("unused"))
        .args(["--json", "finger", "synth", "--fingers"])
        .arg(fingers.to_string())
        .arg("--impressions")
        .arg(impressions.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stdout}{stderr}");
    out
}

pub mod service;

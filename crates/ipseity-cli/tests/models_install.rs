//! `ipseity models install --from DIR`: pinned models copied from a folder.
//!
//! The success case reads `../shared/models` (or `IPSEITY_SHARED_DIR`) and
//! skips with a message where it is absent, unless `IPSEITY_REQUIRE_SHARED=1`.

mod common;

use std::path::{Path, PathBuf};

use common::{error_code, ipseity, json, run};

fn shared_models() -> Option<PathBuf> {
    let dir = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("models");
    if dir.join("silent_face_anti_spoofing").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
        "IPSEITY_REQUIRE_SHARED is set but {} is missing",
        dir.display()
    );
    eprintln!("skipped: no models at {}", dir.display());
    None
}

#[test]
fn installs_the_liveness_models_from_a_folder() {
    let Some(src) = shared_models() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    // Named explicitly: the test run's own models folder (IPSEITY_MODELS_DIR) is not
    // this test's to fill.
    let models = data.path().join("models");
    let mut cmd = ipseity(data.path());
    let (rc, out, err) = run(cmd
        .arg("--models-dir")
        .arg(&models)
        .args(["--json", "models", "install", "--from"])
        .arg(&src));
    assert_eq!(rc, 0, "{out}\n{err}");
    let v = json(&out);
    let installed: Vec<&str> = v["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|p| p.as_str().expect("path"))
        .collect();
    for name in [
        ipseity_models::LIVENESS_V2.name,
        ipseity_models::LIVENESS_V1SE.name,
        ipseity_models::YUNET.name,
    ] {
        assert!(installed.iter().any(|p| p.ends_with(name)), "{name}: {out}");
    }
    ipseity_models::locate_liveness(&models).expect("installed models verify");
    // A second run finds them in place.
    let (rc, out2, err) = run(ipseity(data.path())
        .arg("--models-dir")
        .arg(&models)
        .args(["--json", "models", "install", "--from"])
        .arg(&src));
    assert_eq!(rc, 0, "{out2}\n{err}");
    assert!(err.contains("already installed"), "{err}");
}

#[test]
fn a_folder_without_the_models_names_where_to_get_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let empty = tempfile::tempdir().expect("tempdir");
    let (rc, out, _) = run(ipseity(data.path())
        .arg("--models-dir")
        .arg(data.path().join("models"))
        .args(["--json", "models", "install", "--from"])
        .arg(empty.path()));
    assert_ne!(rc, 0);
    assert_eq!(error_code(&out), "models_missing");
    assert!(out.contains(ipseity_models::LIVENESS_COMMIT), "{out}");
}

#[test]
fn a_file_that_is_not_the_pinned_one_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        src.path().join(ipseity_models::LIVENESS_V2.name),
        b"not a model",
    )
    .expect("write");
    let (rc, out, _) = run(ipseity(data.path())
        .arg("--models-dir")
        .arg(data.path().join("models"))
        .args(["--json", "models", "install", "--from"])
        .arg(src.path()));
    assert_ne!(rc, 0);
    assert_eq!(error_code(&out), "models_invalid");
    assert!(!data
        .path()
        .join("models")
        .join(ipseity_models::LIVENESS_V2.name)
        .exists());
}

/// A models folder holding the face models of the test run (links), so that `models
/// install` has nothing to download with pip.
fn face_models_only(to: &Path) -> Option<PathBuf> {
    let (from, _) = common::fixtures()?;
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(&from).expect("models dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "dat") {
            std::os::unix::fs::symlink(&p, to.join(p.file_name().expect("name"))).expect("link");
        }
    }
    Some(to.to_owned())
}

#[test]
fn downloads_the_liveness_models_from_a_mirror_and_refuses_a_wrong_file() {
    let Some(src) = shared_models() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    let Some(models) = face_models_only(&data.path().join("models")) else {
        return;
    };
    let weights = src.join("silent_face_anti_spoofing/resources/anti_spoof_models");
    let install = |mirror: &str| {
        run(ipseity(data.path()).arg("--models-dir").arg(&models).args([
            "--json",
            "models",
            "install",
            "--liveness",
            "--mirror",
            mirror,
        ]))
    };

    // A mirror that is not there: a clear error naming the URL, nothing installed.
    let (rc, out, err) = install("file:///nonexistent/mirror");
    assert_eq!(rc, 2, "{out}\n{err}");
    assert_eq!(error_code(&out), "models_download_failed", "{out}");
    assert!(
        out.contains("file:///nonexistent/mirror/2.7_80x80_MiniFASNetV2.pth"),
        "{out}"
    );
    assert!(ipseity_models::locate_liveness(&models).is_err());

    // A mirror serving a damaged file: refused by its pin, never installed under its name.
    let bad = data.path().join("bad-mirror");
    std::fs::create_dir(&bad).expect("mkdir");
    let v2 = std::fs::read(weights.join(ipseity_models::LIVENESS_V2.name)).expect("weights");
    std::fs::write(
        bad.join(ipseity_models::LIVENESS_V2.name),
        &v2[..v2.len() / 2],
    )
    .expect("write");
    let (rc, out, err) = install(&format!("file://{}", bad.display()));
    assert_ne!(rc, 0, "{out}\n{err}");
    assert!(!models.join(ipseity_models::LIVENESS_V2.name).exists());

    // The model repository's own folder as the mirror: both models in place and verified
    // (YuNet is not there: optional, skipped).
    let (rc, out, err) = install(&format!("file://{}", weights.display()));
    assert_eq!(rc, 0, "{out}\n{err}");
    ipseity_models::locate_liveness(&models).expect("downloaded models verify");
}

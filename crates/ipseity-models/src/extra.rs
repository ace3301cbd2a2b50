//! Models installed from a folder the operator supplies (`models install
//! --from DIR`) rather than downloaded with pip: the MiniFASNet liveness
//! weights and the YuNet detector. Neither is on a package index, so each is
//! pinned by SHA-256 and by a URL at a fixed commit of its repository, for
//! whoever fetches it on a machine that can reach that site.

use std::io;
use std::path::{Path, PathBuf};

use crate::{sha256_file, verify_file, ModelsError, Reporter, MAX_ENTRY_BYTES};

/// A model file pinned to one commit of the repository that publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedModel {
    /// File name, kept in the models directory.
    pub name: &'static str,
    /// Lowercase hexadecimal SHA-256 of the file.
    pub sha256: &'static str,
    /// Where the file can be downloaded, at the pinned commit.
    pub url: &'static str,
    /// Folders under `--from DIR` searched for the file, in order: the folder
    /// itself, the repository's own layout, and the layouts of a copy of the
    /// whole models tree.
    pub search: &'static [&'static str],
    /// Whether `--from` fails without it.
    pub required: bool,
}

/// The commit of Silent-Face-Anti-Spoofing the liveness weights are pinned to.
pub const LIVENESS_COMMIT: &str = "b6d5f04ad78778917853b25c778acef6d5626d15";

const LIVENESS_SEARCH: &[&str] = &[
    "",
    "resources/anti_spoof_models",
    "silent_face_anti_spoofing/resources/anti_spoof_models",
    "models/silent_face_anti_spoofing/resources/anti_spoof_models",
];

/// MiniFASNetV2, crop scale 2.7 (Apache-2.0, Minivision).
pub const LIVENESS_V2: PinnedModel = PinnedModel {
    name: "2.7_80x80_MiniFASNetV2.pth",
    sha256: "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
    url: "https://raw.githubusercontent.com/minivision-ai/Silent-Face-Anti-Spoofing/b6d5f04ad78778917853b25c778acef6d5626d15/resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth",
    search: LIVENESS_SEARCH,
    required: true,
};

/// MiniFASNetV1SE, crop scale 4.0 (Apache-2.0, Minivision).
pub const LIVENESS_V1SE: PinnedModel = PinnedModel {
    name: "4_0_0_80x80_MiniFASNetV1SE.pth",
    sha256: "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
    url: "https://raw.githubusercontent.com/minivision-ai/Silent-Face-Anti-Spoofing/b6d5f04ad78778917853b25c778acef6d5626d15/resources/anti_spoof_models/4_0_0_80x80_MiniFASNetV1SE.pth",
    search: LIVENESS_SEARCH,
    required: true,
};

/// YuNet-n, 640x640 input (Apache-2.0, libfacedetection.train at
/// 0047ac24afb1a50a0c6105001c89d1b5b805dbf1). Not used by the pipeline yet,
/// so installed when present and not required.
pub const YUNET: PinnedModel = PinnedModel {
    name: "yunet_n_640_640.onnx",
    sha256: "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31",
    url: "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_n_640_640.onnx",
    search: &["", "onnx", "yunet", "models/yunet"],
    required: false,
};

/// Every model `--from` knows, in install order.
pub const FROM_DIR: [PinnedModel; 3] = [LIVENESS_V2, LIVENESS_V1SE, YUNET];

/// Paths of the installed, verified liveness models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessSet {
    /// [`LIVENESS_V2`].
    pub v2: PathBuf,
    /// [`LIVENESS_V1SE`].
    pub v1se: PathBuf,
}

/// What an install from a folder did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromDirReport {
    /// Files now in the models directory, verified (copied or already there).
    pub installed: Vec<PathBuf>,
    /// Optional files the folder did not hold.
    pub not_found: Vec<&'static str>,
}

/// Finds the liveness models in `dir` and checks their SHA-256.
pub fn locate_liveness(dir: &Path) -> Result<LivenessSet, ModelsError> {
    for m in [LIVENESS_V2, LIVENESS_V1SE] {
        let path = dir.join(m.name);
        if !path.is_file() {
            return Err(ModelsError::NotInstalled {
                dir: dir.to_owned(),
                file: m.name,
            });
        }
        verify_file(&path, m.sha256)?;
    }
    Ok(LivenessSet {
        v2: dir.join(LIVENESS_V2.name),
        v1se: dir.join(LIVENESS_V1SE.name),
    })
}

/// Copies [`FROM_DIR`]'s models from `src` into the models directory `dir`.
///
/// Each file is looked for in its [`PinnedModel::search`] folders under `src`,
/// checked against its pin, copied to a temporary file in `dir`, checked
/// again, synced and renamed into place, so a failure leaves no partial file
/// under a model's name. Files already installed and verified are left alone.
///
/// # Errors
///
/// [`ModelsError::NotInFolder`] when a required file is absent (the message
/// gives its pinned URL), [`ModelsError::ChecksumMismatch`] when a file found
/// is not the pinned one, [`ModelsError::Io`].
pub fn install_from_dir(
    src: &Path,
    dir: &Path,
    reporter: &dyn Reporter,
) -> Result<FromDirReport, ModelsError> {
    install_pinned_from_dir(src, dir, &FROM_DIR, reporter)
}

/// Downloads [`FROM_DIR`]'s models into `dir` with `curl`, each from its pinned URL or,
/// with `mirror`, from `<mirror>/<file name>` (a site's own mirror over HTTPS, or a
/// `file://` folder). Each download is checked against its pin before it takes the
/// model's name, so a wrong or truncated file is never installed; files already installed
/// and verified are left alone. An optional model that cannot be fetched is skipped.
///
/// # Errors
///
/// [`ModelsError::UrlDownloadFailed`] for a required model that cannot be fetched (or
/// when `curl` is missing), [`ModelsError::ChecksumMismatch`] for one that is not the
/// pinned file, [`ModelsError::Io`].
pub fn install_from_urls(
    dir: &Path,
    mirror: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<FromDirReport, ModelsError> {
    std::fs::create_dir_all(dir).map_err(ModelsError::io(format!("creating {}", dir.display())))?;
    let tmp = tempfile::tempdir_in(dir).map_err(ModelsError::io(format!(
        "creating a temporary folder in {}",
        dir.display()
    )))?;
    let mut report = FromDirReport::default();
    for m in &FROM_DIR {
        let dest = dir.join(m.name);
        if dest.is_file() && verify_file(&dest, m.sha256).is_ok() {
            reporter.message(&format!("{} already installed", m.name));
            report.installed.push(dest);
            continue;
        }
        let url = mirror.map_or_else(
            || m.url.to_owned(),
            |b| format!("{}/{}", b.trim_end_matches('/'), m.name),
        );
        let part = tmp.path().join(m.name);
        reporter.message(&format!("downloading {url}"));
        let failed = |detail: String| ModelsError::UrlDownloadFailed {
            url: url.clone(),
            detail,
        };
        // HTTPS only (and local files for a mirror folder), redirects included; a size
        // cap so that a wrong URL cannot fill the disk.
        let out = std::process::Command::new("curl")
            .args(["--fail", "--silent", "--show-error", "--location"])
            .args(["--proto", "=https,file", "--proto-redir", "=https"])
            .args(["--max-filesize", &MAX_ENTRY_BYTES.to_string(), "--output"])
            .arg(&part)
            .arg(&url)
            .output();
        let err = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Some(format!("curl could not run ({e})")),
        };
        if let Some(detail) = err {
            if m.required {
                return Err(failed(detail));
            }
            reporter.message(&format!("{} not fetched ({detail}); skipped", m.name));
            report.not_found.push(m.name);
            continue;
        }
        copy_verified(&part, &dest, m.sha256)?;
        report.installed.push(dest);
    }
    Ok(report)
}

pub(crate) fn install_pinned_from_dir(
    src: &Path,
    dir: &Path,
    models: &[PinnedModel],
    reporter: &dyn Reporter,
) -> Result<FromDirReport, ModelsError> {
    std::fs::create_dir_all(dir).map_err(ModelsError::io(format!("creating {}", dir.display())))?;
    let mut report = FromDirReport::default();
    for m in models {
        let dest = dir.join(m.name);
        if dest.is_file() && verify_file(&dest, m.sha256).is_ok() {
            reporter.message(&format!("{} already installed", m.name));
            report.installed.push(dest);
            continue;
        }
        let Some(found) = m
            .search
            .iter()
            .map(|sub| src.join(sub).join(m.name))
            .find(|p| p.is_file())
        else {
            if m.required {
                return Err(ModelsError::NotInFolder {
                    dir: src.to_owned(),
                    file: m.name,
                    url: m.url,
                });
            }
            reporter.message(&format!("{} not in {}; skipped", m.name, src.display()));
            report.not_found.push(m.name);
            continue;
        };
        reporter.message(&format!("installing {}", found.display()));
        copy_verified(&found, &dest, m.sha256)?;
        report.installed.push(dest);
    }
    Ok(report)
}

/// Copies `from` to `to` through a temporary file beside `to`, checking the
/// pin on the source (a clear message names the file the operator gave) and
/// on the copy (what will actually be loaded).
fn copy_verified(from: &Path, to: &Path, sha256: &str) -> Result<(), ModelsError> {
    let len = from
        .metadata()
        .map_err(ModelsError::io(format!("inspecting {}", from.display())))?
        .len();
    if len > MAX_ENTRY_BYTES {
        return Err(ModelsError::EntryTooLarge {
            path: from.display().to_string(),
            size: len,
            limit: MAX_ENTRY_BYTES,
        });
    }
    verify_file(from, sha256)?;
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(ModelsError::io(format!(
        "creating a temporary file in {}",
        dir.display()
    )))?;
    let mut input = std::fs::File::open(from)
        .map_err(ModelsError::io(format!("opening {}", from.display())))?;
    io::copy(&mut input, tmp.as_file_mut())
        .map_err(ModelsError::io(format!("copying {}", from.display())))?;
    tmp.as_file().sync_all().map_err(ModelsError::io(format!(
        "syncing a copy of {}",
        from.display()
    )))?;
    let actual = sha256_file(tmp.path())?;
    if actual != sha256 {
        return Err(ModelsError::ChecksumMismatch {
            file: tmp.path().to_owned(),
            expected: sha256.to_owned(),
            actual,
        });
    }
    tmp.persist(to).map_err(|e| {
        ModelsError::io(format!("renaming a copy of {} into place", from.display()))(e.error)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoReport;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn pinned(name: &'static str, required: bool) -> PinnedModel {
        PinnedModel {
            name,
            sha256: ABC,
            url: "https://example.invalid/model",
            search: &["", "nested/deeper"],
            required,
        }
    }

    #[test]
    fn copies_found_files_and_skips_optional_ones() {
        let src = tempfile::tempdir().expect("tempdir");
        let dst = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(src.path().join("nested/deeper")).expect("mkdir");
        std::fs::write(src.path().join("nested/deeper/a.bin"), b"abc").expect("write");
        let models = [pinned("a.bin", true), pinned("b.bin", false)];
        let r =
            install_pinned_from_dir(src.path(), dst.path(), &models, &NoReport).expect("installs");
        assert_eq!(r.installed, [dst.path().join("a.bin")]);
        assert_eq!(r.not_found, ["b.bin"]);
        assert_eq!(
            std::fs::read(dst.path().join("a.bin")).expect("read"),
            b"abc"
        );
        // Only the model: no temporary file left behind.
        assert_eq!(std::fs::read_dir(dst.path()).expect("ls").count(), 1);
        // Again: nothing to copy, same result.
        let again = install_pinned_from_dir(src.path(), dst.path(), &models, &NoReport)
            .expect("idempotent");
        assert_eq!(again, r);
    }

    #[test]
    fn a_missing_required_file_names_its_url() {
        let src = tempfile::tempdir().expect("tempdir");
        let dst = tempfile::tempdir().expect("tempdir");
        let err =
            install_pinned_from_dir(src.path(), dst.path(), &[pinned("a.bin", true)], &NoReport)
                .expect_err("missing");
        assert!(matches!(err, ModelsError::NotInFolder { .. }));
        assert!(
            err.to_string().contains("https://example.invalid/model"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_file_is_refused_and_not_installed() {
        let src = tempfile::tempdir().expect("tempdir");
        let dst = tempfile::tempdir().expect("tempdir");
        std::fs::write(src.path().join("a.bin"), b"not abc").expect("write");
        let err =
            install_pinned_from_dir(src.path(), dst.path(), &[pinned("a.bin", true)], &NoReport)
                .expect_err("wrong checksum");
        assert!(matches!(err, ModelsError::ChecksumMismatch { .. }));
        assert_eq!(std::fs::read_dir(dst.path()).expect("ls").count(), 0);
    }

    #[test]
    fn pinned_urls_name_the_pinned_commits() {
        for m in [LIVENESS_V2, LIVENESS_V1SE] {
            assert!(m.url.contains(LIVENESS_COMMIT) && m.url.ends_with(m.name));
        }
        assert!(YUNET.url.ends_with(YUNET.name));
    }
}

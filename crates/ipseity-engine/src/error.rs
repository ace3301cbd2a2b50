//! The engine's one error type. Every variant knows its [`ErrorKind`] and stable code,
//! so the CLI (exit status) and the server (HTTP status) classify errors the same way.

use ipseity_core::{Classified, CoreError, ErrorKind, SubjectId};
use ipseity_finger::gallery::GalleryError;
use ipseity_finger::TemplateVectorError;
use ipseity_index::IndexError;
use ipseity_store::StoreError;

/// Results of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything a use case can fail with. Messages name subjects and counts, never scores
/// or template values, and carry no front-end hints (flags, routes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A domain value was invalid.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The 1:N index refused an operation.
    #[error("face index: {0}")]
    Index(#[from] IndexError),
    /// The fingerprint gallery could not be built.
    #[error("fingerprint gallery: {0}")]
    FingerGallery(#[from] GalleryError),
    /// A stored fingerprint template could not be read back.
    #[error("stored fingerprint template of {subject}: {source}")]
    StoredFingerTemplate {
        /// Whose template.
        subject: SubjectId,
        /// Why.
        source: TemplateVectorError,
    },
    /// The new templates match other enrolled subjects: a new subject is held for a
    /// reviewer (in no gallery, not verifiable), fingers added to an enrolled subject are
    /// refused; audited either way.
    #[error(
        "possible duplicate enrolment: matches subject {}; held for review (nothing is searchable or verifiable until a reviewer resolves it)",
        join(.0)
    )]
    PossibleDuplicate(Vec<SubjectId>),
    /// A search of the whole gallery was asked for without a purpose.
    #[error("{0}: a purpose is required (it is recorded in the audit log)")]
    PurposeRequired(&'static str),
    /// An argument was out of range; `code` is its stable code.
    #[error("{message}")]
    InvalidInput {
        /// Stable code, e.g. `usage`, `too_many_files`.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// The subject has no templates the operation can use.
    #[error("{0}")]
    NoTemplates(String),
    /// An allocation for the gallery failed.
    #[error("not enough memory for the gallery")]
    OutOfMemory,
    /// A broken invariant: a bug, reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
}

pub(crate) fn join(ids: &[SubjectId]) -> String {
    ids.iter()
        .map(SubjectId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl EngineError {
    /// An input error with its code.
    pub fn input(code: &'static str, message: impl Into<String>) -> Self {
        EngineError::InvalidInput {
            code,
            message: message.into(),
        }
    }
}

impl From<std::collections::TryReserveError> for EngineError {
    fn from(_: std::collections::TryReserveError) -> Self {
        EngineError::OutOfMemory
    }
}

impl From<std::num::TryFromIntError> for EngineError {
    fn from(e: std::num::TryFromIntError) -> Self {
        EngineError::Internal(format!("gallery too large: {e}"))
    }
}

impl Classified for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Store(e) => e.kind(),
            EngineError::Core(e) => e.kind(),
            EngineError::PossibleDuplicate(_) => ErrorKind::Conflict,
            EngineError::PurposeRequired(_) | EngineError::InvalidInput { .. } => ErrorKind::Input,
            EngineError::NoTemplates(_) => ErrorKind::NotFound,
            EngineError::OutOfMemory => ErrorKind::Unavailable,
            EngineError::Index(_)
            | EngineError::FingerGallery(_)
            | EngineError::StoredFingerTemplate { .. }
            | EngineError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            EngineError::Store(e) => e.code(),
            EngineError::Core(e) => e.code(),
            EngineError::PossibleDuplicate(_) => "possible_duplicate",
            EngineError::PurposeRequired(_) => "purpose_required",
            EngineError::InvalidInput { code, .. } => code,
            EngineError::NoTemplates(_) => "no_templates",
            EngineError::OutOfMemory => "out_of_memory",
            EngineError::StoredFingerTemplate { .. } => "store_error",
            EngineError::Index(_) | EngineError::FingerGallery(_) | EngineError::Internal(_) => {
                "internal"
            }
        }
    }
}

//! Domain types shared by every Ipseity crate.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of images,
//! models, SQL or JSON output. It only names things: subjects, modalities,
//! templates, decisions and operating points.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::fmt;

mod access;
mod audit;
mod error_kind;
mod source;

pub use access::{ApiKey, Scope};
pub use audit::{AuditEvent, MAX_EVENT_DETAIL};
pub use error_kind::{Classified, ErrorKind};
pub use source::{EnrolmentSource, SourceKind};

/// Errors raised when building domain values from untrusted input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A subject identifier was empty, too long or used characters outside the allowed set.
    #[error("invalid subject id {0:?}: use 1 to 128 characters from A-Z a-z 0-9 . _ - : @")]
    InvalidSubjectId(String),
    /// An embedding had the wrong dimension or non-finite values.
    #[error("invalid embedding: {0}")]
    InvalidEmbedding(String),
    /// An enrolment source's attribute was malformed (the message names it, never its value).
    #[error("invalid enrolment source: {0}")]
    InvalidSource(String),
}

impl Classified for CoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            CoreError::InvalidSubjectId(_) | CoreError::InvalidSource(_) => ErrorKind::Input,
            // Embeddings come from our own pipelines, so a bad one is our fault.
            CoreError::InvalidEmbedding(_) => ErrorKind::Internal,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidSubjectId(_) => "invalid_subject_id",
            CoreError::InvalidEmbedding(_) => "internal",
            CoreError::InvalidSource(_) => "invalid_source",
        }
    }
}

/// Identifier of an enrolled subject, chosen by the identity programme.
///
/// It is not biometric data, so it may appear in logs and audit records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectId(String);

impl SubjectId {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps an identifier.
    pub fn new(id: impl Into<String>) -> Result<Self, CoreError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b));
        if ok {
            Ok(Self(id))
        } else {
            Err(CoreError::InvalidSubjectId(id))
        }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SubjectId {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::new(s)
    }
}

impl From<SubjectId> for String {
    fn from(s: SubjectId) -> String {
        s.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The biometric modality a template belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Modality {
    /// Face embedding from the dlib ResNet model.
    Face,
    /// Fingerprint minutiae template of one finger.
    Fingerprint,
}

impl Modality {
    /// Stable code used in persisted records.
    pub fn code(self) -> u8 {
        match self {
            Modality::Face => 1,
            Modality::Fingerprint => 2,
        }
    }

    /// Inverse of [`Modality::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Modality::Face),
            2 => Some(Modality::Fingerprint),
            _ => None,
        }
    }
}

/// A comparable biometric template: a fixed-length feature vector and the model that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Modality of the sample.
    pub modality: Modality,
    /// Identifier of the model (and version) that produced the vector; templates from
    /// different models are never compared.
    pub model: String,
    /// The feature vector.
    pub vector: Vec<f32>,
    /// Quality of the sample the template came from, 0 to 100.
    pub quality: u8,
}

impl Template {
    /// Builds a template, refusing empty or non-finite vectors.
    pub fn new(
        modality: Modality,
        model: impl Into<String>,
        vector: Vec<f32>,
        quality: u8,
    ) -> Result<Self, CoreError> {
        if vector.is_empty() || vector.len() > 4096 {
            return Err(CoreError::InvalidEmbedding(format!(
                "dimension {} out of range 1..=4096",
                vector.len()
            )));
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::InvalidEmbedding("non-finite value".into()));
        }
        Ok(Self {
            modality,
            model: model.into(),
            vector,
            quality: quality.min(100),
        })
    }
}

/// The answer Ipseity gives: never a raw score outside evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The comparison is a match at the stated false-match rate.
    Accept,
    /// The comparison is not a match.
    Reject,
    /// Too close to the threshold, or quality too low, to decide without a person.
    NeedsReview,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
            Decision::NeedsReview => "needs_review",
        })
    }
}

/// A decision threshold tied to the false-match rate it was calibrated for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Target false-match rate, e.g. 1e-3.
    pub fmr: f64,
    /// Similarity at or above which a comparison is accepted.
    pub accept_at: f32,
    /// Similarity below which a comparison is rejected; between the two is `needs_review`.
    pub reject_below: f32,
}

impl OperatingPoint {
    /// Maps a similarity score to a decision.
    pub fn decide(&self, similarity: f32) -> Decision {
        if similarity >= self.accept_at {
            Decision::Accept
        } else if similarity < self.reject_below {
            Decision::Reject
        } else {
            Decision::NeedsReview
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_are_validated() {
        assert!(SubjectId::new("alice-01").is_ok());
        assert!(SubjectId::new("").is_err());
        assert!(SubjectId::new("a b").is_err());
        assert!(SubjectId::new("x".repeat(129)).is_err());
        assert!(SubjectId::new("é").is_err());
    }

    #[test]
    fn templates_refuse_bad_vectors() {
        assert!(Template::new(Modality::Face, "m", vec![], 50).is_err());
        assert!(Template::new(Modality::Face, "m", vec![f32::NAN], 50).is_err());
        assert_eq!(
            Template::new(Modality::Face, "m", vec![0.5], 200)
                .unwrap()
                .quality,
            100
        );
    }

    #[test]
    fn operating_point_has_a_review_band() {
        let op = OperatingPoint {
            fmr: 1e-3,
            accept_at: 0.6,
            reject_below: 0.5,
        };
        assert_eq!(op.decide(0.7), Decision::Accept);
        assert_eq!(op.decide(0.55), Decision::NeedsReview);
        assert_eq!(op.decide(0.1), Decision::Reject);
    }

    #[test]
    fn modality_codes_round_trip() {
        for m in [Modality::Face, Modality::Fingerprint] {
            assert_eq!(Modality::from_code(m.code()), Some(m));
        }
        assert_eq!(Modality::from_code(0), None);
        assert_eq!(Modality::from_code(3), None);
    }
}

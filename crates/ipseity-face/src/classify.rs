//! The kinds and stable codes of the face crate's errors (see `ipseity_core::Classified`):
//! every front end reports a bad image or an unusable face with the same code.

use ipseity_core::{Classified, ErrorKind};

use crate::decode::DecodeError;
use crate::pipeline::FaceError;

impl Classified for DecodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Io { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Input,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DecodeError::NotAnImage => "not_an_image",
            DecodeError::FileTooLarge { .. } | DecodeError::TooLarge { .. } => "image_too_large",
            DecodeError::TooSmall { .. } => "image_too_small",
            DecodeError::Unsupported(_) => "unsupported_image",
            DecodeError::Corrupt(_) => "corrupt_image",
            DecodeError::NotARegularFile { .. } => "not_a_regular_file",
            DecodeError::Io { .. } => "cannot_read_file",
        }
    }
}

impl Classified for FaceError {
    fn kind(&self) -> ErrorKind {
        match self {
            FaceError::NoFace
            | FaceError::MultipleFaces(_)
            | FaceError::FaceTooSmall { .. }
            | FaceError::LowQuality { .. }
            | FaceError::PresentationAttack => ErrorKind::Input,
            // A model that does not load cannot be fixed by the caller's input.
            FaceError::Model { .. } | FaceError::NoLivenessModels => ErrorKind::Unavailable,
            FaceError::Liveness(e) if liveness_model_fault(e) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            FaceError::NoFace => "no_face",
            FaceError::MultipleFaces(_) => "multiple_faces",
            FaceError::FaceTooSmall { .. } => "face_too_small",
            FaceError::LowQuality { .. } => "low_quality",
            FaceError::PresentationAttack => "presentation_attack",
            FaceError::Model { .. } => "models_invalid",
            FaceError::NoLivenessModels => "models_missing",
            FaceError::Liveness(e) if liveness_model_fault(e) => "models_invalid",
            _ => "internal",
        }
    }
}

/// Whether a liveness failure lies in the model file rather than in this face.
fn liveness_model_fault(e: &crate::liveness::LivenessError) -> bool {
    use crate::liveness::LivenessError;
    matches!(
        e,
        LivenessError::Read(_) | LivenessError::Missing(_) | LivenessError::Shape { .. }
    )
}

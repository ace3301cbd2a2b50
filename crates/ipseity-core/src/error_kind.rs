//! The error vocabulary every front end shares: a kind that the CLI maps to an exit
//! status and the server to an HTTP status, and a stable snake_case code.

use std::fmt;

/// What sort of failure an error is, whatever crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller's input is wrong (bad image, no face, malformed record, bad argument).
    Input,
    /// The thing asked about does not exist (unknown subject, no templates).
    NotFound,
    /// The thing to create exists already (duplicate subject id, finger already enrolled).
    Duplicate,
    /// The request conflicts with the enrolled population (a possible duplicate person).
    Conflict,
    /// The service cannot do it now (disk full, models missing, store busy); retry later.
    Unavailable,
    /// A fault on our side (corrupt store, broken invariant).
    Internal,
}

impl ErrorKind {
    /// The kind as a word, for logs and problem documents.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its kind and its stable code.
///
/// Codes are part of the public interface (`--json` output, problem documents): they are
/// snake_case and never change meaning once released.
pub trait Classified {
    /// What sort of failure this is.
    fn kind(&self) -> ErrorKind;
    /// The stable code, e.g. `no_face`, `unknown_subject`.
    fn code(&self) -> &'static str;
}

//! The one error type of the store, so callers can tell a user mistake from a damaged store.

use std::path::PathBuf;

use ipseity_core::{Classified, ErrorKind, SubjectId};

use crate::codec::TemplateError;

/// Everything that can go wrong in the store.
///
/// Messages name subjects, files and record numbers but never carry biometric data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `enroll` was asked to create a subject that already exists.
    #[error("subject {0} is already enrolled")]
    DuplicateSubject(SubjectId),
    /// The subject is not enrolled.
    #[error("subject {0} is not enrolled")]
    UnknownSubject(SubjectId),
    /// The key file is missing, malformed, has unsafe permissions or does not match the database.
    #[error("template key file: {0}")]
    KeyFile(String),
    /// The database holds something this version cannot read.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// A template could not be encrypted or decrypted: wrong key, tampered ciphertext, or a
    /// ciphertext moved to another subject, modality or model.
    #[error("template decryption failed: wrong key, tampered ciphertext, or ciphertext moved between records")]
    Crypto,
    /// A template handed to the store failed validation; nothing was written.
    #[error("invalid template: {0}")]
    InvalidTemplate(#[source] TemplateError),
    /// An argument was out of range (empty template list, oversized audit field).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The disk or the file system quota is full; the transaction was rolled back.
    #[error(
        "disk full: the store could not write and kept no partial change; free space and retry"
    )]
    DiskFull,
    /// There is no store in the directory, and the operation only reads one.
    #[error("no store in {}: nothing is enrolled there (check --data-dir)", .0.display())]
    NoStore(PathBuf),
    /// Another writer held the store for longer than the busy timeout.
    #[error("the store is busy: another process holds its write lock; retry")]
    Busy,
    /// The disk under the store failed a read, write or sync (an I/O error): the operation
    /// was rolled back and nothing of it was acknowledged.
    #[error("the store's disk failed (I/O error); nothing was written; retry once it is repaired")]
    Storage(String),
    /// The database server cannot be reached (restarting, shut down, the connection
    /// broke); the next call connects again.
    #[error("the database is unreachable ({0}); retry shortly")]
    Unreachable(String),
    /// Any other database failure. The engine's type stays private, so that callers do not
    /// depend on it.
    #[error("database: {0}")]
    Database(String),
    /// Any other file-system failure.
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
    /// A reader's callback stopped the reading with its own error (which the caller
    /// returns instead of this one).
    #[error("the reading was stopped by its caller")]
    Stopped,
}

impl Classified for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::DuplicateSubject(_) => ErrorKind::Duplicate,
            StoreError::UnknownSubject(_) | StoreError::NoStore(_) => ErrorKind::NotFound,
            StoreError::InvalidInput(_) | StoreError::InvalidTemplate(_) => ErrorKind::Input,
            StoreError::DiskFull
            | StoreError::Busy
            | StoreError::Unreachable(_)
            | StoreError::Storage(_) => ErrorKind::Unavailable,
            StoreError::KeyFile(_)
            | StoreError::Corrupt(_)
            | StoreError::Crypto
            | StoreError::Database(_)
            | StoreError::Stopped
            | StoreError::Io(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            StoreError::DuplicateSubject(_) => "duplicate_subject",
            StoreError::UnknownSubject(_) => "unknown_subject",
            StoreError::NoStore(_) => "no_store",
            StoreError::InvalidInput(_) => "invalid_input",
            StoreError::InvalidTemplate(_) => "invalid_template",
            StoreError::KeyFile(_) => "store_key",
            StoreError::DiskFull => "disk_full",
            StoreError::Busy => "store_busy",
            StoreError::Unreachable(_) => "store_unavailable",
            StoreError::Storage(_) => "store_io_error",
            StoreError::Corrupt(_)
            | StoreError::Crypto
            | StoreError::Database(_)
            | StoreError::Stopped
            | StoreError::Io(_) => "store_error",
        }
    }
}

/// `ENOSPC` on Linux and the BSDs, including macOS.
#[cfg(unix)]
const ENOSPC: i32 = 28;
/// `EIO`: the device failed.
#[cfg(unix)]
const EIO: i32 = 5;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                StoreError::DiskFull
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Busy
            }
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::SystemIoFailure =>
            {
                StoreError::Storage(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        #[cfg(unix)]
        if e.raw_os_error() == Some(ENOSPC) {
            return StoreError::DiskFull;
        }
        #[cfg(unix)]
        if e.raw_os_error() == Some(EIO) {
            return StoreError::Storage(e.to_string());
        }
        StoreError::Io(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn sqlite_full_becomes_disk_full() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(matches!(StoreError::from(e), StoreError::DiskFull));
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(StoreError::from(e), StoreError::Busy));
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert!(matches!(StoreError::from(e), StoreError::Database(_)));
    }

    #[cfg(unix)]
    #[test]
    fn enospc_becomes_disk_full() {
        let e = std::io::Error::from_raw_os_error(ENOSPC);
        assert!(matches!(StoreError::from(e), StoreError::DiskFull));
        assert!(StoreError::DiskFull.to_string().contains("disk full"));
    }
}

//! The one error type of the store, so callers can tell a user mistake from a damaged store.

use ipseity_core::SubjectId;

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
    /// Any other SQLite failure.
    #[error("sqlite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// Any other file-system failure.
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
}

/// `ENOSPC` on Linux and the BSDs, including macOS.
#[cfg(unix)]
const ENOSPC: i32 = 28;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                StoreError::DiskFull
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        #[cfg(unix)]
        if e.raw_os_error() == Some(ENOSPC) {
            return StoreError::DiskFull;
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
        assert!(matches!(StoreError::from(e), StoreError::Sqlite(_)));
    }

    #[cfg(unix)]
    #[test]
    fn enospc_becomes_disk_full() {
        let e = std::io::Error::from_raw_os_error(ENOSPC);
        assert!(matches!(StoreError::from(e), StoreError::DiskFull));
        assert!(StoreError::DiskFull.to_string().contains("disk full"));
    }
}

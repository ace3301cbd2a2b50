//! One owner of a data directory: the server holds an exclusive lock on a file in it for
//! its whole life, so a second server refuses to start and the CLI's writing commands can
//! tell that they must not write behind the server's live gallery.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "server.lock";

/// Held while the server runs; the operating system releases it if the process dies.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock, or says that another process holds it.
    pub fn acquire(data_dir: &Path) -> std::io::Result<OwnerLock> {
        std::fs::create_dir_all(data_dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(OwnerLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{} is held by a running `ipseity serve`",
                    data_dir.join(LOCK_FILE).display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a server holds the directory (a probe that takes and drops the lock).
    pub fn held_by_server(data_dir: &Path) -> bool {
        let Ok(file) = OpenOptions::new()
            .write(true)
            .open(data_dir.join(LOCK_FILE))
        else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }
}

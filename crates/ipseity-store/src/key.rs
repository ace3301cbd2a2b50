//! The template key file: created once with owner-only permissions, checked on every load.
//!
//! Format (44 bytes): magic `IPSKEY01`, 32 key bytes, CRC-32 of the preceding 40 bytes
//! (little-endian). The file is written to a temporary name, synced, then linked into place
//! without replacing an existing key, and the directory is synced.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::StoreError;

/// File name of the key inside the store directory.
pub const KEY_FILE: &str = "template.key";
/// Leading bytes of every key file; the trailing digits are the format version.
pub const MAGIC: &[u8; 8] = b"IPSKEY01";
/// Size of the AES-256 key.
pub const KEY_LEN: usize = 32;
/// Total size of a key file.
pub const FILE_LEN: usize = MAGIC.len() + KEY_LEN + 4;

/// 32 secret bytes; cleared when dropped and never printed.
pub(crate) struct KeyBytes(pub(crate) [u8; KEY_LEN]);

impl Drop for KeyBytes {
    fn drop(&mut self) {
        // Best effort: the cipher built from these bytes zeroizes its own copy.
        self.0.fill(0);
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes(..)")
    }
}

fn encode(key: &KeyBytes) -> [u8; FILE_LEN] {
    let mut out = [0u8; FILE_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..40].copy_from_slice(&key.0);
    let crc = crc32fast::hash(&out[..40]);
    out[40..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8], path: &Path) -> Result<KeyBytes, StoreError> {
    if bytes.len() != FILE_LEN {
        return Err(StoreError::KeyFile(format!(
            "{} is {} bytes, expected {FILE_LEN}",
            path.display(),
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(StoreError::KeyFile(format!(
            "{} is not an Ipseity key file (bad magic)",
            path.display()
        )));
    }
    let stored = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
    if crc32fast::hash(&bytes[..40]) != stored {
        return Err(StoreError::KeyFile(format!(
            "{} fails its checksum; it is damaged",
            path.display()
        )));
    }
    let mut key = KeyBytes([0; KEY_LEN]);
    key.0.copy_from_slice(&bytes[8..40]);
    Ok(key)
}

/// Reads and validates the key file at `path`.
/// The key in `dir` (created with the directory when missing), for a database kept
/// elsewhere: `sealed_data` says the database already holds data sealed under some key,
/// when a missing key file is an error rather than a first run.
pub(crate) fn load_or_create_in(dir: &Path, sealed_data: bool) -> Result<KeyBytes, StoreError> {
    fs::create_dir_all(dir)?;
    let path = dir.join(KEY_FILE);
    match fs::symlink_metadata(&path) {
        Ok(_) => load(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if sealed_data {
                return Err(StoreError::KeyFile(format!(
                    "{} is missing but the database holds sealed templates; restore the key \
                     file (a new key cannot read them)",
                    path.display()
                )));
            }
            create(&path)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn load(path: &Path) -> Result<KeyBytes, StoreError> {
    let file = File::open(path)
        .map_err(|e| StoreError::KeyFile(format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(StoreError::KeyFile(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    check_permissions(&meta, path)?;
    if meta.len() != FILE_LEN as u64 {
        return Err(StoreError::KeyFile(format!(
            "{} is {} bytes, expected {FILE_LEN}",
            path.display(),
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(FILE_LEN + 1);
    // Read one byte more than needed so a file that grew after the check is still refused.
    (&file).take(FILE_LEN as u64 + 1).read_to_end(&mut buf)?;
    let key = decode(&buf, path);
    buf.fill(0);
    key
}

#[cfg(unix)]
fn check_permissions(meta: &fs::Metadata, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyFile(format!(
            "{} has mode {mode:o} and is readable or writable by group or others; \
             run `chmod 600` on it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_meta: &fs::Metadata, _path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Creates a new random key file at `path`, failing if one already exists.
pub(crate) fn create(path: &Path) -> Result<KeyBytes, StoreError> {
    let mut key = KeyBytes([0; KEY_LEN]);
    rand::rngs::OsRng
        .try_fill_bytes(&mut key.0)
        .map_err(|e| StoreError::KeyFile(format!("no operating-system randomness: {e}")))?;
    let mut bytes = encode(&key);

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = temp_path(path)?;
    let written = write_new(&tmp, &bytes);
    bytes.fill(0);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link never replaces an existing file, unlike rename: two processes racing to
    // create a key cannot silently swap the key under each other.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        // Another process created the key first. It linked a complete, synced file, so
        // its key is the store's key: use it (two first opens of one directory both work).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return load(path),
        Err(e) => return Err(e.into()),
    }
    sync_dir(dir)?;
    Ok(key)
}

/// Whether a key file (or anything else) is at `path`.
pub(crate) fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Removes a key file that is no longer used (a rotation's abandoned next key).
pub(crate) fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path)?;
    Ok(())
}

/// Moves a rotation's new key at `from` over the key at `to` and syncs the directory.
/// Another process may have moved it first (it finishes an interrupted rotation under the
/// write lock): then `from` is gone and `to` already holds it.
pub(crate) fn install(from: &Path, to: &Path) -> Result<(), StoreError> {
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            load(to)?;
        }
        Err(e) => return Err(e.into()),
    }
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(dir)
}

fn temp_path(path: &Path) -> Result<PathBuf, StoreError> {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng
        .try_fill_bytes(&mut suffix)
        .map_err(|e| StoreError::KeyFile(format!("no operating-system randomness: {e}")))?;
    let name = format!("{KEY_FILE}.tmp-{:016x}", u64::from_le_bytes(suffix));
    Ok(path.with_file_name(name))
}

fn write_new(tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    // The umask can only remove bits, but set the mode explicitly in case the file system
    // ignored the requested one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let a = create(&path).unwrap();
        let b = load(&path).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(fs::read(&path).unwrap().len(), FILE_LEN);
        // A second creator (another process opening the same new store) gets the key that
        // won; the file is never replaced.
        let c = create(&path).unwrap();
        assert_eq!(c.0, a.0, "an existing key is never replaced");
        assert_eq!(load(&path).unwrap().0, a.0);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file remains");
    }

    #[test]
    fn encoding_is_checked() {
        let p = Path::new("k");
        let key = KeyBytes([7; KEY_LEN]);
        let good = encode(&key);
        assert_eq!(decode(&good, p).unwrap().0, key.0);
        let mut bad = good;
        bad[0] = b'X';
        assert!(decode(&bad, p).unwrap_err().to_string().contains("magic"));
        let mut bad = good;
        bad[20] ^= 1;
        assert!(decode(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        assert!(decode(&good[..43], p)
            .unwrap_err()
            .to_string()
            .contains("43 bytes"));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", KeyBytes([1; KEY_LEN])), "KeyBytes(..)");
    }
}

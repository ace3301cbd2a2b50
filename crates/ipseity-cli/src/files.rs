//! The files a user names on the command line (finger samples, manifests,
//! embedding files, records written out): reading only regular files, never
//! waiting on a FIFO, never past a bound; writing through a private temporary
//! file that nobody else can have prepared.
//!
//! Face images go through `ipseity_face::decode::load_image`, which applies the
//! same rules inside the face crate.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// `O_NONBLOCK`: opening a FIFO for reading then returns at once instead of
/// waiting for a writer, so the check on the opened file can refuse it. std
/// does not name the flag and its value differs between platforms; where it is
/// not known here it is 0 and only the check made before opening guards
/// against a FIFO.
#[cfg(unix)]
const O_NONBLOCK: i32 = if cfg!(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
)) {
    0o4000
} else if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)) {
    0x4
} else {
    0
};

/// The error for a path that cannot be read, with the OS's reason once.
fn cannot_read(path: &Path, e: &io::Error) -> CliError {
    CliError::input(
        "cannot_read_file",
        format!("cannot read {}: {e}", path.display()),
    )
}

/// Opens `path` for reading if it is a regular file (or a symbolic link to
/// one); returns the file and its size.
///
/// The type is checked before opening, because opening a device can have
/// effects of its own and opening a FIFO waits for a writer; the open does not
/// wait; and the type is checked again on the opened file, so a path swapped
/// for a FIFO or a device in between is refused too.
pub fn open_regular(path: &Path) -> Result<(File, u64), CliError> {
    let before = fs::metadata(path).map_err(|e| cannot_read(path, &e))?;
    if !before.is_file() {
        return Err(not_regular(path, &before.file_type()));
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| cannot_read(path, &e))?;
    let opened = file.metadata().map_err(|e| cannot_read(path, &e))?;
    if !opened.is_file() {
        return Err(not_regular(path, &opened.file_type()));
    }
    Ok((file, opened.len()))
}

/// Reads the regular file `path` whole, refusing it with `too_large_code` when
/// it holds more than `limit` bytes: by its size before reading, and by what
/// was read, should it have grown meanwhile.
pub fn read_regular(
    path: &Path,
    limit: u64,
    too_large_code: &'static str,
) -> anyhow::Result<Vec<u8>> {
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(String::new, |s| format!(" {s} bytes,"));
        CliError::input(
            too_large_code,
            format!("{}:{size} over the {limit}-byte limit", path.display()),
        )
    };
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(too_large(Some(size)).into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| cannot_read(path, &e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(None).into());
    }
    Ok(bytes)
}

fn not_regular(path: &Path, t: &fs::FileType) -> CliError {
    CliError::input(
        "not_a_regular_file",
        format!(
            "{} is not a regular file (it is a {})",
            path.display(),
            file_kind(t)
        ),
    )
}

/// A word for what a non-regular path is.
fn file_kind(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
    }
    if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Writes `bytes` to `path`, readable and writable by the owner only, so that
/// a crash leaves either the old file or the new one.
///
/// The temporary file is created beside `path` under a name nobody can
/// predict, and only if it does not exist yet (`O_EXCL`, which also refuses to
/// follow a symbolic link): a link planted where the temporary file will be
/// cannot redirect the write. It is synced before the rename and removed if
/// anything fails. A symbolic link at `path` itself is replaced, not followed.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let cannot_write = |p: &Path, e: io::Error| {
        CliError::input(
            "cannot_write_file",
            format!("cannot write {}: {e}", p.display()),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| CliError::input("usage", format!("{} names no file", path.display())))?
        .to_string_lossy()
        .into_owned();
    let (tmp, mut file) = create_temp(&dir, &name).map_err(|e| cannot_write(&dir, e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(cannot_write(path, e).into());
    }
    // The rename is durable once the directory is; some file systems cannot
    // sync a directory, and the file itself is already safe, so no error.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `.{name}.{pid}.{random}.tmp` in `dir` with mode 0600, retrying on
/// the (unlikely) chance that the name exists.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for attempt in 0u32..16 {
        // std's hasher keys are drawn from the OS's random source per process.
        let mut h = RandomState::new().build_hasher();
        h.write_u32(attempt);
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        let tmp = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            h.finish()
        ));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_grew_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, [7u8; 10]).unwrap();
        assert_eq!(read_regular(&p, 10, "x").unwrap(), vec![7u8; 10]);
        let err = read_regular(&p, 9, "too_big").unwrap_err();
        assert_eq!(crate::error::code_of(&err), "too_big");
    }

    #[test]
    fn temporary_names_differ() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = create_temp(dir.path(), "out.iso").unwrap();
        let (b, _) = create_temp(dir.path(), "out.iso").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".out.iso.") && name.ends_with(".tmp"),
            "{name}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_private_and_replace_a_link_without_following_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "keep").unwrap();
        let out = dir.path().join("out.iso");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_private_atomic(&out, b"record").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        let meta = fs::symlink_metadata(&out).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&out).unwrap(), b"record");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "a temporary file was left behind");
    }
}

//! Where a test's store lives: the embedded store in a temporary directory, or a fresh
//! PostgreSQL database (with the template key in a temporary directory), so that one test
//! body runs on both backends. Shared by the store's, the engine's and the service's
//! tests (`#[path]`-included).
//!
//! PostgreSQL tests need `IPSEITY_TEST_DATABASE_URL` (the project's `tools/pg.sh` starts
//! a throwaway server and prints it). Without it they skip with a message, unless
//! `IPSEITY_REQUIRE_POSTGRES` or `IPSEITY_REQUIRE_SHARED` is set, as in CI, where they fail.

#![allow(dead_code)] // Each including test uses its own part.

use std::sync::atomic::{AtomicUsize, Ordering};

use ipseity_store::{Backend, PgStore, Store};

/// The environment variable naming the test server.
pub const DATABASE_ENV: &str = "IPSEITY_TEST_DATABASE_URL";

/// One test's store.
pub enum Place {
    /// The embedded store in this directory.
    Sqlite(tempfile::TempDir),
    /// A database of its own; the key file in `keys`.
    Postgres {
        /// The database's URL.
        url: String,
        /// The data directory holding the template key.
        keys: tempfile::TempDir,
    },
}

impl Place {
    /// A new embedded store.
    pub fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().expect("temporary directory"))
    }

    /// A new, empty PostgreSQL database, or `None` (with a message) when no server is
    /// configured and none is required.
    pub fn postgres(test: &str) -> Option<Place> {
        let Some(base) = std::env::var(DATABASE_ENV).ok().filter(|v| !v.is_empty()) else {
            let required = ["IPSEITY_REQUIRE_POSTGRES", "IPSEITY_REQUIRE_SHARED"]
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty() && x != "0"));
            assert!(
                !required,
                "{test}: {DATABASE_ENV} is not set but PostgreSQL tests are required \
                 (run tools/test.sh, which starts a server)"
            );
            eprintln!("{test}: skipped on PostgreSQL ({DATABASE_ENV} is not set; tools/pg.sh starts a server)");
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t_{}_{}_{}",
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(30)
                .collect::<String>()
                .to_ascii_lowercase(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = PgStore::create_database(&base, &name).expect("creating a test database");
        Some(Place::Postgres {
            url,
            keys: tempfile::tempdir().expect("temporary directory"),
        })
    }

    /// Every place this test runs on: the embedded store always, PostgreSQL when there.
    pub fn all(test: &str) -> Vec<Place> {
        let mut v = vec![Place::sqlite()];
        v.extend(Place::postgres(test));
        v
    }

    /// Opens a new connection to it (each call is another process's view).
    pub fn open(&self) -> Box<dyn Backend> {
        match self {
            Place::Sqlite(dir) => Box::new(Store::open(dir.path()).expect("open store")),
            Place::Postgres { url, keys } => {
                Box::new(PgStore::open(url, keys.path()).expect("open PostgreSQL store"))
            }
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Place::Sqlite(_) => "sqlite",
            Place::Postgres { .. } => "postgres",
        }
    }

    /// The data directory (the store itself, or the key's directory).
    pub fn dir(&self) -> &std::path::Path {
        match self {
            Place::Sqlite(d) => d.path(),
            Place::Postgres { keys, .. } => keys.path(),
        }
    }
}

/// A small tmpfs, unmounted on drop; `None` (with a message) where mounting is not allowed.
pub struct Tmpfs(pub tempfile::TempDir);

impl Tmpfs {
    pub fn new(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A PostgreSQL database whose every table lives in a tablespace on `disk`, so that a test
/// can fill the disk under the server's data files. The write-ahead log stays in the
/// server's own directory: a server that cannot extend a table answers "disk full"
/// (SQLSTATE 53100) and goes on, while one that cannot write its log stops altogether,
/// which the restart test covers. Dropped (database, then tablespace) on drop, so that the
/// tmpfs can be unmounted.
pub struct PgOnDisk {
    pub place: Place,
    admin_url: String,
    database: String,
    tablespace: String,
}

impl PgOnDisk {
    /// `None` (with a message) where no server is configured and none is required.
    pub fn new(test: &str, disk: &Tmpfs) -> Option<PgOnDisk> {
        use std::os::unix::fs::MetadataExt as _;
        let Some(Place::Postgres { url, keys }) = Place::postgres(test) else {
            return None;
        };
        // The test server listens on a socket in its own directory, owned by the server's
        // user; the tablespace's directory must belong to that user too.
        let host = url
            .split_once("host=")
            .map(|(_, h)| h.split('&').next().unwrap_or(h).to_owned())
            .expect("the test server's URL names its socket directory");
        let owner = std::fs::metadata(&host).expect("the socket directory");
        let location = disk.0.path().join("tablespace");
        std::fs::create_dir(&location).expect("tablespace directory");
        for dir in [disk.0.path(), location.as_path()] {
            std::os::unix::fs::chown(dir, Some(owner.uid()), Some(owner.gid()))
                .expect("giving the tablespace to the server's user");
        }
        // `Place::postgres` made an empty database; it moves into the tablespace.
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let (server, database) = path.rsplit_once('/').expect("the URL names a database");
        let database = database.to_owned();
        let tablespace = format!("{database}_ts");
        let admin_url = format!("{server}/postgres?{query}");
        psql(
            &admin_url,
            &format!(
                "CREATE TABLESPACE {tablespace} LOCATION '{}'",
                location.display()
            ),
        );
        psql(
            &admin_url,
            &format!("ALTER DATABASE {database} SET TABLESPACE {tablespace}"),
        );
        Some(PgOnDisk {
            place: Place::Postgres { url, keys },
            admin_url,
            database,
            tablespace,
        })
    }
}

impl Drop for PgOnDisk {
    fn drop(&mut self) {
        let _ = run_psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        );
        let _ = run_psql(
            &self.admin_url,
            &format!("DROP TABLESPACE IF EXISTS {}", self.tablespace),
        );
    }
}

fn run_psql(url: &str, sql: &str) -> std::io::Result<std::process::Output> {
    std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
}

fn psql(url: &str, sql: &str) {
    let out = run_psql(url, sql).expect("psql (PostgreSQL's client) runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

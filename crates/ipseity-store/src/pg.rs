//! [`PgStore`]: the same store on PostgreSQL, for a service that outgrows one file or
//! whose operators already run PostgreSQL (backups, replication, monitoring).
//!
//! What differs from the embedded store, and why:
//!
//! - **Writers are serialised by a transaction-level advisory lock** taken first in every
//!   write transaction, the counterpart of SQLite's `BEGIN IMMEDIATE`: a duplicate search
//!   and the insert it allows cannot be overtaken by another writer, whichever process or
//!   host it runs on.
//! - **Reads use a small connection pool**; writes use one dedicated connection, since the
//!   lock serialises them anyway.
//! - **The template key stays on the service's disk** (`template.key` in the data
//!   directory), never in the database: a database dump alone opens no template. The key
//!   is checked against a sealed constant in `meta`, as in the embedded store.
//! - **Migrations** are this module's own list, applied under the same advisory lock so
//!   that two services starting at once migrate once.
//!
//! Every call blocks (the client drives its own small runtime): call it from a blocking
//! thread, never from an async task. Dropping the store is safe anywhere.
//!
//! Connections are made without TLS: use a Unix socket or loopback, or a TLS-terminating
//! proxy, until the backend grows `sslmode` support.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use ipseity_core::{ApiKey, AuditEvent, EnrolmentSource, Modality, Scope, SubjectId, Template};
use postgres::{Client, GenericClient, NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use crate::attempts::{self, budget_after, AttemptGate, AttemptPolicy, AttemptState};
use crate::backend::{Backend, WriteOps};
use crate::chain::{self, Auditor, ChainHead, ChainReport};
use crate::crypto::template_aad;
use crate::envelope::{self, Keyring, MasterKey, AUDIT_KEY};
use crate::keys::{check_presented, join_scopes, new_key_material, row_to_key, split_presented};
use crate::source::{self, SealedSource};
use crate::store::{
    check_nonempty, check_purpose, consent_covers, consent_sql, from_hex, join_ids, split_ids,
    subject_from_sql, summary, to_hex, SealedRow, KEY_CHECK,
};
use crate::write::modality_of;
use crate::{
    clock, codec, AuditEntry, Erasure, PendingReview, ReviewOutcome, StoreError, SubjectSummary,
    TemplateMark,
};
use std::sync::Arc;

/// The advisory lock every writer takes (an arbitrary constant: "ipseity" in ASCII).
const WRITE_LOCK: i64 = 0x0069_7073_6569_7479;

/// Connections kept for readers.
const POOL_SIZE: u32 = 4;

/// Each entry moves the schema from version `i` to `i + 1`; append-only.
const MIGRATIONS: &[&str] = &[
    // 1: the embedded store's schema 1-3 at once: subjects, sealed templates with ids
    // that are never reused (the high-water mark in `meta`), the audit log, API keys.
    // Ids compare bytewise ("C"), as in SQLite, so pages and gallery order agree.
    r#"CREATE TABLE subjects (
         id         TEXT COLLATE "C" PRIMARY KEY,
         created_at TEXT NOT NULL,
         purpose    TEXT
     );
     CREATE TABLE templates (
         id         BIGINT PRIMARY KEY,
         subject_id TEXT COLLATE "C" NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         modality   BIGINT NOT NULL,
         model      TEXT NOT NULL,
         nonce      BYTEA NOT NULL,
         ciphertext BYTEA NOT NULL,
         created_at TEXT NOT NULL
     );
     CREATE INDEX templates_by_subject ON templates(subject_id);
     CREATE INDEX templates_by_modality ON templates(modality, subject_id, id);
     CREATE TABLE audit (
         id         BIGSERIAL PRIMARY KEY,
         at         TEXT NOT NULL,
         operation  TEXT NOT NULL,
         subject_id TEXT,
         purpose    TEXT,
         outcome    TEXT NOT NULL,
         detail     TEXT
     );
     CREATE TABLE api_keys (
         id            TEXT PRIMARY KEY,
         name          TEXT COLLATE "C" NOT NULL UNIQUE,
         secret_sha256 BYTEA NOT NULL,
         scopes        TEXT NOT NULL,
         purposes      TEXT NOT NULL,
         created_at    TEXT NOT NULL,
         revoked_at    TEXT
     );
     INSERT INTO meta (key, value) VALUES ('template_id_high_water', '0');"#,
    // 2: the embedded store's schema 4: the audit log becomes a hash chain.
    r#"ALTER TABLE audit ADD COLUMN actor TEXT;
     ALTER TABLE audit ADD COLUMN prev_hash BYTEA;
     ALTER TABLE audit ADD COLUMN hash BYTEA;"#,
    // 3: the embedded store's schema 5: failed verification attempts per subject.
    r#"CREATE TABLE attempts (
         subject_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
         failures     BIGINT NOT NULL,
         locked_until BIGINT,
         disabled     BOOLEAN NOT NULL
     );"#,
    // 4: the embedded store's schema 6: what each API key has searched in each hour.
    r#"CREATE TABLE budgets (
         holder TEXT COLLATE "C" NOT NULL,
         hour   BIGINT NOT NULL,
         used   BIGINT NOT NULL,
         PRIMARY KEY (holder, hour)
     );"#,
    // 5: the embedded store's schema 7: envelope encryption, each template's wrapped data
    // key. Rows from before are re-sealed under data keys of their own at open.
    r#"ALTER TABLE templates ADD COLUMN wrapped_key BYTEA;"#,
    // 6: the embedded store's schema 8: consent per subject and purpose.
    r#"CREATE TABLE consents (
         subject_id   TEXT COLLATE "C" NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         purpose      TEXT NOT NULL,
         given_at     TEXT NOT NULL,
         withdrawn_at TEXT,
         PRIMARY KEY (subject_id, purpose)
     );
     INSERT INTO consents (subject_id, purpose, given_at)
     SELECT id, purpose, created_at FROM subjects WHERE purpose IS NOT NULL;"#,
    // 7: the embedded store's schema 9: enrolments held for review.
    r#"ALTER TABLE subjects ADD COLUMN pending_of TEXT;"#,
    // 8: the embedded store's schema 10: enrolment sources, sealed.
    r#"CREATE TABLE sources (
         subject_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
         kind        BIGINT NOT NULL,
         nonce       BYTEA NOT NULL,
         ciphertext  BYTEA NOT NULL,
         wrapped_key BYTEA NOT NULL,
         created_at  TEXT NOT NULL
     );"#,
];

/// The first schema version whose audit rows are chained.
const CHAINED_SINCE: u32 = 2;
/// The first schema version with a data key per template.
const ENVELOPE_SINCE: u32 = 5;

/// Schema version this build writes to PostgreSQL.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        if e.code() == Some(&SqlState::DISK_FULL) {
            return StoreError::DiskFull;
        }
        // Class 58, "system error": the server's own disk failed a read, write or sync
        // (58030 io_error), which is the same fault as the embedded store's I/O error.
        if let Some(db) = e
            .as_db_error()
            .filter(|d| d.code().code().starts_with("58"))
        {
            return StoreError::Storage(format!("{} ({})", db.message(), db.code().code()));
        }
        // A server shutting down or restarting, or a connection that broke: the writer
        // reconnects on the next call and the pool replaces its connections.
        let down = [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        if e.is_closed()
            || e.code()
                .is_some_and(|c| down.contains(c) || c.code().starts_with("08"))
            || (e.as_db_error().is_none()
                && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()))
        {
            return StoreError::Unreachable("no connection to the server".into());
        }
        // The server's message and code name the failing statement's error; its DETAIL,
        // which may quote values, is left out.
        StoreError::Database(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

impl From<r2d2_postgres::r2d2::Error> for StoreError {
    fn from(e: r2d2_postgres::r2d2::Error) -> Self {
        StoreError::Unreachable(format!("no connection from the pool: {e}"))
    }
}

type Pool = r2d2_postgres::r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// The store on a PostgreSQL database; see the module documentation.
pub struct PgStore {
    // Options only so that `Drop` can move them to a plain thread: the client runs its
    // own runtime, which must not be dropped on an async worker. Always `Some` otherwise.
    writer: Option<Client>,
    pool: Option<Pool>,
    /// To connect the writer again after the server restarted.
    config: postgres::Config,
    keyring: Keyring,
    auditor: Auditor,
    key_dir: PathBuf,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("key_dir", &self.key_dir)
            .finish_non_exhaustive()
    }
}

fn parse_config(url: &str) -> Result<postgres::Config, StoreError> {
    url.parse::<postgres::Config>()
        // The URL may carry a password: the message does not repeat it.
        .map_err(|_| {
            StoreError::InvalidInput("the database URL is not a valid postgres:// URL".into())
        })
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host/db`, or with `host=/run/...`
    /// for a Unix socket), applies pending migrations, and opens the template key in
    /// `key_dir`, creating it on first use. Refuses when the database holds templates but
    /// the key file is missing or does not match.
    pub fn open(url: &str, key_dir: &Path) -> Result<PgStore, StoreError> {
        let config = parse_config(url)?;
        let mut writer = config.connect(NoTls)?;
        let found = migrate(&mut writer)?;
        let sealed_data = read_meta(&mut writer, KEY_CHECK)?.is_some();
        let keyring = Keyring::open(key_dir, sealed_data)?;
        let auditor = open_keys(&mut writer, &keyring, found)?;
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        let pool = r2d2_postgres::r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            // While the server is down a reader fails in seconds (503) rather than holding
            // its request for r2d2's default 30 s.
            .connection_timeout(std::time::Duration::from_secs(5))
            .build(manager)?;
        let mut store = PgStore {
            writer: Some(writer),
            pool: Some(pool),
            config,
            keyring,
            auditor,
            key_dir: key_dir.to_path_buf(),
        };
        if found < CHAINED_SINCE {
            store.chain_legacy_rows()?;
        }
        Ok(store)
    }

    /// Chains audit rows written before the chain existed, in row order, in one transaction.
    fn chain_legacy_rows(&mut self) -> Result<(), StoreError> {
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let rows = read_chain_rows(&mut tx)?;
        let mut prev = chain::GENESIS;
        for e in rows {
            let hash = chain::entry_hash(&self.auditor.chain, &prev, &e.fields());
            tx.execute(
                "UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3",
                &[&&prev[..], &&hash[..], &e.id],
            )?;
            prev = hash;
        }
        tx.commit()?;
        Ok(())
    }

    /// The master key that matches the database now, read inside `c`'s snapshot.
    fn master_in(&self, c: &mut impl GenericClient) -> Result<Arc<MasterKey>, StoreError> {
        let hex = read_meta(c, KEY_CHECK)?
            .ok_or_else(|| StoreError::Corrupt("the key check record is missing".into()))?;
        self.keyring.matching(&from_hex(&hex)?)
    }

    fn reader(
        &self,
    ) -> Result<r2d2_postgres::r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError>
    {
        Ok(self.pool.as_ref().ok_or_else(closed)?.get()?)
    }

    /// Creates an empty database `name` on the server `url` points at and returns the URL
    /// of the new database (the same user, host and options): for tests and set-up
    /// scripts. `name` is lower-case ASCII letters, digits and `_`.
    pub fn create_database(url: &str, name: &str) -> Result<String, StoreError> {
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::InvalidInput(format!(
                "database name {name:?}: use 1 to 63 of a-z 0-9 _"
            )));
        }
        let bad = || StoreError::InvalidInput("the database URL has no database path".into());
        let scheme_end = url.find("://").ok_or_else(bad)? + 3;
        let path = scheme_end + url[scheme_end..].find('/').ok_or_else(bad)?;
        let end = url[path..].find('?').map_or(url.len(), |q| path + q);
        let new_url = format!("{}/{name}{}", &url[..path], &url[end..]);
        let mut c = parse_config(url)?.connect(NoTls)?;
        // The name was checked above: an identifier cannot be a bound parameter.
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(new_url)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let (writer, pool) = (self.writer.take(), self.pool.take());
        // Closing a connection blocks on the client's runtime; a plain thread may block
        // wherever the store is dropped (an async worker included).
        let _ = std::thread::spawn(move || drop((writer, pool))).join();
    }
}

fn closed() -> StoreError {
    StoreError::Database("the store is closed".into())
}

/// The writer's connection, connecting again when the last one broke (the server was
/// restarted): what it was doing failed and was not acknowledged; what follows works.
fn live<'a>(
    writer: &'a mut Option<Client>,
    config: &postgres::Config,
) -> Result<&'a mut Client, StoreError> {
    if writer.as_ref().ok_or_else(closed)?.is_closed() {
        let fresh = config
            .connect(NoTls)
            .map_err(|e| StoreError::Unreachable(format!("reconnecting: {e}")))?;
        if let Some(old) = writer.replace(fresh) {
            // Closing blocks on the client's runtime: not on an async worker.
            let _ = std::thread::spawn(move || drop(old)).join();
        }
    }
    writer.as_mut().ok_or_else(closed)
}

/// Starts a transaction holding the writers' lock.
fn locked(c: &mut Client) -> Result<Transaction<'_>, StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    Ok(tx)
}

fn read_meta(c: &mut impl GenericClient, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| r.get(0)),
    )
}

/// As the embedded store's `open_keys`: checks the master key (writing the check into
/// a new database), finishes an interrupted rotation, reads the audit chain key and
/// re-seals rows from before envelope encryption, in one locked transaction.
fn open_keys(writer: &mut Client, keyring: &Keyring, found: u32) -> Result<Auditor, StoreError> {
    let mut tx = locked(writer)?;
    let master = match read_meta(&mut tx, KEY_CHECK)? {
        Some(hex) => {
            let check = from_hex(&hex)?;
            keyring.settle(&check)?;
            keyring.matching(&check)?
        }
        None => {
            let n: i64 = tx.query_one("SELECT COUNT(*) FROM templates", &[])?.get(0);
            if n != 0 {
                return Err(StoreError::Corrupt(
                    "the key check record is missing".into(),
                ));
            }
            let master = keyring.current();
            write_meta(&mut tx, KEY_CHECK, &to_hex(&master.make_key_check()?))?;
            master
        }
    };
    let stored = read_meta(&mut tx, AUDIT_KEY)?;
    let (chain_key, to_store) = envelope::chain_key(&master, stored.as_deref())?;
    if let Some(hex) = to_store {
        write_meta(&mut tx, AUDIT_KEY, &hex)?;
    }
    // Only at the upgrade (see the embedded store's `open_keys`).
    let legacy = if found >= ENVELOPE_SINCE {
        Vec::new()
    } else {
        tx.query(
            "SELECT id, modality, model, nonce, ciphertext, subject_id FROM templates
             WHERE wrapped_key IS NULL ORDER BY id",
            &[],
        )?
    };
    for r in &legacy {
        let row = sealed_legacy(r);
        let subject = subject_from_sql(r.get(5))?;
        let aad = template_aad(
            &subject,
            crate::store::modality_from_sql(row.modality)?,
            &row.model,
        );
        let mut plain = master.open_template(&row.nonce, &row.ciphertext, None, &aad)?;
        let resealed = master.seal_template(&plain, &aad);
        plain.fill(0);
        let (nonce, ct, wrapped) = resealed?;
        tx.execute(
            "UPDATE templates SET nonce = $1, ciphertext = $2, wrapped_key = $3 WHERE id = $4",
            &[&&nonce[..], &ct, &wrapped, &row.id],
        )?;
    }
    tx.commit()?;
    Ok(Auditor::new(chain_key))
}

/// As the embedded store's `rewrap_all`: every data key and the audit chain key from
/// `current` to `next`, a new key check, an audit row; in the caller's transaction.
fn rewrap_all(
    tx: &mut Transaction<'_>,
    current: &MasterKey,
    next: &MasterKey,
    auditor: &Auditor,
) -> Result<usize, StoreError> {
    const BATCH: i64 = 1024;
    let mut after = 0i64;
    let mut n = 0usize;
    loop {
        let rows = tx.query(
            "SELECT id, subject_id, modality, model, wrapped_key FROM templates
             WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &BATCH],
        )?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        for r in &rows {
            let id: i64 = r.get(0);
            let wrapped: Option<Vec<u8>> = r.get(4);
            let wrapped = wrapped.ok_or_else(|| {
                StoreError::Corrupt(format!("template {id} has no wrapped data key"))
            })?;
            let model: String = r.get(3);
            let aad = template_aad(
                &subject_from_sql(r.get(1))?,
                crate::store::modality_from_sql(r.get(2))?,
                &model,
            );
            tx.execute(
                "UPDATE templates SET wrapped_key = $1 WHERE id = $2",
                &[&current.rewrap(next, &wrapped, &aad)?, &id],
            )?;
            n += 1;
        }
    }
    // Enrolment sources: one per subject, far fewer than templates.
    let sources = tx.query(
        "SELECT subject_id, kind, wrapped_key FROM sources ORDER BY subject_id",
        &[],
    )?;
    for r in &sources {
        let subject: String = r.get(0);
        let wrapped: Vec<u8> = r.get(2);
        let aad = source::aad(
            &subject_from_sql(subject.clone())?,
            source::kind_from_sql(r.get(1))?,
        );
        tx.execute(
            "UPDATE sources SET wrapped_key = $1 WHERE subject_id = $2",
            &[&current.rewrap(next, &wrapped, &aad)?, &subject],
        )?;
    }
    let (audit_key, check) = envelope::rotated_meta(current, next, read_meta(tx, AUDIT_KEY)?)?;
    write_meta(tx, AUDIT_KEY, &audit_key)?;
    write_meta(tx, KEY_CHECK, &check)?;
    insert_audit(
        tx,
        auditor,
        &clock::now_rfc3339(),
        &AuditEvent::MasterKeyRotated { templates: n },
        None,
        None,
    )?;
    Ok(n)
}

/// Applies pending migrations; returns the version found before.
fn migrate(c: &mut Client) -> Result<u32, StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )?;
    let found = match read_meta(&mut tx, "schema_version")? {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?} is not a number")))?,
    };
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {found} is newer than this build supports \
             ({PG_SCHEMA_VERSION}); upgrade Ipseity"
        )));
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&PG_SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(found)
}

fn high_water(c: &mut impl GenericClient) -> Result<i64, StoreError> {
    let v = read_meta(c, "template_id_high_water")?
        .ok_or_else(|| StoreError::Corrupt("template_id_high_water is missing".into()))?;
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("template_id_high_water {v:?} is not a number")))
}

/// A read-only transaction that sees one snapshot throughout (repeatable read), for reads
/// whose parts must agree: an existence check and its rows, rows and the key check.
fn snapshot(c: &mut postgres::Client) -> Result<postgres::Transaction<'_>, postgres::Error> {
    c.build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

fn exists(c: &mut impl GenericClient, subject: &SubjectId) -> Result<bool, StoreError> {
    Ok(
        c.query_opt("SELECT 1 FROM subjects WHERE id = $1", &[&subject.as_str()])?
            .is_some(),
    )
}

/// Appends an audit row chained to the newest one; the caller's transaction holds the
/// writers' lock, so rows from several processes still form one chain.
fn insert_audit(
    c: &mut impl GenericClient,
    auditor: &Auditor,
    at: &str,
    event: &AuditEvent,
    subject: Option<&SubjectId>,
    purpose: Option<&str>,
) -> Result<(), StoreError> {
    check_purpose(purpose)?;
    let prev: Option<Vec<u8>> = c
        .query_opt("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", &[])?
        .and_then(|r| r.get(0));
    let prev = chain::to_hash(prev.as_deref()).unwrap_or(chain::GENESIS);
    let row = auditor.row(&prev, at, event, subject.map(SubjectId::as_str), purpose);
    c.execute(
        "INSERT INTO audit (at, operation, subject_id, purpose, outcome, detail, actor,
                            prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &at,
            &event.operation(),
            &subject.map(SubjectId::as_str),
            &purpose,
            &row.outcome,
            &row.detail,
            &auditor.actor,
            &&prev[..],
            &&row.hash[..],
        ],
    )?;
    Ok(())
}

fn read_chain_rows(c: &mut impl GenericClient) -> Result<Vec<chain::StoredEntry>, StoreError> {
    let rows = c.query(
        "SELECT id, at, operation, subject_id, purpose, outcome, detail, actor, prev_hash, hash
         FROM audit ORDER BY id",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| chain::StoredEntry {
            id: r.get(0),
            at: r.get(1),
            operation: r.get(2),
            subject: r.get(3),
            purpose: r.get(4),
            outcome: r.get(5),
            detail: r.get(6),
            actor: r.get(7),
            prev_hash: r.get(8),
            hash: r.get(9),
        })
        .collect())
}

/// A row read as `id, modality, model, nonce, ciphertext, wrapped_key` from `first` on.
fn sealed(r: &postgres::Row, first: usize) -> SealedRow {
    SealedRow {
        id: r.get(first),
        modality: r.get(first + 1),
        model: r.get(first + 2),
        nonce: r.get(first + 3),
        ciphertext: r.get(first + 4),
        wrapped: r.get(first + 5),
    }
}

fn sealed_legacy(r: &postgres::Row) -> SealedRow {
    SealedRow {
        id: r.get(0),
        modality: r.get(1),
        model: r.get(2),
        nonce: r.get(3),
        ciphertext: r.get(4),
        wrapped: None,
    }
}

fn write_meta(c: &mut impl GenericClient, key: &str, value: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )?;
    Ok(())
}

impl Backend for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn begin_write(&mut self) -> Result<Box<dyn WriteOps + '_>, StoreError> {
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let hex = read_meta(&mut tx, KEY_CHECK)?
            .ok_or_else(|| StoreError::Corrupt("the key check record is missing".into()))?;
        let master = self.keyring.matching(&from_hex(&hex)?)?;
        Ok(Box::new(PgWriteTx {
            tx: RefCell::new(tx),
            master,
            auditor: &self.auditor,
            now: clock::now_rfc3339(),
        }))
    }

    fn template_mark(&self) -> Result<TemplateMark, StoreError> {
        Ok(TemplateMark(high_water(&mut *self.reader()?)?))
    }

    fn templates(&self, subject: &SubjectId) -> Result<Vec<Template>, StoreError> {
        let mut c = self.reader()?;
        // One snapshot for the existence check and the rows.
        let mut tx = snapshot(&mut c)?;
        if !exists(&mut tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let rows = tx.query(
            "SELECT id, modality, model, nonce, ciphertext, wrapped_key FROM templates
             WHERE subject_id = $1 ORDER BY id",
            &[&subject.as_str()],
        )?;
        // The check from the same snapshot as the rows: a rotation either wrapped them all
        // or none of them.
        let master = self.master_in(&mut tx)?;
        tx.commit()?;
        rows.iter()
            .map(|r| sealed(r, 0).unseal(&master, subject))
            .collect()
    }

    fn enrolment_source(&self, subject: &SubjectId) -> Result<Option<EnrolmentSource>, StoreError> {
        let mut c = self.reader()?;
        // One snapshot for the existence check, the row and the key check.
        let mut tx = snapshot(&mut c)?;
        if !exists(&mut tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let row = tx.query_opt(
            "SELECT kind, nonce, ciphertext, wrapped_key FROM sources WHERE subject_id = $1",
            &[&subject.as_str()],
        )?;
        let master = self.master_in(&mut tx)?;
        tx.commit()?;
        row.map(|r| {
            SealedSource {
                kind: r.get(0),
                nonce: r.get(1),
                ciphertext: r.get(2),
                wrapped: r.get(3),
            }
            .unseal(&master, subject)
        })
        .transpose()
    }

    fn count_templates(&self, modality: Modality) -> Result<usize, StoreError> {
        let n: i64 = self
            .reader()?
            .query_one(
                "SELECT COUNT(*) FROM templates WHERE modality = $1",
                &[&i64::from(modality.code())],
            )?
            .get(0);
        usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("template count {n}")))
    }

    fn template_chunks(
        &self,
        modality: Modality,
        chunk_rows: usize,
        f: &mut dyn FnMut(Vec<(SubjectId, Template)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const FETCH: i64 = 4096;
        let chunk_rows = chunk_rows.max(1);
        let mut c = self.reader()?;
        // A portal (server-side cursor) streams the rows in one snapshot, so a million
        // templates never sit in the client as ciphertexts.
        let mut tx = snapshot(&mut c)?;
        let stmt = tx.prepare(
            "SELECT subject_id, id, modality, model, nonce, ciphertext, wrapped_key
             FROM templates WHERE modality = $1 AND subject_id IN (SELECT id FROM subjects WHERE pending_of IS NULL)
             ORDER BY subject_id, id",
        )?;
        let master = self.master_in(&mut tx)?;
        let code = i64::from(modality.code());
        let portal = tx.bind(&stmt, &[&code])?;
        let mut chunk = Vec::with_capacity(chunk_rows.min(1 << 16));
        loop {
            let rows = tx.query_portal(&portal, FETCH as i32)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let subject = subject_from_sql(r.get(0))?;
                let t = sealed(r, 1).unseal(&master, &subject)?;
                chunk.push((subject, t));
                if chunk.len() == chunk_rows {
                    f(std::mem::replace(
                        &mut chunk,
                        Vec::with_capacity(chunk_rows.min(1 << 16)),
                    ))?;
                }
            }
        }
        if !chunk.is_empty() {
            f(chunk)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn list_page(
        &self,
        after: Option<&SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.reader()?.query(
            "SELECT s.id, s.created_at, COUNT(t.id) FROM subjects s
             LEFT JOIN templates t ON t.subject_id = s.id
             WHERE s.pending_of IS NULL AND ($1::TEXT IS NULL OR s.id > $1)
             GROUP BY s.id ORDER BY s.id LIMIT $2",
            &[&after.map(SubjectId::as_str), &limit],
        )?;
        rows.iter()
            .map(|r| summary(r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn subject_count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .reader()?
            .query_one(
                "SELECT COUNT(*) FROM subjects WHERE pending_of IS NULL",
                &[],
            )?
            .get(0);
        usize::try_from(n).map_err(|_| StoreError::Corrupt("negative subject count".into()))
    }

    fn erase(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<Erasure, StoreError> {
        check_purpose(purpose)?;
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let templates = tx.execute(
            "DELETE FROM templates WHERE subject_id = $1",
            &[&subject.as_str()],
        )?;
        if tx.execute("DELETE FROM subjects WHERE id = $1", &[&subject.as_str()])? == 0 {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let templates = usize::try_from(templates)
            .map_err(|_| StoreError::Corrupt("deleted row count".into()))?;
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &AuditEvent::Erased { templates },
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        // PostgreSQL's own WAL and any archive of it are the server's to recycle.
        Ok(Erasure {
            templates,
            wal_wiped: false,
        })
    }

    fn set_consent(
        &mut self,
        subject: &SubjectId,
        purpose: &str,
        given: bool,
    ) -> Result<(), StoreError> {
        check_purpose(Some(purpose))?;
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        if !exists(&mut tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let sql = if given {
            consent_sql::GIVE
        } else {
            consent_sql::WITHDRAW
        };
        tx.execute(sql, &[&subject.as_str(), &purpose, &now])?;
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &AuditEvent::Consent { given },
            Some(subject),
            Some(purpose),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn consented(&self, subject: &SubjectId, purpose: Option<&str>) -> Result<bool, StoreError> {
        // SUM of an integer column is BIGINT, as COUNT is.
        let r = self
            .reader()?
            .query_one(consent_sql::COUNT, &[&subject.as_str(), &purpose])?;
        Ok(consent_covers(r.get(0), r.get(1), purpose))
    }

    fn pending_reviews(&self, limit: usize) -> Result<Vec<PendingReview>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.reader()?.query(
            "SELECT id, created_at, pending_of FROM subjects WHERE pending_of IS NOT NULL
             ORDER BY created_at, id LIMIT $1",
            &[&limit],
        )?;
        rows.iter()
            .map(|r| {
                Ok(PendingReview {
                    subject: subject_from_sql(r.get(0))?,
                    created_at: r.get(1),
                    matches: split_ids(r.get(2))?,
                })
            })
            .collect()
    }

    fn pending_of(&self, subject: &SubjectId) -> Result<Option<Vec<SubjectId>>, StoreError> {
        let row = self.reader()?.query_opt(
            "SELECT pending_of FROM subjects WHERE id = $1",
            &[&subject.as_str()],
        )?;
        row.and_then(|r| r.get::<_, Option<String>>(0))
            .map(|m| split_ids(&m))
            .transpose()
    }

    fn resolve_review(
        &mut self,
        subject: &SubjectId,
        outcome: &ReviewOutcome,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_purpose(purpose)?;
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let held = tx.query_opt(
            "SELECT pending_of FROM subjects WHERE id = $1",
            &[&subject.as_str()],
        )?;
        let Some(matches) = held.and_then(|r| r.get::<_, Option<String>>(0)) else {
            return Err(StoreError::UnknownSubject(subject.clone()));
        };
        if outcome.removes(&split_ids(&matches)?)? {
            tx.execute(
                "DELETE FROM templates WHERE subject_id = $1",
                &[&subject.as_str()],
            )?;
            tx.execute("DELETE FROM subjects WHERE id = $1", &[&subject.as_str()])?;
        } else {
            tx.execute(
                "UPDATE subjects SET pending_of = NULL WHERE id = $1",
                &[&subject.as_str()],
            )?;
            // New ids above the high-water mark (see the embedded store).
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM templates WHERE subject_id = $1 ORDER BY id",
                    &[&subject.as_str()],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut next = high_water(&mut tx)?;
            for id in ids {
                next += 1;
                tx.execute("UPDATE templates SET id = $1 WHERE id = $2", &[&next, &id])?;
            }
            tx.execute(
                "UPDATE meta SET value = $1 WHERE key = 'template_id_high_water'",
                &[&next.to_string()],
            )?;
        }
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &outcome.event(),
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        Ok(())
    }

    fn rotate_master(&mut self) -> Result<usize, StoreError> {
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let hex = read_meta(&mut tx, KEY_CHECK)?
            .ok_or_else(|| StoreError::Corrupt("the key check record is missing".into()))?;
        let current = self.keyring.matching(&from_hex(&hex)?)?;
        let next = self.keyring.prepare_next()?;
        let done = rewrap_all(&mut tx, &current, &next.master, &self.auditor)
            .and_then(|n| tx.commit().map(|()| n).map_err(StoreError::from));
        match done {
            Ok(n) => {
                self.keyring.install(next)?;
                Ok(n)
            }
            Err(e) => {
                self.keyring.discard(next);
                Err(e)
            }
        }
    }

    fn record_audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        insert_audit(&mut tx, &self.auditor, &now, event, subject, purpose)?;
        tx.commit()?;
        Ok(())
    }

    fn set_actor(&mut self, actor: Option<&str>) {
        self.auditor.actor = actor.map(crate::store::clip_actor);
    }

    fn verify_audit(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, StoreError> {
        let rows = read_chain_rows(&mut *self.reader()?)?;
        Ok(chain::verify(&self.auditor.chain, rows, anchor))
    }

    fn begin_attempt(
        &mut self,
        subject: &SubjectId,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<AttemptGate, StoreError> {
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        if !exists(&mut tx, subject)? {
            return Ok(AttemptGate::Open);
        }
        let state = tx
            .query_opt(
                "SELECT failures, locked_until, disabled FROM attempts WHERE subject_id = $1",
                &[&subject.as_str()],
            )?
            .map(|r| AttemptState {
                failures: r.get(0),
                locked_until: r.get(1),
                disabled: r.get(2),
            })
            .unwrap_or_default();
        let (gate, next) = attempts::begin(state, now, policy);
        if let Some(n) = next {
            tx.execute(
                "INSERT INTO attempts (subject_id, failures, locked_until, disabled)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (subject_id) DO UPDATE SET failures = excluded.failures,
                     locked_until = excluded.locked_until, disabled = excluded.disabled",
                &[&subject.as_str(), &n.failures, &n.locked_until, &n.disabled],
            )?;
        }
        tx.commit()?;
        Ok(gate)
    }

    fn charge_budget(
        &mut self,
        holder: &str,
        hour: i64,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        // Hours long gone are of no use to anyone.
        tx.execute("DELETE FROM budgets WHERE hour < $1", &[&(hour - 24)])?;
        let used: i64 = tx
            .query_opt(
                "SELECT used FROM budgets WHERE holder = $1 AND hour = $2",
                &[&holder, &hour],
            )?
            .map_or(0, |r| r.get(0));
        let Some(next) = budget_after(used, amount, limit) else {
            return Ok(false);
        };
        tx.execute(
            "INSERT INTO budgets (holder, hour, used) VALUES ($1, $2, $3)
             ON CONFLICT (holder, hour) DO UPDATE SET used = excluded.used",
            &[&holder, &hour, &next],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn finish_attempt(&mut self, subject: &SubjectId, accepted: bool) -> Result<(), StoreError> {
        if accepted {
            let mut tx = locked(live(&mut self.writer, &self.config)?)?;
            tx.execute(
                "DELETE FROM attempts WHERE subject_id = $1",
                &[&subject.as_str()],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    fn unlock(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        if !exists(&mut tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        tx.execute(
            "DELETE FROM attempts WHERE subject_id = $1",
            &[&subject.as_str()],
        )?;
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &AuditEvent::Unlocked,
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.reader()?.query(
            "SELECT id, at, operation, subject_id, purpose, outcome, detail, actor FROM audit
             ORDER BY id DESC LIMIT $1",
            &[&limit],
        )?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.get(0),
                    at: r.get(1),
                    operation: r.get(2),
                    subject: r
                        .get::<_, Option<String>>(3)
                        .map(subject_from_sql)
                        .transpose()?,
                    purpose: r.get(4),
                    outcome: r.get(5),
                    detail: r.get(6),
                    actor: r.get(7),
                })
            })
            .collect()
    }

    fn create_key(
        &mut self,
        name: &str,
        scopes: &[Scope],
        purposes: &[String],
    ) -> Result<(ApiKey, String), StoreError> {
        let (id, secret) = new_key_material(name, scopes, purposes)?;
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let inserted = tx.execute(
            "INSERT INTO api_keys (id, name, secret_sha256, scopes, purposes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            &[
                &id,
                &name,
                &crate::keys::digest(&secret),
                &join_scopes(scopes),
                &purposes.join("\n"),
                &now,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::InvalidInput(format!(
                "a key named {name:?} exists already; revoke it or choose another name"
            )));
        }
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &AuditEvent::KeyCreated {
                name: name.to_owned(),
            },
            None,
            None,
        )?;
        tx.commit()?;
        let key = format!("{}{id}_{secret}", crate::keys::KEY_PREFIX);
        Ok((
            ApiKey {
                id,
                name: name.to_owned(),
                scopes: scopes.to_vec(),
                purposes: purposes.to_vec(),
                created_at: now,
                revoked_at: None,
            },
            key,
        ))
    }

    fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = self.reader()?.query(
            "SELECT id, name, scopes, purposes, created_at, revoked_at FROM api_keys
             ORDER BY name",
            &[],
        )?;
        rows.iter()
            .map(|r| row_to_key(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect()
    }

    fn revoke_key(&mut self, name: &str) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let mut tx = locked(live(&mut self.writer, &self.config)?)?;
        let n = tx.execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            &[&now, &name],
        )?;
        if n == 0 {
            return Err(StoreError::InvalidInput(format!(
                "no active key named {name:?}"
            )));
        }
        insert_audit(
            &mut tx,
            &self.auditor,
            &now,
            &AuditEvent::KeyRevoked {
                name: name.to_owned(),
            },
            None,
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some((id, secret)) = split_presented(presented) else {
            return Ok(None);
        };
        let Some(r) = self.reader()?.query_opt(
            "SELECT id, name, secret_sha256, scopes, purposes, created_at, revoked_at
             FROM api_keys WHERE id = $1",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let hash: Vec<u8> = r.get(2);
        check_presented(
            secret,
            r.get(0),
            r.get(1),
            &hash,
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        )
    }
}

/// A write transaction on PostgreSQL, holding the writers' advisory lock.
struct PgWriteTx<'a> {
    // The client needs `&mut` for every statement, while the trait's reads take `&self`.
    tx: RefCell<Transaction<'a>>,
    master: Arc<MasterKey>,
    auditor: &'a Auditor,
    now: String,
}

impl PgWriteTx<'_> {
    fn create(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        pending_of: Option<&str>,
    ) -> Result<(), StoreError> {
        check_nonempty(templates)?;
        check_purpose(purpose)?;
        let inserted = self.tx.get_mut().execute(
            "INSERT INTO subjects (id, created_at, purpose, pending_of) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            &[&subject.as_str(), &self.now, &purpose, &pending_of],
        )?;
        if inserted == 0 {
            return Err(StoreError::DuplicateSubject(subject.clone()));
        }
        self.insert_templates(subject, templates)?;
        self.give_consent(subject, purpose)
    }

    fn give_consent(
        &mut self,
        subject: &SubjectId,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(p) = purpose {
            self.tx
                .get_mut()
                .execute(consent_sql::GIVE, &[&subject.as_str(), &p, &self.now])?;
        }
        Ok(())
    }

    fn insert_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
    ) -> Result<(), StoreError> {
        let tx = self.tx.get_mut();
        let mut next = high_water(tx)?;
        let stmt = tx.prepare(
            "INSERT INTO templates
                 (id, subject_id, modality, model, nonce, ciphertext, created_at, wrapped_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for t in templates {
            let mut plain = codec::encode(t).map_err(StoreError::InvalidTemplate)?;
            let aad = template_aad(subject, t.modality, &t.model);
            let sealed = self.master.seal_template(&plain, &aad);
            plain.fill(0);
            let (nonce, ct, wrapped) = sealed?;
            next += 1;
            tx.execute(
                &stmt,
                &[
                    &next,
                    &subject.as_str(),
                    &i64::from(t.modality.code()),
                    &t.model,
                    &&nonce[..],
                    &ct,
                    &self.now,
                    &wrapped,
                ],
            )?;
        }
        tx.execute(
            "UPDATE meta SET value = $1 WHERE key = 'template_id_high_water'",
            &[&next.to_string()],
        )?;
        Ok(())
    }
}

impl WriteOps for PgWriteTx<'_> {
    fn mark(&self) -> Result<TemplateMark, StoreError> {
        Ok(TemplateMark(high_water(&mut *self.tx.borrow_mut())?))
    }

    fn subject_exists(&self, subject: &SubjectId) -> Result<bool, StoreError> {
        exists(&mut *self.tx.borrow_mut(), subject)
    }

    fn modalities(&self, subject: &SubjectId) -> Result<Vec<Modality>, StoreError> {
        let rows = self.tx.borrow_mut().query(
            "SELECT DISTINCT modality FROM templates WHERE subject_id = $1",
            &[&subject.as_str()],
        )?;
        rows.iter()
            .map(|r| crate::store::modality_from_sql(r.get(0)))
            .collect()
    }

    fn templates_since(
        &self,
        modality: Modality,
        mark: TemplateMark,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError> {
        let rows = self.tx.borrow_mut().query(
            "SELECT subject_id, id, modality, model, nonce, ciphertext, wrapped_key
             FROM templates WHERE modality = $1 AND id > $2
             AND subject_id IN (SELECT id FROM subjects WHERE pending_of IS NULL)
             ORDER BY subject_id, id",
            &[&i64::from(modality.code()), &mark.0],
        )?;
        rows.iter()
            .map(|r| {
                let subject = subject_from_sql(r.get(0))?;
                let t = sealed(r, 1).unseal(&self.master, &subject)?;
                Ok((subject, t))
            })
            .collect()
    }

    fn hold_for_review(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        matches: &[SubjectId],
    ) -> Result<(), StoreError> {
        self.create(subject, templates, purpose, Some(&join_ids(matches)))?;
        self.audit(
            &AuditEvent::EnrolmentPending {
                modality: modality_of(templates),
                duplicate_of: matches.to_vec(),
            },
            Some(subject),
            purpose,
        )
    }

    fn enroll(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        self.create(subject, templates, purpose, None)?;
        self.audit(
            &AuditEvent::Enrolled {
                modality: modality_of(templates),
                templates: templates.len(),
            },
            Some(subject),
            purpose,
        )
    }

    fn record_source(
        &mut self,
        subject: &SubjectId,
        source: &EnrolmentSource,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_purpose(purpose)?;
        if !exists(self.tx.get_mut(), subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let sealed = source::seal(&self.master, subject, source)?;
        let inserted = self.tx.get_mut().execute(
            "INSERT INTO sources (subject_id, kind, nonce, ciphertext, wrapped_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subject_id) DO NOTHING",
            &[
                &subject.as_str(),
                &sealed.kind,
                &sealed.nonce,
                &sealed.ciphertext,
                &sealed.wrapped,
                &self.now,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::InvalidInput(format!(
                "{subject} already has an enrolment source"
            )));
        }
        self.audit(
            &AuditEvent::SourceRecorded { kind: source.kind },
            Some(subject),
            purpose,
        )
    }

    fn add_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_nonempty(templates)?;
        check_purpose(purpose)?;
        if !exists(self.tx.get_mut(), subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        self.insert_templates(subject, templates)?;
        self.give_consent(subject, purpose)?;
        self.audit(
            &AuditEvent::TemplatesAdded {
                modality: modality_of(templates),
                templates: templates.len(),
            },
            Some(subject),
            purpose,
        )
    }

    fn audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.now.clone();
        insert_audit(
            self.tx.get_mut(),
            self.auditor,
            &now,
            event,
            subject,
            purpose,
        )
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.into_inner().commit()?;
        Ok(())
    }
}

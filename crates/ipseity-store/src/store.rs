//! The [`Store`] itself: opening, migrating, and every read and write of subjects and audit rows.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipseity_core::{AuditEvent, EnrolmentSource, Modality, SubjectId, Template};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::attempts::{self, AttemptGate, AttemptPolicy, AttemptState};
use crate::chain::{self, Auditor};
use crate::crypto::template_aad;
use crate::envelope::{self, Keyring, MasterKey, AUDIT_KEY, MASTER_KEY_ENV};
use crate::key::KEY_FILE;
use crate::source::SealedSource;
use crate::write::{TemplateMark, WriteTx};
use crate::{clock, codec, schema, StoreError};

/// File name of the database inside the store directory.
pub const DB_FILE: &str = "ipseity.db";

/// Longest accepted `purpose`, in bytes.
pub const MAX_PURPOSE: usize = 256;

pub(crate) const KEY_CHECK: &str = "key_check";

/// One enrolled subject, as listed by [`Store::list`]; holds no biometric data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectSummary {
    /// The subject.
    pub id: SubjectId,
    /// How many templates are stored for it.
    pub templates: usize,
    /// When it was enrolled, RFC 3339 UTC.
    pub created_at: String,
}

/// What [`Store::erase`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// How many templates were deleted.
    pub templates: usize,
    /// Whether the WAL was checkpointed and truncated at once. When `false` a reader held
    /// it: the erased pages stay in the WAL file until the next open completes the wipe.
    pub wal_wiped: bool,
}

/// One row of the audit log; holds decisions and outcomes, never biometric data or scores.
/// Rows are hash-chained ([`crate::chain`]); [`Store::verify_audit`] checks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Increasing row number.
    pub id: i64,
    /// When it happened, RFC 3339 UTC.
    pub at: String,
    /// What was done: `enroll`, `add_templates`, `erase`, `verify`, `identify`, ...
    pub operation: String,
    /// The subject concerned, if any.
    pub subject: Option<SubjectId>,
    /// The declared purpose of the operation, if any.
    pub purpose: Option<String>,
    /// The result: `ok`, or a decision such as `accept`, `reject`, `needs_review`.
    pub outcome: String,
    /// Free text without biometric data, e.g. `templates=3`.
    pub detail: Option<String>,
    /// Who acted: `key:NAME` for an API key, `cli:USER` for the command line; `None` for
    /// rows written before actors were recorded.
    pub actor: Option<String>,
}

/// The embedded store: one directory holding `ipseity.db` and `template.key`.
///
/// Every write is one SQLite transaction in WAL mode with `synchronous=FULL`, so a crash
/// leaves either all or none of it. Templates are encrypted with AES-256-GCM under the key
/// in `template.key`.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) keyring: Keyring,
    pub(crate) auditor: Auditor,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn check_len(what: &str, value: &str, min: usize, max: usize) -> Result<(), StoreError> {
    if value.len() < min || value.len() > max {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be {min} to {max} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

/// An actor name cut to [`chain::MAX_ACTOR`] bytes on a character boundary.
pub(crate) fn clip_actor(a: &str) -> String {
    let mut end = a.len().min(chain::MAX_ACTOR);
    while !a.is_char_boundary(end) {
        end -= 1;
    }
    a[..end].to_owned()
}

pub(crate) fn check_purpose(purpose: Option<&str>) -> Result<(), StoreError> {
    purpose.map_or(Ok(()), |p| check_len("purpose", p, 1, MAX_PURPOSE))
}

pub(crate) fn check_nonempty(templates: &[Template]) -> Result<(), StoreError> {
    if templates.is_empty() {
        return Err(StoreError::InvalidInput(
            "at least one template is needed".into(),
        ));
    }
    Ok(())
}

pub(crate) fn modality_from_sql(code: i64) -> Result<Modality, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(Modality::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown modality code {code}")))
}

pub(crate) fn subject_from_sql(id: String) -> Result<SubjectId, StoreError> {
    SubjectId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A template row as stored, before decryption.
pub(crate) struct SealedRow {
    pub(crate) id: i64,
    pub(crate) modality: i64,
    pub(crate) model: String,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    /// The data key wrapped by the master key; `None` only for rows written before
    /// envelope encryption, until the upgrade re-seals them.
    pub(crate) wrapped: Option<Vec<u8>>,
}

impl SealedRow {
    pub(crate) fn unseal(
        &self,
        master: &MasterKey,
        subject: &SubjectId,
    ) -> Result<Template, StoreError> {
        let modality = modality_from_sql(self.modality)?;
        let aad = template_aad(subject, modality, &self.model);
        let mut plain =
            master.open_template(&self.nonce, &self.ciphertext, self.wrapped.as_deref(), &aad)?;
        let decoded = codec::decode(&plain, &self.model);
        plain.fill(0);
        let t = decoded.map_err(|e| StoreError::Corrupt(format!("template {}: {e}", self.id)))?;
        if t.modality != modality {
            return Err(StoreError::Corrupt(format!(
                "template {}: modality differs from its record",
                self.id
            )));
        }
        Ok(t)
    }
}

/// Reads the highest template id ever handed out (schema 2 keeps it in `meta`).
pub(crate) fn high_water(conn: &Connection) -> Result<i64, StoreError> {
    let v: String = conn.query_row(
        "SELECT value FROM meta WHERE key = 'template_id_high_water'",
        [],
        |r| r.get(0),
    )?;
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("template_id_high_water {v:?} is not a number")))
}

pub(crate) fn insert_templates(
    tx: &Transaction<'_>,
    master: &MasterKey,
    subject: &SubjectId,
    templates: &[Template],
    now: &str,
) -> Result<(), StoreError> {
    // Ids are handed out above the high-water mark rather than by SQLite, which would
    // reuse the highest id after an erasure and hide a new row from a `TemplateMark`.
    let mut next = high_water(tx)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO templates
             (id, subject_id, modality, model, nonce, ciphertext, created_at, wrapped_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // Each template is validated as it is inserted, inside the transaction: a bad one
    // anywhere in the list rolls back the rows written before it.
    for t in templates {
        let mut plain = codec::encode(t).map_err(StoreError::InvalidTemplate)?;
        let aad = template_aad(subject, t.modality, &t.model);
        let sealed = master.seal_template(&plain, &aad);
        plain.fill(0);
        let (nonce, ct, wrapped) = sealed?;
        next += 1;
        stmt.execute(params![
            next,
            subject.as_str(),
            t.modality.code(),
            t.model,
            &nonce[..],
            ct,
            now,
            wrapped
        ])?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'template_id_high_water'",
        [next.to_string()],
    )?;
    Ok(())
}

/// Appends an audit row chained to the newest one. The caller holds the write lock (a
/// transaction begun `IMMEDIATE`), so no other row can slip in between the read of the
/// previous hash and the insert.
pub(crate) fn insert_audit(
    conn: &Connection,
    auditor: &Auditor,
    at: &str,
    event: &AuditEvent,
    subject: Option<&SubjectId>,
    purpose: Option<&str>,
) -> Result<(), StoreError> {
    check_purpose(purpose)?;
    let prev: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let prev = chain::to_hash(prev.flatten().as_deref()).unwrap_or(chain::GENESIS);
    let row = auditor.row(&prev, at, event, subject.map(SubjectId::as_str), purpose);
    conn.execute(
        "INSERT INTO audit (at, operation, subject_id, purpose, outcome, detail, actor,
                            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            at,
            event.operation(),
            subject.map(SubjectId::as_str),
            purpose,
            row.outcome,
            row.detail,
            auditor.actor,
            &prev[..],
            &row.hash[..]
        ],
    )?;
    Ok(())
}

/// Chains audit rows written before the chain existed (an upgrade from schema 3), in row
/// order, in one transaction.
fn chain_legacy_rows(conn: &mut Connection, auditor: &Auditor) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows = read_chain_rows(&tx)?;
    let mut prev = chain::GENESIS;
    for mut e in rows {
        e.actor = None;
        let hash = chain::entry_hash(&auditor.chain, &prev, &e.fields());
        tx.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            params![&prev[..], &hash[..], e.id],
        )?;
        prev = hash;
    }
    tx.commit()?;
    Ok(())
}

/// Every audit row in row order, as the chain verifier reads them.
pub(crate) fn read_chain_rows(conn: &Connection) -> Result<Vec<chain::StoredEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, at, operation, subject_id, purpose, outcome, detail, actor, prev_hash, hash
         FROM audit ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(chain::StoredEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            operation: r.get(2)?,
            subject: r.get(3)?,
            purpose: r.get(4)?,
            outcome: r.get(5)?,
            detail: r.get(6)?,
            actor: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn subject_exists(conn: &Connection, subject: &SubjectId) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM subjects WHERE id = ?1",
            [subject.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Below this many free bytes a store is not opened for writing: SQLite would fail to map
/// its shared-memory file part way through, leave `-wal`/`-shm` files behind and call it
/// an I/O error. Refusing first gives `disk_full` and creates nothing.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Free bytes on the file system holding `dir` (for an unprivileged user), if known.
pub(crate) fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(dir)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// An I/O failure on a file system that is (nearly) full is a full disk.
pub(crate) fn full_disk_or(dir: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Database(_) | StoreError::Io(_)
            if free_bytes(dir).is_some_and(|f| f < MIN_FREE_BYTES) =>
        {
            StoreError::DiskFull
        }
        e => e,
    }
}

/// Creates the database file owner-only before SQLite does, and tightens an existing one:
/// it holds subject ids, purposes and the audit log. SQLite gives its `-wal` and `-shm`
/// files the mode of the database file, so they follow.
fn owner_only_db(db_path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db_path)?;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(fs::Permissions::from_mode(mode & 0o700))?;
        }
        for suffix in ["-wal", "-shm"] {
            let side = db_path.with_file_name(format!("{DB_FILE}{suffix}"));
            if let Ok(m) = fs::symlink_metadata(&side) {
                if m.is_file() && m.permissions().mode() & 0o077 != 0 {
                    fs::set_permissions(&side, fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db_path;
    Ok(())
}

/// The subjects an enrolment held for review matched, as `subjects.pending_of` keeps them
/// (ids never hold a comma).
pub(crate) fn join_ids(ids: &[SubjectId]) -> String {
    ids.iter()
        .map(SubjectId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn split_ids(s: &str) -> Result<Vec<SubjectId>, StoreError> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| subject_from_sql(x.to_owned()))
        .collect()
}

/// An enrolment held for review: who, when, and the enrolled subjects it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReview {
    /// The subject id the enrolment asked for.
    pub subject: SubjectId,
    /// When it was enrolled (RFC 3339).
    pub created_at: String,
    /// The enrolled subjects it matched.
    pub matches: Vec<SubjectId>,
}

/// A reviewer's decision on an enrolment held for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Not the same person as any match: it becomes an enrolled subject.
    NewSubject,
    /// The same person as this match (one of those it matched): the held enrolment is
    /// removed, the person stays enrolled once, as that subject.
    SamePerson(SubjectId),
    /// Refused (for example a fraudulent second identity): the held enrolment is removed.
    Rejected,
}

impl ReviewOutcome {
    pub(crate) fn word(&self) -> &'static str {
        match self {
            ReviewOutcome::NewSubject => "new_subject",
            ReviewOutcome::SamePerson(_) => "same_person",
            ReviewOutcome::Rejected => "rejected",
        }
    }

    /// Checks the outcome against the case; `Some(false)` when the held enrolment stays
    /// (becomes a subject), `Some(true)` when it is removed.
    pub(crate) fn removes(&self, matches: &[SubjectId]) -> Result<bool, StoreError> {
        match self {
            ReviewOutcome::NewSubject => Ok(false),
            ReviewOutcome::Rejected => Ok(true),
            ReviewOutcome::SamePerson(m) if matches.contains(m) => Ok(true),
            ReviewOutcome::SamePerson(m) => Err(StoreError::InvalidInput(format!(
                "{m} is not one of the subjects this enrolment matched"
            ))),
        }
    }

    pub(crate) fn event(&self) -> AuditEvent {
        AuditEvent::ReviewResolved {
            outcome: self.word(),
            same_as: match self {
                ReviewOutcome::SamePerson(m) => Some(m.clone()),
                _ => None,
            },
        }
    }
}

/// SQL shared by both backends (their placeholders differ, so each binds its own).
pub(crate) mod consent_sql {
    /// Gives (again) consent for a purpose: given now, no longer withdrawn.
    pub(crate) const GIVE: &str = "INSERT INTO consents (subject_id, purpose, given_at)
         VALUES ($1, $2, $3)
         ON CONFLICT (subject_id, purpose) DO UPDATE
         SET given_at = excluded.given_at, withdrawn_at = NULL";
    /// Withdraws it, recording a row even where none was given.
    pub(crate) const WITHDRAW: &str =
        "INSERT INTO consents (subject_id, purpose, given_at, withdrawn_at)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (subject_id, purpose) DO UPDATE SET withdrawn_at = excluded.withdrawn_at";
    /// Rows and active rows of a subject, all purposes or one.
    pub(crate) const COUNT: &str = "SELECT COUNT(*),
                COALESCE(SUM(CASE WHEN withdrawn_at IS NULL THEN 1 ELSE 0 END), 0)
         FROM consents WHERE subject_id = $1 AND (CAST($2 AS TEXT) IS NULL OR purpose = $2)";
}

/// Whether recorded consent covers `purpose`: an active consent for it; with no purpose
/// stated, any active consent, or none recorded at all (a subject enrolled without a
/// purpose through the library).
pub(crate) fn consent_covers(rows: i64, active: i64, purpose: Option<&str>) -> bool {
    active > 0 || (purpose.is_none() && rows == 0)
}

/// Records consent for the purpose an enrolment states.
pub(crate) fn give_consent(
    conn: &Connection,
    subject: &SubjectId,
    purpose: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    if let Some(p) = purpose {
        conn.execute(consent_sql::GIVE, params![subject.as_str(), p, now])?;
    }
    Ok(())
}

/// The sealed key check in `meta`, read inside the caller's transaction.
pub(crate) fn read_key_check(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let hex: String = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY_CHECK], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::Corrupt("the key check record is missing".into()))?;
    from_hex(&hex)
}

fn read_meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn write_meta(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Checks the master key against the database (writing the check into a new store),
/// finishes a rotation a crash interrupted, reads the audit chain key, and re-seals rows
/// from before envelope encryption under data keys of their own: one transaction.
fn open_keys(
    conn: &mut Connection,
    keyring: &Keyring,
    dir: &Path,
    found: u32,
) -> Result<Auditor, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let master = match read_meta(&tx, KEY_CHECK)? {
        Some(hex) => {
            let check = from_hex(&hex)?;
            keyring.settle(&check)?;
            keyring.matching(&check).map_err(|e| match e {
                StoreError::KeyFile(_) if std::env::var_os(MASTER_KEY_ENV).is_none() => {
                    StoreError::KeyFile(format!(
                        "{KEY_FILE} does not match the database in {}",
                        dir.display()
                    ))
                }
                e => e,
            })?
        }
        None => {
            let templates: i64 =
                tx.query_row("SELECT COUNT(*) FROM templates", [], |r| r.get(0))?;
            if templates != 0 {
                return Err(StoreError::Corrupt(
                    "the key check record is missing".into(),
                ));
            }
            let master = keyring.current();
            write_meta(&tx, KEY_CHECK, &to_hex(&master.make_key_check()?))?;
            master
        }
    };
    let stored = read_meta(&tx, AUDIT_KEY)?;
    let (chain_key, to_store) = envelope::chain_key(&master, stored.as_deref())?;
    if let Some(hex) = to_store {
        write_meta(&tx, AUDIT_KEY, &hex)?;
    }
    // Only at the upgrade: afterwards a row without a data key is a tampered row, which
    // fails on its own when read rather than stopping the store from opening.
    if found < schema::ENVELOPE_SINCE {
        reseal_legacy_rows(&tx, &master)?;
    }
    tx.commit()?;
    Ok(Auditor::new(chain_key))
}

/// Gives each template sealed under the master key itself (before envelope encryption) a
/// data key of its own.
fn reseal_legacy_rows(tx: &Transaction<'_>, master: &MasterKey) -> Result<(), StoreError> {
    let mut stmt = tx.prepare(
        "SELECT id, subject_id, modality, model, nonce, ciphertext FROM templates
         WHERE wrapped_key IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                SealedRow {
                    id: r.get(0)?,
                    modality: r.get(2)?,
                    model: r.get(3)?,
                    nonce: r.get(4)?,
                    ciphertext: r.get(5)?,
                    wrapped: None,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (subject, row) in rows {
        let subject = subject_from_sql(subject)?;
        let aad = template_aad(&subject, modality_from_sql(row.modality)?, &row.model);
        let mut plain = master.open_template(&row.nonce, &row.ciphertext, None, &aad)?;
        let sealed = master.seal_template(&plain, &aad);
        plain.fill(0);
        let (nonce, ct, wrapped) = sealed?;
        tx.execute(
            "UPDATE templates SET nonce = ?1, ciphertext = ?2, wrapped_key = ?3 WHERE id = ?4",
            params![&nonce[..], ct, wrapped, row.id],
        )?;
    }
    Ok(())
}

/// Re-wraps every template's data key and the audit chain key from `current` to `next`,
/// renews the key check and audits it, in the caller's transaction; returns how many
/// templates were re-wrapped.
fn rewrap_all(
    tx: &Transaction<'_>,
    current: &MasterKey,
    next: &MasterKey,
    auditor: &Auditor,
) -> Result<usize, StoreError> {
    const BATCH: i64 = 1024;
    let mut after = 0i64;
    let mut n = 0usize;
    loop {
        let rows = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, subject_id, modality, model, wrapped_key FROM templates
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, BATCH], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let Some(last) = rows.last() else { break };
        after = last.0;
        let mut update =
            tx.prepare_cached("UPDATE templates SET wrapped_key = ?1 WHERE id = ?2")?;
        for (id, subject, modality, model, wrapped) in rows {
            let wrapped = wrapped.ok_or_else(|| {
                StoreError::Corrupt(format!("template {id} has no wrapped data key"))
            })?;
            let aad = template_aad(
                &subject_from_sql(subject)?,
                modality_from_sql(modality)?,
                &model,
            );
            update.execute(params![current.rewrap(next, &wrapped, &aad)?, id])?;
            n += 1;
        }
    }
    // Enrolment sources: one per subject, far fewer than templates.
    let sources = tx
        .prepare("SELECT subject_id, kind, wrapped_key FROM sources ORDER BY subject_id")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (subject, kind, wrapped) in sources {
        let aad = crate::source::aad(
            &subject_from_sql(subject.clone())?,
            crate::source::kind_from_sql(kind)?,
        );
        tx.execute(
            "UPDATE sources SET wrapped_key = ?1 WHERE subject_id = ?2",
            params![current.rewrap(next, &wrapped, &aad)?, subject],
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

impl Store {
    /// Replaces the master key: re-wraps every data key (and the audit chain key) under a
    /// new one in one write transaction, then puts the new key in place. Other processes
    /// on the store pick the new key up on their next read or write. Returns how many
    /// templates' data keys were re-wrapped.
    pub fn rotate_master(&mut self) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = self.keyring.matching(&read_key_check(&tx)?)?;
        let next = self.keyring.prepare_next()?;
        let done = rewrap_all(&tx, &current, &next.master, &self.auditor)
            .and_then(|n| tx.commit().map(|()| n).map_err(StoreError::from));
        match done {
            Ok(n) => {
                self.keyring.install(next)?;
                Ok(n)
            }
            Err(e) => {
                self.keyring.discard(next);
                Err(full_disk_or(&self.dir, e))
            }
        }
    }

    /// Opens a row, loading the master key again once if another process rotated it
    /// since `master` was taken.
    pub(crate) fn unseal(
        &self,
        master: &mut Arc<MasterKey>,
        row: &SealedRow,
        subject: &SubjectId,
    ) -> Result<Template, StoreError> {
        match row.unseal(master, subject) {
            Err(StoreError::Crypto) => {
                let fresh = self.keyring.matching(&read_key_check(&self.conn)?)?;
                if Arc::ptr_eq(&fresh, master) {
                    return Err(StoreError::Crypto);
                }
                *master = fresh;
                row.unseal(master, subject)
            }
            other => other,
        }
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory, key and database on first use.
    ///
    /// Refuses to run when the database exists but the key file does not (a new key would
    /// make every stored template unreadable), when the key file is malformed or readable
    /// by group or others, or when the key does not match the database.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(dir)?;
        if free_bytes(dir).is_some_and(|f| f < MIN_FREE_BYTES) {
            return Err(StoreError::DiskFull);
        }
        Self::open_retrying(dir).map_err(|e| full_disk_or(dir, e))
    }

    /// [`Self::open_inner`], again after a pause while SQLite answers busy without
    /// waiting (as it does to connections that open a database another is creating or
    /// switching to WAL at the same moment), for up to about ten seconds. Opening is
    /// idempotent: a migration that lost the race rolled back whole.
    fn open_retrying(dir: &Path) -> Result<Store, StoreError> {
        let mut pause = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        loop {
            match Self::open_inner(dir) {
                Err(StoreError::Busy) if waited < Duration::from_secs(10) => {
                    std::thread::sleep(pause);
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    fn open_inner(dir: &Path) -> Result<Store, StoreError> {
        let db_path = dir.join(DB_FILE);
        // The key is always created before the database, so a database without a key means
        // the key was lost or moved, never that this is a first run.
        let keyring = Keyring::open(dir, exists(&db_path)?)?;

        owner_only_db(&db_path)?;
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch to WAL journal mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let _: i64 = conn.pragma_update_and_check(None, "secure_delete", "ON", |r| r.get(0))?;

        let found = schema::migrate(&mut conn)?;
        let auditor = open_keys(&mut conn, &keyring, dir, found)?;
        let mut store = Store {
            conn,
            keyring,
            auditor,
            dir: dir.to_path_buf(),
        };
        if found < schema::CHAINED_SINCE {
            chain_legacy_rows(&mut store.conn, &store.auditor)?;
        }
        // Completes the wipe of an erasure whose checkpoint a reader held off.
        store.checkpoint()?;
        Ok(store)
    }

    /// Opens an existing store and never creates one: for commands that only read, so that
    /// a mistyped directory is an error rather than a new empty store.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        if !exists(&dir.join(DB_FILE))? {
            return Err(StoreError::NoStore(dir.to_path_buf()));
        }
        // No free-space floor here: a reader may still work on a full disk.
        Self::open_retrying(dir).map_err(|e| full_disk_or(dir, e))
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Enrols a new subject with its templates and writes an `enroll` audit row, all in one
    /// transaction. Fails with [`StoreError::DuplicateSubject`] if the subject exists; on any
    /// failure nothing is written.
    pub fn enroll(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write()?;
        tx.enroll(subject, templates, purpose)?;
        tx.commit()
    }

    /// Appends templates to an enrolled subject and writes an `add_templates` audit row, in
    /// one transaction. Fails with [`StoreError::UnknownSubject`] if it is not enrolled.
    pub fn add_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write()?;
        tx.add_templates(subject, templates, purpose)?;
        tx.commit()
    }

    /// Starts a write transaction that holds the store's write lock until it is committed
    /// or dropped (dropping rolls back). Reads inside it see every committed write, so a
    /// check made in it cannot be overtaken by another writer.
    pub fn begin_write(&mut self) -> Result<WriteTx<'_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let master = self.keyring.matching(&read_key_check(&tx)?)?;
        Ok(WriteTx::new(tx, master, &self.auditor))
    }

    /// The newest template written so far. Read it before loading a gallery: the templates
    /// written after it are exactly those [`WriteTx::templates_since`] returns.
    pub fn template_mark(&self) -> Result<TemplateMark, StoreError> {
        Ok(TemplateMark(high_water(&self.conn)?))
    }

    /// The decrypted templates of one subject, in insertion order.
    pub fn templates(&self, subject: &SubjectId) -> Result<Vec<Template>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        if !subject_exists(&tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let mut stmt = tx.prepare_cached(
            "SELECT id, modality, model, nonce, ciphertext, wrapped_key FROM templates
             WHERE subject_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([subject.as_str()], |r| {
                Ok(SealedRow {
                    id: r.get(0)?,
                    modality: r.get(1)?,
                    model: r.get(2)?,
                    nonce: r.get(3)?,
                    ciphertext: r.get(4)?,
                    wrapped: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut master = self.keyring.current();
        rows.iter()
            .map(|row| self.unseal(&mut master, row, subject))
            .collect()
    }

    /// What vouched for the subject's enrolment, decrypted; `None` when nothing was
    /// recorded. Fails with [`StoreError::UnknownSubject`] for a subject that does not exist.
    pub fn enrolment_source(
        &self,
        subject: &SubjectId,
    ) -> Result<Option<EnrolmentSource>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        if !subject_exists(&tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let row = tx
            .query_row(
                "SELECT kind, nonce, ciphertext, wrapped_key FROM sources WHERE subject_id = ?1",
                [subject.as_str()],
                |r| {
                    Ok(SealedSource {
                        kind: r.get(0)?,
                        nonce: r.get(1)?,
                        ciphertext: r.get(2)?,
                        wrapped: r.get(3)?,
                    })
                },
            )
            .optional()?;
        drop(tx);
        let Some(row) = row else { return Ok(None) };
        let master = self.keyring.current();
        match row.unseal(&master, subject) {
            // Another process may have rotated the master key since it was loaded.
            Err(StoreError::Crypto) => {
                let fresh = self.keyring.matching(&read_key_check(&self.conn)?)?;
                if Arc::ptr_eq(&fresh, &master) {
                    return Err(StoreError::Crypto);
                }
                row.unseal(&fresh, subject).map(Some)
            }
            other => other.map(Some),
        }
    }

    /// Every stored template of one modality with its subject, for 1:N search; ordered by
    /// subject, then insertion.
    pub fn all_templates(
        &self,
        modality: Modality,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError> {
        let mut all = Vec::new();
        // One chunk holds everything, so the first chunk becomes the result without a copy.
        self.read_template_chunks(modality, usize::MAX, |chunk| {
            if all.is_empty() {
                all = chunk;
            } else {
                all.extend(chunk);
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(all)
    }

    /// How many templates of one modality are stored; a capacity hint for a caller that
    /// then reads them with [`Store::for_each_template_chunk`] (a write between the two
    /// calls can change the figure).
    pub fn count_templates(&self, modality: Modality) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM templates WHERE modality = ?1",
            [modality.code()],
            |r| r.get(0),
        )?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt(format!("template count {n}")))
    }

    /// Every stored template of one modality with its subject, in the order of
    /// [`Store::all_templates`], handed to `f` in chunks of at most `chunk_rows` rows
    /// (at least one), so that only one chunk of decrypted templates is alive at a time.
    ///
    /// Each chunk is fully decrypted and checked before `f` sees it. On the first error
    /// (a row that fails to decrypt or decode, or an error from `f`) reading stops and the
    /// error is returned; the chunks handed over before it were valid, the one being
    /// decrypted is dropped, so a caller building something from the chunks must discard
    /// it on error.
    pub fn for_each_template_chunk<E, F>(
        &self,
        modality: Modality,
        chunk_rows: usize,
        mut f: F,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
        F: FnMut(&[(SubjectId, Template)]) -> Result<(), E>,
    {
        self.read_template_chunks(modality, chunk_rows, |chunk| f(&chunk))
    }

    /// The reader behind [`Store::all_templates`] and [`Store::for_each_template_chunk`]:
    /// rows are decrypted as they are read (no chunk of ciphertexts is kept) and handed over
    /// by value, `chunk_rows` at a time.
    pub(crate) fn read_template_chunks<E, F>(
        &self,
        modality: Modality,
        chunk_rows: usize,
        mut f: F,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
        F: FnMut(Vec<(SubjectId, Template)>) -> Result<(), E>,
    {
        // Bounds the up-front allocation whatever `chunk_rows` is; a larger chunk grows.
        const MAX_PREALLOC: usize = 1 << 16;
        let chunk_rows = chunk_rows.max(1);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT subject_id, id, modality, model, nonce, ciphertext, wrapped_key
                 FROM templates WHERE modality = ?1 AND subject_id IN (SELECT id FROM subjects WHERE pending_of IS NULL)
                 ORDER BY subject_id, id",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt.query([modality.code()]).map_err(StoreError::from)?;
        let new_chunk = || Vec::with_capacity(chunk_rows.min(MAX_PREALLOC));
        let mut master = self.keyring.current();
        let mut chunk = new_chunk();
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let id: String = r.get(0).map_err(StoreError::from)?;
            let row = SealedRow {
                id: r.get(1).map_err(StoreError::from)?,
                modality: r.get(2).map_err(StoreError::from)?,
                model: r.get(3).map_err(StoreError::from)?,
                nonce: r.get(4).map_err(StoreError::from)?,
                ciphertext: r.get(5).map_err(StoreError::from)?,
                wrapped: r.get(6).map_err(StoreError::from)?,
            };
            let subject = subject_from_sql(id)?;
            let t = self.unseal(&mut master, &row, &subject)?;
            chunk.push((subject, t));
            if chunk.len() == chunk_rows {
                f(std::mem::replace(&mut chunk, new_chunk()))?;
            }
        }
        if !chunk.is_empty() {
            f(chunk)?;
        }
        Ok(())
    }

    /// All enrolled subjects, ordered by id.
    pub fn list(&self) -> Result<Vec<SubjectSummary>, StoreError> {
        self.list_page(None, usize::MAX)
    }

    /// Up to `limit` subjects with ids after `after`, ordered by id.
    pub fn list_page(
        &self,
        after: Option<&SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.created_at, COUNT(t.id) FROM subjects s
             LEFT JOIN templates t ON t.subject_id = s.id
             WHERE s.pending_of IS NULL AND (?1 IS NULL OR s.id > ?1)
             GROUP BY s.id ORDER BY s.id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after.map(SubjectId::as_str), limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, created_at, n)| summary(id, created_at, n))
            .collect()
    }

    /// Number of enrolled subjects.
    pub fn subject_count(&self) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM subjects WHERE pending_of IS NULL",
            [],
            |r| r.get(0),
        )?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt("negative subject count".into()))
    }

    /// Deletes a subject and all its templates and writes an `erase` audit row, in one
    /// transaction; then checkpoints and truncates the WAL so the erased ciphertexts do not
    /// linger there. Deleted pages are zeroed (`secure_delete`).
    ///
    /// The WAL can only be truncated when no other connection is reading it; such a reader
    /// is waited for up to the busy timeout. If it is still there, the erasure stands but
    /// [`Erasure::wal_wiped`] is `false`: the old pages stay in the WAL until the next open
    /// of the store, which completes the checkpoint.
    pub fn erase(
        &mut self,
        subject: &SubjectId,
        purpose: Option<&str>,
    ) -> Result<Erasure, StoreError> {
        check_purpose(purpose)?;
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let templates = tx.execute(
            "DELETE FROM templates WHERE subject_id = ?1",
            [subject.as_str()],
        )?;
        let subjects = tx.execute("DELETE FROM subjects WHERE id = ?1", [subject.as_str()])?;
        if subjects == 0 {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &AuditEvent::Erased { templates },
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        Ok(Erasure {
            templates,
            wal_wiped: self.checkpoint()?,
        })
    }

    /// Copies the WAL into the database and truncates it; `false` when a reader kept it.
    fn checkpoint(&self) -> Result<bool, StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// Records an operation that does not change the store, such as a verify or identify
    /// decision. The event's vocabulary carries no score and no biometric data.
    pub fn record_audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_audit(&tx, &self.auditor, &now, event, subject, purpose)?;
        tx.commit()?;
        Ok(())
    }

    /// Names who acts in the audit rows written from now on (`key:NAME`, `cli:USER`);
    /// `None` for nobody in particular. Over [`chain::MAX_ACTOR`] bytes is cut.
    pub fn set_actor(&mut self, actor: Option<&str>) {
        self.auditor.actor = actor.map(clip_actor);
    }

    /// Whether a verification of `subject` may begin at `now` (Unix seconds); see
    /// [`crate::attempts`].
    pub fn begin_attempt(
        &mut self,
        subject: &SubjectId,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<AttemptGate, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !subject_exists(&tx, subject)? {
            return Ok(AttemptGate::Open);
        }
        let state = tx
            .query_row(
                "SELECT failures, locked_until, disabled FROM attempts WHERE subject_id = ?1",
                [subject.as_str()],
                |r| {
                    Ok(AttemptState {
                        failures: r.get(0)?,
                        locked_until: r.get(1)?,
                        disabled: r.get::<_, i64>(2)? != 0,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        let (gate, next) = attempts::begin(state, now, policy);
        if let Some(n) = next {
            tx.execute(
                "INSERT INTO attempts (subject_id, failures, locked_until, disabled)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subject_id) DO UPDATE SET failures = excluded.failures,
                     locked_until = excluded.locked_until, disabled = excluded.disabled",
                params![
                    subject.as_str(),
                    n.failures,
                    n.locked_until,
                    i64::from(n.disabled)
                ],
            )?;
        }
        tx.commit()?;
        Ok(gate)
    }

    /// Spends `amount` of `holder`'s budget of `limit` for the hour `hour`; `false` (and
    /// nothing spent) when it would go over.
    pub fn charge_budget(
        &mut self,
        holder: &str,
        hour: i64,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Hours long gone are of no use to anyone.
        tx.execute("DELETE FROM budgets WHERE hour < ?1", [hour - 24])?;
        let used: i64 = tx
            .query_row(
                "SELECT used FROM budgets WHERE holder = ?1 AND hour = ?2",
                params![holder, hour],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let Some(next) = attempts::budget_after(used, amount, limit) else {
            return Ok(false);
        };
        tx.execute(
            "INSERT INTO budgets (holder, hour, used) VALUES (?1, ?2, ?3)
             ON CONFLICT (holder, hour) DO UPDATE SET used = excluded.used",
            params![holder, hour, next],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Ends an attempt: an accept clears the subject's failures.
    pub fn finish_attempt(
        &mut self,
        subject: &SubjectId,
        accepted: bool,
    ) -> Result<(), StoreError> {
        if accepted {
            self.conn.execute(
                "DELETE FROM attempts WHERE subject_id = ?1",
                [subject.as_str()],
            )?;
        }
        Ok(())
    }

    /// Clears a subject's failed attempts, back-off and disabling, and audits it.
    pub fn unlock(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !subject_exists(&tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        tx.execute(
            "DELETE FROM attempts WHERE subject_id = ?1",
            [subject.as_str()],
        )?;
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &AuditEvent::Unlocked,
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records that the subject gave (`given`) or withdrew consent for `purpose`, audited;
    /// a withdrawal holds for every operation from the moment it commits.
    pub fn set_consent(
        &mut self,
        subject: &SubjectId,
        purpose: &str,
        given: bool,
    ) -> Result<(), StoreError> {
        check_purpose(Some(purpose))?;
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !subject_exists(&tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let sql = if given {
            consent_sql::GIVE
        } else {
            consent_sql::WITHDRAW
        };
        tx.execute(sql, params![subject.as_str(), purpose, now])?;
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &AuditEvent::Consent { given },
            Some(subject),
            Some(purpose),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the subject's recorded consent covers `purpose` (see [`Backend::consented`]).
    ///
    /// [`Backend::consented`]: crate::Backend::consented
    pub fn consented(
        &self,
        subject: &SubjectId,
        purpose: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (rows, active): (i64, i64) = self.conn.query_row(
            consent_sql::COUNT,
            params![subject.as_str(), purpose],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(consent_covers(rows, active, purpose))
    }

    /// The enrolments held for review, oldest first (at most `limit`).
    pub fn pending_reviews(&self, limit: usize) -> Result<Vec<PendingReview>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, created_at, pending_of FROM subjects WHERE pending_of IS NOT NULL
             ORDER BY created_at, id LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, created_at, m)| {
                Ok(PendingReview {
                    subject: subject_from_sql(id)?,
                    created_at,
                    matches: split_ids(&m)?,
                })
            })
            .collect()
    }

    /// The subjects a held enrolment matched; `None` for an enrolled (or unknown) subject.
    pub fn pending_of(&self, subject: &SubjectId) -> Result<Option<Vec<SubjectId>>, StoreError> {
        let m: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT pending_of FROM subjects WHERE id = ?1",
                [subject.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        m.flatten().map(|m| split_ids(&m)).transpose()
    }

    /// Settles an enrolment held for review, audited; fails with
    /// [`StoreError::UnknownSubject`] when no enrolment of that id is held.
    pub fn resolve_review(
        &mut self,
        subject: &SubjectId,
        outcome: &ReviewOutcome,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_purpose(purpose)?;
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held: Option<Option<String>> = tx
            .query_row(
                "SELECT pending_of FROM subjects WHERE id = ?1",
                [subject.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(Some(matches)) = held else {
            return Err(StoreError::UnknownSubject(subject.clone()));
        };
        if outcome.removes(&split_ids(&matches)?)? {
            tx.execute(
                "DELETE FROM templates WHERE subject_id = ?1",
                [subject.as_str()],
            )?;
            tx.execute("DELETE FROM subjects WHERE id = ?1", [subject.as_str()])?;
        } else {
            tx.execute(
                "UPDATE subjects SET pending_of = NULL WHERE id = ?1",
                [subject.as_str()],
            )?;
            // New ids above the high-water mark, so that every server's next look at
            // "templates written since" finds them (their old ids lie behind its mark).
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM templates WHERE subject_id = ?1 ORDER BY id")?
                .query_map([subject.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut next = high_water(&tx)?;
            for id in ids {
                next += 1;
                tx.execute(
                    "UPDATE templates SET id = ?1 WHERE id = ?2",
                    params![next, id],
                )?;
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'template_id_high_water'",
                [next.to_string()],
            )?;
        }
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &outcome.event(),
            Some(subject),
            purpose,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Checks the audit log's hash chain, optionally against a head exported earlier.
    pub fn verify_audit(
        &self,
        anchor: Option<&chain::ChainHead>,
    ) -> Result<chain::ChainReport, StoreError> {
        let rows = read_chain_rows(&self.conn)?;
        Ok(chain::verify(&self.auditor.chain, rows, anchor))
    }

    /// The most recent `limit` audit rows, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, operation, subject_id, purpose, outcome, detail, actor FROM audit
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(id, at, operation, subject, purpose, outcome, detail, actor)| {
                    Ok(AuditEntry {
                        id,
                        at,
                        operation,
                        subject: subject.map(subject_from_sql).transpose()?,
                        purpose,
                        outcome,
                        detail,
                        actor,
                    })
                },
            )
            .collect()
    }
}

pub(crate) fn summary(
    id: String,
    created_at: String,
    n: i64,
) -> Result<SubjectSummary, StoreError> {
    Ok(SubjectSummary {
        id: subject_from_sql(id)?,
        templates: usize::try_from(n)
            .map_err(|_| StoreError::Corrupt("negative template count".into()))?,
        created_at,
    })
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn from_hex(s: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::Corrupt("the key check record is not hex".into());
    if !s.len().is_multiple_of(2) || s.len() > 1024 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn tpl(seed: f32) -> Template {
        Template::new(
            Modality::Face,
            "test-model-1",
            vec![seed, seed + 1.0, -seed],
            80,
        )
        .unwrap()
    }

    fn id(s: &str) -> SubjectId {
        SubjectId::new(s).unwrap()
    }

    /// `threads` threads opening the store in `dir` at the same moment: each one's
    /// subject count, or its error.
    fn open_together(dir: &Path, threads: usize) -> Vec<Result<usize, StoreError>> {
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (dir, barrier) = (dir.to_path_buf(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&dir).and_then(|s| s.subject_count())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn many_connections_open_one_store_at_once() {
        // Rounds of 24 threads opening together a store with something in its log.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("someone"), &[tpl(1.0)], None).unwrap();
        drop(s);
        for _ in 0..10 {
            for r in open_together(dir.path(), 24) {
                assert!(matches!(r, Ok(1)), "{r:?}");
            }
        }
    }

    #[test]
    fn a_new_store_opened_by_many_at_once_is_created_once() {
        // SQLite answers busy at once, without its timeout, to some of the connections
        // that open a database another is creating: opening must wait that out.
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            for r in open_together(dir.path(), 8) {
                assert!(matches!(r, Ok(0)), "{r:?}");
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        let b = vec![0, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert!(from_hex("é1").is_err());
    }

    /// A store holding `n` templates, two per subject, enrolled in reverse subject order
    /// (so the read order, by subject, differs from the insertion order).
    fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut subjects: Vec<Vec<Template>> = Vec::new();
        for i in 0..n {
            if i % 2 == 0 {
                subjects.push(Vec::new());
            }
            subjects.last_mut().unwrap().push(tpl(i as f32));
        }
        for (k, ts) in subjects.iter().enumerate().rev() {
            s.enroll(&id(&format!("s{k:03}")), ts, None).unwrap();
        }
        (dir, s)
    }

    /// The chunks `for_each_template_chunk` hands over, as owned vectors.
    fn chunks(s: &Store, rows: usize) -> Result<Vec<Vec<(SubjectId, Template)>>, StoreError> {
        let mut out = Vec::new();
        s.for_each_template_chunk(Modality::Face, rows, |c| {
            out.push(c.to_vec());
            Ok::<(), StoreError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn chunks_cover_every_template_in_order_at_each_boundary() {
        const C: usize = 3;
        for n in [0, 1, C, C + 1, 2 * C, 2 * C + 1] {
            let (_dir, s) = store_with(n);
            let all = s.all_templates(Modality::Face).unwrap();
            assert_eq!(all.len(), n);
            assert_eq!(s.count_templates(Modality::Face).unwrap(), n);
            assert_eq!(s.count_templates(Modality::Fingerprint).unwrap(), 0);
            // Ordered by subject, then insertion, although enrolled in reverse.
            let keys: Vec<(&str, f32)> =
                all.iter().map(|(i, t)| (i.as_str(), t.vector[0])).collect();
            let mut sorted = keys.clone();
            sorted.sort_by(|a, b| a.0.cmp(b.0).then(a.1.total_cmp(&b.1)));
            assert_eq!(keys, sorted);
            let got = chunks(&s, C).unwrap();
            assert_eq!(got.len(), n.div_ceil(C), "n = {n}");
            // Every chunk is full but the last, and none is empty.
            for (i, c) in got.iter().enumerate() {
                assert!(!c.is_empty() && c.len() <= C);
                if i + 1 < got.len() {
                    assert_eq!(c.len(), C);
                }
            }
            assert_eq!(got.concat(), all, "n = {n}");
            // A chunk size of 0 reads one row at a time; a huge one reads everything at once.
            assert_eq!(chunks(&s, 0).unwrap().len(), n);
            assert_eq!(chunks(&s, usize::MAX).unwrap().concat(), all);
        }
    }

    #[test]
    fn a_tampered_row_stops_the_chunks_before_its_own() {
        const C: usize = 3;
        let (_dir, s) = store_with(2 * C + 1);
        let all = s.all_templates(Modality::Face).unwrap();
        // Tamper the second row of the second chunk, in read order.
        let victim: i64 = s
            .conn
            .query_row(
                "SELECT id FROM templates ORDER BY subject_id, id LIMIT 1 OFFSET ?1",
                [C as i64 + 1],
                |r| r.get(0),
            )
            .unwrap();
        let mut ct: Vec<u8> = s
            .conn
            .query_row(
                "SELECT ciphertext FROM templates WHERE id = ?1",
                [victim],
                |r| r.get(0),
            )
            .unwrap();
        ct[0] ^= 0x01;
        s.conn
            .execute(
                "UPDATE templates SET ciphertext = ?1 WHERE id = ?2",
                params![ct, victim],
            )
            .unwrap();
        let mut seen = Vec::new();
        let r = s.for_each_template_chunk(Modality::Face, C, |c| {
            seen.push(c.to_vec());
            Ok::<(), StoreError>(())
        });
        assert!(matches!(r, Err(StoreError::Crypto)), "{r:?}");
        // Only the first, intact chunk was handed over.
        assert_eq!(seen, vec![all[..C].to_vec()]);
        assert!(matches!(
            s.all_templates(Modality::Face),
            Err(StoreError::Crypto)
        ));
    }

    #[test]
    fn an_error_from_the_callback_stops_the_reading() {
        let (_dir, s) = store_with(7);
        let mut calls = 0;
        let r = s.for_each_template_chunk(Modality::Face, 2, |_| {
            calls += 1;
            Err(StoreError::InvalidInput("stop".into()))
        });
        assert!(matches!(r, Err(StoreError::InvalidInput(_))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn pragmas_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let get = |p: &str| -> String {
            s.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert!(get("journal_mode").contains("wal"));
        assert_eq!(get("synchronous"), "Integer(2)");
        assert_eq!(get("foreign_keys"), "Integer(1)");
        assert_eq!(get("secure_delete"), "Integer(1)");
    }

    #[test]
    fn audit_rows_carry_no_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("a"), &[tpl(0.125)], Some("kyc")).unwrap();
        s.record_audit(&verified(), Some(&id("a")), Some("kyc"))
            .unwrap();
        s.erase(&id("a"), Some("request")).unwrap();
        let log = s.audit_log(10).unwrap();
        let ops: Vec<_> = log.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(ops, ["erase", "verify", "enroll"]);
        let text = serde_json::to_string(&log).unwrap();
        assert!(!text.contains("0.125"));
        assert_eq!(log[2].detail.as_deref(), Some("modality=face templates=1"));
        assert_eq!(s.audit_log(1).unwrap().len(), 1);
    }

    fn verified() -> AuditEvent {
        AuditEvent::Verified {
            modality: Modality::Face,
            decision: ipseity_core::Decision::Accept,
            compared: None,
        }
    }

    #[test]
    fn audit_fields_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let long = "x".repeat(MAX_PURPOSE + 1);
        assert!(matches!(
            s.record_audit(&verified(), None, Some(&long)),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            s.record_audit(&verified(), None, Some("")),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(s.audit_log(10).unwrap().is_empty());
    }

    #[test]
    fn empty_template_lists_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert!(matches!(
            s.enroll(&id("a"), &[], None),
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(s.subject_count().unwrap(), 0);
    }

    #[test]
    fn templates_sealed_before_envelope_encryption_get_data_keys_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        drop(s);
        // A row as schema 6 wrote it: sealed under the store key itself, no data key.
        let key = crate::key::load(&dir.path().join(KEY_FILE)).unwrap();
        let t = tpl(3.0);
        let aad = template_aad(&id("old"), Modality::Face, &t.model);
        let (nonce, ct) = crate::crypto::Sealer::new(&key)
            .seal(&codec::encode(&t).unwrap(), &aad)
            .unwrap();
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        // Back to schema 6, as an older build left it.
        c.execute_batch(
            "ALTER TABLE templates DROP COLUMN wrapped_key; DROP TABLE consents;
             ALTER TABLE subjects DROP COLUMN pending_of; DROP TABLE sources;
             UPDATE meta SET value = '6' WHERE key = 'schema_version';
             INSERT INTO subjects (id, created_at) VALUES ('old', '2026-01-01T00:00:00Z')",
        )
        .unwrap();
        c.execute(
            "INSERT INTO templates (id, subject_id, modality, model, nonce, ciphertext, created_at)
             VALUES (1, 'old', ?1, ?2, ?3, ?4, '2026-01-01T00:00:00Z')",
            params![Modality::Face.code(), t.model, &nonce[..], ct],
        )
        .unwrap();
        drop(c);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.templates(&id("old")).unwrap(), vec![t.clone()]);
        let (wrapped, new_ct): (Option<Vec<u8>>, Vec<u8>) = s
            .conn
            .query_row(
                "SELECT wrapped_key, ciphertext FROM templates WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(wrapped.map(|w| w.len()), Some(envelope::WRAPPED_LEN));
        assert_ne!(new_ct, ct, "re-sealed under its own data key");
        drop(s);
        // And it survives a rotation.
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.rotate_master().unwrap(), 1);
        assert_eq!(s.templates(&id("old")).unwrap(), vec![t]);
    }

    #[test]
    fn a_full_disk_is_reported_and_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("a"), &[tpl(1.0)], None).unwrap();
        // Cap the database at its current size, as a full disk would.
        let pages: i64 = s
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let _: i64 = s
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |r| r.get(0))
            .unwrap();
        let big = Template::new(Modality::Face, "m", vec![0.5; 4096], 50).unwrap();
        let err = s.enroll(&id("b"), &vec![big; 16], Some("p")).unwrap_err();
        assert!(matches!(err, StoreError::DiskFull), "{err}");
        assert_eq!(s.subject_count().unwrap(), 1);
        assert_eq!(s.audit_log(10).unwrap().len(), 1);
    }

    #[test]
    fn debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let d = format!("{s:?}");
        assert!(d.starts_with("Store {"));
        assert!(!d.contains("keyring"));
    }
}

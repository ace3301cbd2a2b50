//! Versioned schema migrations; the only place that creates or alters tables.
//!
//! `meta.schema_version` records how many entries of `MIGRATIONS` have been applied.
//! Migrations are append-only: never edit a released one, add a new one.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;

/// Schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: subjects, encrypted templates, audit log.
    "CREATE TABLE subjects (
         id         TEXT PRIMARY KEY NOT NULL,
         created_at TEXT NOT NULL,
         purpose    TEXT
     ) STRICT;
     CREATE TABLE templates (
         id         INTEGER PRIMARY KEY,
         subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         modality   INTEGER NOT NULL,
         model      TEXT NOT NULL,
         nonce      BLOB NOT NULL,
         ciphertext BLOB NOT NULL,
         created_at TEXT NOT NULL
     ) STRICT;
     CREATE INDEX templates_by_subject ON templates(subject_id);
     CREATE INDEX templates_by_modality ON templates(modality);
     CREATE TABLE audit (
         id         INTEGER PRIMARY KEY,
         at         TEXT NOT NULL,
         operation  TEXT NOT NULL,
         subject_id TEXT,
         purpose    TEXT,
         outcome    TEXT NOT NULL,
         detail     TEXT
     ) STRICT;",
    // 2: template ids are never reused, so "every template with an id above N" names exactly
    // the templates written since a reader saw N (the enrolment de-duplication re-checks
    // them inside its write transaction). SQLite would reuse the highest id after a delete.
    "INSERT INTO meta (key, value)
     SELECT 'template_id_high_water', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM templates;",
    // 3: relying parties' API keys. Only a SHA-256 of each key's secret is kept; the key
    // is shown once, when it is created.
    "CREATE TABLE api_keys (
         id         TEXT PRIMARY KEY NOT NULL,
         name       TEXT NOT NULL UNIQUE,
         secret_sha256 BLOB NOT NULL,
         scopes     TEXT NOT NULL,
         purposes   TEXT NOT NULL,
         created_at TEXT NOT NULL,
         revoked_at TEXT
     ) STRICT;",
    // 4: the audit log becomes a hash chain (see `chain`): who acted, and each entry's
    // previous and own hash. Rows written before are chained at the upgrade (`Store::open`).
    "ALTER TABLE audit ADD COLUMN actor TEXT;
     ALTER TABLE audit ADD COLUMN prev_hash BLOB;
     ALTER TABLE audit ADD COLUMN hash BLOB;",
    // 5: failed verification attempts per subject (see `attempts`); the row goes with the
    // subject.
    "CREATE TABLE attempts (
         subject_id   TEXT PRIMARY KEY NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         failures     INTEGER NOT NULL,
         locked_until INTEGER,
         disabled     INTEGER NOT NULL
     ) STRICT;",
    // 6: what each API key has searched in each hour (`Backend::charge_budget`).
    "CREATE TABLE budgets (
         holder TEXT NOT NULL,
         hour   INTEGER NOT NULL,
         used   INTEGER NOT NULL,
         PRIMARY KEY (holder, hour)
     ) STRICT;",
    // 7: envelope encryption (see `envelope`): each template's data key, wrapped by the
    // master key. Rows from before are re-sealed under data keys of their own at open.
    "ALTER TABLE templates ADD COLUMN wrapped_key BLOB;",
    // 8: consent per subject and purpose (`Backend::set_consent`); an enrolment records
    // consent for its purpose, as the subjects enrolled before did for theirs.
    "CREATE TABLE consents (
         subject_id   TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         purpose      TEXT NOT NULL,
         given_at     TEXT NOT NULL,
         withdrawn_at TEXT,
         PRIMARY KEY (subject_id, purpose)
     ) STRICT;
     INSERT INTO consents (subject_id, purpose, given_at)
     SELECT id, purpose, created_at FROM subjects WHERE purpose IS NOT NULL;",
    // 9: an enrolment that matched others is held for a reviewer: `pending_of` names the
    // subjects it matched (comma-separated); NULL for an enrolled subject.
    "ALTER TABLE subjects ADD COLUMN pending_of TEXT;",
    // 10: what vouched for an enrolment (`source`: a travel document, say), sealed like a
    // template under a data key of its own; the kind alone is in the clear. One per
    // subject, deleted with it.
    "CREATE TABLE sources (
         subject_id  TEXT PRIMARY KEY NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
         kind        INTEGER NOT NULL,
         nonce       BLOB NOT NULL,
         ciphertext  BLOB NOT NULL,
         wrapped_key BLOB NOT NULL,
         created_at  TEXT NOT NULL
     ) STRICT;",
];

/// The first schema version whose audit rows are chained.
pub(crate) const CHAINED_SINCE: u32 = 4;
/// The first schema version with a data key per template.
pub(crate) const ENVELOPE_SINCE: u32 = 7;

/// Applies pending migrations in one transaction; returns the version found before.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;",
    )?;
    let found: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let found = match found {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?} is not a number")))?,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {found} is newer than this build supports ({SCHEMA_VERSION}); \
             upgrade Ipseity"
        )));
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )?;
    }
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 0);
        assert_eq!(migrate(&mut c).unwrap(), SCHEMA_VERSION);
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [(SCHEMA_VERSION + 1).to_string()],
        )
        .unwrap();
        assert!(matches!(migrate(&mut c), Err(StoreError::Corrupt(_))));
    }
}

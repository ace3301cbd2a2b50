//! The audit log's hash chain on both backends: every kind of change an insider can make
//! directly in the database (edit, delete, insert, reorder, a forged row, a deleted tail)
//! is found where it is, and rows written before the chain existed are chained at the
//! upgrade.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use ipseity_core::{AuditEvent, Decision, Modality, SubjectId};
use ipseity_store::chain::{BreakKind, ChainReport};
use ipseity_store::Backend;
use support::Place;

/// Runs SQL on the database directly, around the store.
fn raw_sql(place: &Place, sql: &str) {
    match place {
        Place::Sqlite(dir) => {
            let c = rusqlite::Connection::open(dir.path().join(ipseity_store::DB_FILE))
                .expect("open the database file");
            c.execute_batch(sql).expect("raw SQL");
        }
        Place::Postgres { url, .. } => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
            c.batch_execute(sql).expect("raw SQL");
        }
    }
}

/// A store holding six audit rows; returns it with their ids, oldest first.
fn six_rows(place: &Place) -> (Box<dyn Backend>, Vec<i64>) {
    let mut s = place.open();
    s.set_actor(Some("key:desk-1"));
    for k in 0..6 {
        let subject = SubjectId::new(format!("s{k}")).unwrap();
        s.record_audit(
            &AuditEvent::Verified {
                modality: Modality::Face,
                decision: if k % 2 == 0 {
                    Decision::Accept
                } else {
                    Decision::Reject
                },
                compared: None,
            },
            Some(&subject),
            Some("kyc"),
        )
        .unwrap();
    }
    let mut ids: Vec<i64> = s.audit_log(100).unwrap().iter().map(|e| e.id).collect();
    ids.reverse();
    assert_eq!(ids.len(), 6);
    (s, ids)
}

fn kinds(r: &ChainReport) -> Vec<(i64, BreakKind)> {
    r.breaks.iter().map(|b| (b.id, b.kind)).collect()
}

#[test]
fn an_untouched_chain_verifies_and_records_who_acted() {
    for place in Place::all("an_untouched_chain_verifies") {
        let (s, ids) = six_rows(&place);
        let r = s.verify_audit(None).unwrap();
        assert!(r.intact(), "{}: {r:?}", place.name());
        assert_eq!(r.entries, 6);
        assert_eq!(r.head.as_ref().unwrap().id, ids[5]);
        assert_eq!(r.head.as_ref().unwrap().hash.len(), 64);
        let log = s.audit_log(1).unwrap();
        assert_eq!(
            log[0].actor.as_deref(),
            Some("key:desk-1"),
            "{}",
            place.name()
        );
        // Another connection (another process) continues the same chain.
        drop(s);
        let mut other = place.open();
        other.set_actor(Some("cli:root"));
        other
            .record_audit(&AuditEvent::Erased { templates: 0 }, None, None)
            .unwrap();
        assert!(
            other.verify_audit(None).unwrap().intact(),
            "{}",
            place.name()
        );
    }
}

#[test]
fn each_change_made_in_the_database_is_found() {
    type Tamper = fn(&[i64]) -> (String, i64, BreakKind);
    let cases: [(&str, Tamper); 5] = [
        ("edit", |ids| {
            (
                format!("UPDATE audit SET outcome = 'accept' WHERE id = {}", ids[1]),
                ids[1],
                BreakKind::Edited,
            )
        }),
        ("delete", |ids| {
            (
                format!("DELETE FROM audit WHERE id = {}", ids[2]),
                ids[3],
                BreakKind::Deleted,
            )
        }),
        ("insert a copy", |ids| {
            (
                format!(
                    "INSERT INTO audit (id, at, operation, subject_id, purpose, outcome, detail, \
                     actor, prev_hash, hash) SELECT {}, at, operation, subject_id, purpose, \
                     outcome, detail, actor, prev_hash, hash FROM audit WHERE id = {}",
                    ids[5] + 1,
                    ids[1]
                ),
                ids[5] + 1,
                BreakKind::Inserted,
            )
        }),
        ("reorder", |ids| {
            (
                format!(
                    "UPDATE audit SET id = -1 WHERE id = {b}; \
                     UPDATE audit SET id = {b} WHERE id = {a}; \
                     UPDATE audit SET id = {a} WHERE id = -1;",
                    a = ids[2],
                    b = ids[3]
                ),
                ids[2],
                BreakKind::Reordered,
            )
        }),
        ("forge without the key", |ids| {
            (
                format!(
                    "INSERT INTO audit (id, at, operation, subject_id, purpose, outcome, actor, \
                     prev_hash, hash) SELECT {}, at, 'verify', 's9', 'kyc', 'accept', actor, \
                     hash, prev_hash FROM audit WHERE id = {}",
                    ids[5] + 1,
                    ids[5]
                ),
                ids[5] + 1,
                BreakKind::Edited,
            )
        }),
    ];
    for (name, tamper) in cases {
        for place in Place::all("each_change_made_in_the_database") {
            let (s, ids) = six_rows(&place);
            let (sql, at, kind) = tamper(&ids);
            raw_sql(&place, &sql);
            let r = s.verify_audit(None).unwrap();
            assert!(
                kinds(&r).contains(&(at, kind)),
                "{} / {name}: expected {kind:?} at {at}, got {r:?}",
                place.name()
            );
        }
    }
}

#[test]
fn an_exported_head_catches_a_deleted_tail() {
    for place in Place::all("an_exported_head_catches") {
        let (s, ids) = six_rows(&place);
        let head = s.verify_audit(None).unwrap().head.unwrap();
        assert!(s.verify_audit(Some(&head)).unwrap().intact());
        raw_sql(&place, &format!("DELETE FROM audit WHERE id >= {}", ids[4]));
        // What is left is a whole chain: only the exported head shows the loss.
        assert!(s.verify_audit(None).unwrap().intact(), "{}", place.name());
        let r = s.verify_audit(Some(&head)).unwrap();
        assert_eq!(kinds(&r), [(ids[5], BreakKind::Anchor)], "{}", place.name());
    }
}

#[test]
fn rows_written_before_the_chain_are_chained_at_the_upgrade() {
    for place in Place::all("rows_written_before_the_chain") {
        let (s, _) = six_rows(&place);
        drop(s);
        // Back to the schema before the chain, as an older build left it. The templates go
        // too: they are sealed under data keys, which that schema has no column for (the
        // re-sealing of older templates has its own test, in `store`).
        let version = match place {
            Place::Sqlite(_) => "3",
            Place::Postgres { .. } => "1",
        };
        raw_sql(
            &place,
            &format!(
                "DROP TABLE attempts; DROP TABLE budgets; \
                 ALTER TABLE audit DROP COLUMN actor; ALTER TABLE audit DROP COLUMN prev_hash; \
                 ALTER TABLE audit DROP COLUMN hash; \
                 DELETE FROM templates; ALTER TABLE templates DROP COLUMN wrapped_key; \
                 DROP TABLE consents; ALTER TABLE subjects DROP COLUMN pending_of; \
                 DROP TABLE sources; \
                 UPDATE meta SET value = '{version}' WHERE key = 'schema_version';"
            ),
        );
        let s = place.open();
        let r = s.verify_audit(None).unwrap();
        assert!(r.intact(), "{}: {r:?}", place.name());
        assert_eq!(r.entries, 6);
        assert_eq!(s.audit_log(1).unwrap()[0].actor, None);
    }
}

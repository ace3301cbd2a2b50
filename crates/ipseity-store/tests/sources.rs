//! Enrolment sources on both backends: recorded in the enrolment's transaction (or not at
//! all), one per subject, audited by kind alone, sealed (no value in the clear), readable
//! after a master-key rotation from another connection, and erased with the subject.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use ipseity_core::{EnrolmentSource, Modality, SourceKind, SubjectId, Template};
use ipseity_store::StoreError;
use support::Place;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn tpl(seed: f32) -> Template {
    Template::new(
        Modality::Face,
        "test-model-1",
        vec![seed, seed + 1.0, -seed],
        80,
    )
    .unwrap()
}

/// A document number no other byte of the store could hold by chance.
const NUMBER: &str = "QX7Z9W4K2";

fn document() -> EnrolmentSource {
    EnrolmentSource::new(SourceKind::Document)
        .with("issuing_state", "UTO")
        .unwrap()
        .with("document_number", NUMBER)
        .unwrap()
        .with("date_of_expiry", "341231")
        .unwrap()
}

/// Every byte of the SQLite files, or of PostgreSQL's `sources` table as the server
/// returns it (its own files are the server's).
fn raw_contains(place: &Place, needle: &[u8]) -> bool {
    match place {
        Place::Sqlite(dir) => std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let p = e.unwrap().path();
            std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }),
        Place::Postgres { url, .. } => {
            let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
            c.query("SELECT nonce, ciphertext, wrapped_key FROM sources", &[])
                .unwrap()
                .iter()
                .any(|r| {
                    (0..3).any(|i| {
                        let b: Vec<u8> = r.get(i);
                        b.windows(needle.len()).any(|w| w == needle)
                    })
                })
        }
    }
}

#[test]
fn a_source_is_sealed_with_its_enrolment_and_goes_with_the_subject() {
    for place in Place::all("enrolment_sources") {
        let n = place.name();
        let mut s = place.open();

        // Recorded inside the enrolment's transaction: dropped with it when not committed.
        {
            let mut tx = s.begin_write().unwrap();
            tx.enroll(&id("alice"), &[tpl(1.0)], Some("onboarding"))
                .unwrap();
            tx.record_source(&id("alice"), &document(), Some("onboarding"))
                .unwrap();
        }
        assert!(
            matches!(
                s.enrolment_source(&id("alice")),
                Err(StoreError::UnknownSubject(_))
            ),
            "{n}"
        );

        let mut tx = s.begin_write().unwrap();
        tx.enroll(&id("alice"), &[tpl(1.0)], Some("onboarding"))
            .unwrap();
        tx.record_source(&id("alice"), &document(), Some("onboarding"))
            .unwrap();
        // One source per subject; none for a subject that does not exist.
        assert!(
            matches!(
                tx.record_source(&id("alice"), &document(), None),
                Err(StoreError::InvalidInput(_))
            ),
            "{n}"
        );
        assert!(
            matches!(
                tx.record_source(&id("nobody"), &document(), None),
                Err(StoreError::UnknownSubject(_))
            ),
            "{n}"
        );
        tx.enroll(&id("bob"), &[tpl(2.0)], None).unwrap();
        tx.commit().unwrap();

        assert_eq!(
            s.enrolment_source(&id("alice")).unwrap(),
            Some(document()),
            "{n}"
        );
        assert_eq!(s.enrolment_source(&id("bob")).unwrap(), None, "{n}");
        assert!(!raw_contains(&place, NUMBER.as_bytes()), "{n}: sealed");

        // Audited in the enrolment's words, by kind alone.
        let log = s.audit_log(10).unwrap();
        let row = log
            .iter()
            .find(|e| e.outcome == "source_recorded")
            .unwrap_or_else(|| panic!("{n}: not audited"));
        assert_eq!(row.operation, "enroll", "{n}");
        assert_eq!(row.detail.as_deref(), Some("source=document"), "{n}");
        assert_eq!(row.subject.as_ref(), Some(&id("alice")), "{n}");
        assert!(
            log.iter()
                .all(|e| !e.detail.as_deref().unwrap_or("").contains(NUMBER)),
            "{n}"
        );

        // Another connection rotates the master key; this one still reads the source.
        let mut other = place.open();
        other.rotate_master().unwrap();
        assert_eq!(
            s.enrolment_source(&id("alice")).unwrap(),
            Some(document()),
            "{n}"
        );
        drop(other);
        assert_eq!(
            place.open().enrolment_source(&id("alice")).unwrap(),
            Some(document()),
            "{n}"
        );

        // Erased with the subject: a new enrolment under the same id starts with none.
        s.erase(&id("alice"), None).unwrap();
        let mut tx = s.begin_write().unwrap();
        tx.enroll(&id("alice"), &[tpl(3.0)], None).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.enrolment_source(&id("alice")).unwrap(), None, "{n}");
        assert!(s.verify_audit(None).unwrap().intact(), "{n}");
    }
}

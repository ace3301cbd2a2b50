//! One body of checks, run on the embedded store and on PostgreSQL: the guarantees the
//! engine relies on hold on both backends.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ipseity_core::{AuditEvent, Modality, Scope, SubjectId, Template};
use ipseity_store::{Backend, StoreError};
use support::Place;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn tpl(m: Modality, seed: f32) -> Template {
    Template::new(m, "test-model-1", vec![seed, seed + 1.0, -seed], 80).unwrap()
}

fn subjects_and_templates(place: &Place) {
    let mut s = place.open();
    let n = place.name();
    s.enroll_via_tx(&id("alice"), &[tpl(Modality::Face, 1.0)]);
    assert!(
        matches!(
            s.begin_write()
                .unwrap()
                .enroll(&id("alice"), &[tpl(Modality::Face, 2.0)], None),
            Err(StoreError::DuplicateSubject(_))
        ),
        "{n}"
    );
    let mark = s.template_mark().unwrap();
    {
        let mut tx = s.begin_write().unwrap();
        tx.add_templates(&id("alice"), &[tpl(Modality::Fingerprint, 3.0)], Some("p"))
            .unwrap();
        tx.enroll(&id("bob"), &[tpl(Modality::Face, 4.0)], Some("p"))
            .unwrap();
        let since = tx.templates_since(Modality::Face, mark).unwrap();
        assert_eq!(since.len(), 1, "{n}");
        assert_eq!(since[0].0, id("bob"));
        assert!(tx.mark().unwrap() > mark);
        let mut m = tx.modalities(&id("alice")).unwrap();
        m.sort_by_key(|m| m.code());
        assert_eq!(m, [Modality::Face, Modality::Fingerprint], "{n}");
        tx.commit().unwrap();
    }
    let t = s.templates(&id("alice")).unwrap();
    assert_eq!(
        t,
        [tpl(Modality::Face, 1.0), tpl(Modality::Fingerprint, 3.0)],
        "{n}"
    );
    assert!(matches!(
        s.templates(&id("carol")),
        Err(StoreError::UnknownSubject(_))
    ));
    assert_eq!(s.count_templates(Modality::Face).unwrap(), 2);
    assert_eq!(s.all_templates(Modality::Face).unwrap().len(), 2);
    assert_eq!(s.subject_count().unwrap(), 2);

    // A transaction dropped without commit leaves nothing, audit row included.
    let audit_before = s.audit_log(1000).unwrap().len();
    {
        let mut tx = s.begin_write().unwrap();
        tx.enroll(&id("dropped"), &[tpl(Modality::Face, 9.0)], None)
            .unwrap();
    }
    assert_eq!(s.subject_count().unwrap(), 2, "{n}");
    assert_eq!(s.audit_log(1000).unwrap().len(), audit_before, "{n}");
    // A bad template anywhere rolls the whole enrolment back.
    let bad = Template {
        vector: vec![f32::NAN; 3],
        ..tpl(Modality::Face, 1.0)
    };
    let r = s
        .begin_write()
        .unwrap()
        .enroll(&id("carol"), &[tpl(Modality::Face, 5.0), bad], None);
    assert!(
        matches!(r, Err(StoreError::InvalidTemplate(_))),
        "{n}: {r:?}"
    );
    assert_eq!(s.subject_count().unwrap(), 2, "{n}");

    // Chunks: every template once, subjects grouped, errors from the caller returned.
    let mut seen = Vec::new();
    s.template_chunks(Modality::Face, 1, &mut |c| {
        assert_eq!(c.len(), 1);
        seen.extend(c.into_iter().map(|(s, _)| s));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [id("alice"), id("bob")], "{n}");
    let r: Result<(), StoreError> = s.for_each_template_chunk(Modality::Face, 1, |_| {
        Err(StoreError::InvalidInput("stop".to_owned()))
    });
    assert!(
        matches!(r, Err(StoreError::InvalidInput(m)) if m == "stop"),
        "{n}"
    );

    // Erasure removes subject and templates and is audited without biometric data.
    let e = s.erase(&id("alice"), Some("erasure")).unwrap();
    assert_eq!(e.templates, 2, "{n}");
    assert!(matches!(
        s.erase(&id("alice"), None),
        Err(StoreError::UnknownSubject(_))
    ));
    assert_eq!(s.count_templates(Modality::Face).unwrap(), 1);
    let last = &s.audit_log(1).unwrap()[0];
    assert_eq!(
        (last.operation.as_str(), last.outcome.as_str()),
        ("erase", "ok")
    );
    assert_eq!(last.detail.as_deref(), Some("templates=2"), "{n}");
}

/// A helper so the checks read as use cases.
trait EnrolViaTx {
    fn enroll_via_tx(&mut self, s: &SubjectId, t: &[Template]);
}
impl EnrolViaTx for Box<dyn Backend> {
    fn enroll_via_tx(&mut self, s: &SubjectId, t: &[Template]) {
        let mut tx = self.begin_write().unwrap();
        tx.enroll(s, t, Some("onboarding")).unwrap();
        tx.commit().unwrap();
    }
}

#[test]
fn subjects_templates_and_transactions_behave_alike() {
    for place in Place::all("subjects_templates") {
        subjects_and_templates(&place);
    }
}

#[test]
fn pages_list_every_subject_once_in_id_order() {
    for place in Place::all("pages") {
        let mut s = place.open();
        let ids = ["a", "B", "b", "a-1", "z", "m", "Zed", "a_2"];
        for (i, x) in ids.iter().enumerate() {
            s.enroll_via_tx(&id(x), &[tpl(Modality::Face, i as f32)]);
        }
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = s.list_page(after.as_ref(), 3).unwrap();
            assert!(page.len() <= 3);
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().id.clone());
            all.extend(page.into_iter().map(|x| x.id.to_string()));
        }
        let mut want: Vec<String> = ids.iter().map(|x| x.to_string()).collect();
        want.sort(); // bytewise, as both backends order ids
        assert_eq!(all, want, "{}", place.name());
    }
}

#[test]
fn a_writer_waits_for_the_one_holding_the_lock() {
    for place in Place::all("writer_lock") {
        let mut a = place.open();
        // Opened before the lock is taken: opening writes (migrations, the key check).
        let mut b = place.open();
        let barrier = Arc::new(Barrier::new(2));
        let mut tx = a.begin_write().unwrap();
        let bar = barrier.clone();
        let other = std::thread::spawn(move || {
            bar.wait();
            // Blocks until the first transaction commits, then sees its subject.
            let tx = b.begin_write().unwrap();
            tx.subject_exists(&id("first")).unwrap()
        });
        barrier.wait();
        std::thread::sleep(Duration::from_millis(300));
        tx.enroll(&id("first"), &[tpl(Modality::Face, 1.0)], None)
            .unwrap();
        tx.commit().unwrap();
        assert!(other.join().unwrap(), "{}", place.name());
    }
}

#[test]
fn keys_authenticate_until_revoked_and_decisions_are_audited() {
    for place in Place::all("keys") {
        let mut s = place.open();
        let n = place.name();
        let (info, key) = s
            .create_key("bank-a", &[Scope::Verify], &["onboarding".to_owned()])
            .unwrap();
        assert_eq!(s.authenticate(&key).unwrap(), Some(info.clone()), "{n}");
        assert_eq!(s.authenticate("ipk_nonsense").unwrap(), None);
        assert!(s.create_key("bank-a", &[Scope::Verify], &[]).is_err());
        assert!(s.create_key("bad name", &[Scope::Verify], &[]).is_err());
        assert_eq!(s.list_keys().unwrap(), [info]);
        s.revoke_key("bank-a").unwrap();
        assert_eq!(s.authenticate(&key).unwrap(), None, "{n}");
        assert!(s.revoke_key("bank-a").is_err());
        s.record_audit(
            &AuditEvent::AccessDenied {
                key: Some("bank-a".into()),
                operation: "verify",
                reason: "scope",
            },
            None,
            Some("onboarding"),
        )
        .unwrap();
        let ops: Vec<String> = s
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|e| e.operation)
            .collect();
        assert_eq!(ops, ["access", "key_revoke", "key_create"], "{n}");
    }
}

#[test]
fn a_database_refuses_another_key() {
    for place in Place::all("other_key") {
        let mut s = place.open();
        s.enroll_via_tx(&id("alice"), &[tpl(Modality::Face, 1.0)]);
        drop(s);
        // The key file replaced by another store's key.
        let other = tempfile::tempdir().unwrap();
        drop(ipseity_store::Store::open(other.path()).unwrap());
        std::fs::copy(
            other.path().join(ipseity_store::key::KEY_FILE),
            place.dir().join(ipseity_store::key::KEY_FILE),
        )
        .unwrap();
        let r = match &place {
            Place::Sqlite(d) => ipseity_store::Store::open(d.path()).map(|_| ()),
            Place::Postgres { url, keys } => {
                ipseity_store::PgStore::open(url, keys.path()).map(|_| ())
            }
        };
        assert!(
            matches!(r, Err(StoreError::KeyFile(_))),
            "{}: {r:?}",
            place.name()
        );
    }
}

//! Enrolments held for review on both backends: out of galleries, lists and counts until
//! resolved; a resolution as a new subject gives the templates ids that every server's
//! next "written since" look finds; same-person and rejected remove the held enrolment;
//! each step is audited; only held enrolments can be resolved.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use ipseity_core::{Modality, SubjectId, Template};
use ipseity_store::{Backend, ReviewOutcome, StoreError};
use support::Place;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn tpl(x: f32) -> Template {
    Template::new(Modality::Face, "m", vec![x; 4], 90).unwrap()
}

fn gallery(s: &dyn Backend) -> Vec<SubjectId> {
    let mut seen = Vec::new();
    s.template_chunks(Modality::Face, 16, &mut |c| {
        seen.extend(c.into_iter().map(|(s, _)| s));
        Ok(())
    })
    .unwrap();
    seen
}

#[test]
fn held_enrolments_stay_out_until_a_reviewer_resolves_them() {
    for place in Place::all("held_enrolments_stay_out") {
        let n = place.name();
        let mut desk = place.open();
        let other = place.open();
        let mut tx = desk.begin_write().unwrap();
        tx.enroll(&id("alice"), &[tpl(0.1)], Some("kyc")).unwrap();
        tx.commit().unwrap();
        let mark = other.template_mark().unwrap();
        for who in ["bob", "carol", "dave"] {
            let mut tx = desk.begin_write().unwrap();
            tx.hold_for_review(&id(who), &[tpl(0.2)], Some("kyc"), &[id("alice")])
                .unwrap();
            tx.commit().unwrap();
        }
        // Out of the gallery, the list, the count and "written since"; listed for review.
        assert_eq!(gallery(&*other), [id("alice")], "{n}");
        assert_eq!(other.subject_count().unwrap(), 1, "{n}");
        assert_eq!(other.list_page(None, 10).unwrap().len(), 1, "{n}");
        let held = other.pending_reviews(10).unwrap();
        assert_eq!(held.len(), 3, "{n}");
        assert_eq!(held[0].matches, [id("alice")], "{n}");
        assert_eq!(
            other.pending_of(&id("bob")).unwrap(),
            Some(vec![id("alice")])
        );
        assert_eq!(other.pending_of(&id("alice")).unwrap(), None);
        let tx = desk.begin_write().unwrap();
        assert!(
            tx.templates_since(Modality::Face, mark).unwrap().is_empty(),
            "{n}"
        );
        drop(tx);

        // A match it did not have is refused; an enrolled subject is not a case.
        assert!(matches!(
            desk.resolve_review(&id("bob"), &ReviewOutcome::SamePerson(id("zed")), None),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            desk.resolve_review(&id("alice"), &ReviewOutcome::Rejected, None),
            Err(StoreError::UnknownSubject(_))
        ));
        desk.resolve_review(
            &id("bob"),
            &ReviewOutcome::SamePerson(id("alice")),
            Some("review"),
        )
        .unwrap();
        desk.resolve_review(&id("carol"), &ReviewOutcome::Rejected, Some("review"))
            .unwrap();
        desk.resolve_review(&id("dave"), &ReviewOutcome::NewSubject, Some("review"))
            .unwrap();
        assert!(other.pending_reviews(10).unwrap().is_empty(), "{n}");
        assert!(matches!(
            other.templates(&id("bob")),
            Err(StoreError::UnknownSubject(_))
        ));
        assert!(matches!(
            other.templates(&id("carol")),
            Err(StoreError::UnknownSubject(_))
        ));
        assert_eq!(gallery(&*other), [id("alice"), id("dave")], "{n}");
        // Another server that last looked before the resolution finds dave as new.
        let tx = desk.begin_write().unwrap();
        let since = tx.templates_since(Modality::Face, mark).unwrap();
        assert_eq!(since.len(), 1, "{n}");
        assert_eq!(since[0].0, id("dave"), "{n}");
        drop(tx);

        let outcomes: Vec<_> = other
            .audit_log(20)
            .unwrap()
            .into_iter()
            .filter(|e| e.operation == "review" || e.outcome == "pending_review")
            .map(|e| {
                (
                    e.outcome,
                    e.subject.map(|s| s.to_string()).unwrap_or_default(),
                    e.detail.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("new_subject".into(), "dave".into(), String::new()),
                ("rejected".into(), "carol".into(), String::new()),
                ("same_person".into(), "bob".into(), "same_as=alice".into()),
                (
                    "pending_review".into(),
                    "dave".into(),
                    "modality=face possible_duplicate_of=alice".into()
                ),
                (
                    "pending_review".into(),
                    "carol".into(),
                    "modality=face possible_duplicate_of=alice".into()
                ),
                (
                    "pending_review".into(),
                    "bob".into(),
                    "modality=face possible_duplicate_of=alice".into()
                ),
            ],
            "{n}"
        );
        assert!(other.verify_audit(None).unwrap().intact(), "{n}");
    }
}

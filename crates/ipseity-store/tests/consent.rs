//! Consent per subject and purpose on both backends: an enrolment gives consent for its
//! purpose, a withdrawal holds at once and for every connection (another server process),
//! consent can be given again, every change is audited, and an erasure takes it away.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use ipseity_core::{Modality, SubjectId, Template};
use ipseity_store::{Backend, StoreError};
use support::Place;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn enrol(s: &mut Box<dyn Backend>, who: &str, purpose: Option<&str>) {
    let t = Template::new(Modality::Face, "m", vec![0.5; 4], 90).unwrap();
    let mut tx = s.begin_write().unwrap();
    tx.enroll(&id(who), &[t], purpose).unwrap();
    tx.commit().unwrap();
}

#[test]
fn consent_is_per_purpose_and_a_withdrawal_holds_at_once() {
    for place in Place::all("consent_is_per_purpose") {
        let n = place.name();
        let mut desk = place.open();
        let other = place.open();
        enrol(&mut desk, "alice", Some("onboarding"));
        let alice = id("alice");
        assert!(other.consented(&alice, Some("onboarding")).unwrap(), "{n}");
        assert!(!other.consented(&alice, Some("marketing")).unwrap(), "{n}");
        assert!(other.consented(&alice, None).unwrap(), "{n}");

        // Given for a second purpose, withdrawn for the first: seen by the other
        // connection straight away.
        desk.set_consent(&alice, "fraud-check", true).unwrap();
        desk.set_consent(&alice, "onboarding", false).unwrap();
        assert!(!other.consented(&alice, Some("onboarding")).unwrap(), "{n}");
        assert!(other.consented(&alice, Some("fraud-check")).unwrap(), "{n}");
        assert!(other.consented(&alice, None).unwrap(), "{n}: one is left");
        desk.set_consent(&alice, "fraud-check", false).unwrap();
        assert!(!other.consented(&alice, None).unwrap(), "{n}: none is left");
        // Given again.
        desk.set_consent(&alice, "onboarding", true).unwrap();
        assert!(other.consented(&alice, Some("onboarding")).unwrap(), "{n}");

        // Each change is audited with its purpose.
        let log = desk.audit_log(10).unwrap();
        let changes: Vec<_> = log
            .iter()
            .filter(|e| e.operation == "consent")
            .map(|e| (e.outcome.as_str(), e.purpose.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            changes,
            [
                ("given", "onboarding"),
                ("withdrawn", "fraud-check"),
                ("withdrawn", "onboarding"),
                ("given", "fraud-check"),
            ],
            "{n}"
        );
        assert!(desk.verify_audit(None).unwrap().intact(), "{n}");

        // Unknown subjects: no consent, and none can be given.
        assert!(!other.consented(&id("nobody"), Some("onboarding")).unwrap());
        assert!(matches!(
            desk.set_consent(&id("nobody"), "onboarding", true),
            Err(StoreError::UnknownSubject(_))
        ));
        assert!(matches!(
            desk.set_consent(&alice, "", true),
            Err(StoreError::InvalidInput(_))
        ));

        // An erasure takes the consent rows with the subject; a new enrolment under the
        // same id starts afresh.
        desk.erase(&alice, Some("subject request")).unwrap();
        assert!(!other.consented(&alice, Some("onboarding")).unwrap(), "{n}");
        enrol(&mut desk, "alice", Some("kyc"));
        assert!(!other.consented(&alice, Some("onboarding")).unwrap(), "{n}");
        assert!(other.consented(&alice, Some("kyc")).unwrap(), "{n}");

        // A subject enrolled through the library without a purpose has recorded nothing:
        // no purpose-bound use, but an unstated one is not blocked.
        enrol(&mut desk, "bob", None);
        assert!(!other.consented(&id("bob"), Some("kyc")).unwrap(), "{n}");
        assert!(other.consented(&id("bob"), None).unwrap(), "{n}");
    }
}

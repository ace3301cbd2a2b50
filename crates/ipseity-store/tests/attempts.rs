//! Failed verification attempts on both backends: the back-off and the disabling hold
//! across connections (several servers on one database) and restarts, an accept clears
//! them, an administrator's unlock clears them and is audited, an erasure takes them away.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use ipseity_core::{Modality, SubjectId, Template};
use ipseity_store::attempts::{AttemptGate, AttemptPolicy};
use ipseity_store::Backend;
use support::Place;

fn enrol(s: &mut Box<dyn Backend>, id: &SubjectId) {
    let t = Template::new(Modality::Face, "m", vec![0.5; 4], 90).unwrap();
    let mut tx = s.begin_write().unwrap();
    tx.enroll(id, &[t], Some("kyc")).unwrap();
    tx.commit().unwrap();
}

fn alice() -> SubjectId {
    SubjectId::new("alice").unwrap()
}

#[test]
fn failures_back_off_across_processes_and_restarts_until_unlocked() {
    let p = AttemptPolicy::default();
    for place in Place::all("failures_back_off_across_processes") {
        let n = place.name();
        let mut a = place.open();
        enrol(&mut a, &alice());
        let mut b = place.open();
        // Five failures, alternating between two connections: the fifth starts a 30 s wait.
        for k in 0..5 {
            let s = if k % 2 == 0 { &mut a } else { &mut b };
            assert_eq!(
                s.begin_attempt(&alice(), 1000, &p).unwrap(),
                AttemptGate::Open,
                "{n}"
            );
            s.finish_attempt(&alice(), false).unwrap();
        }
        assert_eq!(
            b.begin_attempt(&alice(), 1010, &p).unwrap(),
            AttemptGate::Locked { retry_after_s: 20 },
            "{n}"
        );
        // A restart changes nothing.
        drop((a, b));
        let mut a = place.open();
        assert_eq!(
            a.begin_attempt(&alice(), 1029, &p).unwrap(),
            AttemptGate::Locked { retry_after_s: 1 },
            "{n}"
        );
        // After the wait one more try; its failure doubles the wait.
        assert_eq!(
            a.begin_attempt(&alice(), 1030, &p).unwrap(),
            AttemptGate::Open
        );
        assert_eq!(
            a.begin_attempt(&alice(), 1031, &p).unwrap(),
            AttemptGate::Locked { retry_after_s: 59 },
            "{n}"
        );
        // An accept clears the count.
        assert_eq!(
            a.begin_attempt(&alice(), 1090, &p).unwrap(),
            AttemptGate::Open
        );
        a.finish_attempt(&alice(), true).unwrap();
        for _ in 0..4 {
            assert_eq!(
                a.begin_attempt(&alice(), 1091, &p).unwrap(),
                AttemptGate::Open
            );
        }
        // The cap: with at most 6 consecutive failures, the seventh attempt is refused for good.
        let strict = AttemptPolicy {
            free_failures: 100,
            base_backoff_s: 30,
            max_failures: 6,
        };
        assert_eq!(
            a.begin_attempt(&alice(), 1092, &strict).unwrap(),
            AttemptGate::Open
        );
        assert_eq!(
            a.begin_attempt(&alice(), 1093, &strict).unwrap(),
            AttemptGate::Open
        );
        assert_eq!(
            a.begin_attempt(&alice(), 1094, &strict).unwrap(),
            AttemptGate::Disabled,
            "{n}"
        );
        assert_eq!(
            a.begin_attempt(&alice(), 99_999_999, &strict).unwrap(),
            AttemptGate::Disabled,
            "{n}: disabled until unlocked, however long one waits"
        );
        a.unlock(&alice(), Some("helpdesk ticket 42")).unwrap();
        assert_eq!(
            a.begin_attempt(&alice(), 99_999_999, &strict).unwrap(),
            AttemptGate::Open
        );
        let log = a.audit_log(1).unwrap();
        assert_eq!(
            (log[0].operation.as_str(), log[0].outcome.as_str()),
            ("unlock", "ok")
        );
        assert!(a.verify_audit(None).unwrap().intact());
        // An unknown subject is not throttled here (its verification fails on its own) and
        // cannot be unlocked; an erased subject's attempts go with it.
        let bob = SubjectId::new("bob").unwrap();
        assert_eq!(a.begin_attempt(&bob, 0, &p).unwrap(), AttemptGate::Open);
        assert!(a.unlock(&bob, None).is_err());
        a.erase(&alice(), None).unwrap();
        enrol(&mut a, &alice());
        for _ in 0..5 {
            assert_eq!(
                a.begin_attempt(&alice(), 5, &p).unwrap(),
                AttemptGate::Open,
                "{n}"
            );
        }
    }
}

#[test]
fn a_search_budget_is_shared_by_every_process_and_renews_each_hour() {
    for place in Place::all("a_search_budget_is_shared") {
        let n = place.name();
        let (mut a, mut b) = (place.open(), place.open());
        assert!(
            a.charge_budget("key:bank-a", 100, 600, 1000).unwrap(),
            "{n}"
        );
        assert!(
            b.charge_budget("key:bank-a", 100, 400, 1000).unwrap(),
            "{n}"
        );
        // Spent in full, from either connection; another key and the next hour are apart.
        assert!(!a.charge_budget("key:bank-a", 100, 1, 1000).unwrap(), "{n}");
        assert!(!b.charge_budget("key:bank-a", 100, 1, 1000).unwrap(), "{n}");
        assert!(
            b.charge_budget("key:bank-b", 100, 1000, 1000).unwrap(),
            "{n}"
        );
        assert!(
            a.charge_budget("key:bank-a", 101, 1000, 1000).unwrap(),
            "{n}"
        );
        // A refused charge spends nothing.
        assert!(
            !a.charge_budget("key:bank-a", 102, 1001, 1000).unwrap(),
            "{n}"
        );
        assert!(
            a.charge_budget("key:bank-a", 102, 1000, 1000).unwrap(),
            "{n}"
        );
        // Across a restart.
        drop((a, b));
        let mut a = place.open();
        assert!(!a.charge_budget("key:bank-a", 102, 1, 1000).unwrap(), "{n}");
    }
}

//! Concurrent enrolments through separate store connections, as separate processes or
//! server workers make them: the duplicate search and the write must act as one step.
//!
//! Each round's threads all load their gallery before any of them commits (a barrier),
//! the interleaving that let two enrolments of one person both succeed. The default run
//! does a few rounds; `IPSEITY_LONG_RACES=N` runs N.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::sync::{Arc, Barrier, Mutex};

#[path = "../../ipseity-store/tests/support/backends.rs"]
mod support;

use ipseity_core::{Modality, OperatingPoint, SubjectId, Template};
use ipseity_engine::face::{self, FaceEnrolment, LiveFaceGallery};
use ipseity_engine::finger::{self, FingerEnrolment, LiveFingerGallery};
use ipseity_engine::EngineError;
use ipseity_finger::fusion::ScoreCalibration;
use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use ipseity_store::{Backend, Store, StoreError, DB_FILE};
use rand::{Rng as _, SeedableRng as _};
use support::Place;

const POINT: OperatingPoint = OperatingPoint {
    fmr: f64::NAN,
    accept_at: 0.5,
    reject_below: 0.4,
};

fn rounds() -> usize {
    std::env::var("IPSEITY_LONG_RACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

/// A face-like embedding: random direction, norm 1 (dlib's are near 1).
fn face_vector(rng: &mut rand::rngs::StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..128).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn face(v: &[f32]) -> Template {
    Template::new(Modality::Face, ipseity_face::MODEL_ID, v.to_vec(), 90).unwrap()
}

/// Runs `n` threads that each open the store, load, wait for all, then call `f`.
/// One race at a time: sixteen connections a race, each with its own pool, stay well
/// under the test server's 100 connections only when the races of this binary (run on
/// parallel test threads) do not overlap.
static ONE_RACE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn race<G: Send + 'static, R: Send + 'static>(
    place: &Arc<Place>,
    n: usize,
    load: impl Fn(&dyn Backend) -> G + Send + Sync + 'static,
    f: impl Fn(usize, &mut dyn Backend, G) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let _one = ONE_RACE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let barrier = Arc::new(Barrier::new(n));
    let load = Arc::new(load);
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (place, barrier, load, f) =
                (place.clone(), barrier.clone(), load.clone(), f.clone());
            std::thread::spawn(move || {
                // A thread that fails before the barrier still reaches it, so that the
                // others are not left waiting forever; its panic is raised after.
                let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let store = place.open();
                    let g = load(&*store);
                    (store, g)
                }));
                barrier.wait();
                match ready {
                    Ok((mut store, g)) => f(i, &mut *store, g),
                    Err(p) => std::panic::resume_unwind(p),
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn sixteen_concurrent_enrolments_of_one_face_enrol_exactly_one() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..rounds() {
        for place in Place::all("sixteen_faces") {
            let place = Arc::new(place);
            // Someone else is enrolled already, so the gallery is not empty.
            enrol_plain(&mut *place.open(), "other", face(&face_vector(&mut rng)));
            let v = face_vector(&mut rng);
            let results = race(
                &place,
                16,
                |s| LiveFaceGallery::load(s).unwrap(),
                move |i, store, mut live| {
                    let subject = id(&format!("p{i:02}"));
                    let templates = [face(&v)];
                    let req = FaceEnrolment {
                        subject: &subject,
                        templates: &templates,
                        allow_duplicate: false,
                        purpose: Some("onboarding"),
                        source: None,
                    };
                    face::enrol(store, &mut live, &POINT, &req)
                },
            );
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let dup = results
                .iter()
                .filter(|r| matches!(r, Err(EngineError::PossibleDuplicate(_))))
                .count();
            assert_eq!(
                (ok, dup),
                (1, 15),
                "{} round {round}: {results:?}",
                place.name()
            );
            let store = place.open();
            // One enrolled; the fifteen others are held for a reviewer, out of every
            // gallery and count.
            assert_eq!(store.subject_count().unwrap(), 2);
            assert_eq!(store.pending_reviews(100).unwrap().len(), 15);
            let held = store
                .audit_log(100)
                .unwrap()
                .into_iter()
                .filter(|e| e.operation == "enroll" && e.outcome == "pending_review")
                .count();
            assert_eq!(held, 15);
        }
    }
}

/// Enrols outside the use cases (set-up), committing at once.
fn enrol_plain(store: &mut dyn Backend, subject: &str, t: Template) {
    let mut tx = store.begin_write().unwrap();
    tx.enroll(&id(subject), &[t], None).unwrap();
    tx.commit().unwrap();
}

#[test]
fn an_enrolment_committed_after_the_gallery_loaded_is_still_found() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for place in Place::all("committed_after_load") {
        let v = face_vector(&mut rng);
        let mut a = place.open();
        let mut b = place.open();
        let mut live_a = LiveFaceGallery::load(&*a).unwrap();
        let mut live_b = LiveFaceGallery::load(&*b).unwrap();
        let t = [face(&v)];
        let (pa, pb) = (id("pA"), id("pB"));
        let req = |s| FaceEnrolment {
            subject: s,
            templates: &t,
            allow_duplicate: false,
            purpose: None,
            source: None,
        };
        face::enrol(&mut *a, &mut live_a, &POINT, &req(&pa)).unwrap();
        let err = face::enrol(&mut *b, &mut live_b, &POINT, &req(&pb)).unwrap_err();
        match err {
            EngineError::PossibleDuplicate(ids) => assert_eq!(ids, [id("pA")]),
            e => panic!("{e:?}"),
        }
        // Held for review and audited, with the de-duplication purpose recorded.
        let last = &b.audit_log(1).unwrap()[0];
        assert_eq!(
            (last.operation.as_str(), last.outcome.as_str()),
            ("enroll", "pending_review")
        );
        assert_eq!(last.purpose.as_deref(), Some(face::DEDUP_PURPOSE));
        // The live gallery took in pA's template, so a third enrolment needs no re-check.
        assert_eq!(live_b.gallery.names, [id("pA")], "{}", place.name());
    }
}

#[test]
fn an_allowed_duplicate_and_its_audit_row_commit_together() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let dir = tempfile::tempdir().unwrap();
    let v = face_vector(&mut rng);
    let mut store = Store::open(dir.path()).unwrap();
    store.enroll(&id("first"), &[face(&v)], None).unwrap();
    // Inject a failure of the duplicate-allowed audit row.
    rusqlite::Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER fail_dup BEFORE INSERT ON audit
             WHEN NEW.outcome = 'duplicate_allowed'
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let mut live = LiveFaceGallery::load(&store).unwrap();
    let t = [face(&v)];
    let req = FaceEnrolment {
        subject: &id("second"),
        templates: &t,
        allow_duplicate: true,
        purpose: Some("kyc"),
        source: None,
    };
    assert!(face::enrol(&mut store, &mut live, &POINT, &req).is_err());
    assert!(matches!(
        store.templates(&id("second")),
        Err(StoreError::UnknownSubject(_))
    ));
    // Without the fault the same call enrols and audits.
    rusqlite::Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .execute_batch("DROP TRIGGER fail_dup")
        .unwrap();
    let hits = face::enrol(&mut store, &mut live, &POINT, &req).unwrap();
    assert_eq!(hits, [id("first")]);
    let log = store.audit_log(2).unwrap();
    assert_eq!(log[0].outcome, "duplicate_allowed");
    assert_eq!(log[1].outcome, "ok");
}

fn calibration() -> ScoreCalibration {
    serde_json::from_str(include_str!(
        "../../ipseity-cli/src/commands/finger/builtin_calibration.json"
    ))
    .unwrap()
}

/// A random finger: 40 minutiae scattered over a 400x400 print.
fn random_finger(rng: &mut rand::rngs::StdRng, position: FingerPosition) -> FingerTemplate {
    let minutiae = (0..40)
        .map(|_| {
            Minutia::new(
                rng.gen_range(40.0..360.0),
                rng.gen_range(40.0..360.0),
                rng.gen_range(0.0..std::f32::consts::TAU),
                if rng.gen_bool(0.5) {
                    MinutiaKind::Ending
                } else {
                    MinutiaKind::Bifurcation
                },
                80,
            )
        })
        .collect();
    FingerTemplate {
        width: 400,
        height: 400,
        resolution_ppi: 500,
        position,
        quality: 80,
        minutiae,
    }
}

#[test]
fn two_concurrent_finger_enrolments_of_one_subject_add_fingers_once() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for round in 0..rounds() {
        for place in Place::all("two_fingers") {
            let place = Arc::new(place);
            enrol_plain(&mut *place.open(), "s", face(&face_vector(&mut rng)));
            let prints = [
                random_finger(&mut rng, FingerPosition::RightIndex),
                random_finger(&mut rng, FingerPosition::RightIndex),
            ];
            let results = race(
                &place,
                2,
                |s| LiveFingerGallery::load(s, calibration()).unwrap(),
                move |i, store, mut live| {
                    let fingers = [(prints[i].clone(), 80)];
                    let req = FingerEnrolment {
                        subject: &id("s"),
                        fingers: &fingers,
                        allow_duplicate: false,
                        purpose: None,
                    };
                    finger::enrol(store, &mut live, &req)
                },
            );
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let refused = results
                .iter()
                .filter(|r| matches!(r, Err(EngineError::Store(StoreError::DuplicateSubject(_)))))
                .count();
            assert_eq!(
                (ok, refused),
                (1, 1),
                "{} round {round}: {results:?}",
                place.name()
            );
            let store = place.open();
            let fingers = store
                .templates(&id("s"))
                .unwrap()
                .into_iter()
                .filter(|t| t.modality == Modality::Fingerprint)
                .count();
            assert_eq!(fingers, 1);
        }
    }
}

#[test]
fn concurrent_finger_enrolments_of_one_print_under_many_ids_enrol_one() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for round in 0..rounds() {
        for place in Place::all("many_ids_one_print") {
            let place = Arc::new(place);
            let print = random_finger(&mut rng, FingerPosition::LeftThumb);
            let results = race(
                &place,
                4,
                |s| LiveFingerGallery::load(s, calibration()).unwrap(),
                move |i, store, mut live| {
                    let fingers = [(print.clone(), 80)];
                    let req = FingerEnrolment {
                        subject: &id(&format!("f{i}")),
                        fingers: &fingers,
                        allow_duplicate: false,
                        purpose: None,
                    };
                    finger::enrol(store, &mut live, &req)
                },
            );
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let dup = results
                .iter()
                .filter(|r| matches!(r, Err(EngineError::PossibleDuplicate(_))))
                .count();
            assert_eq!(
                (ok, dup),
                (1, 3),
                "{} round {round}: {results:?}",
                place.name()
            );
        }
    }
}

//! The service killed with SIGKILL at random moments while clients enrol concurrently,
//! then restarted, on both backends. Afterwards:
//!
//! - every enrolment answered 201 is there and intact: its subject holds both fingers,
//!   and verifying with the records that were sent is accepted (they decrypt and match);
//! - every enrolment not answered is wholly there (both fingers, and it verifies) or
//!   wholly absent;
//! - the audit chain verifies.
//!
//! A few rounds run by default; `IPSEITY_CRASH_ROUNDS=100` is the long mode
//! (docs/RELIABILITY.md). `IPSEITY_CRASH_SEED` replays a run (the seed is printed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::service::{
    check_sent, desk_key, fingers_body, record, request, start, test_database, Sent,
};
use common::{fixtures, ipseity, run};
use ipseity_finger::FingerPosition;
use rand::{Rng as _, SeedableRng as _};

const CLIENTS: usize = 4;

fn crash_rounds(backend: &str, data: &Path, models: &Path, database: Option<&str>) {
    let rounds: usize = std::env::var("IPSEITY_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("IPSEITY_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test on {backend}: {rounds} rounds, IPSEITY_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let key = desk_key(data, database);

    let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
    for round in 0..rounds {
        let server = start(data, models, database);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (addr, key, sent, stop) =
                    (server.addr.clone(), key.clone(), sent.clone(), stop.clone());
                let mut rng = rand::rngs::StdRng::seed_from_u64(rng.gen());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let subject = format!("r{round}-c{c}-{i}");
                        i += 1;
                        let body = fingers_body(
                            &record(&mut rng, FingerPosition::RightIndex),
                            &record(&mut rng, FingerPosition::LeftIndex),
                        );
                        let path = format!("/v1/subjects/{subject}/fingers");
                        let answer = request(&addr, "POST", &path, &key, &body);
                        let acknowledged = matches!(answer, Some((201, _)));
                        if let Some((status, b)) = &answer {
                            assert!(
                                *status == 201 || *status >= 500,
                                "{subject}: unexpected {status}: {b}"
                            );
                        }
                        sent.lock().unwrap().push(Sent {
                            subject,
                            body,
                            acknowledged,
                        });
                        if answer.is_none() {
                            break;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..600)));
        drop(server);
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }

    // Restarted once more: check everything that was sent.
    let server = start(data, models, database);
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let (acked, present, absent) = check_sent(backend, &server, &key, &sent);
    eprintln!(
        "crash test on {backend}: {rounds} SIGKILLs, {} enrolments sent, {acked} acknowledged \
         (all present and intact), {} unacknowledged: {} wholly present, {absent} wholly absent",
        sent.len(),
        sent.len() - acked,
        present - acked
    );
    drop(server);

    // The audit chain survived every kill.
    let mut cmd = ipseity(data);
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let (code, out, err) = run(cmd.args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{backend}: {out}{err}");
}

#[test]
fn acknowledged_enrolments_survive_sigkill_on_the_embedded_store() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    crash_rounds("sqlite", &tmp.path().join("data"), &models, None);
}

#[test]
fn acknowledged_enrolments_survive_sigkill_on_postgresql() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let Some(url) = test_database("crash") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    crash_rounds("postgres", &tmp.path().join("data"), &models, Some(&url));
}

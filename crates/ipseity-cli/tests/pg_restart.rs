//! PostgreSQL restarted (`pg_ctl restart -m immediate`: a crash and recovery) under a
//! load of concurrent enrolments: while it is down the service answers 503
//! `store_unavailable`, afterwards it connects again by itself and takes writes, and no
//! acknowledged enrolment is lost. A test binary of its own, as it restarts the shared
//! test server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::service::{
    check_sent, desk_key, fingers_body, record, request, start, test_database, Sent,
};
use common::{fixtures, ipseity, json, run};
use ipseity_finger::FingerPosition;
use rand::SeedableRng as _;

/// Restarts the server `url` points at, as its owner, waiting until it accepts again.
fn restart_postgres(url: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let data: String = c.query_one("SHOW data_directory", &[]).unwrap().get(0);
    let bin: String = c
        .query_one("SELECT setting FROM pg_config WHERE name = 'BINDIR'", &[])
        .unwrap()
        .get(0);
    drop(c);
    let pg_ctl = format!("{bin}/pg_ctl");
    let args = ["-D", &data, "restart", "-m", "immediate", "-w", "-t", "60"];
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let status = if root {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", &pg_ctl])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    } else {
        std::process::Command::new(&pg_ctl)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    };
    assert!(status.unwrap().success(), "pg_ctl restart failed");
}

#[test]
fn acknowledged_enrolments_survive_a_postgresql_restart() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let Some(url) = test_database("pg_restart") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = desk_key(&data, Some(&url));

    let server = start(&data, &models, Some(&url));
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let (stop, restarted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let after_restart = Arc::new(Mutex::new(0usize));
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (addr, key, sent, statuses, stop, restarted, after_restart) = (
                server.addr.clone(),
                key.clone(),
                sent.clone(),
                statuses.clone(),
                stop.clone(),
                restarted.clone(),
                after_restart.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let subject = format!("c{c}-{i}");
                    i += 1;
                    let body = fingers_body(
                        &record(&mut rng, FingerPosition::RightIndex),
                        &record(&mut rng, FingerPosition::LeftIndex),
                    );
                    let began_after = restarted.load(Ordering::Relaxed);
                    let answer = request(
                        &addr,
                        "POST",
                        &format!("/v1/subjects/{subject}/fingers"),
                        &key,
                        &body,
                    )
                    .expect("the service itself stays up");
                    let acknowledged = answer.0 == 201;
                    if acknowledged && began_after {
                        *after_restart.lock().unwrap() += 1;
                    }
                    statuses.lock().unwrap().push(answer);
                    sent.lock().unwrap().push(Sent {
                        subject,
                        body,
                        acknowledged,
                    });
                    if !acknowledged {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    restart_postgres(&url);
    restarted.store(true, Ordering::Relaxed);
    // Until a few enrolments begun after the restart are acknowledged (or a minute).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while *after_restart.lock().unwrap() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let statuses = std::mem::take(&mut *statuses.lock().unwrap());
    for (status, body) in &statuses {
        assert!(
            *status == 201 || (*status == 503 && json(body)["code"] == "store_unavailable"),
            "during the restart: {status} {body}"
        );
    }
    let unavailable = statuses.iter().filter(|s| s.0 == 503).count();
    let after = *after_restart.lock().unwrap();
    assert!(
        after > 0,
        "no enrolment was acknowledged after the restart; the last answer: {:?}",
        statuses.last()
    );
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let (acked, present, absent) = check_sent("postgres", &server, &key, &sent);
    eprintln!(
        "PostgreSQL restarted under load: {} enrolments sent, {acked} acknowledged ({after} \
         after the restart), {unavailable} answered 503 store_unavailable; unacknowledged: {} \
         wholly present, {absent} wholly absent; nothing acknowledged lost",
        sent.len(),
        present - acked
    );
    drop(server);
    let (code, out, err) =
        run(ipseity(&data).args(["--database", &url, "--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

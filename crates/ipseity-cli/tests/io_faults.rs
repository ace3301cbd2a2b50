//! A failing disk under the running service: while every write and fsync of the process
//! fails with EIO (an `LD_PRELOAD` shim, `tests/data/faults/io_fault.c`, built here with
//! the system C compiler), enrolments are refused with 503 `store_io_error` and leave
//! nothing, reads keep answering, and once the disk works again so do writes; after a
//! restart everything acknowledged is there and the audit chain verifies. Then the same
//! with a disk that fails now and then, in the middle of transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::{Path, PathBuf};

use common::service::{desk_key, fingers_body, record, request, start, start_with_env, Sent};
use common::{fixtures, ipseity, json, run};
use ipseity_finger::FingerPosition;
use rand::SeedableRng as _;

/// Builds the shim, or `None` (with a message) where there is no C compiler.
fn shim(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faults/io_fault.c");
    let out = dir.join("io_fault.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        assert!(
            std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
            "no C compiler to build the I/O fault shim"
        );
        eprintln!("skipping: no C compiler (cc) to build the I/O fault shim");
        return None;
    }
    Some(out)
}

#[test]
fn a_failing_disk_refuses_writes_with_503_keeps_reads_and_recovers() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(so) = shim(tmp.path()) else {
        return;
    };
    let data = tmp.path().join("data");
    let trigger = tmp.path().join("fail-now");
    let key = desk_key(&data, None);

    let server = start_with_env(
        &data,
        &models,
        None,
        &[
            ("LD_PRELOAD", so.as_os_str()),
            ("IPSEITY_FAULT_FILE", trigger.as_os_str()),
        ],
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut body = || {
        fingers_body(
            &record(&mut rng, FingerPosition::RightIndex),
            &record(&mut rng, FingerPosition::LeftIndex),
        )
    };
    let enrol = |subject: &str, body: &str| {
        request(
            &server.addr,
            "POST",
            &format!("/v1/subjects/{subject}/fingers"),
            &key,
            body,
        )
        .expect("the service answers")
    };
    let alice = body();
    let (st, b) = enrol("alice", &alice);
    assert_eq!(st, 201, "{b}");

    std::fs::write(&trigger, b"").unwrap();
    let bob = body();
    for _ in 0..3 {
        let (st, b) = enrol("bob", &bob);
        assert_eq!(st, 503, "{b}");
        assert_eq!(json(&b)["code"], "store_io_error", "{b}");
    }
    let (st, b) = request(&server.addr, "GET", "/v1/subjects/alice", &key, "").unwrap();
    assert_eq!(st, 200, "reads keep answering: {b}");
    let (st, _) = request(&server.addr, "GET", "/v1/subjects/bob", &key, "").unwrap();
    assert_eq!(st, 404, "a refused enrolment leaves nothing");

    std::fs::remove_file(&trigger).unwrap();
    let (st, b) = enrol("bob", &bob);
    assert_eq!(st, 201, "writes work again: {b}");
    drop(server);

    let server = start(&data, &models, None);
    let sent: Vec<Sent> = [("alice", alice), ("bob", bob)]
        .into_iter()
        .map(|(s, b)| Sent {
            subject: s.into(),
            body: b,
            acknowledged: true,
        })
        .collect();
    common::service::check_sent("sqlite", &server, &key, &sent);
    drop(server);
    let (code, out, err) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

/// A disk that fails about 3% of writes and fsyncs, at random, while four clients enrol:
/// every answer is a 201 or a 503 problem document (never a 500, and the server stays up),
/// and after the disk recovers and the server restarts every acknowledged enrolment is
/// there and intact, every other one wholly there or wholly absent, and the audit chain
/// verifies.
#[test]
fn a_disk_failing_at_random_moments_loses_nothing_acknowledged() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(so) = shim(tmp.path()) else {
        return;
    };
    let data = tmp.path().join("data");
    let trigger = tmp.path().join("fail-now");
    let key = desk_key(&data, None);
    let per_mille = std::env::var("IPSEITY_IO_FAULT_PER_MILLE").unwrap_or_else(|_| "30".into());
    let server = start_with_env(
        &data,
        &models,
        None,
        &[
            ("LD_PRELOAD", so.as_os_str()),
            ("IPSEITY_FAULT_FILE", trigger.as_os_str()),
            ("IPSEITY_FAULT_PER_MILLE", per_mille.as_ref()),
            ("IPSEITY_FAULT_SEED", "20261203".as_ref()),
        ],
    );
    std::fs::write(&trigger, b"").unwrap();
    let sent = enrol_under_faults(&server.addr, &key, 100, false, "");
    let acked = sent.iter().filter(|s| s.acknowledged).count();
    assert!(
        acked < sent.len(),
        "no write failed: the shim did not take effect"
    );
    // Reads answer while the disk still fails.
    let (st, b) = request(&server.addr, "GET", "/v1/subjects", &key, "").unwrap();
    assert_eq!(st, 200, "{b}");

    std::fs::remove_file(&trigger).unwrap();
    drop(server);
    let server = start(&data, &models, None);
    let (acked, present, absent) = common::service::check_sent("sqlite", &server, &key, &sent);
    eprintln!(
        "{} sent, {acked} acknowledged, {present} present, {absent} absent",
        sent.len()
    );
    drop(server);
    let (code, out, err) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

/// A PostgreSQL server of the test's own, started under the shim, stopped on drop.
struct FaultyPostgres {
    dir: PathBuf,
    url: String,
}

impl FaultyPostgres {
    fn pg_sh() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/pg.sh")
    }

    /// Starts (or starts again) the cluster in `dir` with the shim preloaded.
    fn start(dir: &Path, so: &Path, trigger: &Path) -> Option<String> {
        let out = std::process::Command::new("bash")
            .arg(Self::pg_sh())
            .arg("start")
            .arg(dir)
            .env("LD_PRELOAD", so)
            .env("IPSEITY_FAULT_FILE", trigger)
            .env(
                "IPSEITY_FAULT_PER_MILLE",
                std::env::var("IPSEITY_PG_FAULT_PER_MILLE").unwrap_or_else(|_| "30".into()),
            )
            .env("IPSEITY_FAULT_SEED", "7")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "pg.sh start failed: {}\nserver.log (last lines, newest first):\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail.join("\n")
            );
            return None;
        }
        Some(text.split('\'').nth(1)?.to_owned())
    }

    /// An immediate stop: a server the faults left retrying its recovery does not heed a
    /// fast one.
    fn stop(&self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::pg_sh())
            .args(["stop"])
            .arg(&self.dir)
            .arg("immediate")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for FaultyPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The same on PostgreSQL, with the shim under the database server itself: about 3% of
/// its writes and fsyncs fail (`IPSEITY_PG_FAULT_PER_MILLE` for more; from about 6% the
/// server soon stops and its recovery fails too, so it stays down until the disk works). PostgreSQL answers a failed data write with an error
/// (class 58, `store_io_error`) and a failed log write or fsync by stopping and
/// recovering (`store_unavailable`), so each answer must be a 201 or one of those 503s.
/// The disk then recovers, the server is started again if it stopped, and every
/// acknowledged enrolment is there and intact.
#[test]
fn a_postgresql_disk_failing_at_random_moments_loses_nothing_acknowledged() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    // Only run where the shared test server is configured (PostgreSQL is installed).
    if common::service::test_database("pg_io_faults").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(so) = shim(tmp.path()) else {
        return;
    };
    // The server runs as its own user, which must reach the shim and the trigger.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let trigger = tmp.path().join("fail-now");
    // The guard first, so that a failed start is stopped too.
    let mut pg = FaultyPostgres {
        dir: tmp.path().join("pg"),
        url: String::new(),
    };
    pg.url = FaultyPostgres::start(&pg.dir, &so, &trigger).expect("tools/pg.sh start");
    let data = tmp.path().join("data");
    let key = desk_key(&data, Some(&pg.url));
    let server = start(&data, &models, Some(&pg.url));
    // One enrolment before the faults, so that the check below always has an acknowledged
    // one to find even when the server stops at its first failure.
    let mut rng = rand::rngs::StdRng::seed_from_u64(199);
    let before = fingers_body(
        &record(&mut rng, FingerPosition::RightIndex),
        &record(&mut rng, FingerPosition::LeftIndex),
    );
    let (st, b) = request(
        &server.addr,
        "POST",
        "/v1/subjects/before/fingers",
        &key,
        &before,
    )
    .expect("the service answers");
    assert_eq!(st, 201, "{b}");

    std::fs::write(&trigger, b"").unwrap();
    // At about 3% of the server's writes, a batch of 48 enrolments (about a hundred WAL
    // writes) passes without a fault about one time in twenty; further batches until one
    // fails, so that a lucky batch does not pass for a shim that did nothing.
    let mut sent = vec![];
    for batch in 0..8u64 {
        let tag = format!("b{batch}");
        let part = enrol_under_faults(&server.addr, &key, 200 + 10 * batch, true, &tag);
        let failed = part.iter().any(|s| !s.acknowledged);
        sent.extend(part);
        if failed {
            break;
        }
    }
    assert!(
        sent.iter().any(|s| !s.acknowledged),
        "no write failed in eight batches: the shim did not take effect"
    );
    sent.push(Sent {
        subject: "before".into(),
        body: before,
        acknowledged: true,
    });

    // The disk recovers; the database server is started again if the faults stopped it
    // (its recovery replays the log), and the service reconnects by itself.
    std::fs::remove_file(&trigger).unwrap();
    pg.stop();
    assert!(
        FaultyPostgres::start(&pg.dir, &so, &trigger).is_some(),
        "PostgreSQL starts again once the disk works"
    );
    drop(server);
    let server = start(&data, &models, Some(&pg.url));
    let (acked, present, absent) = common::service::check_sent("postgres", &server, &key, &sent);
    eprintln!(
        "{} sent, {acked} acknowledged, {present} present, {absent} absent",
        sent.len()
    );
    drop(server);
    let (code, out, err) =
        run(ipseity(&data).args(["--database", &pg.url, "--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

/// Four clients enrol `IPSEITY_IO_FAULT_ROUNDS` (default 12) new subjects each while the
/// disk fails. Every answer must be a 201 or a 503 problem document naming a store fault,
/// never a 500. With `stop_when_down`, a client stops at its first `store_unavailable`:
/// a database server that stopped stays down while its disk fails, so further requests
/// would only wait. Subjects are named after `tag`, the worker and the round. Returns
/// everything sent, with whether it was acknowledged.
fn enrol_under_faults(
    addr: &str,
    key: &str,
    seed: u64,
    stop_when_down: bool,
    tag: &str,
) -> Vec<Sent> {
    let rounds: usize = std::env::var("IPSEITY_IO_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + w);
                    let mut sent = Vec::new();
                    let mut codes = std::collections::BTreeMap::<String, usize>::new();
                    for n in 0..rounds {
                        let subject = format!("{tag}w{w}n{n}");
                        let body = fingers_body(
                            &record(&mut rng, FingerPosition::RightIndex),
                            &record(&mut rng, FingerPosition::LeftIndex),
                        );
                        let path = format!("/v1/subjects/{subject}/fingers");
                        let (st, b) =
                            request(addr, "POST", &path, key, &body).expect("the service answers");
                        assert!(st == 201 || st == 503, "{subject}: {st} {b}");
                        let mut down = false;
                        if st == 503 {
                            let code = json(&b)["code"].as_str().unwrap_or("").to_owned();
                            assert!(
                                ["store_io_error", "disk_full", "store_unavailable"]
                                    .contains(&code.as_str()),
                                "{subject}: {b}"
                            );
                            down = code == "store_unavailable";
                            *codes.entry(code).or_default() += 1;
                        }
                        sent.push(Sent {
                            subject,
                            body,
                            acknowledged: st == 201,
                        });
                        if down && stop_when_down {
                            break;
                        }
                    }
                    eprintln!("worker {w}: refusals {codes:?}");
                    sent
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

//! A failing disk under the running service: while every write and fsync of the process
//! fails with EIO (an `LD_PRELOAD` shim, `tests/data/faults/io_fault.c`, built here with
//! the system C compiler), enrolments are refused with 503 `store_io_error` and leave
//! nothing, reads keep answering, and once the disk works again so do writes; after a
//! restart everything acknowledged is there and the audit chain verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::{Path, PathBuf};

use common::service::{desk_key, fingers_body, record, request, start, Sent};
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

    std::env::set_var("LD_PRELOAD", &so);
    std::env::set_var("IPSEITY_FAULT_FILE", &trigger);
    let server = start(&data, &models, None);
    std::env::remove_var("LD_PRELOAD");
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

//! `ipseity keys` and `ipseity serve` as a user runs them: a key printed once and
//! checked by the server, the data directory owned by the server (the CLI's writing
//! commands refuse), readiness, and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{error_code, fixtures, ipseity, json, run};

#[test]
fn keys_are_shown_once_and_listed_without_their_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (code, out, err) = run(ipseity(&data).args([
        "--json",
        "keys",
        "create",
        "--name",
        "bank-a",
        "--scopes",
        "verify,identify",
        "--purposes",
        "onboarding",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let key = json(&out)["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("ipk_"));
    let (code, out, _) = run(ipseity(&data).args(["--json", "keys", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains("bank-a") && !out.contains(&key), "{out}");
    let (code, out, _) =
        run(ipseity(&data).args(["--json", "keys", "create", "--name", "x", "--scopes", "fly"]));
    assert_eq!((code, error_code(&out).as_str()), (2, "usage"));
    let (code, out, _) = run(ipseity(&data).args(["--json", "keys", "revoke", "--name", "bank-a"]));
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(ipseity(&data).args(["--json", "keys", "list"]));
    assert_eq!(code, 0);
    assert!(json(&out)["keys"][0]["revoked_at"].is_string(), "{out}");
}

fn get(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

#[test]
fn serve_owns_the_store_answers_and_stops_cleanly() {
    let Some((models, _)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (code, out, _) = run(ipseity(&data).args([
        "--json", "keys", "create", "--name", "ops", "--scopes", "admin",
    ]));
    assert_eq!(code, 0);
    let admin = json(&out)["key"].as_str().expect("key").to_owned();

    let mut child = ipseity(&data)
        .env("IPSEITY_MODELS_DIR", &models)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("line");
        if let Some(a) = line.split("http://").nth(1) {
            break a.split_whitespace().next().expect("address").to_owned();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&addr, "/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "not ready in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&addr, "/livez", None).0, 200);
    assert_eq!(get(&addr, "/v1/audit", None).0, 401);
    let (status, body) = get(&addr, "/v1/audit", Some(&admin));
    assert_eq!(status, 200, "{body}");

    // While the server owns the directory, writing commands refuse; a second server too.
    let (code, out, _) = run(ipseity(&data).args(["--json", "erase", "--subject", "x"]));
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "store_in_use"),
        "{out}"
    );
    let (code, out, _) = run(ipseity(&data).env("IPSEITY_MODELS_DIR", &models).args([
        "--json",
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "store_in_use"),
        "{out}"
    );
    let (code, _, _) = run(ipseity(&data).args(["--json", "list"]));
    assert_eq!(code, 0, "reading stays possible");

    // SIGTERM: a clean exit, and the directory is free again.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let (code, out, _) = run(ipseity(&data).args(["--json", "erase", "--subject", "x"]));
    assert_eq!(
        (code, error_code(&out).as_str()),
        (2, "unknown_subject"),
        "{out}"
    );

    // Without TLS, a non-loopback address needs an explicit flag.
    let (code, out, _) = run(ipseity(&data).args(["--json", "serve", "--listen", "0.0.0.0:0"]));
    assert_eq!((code, error_code(&out).as_str()), (2, "usage"), "{out}");
    // A certificate needs its key; unreadable PEM files are a clear refusal, not a panic.
    let (code, _, _) = run(ipseity(&data).args(["serve", "--tls-cert", "c.pem"]));
    assert_eq!(code, 2);
    let bad = tmp.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let (code, out, _) = run(ipseity(&data).env("IPSEITY_MODELS_DIR", &models).args([
        "--json",
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        bad.to_str().expect("utf-8"),
        "--tls-key",
        bad.to_str().expect("utf-8"),
    ]));
    assert_eq!((code, error_code(&out).as_str()), (2, "tls"), "{out}");
}

#[path = "../../ipseity-store/tests/support/backends.rs"]
mod backends;

#[test]
fn serve_and_keys_work_on_postgres() {
    let Some(place) = backends::Place::postgres("cli_serve") else {
        return;
    };
    let Some((models, _)) = fixtures() else {
        return;
    };
    let backends::Place::Postgres { url, keys } = &place else {
        unreachable!("Place::postgres gives a PostgreSQL place");
    };
    let data = keys.path().to_path_buf();
    let (code, out, err) = run(ipseity(&data).env("IPSEITY_DATABASE_URL", url).args([
        "--json", "keys", "create", "--name", "ops", "--scopes", "admin",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let admin = json(&out)["key"].as_str().expect("key").to_owned();
    // The embedded store was not touched: the key lives in the database.
    assert!(!data.join(ipseity_store::DB_FILE).exists());
    // Commands other than serve and keys refuse a database rather than ignore it.
    let (code, out, _) = run(ipseity(&data)
        .env("IPSEITY_DATABASE_URL", url)
        .args(["--json", "list"]));
    assert_eq!((code, error_code(&out).as_str()), (2, "usage"), "{out}");

    let mut child = ipseity(&data)
        .env("IPSEITY_MODELS_DIR", &models)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("line");
        if let Some(a) = line.split("http://").nth(1) {
            assert!(line.contains("postgres"), "{line}");
            break a.split_whitespace().next().expect("address").to_owned();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&addr, "/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "not ready in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(&addr, "/v1/audit", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("key_create"), "{body}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "a clean stop on PostgreSQL too: {status:?}"
    );
}

//! The service as a separate process, for the fault tests: start it, talk HTTP/1.1 to it,
//! enrol random fingers, and check afterwards what was acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ipseity_finger::{iso, FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use rand::Rng as _;

use super::{ipseity, json};

/// One HTTP/1.1 request; `None` when the connection failed or broke (the server died).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((status, body))
}

/// A random finger as a base64 ISO/IEC 19794-2 record.
pub fn record(rng: &mut rand::rngs::StdRng, position: FingerPosition) -> String {
    let minutiae = (0..36)
        .map(|_| {
            Minutia::new(
                rng.gen_range(40.0..360.0),
                rng.gen_range(40.0..360.0),
                rng.gen_range(0.0..std::f32::consts::TAU),
                MinutiaKind::Ending,
                80,
            )
        })
        .collect();
    let t = FingerTemplate {
        width: 400,
        height: 400,
        resolution_ppi: 500,
        position,
        quality: 80,
        minutiae,
    };
    base64::engine::general_purpose::STANDARD
        .encode(iso::write(&[t], iso::Format::Iso19794_2).unwrap())
}

pub fn fingers_body(r1: &str, r2: &str) -> String {
    serde_json::json!({
        "purpose": "onboarding",
        "fingers": [
            { "position": "right-index", "data": r1 },
            { "position": "left-index", "data": r2 },
        ]
    })
    .to_string()
}

pub struct Sent {
    pub subject: String,
    pub body: String,
    pub acknowledged: bool,
}

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    /// SIGKILL, also when a test fails half-way, so that no server outlives its test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(data: &Path, models: &Path, database: Option<&str>) -> Server {
    start_with_env(data, models, database, &[])
}

/// [`start`], with these variables in the server's environment only (tests in one binary
/// run at once, so the process's own environment is no place for them).
pub fn start_with_env(
    data: &Path,
    models: &Path,
    database: Option<&str>,
    env: &[(&str, &std::ffi::OsStr)],
) -> Server {
    let mut cmd = ipseity(data);
    cmd.envs(env.iter().copied());
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let mut child = cmd
        .env("IPSEITY_MODELS_DIR", models)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut said = Vec::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("serve stopped before listening: {}", said.join("\n"));
        };
        if let Some(a) = line.split("http://").nth(1) {
            break a.split_whitespace().next().expect("address").to_owned();
        }
        said.push(line);
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let deadline = Instant::now() + Duration::from_secs(300);
    while request(&addr, "GET", "/readyz", "", "").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the server was not ready in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, addr }
}

/// Checks every enrolment sent against the restarted server: acknowledged ones are there
/// with both fingers and verify with what was sent; the others are wholly there or wholly
/// absent. Returns (acknowledged, present, absent).
pub fn check_sent(
    backend: &str,
    server: &Server,
    key: &str,
    sent: &[Sent],
) -> (usize, usize, usize) {
    let acked = sent.iter().filter(|s| s.acknowledged).count();
    let (mut present, mut absent) = (0, 0);
    for s in sent {
        let (status, body) = request(
            &server.addr,
            "GET",
            &format!("/v1/subjects/{}", s.subject),
            key,
            "",
        )
        .expect("the restarted server answers");
        match status {
            200 => {
                let v = json(&body);
                assert_eq!(
                    v["templates"]["finger"], 2,
                    "{backend}: {} is only partly there: {body}",
                    s.subject
                );
                let (status, answer) = request(
                    &server.addr,
                    "POST",
                    &format!("/v1/subjects/{}/verify", s.subject),
                    key,
                    &s.body,
                )
                .expect("verify answered");
                assert_eq!(status, 200, "{answer}");
                assert_eq!(
                    json(&answer)["decision"],
                    "accept",
                    "{backend}: {} does not match what was sent: {answer}",
                    s.subject
                );
                present += 1;
            }
            404 => {
                assert!(
                    !s.acknowledged,
                    "{backend}: {} was acknowledged and is lost",
                    s.subject
                );
                absent += 1;
            }
            other => panic!("{backend}: {}: unexpected {other}: {body}", s.subject),
        }
    }
    assert!(acked > 0, "{backend}: no enrolment was acknowledged at all");
    (acked, present, absent)
}

/// Creates the `desk` key (enrol, verify, admin; purpose onboarding) the fault tests call
/// with, on the embedded store in `data` or on `database`; returns the key.
pub fn desk_key(data: &Path, database: Option<&str>) -> String {
    let mut cmd = ipseity(data);
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let (code, out, err) = super::run(cmd.args([
        "--json",
        "keys",
        "create",
        "--name",
        "desk",
        "--scopes",
        "enrol,verify,admin",
        "--purposes",
        "onboarding",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    json(&out)["key"].as_str().unwrap().to_owned()
}

/// A fresh database on the test server (`IPSEITY_TEST_DATABASE_URL`, which `tools/pg.sh`
/// starts), or `None` with a message; `IPSEITY_REQUIRE_POSTGRES` turns the skip into a
/// failure.
pub fn test_database(test: &str) -> Option<String> {
    let Some(base) = std::env::var("IPSEITY_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var_os("IPSEITY_REQUIRE_POSTGRES").is_none(),
            "IPSEITY_REQUIRE_POSTGRES is set but IPSEITY_TEST_DATABASE_URL is not"
        );
        eprintln!("skipping: IPSEITY_TEST_DATABASE_URL is not set (tools/pg.sh starts a server)");
        return None;
    };
    let name = format!("t_{test}_{}", std::process::id());
    Some(ipseity_store::PgStore::create_database(&base, &name).unwrap())
}

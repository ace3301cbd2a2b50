//! The identity service under load on loopback, beside the same work through the engine
//! directly in the same run (the service's own overhead).
//!
//! ```sh
//! IPSEITY_MODELS_DIR=... IPSEITY_TEST_IMAGES=... \
//!   cargo bench -p ipseity-server --bench service -- [--gallery N] [--requests R]
//!     [--face-requests F] [--time-limit S] [--database URL] [--skip-faces]
//! ```
//!
//! - Fingers (ISO records) and faces (the face_recognition portraits): enrol, verify and
//!   identify at 1, 4 and 16 concurrent clients; each client is a keep-alive HTTP/1.1
//!   connection sending `R` requests at most (`F` for faces, default `R/4`: a face
//!   analysis takes seconds on a small CPU), and a scenario stops at the time limit.
//! - `--database URL`: the service on PostgreSQL (an empty database) instead of the
//!   embedded store; `--skip-faces` leaves out the face scenarios (seconds per analysis).
//! - `--gallery N`: bulk-loads N synthetic face templates (face-shaped: clustered
//!   identities around a shared direction) into the store, measures the start-up to ready
//!   (the galleries loaded from the store) and the p50/p99 of face identify against them,
//!   both the search part (the engine call) and the whole request.
//!
//! Prints one line a measurement. Needs no network beyond 127.0.0.1.

#![allow(clippy::unwrap_used)] // A benchmark fails loudly.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ipseity_core::{Modality, OperatingPoint, Scope, SubjectId, Template};
use ipseity_finger::{iso, FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use ipseity_server::{Limits, Models, Service};
use ipseity_store::{Backend, PgStore, Store};
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

const POINT: OperatingPoint = OperatingPoint {
    fmr: f64::NAN,
    accept_at: 0.5,
    reject_below: 0.4,
};

struct Args {
    gallery: usize,
    requests: usize,
    face_requests: Option<usize>,
    time_limit: Duration,
    database: Option<String>,
    skip_faces: bool,
}

fn args() -> Args {
    let mut a = Args {
        gallery: 0,
        requests: 100,
        face_requests: None,
        database: None,
        skip_faces: false,
        time_limit: Duration::from_secs(60),
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        if v[i] == "--skip-faces" {
            a.skip_faces = true;
        }
        if v[i] == "--database" {
            a.database = v.get(i + 1).cloned();
        }
        let next = v.get(i + 1).and_then(|x| x.parse::<u64>().ok());
        match (v[i].as_str(), next) {
            ("--gallery", Some(n)) => a.gallery = n as usize,
            ("--requests", Some(n)) => a.requests = n as usize,
            ("--face-requests", Some(n)) => a.face_requests = Some(n as usize),
            ("--time-limit", Some(n)) => a.time_limit = Duration::from_secs(n),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    key: String,
}

impl Client {
    fn new(addr: &str, key: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            key: key.to_owned(),
        }
    }

    /// Sends a request and returns the status.
    fn send(&mut self, method: &str, path: &str, body: &str) -> u16 {
        write!(
            self.w,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        )
        .unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).unwrap();
        status
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs `clients` connections, each sending requests made by `make(client, i)` until it
/// has sent `per_client` or the time limit passes; prints throughput and latencies.
/// Where the load goes and for how long.
struct Target {
    addr: String,
    key: String,
    limit: Duration,
}

fn load(
    t: &Target,
    label: &str,
    clients: usize,
    per_client: usize,
    make: Arc<dyn Fn(usize, usize) -> (String, String) + Send + Sync>,
    ok: &[u16],
) {
    let (addr, key, limit) = (t.addr.as_str(), t.key.as_str(), t.limit);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, key, make) = (addr.to_owned(), key.to_owned(), make.clone());
            std::thread::spawn(move || {
                let mut cl = Client::new(&addr, &key);
                let mut lat = Vec::new();
                let mut statuses = Vec::new();
                for i in 0..per_client {
                    if start.elapsed() > limit {
                        break;
                    }
                    let (path, body) = make(c, i);
                    let t = Instant::now();
                    statuses.push(cl.send("POST", &path, &body));
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                (lat, statuses)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut bad = 0;
    for h in handles {
        let (l, s) = h.join().unwrap();
        lat.extend(l);
        bad += s.iter().filter(|x| !ok.contains(x)).count();
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{label:<28} clients {clients:>2}  requests {:>5}  {:>8.1} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  unexpected {bad}",
        lat.len(),
        lat.len() as f64 / wall,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
}

fn finger_record(rng: &mut rand::rngs::StdRng) -> String {
    let minutiae = (0..40)
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
        position: FingerPosition::RightIndex,
        quality: 80,
        minutiae,
    };
    base64::engine::general_purpose::STANDARD
        .encode(iso::write(&[t], iso::Format::Iso19794_2).unwrap())
}

fn face_engine() -> Option<Arc<ipseity_face::FaceEngine>> {
    let dir = PathBuf::from(std::env::var_os("IPSEITY_MODELS_DIR")?);
    let set = ipseity_models::locate(&dir).ok()?;
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let engine = ipseity_face::FaceEngine::from_bytes(
        &read(&set.detector),
        &read(&set.landmarks),
        &read(&set.embedder),
        ipseity_face::Params::default(),
    )
    .unwrap();
    // As `ipseity serve` runs by default: with liveness, when its models are installed.
    Some(Arc::new(match ipseity_models::locate_liveness(&dir) {
        Ok(l) => engine.with_liveness(
            ipseity_face::liveness::Liveness::from_pth(&read(&l.v2), &read(&l.v1se)).unwrap(),
        ),
        Err(_) => engine,
    }))
}

fn calibration() -> ipseity_finger::fusion::ScoreCalibration {
    serde_json::from_str(include_str!(
        "../../ipseity-cli/src/commands/finger/builtin_calibration.json"
    ))
    .unwrap()
}

/// Fills the store with `n` synthetic face templates, 10,000 subjects a transaction.
fn bulk_load(store: &mut dyn Backend, n: usize) {
    let set = ipseity_index::synth::face_set(&ipseity_index::synth::FaceParams::new(n, 128), 0);
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = store.begin_write().unwrap();
        for &i in chunk {
            let v = set.gallery.vectors[i * 128..(i + 1) * 128].to_vec();
            let t = Template::new(Modality::Face, ipseity_face::MODEL_ID, v, 90).unwrap();
            tx.enroll(
                &SubjectId::new(format!("s{i:08}")).unwrap(),
                &[t],
                Some("bulk load"),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    println!(
        "bulk load                    {n} face templates in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

fn main() {
    let a = args();
    let engine = face_engine();
    let images = std::env::var_os("IPSEITY_TEST_IMAGES").map(PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let mut store: Box<dyn Backend> = match &a.database {
        Some(url) => Box::new(PgStore::open(url, dir.path()).unwrap()),
        None => Box::new(Store::open(dir.path()).unwrap()),
    };
    println!("backend                      {}", store.backend_name());
    if a.gallery > 0 {
        bulk_load(&mut *store, a.gallery);
    }
    let all = [Scope::Enrol, Scope::Verify, Scope::Identify, Scope::Admin];
    let (_, key) = store
        .create_key("bench", &all, &["bench".to_owned()])
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let service = Service::new(
        store,
        Models {
            face: engine.clone(),
            point: POINT,
            point_description: "bench".into(),
            finger_calibration: calibration(),
            check_liveness: engine.as_ref().is_some_and(|e| e.has_liveness()),
            documents: None,
        },
        Limits {
            request_timeout: Duration::from_secs(600),
            // Sixteen clients verify one subject at once: each attempt counts as failed until
            // it ends, so the default limits would throttle the burst this bench measures.
            attempts: ipseity_store::attempts::AttemptPolicy {
                free_failures: u32::MAX,
                ..Default::default()
            },
            // Nor is the hourly search budget what it measures.
            identify_budget_per_hour: u64::MAX,
            ..Limits::default()
        },
    );
    let t0 = Instant::now();
    service.load_galleries().unwrap();
    println!(
        "start-up to ready            {:.2} s ({} face templates in the store)",
        t0.elapsed().as_secs_f64(),
        a.gallery
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let target = Target {
        addr: addr.clone(),
        key: key.clone(),
        limit: a.time_limit,
    };
    let svc = service.clone();
    rt.spawn(async move {
        ipseity_server::serve(svc, listener, std::future::pending())
            .await
            .unwrap();
    });

    // ---- fingers: every request a distinct random finger, so enrolments are new people.
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let records: Arc<Vec<String>> = Arc::new((0..4096).map(|_| finger_record(&mut rng)).collect());
    let body = |rec: &str| {
        json!({ "purpose": "bench", "fingers": [{ "position": "right-index", "data": rec }] })
            .to_string()
    };
    for clients in [1, 4, 16] {
        let recs = records.clone();
        let tag = format!("c{clients}");
        load(
            &target,
            "finger enrol (ISO record)",
            clients,
            a.requests.div_ceil(clients),
            Arc::new(move |c, i| {
                let n = (c * 256 + i) % recs.len();
                (
                    format!("/v1/subjects/f{tag}-{c}-{i}/fingers"),
                    body(&recs[(n + clients * 7) % recs.len()]),
                )
            }),
            &[201, 202, 409],
        );
    }
    // Verify and identify against what was enrolled: f{c1}-0-0 holds records[7].
    for clients in [1, 4, 16] {
        let b = body(&records[7]);
        load(
            &target,
            "finger verify",
            clients,
            a.requests.div_ceil(clients),
            Arc::new(move |_, _| ("/v1/subjects/fc1-0-0/verify".to_owned(), b.clone())),
            &[200],
        );
    }
    for clients in [1, 4, 16] {
        let b = body(&records[7]);
        load(
            &target,
            "finger identify",
            clients,
            a.requests.div_ceil(clients),
            Arc::new(move |_, _| ("/v1/identify".to_owned(), b.clone())),
            &[200],
        );
    }

    // ---- engine direct, same work, same run: the service's overhead.
    {
        let samples = {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&records[7])
                .unwrap();
            vec![ipseity_finger::sample::load(
                &bytes,
                FingerPosition::RightIndex,
                &Default::default(),
            )
            .unwrap()]
        };
        let cfg = ipseity_finger::matcher::MatcherConfig::default();
        let probe: Vec<_> = samples
            .iter()
            .map(|s| ipseity_finger::gallery::ProbeFinger::new(&s.template, &cfg))
            .collect();
        let mut lat = Vec::new();
        for _ in 0..a.requests {
            let t = Instant::now();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&records[7])
                .unwrap();
            let s = ipseity_finger::sample::load(
                &bytes,
                FingerPosition::RightIndex,
                &Default::default(),
            )
            .unwrap();
            let p = vec![ipseity_finger::gallery::ProbeFinger::new(&s.template, &cfg)];
            let _ = service
                .with_finger_gallery(|g| g.identify(&p, 10, ipseity_engine::finger::SHORTLIST));
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        drop(probe);
        lat.sort_by(f64::total_cmp);
        println!(
            "finger identify (engine)     clients  1  requests {:>5}  p50 {:>8.2} ms  p99 {:>8.2} ms",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }

    // ---- faces.
    let (Some(engine), Some(images), false) = (engine, images, a.skip_faces) else {
        println!(
            "faces: skipped (--skip-faces, or IPSEITY_MODELS_DIR / IPSEITY_TEST_IMAGES unset)"
        );
        return;
    };
    let face_requests = a.face_requests.unwrap_or(a.requests / 4);
    let b64 = |f: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(images.join(f)).unwrap())
    };
    let faces: Arc<Vec<String>> = Arc::new(
        [
            "obama.jpg",
            "biden.jpg",
            "obama2.jpg",
            "obama-240p.jpg",
            "obama-480p.jpg",
            "obama-720p.jpg",
            "obama-1080p.jpg",
        ]
        .iter()
        .filter(|f| images.join(f).exists())
        .map(|f| b64(f))
        .collect(),
    );
    for clients in [1, 4, 16] {
        let fs = faces.clone();
        let tag = format!("c{clients}");
        load(
            &target,
            "face enrol (allow_duplicate)",
            clients,
            face_requests.max(clients).div_ceil(clients),
            Arc::new(move |c, i| {
                (
                    format!("/v1/subjects/face{tag}-{c}-{i}/faces"),
                    json!({ "purpose": "bench", "images": [fs[0]], "allow_duplicate": true })
                        .to_string(),
                )
            }),
            &[201],
        );
    }
    let probe = json!({ "purpose": "bench", "face": faces[0] }).to_string();
    for clients in [1, 4, 16] {
        let b = probe.clone();
        load(
            &target,
            "face verify",
            clients,
            face_requests.max(clients).div_ceil(clients),
            Arc::new(move |_, _| ("/v1/subjects/facec1-0-0/verify".to_owned(), b.clone())),
            &[200],
        );
    }
    for clients in [1, 4, 16] {
        let b = probe.clone();
        load(
            &target,
            "face identify",
            clients,
            face_requests.max(clients).div_ceil(clients),
            Arc::new(move |_, _| ("/v1/identify".to_owned(), b.clone())),
            &[200],
        );
    }
    // The search part alone: the engine's identify on the live gallery, with the probe
    // already analysed, and the analysis alone.
    let img = ipseity_face::decode::decode_image(
        &std::fs::read(images.join("obama.jpg")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let mut analysis = Vec::new();
    let mut search = Vec::new();
    for _ in 0..face_requests.max(10) {
        let t = Instant::now();
        let face = engine.single_face(&img, false).unwrap();
        analysis.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let _ = service_identify_face(&service, &face.embedding).unwrap();
        search.push(t.elapsed().as_secs_f64() * 1e3);
    }
    analysis.sort_by(f64::total_cmp);
    search.sort_by(f64::total_cmp);
    println!(
        "face analysis (engine)       p50 {:>8.2} ms  p99 {:>8.2} ms",
        pct(&analysis, 0.5),
        pct(&analysis, 0.99)
    );
    println!(
        "face identify search part    p50 {:>8.2} ms  p99 {:>8.2} ms  (gallery {} subjects)",
        pct(&search, 0.5),
        pct(&search, 0.99),
        a.gallery
    );
}

fn service_identify_face(s: &Service, probe: &[f32]) -> Option<ipseity_engine::identify::Answer> {
    s.with_face_gallery(|g| ipseity_engine::identify::face(g, &POINT, probe, 10))
}

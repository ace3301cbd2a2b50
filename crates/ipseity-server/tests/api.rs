//! The HTTP API end to end through the router (no socket): keys and their scopes and
//! purposes, problem documents, readiness, metrics, the OpenAPI document against the
//! routes, and concurrent enrolments of one person under many ids. Fingerprints need no
//! model files; the face cases run where the models and portraits are installed.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use ipseity_core::{OperatingPoint, Scope};
use ipseity_finger::iso;
use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use ipseity_server::{router, Limits, Models, Service, ROUTES};
use support::Place;

#[path = "../../ipseity-store/tests/support/backends.rs"]
mod support;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const POINT: OperatingPoint = OperatingPoint {
    fmr: f64::NAN,
    accept_at: 0.5,
    reject_below: 0.4,
};

struct Keys {
    admin: String,
    enrol: String,
    verify_only: String,
    review: String,
}

fn calibration() -> ipseity_finger::fusion::ScoreCalibration {
    serde_json::from_str(include_str!(
        "../../ipseity-cli/src/commands/finger/builtin_calibration.json"
    ))
    .unwrap()
}

/// The face engine with the liveness models, as `ipseity serve` runs it by default; `None`
/// (the face tests skip) where the models are not installed.
fn face_engine() -> Option<Arc<ipseity_face::FaceEngine>> {
    let dir = std::path::PathBuf::from(std::env::var_os("IPSEITY_MODELS_DIR")?);
    let set = ipseity_models::locate(&dir).ok()?;
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let Ok(live) = ipseity_models::locate_liveness(&dir) else {
        assert!(
            std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
            "IPSEITY_REQUIRE_SHARED is set but the liveness models are not in {}",
            dir.display()
        );
        eprintln!(
            "skipping the face tests: no liveness models in {}",
            dir.display()
        );
        return None;
    };
    let liveness =
        ipseity_face::liveness::Liveness::from_pth(&read(&live.v2), &read(&live.v1se)).unwrap();
    Some(Arc::new(
        ipseity_face::FaceEngine::from_bytes(
            &read(&set.detector),
            &read(&set.landmarks),
            &read(&set.embedder),
            ipseity_face::Params::default(),
        )
        .unwrap()
        .with_liveness(liveness),
    ))
}

/// Runs blocking set-up (the PostgreSQL client blocks) from a multi-threaded test.
fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn service(place: &Place, face: Option<Arc<ipseity_face::FaceEngine>>) -> (Arc<Service>, Keys) {
    sync(|| service_now(place, face))
}

fn service_now(place: &Place, face: Option<Arc<ipseity_face::FaceEngine>>) -> (Arc<Service>, Keys) {
    let mut store = place.open();
    let onboarding = vec!["onboarding".to_owned()];
    let (_, admin) = store.create_key("ops", &[Scope::Admin], &[]).unwrap();
    let (_, enrol) = store
        .create_key(
            "desk",
            &[Scope::Enrol, Scope::Verify, Scope::Identify],
            &onboarding,
        )
        .unwrap();
    let (_, verify_only) = store
        .create_key("bank-a", &[Scope::Verify], &onboarding)
        .unwrap();
    let (_, review) = store.create_key("reviewer", &[Scope::Review], &[]).unwrap();
    let s = Service::new(
        store,
        Models {
            face,
            point: POINT,
            point_description: "test".into(),
            finger_calibration: calibration(),
            check_liveness: true,
            documents: None,
        },
        Limits {
            // Sixteen face analyses queue on a 2-core machine that may be busy with
            // other tests: the wait bound is not what these tests measure.
            request_timeout: std::time::Duration::from_secs(600),
            ..Limits::default()
        },
    );
    (
        s,
        Keys {
            admin,
            enrol,
            verify_only,
            review,
        },
    )
}

async fn call(
    s: &Arc<Service>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let body = body.map(|b| ("application/json".to_owned(), b.to_string().into_bytes()));
    call_raw(s, method, path, key, body).await
}

/// A `multipart/form-data` body: `(name, bytes, is_file)` parts.
fn multipart(parts: &[(&str, &[u8], bool)]) -> (String, Vec<u8>) {
    let boundary = "ipseity-test-boundary-7d3f";
    let mut b = Vec::new();
    for (name, data, file) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let filename = if *file {
            "; filename=\"sample.bin\""
        } else {
            ""
        };
        b.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

async fn call_raw(
    s: &Arc<Service>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<(String, Vec<u8>)>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some((ctype, b)) => req
            .header("content-type", ctype)
            .body(Body::from(b))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, ctype, v)
}

/// A random finger as a base64 ISO record: 40 minutiae over a 400x400 print.
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

fn fingers(record: &str) -> Value {
    json!([{ "position": "right-index", "data": record }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_and_purposes_are_enforced_and_audited() {
    for place in sync(|| Place::all("keys_scopes_and_purposes")) {
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let rec = finger_record(&mut rng);
        let body = json!({ "purpose": "onboarding", "fingers": fingers(&rec) });

        let (st, ctype, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(v["code"], "unauthorized");
        let (st, _, _) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some("ipk_bogus"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some(&k.verify_only),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
        let other = json!({ "purpose": "marketing", "fingers": fingers(&rec) });
        let (st, _, _) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some(&k.enrol),
            Some(other),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);

        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["subject"], "alice");
        // The same finger under another id is a case for a reviewer: held (202), not
        // verifiable, listed for the review scope only.
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/bob/fingers",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["held_for_review_of"], json!(["alice"]), "{v}");
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/bob/verify",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("pending_review")),
            "{v}"
        );
        let (st, _, _) = call(&s, "GET", "/v1/reviews", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, v) = call(&s, "GET", "/v1/reviews", Some(&k.review), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["pending"][0]["subject"], "bob", "{v}");
        assert_eq!(v["pending"][0]["matches"], json!(["alice"]), "{v}");
        // Not one of its matches: refused. Then: the same person as alice.
        let (st, _, _) = call(
            &s,
            "POST",
            "/v1/reviews/bob",
            Some(&k.review),
            Some(json!({ "outcome": "same_person", "same_as": "zed" })),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/reviews/bob",
            Some(&k.review),
            Some(json!({ "outcome": "same_person", "same_as": "alice" })),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, _, _) = call(&s, "GET", "/v1/subjects/bob", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        // Held again under another id, resolved as a new subject: enrolled, searchable.
        let (st, _, _) = call(
            &s,
            "POST",
            "/v1/subjects/carol/fingers",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED);
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/reviews/carol",
            Some(&k.review),
            Some(json!({ "outcome": "new_subject" })),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/identify",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v.to_string().contains("\"carol\""), "{v}");
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/reviews/carol",
            Some(&k.review),
            Some(json!({ "outcome": "rejected" })),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown_subject")),
            "{v}: no longer held"
        );
        let (_, _, log) = call(&s, "GET", "/v1/audit?limit=50", Some(&k.admin), None).await;
        let resolved: Vec<_> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == "review")
            .map(|e| {
                (
                    e["outcome"].as_str().unwrap_or(""),
                    e["actor"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            resolved,
            [
                ("new_subject", "key:reviewer"),
                ("same_person", "key:reviewer")
            ]
        );
        // Carol goes again, so that what follows sees alice alone.
        let (st, _, _) = call(&s, "DELETE", "/v1/subjects/carol", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::OK);

        // Verify and identify answer decisions only.
        let probe = json!({ "purpose": "onboarding", "fingers": fingers(&rec) });
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/verify",
            Some(&k.verify_only),
            Some(probe.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["decision"], "accept");
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/identify",
            Some(&k.verify_only),
            Some(probe.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/identify",
            Some(&k.enrol),
            Some(probe.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            v["candidates"],
            json!([{ "subject": "alice", "decision": "accept" }])
        );
        let text = v.to_string();
        assert!(!text.contains("score") && !text.contains("fmr"), "{text}");

        // Admin only: the audit, which names keys, never keys' secrets.
        let (st, _, _) = call(&s, "GET", "/v1/audit", Some(&k.enrol), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, v) = call(&s, "GET", "/v1/audit?limit=50", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::OK);
        let log = v.to_string();
        for secret in [&k.admin, &k.enrol, &k.verify_only] {
            assert!(!log.contains(secret.as_str()));
        }
        assert!(
            log.contains("key=bank-a operation=enrol reason=scope"),
            "{log}"
        );
        assert!(log.contains("key=- operation=enrol reason=no_key"), "{log}");
        assert!(
            log.contains("key=desk operation=enrol reason=purpose"),
            "{log}"
        );
        // Who acted: the key's name on each row it caused, nobody without a valid key.
        let entries = v["entries"].as_array().expect("entries").clone();
        let actor_of = |pred: &dyn Fn(&serde_json::Value) -> bool| {
            let e = entries
                .iter()
                .find(|e| pred(e))
                .unwrap_or_else(|| panic!("{log}"));
            e["actor"].clone()
        };
        assert_eq!(actor_of(&|e| e["operation"] == "enroll"), json!("key:desk"));
        assert_eq!(
            actor_of(&|e| e["operation"] == "identify"),
            json!("key:desk")
        );
        let detail_has =
            |e: &serde_json::Value, t: &str| e["detail"].as_str().is_some_and(|d| d.contains(t));
        assert_eq!(
            actor_of(&|e| detail_has(e, "reason=no_key")),
            serde_json::Value::Null
        );
        assert_eq!(
            actor_of(&|e| detail_has(e, "key=bank-a operation=enrol reason=scope")),
            json!("key:bank-a")
        );
        assert!(sync(|| place.open().verify_audit(None).unwrap().intact()));

        // Erasure leaves the gallery at once.
        let (st, _, v) = call(&s, "DELETE", "/v1/subjects/alice", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, _, v) = call(&s, "POST", "/v1/identify", Some(&k.enrol), Some(probe)).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["candidates"], json!([]));
        let (st, _, v) = call(&s, "GET", "/v1/subjects/alice", Some(&k.admin), None).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown_subject"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    for place in sync(|| Place::all("bad_input_gets_a_problem")) {
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let rec = finger_record(&mut rand::rngs::StdRng::seed_from_u64(11));
        let cases = [
            (
                json!({ "purpose": "onboarding", "fingers": [{ "data": rec, "ppi": 72 }] }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_resolution",
            ),
            (
                json!({ "purpose": "onboarding", "fingers": [{ "data": "%%%" }] }),
                StatusCode::BAD_REQUEST,
                "bad_base64",
            ),
            (
                json!({ "purpose": "onboarding", "fingers": [{ "data": "aGVsbG8=" }] }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_an_image",
            ),
            (
                json!({ "fingers": [{ "data": "aGVsbG8=" }] }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "purpose_required",
            ),
            (
                json!({ "purpose": "onboarding", "fingers": [] }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "usage",
            ),
        ];
        for (body, status, code) in cases {
            let (st, ctype, v) = call(
                &s,
                "POST",
                "/v1/subjects/x/fingers",
                Some(&k.enrol),
                Some(body.clone()),
            )
            .await;
            assert_eq!(
                (st, v["code"].as_str()),
                (status, Some(code)),
                "{body}: {v}"
            );
            assert_eq!(ctype, "application/problem+json");
        }
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/bad%20id/fingers",
            Some(&k.enrol),
            Some(json!({ "purpose": "onboarding", "fingers": [{ "data": "aGVsbG8=" }] })),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_subject_id"))
        );
        // Face requests on a service without face models are unavailable, not a crash.
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/identify",
            Some(&k.enrol),
            Some(json!({ "purpose": "onboarding", "face": "aGVsbG8=" })),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("models_missing"))
        );
        let (_, _, v) = call(&s, "GET", "/v1/subjects", Some(&k.admin), None).await;
        assert_eq!(v["subjects"], json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_and_the_openapi_document_follow_the_routes() {
    let place = Place::sqlite();
    let (s, k) = service(&place, None);
    let (st, _, v) = call(&s, "GET", "/readyz", None, None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready"))
    );
    let (st, _, _) = call(&s, "GET", "/livez", None, None).await;
    assert_eq!(st, StatusCode::OK);
    sync(|| s.load_galleries()).unwrap();
    let (st, _, _) = call(&s, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);

    // Every route in the table is routed (no 404/405), and the document lists exactly them.
    for (method, path, _, _) in ROUTES {
        let p = path
            .replace("{id}", "someone")
            .replace("{purpose}", "onboarding");
        let (st, _, v) = call(&s, method, &p, Some(&k.admin), Some(json!({}))).await;
        assert!(
            st != StatusCode::NOT_FOUND || v["code"] == "unknown_subject",
            "{method} {path}: {st} {v}"
        );
        assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    let (st, _, doc) = call(&s, "GET", "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            documented.push((m.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.0.to_owned(), r.1.to_owned()))
        .collect();
    table.sort();
    assert_eq!(documented, table);
    let (st, _, _) = call(&s, "GET", "/v1/not-a-route", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (_, _, m) = call(&s, "GET", "/metrics", None, None).await;
    let m = m.as_str().unwrap().to_owned();
    assert!(m.contains("route=\"/v1/subjects/{id}\""), "{m}");
    assert!(!m.contains("someone"), "no subject id in a label");
    assert!(m.contains("ipseity_gallery_subjects{modality=\"face\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_enrolments_of_one_print_enrol_exactly_one() {
    for place in sync(|| Place::all("sixteen_concurrent_enrol")) {
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let rec = finger_record(&mut rng);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (s, key, rec) = (s.clone(), k.enrol.clone(), rec.clone());
            tasks.push(tokio::spawn(async move {
                let body = json!({ "purpose": "onboarding", "fingers": fingers(&rec) });
                call(
                    &s,
                    "POST",
                    &format!("/v1/subjects/p{i:02}/fingers"),
                    Some(&key),
                    Some(body),
                )
                .await
            }));
        }
        let mut created = 0;
        let mut duplicates = 0;
        for t in tasks {
            let (st, _, v) = t.await.unwrap();
            match st {
                StatusCode::CREATED => created += 1,
                StatusCode::ACCEPTED if v["held_for_review_of"].is_array() => duplicates += 1,
                _ => panic!("{st} {v}"),
            }
        }
        assert_eq!((created, duplicates), (1, 15));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_enrolments_of_one_face_enrol_exactly_one() {
    let Some(engine) = face_engine() else {
        assert!(
            std::env::var_os("IPSEITY_REQUIRE_MODELS").is_none(),
            "IPSEITY_REQUIRE_MODELS is set but the face models are not in IPSEITY_MODELS_DIR"
        );
        eprintln!("skipping: set IPSEITY_MODELS_DIR and IPSEITY_TEST_IMAGES to run this test");
        return;
    };
    let images = std::path::PathBuf::from(std::env::var_os("IPSEITY_TEST_IMAGES").unwrap());
    let obama = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(images.join("obama.jpg")).unwrap());
    for place in sync(|| Place::all("sixteen_concurrent_enrol")) {
        let (s, k) = service(&place, Some(engine.clone()));
        sync(|| s.load_galleries()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (s, key, img) = (s.clone(), k.enrol.clone(), obama.clone());
            tasks.push(tokio::spawn(async move {
                let body = json!({ "purpose": "onboarding", "images": [img] });
                call(
                    &s,
                    "POST",
                    &format!("/v1/subjects/p{i:02}/faces"),
                    Some(&key),
                    Some(body),
                )
                .await
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            let (st, _, v) = t.await.unwrap();
            statuses.push((st, v["code"].as_str().map(str::to_owned)));
        }
        let created = statuses
            .iter()
            .filter(|s| s.0 == StatusCode::CREATED)
            .count();
        let dup = statuses
            .iter()
            .filter(|s| s.0 == StatusCode::ACCEPTED)
            .count();
        assert_eq!((created, dup), (1, 15), "{statuses:?}");
        // And a second photo of the same person verifies against the one enrolled.
        let winner = {
            let (_, _, v) = call(&s, "GET", "/v1/subjects", Some(&k.admin), None).await;
            v["subjects"][0]["id"].as_str().unwrap().to_owned()
        };
        let obama2 = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(images.join("obama2.jpg")).unwrap());
        let (st, _, v) = call(
            &s,
            "POST",
            &format!("/v1/subjects/{winner}/verify"),
            Some(&k.enrol),
            Some(json!({ "purpose": "onboarding", "face": obama2 })),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["decision"], "accept");

        // Face and fingers together: each decides, both must accept.
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let (own, other) = (finger_record(&mut rng), finger_record(&mut rng));
        let (st, _, v) = call(
            &s,
            "POST",
            &format!("/v1/subjects/{winner}/fingers"),
            Some(&k.enrol),
            Some(json!({ "purpose": "onboarding", "fingers": fingers(&own) })),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let fused = |finger: &str| json!({ "purpose": "onboarding", "face": obama2, "fingers": fingers(finger) });
        let path = format!("/v1/subjects/{winner}/verify");
        let (st, _, v) = call(&s, "POST", &path, Some(&k.enrol), Some(fused(&own))).await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{v}"
        );
        assert_eq!(v["parts"].as_array().map(Vec::len), Some(2), "{v}");
        assert!(v.get("modality").is_none(), "{v}");
        // The face accepts but the fingers do not: a person decides.
        let (st, _, v) = call(&s, "POST", &path, Some(&k.enrol), Some(fused(&other))).await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("needs_review")),
            "{v}"
        );
        assert_eq!(v["parts"][1]["decision"], "reject", "{v}");
        let (_, _, v) = call(&s, "GET", "/v1/audit?limit=1", Some(&k.admin), None).await;
        let last = &v["entries"][0];
        assert_eq!(
            (last["operation"].as_str(), last["outcome"].as_str()),
            (Some("verify"), Some("needs_review"))
        );
        assert_eq!(
            last["detail"],
            "modality=face+finger face=accept finger=reject compared=1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_records_may_come_as_multipart_form_data() {
    let place = Place::sqlite();
    let (s, k) = service(&place, None);
    sync(|| s.load_galleries()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let rec = finger_record(&mut rng);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&rec)
        .unwrap();
    let body = multipart(&[
        ("purpose", b"onboarding", false),
        ("finger:right-index", &raw, true),
    ]);
    let (st, _, v) = call_raw(
        &s,
        "POST",
        "/v1/subjects/mp/fingers",
        Some(&k.enrol),
        Some(body),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["templates"], 1);
    // The same record verifies, sent either way.
    let body = multipart(&[
        ("purpose", b"onboarding", false),
        ("finger:right-index", &raw, true),
    ]);
    let (st, _, v) = call_raw(
        &s,
        "POST",
        "/v1/subjects/mp/verify",
        Some(&k.enrol),
        Some(body),
    )
    .await;
    assert_eq!(
        (st, v["decision"].as_str()),
        (StatusCode::OK, Some("accept")),
        "{v}"
    );
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/mp/verify",
        Some(&k.enrol),
        Some(json!({ "purpose": "onboarding", "fingers": fingers(&rec) })),
    )
    .await;
    assert_eq!(
        (st, v["decision"].as_str()),
        (StatusCode::OK, Some("accept")),
        "{v}"
    );
    // A malformed field, a broken body and another media type are problems, not panics.
    let body = multipart(&[("purpose", b"onboarding", false), ("top", b"many", false)]);
    let (st, ctype, v) = call_raw(&s, "POST", "/v1/identify", Some(&k.enrol), Some(body)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_body")),
        "{v}"
    );
    assert_eq!(ctype, "application/problem+json");
    let broken = (
        "multipart/form-data; boundary=x".to_owned(),
        b"--x\r\nnonsense".to_vec(),
    );
    let (st, _, v) = call_raw(&s, "POST", "/v1/identify", Some(&k.enrol), Some(broken)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let xml = ("application/xml".to_owned(), b"<probe/>".to_vec());
    let (st, _, v) = call_raw(&s, "POST", "/v1/identify", Some(&k.enrol), Some(xml)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    // Nothing was enrolled by the refused requests.
    let (_, _, v) = call(&s, "GET", "/v1/subjects", Some(&k.admin), None).await;
    assert_eq!(v["subjects"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_verifications_back_off_until_an_administrator_unlocks() {
    for place in sync(|| Place::all("failed_verifications_back_off")) {
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mine, other) = (finger_record(&mut rng), finger_record(&mut rng));
        let body = |rec: &str| json!({ "purpose": "onboarding", "fingers": fingers(rec) });
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/carol/fingers",
            Some(&k.enrol),
            Some(body(&mine)),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let path = "/v1/subjects/carol/verify";
        // Five rejects are answered; the sixth attempt is refused with a wait.
        for _ in 0..5 {
            let (st, _, v) = call(&s, "POST", path, Some(&k.enrol), Some(body(&other))).await;
            assert_eq!(
                (st, v["decision"].as_str()),
                (StatusCode::OK, Some("reject")),
                "{v}"
            );
        }
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("authorization", format!("Bearer {}", k.enrol))
            .header("content-type", "application/json")
            .body(Body::from(body(&mine).to_string()))
            .unwrap();
        let resp = router(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((29..=30).contains(&wait), "{wait}");
        let v: Value =
            serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
        assert_eq!(v["code"], "too_many_attempts");
        // Even the right finger waits; only an administrator may clear the lock.
        let (st, _, _) = call(&s, "POST", path, Some(&k.enrol), Some(body(&mine))).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
        let (st, _, _) = call(
            &s,
            "POST",
            "/v1/subjects/carol/unlock",
            Some(&k.enrol),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/carol/unlock",
            Some(&k.admin),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, _, v) = call(&s, "POST", path, Some(&k.enrol), Some(body(&mine))).await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{v}"
        );
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/nobody/unlock",
            Some(&k.admin),
            None,
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown_subject"))
        );
        // The refusals and the unlock are in the audit, by whom.
        let (_, _, v) = call(&s, "GET", "/v1/audit?limit=20", Some(&k.admin), None).await;
        let entries = v["entries"].as_array().unwrap();
        let locked = entries.iter().filter(|e| e["outcome"] == "locked").count();
        assert_eq!(locked, 2, "{v}");
        assert!(entries
            .iter()
            .any(|e| e["operation"] == "unlock" && e["actor"] == "key:ops"));
        assert!(sync(|| place.open().verify_audit(None).unwrap().intact()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_searches_no_more_than_its_hourly_budget_across_servers() {
    for place in sync(|| Place::all("a_key_searches_no_more")) {
        let (s0, k) = service(&place, None);
        sync(|| s0.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let recs: Vec<String> = (0..2).map(|_| finger_record(&mut rng)).collect();
        for (i, r) in recs.iter().enumerate() {
            let body = json!({ "purpose": "onboarding", "fingers": fingers(r) });
            let path = format!("/v1/subjects/b{i}/fingers");
            let (st, _, v) = call(&s0, "POST", &path, Some(&k.enrol), Some(body)).await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
        }
        // Two servers on the one database, each allowing 4 subjects searched an hour.
        let server = || {
            sync(|| {
                let s = Service::new(
                    place.open(),
                    Models {
                        face: None,
                        point: POINT,
                        point_description: "test".into(),
                        finger_calibration: calibration(),
                        check_liveness: true,
                        documents: None,
                    },
                    Limits {
                        identify_budget_per_hour: 4,
                        ..Limits::default()
                    },
                );
                s.load_galleries().unwrap();
                s
            })
        };
        let (s1, s2) = (server(), server());
        let probe = json!({ "purpose": "onboarding", "fingers": fingers(&recs[0]) });
        // Each search of the two-subject gallery spends 2: two searches, then none.
        for s in [&s1, &s2] {
            let (st, _, v) = call(
                s,
                "POST",
                "/v1/identify",
                Some(&k.enrol),
                Some(probe.clone()),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
        let (st, _, v) = call(
            &s1,
            "POST",
            "/v1/identify",
            Some(&k.enrol),
            Some(probe.clone()),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("search_budget_spent")),
            "{v}"
        );
        assert!(
            v["retry_after_s"]
                .as_u64()
                .is_some_and(|w| (1..=3600).contains(&w)),
            "{v}"
        );
        let (_, _, v) = call(&s1, "GET", "/v1/audit?limit=5", Some(&k.admin), None).await;
        assert!(
            v.to_string()
                .contains("key=desk operation=identify reason=search_budget"),
            "{v}"
        );
    }
}

/// A request (method and path) and its answer: status, headers, body.
type Exchange = (String, StatusCode, Vec<(String, String)>, String);

/// A response's status, headers and body as text, from a request driven through the router.
async fn exchange(
    s: &Arc<Service>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Vec<(String, String)>, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Everything in a JSON answer that could carry a similarity: a member named like one, or
/// a number with a fraction.
fn similarity_leaks(v: &Value, at: &str, out: &mut Vec<String>) {
    const WORDS: [&str; 8] = [
        "score",
        "similar",
        "distance",
        "fmr",
        "confidence",
        "probab",
        "rank",
        "threshold",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let kl = k.to_ascii_lowercase();
                if WORDS.iter().any(|w| kl.contains(w)) {
                    out.push(format!("{at}.{k}"));
                }
                similarity_leaks(x, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                similarity_leaks(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Number(n) if n.is_f64() => out.push(format!("{at} = {n}")),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_carries_a_similarity() {
    for place in sync(|| Place::all("no_answer_carries_a_similarity")) {
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(33);
        let recs: Vec<String> = (0..4).map(|_| finger_record(&mut rng)).collect();
        let ids = ["ana", "ben", "cy", "dee"];
        let fb = |rec: &str| json!({ "purpose": "onboarding", "fingers": fingers(rec) });
        let mut answers: Vec<Exchange> = Vec::new();
        let drive = |m: &'static str, p: String, key: Option<String>, b: Option<Value>| {
            let s = s.clone();
            async move {
                let (st, h, body) = exchange(&s, m, &p, key.as_deref(), b).await;
                (format!("{m} {p}"), st, h, body)
            }
        };
        for (id, rec) in ids.iter().zip(&recs) {
            let a = drive(
                "POST",
                format!("/v1/subjects/{id}/fingers"),
                Some(k.enrol.clone()),
                Some(fb(rec)),
            )
            .await;
            assert_eq!(a.1, StatusCode::CREATED, "{a:?}");
            answers.push(a);
        }
        // A duplicate enrolment, verifications that accept and reject, searches with a
        // mate and without, every error path we know of, and the admin's views.
        let probe_new = finger_record(&mut rng);
        let mut requests: Vec<(&'static str, String, Option<String>, Option<Value>)> = vec![
            (
                "POST",
                "/v1/subjects/eve/fingers".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[0])),
            ),
            (
                "POST",
                "/v1/subjects/ana/verify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[0])),
            ),
            (
                "POST",
                "/v1/subjects/ana/verify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[1])),
            ),
            (
                "POST",
                "/v1/subjects/nobody/verify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[1])),
            ),
            (
                "POST",
                "/v1/identify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[2])),
            ),
            (
                "POST",
                "/v1/identify".into(),
                Some(k.enrol.clone()),
                Some(fb(&probe_new)),
            ),
            (
                "POST",
                "/v1/identify".into(),
                Some(k.verify_only.clone()),
                Some(fb(&recs[2])),
            ),
            ("POST", "/v1/identify".into(), None, Some(fb(&recs[2]))),
            (
                "POST",
                "/v1/identify".into(),
                Some(k.enrol.clone()),
                Some(json!({ "purpose": "onboarding", "fingers": [{ "data": "not base64!" }] })),
            ),
            (
                "POST",
                "/v1/identify".into(),
                Some(k.enrol.clone()),
                Some(json!({ "purpose": "onboarding", "fingers": fingers(&recs[2]), "top": 0 })),
            ),
            (
                "POST",
                "/v1/subjects/ana/verify".into(),
                Some(k.enrol.clone()),
                Some(json!({ "purpose": "onboarding", "fingers": [{ "data": "AAAA" }] })),
            ),
            (
                "POST",
                "/v1/subjects/ana/verify".into(),
                Some(k.enrol.clone()),
                Some(json!({ "purpose": "onboarding", "face": "AAAA" })),
            ),
            (
                "POST",
                "/v1/subjects/ana/verify".into(),
                Some(k.enrol.clone()),
                Some(json!({})),
            ),
            ("GET", "/v1/subjects".into(), Some(k.admin.clone()), None),
            (
                "GET",
                "/v1/subjects/ana".into(),
                Some(k.admin.clone()),
                None,
            ),
            (
                "POST",
                "/v1/subjects/ana/unlock".into(),
                Some(k.admin.clone()),
                None,
            ),
            ("GET", "/v1/reviews".into(), Some(k.review.clone()), None),
            (
                "POST",
                "/v1/reviews/eve".into(),
                Some(k.review.clone()),
                Some(json!({ "outcome": "rejected" })),
            ),
            (
                "POST",
                "/v1/keys/rotate-master".into(),
                Some(k.admin.clone()),
                None,
            ),
            (
                "DELETE",
                "/v1/subjects/cy/consents/onboarding".into(),
                Some(k.enrol.clone()),
                None,
            ),
            (
                "POST",
                "/v1/subjects/cy/verify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[2])),
            ),
            (
                "PUT",
                "/v1/subjects/cy/consents/onboarding".into(),
                Some(k.enrol.clone()),
                None,
            ),
            (
                "GET",
                "/v1/audit?limit=100".into(),
                Some(k.admin.clone()),
                None,
            ),
            ("GET", "/readyz".into(), None, None),
            ("GET", "/livez".into(), None, None),
            (
                "DELETE",
                "/v1/subjects/dee".into(),
                Some(k.admin.clone()),
                None,
            ),
        ];
        // Five rejects of one subject, then the refusal that follows them.
        for _ in 0..6 {
            requests.push((
                "POST",
                "/v1/subjects/ben/verify".into(),
                Some(k.enrol.clone()),
                Some(fb(&recs[3])),
            ));
        }
        for (m, p, key, b) in requests {
            answers.push(drive(m, p, key, b).await);
        }
        let verdicts: Vec<&str> = answers.iter().map(|a| a.3.as_str()).collect();
        assert!(
            verdicts.iter().any(|b| b.contains("\"accept\"")),
            "an accept was seen"
        );
        assert!(
            verdicts.iter().any(|b| b.contains("\"reject\"")),
            "a reject was seen"
        );
        assert!(verdicts.iter().any(|b| b.contains("too_many_attempts")));
        assert!(verdicts.iter().any(|b| b.contains("possible_duplicate")));
        for (what, st, headers, body) in &answers {
            let mut leaks = Vec::new();
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                similarity_leaks(&v, "$", &mut leaks);
                // Candidates come in decision bands, then by id: never in score order.
                if let Some(c) = v["candidates"].as_array() {
                    let band = |d: &str| ["accept", "needs_review"].iter().position(|x| *x == d);
                    let keys: Vec<_> = c
                        .iter()
                        .map(|x| {
                            (
                                band(x["decision"].as_str().unwrap()),
                                x["subject"].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect();
                    let mut sorted = keys.clone();
                    sorted.sort();
                    assert_eq!(keys, sorted, "{what}");
                }
            }
            for (name, value) in headers {
                let n = name.to_ascii_lowercase();
                assert!(
                    !["score", "similar", "distance", "fmr", "match"]
                        .iter()
                        .any(|w| n.contains(w)),
                    "{what}: header {name}"
                );
                assert!(
                    !value.contains('.') || n == "content-type",
                    "{what}: header {name}: {value}"
                );
            }
            assert!(leaks.is_empty(), "{what} ({st}): {leaks:?} in {body}");
        }
        // The metrics name no subject and measure no similarity.
        let (_, _, m) = exchange(&s, "GET", "/metrics", None, None).await;
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(
                !["score", "similar", "distance", "fmr"]
                    .iter()
                    .any(|w| name.contains(w)),
                "{line}"
            );
            assert!(
                !ids.iter().any(|id| line.contains(&format!("\"{id}\""))),
                "{line}"
            );
        }
    }
}

/// Fills the file system holding `dir` with one file, until it is full.
fn fill_up(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = dir.join("fill");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_keeps_reads_and_recovers() {
    let Some(disk) = sync(|| support::Tmpfs::new("8m")) else {
        return;
    };
    let place = Place::Sqlite(tempfile::tempdir_in(disk.0.path()).unwrap());
    let (s, k) = service(&place, None);
    sync(|| s.load_galleries()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let enrol = |rec: &str| json!({ "purpose": "onboarding", "fingers": fingers(rec) });
    let (alice, bob) = (finger_record(&mut rng), finger_record(&mut rng));
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/alice/fingers",
        Some(&k.enrol),
        Some(enrol(&alice)),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let fill = sync(|| fill_up(disk.0.path()));
    let (st, ctype, v) = call(
        &s,
        "POST",
        "/v1/subjects/bob/fingers",
        Some(&k.enrol),
        Some(enrol(&bob)),
    )
    .await;
    assert_eq!(
        (st, ctype.as_str(), v["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "application/problem+json",
            Some("disk_full")
        ),
        "{v}"
    );
    // Reads still answer, and the refused enrolment left nothing.
    let (st, _, v) = call(&s, "GET", "/v1/subjects/alice", Some(&k.admin), None).await;
    assert_eq!(
        (st, &v["templates"]["finger"]),
        (StatusCode::OK, &json!(1)),
        "{v}"
    );
    let (st, _, v) = call(&s, "GET", "/v1/subjects", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v.to_string().matches("\"bob\"").count(), 0, "{v}");
    let (st, _, _) = call(&s, "GET", "/v1/subjects/bob", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = call(&s, "GET", "/v1/audit", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    // A verification writes its audit row: it is refused rather than decided unaudited.
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/alice/verify",
        Some(&k.enrol),
        Some(enrol(&alice)),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("disk_full")),
        "{v}"
    );

    // Space returns: the same service takes writes again, and after a restart everything
    // acknowledged is there.
    std::fs::remove_file(fill).unwrap();
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/bob/fingers",
        Some(&k.enrol),
        Some(enrol(&bob)),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    drop(s);
    let store = sync(|| place.open());
    for who in ["alice", "bob"] {
        let id = ipseity_core::SubjectId::new(who).unwrap();
        assert_eq!(sync(|| store.templates(&id)).unwrap().len(), 1, "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_postgresql_refuses_writes_with_503_keeps_reads_and_recovers() {
    let Some(disk) = sync(|| support::Tmpfs::new("48m")) else {
        return;
    };
    let Some(db) = sync(|| support::PgOnDisk::new("a_full_disk_under_pg", &disk)) else {
        return;
    };
    let place = &db.place;
    let (s, k) = service(place, None);
    sync(|| s.load_galleries()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let enrol = |rec: &str| json!({ "purpose": "onboarding", "fingers": fingers(rec) });
    let alice = finger_record(&mut rng);
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/alice/fingers",
        Some(&k.enrol),
        Some(enrol(&alice)),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let fill = sync(|| fill_up(disk.0.path()));
    // A row can still land in a page the table already has, so enrolments may be taken
    // until one needs a new page; from then on the server cannot extend the table.
    let mut acknowledged = vec![("alice".to_owned(), alice.clone())];
    let mut refused = None;
    for n in 0..200 {
        let who = format!("s{n}");
        let rec = finger_record(&mut rng);
        let (st, ctype, v) = call(
            &s,
            "POST",
            &format!("/v1/subjects/{who}/fingers"),
            Some(&k.enrol),
            Some(enrol(&rec)),
        )
        .await;
        if st == StatusCode::CREATED {
            acknowledged.push((who, rec));
            continue;
        }
        assert_eq!(
            (st, ctype.as_str(), v["code"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "application/problem+json",
                Some("disk_full")
            ),
            "{v}"
        );
        refused = Some((who, rec));
        break;
    }
    let (who, rec) = refused.expect("the full disk refused an enrolment within 200");
    // Reads still answer, and the refused enrolment left nothing.
    let (st, _, v) = call(&s, "GET", "/v1/subjects/alice", Some(&k.admin), None).await;
    assert_eq!(
        (st, &v["templates"]["finger"]),
        (StatusCode::OK, &json!(1)),
        "{v}"
    );
    let (st, _, v) = call(&s, "GET", "/v1/subjects", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, _) = call(
        &s,
        "GET",
        &format!("/v1/subjects/{who}"),
        Some(&k.admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = call(&s, "GET", "/v1/audit", Some(&k.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    // A verification must write its audit row: decided (the row fitted in a page the
    // audit table had) or refused as disk_full, never decided unaudited nor a 500.
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/alice/verify",
        Some(&k.enrol),
        Some(enrol(&alice)),
    )
    .await;
    assert!(
        st == StatusCode::OK || (st == StatusCode::SERVICE_UNAVAILABLE && v["code"] == "disk_full"),
        "{st}: {v}"
    );

    // Space returns: the same service takes the refused enrolment, and a new connection
    // finds everything acknowledged, intact.
    std::fs::remove_file(fill).unwrap();
    let (st, _, v) = call(
        &s,
        "POST",
        &format!("/v1/subjects/{who}/fingers"),
        Some(&k.enrol),
        Some(enrol(&rec)),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    acknowledged.push((who, rec));
    // Each acknowledged enrolment decrypts and matches what was sent.
    for (who, rec) in &acknowledged {
        let (st, _, v) = call(
            &s,
            "POST",
            &format!("/v1/subjects/{who}/verify"),
            Some(&k.enrol),
            Some(enrol(rec)),
        )
        .await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{who}: {v}"
        );
    }
    drop(s);
    let store = sync(|| place.open());
    for (who, _) in &acknowledged {
        let id = ipseity_core::SubjectId::new(who).unwrap();
        assert_eq!(sync(|| store.templates(&id)).unwrap().len(), 1, "{who}");
    }
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_consent_blocks_verification_and_search_at_once() {
    for place in sync(|| Place::all("a_withdrawn_consent_blocks")) {
        let n = place.name();
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let rec = finger_record(&mut rng);
        let body = json!({ "purpose": "onboarding", "fingers": fingers(&rec) });
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some(&k.enrol),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {v}");
        let verify = || {
            call(
                &s,
                "POST",
                "/v1/subjects/alice/verify",
                Some(&k.enrol),
                Some(body.clone()),
            )
        };
        let identify = || {
            call(
                &s,
                "POST",
                "/v1/identify",
                Some(&k.enrol),
                Some(body.clone()),
            )
        };
        let found = |v: &Value| v["candidates"].to_string().contains("\"alice\"");
        let (st, _, v) = verify().await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{n}: {v}"
        );
        let (_, _, v) = identify().await;
        assert!(found(&v), "{n}: {v}");

        // Withdrawn: verification is refused and audited, search no longer finds her.
        let (st, _, v) = call(
            &s,
            "DELETE",
            "/v1/subjects/alice/consents/onboarding",
            Some(&k.enrol),
            None,
        )
        .await;
        assert_eq!(
            (st, v["consent"].as_str()),
            (StatusCode::OK, Some("withdrawn")),
            "{n}: {v}"
        );
        let (st, ctype, v) = verify().await;
        assert_eq!(
            (st, ctype.as_str(), v["code"].as_str()),
            (
                StatusCode::FORBIDDEN,
                "application/problem+json",
                Some("no_consent")
            ),
            "{n}: {v}"
        );
        let (st, _, v) = identify().await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        assert!(!found(&v), "{n}: a withdrawn subject is still found: {v}");
        // A refused verification is not a failed attempt: it never compared anything.
        for _ in 0..6 {
            let (st, _, _) = verify().await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{n}");
        }
        // A key without the purpose cannot record consent for it; an unknown subject is 404.
        let (st, _, _) = call(
            &s,
            "PUT",
            "/v1/subjects/alice/consents/marketing",
            Some(&k.enrol),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{n}");
        let (st, _, _) = call(
            &s,
            "PUT",
            "/v1/subjects/nobody/consents/onboarding",
            Some(&k.enrol),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{n}");

        // Given again: both work again.
        let (st, _, v) = call(
            &s,
            "PUT",
            "/v1/subjects/alice/consents/onboarding",
            Some(&k.enrol),
            None,
        )
        .await;
        assert_eq!(
            (st, v["consent"].as_str()),
            (StatusCode::OK, Some("given")),
            "{n}: {v}"
        );
        let (st, _, v) = verify().await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{n}: {v}"
        );
        let (_, _, v) = identify().await;
        assert!(found(&v), "{n}: {v}");

        let (_, _, log) = call(&s, "GET", "/v1/audit?limit=100", Some(&k.admin), None).await;
        let entries = log["entries"].as_array().unwrap();
        let denied = entries
            .iter()
            .filter(|e| {
                e["operation"] == "access"
                    && e["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("reason=consent")
            })
            .count();
        assert_eq!(denied, 7, "{n}: each refusal is audited");
        assert!(entries.iter().any(|e| e["operation"] == "consent"
            && e["outcome"] == "withdrawn"
            && e["actor"] == "key:desk"));
    }
}

/// Found by schemathesis: a caller without a valid key learns nothing from how its body or
/// query would have been parsed, and every refusal is a problem document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_checked_before_the_request_is_read() {
    let place = Place::sqlite();
    let (s, k) = service(&place, None);
    sync(|| s.load_galleries()).unwrap();
    let raw =
        |method: &'static str, path: &'static str, key: Option<String>, body: &'static str| {
            let s = s.clone();
            async move {
                let body = Some(("application/json".to_owned(), body.as_bytes().to_vec()));
                call_raw(&s, method, path, key.as_deref(), body).await
            }
        };
    for (method, path, body) in [
        ("POST", "/v1/identify", "null"),
        (
            "POST",
            "/v1/identify",
            r#"{"purpose":"onboarding","face":"!!"}"#,
        ),
        ("POST", "/v1/subjects/a/verify", "{}"),
        ("POST", "/v1/subjects/a/faces", "[1]"),
        ("POST", "/v1/subjects/a/fingers", "{"),
        ("GET", "/v1/audit?limit=abc", ""),
        ("GET", "/v1/subjects?limit=-1", ""),
        ("PUT", "/v1/subjects/a/consents/onboarding", ""),
    ] {
        for key in [None, Some("ipk_bogus".to_owned())] {
            let (st, ctype, v) = raw(method, path, key, body).await;
            assert_eq!(
                (st, ctype.as_str(), v["code"].as_str()),
                (
                    StatusCode::UNAUTHORIZED,
                    "application/problem+json",
                    Some("unauthorized")
                ),
                "{method} {path}: {v}"
            );
        }
    }
    // A key without the route's scope is refused before its body is read, too.
    let (st, _, v) = raw("POST", "/v1/identify", Some(k.verify_only.clone()), "null").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );

    // With the right key, a bad query is a problem document, and so are unknown routes
    // and methods.
    for path in [
        "/v1/audit?limit=abc",
        "/v1/audit?limit=0",
        "/v1/subjects?limit=1001",
    ] {
        let (st, ctype, v) = call(&s, "GET", path, Some(&k.admin), None).await;
        assert_eq!(
            (st, ctype.as_str(), v["code"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                "application/problem+json",
                Some("bad_query")
            ),
            "{path}: {v}"
        );
    }
    let (st, ctype, v) = call(&s, "PUT", "/livez", None, None).await;
    assert_eq!(
        (st, ctype.as_str(), v["code"].as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "application/problem+json",
            Some("method_not_allowed")
        )
    );
    let (st, ctype, v) = call(&s, "GET", "/v1/nowhere", Some(&k.admin), None).await;
    assert_eq!(
        (st, ctype.as_str(), v["code"].as_str()),
        (
            StatusCode::NOT_FOUND,
            "application/problem+json",
            Some("no_route")
        )
    );
    // The document says what an id may be.
    let (_, _, doc) = call(&s, "GET", "/openapi.json", None, None).await;
    let id = &doc["paths"]["/v1/subjects/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["maxLength"], 128, "{doc}");
    assert!(id["pattern"].is_string(), "{doc}");
    let faces = &doc["paths"]["/v1/subjects/{id}/faces"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(faces["required"], json!(["purpose", "images"]), "{doc}");
}

/// Mutates a sample the way a hostile or broken client would: truncation, flipped bytes,
/// bytes inserted, header fields set to extremes, or plain noise.
fn mutate(rng: &mut rand::rngs::StdRng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    match rng.gen_range(0..5) {
        0 => b.truncate(rng.gen_range(0..b.len().max(1))),
        1 => {
            for _ in 0..rng.gen_range(1..9) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        2 => {
            let at = rng.gen_range(0..=b.len());
            let extra: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            b.splice(at..at, extra);
        }
        3 => {
            // Lengths, counts and sizes live in the first bytes of every format here.
            for i in rng.gen_range(0..8)..b.len().min(40) {
                if rng.gen_bool(0.3) {
                    b[i] = if rng.gen_bool(0.5) { 0xFF } else { 0 };
                }
            }
        }
        _ => b = (0..rng.gen_range(0..512)).map(|_| rng.gen()).collect(),
    }
    b
}

/// Hostile samples through the handlers (the request decoding of images and finger records
/// as the service does it: base64 JSON and multipart, enrolment, verification and search):
/// never a server error or a panic, and the store holds exactly the acknowledged
/// enrolments. `IPSEITY_HANDLER_FUZZ_ROUNDS` runs longer (200 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_samples_through_the_handlers_never_fail_the_service() {
    let place = Place::sqlite();
    let (s, k) = service(&place, face_engine());
    sync(|| s.load_galleries()).unwrap();
    let rounds: usize = std::env::var("IPSEITY_HANDLER_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1bad);
    let b64 = base64::engine::general_purpose::STANDARD;
    let record = b64.decode(finger_record(&mut rng)).unwrap();
    // A small image of noise: it decodes, then meets the face pipeline's own checks.
    let mut png = Vec::new();
    let noise = image::RgbImage::from_fn(96, 96, |_, _| image::Rgb(rng.gen()));
    noise
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut jpeg = Vec::new();
    noise
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // A subject to verify against.
    let (st, _, v) = call(
        &s,
        "POST",
        "/v1/subjects/anchor/fingers",
        Some(&k.enrol),
        Some(json!({ "purpose": "onboarding", "fingers": fingers(&b64.encode(&record)) })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (mut acknowledged, mut statuses) = (1usize, std::collections::BTreeMap::new());
    for i in 0..rounds {
        let face = rng.gen_bool(0.3);
        let sample = if face {
            let source = if rng.gen_bool(0.5) { &png } else { &jpeg };
            mutate(&mut rng, source)
        } else {
            mutate(&mut rng, &record)
        };
        let (route, enrol) = match rng.gen_range(0..4) {
            0 | 1 => (
                format!(
                    "/v1/subjects/s{i}/{}",
                    if face { "faces" } else { "fingers" }
                ),
                true,
            ),
            2 => ("/v1/subjects/anchor/verify".to_owned(), false),
            _ => ("/v1/identify".to_owned(), false),
        };
        let field = if face && enrol {
            "images"
        } else if face {
            "face"
        } else {
            "finger:right-index"
        };
        let body = if rng.gen_bool(0.5) {
            let data = b64.encode(&sample);
            let v = match (face, enrol) {
                (true, true) => json!({ "purpose": "onboarding", "images": [data] }),
                (true, false) => json!({ "purpose": "onboarding", "face": data }),
                (false, _) => json!({ "purpose": "onboarding", "fingers": fingers(&data) }),
            };
            ("application/json".to_owned(), v.to_string().into_bytes())
        } else {
            multipart(&[("purpose", b"onboarding", false), (field, &sample, true)])
        };
        let (st, ctype, v) = call_raw(&s, "POST", &route, Some(&k.enrol), Some(body)).await;
        assert!(
            !st.is_server_error(),
            "round {i}: {route} with a mutated {}: {st} {v}",
            if face { "image" } else { "record" }
        );
        if st == StatusCode::TOO_MANY_REQUESTS {
            // Rejected probes lock the anchor after five: unlock it, so that verification
            // keeps reaching the decoders.
            let (st, _, v) = call(
                &s,
                "POST",
                "/v1/subjects/anchor/unlock",
                Some(&k.admin),
                None,
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
        if st == StatusCode::CREATED {
            acknowledged += 1;
        } else if !st.is_success() {
            assert_eq!(ctype, "application/problem+json", "round {i}: {v}");
        }
        *statuses.entry(st.as_u16()).or_insert(0usize) += 1;
    }
    let stored = sync(|| place.open().subject_count()).unwrap();
    assert_eq!(stored, acknowledged, "{statuses:?}");
    eprintln!("{rounds} hostile samples: answers by status {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_rotates_without_a_restart() {
    for place in sync(|| Place::all("the_master_key_rotates")) {
        let n = place.name();
        let (s, k) = service(&place, None);
        sync(|| s.load_galleries()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (r1, r2) = (finger_record(&mut rng), finger_record(&mut rng));
        let body = |r: &str| json!({ "purpose": "onboarding", "fingers": fingers(r) });
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/fingers",
            Some(&k.enrol),
            Some(body(&r1)),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {v}");
        let key_file = place.dir().join("template.key");
        let old = std::fs::read(&key_file).unwrap();

        let (st, _, _) = call(&s, "POST", "/v1/keys/rotate-master", Some(&k.enrol), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{n}: admin only");
        let (st, _, v) = call(&s, "POST", "/v1/keys/rotate-master", Some(&k.admin), None).await;
        assert_eq!(
            (st, &v["rewrapped_templates"]),
            (StatusCode::OK, &json!(1)),
            "{n}: {v}"
        );
        assert_ne!(std::fs::read(&key_file).unwrap(), old, "{n}");

        // The same process goes on: verifies, enrols, and a restart reads everything.
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/alice/verify",
            Some(&k.enrol),
            Some(body(&r1)),
        )
        .await;
        assert_eq!(
            (st, v["decision"].as_str()),
            (StatusCode::OK, Some("accept")),
            "{n}: {v}"
        );
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/bob/fingers",
            Some(&k.enrol),
            Some(body(&r2)),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {v}");
        let (_, _, log) = call(&s, "GET", "/v1/audit?limit=20", Some(&k.admin), None).await;
        assert!(
            log["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["operation"] == "key_rotate_master" && e["actor"] == "key:ops"),
            "{n}: {log}"
        );
        drop(s);
        let store = sync(|| place.open());
        for who in ["alice", "bob"] {
            let id = ipseity_core::SubjectId::new(who).unwrap();
            assert_eq!(
                sync(|| store.templates(&id)).unwrap().len(),
                1,
                "{n}: {who}"
            );
        }
    }
}

/// The liveness model repository's sample photos in `../shared/models`, or `None` (skip).
fn attack_sample(name: &str) -> Option<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models/silent_face_anti_spoofing/images/sample");
    match std::fs::read(dir.join(name)) {
        Ok(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
        Err(e) => {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
                "IPSEITY_REQUIRE_SHARED is set but {} is missing: {e}",
                dir.join(name).display()
            );
            eprintln!("skipping: {} is missing", dir.join(name).display());
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presentation_attack_is_refused_audited_and_counted_as_a_failed_attempt() {
    let (Some(engine), Some(f1), Some(f2)) = (
        face_engine(),
        attack_sample("image_F1.jpg"),
        attack_sample("image_F2.jpg"),
    ) else {
        return;
    };
    let images = std::path::PathBuf::from(std::env::var_os("IPSEITY_TEST_IMAGES").unwrap());
    let photo = |n: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(images.join(n)).unwrap())
    };
    for place in sync(|| Place::all("presentation_attack")) {
        let (s, k) = service(&place, Some(engine.clone()));
        sync(|| s.load_galleries()).unwrap();
        let enrol = |id: &str, img: &str| {
            let body = json!({ "purpose": "onboarding", "images": [img] });
            let path = format!("/v1/subjects/{id}/faces");
            let (s, key) = (s.clone(), k.enrol.clone());
            async move { call(&s, "POST", &path, Some(&key), Some(body)).await }
        };
        let (st, _, v) = enrol("obama", &photo("obama.jpg")).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let (st, _, v) = enrol("mallory", &f1).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("presentation_attack")
            ),
            "{v}"
        );
        let (st, _, _) = call(&s, "GET", "/v1/subjects/mallory", Some(&k.admin), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "nothing written for an attack");

        let verify = |img: String| {
            let (s, key) = (s.clone(), k.enrol.clone());
            async move {
                call(
                    &s,
                    "POST",
                    "/v1/subjects/obama/verify",
                    Some(&key),
                    Some(json!({ "purpose": "onboarding", "face": img })),
                )
                .await
            }
        };
        let (st, _, v) = verify(f2.clone()).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("presentation_attack")
            ),
            "{v}"
        );
        assert!(v.get("decision").is_none(), "{v}");
        // Five attacks are five failed attempts: the sixth try is held back, even live.
        for _ in 0..4 {
            let (st, _, v) = verify(f2.clone()).await;
            assert_eq!(v["code"], "presentation_attack", "{st} {v}");
        }
        let (st, _, v) = verify(photo("obama2.jpg")).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");

        let (_, _, log) = call(&s, "GET", "/v1/audit?limit=50", Some(&k.admin), None).await;
        let attacks: Vec<_> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["outcome"] == "presentation_attack")
            .map(|e| {
                (
                    e["operation"].as_str().unwrap_or(""),
                    e["actor"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(attacks.len(), 6, "{log}");
        assert_eq!(
            attacks.iter().filter(|a| a.0 == "enroll").count(),
            1,
            "{log}"
        );
        assert!(attacks.iter().all(|a| a.1 == "key:desk"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_travel_document_is_checked_against_a_live_capture() {
    use ipseity_document::testkit::{self, KeyKind, SIGNED_AT};
    let Some(engine) = face_engine() else { return };
    let images = std::path::PathBuf::from(std::env::var_os("IPSEITY_TEST_IMAGES").unwrap());
    let read = |n: &str| std::fs::read(images.join(n)).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // A generated test document whose DG2 holds obama.jpg, under a test CSCA.
    let portrait = read("obama.jpg");
    let img = ipseity_face::decode::decode_image(&portrait, &Default::default()).unwrap();
    let year = 365 * 86_400;
    let doc = testkit::document_with_dg2(
        KeyKind::P256,
        KeyKind::P256,
        7,
        (SIGNED_AT - year, SIGNED_AT + 10 * year),
        testkit::dg2_with_image(&portrait, (img.width as u16, img.height as u16)),
    )
    .unwrap();
    let mut files = serde_json::Map::new();
    files.insert("EF.COM".into(), json!(b64(&testkit::ef_com(&[0x61, 0x75]))));
    files.insert("EF.SOD".into(), json!(b64(&doc.sod)));
    for (n, b) in &doc.data_groups {
        files.insert(format!("DG{n}"), json!(b64(b)));
    }
    let body = |files: &serde_json::Map<String, Value>, face: &str| json!({ "purpose": "border", "files": files, "face": b64(&read(face)) });
    for place in sync(|| Place::all("document_verify")) {
        // Without CSCAs the route says so.
        let (s, k) = service(&place, Some(engine.clone()));
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/documents/verify",
            Some(&k.admin),
            Some(body(&files, "obama2.jpg")),
        )
        .await;
        assert_ne!(st, StatusCode::OK, "{v}");

        let mut trust = ipseity_document::passive::TrustStore::new();
        trust.add_certificates(&doc.csca).unwrap();
        let s = sync(|| {
            let mut store = place.open();
            let (_, key) = store
                .create_key("gate", &[Scope::Verify], &["border".to_owned()])
                .unwrap();
            let s = Service::new(
                store,
                Models {
                    face: Some(engine.clone()),
                    point: POINT,
                    point_description: "test".into(),
                    finger_calibration: calibration(),
                    check_liveness: true,
                    documents: Some(Arc::new(ipseity_server::DocumentTrust { trust, crl: None })),
                },
                Limits::default(),
            );
            s.load_galleries().unwrap();
            (s, key)
        });
        let (s, key) = s;
        let post = |b: Value| {
            let (s, key) = (s.clone(), key.clone());
            async move { call(&s, "POST", "/v1/documents/verify", Some(&key), Some(b)).await }
        };
        // The holder, live: accepted, every step named.
        let (st, _, v) = post(body(&files, "obama2.jpg")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            (
                &v["decision"],
                &v["passive_authentication"],
                &v["liveness"],
                &v["face"]
            ),
            (
                &json!("accept"),
                &json!("pass"),
                &json!("bona_fide"),
                &json!("accept")
            ),
            "{v}"
        );
        assert!(!v.to_string().contains("similarity"), "{v}");
        // Someone else: rejected as a face mismatch.
        let (st, _, v) = post(body(&files, "biden.jpg")).await;
        assert_eq!(
            (st, &v["decision"]),
            (StatusCode::OK, &json!("reject")),
            "{v}"
        );
        assert_eq!(v["reasons"][0]["code"], "face_mismatch", "{v}");
        // One byte of DG2 changed: refused by passive authentication, nothing compared.
        let mut tampered = files.clone();
        let mut dg2 = doc
            .data_groups
            .iter()
            .find(|(n, _)| *n == 2)
            .unwrap()
            .1
            .clone();
        let last = dg2.len() - 1;
        dg2[last] ^= 1;
        tampered.insert("DG2".into(), json!(b64(&dg2)));
        let (st, _, v) = post(body(&tampered, "obama2.jpg")).await;
        assert_eq!(
            (st, &v["decision"]),
            (StatusCode::OK, &json!("reject")),
            "{v}"
        );
        assert_eq!(
            v["reasons"][0]["code"], "passive_authentication_failed",
            "{v}"
        );
        assert_eq!(v["face"], Value::Null, "{v}");
        // A file that is not a chip file is refused before anything is read.
        let mut odd = files.clone();
        odd.insert("photo.jpg".into(), json!(b64(b"x")));
        let (st, _, v) = post(body(&odd, "obama2.jpg")).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_chip_file")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_travel_document_enrols_its_holder_with_the_document_as_source() {
    use ipseity_document::testkit::{self, KeyKind, SIGNED_AT};
    let Some(engine) = face_engine() else { return };
    let images = std::path::PathBuf::from(std::env::var_os("IPSEITY_TEST_IMAGES").unwrap());
    let read = |n: &str| std::fs::read(images.join(n)).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // A generated test document whose DG2 holds obama.jpg, under a test CSCA.
    let portrait = read("obama.jpg");
    let img = ipseity_face::decode::decode_image(&portrait, &Default::default()).unwrap();
    let year = 365 * 86_400;
    let doc = testkit::document_with_dg2(
        KeyKind::P256,
        KeyKind::P256,
        11,
        (SIGNED_AT - year, SIGNED_AT + 10 * year),
        testkit::dg2_with_image(&portrait, (img.width as u16, img.height as u16)),
    )
    .unwrap();
    let mut files = serde_json::Map::new();
    files.insert("EF.SOD".into(), json!(b64(&doc.sod)));
    for (n, b) in &doc.data_groups {
        files.insert(format!("DG{n}"), json!(b64(b)));
    }
    let mut tampered = files.clone();
    let mut dg2 = doc
        .data_groups
        .iter()
        .find(|(n, _)| *n == 2)
        .unwrap()
        .1
        .clone();
    let last = dg2.len() - 1;
    dg2[last] ^= 1;
    tampered.insert("DG2".into(), json!(b64(&dg2)));
    let body = |files: &serde_json::Map<String, Value>, face: &str, subject: &str| {
        json!({
            "purpose": "onboarding",
            "files": files,
            "face": b64(&read(face)),
            "enrol": { "subject": subject }
        })
    };
    for place in sync(|| Place::all("document_enrol")) {
        let n = place.name();
        let mut trust = ipseity_document::passive::TrustStore::new();
        trust.add_certificates(&doc.csca).unwrap();
        let (s, admin, desk, gate) = sync(|| {
            let mut store = place.open();
            let onboarding = ["onboarding".to_owned()];
            let (_, admin) = store.create_key("ops", &[Scope::Admin], &[]).unwrap();
            let (_, desk) = store
                .create_key("desk", &[Scope::Verify, Scope::Enrol], &onboarding)
                .unwrap();
            let (_, gate) = store
                .create_key("gate", &[Scope::Verify], &onboarding)
                .unwrap();
            let s = Service::new(
                store,
                Models {
                    face: Some(engine.clone()),
                    point: POINT,
                    point_description: "test".into(),
                    finger_calibration: calibration(),
                    check_liveness: true,
                    documents: Some(Arc::new(ipseity_server::DocumentTrust { trust, crl: None })),
                },
                Limits::default(),
            );
            s.load_galleries().unwrap();
            (s, admin, desk, gate)
        });
        let post = |key: &str, b: Value| {
            let (s, key) = (s.clone(), key.to_owned());
            async move { call(&s, "POST", "/v1/documents/verify", Some(&key), Some(b)).await }
        };
        let subject = |id: &str| {
            let (s, admin, id) = (s.clone(), admin.clone(), id.to_owned());
            async move { call(&s, "GET", &format!("/v1/subjects/{id}"), Some(&admin), None).await }
        };

        // A key that may verify but not enrol: refused before anything is read.
        let (st, _, v) = post(&gate, body(&files, "obama2.jpg", "holder")).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{n}: {v}");
        // An id that is not one: refused before any work.
        let (st, _, v) = post(&desk, body(&files, "obama2.jpg", "bad id!")).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_subject_id")),
            "{n}: {v}"
        );
        // Another person: rejected, nothing enrolled, and the answer says why.
        let (st, _, v) = post(&desk, body(&files, "biden.jpg", "holder")).await;
        assert_eq!(
            (st, &v["decision"]),
            (StatusCode::OK, &json!("reject")),
            "{n}: {v}"
        );
        assert_eq!(v["enrolment"]["enrolled"], false, "{n}: {v}");
        assert!(
            v["enrolment"]["reason"]
                .as_str()
                .unwrap()
                .contains("face_mismatch"),
            "{n}: {v}"
        );
        assert_eq!(subject("holder").await.0, StatusCode::NOT_FOUND, "{n}");
        // A tampered DG2: refused by passive authentication, nothing enrolled.
        let (st, _, v) = post(&desk, body(&tampered, "obama2.jpg", "holder")).await;
        assert_eq!(
            (st, v["reasons"][0]["code"].as_str()),
            (StatusCode::OK, Some("passive_authentication_failed")),
            "{n}: {v}"
        );
        assert_eq!(v["enrolment"]["enrolled"], false, "{n}: {v}");
        assert_eq!(subject("holder").await.0, StatusCode::NOT_FOUND, "{n}");

        // The holder, live: accepted and enrolled (201) from the live capture.
        let (st, _, v) = post(&desk, body(&files, "obama2.jpg", "holder")).await;
        assert_eq!(
            (st, &v["decision"]),
            (StatusCode::CREATED, &json!("accept")),
            "{n}: {v}"
        );
        assert_eq!(v["enrolment"]["enrolled"], true, "{n}: {v}");
        assert_eq!(v["enrolment"]["source"], "document", "{n}: {v}");
        assert!(!v.to_string().contains("L898902C3"), "{n}: {v}");
        // The subject's metadata shows the document as its source.
        let (st, _, v) = subject("holder").await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["templates"]["face"], 1, "{n}: {v}");
        assert_eq!(v["source"]["kind"], "document", "{n}: {v}");
        assert_eq!(v["source"]["document_number"], "L898902C3", "{n}: {v}");
        assert_eq!(v["source"]["issuing_state"], "UTO", "{n}: {v}");
        assert_eq!(v["source"]["passive_authentication"], "pass", "{n}: {v}");
        // And it verifies with a live capture of the holder.
        let (st, _, v) = call(
            &s,
            "POST",
            "/v1/subjects/holder/verify",
            Some(&desk),
            Some(json!({ "purpose": "onboarding", "face": b64(&read("obama2.jpg")) })),
        )
        .await;
        assert_eq!(
            (st, &v["decision"]),
            (StatusCode::OK, &json!("accept")),
            "{n}: {v}"
        );

        // The same id again: a conflict before any work; the same person under another id:
        // held for review (202), as a face enrolment is.
        let (st, _, v) = post(&desk, body(&files, "obama2.jpg", "holder")).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("duplicate_subject")),
            "{n}: {v}"
        );
        let (st, _, v) = post(&desk, body(&files, "obama2.jpg", "again")).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{n}: {v}");
        assert_eq!(
            v["enrolment"]["held_for_review_of"],
            json!(["holder"]),
            "{n}: {v}"
        );
        assert_eq!(v["enrolment"]["enrolled"], false, "{n}: {v}");

        // Audited as an enrolment with its source's kind, and nothing of the document.
        let (st, _, v) = call(&s, "GET", "/v1/audit", Some(&admin), None).await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        let log = v.to_string();
        assert!(!log.contains("L898902C3"), "{n}: {log}");
        let entries = v["entries"].as_array().unwrap();
        let recorded: Vec<_> = entries
            .iter()
            .filter(|e| e["outcome"] == "source_recorded")
            .map(|e| {
                (
                    e["subject"].as_str().unwrap(),
                    e["detail"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            recorded,
            [("again", "source=document"), ("holder", "source=document")],
            "{n}: {log}"
        );

        // The OpenAPI document describes the field and its answers.
        let (_, _, doc) = call(&s, "GET", "/openapi.json", None, None).await;
        let op = &doc["paths"]["/v1/documents/verify"]["post"];
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            schema["properties"]["enrol"]["required"],
            json!(["subject"]),
            "{doc}"
        );
        assert!(op["responses"]["201"].is_object(), "{doc}");
        assert!(op["responses"]["202"].is_object(), "{doc}");
    }
}

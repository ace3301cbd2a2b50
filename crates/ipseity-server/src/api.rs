//! The routes, their table (which `/openapi.json` is generated from) and the handlers.
//!
//! Handlers decode and check the request, run CPU-heavy work (face analysis, minutiae
//! extraction, 1:N search) on blocking threads under the heavy-work semaphore, and call
//! the engine. Lock order is always the store, then a gallery.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::body::Body;
use base64::Engine as _;
use ipseity_core::{ApiKey, AuditEvent, Decision, Modality, Scope, SubjectId, Template};
use ipseity_engine::face::{self, FaceEnrolment};
use ipseity_engine::finger::{self as efinger, FingerEnrolment};
use ipseity_engine::identify;
use ipseity_face::decode::{decode_image, DecodeLimits};
use ipseity_finger::extract::ExtractConfig;
use ipseity_finger::fusion::FmrPolicy;
use ipseity_finger::gallery::ProbeFinger;
use ipseity_finger::matcher::MatcherConfig;
use ipseity_finger::sample::{self, Sample};
use ipseity_finger::FingerPosition;
use ipseity_store::attempts::AttemptGate;
use ipseity_store::ReviewOutcome;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::problem::Problem;
use crate::state::Service;

/// Every route: method, path, what it does, and the scope it needs (`None`: public).
/// `/openapi.json` is generated from this table, and a test checks the router against it.
pub const ROUTES: &[(&str, &str, &str, Option<Scope>)] = &[
    ("GET", "/livez", "The process is alive.", None),
    (
        "GET",
        "/readyz",
        "The galleries are loaded (503 until then).",
        None,
    ),
    (
        "GET",
        "/metrics",
        "Prometheus metrics (no subject ids, no scores).",
        None,
    ),
    (
        "GET",
        "/openapi.json",
        "This API as an OpenAPI 3.1 document.",
        None,
    ),
    (
        "GET",
        "/v1/subjects",
        "Enrolled subjects, paginated (`after`, `limit`).",
        Some(Scope::Admin),
    ),
    (
        "GET",
        "/v1/subjects/{id}",
        "A subject's metadata (never its templates), with its enrolment's source when one was recorded (a verified travel document).",
        Some(Scope::Admin),
    ),
    (
        "DELETE",
        "/v1/subjects/{id}",
        "Erase a subject, its templates and its gallery entries.",
        Some(Scope::Admin),
    ),
    (
        "POST",
        "/v1/subjects/{id}/faces",
        "Enrol a new subject from face images (base64 JSON or multipart); searched for duplicates first.",
        Some(Scope::Enrol),
    ),
    (
        "POST",
        "/v1/subjects/{id}/fingers",
        "Enrol fingers (images or ISO/ANSI records, base64) for a new or face-enrolled subject.",
        Some(Scope::Enrol),
    ),
    (
        "POST",
        "/v1/subjects/{id}/verify",
        "1:1 by face, fingers, or both fused: is the person presenting this subject? A decision, never a score.",
        Some(Scope::Verify),
    ),
    (
        "POST",
        "/v1/subjects/{id}/unlock",
        "Clear a subject's failed verification attempts (after a back-off or a disabling).",
        Some(Scope::Admin),
    ),
    (
        "PUT",
        "/v1/subjects/{id}/consents/{purpose}",
        "Record that the subject consents to a purpose (the key must hold it).",
        Some(Scope::Enrol),
    ),
    (
        "DELETE",
        "/v1/subjects/{id}/consents/{purpose}",
        "Record the subject's withdrawal of consent for a purpose: from then on no verification or search for it uses the subject.",
        Some(Scope::Enrol),
    ),
    (
        "POST",
        "/v1/identify",
        "1:N with a purpose: candidates in decision bands, never scores.",
        Some(Scope::Identify),
    ),
    (
        "GET",
        "/v1/reviews",
        "Enrolments held for review (they matched enrolled subjects), oldest first (`limit`).",
        Some(Scope::Review),
    ),
    (
        "POST",
        "/v1/reviews/{id}",
        "Resolve a held enrolment: `new_subject`, `same_person` (with `same_as`, one of its matches) or `rejected`.",
        Some(Scope::Review),
    ),
    (
        "POST",
        "/v1/keys/rotate-master",
        "Replace the store's master key and re-wrap every template's data key, without a restart.",
        Some(Scope::Admin),
    ),
    (
        "GET",
        "/v1/audit",
        "The audit log, newest first (`limit`).",
        Some(Scope::Admin),
    ),
    (
        "POST",
        "/v1/documents/verify",
        "Chip to live capture: passive authentication of a travel document's chip files, the printed zone against DG1, and DG2's portrait against a live capture with presentation-attack detection. A decision with named reasons, never a score. With `enrol` (the key needs the enrol scope too) an accepted holder is enrolled from the live capture, the document recorded as the enrolment's source: 201 enrolled, 202 held for review, 200 not enrolled (the answer says why).",
        Some(Scope::Verify),
    ),
];

type Shared = Arc<Service>;

/// The service's router, with its body limit, timeout and metrics layers.
pub fn router(service: Shared) -> Router {
    let limit = service.limits.max_body_bytes;
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/subjects", get(list_subjects))
        .route("/v1/subjects/{id}", get(subject).delete(erase))
        .route("/v1/subjects/{id}/faces", post(enrol_faces))
        .route("/v1/subjects/{id}/fingers", post(enrol_fingers))
        .route("/v1/subjects/{id}/verify", post(verify))
        .route("/v1/subjects/{id}/unlock", post(unlock))
        .route(
            "/v1/subjects/{id}/consents/{purpose}",
            axum::routing::put(give_consent).delete(withdraw_consent),
        )
        .route("/v1/identify", post(identify_route))
        .route("/v1/audit", get(audit))
        .route("/v1/keys/rotate-master", post(rotate_master))
        .route("/v1/reviews", get(reviews))
        .route("/v1/reviews/{id}", post(resolve_review))
        .route("/v1/documents/verify", post(verify_document))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method (see /openapi.json)",
            )
        })
        .layer(middleware::from_fn_with_state(service.clone(), require_key))
        .layer(middleware::from_fn_with_state(service.clone(), observe))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(service)
}

/// Checks the key (and the route's scope) before anything of the request is read, so that
/// an anonymous caller learns nothing from how its body or query would be parsed. The
/// handler checks the key again with the purpose the body states.
async fn require_key(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let scope = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| {
            ROUTES
                .iter()
                .find(|r| r.1 == m.as_str() && r.0 == req.method().as_str())
        })
        .and_then(|r| r.3);
    let Some(scope) = scope else {
        return next.run(req).await;
    };
    let presented = bearer(req.headers());
    match blocking(&s, move |s| check_key(s, &presented, scope, None)).await {
        Ok(_) => next.run(req).await,
        Err(p) => p.into_response(),
    }
}

/// Times every request and counts it by route pattern.
async fn observe(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route: &'static str = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| r.1 == m.as_str()).map(|r| r.1))
        .unwrap_or("unmatched");
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        _ => "other",
    };
    let resp = next.run(req).await;
    s.metrics
        .observe(route, method, resp.status().as_u16(), start.elapsed());
    resp
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.is_ready() {
        "ready".into_response()
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the galleries are loading",
        )
        .into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let face = s
        .faces
        .read()
        .ok()
        .and_then(|g| g.as_ref().map(|g| g.gallery.subjects()))
        .unwrap_or(0);
    let finger = s
        .fingers
        .read()
        .ok()
        .and_then(|g| g.as_ref().map(|g| g.gallery.subjects()))
        .unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(face, finger),
    )
        .into_response()
}

/// The JSON body a route takes, as a schema (`None`: no body). What a schema cannot say
/// (that a base64 string is an image, or a finger record) is checked by the service.
fn body_schema(path: &str) -> Option<serde_json::Value> {
    let purpose =
        json!({ "type": "string", "minLength": 1, "maxLength": ipseity_store::MAX_PURPOSE });
    let b64 = json!({ "type": "string", "minLength": 1, "contentEncoding": "base64" });
    let fingers = json!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "position": { "type": "string" },
                "data": b64,
                "ppi": { "type": "integer", "minimum": 300, "maximum": 1000 }
            }
        }
    });
    let flag = json!({ "type": "boolean" });
    let schema = if path.ends_with("/faces") {
        json!({
            "required": ["purpose", "images"],
            "properties": {
                "purpose": purpose,
                "images": { "type": "array", "minItems": 1, "items": b64 },
                "allow_duplicate": flag,
                "largest": flag
            }
        })
    } else if path.ends_with("/fingers") {
        json!({
            "required": ["purpose", "fingers"],
            "properties": { "purpose": purpose, "fingers": fingers, "allow_duplicate": flag }
        })
    } else if path == "/v1/documents/verify" {
        json!({
            "required": ["purpose", "files", "face"],
            "properties": {
                "purpose": purpose,
                "files": {
                    "type": "object",
                    "description": "the chip's files by name (EF.SOD, EF.COM, DG1, DG2, ...), base64",
                    "minProperties": 1,
                    "additionalProperties": b64
                },
                "face": b64,
                "mrz": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 3 },
                "largest": flag,
                "enrol": {
                    "type": "object",
                    "description": "enrol the holder under this id when the check accepts (needs the enrol scope)",
                    "required": ["subject"],
                    "properties": {
                        "subject": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": SubjectId::MAX_LEN,
                            "pattern": "^[A-Za-z0-9._:@-]+$"
                        },
                        "allow_duplicate": flag
                    }
                }
            }
        })
    } else if path.ends_with("/verify") || path == "/v1/identify" {
        let mut s = json!({
            "required": ["purpose"],
            "anyOf": [{ "required": ["face"] }, { "required": ["fingers"] }],
            "properties": { "purpose": purpose, "face": b64, "fingers": fingers, "largest": flag }
        });
        if path == "/v1/identify" {
            // One modality per search.
            s["anyOf"] = json!([
                { "required": ["face"], "not": { "required": ["fingers"] } },
                { "required": ["fingers"], "not": { "required": ["face"] } }
            ]);
            s["properties"]["top"] = json!({ "type": "integer", "minimum": 1, "maximum": 1000 });
        }
        s
    } else {
        return None;
    };
    let mut schema = schema;
    schema["type"] = json!("object");
    Some(schema)
}

/// The OpenAPI 3.1 document, generated from [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, scope) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": { "description": "success" },
                "default": {
                    "description": "an RFC 9457 problem document with a stable `code`",
                    "content": { "application/problem+json": {} }
                }
            }
        });
        if let Some(scope) = scope {
            op["security"] = json!([{ "apiKey": [scope.as_str()] }]);
        }
        if let Some(schema) = body_schema(path) {
            // Every such POST takes the same fields as JSON (files base64) or as form data
            // (files as parts: `images`, `face`, `finger:<position>`); see `body.rs`.
            op["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/json": { "schema": schema },
                    "multipart/form-data": { "schema": { "type": "object" } }
                }
            });
        }
        if path.ends_with("/faces") || path.ends_with("/fingers") {
            op["responses"]["201"] = json!({ "description": "enrolled" });
        }
        if *path == "/v1/documents/verify" {
            op["responses"]["200"] = json!({ "description": "the decision (with `enrol`: not enrolled, `enrolment.reason` says why)" });
            op["responses"]["201"] =
                json!({ "description": "accepted, and the holder enrolled (`enrol`)" });
            op["responses"]["202"] = json!({ "description": "accepted; the holder's enrolment matched enrolled subjects and is held for review" });
        }
        let id_schema = json!({
            "type": "string",
            "minLength": 1,
            "maxLength": SubjectId::MAX_LEN,
            "pattern": "^[A-Za-z0-9._:@-]+$"
        });
        let purpose_schema = json!({
            "type": "string",
            "minLength": 1,
            "maxLength": ipseity_store::MAX_PURPOSE
        });
        let mut params: Vec<_> = [("id", &id_schema), ("purpose", &purpose_schema)]
            .iter()
            .filter(|(p, _)| path.contains(&format!("{{{p}}}")))
            .map(|(p, schema)| json!({ "name": p, "in": "path", "required": true, "schema": schema }))
            .collect();
        let limit = |max: usize| json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": max } });
        match (*method, *path) {
            ("GET", "/v1/subjects") => {
                params.push(limit(1000));
                params.push(json!({ "name": "after", "in": "query", "schema": id_schema }));
            }
            ("GET", "/v1/audit") => params.push(limit(10_000)),
            _ => {}
        }
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        entry[method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Ipseity identity service", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer" } } }
    })
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_document())
}

// ---------------------------------------------------------------------------------------
// access

/// The key a request carries, if it may do `scope` with `purpose`; every refusal is
/// audited with the key's name (never the key).
async fn authorize(
    s: &Shared,
    headers: &HeaderMap,
    scope: Scope,
    purpose: Option<&str>,
) -> Result<ApiKey, Problem> {
    let presented = bearer(headers);
    let purpose = purpose.map(str::to_owned);
    blocking(s, move |s| {
        check_key(s, &presented, scope, purpose.as_deref())
    })
    .await
}

/// A query string that does not fit the route, as a problem document.
fn bad_query(e: QueryRejection) -> Problem {
    Problem::bad_request("bad_query", e.body_text())
}

/// A page size: 100 when not given, else 1 to `max`.
fn limit_in(limit: Option<usize>, max: usize) -> Result<usize, Problem> {
    match limit {
        None => Ok(100.min(max)),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(Problem::bad_request(
            "bad_query",
            format!("limit must be 1 to {max}"),
        )),
    }
}

/// The bearer token, or an empty string (which no key matches).
fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned()
}

fn check_key(
    s: &Service,
    presented: &str,
    scope: Scope,
    purpose: Option<&str>,
) -> Result<ApiKey, Problem> {
    let mut store = s.store_lock()?;
    let deny = |store: &mut dyn ipseity_store::Backend, key: Option<String>, reason| {
        store.set_actor(key.as_deref().map(|k| format!("key:{k}")).as_deref());
        let _ = store.record_audit(
            &AuditEvent::AccessDenied {
                key,
                operation: scope.as_str(),
                reason,
            },
            None,
            purpose,
        );
    };
    let Some(key) = store.authenticate(presented)? else {
        deny(&mut **store, None, "no_key");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer ...)",
        ));
    };
    if !key.allows(scope) {
        deny(&mut **store, Some(key.name.clone()), "scope");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key may not {}", scope.as_str()),
        ));
    }
    if let Some(p) = purpose {
        if !key.allows_purpose(p) {
            deny(&mut **store, Some(key.name.clone()), "purpose");
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this key may not state that purpose",
            ));
        }
    }
    Ok(key)
}

/// How the audit log names a key's holder.
fn actor_of(key: &ApiKey) -> String {
    format!("key:{}", key.name)
}

fn purpose_of(p: &Option<String>) -> Result<&str, Problem> {
    match p.as_deref() {
        Some(p) if !p.is_empty() && p.len() <= ipseity_store::MAX_PURPOSE => Ok(p),
        _ => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "purpose_required",
            "state the purpose of the request (it is recorded in the audit log)",
        )),
    }
}

fn subject_id(id: String) -> Result<SubjectId, Problem> {
    SubjectId::new(id).map_err(Problem::from)
}

fn ready(s: &Service) -> Result<(), Problem> {
    if s.is_ready() {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the galleries are loading",
        ))
    }
}

/// Runs store work on a blocking thread: the store's calls block (SQLite's fsync, the
/// PostgreSQL client's own runtime), which must not happen on the async workers.
async fn blocking<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Service) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|_| poisoned())?
}

/// Runs CPU-heavy work on a blocking thread, holding a heavy-work permit.
///
/// The time limit bounds the wait for a permit, not the work: work once started runs to
/// its end, so an enrolment is never answered "timed out" and then committed anyway.
async fn heavy<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Service) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let busy = || {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the service is at its limit of concurrent analyses; retry later",
        )
    };
    let _permit = tokio::time::timeout(s.limits.request_timeout, s.heavy.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })?
}

// ---------------------------------------------------------------------------------------
// samples

fn b64(what: &str, data: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| Problem::bad_request("bad_base64", format!("{what} is not valid base64")))
}

/// Runs `capture` (the analysis of a live face for `operation`, `enroll` or `verify`)
/// under the service's liveness setting: records a face taken while the check is off, or
/// a refused presentation attack (which also counts as a failed verification attempt).
fn audited_capture<T>(
    s: &Service,
    actor: &str,
    subject: &SubjectId,
    purpose: &str,
    operation: &'static str,
    capture: impl FnOnce() -> Result<T, Problem>,
) -> Result<T, Problem> {
    let r = capture();
    if r.is_ok() && !s.models.check_liveness {
        // Recorded once a face was taken unchecked; a capture that failed took nothing.
        let mut store = s.store_as(actor)?;
        store.record_audit(
            &AuditEvent::LivenessOff { operation },
            Some(subject),
            Some(purpose),
        )?;
    }
    if matches!(&r, Err(p) if p.code == "presentation_attack") {
        let mut store = s.store_as(actor)?;
        store.record_audit(
            &AuditEvent::PresentationAttack { operation },
            Some(subject),
            Some(purpose),
        )?;
        if operation == "verify" {
            store.finish_attempt(subject, false)?;
        }
    }
    r
}

/// The face pipeline, or 503 when the service was started without it.
fn face_engine(s: &Service) -> Result<&Arc<ipseity_face::FaceEngine>, Problem> {
    s.models.face.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "models_missing",
            "this service was started without the face models",
        )
    })
}

/// A face template from image bytes: exactly one usable face; with `live` (a capture to
/// enrol or verify) checked for presentation attacks when the service checks them.
fn face_template(
    s: &Service,
    bytes: &[u8],
    largest: bool,
    live: bool,
) -> Result<(Template, u8), Problem> {
    let engine = face_engine(s)?;
    let img = decode_image(bytes, &DecodeLimits::default())?;
    let face = if live && s.models.check_liveness {
        engine.live_face(&img, largest)?
    } else {
        engine.single_face(&img, largest)?
    };
    let q = face.quality.score;
    let t = Template::new(Modality::Face, ipseity_face::MODEL_ID, face.embedding, q)?;
    Ok((t, q))
}

/// One finger given in a request.
#[derive(Deserialize)]
struct FingerIn {
    /// `right-index`, ..., or `unknown` (default).
    position: Option<String>,
    /// An impression (PNG, TIFF, BMP, WSQ) or an ISO/ANSI record, base64.
    data: String,
    /// Its resolution, when its header is missing or wrong (300 to 1000 ppi).
    ppi: Option<u16>,
}

fn finger_samples(fingers: &[FingerIn], max: usize) -> Result<Vec<Sample>, Problem> {
    if fingers.is_empty() || fingers.len() > max {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "usage",
            format!("give 1 to {max} fingers"),
        ));
    }
    let cfg = ExtractConfig::default();
    let mut seen = std::collections::BTreeSet::new();
    fingers
        .iter()
        .map(|f| {
            let position = match f.position.as_deref() {
                None => FingerPosition::Unknown,
                Some(p) => FingerPosition::parse(p).ok_or_else(|| {
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "usage",
                        format!("unknown finger position {p:?}"),
                    )
                })?,
            };
            if position != FingerPosition::Unknown && !seen.insert(position) {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "usage",
                    format!("finger position {} given twice", position.name()),
                ));
            }
            let bytes = b64("a finger's data", &f.data)?;
            Ok(sample::load_at(&bytes, position, &cfg, f.ppi)?)
        })
        .collect()
}

fn probes(samples: &[Sample]) -> Vec<ProbeFinger> {
    let cfg = MatcherConfig::default();
    samples
        .iter()
        .map(|s| ProbeFinger::new(&s.template, &cfg))
        .collect()
}

// ---------------------------------------------------------------------------------------
// enrolment

#[derive(Deserialize)]
struct EnrolFaces {
    purpose: Option<String>,
    images: Vec<String>,
    #[serde(default)]
    allow_duplicate: bool,
    #[serde(default)]
    largest: bool,
}

#[derive(Serialize)]
struct Enrolled {
    subject: SubjectId,
    templates: usize,
    quality: Vec<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_duplicate_of: Vec<SubjectId>,
    /// Set (with 202) when the enrolment matched these subjects and is held for review.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    held_for_review_of: Vec<SubjectId>,
}

/// An enrolment's answer: 201 when enrolled; 202 when it matched others and is held for
/// a reviewer (NIST SP 800-63A-4: a case for a person, not a refusal).
fn enrolment_answer(
    store: &dyn ipseity_store::Backend,
    subject: SubjectId,
    quality: Vec<u8>,
    result: Result<Vec<SubjectId>, ipseity_engine::EngineError>,
) -> Result<(StatusCode, Json<Enrolled>), Problem> {
    let templates = quality.len();
    let (status, allowed, held) = match result {
        Ok(hits) => (StatusCode::CREATED, hits, Vec::new()),
        Err(ipseity_engine::EngineError::PossibleDuplicate(hits))
            if store.pending_of(&subject)?.is_some() =>
        {
            (StatusCode::ACCEPTED, Vec::new(), hits)
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        status,
        Json(Enrolled {
            subject,
            templates,
            quality,
            allowed_duplicate_of: allowed,
            held_for_review_of: held,
        }),
    ))
}

async fn enrol_faces(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<EnrolFaces>,
) -> Result<(StatusCode, Json<Enrolled>), Problem> {
    let purpose = purpose_of(&req.purpose)?.to_owned();
    let actor = actor_of(&authorize(&s, &headers, Scope::Enrol, Some(&purpose)).await?);
    ready(&s)?;
    let subject = subject_id(id)?;
    if req.images.is_empty() || req.images.len() > s.limits.max_samples {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_files",
            format!("give 1 to {} images", s.limits.max_samples),
        ));
    }
    let images = req
        .images
        .iter()
        .map(|i| b64("an image", i))
        .collect::<Result<Vec<_>, _>>()?;
    let largest = req.largest;
    let (who, whom, why) = (actor.clone(), subject.clone(), purpose.clone());
    let templates = heavy(&s, move |s| {
        audited_capture(s, &who, &whom, &why, "enroll", || {
            // One image at a time: decoded pixels never pile up.
            images
                .iter()
                .map(|b| face_template(s, b, largest, true).map(|(t, _)| t))
                .collect::<Result<Vec<_>, _>>()
        })
    })
    .await?;
    let allow = req.allow_duplicate;
    heavy(&s, move |s| {
        let mut store = s.store_as(&actor)?;
        let mut faces = s.faces.write().map_err(|_| poisoned())?;
        let live = faces.as_mut().ok_or_else(poisoned)?;
        let r = FaceEnrolment {
            subject: &subject,
            templates: &templates,
            allow_duplicate: allow,
            purpose: Some(&purpose),
            source: None,
        };
        let result = face::enrol(&mut **store, live, &s.models.point, &r);
        let quality = templates.iter().map(|t| t.quality).collect();
        enrolment_answer(&**store, subject, quality, result)
    })
    .await
}

fn poisoned() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

#[derive(Deserialize)]
struct EnrolFingers {
    purpose: Option<String>,
    fingers: Vec<FingerIn>,
    #[serde(default)]
    allow_duplicate: bool,
}

async fn enrol_fingers(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<EnrolFingers>,
) -> Result<(StatusCode, Json<Enrolled>), Problem> {
    let purpose = purpose_of(&req.purpose)?.to_owned();
    let actor = actor_of(&authorize(&s, &headers, Scope::Enrol, Some(&purpose)).await?);
    ready(&s)?;
    let subject = subject_id(id)?;
    let allow = req.allow_duplicate;
    heavy(&s, move |s| {
        let samples = finger_samples(&req.fingers, s.limits.max_samples)?;
        let fingers: Vec<_> = samples
            .iter()
            .map(|x| (x.template.clone(), x.quality_score()))
            .collect();
        let mut store = s.store_as(&actor)?;
        let mut g = s.fingers.write().map_err(|_| poisoned())?;
        let live = g.as_mut().ok_or_else(poisoned)?;
        let r = FingerEnrolment {
            subject: &subject,
            fingers: &fingers,
            allow_duplicate: allow,
            purpose: Some(&purpose),
        };
        let result = efinger::enrol(&mut **store, live, &r);
        let quality = fingers.iter().map(|f| f.1).collect();
        enrolment_answer(&**store, subject, quality, result)
    })
    .await
}

// ---------------------------------------------------------------------------------------
// verify and identify

#[derive(Deserialize)]
struct Probe {
    purpose: Option<String>,
    face: Option<String>,
    fingers: Option<Vec<FingerIn>>,
    #[serde(default)]
    largest: bool,
    top: Option<usize>,
}

enum ProbeSample {
    Face(Vec<u8>),
    Fingers(Vec<FingerIn>),
}

fn one_modality(p: Probe) -> Result<(String, ProbeSample, bool, Option<usize>), Problem> {
    let purpose = purpose_of(&p.purpose)?.to_owned();
    let sample = match (p.face, p.fingers) {
        (Some(f), None) => ProbeSample::Face(b64("the face", &f)?),
        (None, Some(f)) => ProbeSample::Fingers(f),
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "usage",
                "give either `face` or `fingers`",
            ))
        }
    };
    Ok((purpose, sample, p.largest, p.top))
}

#[derive(Serialize)]
struct Verification {
    subject: SubjectId,
    decision: Decision,
    /// The modality compared; absent when both were (see `parts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    modality: Option<Modality>,
    operating_point: String,
    /// With a face and fingers: each modality's own decision, fused into `decision`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<Part>,
}

#[derive(Serialize)]
struct Part {
    modality: Modality,
    decision: Decision,
    operating_point: String,
}

/// 1:1 by face: the best similarity to the subject's face templates, at the policy's point.
fn verify_face(
    s: &Service,
    subject: &SubjectId,
    refs: &[Template],
    bytes: &[u8],
    largest: bool,
) -> Result<Part, Problem> {
    let refs: Vec<_> = refs
        .iter()
        .filter(|t| t.modality == Modality::Face && t.model == ipseity_face::MODEL_ID)
        .collect();
    if refs.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no_templates",
            format!("subject {subject} has no face templates"),
        ));
    }
    let (probe, _) = face_template(s, bytes, largest, true)?;
    let best = refs
        .iter()
        .map(|t| ipseity_face::similarity(&probe.vector, &t.vector))
        .fold(f32::NEG_INFINITY, f32::max);
    Ok(Part {
        modality: Modality::Face,
        decision: s.models.point.decide(best),
        operating_point: s.models.point_description.clone(),
    })
}

/// 1:1 by fingers: the calibrated, fused false-match rate of the fingers compared.
fn verify_fingers(
    s: &Service,
    subject: &SubjectId,
    refs: &[Template],
    fingers: &[FingerIn],
) -> Result<(Part, usize), Problem> {
    let refs = efinger::decode_stored(refs.iter().map(|t| (subject.clone(), t.clone())))?;
    if refs.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no_templates",
            format!("subject {subject} has no fingerprint templates"),
        ));
    }
    let samples = finger_samples(fingers, s.limits.max_samples)?;
    let g = efinger::build_gallery(&refs, s.models.finger_calibration.clone())?;
    let m = g
        .verify(subject, &probes(&samples))
        .filter(|m| m.fingers_compared > 0)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_templates",
                "no enrolled finger at the positions given",
            )
        })?;
    Ok((
        Part {
            modality: Modality::Fingerprint,
            decision: FmrPolicy::default().decide(m.fmr),
            operating_point: format!("FMR {:e} per comparison", FmrPolicy::default().accept_fmr),
        },
        m.fingers_compared,
    ))
}

async fn verify(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<Probe>,
) -> Result<Json<Verification>, Problem> {
    let purpose = purpose_of(&req.purpose)?.to_owned();
    let face = req
        .face
        .as_deref()
        .map(|f| b64("the face", f))
        .transpose()?;
    let fingers = req.fingers;
    if face.is_none() && fingers.is_none() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "usage",
            "give `face`, `fingers`, or both",
        ));
    }
    let largest = req.largest;
    let actor = actor_of(&authorize(&s, &headers, Scope::Verify, Some(&purpose)).await?);
    let subject = subject_id(id)?;
    heavy(&s, move |s| {
        gate_attempt(s, &actor, &subject, &purpose)?;
        let refs = s.store_lock()?.templates(&subject)?;
        let face = face
            .map(|b| {
                audited_capture(s, &actor, &subject, &purpose, "verify", || {
                    verify_face(s, &subject, &refs, &b, largest)
                })
            })
            .transpose()?;
        let fingers = fingers
            .map(|f| verify_fingers(s, &subject, &refs, &f))
            .transpose()?;
        let (event, answer) = match (face, fingers) {
            (Some(f), None) => (
                AuditEvent::Verified {
                    modality: Modality::Face,
                    decision: f.decision,
                    compared: None,
                },
                Verification {
                    subject: subject.clone(),
                    decision: f.decision,
                    modality: Some(Modality::Face),
                    operating_point: f.operating_point,
                    parts: Vec::new(),
                },
            ),
            (None, Some((p, compared))) => (
                AuditEvent::Verified {
                    modality: Modality::Fingerprint,
                    decision: p.decision,
                    compared: Some(compared),
                },
                Verification {
                    subject: subject.clone(),
                    decision: p.decision,
                    modality: Some(Modality::Fingerprint),
                    operating_point: p.operating_point,
                    parts: Vec::new(),
                },
            ),
            (Some(f), Some((p, compared))) => {
                let decision = ipseity_engine::verify::fuse(f.decision, p.decision);
                (
                    AuditEvent::VerifiedFused {
                        decision,
                        face: f.decision,
                        finger: p.decision,
                        compared,
                    },
                    Verification {
                        subject: subject.clone(),
                        decision,
                        modality: None,
                        operating_point: "accept only when both modalities accept at their own \
                                          points; a conflict needs review"
                            .into(),
                        parts: vec![f, p],
                    },
                )
            }
            (None, None) => return Err(poisoned()),
        };
        let accepted = answer.decision == Decision::Accept;
        let mut store = s.store_as(&actor)?;
        store.record_audit(&event, Some(&subject), Some(&purpose))?;
        store.finish_attempt(&subject, accepted)?;
        Ok(Json(answer))
    })
    .await
}

#[derive(Serialize)]
struct CandidateOut {
    subject: SubjectId,
    decision: Decision,
}

#[derive(Serialize)]
struct Identification {
    candidates: Vec<CandidateOut>,
    gallery_subjects: usize,
    modality: Modality,
}

async fn identify_route(
    State(s): State<Shared>,
    headers: HeaderMap,
    Body(req): Body<Probe>,
) -> Result<Json<Identification>, Problem> {
    let (purpose, sample, largest, top) = one_modality(req)?;
    let actor = actor_of(&authorize(&s, &headers, Scope::Identify, Some(&purpose)).await?);
    ready(&s)?;
    let top = top.unwrap_or(10);
    if top == 0 || top > 1000 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "usage",
            "top must be 1 to 1000",
        ));
    }
    heavy(&s, move |s| {
        charge_search(s, &actor, &sample)?;
        // The gallery lock is released before the store is locked (consent, audit row).
        let (found, gallery, modality) = match sample {
            ProbeSample::Face(bytes) => {
                let (probe, _) = face_template(s, &bytes, largest, false)?;
                let g = s.faces.read().map_err(|_| poisoned())?;
                let live = g.as_ref().ok_or_else(poisoned)?;
                (
                    identify::face_candidates(&live.gallery, &s.models.point, &probe.vector, top),
                    live.gallery.subjects(),
                    Modality::Face,
                )
            }
            ProbeSample::Fingers(fingers) => {
                let samples = finger_samples(&fingers, s.limits.max_samples)?;
                let p = probes(&samples);
                let g = s.fingers.read().map_err(|_| poisoned())?;
                let live = g.as_ref().ok_or_else(poisoned)?;
                let n = live.gallery.subjects().max(1) as f64;
                let policy = FmrPolicy::default();
                let found = live
                    .gallery
                    .identify(&p, top, efinger::SHORTLIST)
                    .into_iter()
                    .map(|m| identify::Candidate {
                        decision: policy.decide(m.fmr * n),
                        subject: m.subject,
                    })
                    .collect();
                (found, live.gallery.subjects(), Modality::Fingerprint)
            }
        };
        let answer = identify::answer(consenting(s, &actor, found, &purpose)?, top);
        s.store_as(&actor)?.record_audit(
            &AuditEvent::Identified {
                modality,
                best: answer.best,
                candidates: answer.candidates.len(),
                gallery,
            },
            answer.candidates.first().map(|c| &c.subject),
            Some(&purpose),
        )?;
        Ok(Json(Identification {
            candidates: answer
                .candidates
                .into_iter()
                .map(|c| CandidateOut {
                    subject: c.subject,
                    decision: c.decision,
                })
                .collect(),
            gallery_subjects: gallery,
            modality,
        }))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// subjects and audit

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_subjects(
    State(s): State<Shared>,
    headers: HeaderMap,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    authorize(&s, &headers, Scope::Admin, None).await?;
    let Query(page) = page.map_err(bad_query)?;
    let limit = limit_in(page.limit, 1000)?;
    let after = page.after.map(subject_id).transpose()?;
    // One row more than asked says whether there is a next page.
    let items = blocking(&s, move |s| {
        Ok(s.store_lock()?.list_page(after.as_ref(), limit + 1)?)
    })
    .await?;
    let more = items.len() > limit;
    let items: Vec<_> = items.into_iter().take(limit).collect();
    let next = more
        .then(|| items.last().map(|x| x.id.to_string()))
        .flatten();
    Ok(Json(json!({ "subjects": items, "next_after": next })))
}

async fn subject(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    authorize(&s, &headers, Scope::Admin, None).await?;
    let subject = subject_id(id)?;
    let (ts, source) = {
        let subject = subject.clone();
        blocking(&s, move |s| {
            let store = s.store_lock()?;
            Ok((
                store.templates(&subject)?,
                store.enrolment_source(&subject)?,
            ))
        })
        .await?
    };
    let count = |m| ts.iter().filter(|t| t.modality == m).count();
    let mut answer = json!({
        "subject": subject,
        "templates": { "face": count(Modality::Face), "finger": count(Modality::Fingerprint) }
    });
    // What vouched for the enrolment (a verified travel document), for an administrator.
    if let Some(source) = source {
        answer["source"] = json!(source);
    }
    Ok(Json(answer))
}

async fn erase(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    let actor = actor_of(&authorize(&s, &headers, Scope::Admin, None).await?);
    let subject = subject_id(id)?;
    heavy(&s, move |s| {
        let mut store = s.store_as(&actor)?;
        let erased = store.erase(&subject, Some("erasure"))?;
        if let Some(g) = s.faces.write().map_err(|_| poisoned())?.as_mut() {
            g.gallery.remove(&subject);
        }
        // The finger gallery has no removal yet: it is rebuilt from the store.
        let fingers =
            efinger::LiveFingerGallery::load(&**store, s.models.finger_calibration.clone())?;
        *s.fingers.write().map_err(|_| poisoned())? = Some(fingers);
        Ok(Json(json!({
            "erased": subject,
            "templates": erased.templates,
            "wal_wiped": erased.wal_wiped
        })))
    })
    .await
}

/// Refuses a verification (403 `no_consent`, audited) when the subject's consent does not
/// cover the purpose, or was withdrawn; an unknown subject stays a 404.
fn check_consent(
    s: &Service,
    actor: &str,
    subject: &ipseity_core::SubjectId,
    purpose: &str,
) -> Result<(), Problem> {
    let mut store = s.store_as(actor)?;
    if store.pending_of(subject)?.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "pending_review",
            "this subject's enrolment is held for review; it cannot be verified until a reviewer resolves it",
        ));
    }
    if store.consented(subject, Some(purpose))? {
        return Ok(());
    }
    store.templates(subject)?;
    store.record_audit(
        &AuditEvent::AccessDenied {
            key: actor.strip_prefix("key:").map(str::to_owned),
            operation: "verify",
            reason: "consent",
        },
        Some(subject),
        Some(purpose),
    )?;
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "no_consent",
        "the subject has not consented to this purpose, or has withdrawn consent",
    ))
}

/// Drops the candidates whose consent does not cover the search's purpose, keeping the
/// strongest-first order.
fn consenting(
    s: &Service,
    actor: &str,
    found: Vec<identify::Candidate>,
    purpose: &str,
) -> Result<Vec<identify::Candidate>, Problem> {
    let store = s.store_as(actor)?;
    let mut kept = Vec::with_capacity(found.len());
    for c in found {
        if store.consented(&c.subject, Some(purpose))? {
            kept.push(c);
        }
    }
    Ok(kept)
}

/// Refuses a verification while the subject's failed attempts lock it (429 with
/// `Retry-After`, or 403 once disabled); otherwise counts it as begun. Refusals are audited.
fn gate_attempt(
    s: &Service,
    actor: &str,
    subject: &ipseity_core::SubjectId,
    purpose: &str,
) -> Result<(), Problem> {
    check_consent(s, actor, subject, purpose)?;
    let now = ipseity_store::attempts::unix_now();
    let mut store = s.store_as(actor)?;
    let gate = store.begin_attempt(subject, now, &s.limits.attempts)?;
    let Some(event) = gate.refusal() else {
        return Ok(());
    };
    store.record_audit(&event, Some(subject), Some(purpose))?;
    Err(match gate {
        AttemptGate::Locked { retry_after_s } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed verifications of this subject; try again in {retry_after_s} s"
            ),
        )
        .retry_after(retry_after_s),
        _ => Problem::new(
            StatusCode::FORBIDDEN,
            "verification_disabled",
            "too many failed verifications of this subject: an administrator must unlock it",
        ),
    })
}

/// Spends the gallery's size from the key's hourly search budget, or refuses the search
/// (429 `search_budget_spent` with `Retry-After`, audited) when that would go over.
fn charge_search(s: &Service, actor: &str, sample: &ProbeSample) -> Result<(), Problem> {
    let size = match sample {
        ProbeSample::Face(_) => s.with_face_gallery(|g| g.subjects()),
        ProbeSample::Fingers(_) => s.with_finger_gallery(|g| g.subjects()),
    }
    .unwrap_or(0);
    let now = ipseity_store::attempts::unix_now();
    let hour = now / 3600;
    let mut store = s.store_as(actor)?;
    if store.charge_budget(actor, hour, size as u64, s.limits.identify_budget_per_hour)? {
        return Ok(());
    }
    let retry_after_s = u64::try_from(3600 - now % 3600).unwrap_or(3600);
    store.record_audit(
        &AuditEvent::AccessDenied {
            key: actor.strip_prefix("key:").map(str::to_owned),
            operation: "identify",
            reason: "search_budget",
        },
        None,
        None,
    )?;
    Err(Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "search_budget_spent",
        format!(
            "this key has searched its hourly budget of {} enrolled subjects; try again in \
             {retry_after_s} s",
            s.limits.identify_budget_per_hour
        ),
    )
    .retry_after(retry_after_s))
}

async fn unlock(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    let actor = actor_of(&authorize(&s, &headers, Scope::Admin, None).await?);
    let subject = subject_id(id)?;
    blocking(&s, move |s| {
        s.store_as(&actor)?.unlock(&subject, Some("unlock"))?;
        Ok(Json(json!({ "unlocked": subject })))
    })
    .await
}

async fn give_consent(
    State(s): State<Shared>,
    Path((id, purpose)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    set_consent(s, id, purpose, headers, true).await
}

async fn withdraw_consent(
    State(s): State<Shared>,
    Path((id, purpose)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    set_consent(s, id, purpose, headers, false).await
}

async fn set_consent(
    s: Shared,
    id: String,
    purpose: String,
    headers: HeaderMap,
    given: bool,
) -> Result<Json<serde_json::Value>, Problem> {
    let purpose = purpose_of(&Some(purpose))?.to_owned();
    let actor = actor_of(&authorize(&s, &headers, Scope::Enrol, Some(&purpose)).await?);
    let subject = subject_id(id)?;
    blocking(&s, move |s| {
        s.store_as(&actor)?.set_consent(&subject, &purpose, given)?;
        Ok(Json(json!({
            "subject": subject,
            "purpose": purpose,
            "consent": if given { "given" } else { "withdrawn" }
        })))
    })
    .await
}

async fn reviews(
    State(s): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    authorize(&s, &headers, Scope::Review, None).await?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit_in(q.limit, 10_000)?;
    let pending = blocking(&s, move |s| Ok(s.store_lock()?.pending_reviews(limit)?)).await?;
    Ok(Json(json!({ "pending": pending })))
}

#[derive(Deserialize)]
struct Resolution {
    outcome: String,
    same_as: Option<String>,
}

async fn resolve_review(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<Resolution>,
) -> Result<Json<serde_json::Value>, Problem> {
    let actor = actor_of(&authorize(&s, &headers, Scope::Review, None).await?);
    let subject = subject_id(id)?;
    let outcome = match (req.outcome.as_str(), req.same_as) {
        ("new_subject", None) => ReviewOutcome::NewSubject,
        ("rejected", None) => ReviewOutcome::Rejected,
        ("same_person", Some(m)) => ReviewOutcome::SamePerson(subject_id(m)?),
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "usage",
                "outcome is new_subject, rejected, or same_person with same_as",
            ))
        }
    };
    heavy(&s, move |s| {
        s.store_as(&actor)?
            .resolve_review(&subject, &outcome, Some("review"))?;
        if outcome == ReviewOutcome::NewSubject {
            // It joins the galleries: loaded again from the store (a resolution is rare;
            // other servers find its templates as written since their last look).
            s.load_galleries()?;
        }
        Ok(Json(
            json!({ "subject": subject, "outcome": outcome_word(&outcome) }),
        ))
    })
    .await
}

fn outcome_word(o: &ReviewOutcome) -> &'static str {
    match o {
        ReviewOutcome::NewSubject => "new_subject",
        ReviewOutcome::SamePerson(_) => "same_person",
        ReviewOutcome::Rejected => "rejected",
    }
}

/// The embedded store is owned by the server, so its master key is rotated here; the
/// store's lock is held while the data keys are re-wrapped (60 bytes each, in one
/// transaction), and requests wait for it rather than fail.
async fn rotate_master(
    State(s): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Problem> {
    let actor = actor_of(&authorize(&s, &headers, Scope::Admin, None).await?);
    blocking(&s, move |s| {
        let rewrapped = s.store_as(&actor)?.rotate_master()?;
        Ok(Json(json!({ "rewrapped_templates": rewrapped })))
    })
    .await
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(s): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    authorize(&s, &headers, Scope::Admin, None).await?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = limit_in(q.limit, 10_000)?;
    let entries = blocking(&s, move |s| Ok(s.store_lock()?.audit_log(limit)?)).await?;
    Ok(Json(json!({ "entries": entries })))
}

// ---------------------------------------------------------------------------------------
// travel documents

/// Most chip files one request may carry (EF.COM, EF.SOD, sixteen data groups and the
/// card files).
const MAX_CHIP_FILES: usize = 20;

#[derive(Deserialize)]
struct DocumentProbe {
    purpose: Option<String>,
    /// The chip's files by name, base64.
    files: std::collections::BTreeMap<String, String>,
    /// The live capture, base64.
    face: String,
    /// The printed zone's lines, when read.
    mrz: Option<Vec<String>>,
    #[serde(default)]
    largest: bool,
    /// Enrol the holder when the check accepts.
    enrol: Option<DocumentEnrol>,
}

/// `enrol` of a document check: as `POST /v1/subjects/{id}/faces`, for the holder.
#[derive(Deserialize)]
struct DocumentEnrol {
    subject: String,
    #[serde(default)]
    allow_duplicate: bool,
}

#[derive(Serialize)]
struct DocumentVerification {
    #[serde(flatten)]
    check: ipseity_engine::document::ChipToLive,
    operating_point: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrolment: Option<HolderEnrolment>,
}

/// What `enrol` did: enrolled, held for review, or not and why. The document's data stays
/// in the store, sealed; only the kind of source is said.
#[derive(Serialize)]
struct HolderEnrolment {
    subject: SubjectId,
    enrolled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<ipseity_core::SourceKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quality: Vec<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_duplicate_of: Vec<SubjectId>,
    /// Set (with 202) when the enrolment matched these subjects and is held for review.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    held_for_review_of: Vec<SubjectId>,
}

/// What a document check leaves for `enrol`: its answer, the chip's contents, and the live
/// capture's analysis when one was made.
struct Checked<'a> {
    check: &'a ipseity_engine::document::ChipToLive,
    chip: &'a ipseity_document::chip::ChipContents,
    live: Option<ipseity_face::FaceAnalysis>,
}

/// Enrols the holder of an accepted document through the same enrolment as
/// `POST /v1/subjects/{id}/faces`, with the document as its source; anything but an
/// accept enrols nothing. Holds the store, then the face gallery.
fn enrol_holder(
    s: &Service,
    store: &mut dyn ipseity_store::Backend,
    subject: SubjectId,
    allow_duplicate: bool,
    purpose: &str,
    checked: Checked<'_>,
) -> Result<(StatusCode, HolderEnrolment), Problem> {
    let Checked { check, chip, live } = checked;
    let not_done = |subject, reason: String| {
        (
            StatusCode::OK,
            HolderEnrolment {
                subject,
                enrolled: false,
                reason: Some(reason),
                source: None,
                quality: vec![],
                allowed_duplicate_of: vec![],
                held_for_review_of: vec![],
            },
        )
    };
    let source = match ipseity_engine::document::enrolment_source(check, chip) {
        Ok(x) => x,
        Err(why) => return Ok(not_done(subject, why)),
    };
    let Some(face) = live else {
        return Ok(not_done(subject, "no live face was analysed".into()));
    };
    let q = face.quality.score;
    let template = Template::new(Modality::Face, ipseity_face::MODEL_ID, face.embedding, q)?;
    let mut faces = s.faces.write().map_err(|_| poisoned())?;
    let gallery = faces.as_mut().ok_or_else(poisoned)?;
    let r = FaceEnrolment {
        subject: &subject,
        templates: std::slice::from_ref(&template),
        allow_duplicate,
        purpose: Some(purpose),
        source: Some(&source),
    };
    let result = face::enrol(store, gallery, &s.models.point, &r);
    drop(faces);
    let (status, Json(e)) = enrolment_answer(&*store, subject, vec![q], result)?;
    Ok((
        status,
        HolderEnrolment {
            enrolled: status == StatusCode::CREATED,
            subject: e.subject,
            reason: (status != StatusCode::CREATED)
                .then(|| "the face matches enrolled subjects: held for review".to_owned()),
            source: Some(source.kind),
            quality: e.quality,
            allowed_duplicate_of: e.allowed_duplicate_of,
            held_for_review_of: e.held_for_review_of,
        },
    ))
}

async fn verify_document(
    State(s): State<Shared>,
    headers: HeaderMap,
    Body(req): Body<DocumentProbe>,
) -> Result<(StatusCode, Json<DocumentVerification>), Problem> {
    use ipseity_document::chip::ChipFile;
    use ipseity_engine::document::{self as doc, ChipInput, Liveness};
    let purpose = purpose_of(&req.purpose)?.to_owned();
    let actor = actor_of(&authorize(&s, &headers, Scope::Verify, Some(&purpose)).await?);
    // Enrolling the holder needs the enrol scope as well; a bad or existing id is refused
    // before any work, as `ipseity enroll` does (the enrolment checks again in its
    // transaction).
    let enrol = match req.enrol {
        Some(e) => {
            authorize(&s, &headers, Scope::Enrol, Some(&purpose)).await?;
            ready(&s)?;
            let subject = subject_id(e.subject)?;
            let whom = subject.clone();
            blocking(&s, move |s| match s.store_lock()?.templates(&whom) {
                Ok(_) => Err(ipseity_store::StoreError::DuplicateSubject(whom).into()),
                Err(ipseity_store::StoreError::UnknownSubject(_)) => Ok(()),
                Err(e) => Err(e.into()),
            })
            .await?;
            Some((subject, e.allow_duplicate))
        }
        None => None,
    };
    let trust = s.models.documents.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_trust_anchors",
            "this service was started without CSCAs (`ipseity serve --csca FILE_OR_DIR`)",
        )
    })?;
    if req.files.is_empty() || req.files.len() > MAX_CHIP_FILES {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_files",
            format!("give 1 to {MAX_CHIP_FILES} chip files"),
        ));
    }
    let mut files = Vec::with_capacity(req.files.len());
    for (name, data) in &req.files {
        let kind = ChipFile::from_name(name).ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_chip_file",
                format!("{name:?} is not a chip file (EF.COM, EF.SOD, DG1 to DG16, EF.CardAccess, EF.CardSecurity)"),
            )
        })?;
        files.push((kind, b64("a chip file", data)?));
    }
    let printed = match &req.mrz {
        Some(lines) => Some(
            ipseity_document::Mrz::parse(&lines.join("\n")).map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "malformed_mrz",
                    e.to_string(),
                )
            })?,
        ),
        None => None,
    };
    let face = b64("the face", &req.face)?;
    let largest = req.largest;
    heavy(&s, move |s| {
        let engine = face_engine(s)?;
        let live_img = decode_image(&face, &DecodeLimits::default())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (mut check, chip) = doc::authenticate(&ChipInput {
            files: &files,
            trust: &trust.trust,
            crl: trust.crl.as_deref(),
            printed: printed.as_ref(),
            now,
        });
        let mut analysed = None;
        if !check.rejected() {
            if let Some(portraits) = doc::portraits(&mut check, &chip) {
                let live = engine.single_face(&live_img, largest)?;
                let liveness = if s.models.check_liveness {
                    match engine.assess_liveness(&live_img, live.rect) {
                        Ok(l) => Liveness::Checked(l.is_bona_fide),
                        Err(e) => Liveness::Failed(e.to_string()),
                    }
                } else {
                    Liveness::NotInstalled
                };
                let chip_faces = portraits
                    .iter()
                    .map(|f| {
                        decode_image(&f.data, &DecodeLimits::default())
                            .map_err(|e| e.to_string())
                            .and_then(|img| {
                                engine.single_face(&img, true).map_err(|e| e.to_string())
                            })
                    })
                    .collect();
                doc::compare(&mut check, &live, liveness, chip_faces, &s.models.point);
                analysed = Some(live);
            }
        }
        drop(live_img);
        check.settle();
        let mut store = s.store_as(&actor)?;
        store.record_audit(
            &AuditEvent::Verified {
                modality: Modality::Face,
                decision: check.decision,
                compared: None,
            },
            None,
            Some(&purpose),
        )?;
        let (status, enrolment) = match enrol {
            Some((subject, allow)) => {
                let (status, e) = enrol_holder(
                    s,
                    &mut **store,
                    subject,
                    allow,
                    &purpose,
                    Checked {
                        check: &check,
                        chip: &chip,
                        live: analysed,
                    },
                )?;
                (status, Some(e))
            }
            None => (StatusCode::OK, None),
        };
        Ok((
            status,
            Json(DocumentVerification {
                check,
                operating_point: s.models.point_description.clone(),
                enrolment,
            }),
        ))
    })
    .await
}

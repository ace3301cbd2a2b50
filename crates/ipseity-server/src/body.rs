//! Request bodies as JSON or as `multipart/form-data`: one extractor, [`Body`], so every
//! route takes images either base64 in JSON or as file parts, with the same fields.
//!
//! A multipart body maps onto the JSON shape: text parts `purpose`, `top`,
//! `allow_duplicate`, `largest` become those fields; file parts `images` (repeatable) and
//! `face` become base64 strings; a part named `finger` or `finger:<position>` (for example
//! `finger:right-index`) becomes one entry of `fingers`, and a text part `ppi` gives the
//! resolution of every finger part. The conversion costs a base64
//! pass over the image, which is small beside its analysis; in exchange the routes have
//! one code path and one OpenAPI shape.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::problem::Problem;

/// A request body given as JSON or as multipart form data.
pub(crate) struct Body<T>(pub(crate) T);

const BOOLS: &[&str] = &["allow_duplicate", "largest"];
const NUMBERS: &[&str] = &["top", "ppi"];

fn bad(code: &'static str, message: impl Into<String>) -> Problem {
    Problem::bad_request(code, message)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let ctype = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let value = if ctype.starts_with("multipart/form-data") {
            let mp = Multipart::from_request(req, state)
                .await
                .map_err(|e| bad("bad_body", format!("multipart body: {}", e.body_text())))?;
            from_multipart(mp).await?
        } else if ctype.starts_with("application/json") || ctype.is_empty() {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| bad("bad_body", e.body_text()))?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| bad("bad_body", format!("the body is not JSON: {e}")))?
        } else {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/json or multipart/form-data",
            ));
        };
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| bad("bad_body", format!("the body does not fit this route: {e}")))
    }
}

async fn from_multipart(mut mp: Multipart) -> Result<Value, Problem> {
    let mut out = Map::new();
    let mut images = Vec::new();
    let mut fingers = Vec::new();
    let multipart_err = |e: axum::extract::multipart::MultipartError| {
        bad("bad_body", format!("multipart body: {}", e.body_text()))
    };
    while let Some(field) = mp.next_field().await.map_err(multipart_err)? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "images" || name == "face" || name == "finger" || name.starts_with("finger:") {
            let bytes = field.bytes().await.map_err(multipart_err)?;
            let data = Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes));
            match name.as_str() {
                "images" => images.push(data),
                "face" => {
                    out.insert("face".into(), data);
                }
                _ => {
                    let mut f = Map::new();
                    if let Some(pos) = name.strip_prefix("finger:") {
                        f.insert("position".into(), Value::String(pos.to_owned()));
                    }
                    f.insert("data".into(), data);
                    fingers.push(Value::Object(f));
                }
            }
            continue;
        }
        let text = field.text().await.map_err(multipart_err)?;
        let value = if BOOLS.contains(&name.as_str()) {
            match text.trim() {
                "true" | "1" | "on" => Value::Bool(true),
                "false" | "0" | "off" | "" => Value::Bool(false),
                other => {
                    return Err(bad(
                        "bad_body",
                        format!("{name} must be true or false, not {other:?}"),
                    ))
                }
            }
        } else if NUMBERS.contains(&name.as_str()) {
            text.trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| bad("bad_body", format!("{name} must be a whole number")))?
        } else {
            Value::String(text)
        };
        out.insert(name, value);
    }
    if !images.is_empty() {
        out.insert("images".into(), Value::Array(images));
    }
    if !fingers.is_empty() {
        // A `ppi` field gives the resolution of every finger part of the form.
        if let Some(ppi) = out.remove("ppi") {
            for f in &mut fingers {
                if let Value::Object(f) = f {
                    f.insert("ppi".into(), ppi.clone());
                }
            }
        }
        out.insert("fingers".into(), Value::Array(fingers));
    }
    Ok(Value::Object(out))
}

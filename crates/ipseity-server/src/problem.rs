//! Errors as RFC 9457 problem documents: the HTTP status comes from the error's kind, the
//! `code` member is the same stable code the CLI prints.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ipseity_core::{Classified, ErrorKind};
use serde::Serialize;

/// A failed request.
#[derive(Debug)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `no_face`.
    pub code: &'static str,
    /// For a person; never a score or template value.
    pub detail: String,
    /// Seconds to wait before trying again (`Retry-After`), where that is known.
    pub retry_after_s: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<u64>,
}

/// The status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Input => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Duplicate | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Problem {
    /// A problem with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// The same, saying when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// A malformed request (400).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// Any classified library error.
    pub fn from_error<E: Classified + std::fmt::Display>(e: &E) -> Self {
        let status = status_of(e.kind());
        // Internal details stay in the server; the caller gets the code.
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            e.to_string()
        };
        Self::new(status, e.code(), detail)
    }
}

impl<E: Classified + std::fmt::Display> From<E> for Problem {
    fn from(e: E) -> Self {
        Problem::from_error(&e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: format!("urn:ipseity:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            retry_after_s: self.retry_after_s,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            if let Ok(v) = header::HeaderValue::from_str(&s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

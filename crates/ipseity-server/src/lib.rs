//! The identity service: the engine's use cases behind an HTTP API for relying parties
//! (`ipseity serve`).
//!
//! - Every request but `/livez`, `/readyz`, `/metrics` and `/openapi.json` carries an API
//!   key (`Authorization: Bearer ipk_...`); a key may do only its scopes and state only
//!   its purposes (401 without a valid key, 403 otherwise, both audited by key name).
//! - Answers are decisions, never scores; errors are RFC 9457 problem documents carrying
//!   the same stable codes as the CLI, with the HTTP status taken from the error's kind.
//! - The galleries live in memory, loaded once at start (`/readyz` says when) and kept in
//!   step by every enrolment and erasure; enrolments are serialised with their duplicate
//!   search by the engine's write transaction.
//! - One process owns a data directory: a lock file refuses a second server, and the
//!   CLI's writing commands check it.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

mod api;
mod metrics;
mod owner;
mod problem;
mod state;

pub use api::{router, ROUTES};
pub use owner::{OwnerLock, LOCK_FILE};
pub use state::{Limits, Models, Service};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address is not loopback and plain HTTP was not explicitly allowed.
    #[error("{0} is not a loopback address; without TLS the service listens on loopback only")]
    NotLoopback(SocketAddr),
    /// Binding or serving failed.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serves `service` on `listener` until `shutdown` completes, then finishes the requests
/// in flight (new connections are refused) and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let app = router(service);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io { addr, source })
}

/// Refuses a non-loopback address unless `insecure` (this build has no TLS).
pub fn check_listen(addr: SocketAddr, insecure: bool) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || insecure {
        Ok(())
    } else {
        Err(ServeError::NotLoopback(addr))
    }
}

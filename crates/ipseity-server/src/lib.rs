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
mod body;
mod metrics;
mod owner;
mod problem;
mod state;

pub use api::{router, ROUTES};
pub use owner::{OwnerLock, LOCK_FILE};
pub use state::{DocumentTrust, Limits, Models, Service};

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
    /// The TLS certificate or key could not be loaded.
    #[error("TLS certificate or key: {0}")]
    Tls(std::io::Error),
    /// Binding or serving failed.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The listener's address, for the errors that name it.
fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Serves `service` on `listener` until `shutdown` completes, then finishes the requests
/// in flight (new connections are refused) and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = local_addr(&listener)?;
    let app = router(service);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io { addr, source })
}

/// The PEM files `ipseity serve --tls-cert --tls-key` names.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// [`serve`] over TLS (rustls, TLS 1.2 and 1.3, the `ring` provider): the same routes,
/// the same graceful stop.
pub async fn serve_tls(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    tls: &TlsFiles,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = local_addr(&listener)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(ServeError::Tls)?;
    let io = |source| ServeError::Io { addr, source };
    let std_listener = listener.into_std().map_err(io)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        // No deadline: requests in flight finish, as over plain HTTP.
        stopper.graceful_shutdown(None);
    });
    axum_server::tls_rustls::from_tcp_rustls(std_listener, config)
        .map_err(io)?
        .handle(handle)
        .serve(router(service).into_make_service())
        .await
        .map_err(io)
}

/// Refuses a non-loopback address for plain HTTP unless `insecure`; with TLS any
/// address is accepted.
pub fn check_listen(addr: SocketAddr, insecure: bool) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || insecure {
        Ok(())
    } else {
        Err(ServeError::NotLoopback(addr))
    }
}

//! `ipseity serve`: the identity service on the data directory's store, until SIGINT or
//! SIGTERM; then in-flight requests finish and new connections are refused.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ipseity_server::{Limits, Models, OwnerLock, Service, TlsFiles};
use ipseity_store::{Backend, PgStore, Store};

use crate::args::ServeArgs;
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};

pub fn run(ctx: &Ctx, args: &ServeArgs) -> anyhow::Result<ExitStatus> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    if tls.is_none() {
        ipseity_server::check_listen(args.listen, args.insecure_listen).map_err(|e| {
            CliError::input(
                "usage",
                format!("{e}; give --tls-cert and --tls-key, or pass --insecure-listen behind a TLS proxy"),
            )
        })?;
    }
    let _owner = OwnerLock::acquire(&ctx.data_dir)
        .map_err(|e| CliError::input("store_in_use", e.to_string()))?;
    // The owner lock is held first, so the embedded store is opened by its owner only.
    let store: Box<dyn Backend> = match &ctx.database {
        Some(url) => {
            Box::new(PgStore::open(url, &ctx.data_dir).context("opening the PostgreSQL store")?)
        }
        None => Box::new(
            Store::open(&ctx.data_dir)
                .with_context(|| format!("opening the store in {}", ctx.data_dir.display()))?,
        ),
    };
    let backend = store.backend_name();
    let policy = ctx.policy()?;
    let (finger_calibration, _) = super::finger::calibration(ctx)?;
    let face = Arc::new(ctx.capture_engine(!args.no_liveness)?);
    let documents = match &args.csca {
        Some(p) => {
            let (trust, _) = super::document::load_trust(p)?;
            let crl = match &args.crl {
                Some(c) => Some(crate::files::read_regular(
                    c,
                    super::document::MAX_CRL_BYTES,
                    "too_large",
                )?),
                None => None,
            };
            Some(Arc::new(ipseity_server::DocumentTrust { trust, crl }))
        }
        None => None,
    };
    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_heavy: if args.max_heavy == 0 {
            defaults.max_heavy
        } else {
            args.max_heavy
        },
        request_timeout: Duration::from_secs(args.request_timeout_s.max(1)),
        identify_budget_per_hour: args.identify_budget,
        ..defaults
    };
    let service = Service::new(
        store,
        Models {
            face: Some(face),
            point: policy.point,
            point_description: policy.report.to_string(),
            finger_calibration,
            check_liveness: !args.no_liveness,
            documents,
        },
        limits,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        ctx.out.note(&format!(
            "ipseity serve: listening on {scheme}://{addr} ({backend} store)"
        ));
        // Ready only once the galleries are in memory; /livez answers meanwhile.
        let loader = service.clone();
        tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            match loader.load_galleries() {
                Ok(()) => eprintln!(
                    "ipseity serve: galleries loaded in {:.2} s; ready",
                    start.elapsed().as_secs_f64()
                ),
                Err(e) => eprintln!("ipseity serve: loading the galleries failed: {e}"),
            }
        });
        match &tls {
            Some(files) => {
                ipseity_server::serve_tls(service, listener, files, shutdown_signal())
                    .await
                    .map_err(|e| match e {
                        ipseity_server::ServeError::Tls(_) => {
                            anyhow::Error::new(CliError::input("tls", e.to_string()))
                        }
                        e => e.into(),
                    })?;
            }
            None => ipseity_server::serve(service, listener, shutdown_signal()).await?,
        }
        ctx.out.note("ipseity serve: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitStatus::Success)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

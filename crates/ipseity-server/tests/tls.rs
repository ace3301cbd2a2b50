//! `serve_tls`: the API over TLS with a certificate the client trusts, nothing in clear
//! text on the same port, and a graceful stop.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;

use ipseity_core::OperatingPoint;
use ipseity_server::{serve_tls, Limits, Models, Service, TlsFiles};
use ipseity_store::Store;

fn service(dir: &std::path::Path) -> Arc<Service> {
    let store = Store::open(dir).unwrap();
    Service::new(
        Box::new(store),
        Models {
            face: None,
            point: OperatingPoint {
                fmr: f64::NAN,
                accept_at: 0.5,
                reject_below: 0.4,
            },
            point_description: "test".into(),
            finger_calibration: serde_json::from_str(include_str!(
                "../../ipseity-cli/src/commands/finger/builtin_calibration.json"
            ))
            .unwrap(),
            check_liveness: true,
            documents: None,
        },
        Limits::default(),
    )
}

fn get_tls(port: u16, root: &rustls::pki_types::CertificateDer<'static>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    // A peer that closes without close_notify still gave its whole response.
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_api_answers_over_tls_and_not_in_clear_text() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.key_pair.serialize_pem()).unwrap();
    let root = cert.cert.der().clone();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s = service(&dir.path().join("store"));
    let server = rt.spawn(async move {
        serve_tls(s, listener, &files, async {
            let _ = stop_rx.await;
        })
        .await
    });

    let resp = get_tls(port, &root);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );

    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}

#[test]
fn a_missing_or_bad_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (cert, key) in [("missing.pem", "missing.pem"), ("bad.pem", "bad.pem")] {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let files = TlsFiles {
            cert: dir.path().join(cert),
            key: dir.path().join(key),
        };
        let s = service(&dir.path().join("store"));
        let r = rt.block_on(serve_tls(s, listener, &files, std::future::pending()));
        assert!(
            matches!(r, Err(ipseity_server::ServeError::Tls(_))),
            "{cert}: {r:?}"
        );
    }
}

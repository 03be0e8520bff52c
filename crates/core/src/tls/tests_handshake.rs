//! Real handshakes, as the core sees them, against a TLS upstream on 127.0.0.1
//! (tokio-rustls): the private CA accepted and the platform roots alone refused (ETLS),
//! mTLS refused without a client certificate, and a rotation of the client certificate
//! through the reload task while the upstream switches to the new client CA, with a call
//! in flight on the old material.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::test_pki::{ca, leaf, tmpdir};
use super::ReloadReport;
use crate::breaker::http_client;
use crate::config::{Config, RawOptions, RawValue};
use crate::error::FailureKind;
use crate::http::HttpClient;
use crate::request::prepare;

fn certs(p: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(p)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca) {
                roots.add(c).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(
        b.with_single_cert(certs(cert), PrivateKeyDer::from_pem_file(key).unwrap())
            .unwrap(),
    )
}

/// An HTTPS upstream: one request per connection; `/slow` answers after 300 ms. Records
/// the client certificate (DER) each request came with; its config can be swapped.
struct Upstream {
    url: String,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    peers: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream(config: Arc<rustls::ServerConfig>) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", l.local_addr().unwrap().port());
    let config = Arc::new(Mutex::new(config));
    let peers = Arc::new(Mutex::new(Vec::new()));
    let (cfg, seen) = (config.clone(), peers.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg.lock().unwrap().clone());
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock().unwrap().push(peer);
                if buf.starts_with(b"GET /slow") {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Upstream {
        url,
        config,
        peers,
        task,
    }
}

fn tls_config(opts: &[(&str, &Path)]) -> crate::config::TlsConfig {
    let mut o = RawOptions::new();
    for (k, v) in opts {
        o.insert(k, RawValue::String(v.display().to_string()));
    }
    Config::resolve(&o, &|_| None).unwrap().tls
}

async fn get(c: &HttpClient, url: &str) -> Result<u16, FailureKind> {
    let req = prepare(None, url, None, &[], None).unwrap();
    c.send(&req, 1024)
        .await
        .map(|r| r.status.as_u16())
        .map_err(|f| f.kind)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_ca_is_accepted_and_platform_roots_alone_refused_as_etls() {
    let d = tmpdir("hs-ca");
    let server_ca = ca(&d, "server-ca");
    let server = leaf(&d, &server_ca, "server", "serverAuth", Some("IP:127.0.0.1"));
    let up = upstream(server_config(&server.0, &server.1, None)).await;
    let trusted = http_client(&tls_config(&[("caCert", &server_ca.0)]), None).unwrap();
    assert_eq!(get(&trusted, &format!("{}/a", up.url)).await, Ok(200));
    let platform = http_client(&crate::config::TlsConfig::default(), None).unwrap();
    assert_eq!(
        get(&platform, &format!("{}/a", up.url)).await,
        Err(FailureKind::Tls)
    );
    assert_eq!(FailureKind::Tls.code().as_str(), "ETLS");
    assert!(
        !FailureKind::Tls.is_transient(),
        "a refused certificate is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_rotation_swaps_the_client_certificate_and_keeps_calls_in_flight() {
    let d = tmpdir("hs-mtls");
    let server_ca = ca(&d, "server-ca");
    let server = leaf(&d, &server_ca, "server", "serverAuth", Some("IP:127.0.0.1"));
    let (ca_a, ca_b) = (ca(&d, "client-ca-a"), ca(&d, "client-ca-b"));
    let a = leaf(&d, &ca_a, "client-a", "clientAuth", None);
    let b = leaf(&d, &ca_b, "client-b", "clientAuth", None);
    let up = upstream(server_config(&server.0, &server.1, Some(&ca_a.0))).await;

    // Without a client certificate the upstream refuses the handshake. In TLS 1.3 the client
    // finishes its side first and sends the request; the server's alert then races the
    // reset its close sends (the request is unread), so either can arrive first (a loaded
    // CI machine saw the reset).
    let anonymous = http_client(&tls_config(&[("caCert", &server_ca.0)]), None).unwrap();
    let refused = get(&anonymous, &format!("{}/a", up.url)).await;
    assert!(
        matches!(
            refused,
            Err(FailureKind::Tls) | Err(FailureKind::ConnectionReset)
        ),
        "{refused:?}"
    );

    let (crt, key) = (d.join("tls.crt"), d.join("tls.key"));
    std::fs::copy(&a.0, &crt).unwrap();
    std::fs::copy(&a.1, &key).unwrap();
    let mut tls = tls_config(&[
        ("caCert", &server_ca.0),
        ("clientCert", &crt),
        ("clientKey", &key),
    ]);
    tls.reload = Duration::from_millis(20);
    let client = http_client(&tls, None).unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let stop = crate::CancellationToken::new();
    crate::breaker::watch_clients(
        &tokio::runtime::Handle::current(),
        &client,
        &tls,
        None,
        super::TlsMetrics::new(&crate::metrics::Series::new("tls-handshake-rotation")),
        stop.clone(),
        Box::new(move |x| r.lock().unwrap().push(x)),
    );
    assert_eq!(get(&client, &format!("{}/a", up.url)).await, Ok(200));
    let der_a = certs(&a.0)[0].to_vec();
    let der_b = certs(&b.0)[0].to_vec();
    assert_eq!(
        up.peers.lock().unwrap().last().unwrap().as_deref(),
        Some(&der_a[..])
    );

    // A call in flight on the old material while everything rotates.
    let (c2, slow) = (client.clone(), format!("{}/slow", up.url));
    let inflight = tokio::spawn(async move { get(&c2, &slow).await });
    until("the slow request", || up.peers.lock().unwrap().len() == 2).await;
    *up.config.lock().unwrap() = server_config(&server.0, &server.1, Some(&ca_b.0));
    for (from, to) in [(&b.1, &key), (&b.0, &crt)] {
        let tmp = d.join("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    until("the reload", || {
        reports.lock().unwrap().contains(&ReloadReport::Reloaded)
    })
    .await;
    assert_eq!(
        inflight.await.unwrap(),
        Ok(200),
        "the call in flight finished"
    );
    assert_eq!(get(&client, &format!("{}/b", up.url)).await, Ok(200));
    assert_eq!(
        up.peers.lock().unwrap().last().unwrap().as_deref(),
        Some(&der_b[..])
    );

    // A broken replacement: reported, and the new material stays in use.
    let n = reports.lock().unwrap().len();
    std::fs::write(d.join("tmp"), "not a certificate").unwrap();
    std::fs::rename(d.join("tmp"), &crt).unwrap();
    until("the failure", || reports.lock().unwrap().len() > n).await;
    assert!(matches!(
        reports.lock().unwrap().last(),
        Some(ReloadReport::Failed(_))
    ));
    assert_eq!(get(&client, &format!("{}/c", up.url)).await, Ok(200));
    assert_eq!(
        up.peers.lock().unwrap().last().unwrap().as_deref(),
        Some(&der_b[..])
    );
    stop.cancel();
}

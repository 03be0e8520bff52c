//! The rustls configuration of the upstream clients, built here and handed to reqwest
//! (`tls_backend_preconfigured`) rather than built by reqwest from its options, for two
//! reasons:
//!
//! - **Memory.** The server verifier is most of a client's size: on Linux the platform
//!   verifier reads and parses the system's root store (about 85 KB, and a few ms of disk
//!   and CPU) each time one is built, and reqwest built one per client, two clients per
//!   breaker. Here verifiers are shared by every client of the process that trusts the
//!   same roots ([`verifier`]): a breaker's two clients cost about 2 KB each on top.
//!   Held weakly by the cache, a verifier goes with the last client that uses it.
//! - **The client certificate is presented, not parsed.** rustls' `with_client_auth_cert`
//!   (what reqwest's `Identity` calls) parses the certificate with webpki, which refuses
//!   X.509 v1 (what `openssl x509 -req` without `-extfile` makes); servers accept them, and
//!   Node's https client presents them. The certificate and key are checked against each
//!   other in `identity.rs` instead, and given to rustls as they are.
//!
//! What this reproduces of reqwest's own rustls setup: the process's default crypto
//! provider (ring, installed by `http::client_builder`), protocol versions from
//! `tlsMinVersion`, the platform verifier with `caCert` as extra roots (or only `caCert`
//! with `caMode: 'only'`, or no verification with DNASTORE_TLS_INSECURE), SNI, and ALPN
//! h2 then http/1.1.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::Material;
use crate::config::{TlsConfig, TlsVersion};

/// Which roots a verifier trusts: what makes two verifiers interchangeable.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Roots {
    /// The platform's, plus these (DER) certificates.
    Platform(Vec<Vec<u8>>),
    /// Only these.
    Only(Vec<Vec<u8>>),
}

type Verifiers = HashMap<Roots, Weak<dyn ServerCertVerifier>>;

/// TLS sessions kept for resumption, eight per server: rustls' default (256) is 32 servers,
/// its map allocated for all of them up front, about 14 KB per breaker; a breaker talks
/// to its DNAStore (and perhaps a few more hosts).
const SESSIONS: usize = 32;

static VERIFIERS: LazyLock<Mutex<Verifiers>> = LazyLock::new(Mutex::default);

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The verifier for `roots`: the one already in use in this process, or a new one.
fn verifier(
    roots: Roots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    // Held while building, so that breakers created at once load the root store once.
    let mut cache = VERIFIERS.lock();
    if let Some(v) = cache.get(&roots).and_then(Weak::upgrade) {
        return Ok(v);
    }
    let der = |certs: &[Vec<u8>]| {
        certs
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect::<Vec<_>>()
    };
    let v: Arc<dyn ServerCertVerifier> = match &roots {
        Roots::Platform(extra) if extra.is_empty() => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|_| "could not load the platform's root certificates".to_string())?,
        ),
        Roots::Platform(extra) => Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(der(extra), provider.clone())
                .map_err(|_| "could not use caCert with the platform's roots".to_string())?,
        ),
        Roots::Only(certs) => {
            let mut store = rustls::RootCertStore::empty();
            for c in der(certs) {
                store.add(c).map_err(|_| {
                    "caCert holds a certificate that is not a usable CA".to_string()
                })?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider.clone(),
            )
            .build()
            .map_err(|_| "could not build a verifier from caCert".to_string())?
        }
    };
    cache.retain(|_, w| w.strong_count() > 0);
    cache.insert(roots, Arc::downgrade(&v));
    Ok(v)
}

/// How many distinct verifiers are alive in the process (tests: sharing, and release).
pub fn live_verifiers() -> usize {
    VERIFIERS
        .lock()
        .values()
        .filter(|w| w.strong_count() > 0)
        .count()
}

/// The rustls configuration for a client of `tls` with this material (`http::build_clients`
/// hands it to reqwest).
pub fn client_config(tls: &TlsConfig, m: &Material) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|_| "the crypto provider supports none of the TLS versions".to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure {
        Arc::new(Insecure(provider.clone()))
    } else {
        let ca: Vec<Vec<u8>> = m.ca.iter().map(|c| c.to_vec()).collect();
        let roots = if tls.ca_only && !ca.is_empty() {
            Roots::Only(ca)
        } else {
            Roots::Platform(ca)
        };
        verifier(roots, &provider)?
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match &m.identity {
        Some(id) => builder
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(id.clone()))),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS);
    Ok(cfg)
}

/// DNASTORE_TLS_INSECURE: any server certificate is accepted (reqwest's
/// `danger_accept_invalid_certs` does the same).
#[derive(Debug)]
struct Insecure(Arc<CryptoProvider>);

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

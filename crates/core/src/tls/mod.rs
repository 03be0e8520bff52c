//! The upstream connection's TLS material (private CA, mTLS identity): reading and checking
//! it ([`load`]), the rustls configuration built from it ([`client_config`], verifiers
//! shared process-wide), and watching its files for a rotation (`reload.rs`), which hands
//! the new material to whoever uses it ([`Renew`]: the breaker renews its HTTP clients).
//! The settings themselves are plain data in the configuration (`config/tls.rs`); the
//! HTTP client (`http/`) never sees this module: the breaker builds one from the other.
//!
//! Certificate and key contents never appear in an error, a log line or a `Debug` print:
//! errors say which file and what is wrong with it.

mod client_config;
mod identity;
mod metrics;
mod reload;

use std::path::Path;
use std::sync::Arc;

pub use client_config::{client_config, live_verifiers};
pub use identity::subject_public_key_info;
pub use metrics::TlsMetrics;
#[cfg(test)]
use reload::stamp;
pub use reload::{spawn_reload, ReloadReport, Renew};

use crate::config::{PemSource, TlsConfig, TlsInput};

/// A load failure: which input, and what is wrong (never the content).
#[derive(Clone, Debug)]
pub struct LoadError {
    pub which: TlsInput,
    pub message: String,
}

/// Parsed material, ready for a client.
#[derive(Clone)]
pub struct Material {
    ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    identity: Option<Arc<rustls::sign::CertifiedKey>>,
}

/// A PEM input's bytes: the file's (read now), or the inline text.
fn read(src: &PemSource) -> Result<Vec<u8>, String> {
    match src {
        PemSource::File(p) => {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {}", p.display(), e.kind()))
        }
        PemSource::Inline(t) => Ok(t.as_bytes().to_vec()),
    }
}

/// Reads and checks every input of `tls`.
pub fn load(tls: &TlsConfig) -> Result<Material, LoadError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |which, message| LoadError { which, message };
    let ca = match &tls.ca {
        None => Vec::new(),
        Some(src) => {
            let pem = read(src).map_err(|m| fail(TlsInput::Ca, m))?;
            if !matches!(crate::pem::certificates(&pem), Some(n) if n > 0) {
                return Err(fail(
                    TlsInput::Ca,
                    format!(
                        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        src.describe()
                    ),
                ));
            }
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    fail(
                        TlsInput::Ca,
                        format!("{} holds a certificate that does not parse", src.describe()),
                    )
                })?
        }
    };
    let identity = match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => {
            let cert = read(c).map_err(|m| fail(TlsInput::Cert, m))?;
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert).collect();
            let certs = certs.map_err(|_| {
                fail(
                    TlsInput::Cert,
                    format!("{} holds a PEM block that does not parse", c.describe()),
                )
            })?;
            if certs.is_empty() {
                return Err(fail(
                    TlsInput::Cert,
                    format!(
                        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        c.describe()
                    ),
                ));
            }
            let key = read(k).map_err(|m| fail(TlsInput::Key, m))?;
            let parsed = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
                fail(
                    TlsInput::Key,
                    format!(
                        "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                        k.describe()
                    ),
                )
            })?;
            // The key must belong to the certificate: a rotation caught between writing
            // the two files would otherwise fail every handshake.
            let id = identity::certified_key(certs, &parsed).map_err(|why| {
                let (which, what) = match why {
                    identity::Mismatch::KeyType => (
                        TlsInput::Key,
                        format!("{} holds a key type rustls cannot sign with", k.describe()),
                    ),
                    identity::Mismatch::Different => (
                        TlsInput::Key,
                        format!(
                            "{} does not match the certificate in {}",
                            k.describe(),
                            c.describe()
                        ),
                    ),
                    identity::Mismatch::Unreadable => (
                        TlsInput::Cert,
                        format!(
                            "{} holds a certificate whose public key cannot be read",
                            c.describe()
                        ),
                    ),
                };
                fail(which, what)
            })?;
            Some(id)
        }
        _ => None,
    };
    Ok(Material { ca, identity })
}

/// Startup warnings: verification off, a private key other users can read.
pub fn warnings(tls: &TlsConfig) -> Vec<String> {
    let mut w = Vec::new();
    if tls.insecure {
        w.push("DNASTORE_TLS_INSECURE=true: DNAStore's TLS certificate is NOT verified; anyone on the path can read and change calls (dnastore_tls_insecure is 1)".to_string());
    }
    if let Some(p) = tls.client_key.as_ref().and_then(PemSource::path) {
        if world_readable(p) {
            w.push(format!("the mTLS key file {} is readable by every user: chmod 600 it (or 640 with a group)", p.display()));
        }
    }
    w
}

#[cfg(unix)]
fn world_readable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // Through the symlink (kubelet's ..data links): the mode of the file itself.
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_: &Path) -> bool {
    false
}

#[cfg(test)]
pub(crate) mod test_pki;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_handshake;
#[cfg(test)]
mod tests_identity;

//! The upstream connection's TLS material (private CA, mTLS identity), its proxy, and the
//! reqwest client built from them; `reload.rs` swaps that client when the files rotate.
//!
//! Certificate and key contents never appear in an error, a log line or a `Debug` print:
//! errors say which file and what is wrong with it.

mod client_config;
mod identity;
mod reload;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use client_config::live_verifiers;
pub use identity::subject_public_key_info;
#[cfg(test)]
use reload::stamp;
pub use reload::{spawn_reload, ClientSlot, Clients, ReloadReport};

/// A PEM input: a file (re-read when it changes) or text given inline (fixed).
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(Arc<str>),
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "File({})", p.display()),
            PemSource::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

impl PemSource {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {}", p.display(), e.kind()))
            }
            PemSource::Inline(t) => Ok(t.as_bytes().to_vec()),
        }
    }

    /// What an error may call it.
    fn describe(&self) -> String {
        match self {
            PemSource::File(p) => p.display().to_string(),
            PemSource::Inline(_) => "the PEM text".into(),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            PemSource::File(p) => Some(p),
            PemSource::Inline(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    V12,
    V13,
}

/// How the upstream is reached.
#[derive(Clone, PartialEq, Eq)]
pub enum ProxyMode {
    /// Directly (the default: an inherited HTTPS_PROXY must not silently reroute calls).
    Off,
    /// Through this http:// proxy (CONNECT for https upstreams).
    Url(url::Url),
    /// From the proxy variables of the environment the breaker was given.
    Env {
        https: Option<url::Url>,
        http: Option<url::Url>,
        no_proxy: Option<String>,
    },
}

impl fmt::Debug for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proxy URLs may carry credentials: only the redacted form is ever printed.
        let r = |u: &Option<url::Url>| u.as_ref().map(crate::http::redact);
        match self {
            ProxyMode::Off => f.write_str("Off"),
            ProxyMode::Url(u) => write!(f, "Url({})", crate::http::redact(u)),
            ProxyMode::Env {
                https,
                http,
                no_proxy,
            } => write!(
                f,
                "Env {{ https: {:?}, http: {:?}, no_proxy: {no_proxy:?} }}",
                r(https),
                r(http)
            ),
        }
    }
}

/// The TLS and proxy settings, validated (`config/tls.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    pub ca: Option<PemSource>,
    /// The CA replaces the platform roots instead of adding to them.
    pub ca_only: bool,
    pub client_cert: Option<PemSource>,
    pub client_key: Option<PemSource>,
    /// Verified name (and SNI, Host) when baseUrl's host is an IP address.
    pub server_name: Option<String>,
    pub min_version: TlsVersion,
    /// How often the files are checked for a rotation; zero: never.
    pub reload: Duration,
    /// `DNASTORE_TLS_INSECURE=true`: certificates are not verified.
    pub insecure: bool,
    pub proxy: ProxyMode,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca: None,
            ca_only: false,
            client_cert: None,
            client_key: None,
            server_name: None,
            min_version: TlsVersion::V12,
            reload: Duration::from_secs(60),
            insecure: false,
            proxy: ProxyMode::Off,
        }
    }
}

/// Which input a load error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Ca,
    Cert,
    Key,
}

/// A load failure: which input, and what is wrong (never the content).
#[derive(Clone, Debug)]
pub struct LoadError {
    pub which: Which,
    pub message: String,
}

/// Parsed material, ready for a client.
#[derive(Clone)]
pub struct Material {
    ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    identity: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl TlsConfig {
    /// Reads and checks every input.
    pub fn load(&self) -> Result<Material, LoadError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let fail = |which, message| LoadError { which, message };
        let ca = match &self.ca {
            None => Vec::new(),
            Some(src) => {
                let pem = src.read().map_err(|m| fail(Which::Ca, m))?;
                if !matches!(pem_certificates(&pem), Some(n) if n > 0) {
                    return Err(fail(
                        Which::Ca,
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
                            Which::Ca,
                            format!("{} holds a certificate that does not parse", src.describe()),
                        )
                    })?
            }
        };
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                let cert = c.read().map_err(|m| fail(Which::Cert, m))?;
                let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert).collect();
                let certs = certs.map_err(|_| {
                    fail(
                        Which::Cert,
                        format!("{} holds a PEM block that does not parse", c.describe()),
                    )
                })?;
                if certs.is_empty() {
                    return Err(fail(
                        Which::Cert,
                        format!(
                            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            c.describe()
                        ),
                    ));
                }
                let key = k.read().map_err(|m| fail(Which::Key, m))?;
                let parsed = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
                    fail(
                        Which::Key,
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
                            Which::Key,
                            format!("{} holds a key type rustls cannot sign with", k.describe()),
                        ),
                        identity::Mismatch::Different => (
                            Which::Key,
                            format!(
                                "{} does not match the certificate in {}",
                                k.describe(),
                                c.describe()
                            ),
                        ),
                        identity::Mismatch::Unreadable => (
                            Which::Cert,
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

    /// The files to watch for a rotation.
    pub fn files(&self) -> Vec<&Path> {
        [&self.ca, &self.client_cert, &self.client_key]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(PemSource::path))
            .collect()
    }

    /// Startup warnings: verification off, a private key other users can read.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.insecure {
            w.push("DNASTORE_TLS_INSECURE=true: DNAStore's TLS certificate is NOT verified; anyone on the path can read and change calls (dnastore_tls_insecure is 1)".to_string());
        }
        if let Some(p) = self.client_key.as_ref().and_then(PemSource::path) {
            if world_readable(p) {
                w.push(format!("the mTLS key file {} is readable by every user: chmod 600 it (or 640 with a group)", p.display()));
            }
        }
        w
    }

    /// The clients of a `ClientSlot`: one per kind of thread that sends (see `ClientSlot`).
    /// They share one rustls config (its verifier, and its TLS session cache, which rustls
    /// allocates for 32 servers up front: ~15 KB a config).
    pub fn build_clients(
        &self,
        m: Material,
        base: Option<&url::Url>,
    ) -> Result<super::tls::Clients, String> {
        let tls = self.client_config(&m)?;
        let runtime = self.build_client(tls.clone(), base)?;
        let own = self.build_client(tls, base)?;
        Ok([Arc::new(runtime), Arc::new(own)])
    }

    /// A client with this rustls config (`client_config`) on the `client_builder` base:
    /// redirects, pool, no proxy unless configured.
    pub fn build_client(
        &self,
        tls: rustls::ClientConfig,
        base: Option<&url::Url>,
    ) -> Result<reqwest::Client, String> {
        let mut b = crate::http::client_builder().tls_backend_preconfigured(tls);
        if let (Some(name), Some(base)) = (&self.server_name, base) {
            if let Some(ip) = base_ip(base) {
                // Port 0: the URL's port is used.
                b = b.resolve(name, std::net::SocketAddr::new(ip, 0));
            }
        }
        // reqwest's errors may embed a proxy URL: never shown.
        let bad_proxy = |_| "the proxy URL was refused by the HTTP client".to_string();
        match &self.proxy {
            ProxyMode::Off => {}
            ProxyMode::Url(u) => b = b.proxy(reqwest::Proxy::all(u.as_str()).map_err(bad_proxy)?),
            ProxyMode::Env {
                https,
                http,
                no_proxy,
            } => {
                let np = || no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
                if let Some(u) = https {
                    b = b.proxy(
                        reqwest::Proxy::https(u.as_str())
                            .map_err(bad_proxy)?
                            .no_proxy(np()),
                    );
                }
                if let Some(u) = http {
                    b = b.proxy(
                        reqwest::Proxy::http(u.as_str())
                            .map_err(bad_proxy)?
                            .no_proxy(np()),
                    );
                }
            }
        }
        b.build()
            .map_err(|_| "could not build the HTTP client with this TLS material".to_string())
    }
}

/// The certificates a PEM bundle holds; `None` when a block does not parse. Shared with
/// the Redis CA file (`redis::read_ca_file`).
pub fn pem_certificates(pem: &[u8]) -> Option<usize> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, c| c.map(|_| n + 1))
        .ok()
}

/// The IP of an https base URL, when it is one (what `tlsServerName` renames).
pub fn base_ip(base: &url::Url) -> Option<std::net::IpAddr> {
    match base.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
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

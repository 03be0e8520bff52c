//! TLS and proxy settings of the upstream connection, as plain data (their specs are listed
//! in the one table in `mod.rs`; declared here beside their parser). Nothing is read here:
//! the files are loaded when a breaker is built (`breaker/files.rs` calls `tls::load`), and
//! a bad one fails `createBreaker` with its option's name ([`Origin`]) and never its content.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::resolver::{err, key_of, Origin, Resolver};
use super::{spec, ConfigError, StrSpec};

pub const CA_CERT: StrSpec = StrSpec {
    option: "caCert",
    env: &["DNASTORE_CA_CERT"],
    default: None,
    secret: false,
    doc: "CA certificate(s) that verify DNAStore's TLS certificate: a PEM file path (re-read on rotation) or PEM text; added to the platform roots unless caMode is only.",
};
pub const CA_MODE: StrSpec = StrSpec {
    option: "caMode",
    env: &["DNASTORE_CA_MODE"],
    default: Some("add"),
    secret: false,
    doc: "add: caCert is trusted besides the platform roots; only: caCert replaces them (a certificate from a public CA is then refused).",
};
pub const CLIENT_CERT: StrSpec = StrSpec {
    option: "clientCert",
    env: &["DNASTORE_CLIENT_CERT"],
    default: None,
    secret: false,
    doc: "mTLS client certificate chain: a PEM file path (re-read on rotation) or PEM text; needs clientKey.",
};
pub const CLIENT_KEY: StrSpec = StrSpec {
    option: "clientKey",
    env: &["DNASTORE_CLIENT_KEY"],
    default: None,
    secret: true,
    doc: "mTLS private key (PKCS#8, PKCS#1 or SEC1 PEM): a file path (re-read on rotation; warned about when world-readable) or PEM text; needs clientCert.",
};
pub const TLS_SERVER_NAME: StrSpec = StrSpec {
    option: "tlsServerName",
    env: &["DNASTORE_TLS_SERVER_NAME"],
    default: None,
    secret: false,
    doc: "When baseUrl's host is an IP address: the DNS name DNAStore's certificate is verified against and sent as SNI and Host (the connection still goes to the IP).",
};
pub const TLS_MIN_VERSION: StrSpec = StrSpec {
    option: "tlsMinVersion",
    env: &["DNASTORE_TLS_MIN_VERSION"],
    default: Some("1.2"),
    secret: false,
    doc: "Lowest TLS version offered: 1.2 or 1.3.",
};
pub const PROXY: StrSpec = StrSpec {
    option: "proxy",
    env: &["DNASTORE_PROXY"],
    default: Some("off"),
    secret: true,
    doc: "off (connect directly); an http:// proxy URL (credentials in it are kept secret); or env: HTTPS_PROXY / HTTP_PROXY / NO_PROXY as reqwest reads them.",
};

/// A PEM input: a file (read when a breaker is built, and again when it changes) or text
/// given inline (fixed).
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
    /// What an error may call it.
    pub fn describe(&self) -> String {
        match self {
            PemSource::File(p) => p.display().to_string(),
            PemSource::Inline(_) => "the PEM text".into(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
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
        let r = |u: &Option<url::Url>| u.as_ref().map(crate::text::redact);
        match self {
            ProxyMode::Off => f.write_str("Off"),
            ProxyMode::Url(u) => write!(f, "Url({})", crate::text::redact(u)),
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

/// The TLS and proxy settings, validated. The files they name are read by `tls::load`.
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

impl TlsConfig {
    /// The files to watch for a rotation.
    pub fn files(&self) -> Vec<&Path> {
        [&self.ca, &self.client_cert, &self.client_key]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(PemSource::path))
            .collect()
    }
}

/// One of the TLS inputs (what a load error is about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsInput {
    Ca,
    Cert,
    Key,
}

/// The IP of an https base URL, when it is one (what `tlsServerName` renames).
pub fn base_ip(base: &url::Url) -> Option<std::net::IpAddr> {
    match base.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// The only way to turn certificate verification off: an environment variable, never an
/// option, so code cannot ship with it; warned about at startup and exposed as a gauge.
pub const TLS_INSECURE_ENV: &str = "DNASTORE_TLS_INSECURE";

/// The proxy variables `proxy: env` reads (upper case wins, as in curl).
pub const PROXY_ENV_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

impl Resolver<'_> {
    /// A PEM path or inline PEM text.
    fn pem(&self, s: &StrSpec) -> Result<Option<(PemSource, String)>, ConfigError> {
        Ok(self.string(s)?.map(|(raw, src)| (pem_source(&raw), src)))
    }

    /// The settings, and where the three PEM inputs came from (for errors reading them).
    pub(super) fn tls(
        &self,
        base_url: Option<&url::Url>,
    ) -> Result<(TlsConfig, [Option<Origin>; 3]), ConfigError> {
        let ca = self.pem(&CA_CERT)?;
        let (mode, mode_src) = self.string(&CA_MODE)?.expect("caMode has a default");
        let ca_only = match mode.trim() {
            "add" => false,
            "only" => true,
            _ => {
                return Err(err(
                    key_of(&CA_MODE, &mode_src),
                    format!("invalid {mode_src}: must be add or only"),
                ))
            }
        };
        if ca_only && ca.is_none() {
            return Err(err(
                key_of(&CA_MODE, &mode_src),
                format!("invalid {mode_src}: only needs caCert (DNASTORE_CA_CERT)"),
            ));
        }
        let cert = self.pem(&CLIENT_CERT)?;
        let key = self.pem(&CLIENT_KEY)?;
        if cert.is_some() != key.is_some() {
            let (missing, (given, src)) = match (&cert, &key) {
                (Some((_, src)), _) => (&CLIENT_KEY, (&CLIENT_CERT, src)),
                (_, Some((_, src))) => (&CLIENT_CERT, (&CLIENT_KEY, src)),
                (None, None) => unreachable!("one of them is set"),
            };
            return Err(err(
                key_of(given, src),
                format!(
                    "invalid {src}: mTLS needs both clientCert and clientKey; {} ({}) is missing",
                    missing.option, missing.env[0]
                ),
            ));
        }
        let (v, v_src) = self.string(&TLS_MIN_VERSION)?.expect("has a default");
        let min_version = match v.trim() {
            "1.2" => TlsVersion::V12,
            "1.3" => TlsVersion::V13,
            _ => {
                return Err(err(
                    key_of(&TLS_MIN_VERSION, &v_src),
                    format!("invalid {v_src}: must be 1.2 or 1.3"),
                ))
            }
        };
        let server_name = match self.string(&TLS_SERVER_NAME)? {
            None => None,
            Some((name, src)) => {
                let key = key_of(&TLS_SERVER_NAME, &src);
                let name = name.trim().to_ascii_lowercase();
                if rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
                    || name.parse::<std::net::IpAddr>().is_ok()
                {
                    return Err(err(key, format!("invalid {src}: must be a DNS name")));
                }
                let ip_base = base_url.is_some_and(|u| {
                    u.scheme() == "https"
                        && matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
                });
                if !ip_base {
                    return Err(err(key, format!("invalid {src}: needs an https baseUrl whose host is an IP address (with a DNS name, connect by that name)")));
                }
                Some(name)
            }
        };
        let insecure = match (self.env)(TLS_INSECURE_ENV).filter(|v| !v.trim().is_empty()) {
            None => false,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(err(
                        TLS_INSECURE_ENV,
                        format!(
                        "invalid environment variable {TLS_INSECURE_ENV}: must be true or false"
                    ),
                    ))
                }
            },
        };
        let proxy = self.proxy()?;
        let tls = TlsConfig {
            ca: ca.as_ref().map(|(p, _)| p.clone()),
            ca_only,
            client_cert: cert.as_ref().map(|(p, _)| p.clone()),
            client_key: key.as_ref().map(|(p, _)| p.clone()),
            server_name,
            min_version,
            reload: Duration::from_millis(self.int(&spec::tls_reload)?),
            insecure,
            proxy,
        };
        let origins = [(&CA_CERT, ca), (&CLIENT_CERT, cert), (&CLIENT_KEY, key)]
            .map(|(s, given)| given.map(|(_, src)| Origin::of(s, &src)));
        Ok((tls, origins))
    }

    fn proxy(&self) -> Result<ProxyMode, ConfigError> {
        let (raw, src) = self.string(&PROXY)?.expect("proxy has a default");
        let key = key_of(&PROXY, &src);
        match raw.trim() {
            "off" => Ok(ProxyMode::Off),
            "env" => {
                let get = |names: &[&str]| {
                    names
                        .iter()
                        .find_map(|n| (self.env)(n).filter(|v| !v.trim().is_empty()))
                };
                let parse =
                    |v: Option<String>, var: &str| -> Result<Option<url::Url>, ConfigError> {
                        v.map(|v| {
                            proxy_url(&v).map_err(|why| {
                                err(
                                    var,
                                    format!(
                                    "invalid environment variable {var} (for proxy: env): {why}"
                                ),
                                )
                            })
                        })
                        .transpose()
                    };
                Ok(ProxyMode::Env {
                    https: parse(get(&PROXY_ENV_VARS[0..2]), "HTTPS_PROXY")?,
                    http: parse(get(&PROXY_ENV_VARS[2..4]), "HTTP_PROXY")?,
                    no_proxy: get(&PROXY_ENV_VARS[4..6]),
                })
            }
            // The value is never echoed: it may hold a password.
            other => proxy_url(other).map(ProxyMode::Url).map_err(|why| {
                err(
                    key,
                    format!("invalid {src}: {why}; must be off, env or an http:// proxy URL"),
                )
            }),
        }
    }
}

/// A PEM setting's value: inline PEM text, or else a file path.
pub(super) fn pem_source(raw: &str) -> PemSource {
    if raw.trim_start().starts_with("-----BEGIN") {
        PemSource::Inline(Arc::from(raw))
    } else {
        PemSource::File(PathBuf::from(raw))
    }
}

/// Parses a proxy URL; the error never repeats it.
fn proxy_url(raw: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    // The scheme is not echoed either: `user:password@host` parses with `user` as one.
    if u.scheme() != "http" {
        return Err("only an http:// proxy is supported (it tunnels https with CONNECT)".into());
    }
    if u.host().is_none() {
        return Err("no host".into());
    }
    Ok(u)
}

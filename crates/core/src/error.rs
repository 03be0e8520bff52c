//! Failure classification and the stable error codes JS code switches on.
//!
//! Every way a call can end maps to exactly one [`Code`]; the strings are part of the
//! public API (documented in the README) and never change meaning.

use std::fmt;

/// Why an attempt failed in a way that counts against the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The attempt did not finish within its timeout (headers and body included).
    Timeout,
    /// TCP connect refused: nothing listens on the upstream port.
    ConnectionRefused,
    /// The connection broke after it was made (reset, closed mid-response).
    ConnectionReset,
    /// The upstream's host name did not resolve.
    Dns,
    /// Any other connect-phase or protocol failure.
    Connection,
    /// The TLS handshake failed: the upstream's certificate is not trusted (CA, name,
    /// expiry), or it refused ours (mTLS). Deterministic: not retried.
    Tls,
    /// The upstream answered 5xx or 408.
    Upstream,
    /// The upstream answered 429.
    RateLimited,
    /// A 2xx whose body claims JSON but does not parse: the upstream is broken.
    BadBody,
    /// The body exceeded `maxResponseBytes`.
    TooLarge,
}

impl FailureKind {
    pub const ALL: [FailureKind; 10] = [
        FailureKind::Timeout,
        FailureKind::ConnectionRefused,
        FailureKind::ConnectionReset,
        FailureKind::Dns,
        FailureKind::Connection,
        FailureKind::Tls,
        FailureKind::Upstream,
        FailureKind::RateLimited,
        FailureKind::BadBody,
        FailureKind::TooLarge,
    ];

    pub fn code(self) -> Code {
        match self {
            FailureKind::Timeout => Code::Timeout,
            FailureKind::ConnectionRefused => Code::ConnRefused,
            FailureKind::ConnectionReset => Code::ConnReset,
            FailureKind::Dns => Code::NotFound,
            FailureKind::Connection => Code::Connection,
            FailureKind::Tls => Code::Tls,
            FailureKind::Upstream => Code::Upstream,
            FailureKind::RateLimited => Code::RateLimited,
            FailureKind::BadBody => Code::BadBody,
            FailureKind::TooLarge => Code::TooLarge,
        }
    }

    /// Transient failures worth another attempt. A malformed or oversized body is
    /// deterministic: asking again returns the same bytes; so is a certificate refused
    /// (the next handshake, milliseconds later, meets the same certificate).
    pub fn is_transient(self) -> bool {
        !matches!(
            self,
            FailureKind::BadBody | FailureKind::TooLarge | FailureKind::Tls
        )
    }

    /// Bounded label value for `dnastore_retries_total{reason}` and
    /// `dnastore_requests_total{outcome}`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::ConnectionReset => "connection_reset",
            FailureKind::Dns => "dns",
            FailureKind::Connection => "connection_error",
            FailureKind::Tls => "tls_error",
            FailureKind::Upstream => "upstream_error",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::BadBody => "bad_body",
            FailureKind::TooLarge => "too_large",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Stable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The breaker is open (or half-open with every trial slot taken).
    OpenBreaker,
    Timeout,
    ConnRefused,
    ConnReset,
    NotFound,
    Connection,
    Tls,
    Upstream,
    RateLimited,
    BadBody,
    TooLarge,
    /// A durable write queued without a live attempt: an older write of its ordering key
    /// is still queued, and this one must not overtake it.
    Ordered,
    /// The bulkhead refused the call (`maxConcurrent` calls in flight, and no queue place
    /// or no slot within `queueTimeoutMs`): nothing was sent to DNAStore, so a write is safe
    /// to retry or queue. Resolves with the fallback; not a breaker failure.
    Concurrency,
    /// A 4xx other than 408/429: the caller's mistake. Rejects; not a breaker failure.
    Http,
    /// The caller's AbortSignal fired. Rejects; not a breaker failure.
    Aborted,
    /// Bad input from the caller (URL, header, method, body type). Rejects before any I/O.
    Invalid,
    /// fire() after shutdown(). Rejects.
    Shutdown,
    /// A bug inside the addon (a caught panic). Rejects.
    Internal,
    /// A bad option or environment variable (thrown by createBreaker).
    Config,
}

impl Code {
    /// Every code, for the binding's `errorCodes()`.
    pub const ALL: [Code; 19] = [
        Code::OpenBreaker,
        Code::Timeout,
        Code::ConnRefused,
        Code::ConnReset,
        Code::NotFound,
        Code::Connection,
        Code::Tls,
        Code::Upstream,
        Code::RateLimited,
        Code::BadBody,
        Code::TooLarge,
        Code::Ordered,
        Code::Concurrency,
        Code::Http,
        Code::Aborted,
        Code::Invalid,
        Code::Shutdown,
        Code::Internal,
        Code::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::OpenBreaker => "EOPENBREAKER",
            Code::Timeout => "ETIMEDOUT",
            Code::ConnRefused => "ECONNREFUSED",
            Code::ConnReset => "ECONNRESET",
            Code::NotFound => "ENOTFOUND",
            Code::Connection => "ECONNECTION",
            Code::Tls => "ETLS",
            Code::Upstream => "EUPSTREAM",
            Code::RateLimited => "ERATELIMITED",
            Code::BadBody => "EBADBODY",
            Code::TooLarge => "ETOOLARGE",
            Code::Ordered => "EORDERED",
            Code::Concurrency => "ECONCURRENCY",
            Code::Http => "EHTTP",
            Code::Aborted => "EABORTED",
            Code::Invalid => "EINVALID",
            Code::Shutdown => "ESHUTDOWN",
            Code::Internal => "EINTERNAL",
            Code::Config => "ECONFIG",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that rejects the caller's Promise (as opposed to a fallback, which resolves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub code: Code,
    pub message: String,
}

impl CallError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::Invalid, message)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CallError {}

/// A handshake failure: rustls' error, bare or inside io::Errors (hyper-util wraps the
/// connector's io::Error in another; an io::Error's `source()` skips the error it wraps,
/// so the wrapped ones are opened here).
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_tls(inner),
        None => false,
    }
}

/// Classifies a reqwest error by walking its source chain. reqwest's own Display is never
/// shown to users: it embeds the URL, which may carry credentials.
pub fn classify_transport(err: &reqwest::Error) -> FailureKind {
    if err.is_timeout() {
        return FailureKind::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut saw_dns = false;
    while let Some(e) = source {
        if is_tls(e) {
            return FailureKind::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return FailureKind::ConnectionRefused,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                    return FailureKind::ConnectionReset
                }
                TimedOut => return FailureKind::Timeout,
                _ => {}
            }
        }
        if e.to_string().contains("dns error") {
            saw_dns = true;
        }
        source = e.source();
    }
    if saw_dns {
        FailureKind::Dns
    } else if err.is_connect() {
        FailureKind::Connection
    } else if err.is_request() || err.is_body() || err.is_decode() {
        // The connection was made and then broke mid-exchange (hyper reports an
        // incomplete message or a closed channel rather than an io::Error).
        FailureKind::ConnectionReset
    } else {
        FailureKind::Connection
    }
}

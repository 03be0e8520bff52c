//! The HTTP client: request validation, one attempt with a body-size limit, and response
//! classification. Timeouts and cancellation wrap `send` from outside: dropping the
//! future drops that attempt's connection and nothing else.

use std::sync::Once;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use url::Url;

use crate::config::printable;
use crate::error::{classify_transport, CallError, FailureKind};

/// A validated request, ready to send (possibly several times).
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

impl PreparedRequest {
    /// `scheme://host:port/path` without credentials or query, for messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }
}

/// A URL as it may appear in logs and errors: no userinfo, no query, no fragment.
pub fn redact(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{}:{}{}", url.scheme(), host, p, url.path()),
        None => format!("{}://{}{}", url.scheme(), host, url.path()),
    }
}

/// Most header fields one request may carry. The http crate panics beyond 32,768 (a
/// `HeaderMap` cannot grow further); real servers refuse far fewer (nginx and Node: about
/// 8-16 KiB of headers in all). Checked before anything is built.
pub const MAX_HEADERS: usize = 1000;
/// Most bytes of header names and values one request may carry.
pub const MAX_HEADER_BYTES: usize = 256 * 1024;

/// `init.method`, upper-cased; GET when absent.
pub fn parse_method(method: Option<&str>) -> Result<Method, CallError> {
    match method {
        None => Ok(Method::GET),
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| CallError::invalid(format!("invalid HTTP method {}", printable(m)))),
    }
}

/// Validates and resolves a fire() request. `url` is absolute or a path against `base`.
pub fn prepare(
    base: Option<&Url>,
    url: &str,
    method: Option<&str>,
    headers: &[(String, String)],
    body: Option<Bytes>,
) -> Result<PreparedRequest, CallError> {
    let url = match Url::parse(url) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => {
                let u = b.join(url).map_err(|e| CallError::invalid(format!("cannot resolve the path against baseUrl: {e}")))?;
                // `//host/x` (or `\\host/x`) is relative too, and resolves to another host:
                // a path built from user input must not send the call (and its headers)
                // off the configured upstream.
                if u.origin() != b.origin() {
                    return Err(CallError::invalid(
                        "a relative URL must stay on baseUrl's origin (it began with // or \\\\); pass an absolute URL to reach another host",
                    ));
                }
                u
            }
            None => {
                return Err(CallError::invalid(
                    "a relative URL needs the baseUrl option (or DNASTORE_URL); pass an absolute URL otherwise",
                ))
            }
        },
        Err(e) => return Err(CallError::invalid(format!("invalid URL: {e}"))),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(CallError::invalid(format!(
            "unsupported URL scheme {:?}: use http or https",
            url.scheme()
        )));
    }
    let method = parse_method(method)?;
    if body.is_some() && (method == Method::GET || method == Method::HEAD) {
        return Err(CallError::invalid(format!(
            "a {method} request cannot have a body"
        )));
    }
    if headers.len() > MAX_HEADERS {
        return Err(CallError::invalid(format!(
            "too many headers: {} (at most {MAX_HEADERS})",
            headers.len()
        )));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(CallError::invalid(format!(
            "headers too large: {bytes} bytes (at most {MAX_HEADER_BYTES})"
        )));
    }
    let mut map = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| CallError::invalid(format!("invalid header name {}", printable(k))))?;
        // The value is never echoed: it may be a credential.
        let value = HeaderValue::from_str(v).map_err(|_| {
            CallError::invalid(format!("invalid value for header {}", printable(k)))
        })?;
        map.append(name, value);
    }
    Ok(PreparedRequest {
        method,
        url,
        headers: map,
        body,
    })
}

/// A response as read: status, headers, the whole body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn is_json(&self) -> bool {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false)
    }
}

/// Why one attempt failed, with what the retry policy needs to know.
#[derive(Clone, Debug)]
pub struct AttemptFailure {
    pub kind: FailureKind,
    pub status: Option<u16>,
    pub retry_after: Option<String>,
}

impl AttemptFailure {
    pub fn of(kind: FailureKind) -> Self {
        Self {
            kind,
            status: None,
            retry_after: None,
        }
    }
}

/// How a status code counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    ClientError,
    Failure(FailureKind),
}

pub fn classify_status(s: StatusCode) -> StatusClass {
    match s.as_u16() {
        200..=299 => StatusClass::Success,
        408 => StatusClass::Failure(FailureKind::Upstream),
        429 => StatusClass::Failure(FailureKind::RateLimited),
        500..=599 => StatusClass::Failure(FailureKind::Upstream),
        // 1xx/3xx that reach us (same-origin redirects are followed, see `client_builder`)
        // and other 4xx: the upstream answered; the request was wrong.
        _ => StatusClass::ClientError,
    }
}

#[derive(Clone)]
pub struct HttpClient {
    /// The current client; swapped when the TLS files rotate (`tls::spawn_reload`).
    slot: crate::tls::ClientSlot,
    /// `tlsServerName`: (baseUrl's IP host as the URL spells it, the name used instead).
    rename: Option<(String, String)>,
}

static CRYPTO: Once = Once::new();

/// Body bytes read between two `own_runtime::yield_to_host` (~0.1 ms of copying).
const YIELD_EVERY_BYTES: usize = 256 * 1024;

/// Redirect hops followed within the upstream's origin.
const MAX_REDIRECTS: usize = 5;

/// Follows a redirect only within the origin of the request that got it: a resilience client
/// talks to the upstream it was given, and a redirect elsewhere would carry the caller's
/// headers (tenant, signing or API keys that reqwest does not know to strip) to another
/// host. The 3xx is then answered as the upstream's response (EHTTP).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The reqwest configuration of every breaker (also the bench's bare-reqwest ceiling, so
/// the two always measure the same client).
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built with rustls but no provider; install ring once per process.
    // An Err means another part of the process installed one first: that one is used.
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        // Proxies from the environment would silently reroute the upstream; a
        // resilience client must talk to the address it was given.
        .no_proxy()
        .redirect(same_origin_redirects())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
}

impl HttpClient {
    /// A client with the configured TLS material and proxy (validated by `Config::resolve`,
    /// so a failure here is a file changed since).
    pub fn new(tls: &crate::tls::TlsConfig, base: Option<&Url>) -> Result<Self, CallError> {
        let config = |m: String| CallError::new(crate::error::Code::Config, m);
        let material = tls.load().map_err(|e| config(e.message))?;
        let clients = tls.build_clients(material, base).map_err(config)?;
        let rename = match (&tls.server_name, base) {
            (Some(name), Some(b)) if crate::tls::base_ip(b).is_some() => {
                b.host_str().map(|h| (h.to_string(), name.clone()))
            }
            _ => None,
        };
        Ok(Self {
            slot: crate::tls::ClientSlot::new(clients),
            rename,
        })
    }

    /// The slot the reload task swaps.
    pub fn slot(&self) -> &crate::tls::ClientSlot {
        &self.slot
    }

    /// One attempt: send, then read the body up to `max_body` bytes.
    pub async fn send(
        &self,
        req: &PreparedRequest,
        max_body: u64,
    ) -> Result<RawResponse, AttemptFailure> {
        // The client of the moment, kept for this whole attempt (a rotation mid-call
        // swaps the slot, not this Arc). None once the breaker closed: an attempt racing
        // the close fails as a connection failure, and its call settles ESHUTDOWN anyway.
        let client = self
            .slot
            .current()
            .ok_or_else(|| AttemptFailure::of(FailureKind::Connection))?;
        let mut url = req.url.clone();
        if let Some((ip, name)) = &self.rename {
            // Connects to the IP anyway (`resolve`), verifies and sends SNI for the name.
            if url.host_str() == Some(ip.as_str()) && url.scheme() == "https" {
                let _ = url.set_host(Some(name));
            }
        }
        let mut builder = client
            .request(req.method.clone(), url)
            .headers(req.headers.clone());
        if let Some(b) = &req.body {
            builder = builder.body(b.clone());
        }
        let mut resp = builder
            .send()
            .await
            .map_err(|e| AttemptFailure::of(classify_transport(&e)))?;
        if resp.content_length().is_some_and(|n| n > max_body) {
            return Err(AttemptFailure::of(FailureKind::TooLarge));
        }
        let status = resp.status();
        let headers = std::mem::take(resp.headers_mut());
        let mut buf =
            BytesMut::with_capacity(resp.content_length().unwrap_or(0).min(64 * 1024) as usize);
        let mut since_yield = 0;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() as u64 + chunk.len() as u64 > max_body {
                        return Err(AttemptFailure::of(FailureKind::TooLarge));
                    }
                    buf.extend_from_slice(&chunk);
                    // On a JS thread (own_runtime): a large body that arrives faster than
                    // it is read would otherwise be read in one go.
                    since_yield += chunk.len();
                    if since_yield >= YIELD_EVERY_BYTES {
                        since_yield = 0;
                        crate::own_runtime::yield_to_host().await;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(AttemptFailure::of(classify_transport(&e))),
            }
        }
        Ok(RawResponse {
            status,
            headers,
            body: buf.freeze(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_need_a_base() {
        let base = Url::parse("http://127.0.0.1:9001/").unwrap();
        let r = prepare(Some(&base), "/api/sigils?x=1", None, &[], None).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:9001/api/sigils?x=1");
        assert_eq!(
            prepare(None, "/api", None, &[], None).unwrap_err().code,
            crate::Code::Invalid
        );
    }

    #[test]
    fn relative_paths_cannot_leave_the_base_origin() {
        let base = Url::parse("http://127.0.0.1:9001/api/").unwrap();
        for evil in [
            "//evil.example/x",
            "\\\\evil.example/x",
            "/\\evil.example/x",
            "//127.0.0.1:9002/x",
        ] {
            let e = prepare(Some(&base), evil, None, &[], None).unwrap_err();
            assert_eq!(e.code, crate::Code::Invalid, "{evil}");
            assert!(e.message.contains("origin"), "{}", e.message);
        }
        // Same origin, however spelled; and an absolute URL is the caller's explicit choice.
        for ok in ["//127.0.0.1:9001/x", "x/../y", "?q=1"] {
            let r = prepare(Some(&base), ok, None, &[], None).unwrap();
            assert_eq!(r.url.origin(), base.origin(), "{ok}");
        }
        assert!(prepare(Some(&base), "http://other.example/x", None, &[], None).is_ok());
    }

    #[test]
    fn bad_input_is_rejected_without_echoing_secrets() {
        let e = prepare(
            None,
            "http://x/",
            None,
            &[("authorization".into(), "Bearer s3cret\n".into())],
            None,
        )
        .unwrap_err();
        assert!(!e.message.contains("s3cret"));
        assert!(prepare(None, "ftp://x/", None, &[], None).is_err());
        assert!(prepare(None, "http://x/", Some("GE T"), &[], None).is_err());
        assert!(prepare(
            None,
            "http://x/",
            Some("get"),
            &[],
            Some(Bytes::from_static(b"x"))
        )
        .is_err());
        assert!(prepare(None, "http://[::1/", None, &[], None).is_err());
    }

    #[test]
    fn header_counts_past_the_http_crate_limit_are_invalid_not_a_panic() {
        let many: Vec<(String, String)> = (0..40_000)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect();
        let e = prepare(None, "http://x/", None, &many, None).unwrap_err();
        assert_eq!(e.code, crate::Code::Invalid);
        assert!(e.message.contains("too many headers"), "{}", e.message);
        let ok: Vec<(String, String)> = many[..MAX_HEADERS].to_vec();
        assert!(prepare(None, "http://x/", None, &ok, None).is_ok());
        let big = vec![("x-big".to_string(), "v".repeat(MAX_HEADER_BYTES))];
        assert!(prepare(None, "http://x/", None, &big, None).is_err());
    }

    #[test]
    fn invalid_names_and_methods_are_echoed_bounded_and_escaped() {
        let evil = format!("x\r\nset-cookie: a=b{}", "z".repeat(500));
        for e in [
            prepare(None, "http://x/", Some(&evil), &[], None).unwrap_err(),
            prepare(None, "http://x/", None, &[(evil.clone(), "v".into())], None).unwrap_err(),
        ] {
            assert!(
                !e.message.contains('\r') && !e.message.contains('\n'),
                "{}",
                e.message
            );
            assert!(e.message.contains("\\r\\n"), "escaped: {}", e.message);
            assert!(e.message.len() < 200, "bounded: {}", e.message.len());
        }
    }

    #[test]
    fn redaction_drops_userinfo_and_query() {
        let u = Url::parse("http://user:pw@127.0.0.1:81/a/b?token=secret").unwrap();
        assert_eq!(redact(&u), "http://127.0.0.1:81/a/b");
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify_status(StatusCode::OK), StatusClass::Success);
        assert_eq!(
            classify_status(StatusCode::NOT_FOUND),
            StatusClass::ClientError
        );
        assert_eq!(
            classify_status(StatusCode::REQUEST_TIMEOUT),
            StatusClass::Failure(FailureKind::Upstream)
        );
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS),
            StatusClass::Failure(FailureKind::RateLimited)
        );
        assert_eq!(
            classify_status(StatusCode::BAD_GATEWAY),
            StatusClass::Failure(FailureKind::Upstream)
        );
    }
}

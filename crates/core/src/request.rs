//! A fire() request as data: validated once ([`prepare`]), then sent as many times as the
//! retry policy allows, keyed by the cache, kept by the outbox. A foundation: the features
//! that read a request (http, lkg, outbox) share this type and import no one else for it.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use crate::error::CallError;
use crate::text::{printable, redact};

/// The header that lets the upstream de-duplicate a write sent more than once (a retry, a
/// delivery from the outbox).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

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
}

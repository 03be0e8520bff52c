//! The HTTP client: one attempt of a validated request (`request.rs`) with a body-size
//! limit, and response classification; its reqwest clients (`clients.rs`) are built from
//! the rustls configuration the breaker gets from `tls/`, and renewed when that rotates. Timeouts and cancellation wrap `send` from
//! outside: dropping the future drops that attempt's connection and nothing else.

mod clients;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use url::Url;

pub use clients::{build_clients, client_builder, ClientSlot, Clients};

use crate::config::{base_ip, TlsConfig};
use crate::error::{classify_transport, FailureKind};
use crate::request::PreparedRequest;

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
    /// The current clients; swapped when the TLS files rotate (the breaker renews them).
    slot: ClientSlot,
    /// `tlsServerName`: (baseUrl's IP host as the URL spells it, the name used instead).
    rename: Option<(String, String)>,
}

/// Body bytes read between two `own_runtime::yield_to_host` (~0.1 ms of copying).
const YIELD_EVERY_BYTES: usize = 256 * 1024;

impl HttpClient {
    /// A client sending with `clients` ([`build_clients`]) to the upstream of `tls` and
    /// `base` (`tlsServerName` renames an IP base URL's host).
    pub fn new(clients: Clients, tls: &TlsConfig, base: Option<&Url>) -> Self {
        let rename = match (&tls.server_name, base) {
            (Some(name), Some(b)) if base_ip(b).is_some() => {
                b.host_str().map(|h| (h.to_string(), name.clone()))
            }
            _ => None,
        };
        Self {
            slot: ClientSlot::new(clients),
            rename,
        }
    }

    /// The slot a TLS rotation swaps.
    pub fn slot(&self) -> &ClientSlot {
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

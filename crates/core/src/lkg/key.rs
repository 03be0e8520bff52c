//! Cache and coalescing keys: which request headers select a response.
//!
//! Safe by default: every request header splits the key unless it is known to carry no
//! identity (an allowlist: content negotiation, tracing, hop-by-hop). Credentials, cookies,
//! API keys, the tenant header and any header we do not know therefore always split it, so
//! one caller's response is never served to another, neither from the last-known-good
//! cache nor by coalescing identical in-flight GETs. `varyHeaders` adds allowlisted headers
//! back; `cacheIgnoreHeaders` removes unknown ones, never an identity header. The key is a
//! SHA-256, so no credential is kept in clear and the key has a fixed size.

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use crate::config::{LkgConfig, IDENTITY_HEADERS};
use crate::request::PreparedRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Request headers known to carry no identity: they do not split the key unless
/// `varyHeaders` names them. Content negotiation (the upstream says with `Vary` when it
/// matters, and entries honour it), tracing ids (different on every request: splitting on
/// them would end coalescing), and connection-level headers.
pub const NEUTRAL_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "b3",
    "baggage",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "keep-alive",
    "pragma",
    "priority",
    "sentry-trace",
    "te",
    "traceparent",
    "tracestate",
    "user-agent",
    "x-amzn-trace-id",
    "x-b3-flags",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-cloud-trace-context",
    "x-correlation-id",
    "x-request-id",
];

fn is_identity(name: &str) -> bool {
    IDENTITY_HEADERS.contains(&name)
}

fn is_neutral(name: &str) -> bool {
    NEUTRAL_HEADERS.binary_search(&name).is_ok()
}

/// Which request headers split the key, from the validated configuration.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    tenant: HeaderName,
    vary: Vec<HeaderName>,
    ignore: Vec<HeaderName>,
}

impl KeyPolicy {
    /// `cfg` was validated by `Config::resolve` (names are valid, lower-case, and
    /// `ignore_headers` holds no identity header).
    pub fn new(cfg: &LkgConfig) -> Self {
        let names = |v: &[String]| {
            v.iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect()
        };
        Self {
            tenant: HeaderName::from_bytes(cfg.tenant_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-tenant-id")),
            vary: names(&cfg.vary_headers),
            ignore: names(&cfg.ignore_headers),
        }
    }

    fn splits(&self, name: &HeaderName) -> bool {
        if *name == self.tenant || is_identity(name.as_str()) || self.vary.contains(name) {
            return true;
        }
        !(is_neutral(name.as_str()) || self.ignore.contains(name))
    }

    /// True when the request carries an identity header (its key is partitioned by it).
    pub fn has_identity(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(&self.tenant)
            || IDENTITY_HEADERS.iter().any(|h| headers.contains_key(*h))
    }

    /// Breaker name, method, URL (with query) and every header that splits the key, with all
    /// its values in order. Names are sorted, so the order headers were given in does not
    /// matter; everything is length-prefixed, so no two different sets hash alike.
    pub fn key(&self, breaker: &str, req: &PreparedRequest) -> CacheKey {
        let mut h = Sha256::new();
        for part in [
            breaker.as_bytes(),
            req.method.as_str().as_bytes(),
            req.url.as_str().as_bytes(),
        ] {
            put(&mut h, part);
        }
        let mut names: Vec<&HeaderName> = req.headers.keys().filter(|n| self.splits(n)).collect();
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        put_headers(&mut h, &names, &req.headers);
        CacheKey(h.finalize().into())
    }
}

fn put(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_be_bytes());
    h.update(part);
}

fn put_headers(h: &mut Sha256, names: &[&HeaderName], headers: &HeaderMap) {
    h.update((names.len() as u64).to_be_bytes());
    for name in names {
        put(h, name.as_str().as_bytes());
        let values = headers.get_all(*name);
        h.update((values.iter().count() as u64).to_be_bytes());
        for v in values {
            put(h, v.as_bytes());
        }
    }
}

/// The values `names` select in `headers` (absent and empty differ): a response's `Vary`
/// secondary key (RFC 9111 4.1). `names` are sorted and lower-case.
pub fn vary_digest(names: &[HeaderName], headers: &HeaderMap) -> [u8; 32] {
    let mut h = Sha256::new();
    let refs: Vec<&HeaderName> = names.iter().collect();
    put_headers(&mut h, &refs, headers);
    h.finalize().into()
}

/// The same header fields with the same values in the same order per field: what "the
/// identical request" means for a response that may not be shared otherwise.
pub fn same_headers(a: &HeaderMap, b: &HeaderMap) -> bool {
    a.keys_len() == b.keys_len()
        && a.keys()
            .all(|k| a.get_all(k).iter().eq(b.get_all(k).iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neutral_list_is_sorted_lower_case_and_disjoint_from_identity() {
        let mut sorted = NEUTRAL_HEADERS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, NEUTRAL_HEADERS, "binary_search needs it sorted");
        for n in NEUTRAL_HEADERS {
            assert_eq!(n.to_ascii_lowercase(), *n);
            assert!(!is_identity(n));
        }
    }
}

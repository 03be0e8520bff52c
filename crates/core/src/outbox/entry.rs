//! What the outbox keeps of a write, and how it is laid out at rest.
//!
//! Only what delivery needs: method, URL, the body and an allowlist of headers
//! (content-type, idempotency-key, the tenant header and the ones `outboxHeaders` names).
//! With a signing secret every entry carries an HMAC-SHA256 over its whole encoding, so a
//! file or stream entry changed by anyone without the secret is dead-lettered (`tampered`),
//! never sent.
//!
//! Layout (integers big-endian): `b'W'`, version `1`, created-at ms (u64), then
//! length-prefixed (u32) fields: id, method, URL, idempotency key, ordering key (empty:
//! none), header count (u32) and name/value pairs, body.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::Sha256;
use url::Url;

use crate::request::{PreparedRequest, IDEMPOTENCY_KEY};

const MAGIC: u8 = b'W';
const VERSION: u8 = 1;

/// A write as the outbox keeps it until it is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// UUIDv7: time-ordered, unique across replicas.
    pub id: String,
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub idempotency_key: String,
    /// Writes sharing it are delivered one at a time, in order.
    pub ordering_key: Option<String>,
    /// Wall-clock ms since the Unix epoch.
    pub created_at_ms: u64,
}

impl Write {
    /// The request delivery sends (the stored headers only).
    pub fn request(&self) -> PreparedRequest {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            headers.append(k.clone(), v.clone());
        }
        PreparedRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            body: (!self.body.is_empty() || self.method != Method::DELETE)
                .then(|| self.body.clone()),
        }
    }

    /// Bytes counted against `outboxMaxBytes`.
    pub fn size(&self) -> u64 {
        (self.url.as_str().len()
            + self.body.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len())
                .sum::<usize>()) as u64
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.size() as usize);
        out.extend_from_slice(&[MAGIC, VERSION]);
        out.extend_from_slice(&self.created_at_ms.to_be_bytes());
        for f in [
            self.id.as_bytes(),
            self.method.as_str().as_bytes(),
            self.url.as_str().as_bytes(),
            self.idempotency_key.as_bytes(),
            self.ordering_key.as_deref().unwrap_or("").as_bytes(),
        ] {
            field(&mut out, f);
        }
        out.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for (k, v) in &self.headers {
            field(&mut out, k.as_str().as_bytes());
            field(&mut out, v.as_bytes());
        }
        field(&mut out, &self.body);
        out
    }

    /// `None` for anything this version did not write.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        if r.take(2)? != [MAGIC, VERSION] {
            return None;
        }
        let created_at_ms = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let id = r.string()?;
        let method = Method::from_bytes(r.field()?).ok()?;
        let url = Url::parse(&r.string()?).ok()?;
        let idempotency_key = r.string()?;
        let ordering_key = Some(r.string()?).filter(|k| !k.is_empty());
        let n = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
        let mut headers = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let k = HeaderName::from_bytes(r.field()?).ok()?;
            let v = HeaderValue::from_bytes(r.field()?).ok()?;
            headers.push((k, v));
        }
        let body = Bytes::copy_from_slice(r.field()?);
        r.0.is_empty().then_some(Self {
            id,
            method,
            url,
            headers,
            body,
            idempotency_key,
            ordering_key,
            created_at_ms,
        })
    }

    /// HMAC-SHA256 of the encoding under `secret`.
    pub fn mac(encoded: &[u8], secret: &str) -> Option<[u8; 32]> {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
        m.update(b"dnastore-outbox-v1");
        m.update(encoded);
        Some(m.finalize().into_bytes().into())
    }

    /// True when `mac` authenticates `encoded` (always true without a secret).
    pub fn verify(encoded: &[u8], mac: Option<&[u8]>, secret: Option<&str>) -> bool {
        let Some(secret) = secret else { return true };
        let (Some(tag), Ok(mut m)) = (mac, Hmac::<Sha256>::new_from_slice(secret.as_bytes()))
        else {
            return false;
        };
        m.update(b"dnastore-outbox-v1");
        m.update(encoded);
        m.verify_slice(tag).is_ok()
    }
}

fn field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }
}

/// The request headers a queued write keeps: content-type, idempotency-key, the tenant
/// header and `extra` (`outboxHeaders`). Authorization and cookies only when named there.
pub fn kept_headers(
    req: &HeaderMap,
    tenant: &str,
    extra: &[String],
) -> Vec<(HeaderName, HeaderValue)> {
    req.iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k == "content-type"
                || k == IDEMPOTENCY_KEY
                || k == tenant
                || extra.iter().any(|e| e == k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write() -> Write {
        Write {
            id: "0190f5c4-7f0e-7000-8000-000000000001".into(),
            method: Method::POST,
            url: Url::parse("http://127.0.0.1:9/api/sigils?x=1").unwrap(),
            headers: vec![
                (
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("application/json"),
                ),
                (
                    HeaderName::from_static("idempotency-key"),
                    HeaderValue::from_static("k1"),
                ),
            ],
            body: Bytes::from_static(b"{\"a\":1}"),
            idempotency_key: "k1".into(),
            ordering_key: None,
            created_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trips_and_rejects_anything_else() {
        let w = write();
        let e = w.encode();
        assert_eq!(Write::decode(&e), Some(w.clone()));
        let keyed = Write {
            ordering_key: Some("http://127.0.0.1:9/api/sigils/1".into()),
            method: Method::PUT,
            ..w
        };
        assert_eq!(Write::decode(&keyed.encode()), Some(keyed));
        assert_eq!(Write::decode(&e[..e.len() - 1]), None, "cut short");
        assert_eq!(Write::decode(b"{\"not\":\"ours\"}"), None);
        let mut longer = e.clone();
        longer.push(0);
        assert_eq!(Write::decode(&longer), None, "trailing bytes");
    }

    #[test]
    fn a_changed_byte_fails_the_mac() {
        let e = write().encode();
        let mac = Write::mac(&e, "s").unwrap();
        assert!(Write::verify(&e, Some(&mac), Some("s")));
        assert!(!Write::verify(&e, Some(&mac), Some("other")));
        let mut t = e.clone();
        let last = t.len() - 2;
        t[last] ^= 1;
        assert!(!Write::verify(&t, Some(&mac), Some("s")));
        assert!(
            !Write::verify(&e, None, Some("s")),
            "unsigned while a secret is set"
        );
        assert!(Write::verify(&e, None, None), "no secret: nothing to check");
    }

    #[test]
    fn only_allowlisted_headers_are_kept() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("authorization", "Bearer secret"),
            ("cookie", "s=1"),
            ("x-tenant-id", "t1"),
            ("idempotency-key", "k"),
            ("x-trace", "1"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let names = |v: Vec<(HeaderName, HeaderValue)>| {
            let mut n: Vec<String> = v.into_iter().map(|(k, _)| k.to_string()).collect();
            n.sort();
            n
        };
        assert_eq!(
            names(kept_headers(&h, "x-tenant-id", &[])),
            ["content-type", "idempotency-key", "x-tenant-id"]
        );
        assert_eq!(
            names(kept_headers(&h, "x-tenant-id", &["authorization".into()])),
            [
                "authorization",
                "content-type",
                "idempotency-key",
                "x-tenant-id"
            ]
        );
    }
}

//! Cache keys: SHA-256 of everything that selects a response, so credentials and tenant
//! ids are never kept in clear and the key has a fixed size.

use sha2::{Digest, Sha256};

use crate::http::PreparedRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Breaker name, method, URL (with query) and the vary set: Authorization and the tenant header.
pub fn cache_key(breaker: &str, req: &PreparedRequest, tenant_header: &str) -> CacheKey {
    let mut h = Sha256::new();
    for part in [
        breaker.as_bytes(),
        req.method.as_str().as_bytes(),
        req.url.as_str().as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    for name in [http::header::AUTHORIZATION.as_str(), tenant_header] {
        // Length-prefixed; an absent header and an empty one differ.
        match req.headers.get(name) {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            None => h.update([0]),
        }
    }
    CacheKey(h.finalize().into())
}

//! Last-known-good cache: successful GET bodies, served only when the upstream fails or the
//! circuit is open (stale-if-error), never instead of a healthy upstream.
//!
//! Keys hash the breaker name, method, URL and every request header that may carry
//! identity (`key.rs`), so one user's or tenant's data is never served to another, and no
//! credential is stored in clear. Responses are stored as their `Cache-Control` and `Vary`
//! allow (`cacheability.rs`). Entries are bounded by count and bytes (LRU). With a signing
//! secret every entry carries an HMAC-SHA256 over key, stored-at time, vary key and body;
//! an entry that fails verification is dropped and counted, never served.

mod cacheability;
mod key;
mod metrics;
pub mod redis;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use lru::LruCache;
use parking_lot::Mutex;
use sha2::Sha256;

pub use cacheability::{Cacheability, Vary, VaryKey};
pub use key::{CacheKey, KeyPolicy, NEUTRAL_HEADERS};
pub use metrics::{LkgMetrics, Rejected};

use crate::config::LkgConfig;

type HmacSha256 = Hmac<Sha256>;

/// One cached response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub body: Bytes,
    pub json: bool,
    /// Wall-clock milliseconds since the Unix epoch when stored (shared across replicas).
    pub stored_at_ms: u64,
    /// The response's `Vary` secondary key: the entry answers only matching requests.
    pub vary: Option<VaryKey>,
    pub mac: Option<[u8; 32]>,
}

/// A served entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub body: Bytes,
    pub json: bool,
    pub age: Duration,
}

/// An entry and when it was last written to the shared Redis (0: never).
struct Slot {
    entry: Entry,
    shared_at_ms: u64,
}

/// What `store` did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Over the size limits (or the cache is off): not kept.
    Rejected,
    /// Kept; write it to the shared Redis too.
    Share,
    /// Kept; the shared copy of this key has the same body and is recent enough.
    Local,
}

/// A hot key's unchanged body is rewritten to Redis at most this often (and at least twice
/// per maxStale, the Redis TTL), instead of on every successful GET: other replicas then
/// read a copy at most this much older than ours.
const SHARE_REFRESH_MS: u64 = 1000;

#[derive(Default)]
struct Store {
    lru: Option<LruCache<CacheKey, Slot>>,
    bytes: u64,
}

pub struct LkgCache {
    cfg: LkgConfig,
    store: Mutex<Store>,
    metrics: Arc<LkgMetrics>,
}

impl LkgCache {
    /// None when the cache is disabled (`lkgMaxEntries` 0 or `lkgMaxBytes` 0).
    pub fn new(cfg: LkgConfig, metrics: Arc<LkgMetrics>) -> Option<Self> {
        NonZeroUsize::new(cfg.max_entries)?;
        if cfg.max_bytes == 0 {
            return None;
        }
        Some(Self {
            store: Mutex::new(Store {
                // Unbounded, the entry count enforced in `store`: `LruCache::new(cap)`
                // allocates its map for `cap` entries up front (~34 KB at the default
                // 1000), per breaker, before anything is cached (issue 25).
                lru: Some(LruCache::unbounded()),
                bytes: 0,
            }),
            cfg,
            metrics,
        })
    }

    pub fn config(&self) -> &LkgConfig {
        &self.cfg
    }

    pub fn is_empty(&self) -> bool {
        self.store.lock().lru.as_ref().is_none_or(|l| l.is_empty())
    }

    /// The HMAC over what selects and makes up an entry. An entry without a vary key hashes
    /// exactly as before vary keys existed, so signed entries already in Redis stay valid.
    fn hmac(&self, key: &CacheKey, e: &Entry) -> Option<HmacSha256> {
        let secret = self.cfg.signing_secret.as_ref()?;
        let mut m = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
        m.update(&key.0);
        m.update(&e.stored_at_ms.to_be_bytes());
        if let Some(v) = &e.vary {
            let names = v.names_csv();
            m.update(b"vary");
            m.update(&(names.len() as u64).to_be_bytes());
            m.update(names.as_bytes());
            m.update(&v.digest);
        }
        m.update(&e.body);
        Some(m)
    }

    fn verify(&self, key: &CacheKey, e: &Entry) -> bool {
        if self.cfg.signing_secret.is_none() {
            return true;
        }
        match (e.mac, self.hmac(key, e)) {
            (Some(tag), Some(m)) => m.verify_slice(&tag).is_ok(),
            _ => false,
        }
    }

    /// Builds a signed entry for `body` (also what is written to Redis).
    pub fn entry(
        &self,
        key: &CacheKey,
        body: Bytes,
        json: bool,
        now_ms: u64,
        vary: Option<VaryKey>,
    ) -> Entry {
        let mut e = Entry {
            body,
            json,
            stored_at_ms: now_ms,
            vary,
            mac: None,
        };
        e.mac = self.hmac(key, &e).map(|m| m.finalize().into_bytes().into());
        e
    }

    /// Stores a successful response, and says whether to share it through Redis: a changed
    /// body always, an unchanged one once its shared copy is `SHARE_REFRESH_MS` old; never
    /// when `shareable` is false (`Cache-Control: private`).
    pub fn store(&self, key: CacheKey, entry: Entry, shareable: bool) -> Stored {
        let size = entry.body.len() as u64;
        if size > self.cfg.max_entry_bytes || size > self.cfg.max_bytes {
            self.metrics.rejected(Rejected::TooLarge).inc();
            return Stored::Rejected;
        }
        let refresh = SHARE_REFRESH_MS.min(self.cfg.max_stale.as_millis() as u64 / 2);
        let mut s = self.store.lock();
        let Store { lru, bytes } = &mut *s;
        let Some(lru) = lru.as_mut() else {
            return Stored::Rejected;
        };
        let now = entry.stored_at_ms;
        let shared_at_ms = match lru.peek(&key) {
            Some(old)
                if old.entry.body == entry.body
                    && old.shared_at_ms > 0
                    && now < old.shared_at_ms.saturating_add(refresh) =>
            {
                old.shared_at_ms
            }
            _ => 0,
        };
        let outcome = if shared_at_ms > 0 || !shareable {
            Stored::Local
        } else {
            Stored::Share
        };
        let slot = Slot {
            entry,
            shared_at_ms: if shared_at_ms > 0 {
                shared_at_ms
            } else {
                now.max(1)
            },
        };
        let mut evicted = 0u64;
        if let Some((old_key, old)) = lru.push(key, slot) {
            let old = old.entry;
            *bytes -= old.body.len() as u64;
            if old_key != key {
                evicted += 1;
            }
        }
        *bytes += size;
        while *bytes > self.cfg.max_bytes || lru.len() > self.cfg.max_entries {
            match lru.pop_lru() {
                Some((_, old)) => {
                    *bytes -= old.entry.body.len() as u64;
                    evicted += 1;
                }
                None => break,
            }
        }
        let (len, b) = (lru.len(), *bytes);
        drop(s);
        self.metrics.evictions.inc_by(evicted);
        self.metrics.entries.set(len as i64);
        self.metrics.bytes.set(b as i64);
        outcome
    }

    /// The entry for `key` if it verifies, is younger than maxStale, and its vary key
    /// matches the `request` headers.
    pub fn lookup(&self, key: &CacheKey, now_ms: u64, request: &HeaderMap) -> Option<Hit> {
        let mut s = self.store.lock();
        let Store { lru, bytes } = &mut *s;
        let lru = lru.as_mut()?;
        let e = lru.get(key)?.entry.clone();
        if !self.verify(key, &e) {
            lru.pop(key);
            *bytes -= e.body.len() as u64;
            let (len, b) = (lru.len(), *bytes);
            drop(s);
            self.metrics.rejected(Rejected::Tampered).inc();
            self.metrics.entries.set(len as i64);
            self.metrics.bytes.set(b as i64);
            return None;
        }
        drop(s);
        self.fresh(e, now_ms, request)
    }

    /// Verifies an entry read from elsewhere (Redis) before it may be served or kept.
    pub fn accept_remote(
        &self,
        key: &CacheKey,
        e: Entry,
        now_ms: u64,
        request: &HeaderMap,
    ) -> Option<Hit> {
        if !self.verify(key, &e) {
            self.metrics.rejected(Rejected::Tampered).inc();
            return None;
        }
        let hit = self.fresh(e.clone(), now_ms, request)?;
        // Read from Redis: kept locally; whether it would be shared again does not matter here.
        let _ = self.store(*key, e, true);
        Some(hit)
    }

    fn fresh(&self, e: Entry, now_ms: u64, request: &HeaderMap) -> Option<Hit> {
        if e.vary.as_ref().is_some_and(|v| !v.matches(request)) {
            return None;
        }
        let age = Duration::from_millis(now_ms.saturating_sub(e.stored_at_ms));
        (age <= self.cfg.max_stale).then_some(Hit {
            body: e.body,
            json: e.json,
            age,
        })
    }

    /// Drops every entry and stores nothing more: the breaker closed (its memory, up to
    /// `lkgMaxBytes`, goes back then, not when its last JS handle is collected).
    pub fn close(&self) {
        let old = std::mem::take(&mut *self.store.lock());
        drop(old);
    }

    pub fn len(&self) -> usize {
        self.store.lock().lru.as_ref().map_or(0, |l| l.len())
    }

    pub fn bytes(&self) -> u64 {
        self.store.lock().bytes
    }

    /// Test hook: flips a byte of a stored body, as an attacker with memory or Redis access would.
    #[cfg(test)]
    pub fn tamper(&self, key: &CacheKey) {
        let mut s = self.store.lock();
        if let Some(Slot { entry: e, .. }) = s.lru.as_mut().and_then(|l| l.peek_mut(key)) {
            let mut b = e.body.to_vec();
            b[0] ^= 1;
            e.body = Bytes::from(b);
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

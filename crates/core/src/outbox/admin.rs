//! The operator's side of an outbox without a breaker: what `dnastore-breaker outbox` runs
//! (stats, list, dead letters, retry, discard, and the signature check before a drain).
//! The same stores and the same operations as `breaker.outbox`, reached from outside the
//! service that owns them.
//!
//! - **Embedded store.** Reads go through the read-only view (`sqlite/view.rs`): no lock,
//!   no write, so they work while a service holds the store. A change (retry, discard)
//!   needs the store itself, which only one process may hold: it opens it as the service
//!   does when no process holds it, and otherwise refuses, saying what to do instead. (A
//!   service's queue mirrors its file in memory: a write changed behind its back would be
//!   delivered after a discard, or a retried one never seen.)
//! - **Fleet store.** Everything goes through Redis, as any replica's `breaker.outbox`
//!   does; nothing joins the consumer group.
//!
//! Bodies and headers are only shown when asked for ([`Revealed`]), and a kept credential
//! header never is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::backend::blocking;
use super::fleet::{Discarded, Fleet};
use super::listing::count_unverified;
use super::sqlite::{store_path, SqliteStore, View};
use super::{DeadLetter, Listed, StoreError, Write, VERIFY_AT_OPEN};
use crate::config::Config;
use crate::request::IDEMPOTENCY_KEY;

/// What replaces a header value that is not shown.
pub const HIDDEN: &str = "***";

/// The shared counts, as an operator reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminStats {
    pub entries: u64,
    pub bytes: u64,
    pub dead_letters: u64,
    pub oldest_age: Option<Duration>,
    /// Fleet-wide writes being attempted now; `None` for an embedded store, whose
    /// deliveries in flight only its process knows.
    pub in_flight: Option<u64>,
}

/// A stored write's headers and body, when asked for. Header values other than
/// content-type and idempotency-key are replaced by [`HIDDEN`]: `outboxHeaders` may keep
/// credentials (authorization), which are never shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revealed {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

enum Store {
    Embedded { dir: PathBuf },
    Fleet(Arc<Fleet>),
}

pub struct OutboxAdmin {
    name: String,
    store: Store,
    secret: Option<String>,
}

impl OutboxAdmin {
    /// The outbox `cfg` describes (its `outboxRedisUrl`, else its `outboxDir`), whatever
    /// its `outbox` mode. Opens nothing yet.
    pub fn new(cfg: &Config) -> Result<Self, StoreError> {
        let store = match cfg.outbox.redis_url {
            Some(_) => Store::Fleet(Arc::new(
                Fleet::new(&cfg.name, &cfg.outbox).map_err(StoreError)?,
            )),
            None => Store::Embedded {
                dir: cfg.outbox.dir.clone(),
            },
        };
        Ok(Self {
            name: cfg.name.clone(),
            store,
            secret: cfg.lkg.signing_secret.clone(),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sqlite` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.store {
            Store::Embedded { .. } => "sqlite",
            Store::Fleet(_) => "redis",
        }
    }

    /// The store's file, or its Redis URL without credentials.
    pub fn location(&self) -> String {
        match &self.store {
            Store::Embedded { dir } => store_path(dir, &self.name).display().to_string(),
            Store::Fleet(f) => f.location(),
        }
    }

    /// Reads the embedded store through a read-only view (on the blocking pool).
    async fn view<T: Send + 'static>(
        &self,
        f: impl FnOnce(&View) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Store::Embedded { dir } = &self.store else {
            unreachable!("only for the embedded store")
        };
        let (dir, name) = (dir.clone(), self.name.clone());
        blocking("read", move || f(&View::open(&dir, &name)?)).await
    }

    pub async fn stats(&self, now_ms: u64) -> Result<AdminStats, StoreError> {
        let age =
            |oldest: Option<u64>| oldest.map(|o| Duration::from_millis(now_ms.saturating_sub(o)));
        match &self.store {
            Store::Embedded { .. } => {
                let c = self.view(|v| v.counts()).await?;
                Ok(AdminStats {
                    entries: c.entries,
                    bytes: c.bytes,
                    dead_letters: c.dead,
                    oldest_age: age(c.oldest_created_at_ms),
                    in_flight: None,
                })
            }
            Store::Fleet(f) => {
                let s = f.snapshot().await.map_err(StoreError)?;
                Ok(AdminStats {
                    entries: s.entries,
                    bytes: s.bytes,
                    dead_letters: s.dead,
                    oldest_age: age(s.oldest_created_at_ms),
                    in_flight: Some(f.in_flight().await.map_err(StoreError)?),
                })
            }
        }
    }

    /// Queued writes, oldest first, with their headers and bodies if `bodies`.
    pub async fn list(
        &self,
        limit: usize,
        bodies: bool,
    ) -> Result<Vec<(Listed, Option<Revealed>)>, StoreError> {
        let shown = move |blob: &[u8]| bodies.then(|| reveal(blob)).flatten();
        match &self.store {
            Store::Embedded { .. } => {
                self.view(move |v| {
                    Ok(v.list(limit)?
                        .into_iter()
                        .map(|r| {
                            let revealed = shown(&r.blob);
                            // Whether its process is delivering it now is that process's
                            // knowledge; the file cannot say.
                            let l = Listed::of_embedded(r.meta, &r.blob, r.last_error, false);
                            (l, revealed)
                        })
                        .collect())
                })
                .await
            }
            Store::Fleet(f) => Ok(f
                .list(limit)
                .await
                .map_err(StoreError)?
                .iter()
                .map(|r| (Listed::of_fleet(r), shown(&r.blob)))
                .collect()),
        }
    }

    /// Dead letters, oldest first, with the writes' headers and bodies if `bodies`.
    pub async fn dead_letters(
        &self,
        limit: usize,
        bodies: bool,
    ) -> Result<Vec<(DeadLetter, Option<Revealed>)>, StoreError> {
        let rows = match &self.store {
            Store::Embedded { .. } => self.view(move |v| v.dead_letters(limit)).await?,
            Store::Fleet(f) => f.dead_letters(limit).await.map_err(StoreError)?,
        };
        Ok(rows
            .iter()
            .map(|d| {
                let shown = bodies.then(|| reveal(&d.blob)).flatten();
                (DeadLetter::of(d), shown)
            })
            .collect())
    }

    /// A dead letter back in the queue (attempts from zero, age from `now_ms`); false if
    /// there is none with `id`.
    pub async fn retry(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        match &self.store {
            Store::Fleet(f) => f.retry(id, now_ms).await.map_err(StoreError),
            Store::Embedded { .. } => {
                let id = id.to_string();
                self.change("retry", move |s| s.revive(&id, now_ms).map(|m| m.is_some()))
                    .await
            }
        }
    }

    /// Removes a queued write or a dead letter for good; false if there is none with `id`.
    pub async fn discard(&self, id: &str) -> Result<bool, StoreError> {
        match &self.store {
            Store::Fleet(f) => match f.discard(id).await.map_err(StoreError)? {
                Discarded::Removed => Ok(true),
                Discarded::NotFound => Ok(false),
                Discarded::Busy => Err(StoreError(format!(
                    "write {id} is being delivered by a replica right now: it cannot be \
                     discarded during its attempt; run this again once the attempt ends \
                     (if it fails, the write is still queued)"
                ))),
            },
            Store::Embedded { .. } => {
                let id = id.to_string();
                self.change("discard", move |s| s.discard(&id)).await
            }
        }
    }

    /// Runs a change on the embedded store, which this process must hold: refused while
    /// another process holds it.
    async fn change<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Store::Embedded { dir } = &self.store else {
            unreachable!("only for the embedded store")
        };
        let (dir, name) = (dir.clone(), self.name.clone());
        blocking(op, move || {
            let path = store_path(&dir, &name);
            // Never created here: a mistyped name or directory is an error, not a new store.
            View::open(&dir, &name)?;
            let Some(opened) = SqliteStore::open_if_free(&dir, &name)? else {
                return Err(StoreError(format!(
                    "outbox store {}: held by a running process (a service with this \
                     breaker's outbox), and {op} changes the store, which only its holder \
                     may do. Call breaker.outbox.{op}(id) in that process (for example \
                     from the service's admin route), or stop it and run this again. \
                     Reading (stats, list, dead) works while it runs.",
                    path.display()
                )));
            };
            let out = f(&opened.store);
            opened.store.close();
            out
        })
        .await
    }

    /// Whether the oldest queued writes verify with this configuration's signing secret:
    /// a message when some do not (a breaker delivering them would dead-letter them as
    /// tampered), `None` when they all do or there is no secret.
    pub async fn unverified(&self) -> Result<Option<String>, StoreError> {
        let Some(secret) = self.secret.clone() else {
            return Ok(None);
        };
        let stored = match &self.store {
            Store::Embedded { .. } => self.view(|v| v.oldest_signed(VERIFY_AT_OPEN)).await?,
            Store::Fleet(f) => f
                .list(VERIFY_AT_OPEN)
                .await
                .map_err(StoreError)?
                .into_iter()
                .map(|r| (r.blob, r.mac))
                .collect(),
        };
        let failed = count_unverified(stored.iter(), Some(&secret));
        Ok((failed > 0).then(|| {
            format!(
                "{failed} of the {} oldest queued writes in {} do not verify with this \
                 signingSecret (DNASTORE_LKG_SECRET or SPIRAL_EVENT_SECRET): delivering \
                 them would dead-letter them as tampered. Use the service's secret",
                stored.len(),
                self.location()
            )
        }))
    }

    /// Releases the Redis connection (the embedded store holds nothing between calls).
    pub fn close(&self) {
        if let Store::Fleet(f) = &self.store {
            f.disconnect();
        }
    }
}

/// A stored write's headers (credentials hidden) and body; `None` if it cannot be read.
pub fn reveal(blob: &[u8]) -> Option<Revealed> {
    let w = Write::decode(blob)?;
    // What a write says about itself; any other kept header (authorization, cookies, API
    // keys, the tenant, whatever `outboxHeaders` names) may identify or authenticate a
    // caller, so its value is never shown.
    let shown = |name: &str| name == http::header::CONTENT_TYPE.as_str() || name == IDEMPOTENCY_KEY;
    Some(Revealed {
        headers: w
            .headers
            .iter()
            .map(|(k, v)| {
                let value = match (shown(k.as_str()), v.to_str()) {
                    (true, Ok(text)) => text.to_string(),
                    _ => HIDDEN.to_string(),
                };
                (k.as_str().to_string(), value)
            })
            .collect(),
        body: w.body,
    })
}

#[cfg(test)]
mod tests;

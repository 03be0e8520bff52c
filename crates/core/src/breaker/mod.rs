//! One breaker: admission, the attempt/retry loop, fallbacks, coalescing, and the
//! event stream every observer (metrics, JS events, logs) reads.
//!
//! The call path is split in two so the binding can answer an open circuit synchronously:
//! [`Breaker::admit`] is a plain function (one atomic load while open), and only an
//! admitted call enters [`Breaker::execute`] on the async runtime.
//!
//! The breaker is the composition root: the one module that joins the features (circuit,
//! retry, limit, http, tls, lkg, outbox, fleet), none of which imports another.
//!
//! Split by concern: `build.rs` (building one: the features wired together), `files.rs`
//! (the files the configuration names, read at build), `metrics.rs` (its series, handed to
//! the features), `transport.rs` (the HTTP client, or a script in tests), `attempts.rs`
//! (the attempt/retry loop), `coalesce.rs` (identical concurrent GETs), `fallback.rs`
//! (fallbacks, last-known-good, Redis), `hedged.rs` (hedged reads in the attempt loop),
//! `durable.rs` (durable writes and the outbox),
//! `delivery.rs` (the outbox's delivery loop, each delivery a call of this breaker),
//! `fleet.rs` (the fleet circuit's decisions applied to the circuit, trial leases),
//! `control.rs` (an operator's open/close/disable/enable), `routes.rs` (per-route
//! circuits: admission on a route's circuit, the permit carrying it).

mod attempts;
mod build;
mod coalesce;
mod control;
mod delivery;
mod durable;
mod fallback;
mod files;
mod fleet;
mod hedged;
mod metrics;
mod routes;
mod transport;

pub use build::{http_client, watch_clients};
pub use files::{check_config, load_files};
pub use metrics::BreakerMetrics;
pub(crate) use transport::Transport;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Method};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::circuit::{BulkheadStats, Circuit, CircuitConfig, Permit, Stats, Verdict};
use crate::config::{Config, OutboxMode, RedisSpec, TlsConfig};
use crate::error::{CallError, Code, FailureKind};
use crate::http::{classify_status, AttemptFailure, HttpClient, RawResponse, StatusClass};
use crate::limit::{Limiter, Shed};
use crate::lkg::redis::{RedisLkg, READ_TIMEOUT};
use crate::lkg::{CacheKey, Cacheability, Hit, KeyPolicy, LkgCache, Stored};
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind};
use crate::outbox::Outbox;
use crate::outcome::{CallOutcome, Fallback, Rejection, Success};
use crate::redis::RedisClient;
use crate::request::{prepare, PreparedRequest, IDEMPOTENCY_KEY};
use crate::retry::{method_is_retryable, parse_retry_after, Backoff, RetryBudget};
use crate::rng::{idempotency_key, Rng, SplitMix64};
use delivery::spawn_delivery;

/// Injected randomness and wall-clock origin.
///
/// Time has one source: tokio's clock (`tokio::time::Instant`), for the state machine,
/// deadlines, timeouts and sleeps alike. Outside tests it is the monotonic clock; under
/// `tokio::time::pause()` the tests move all of it at once. The wall clock is only an
/// origin for HTTP dates and for LKG ages shared between replicas.
#[derive(Clone)]
pub struct Deps {
    pub rng: Arc<dyn Rng>,
    /// Wall-clock time when the breaker was created.
    pub wall_origin: SystemTime,
    /// Where background work runs (the outbox's delivery loop); the current runtime when
    /// `None` (breakers are created outside any runtime by the binding, which passes its own).
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            rng: Arc::new(SplitMix64::from_entropy()),
            wall_origin: SystemTime::now(),
            runtime: None,
        }
    }
}

/// A write the outbox takes over if it cannot be delivered now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    /// Writes sharing it are delivered one at a time, in order.
    pub ordering_key: Option<String>,
}

/// One fire() after validation.
#[derive(Clone, Debug)]
pub struct Call {
    pub req: PreparedRequest,
    /// Per-call override of `timeout` (per attempt).
    pub timeout: Option<Duration>,
    /// Per-call override of `deadline` (all attempts and sleeps).
    pub deadline: Option<Duration>,
    /// The caller's AbortSignal.
    pub cancel: Option<CancellationToken>,
    /// The handle's shutdown ([`Breaker::stop_token`]); the breaker's own when `None`.
    pub stop: Option<CancellationToken>,
    /// Route template for the route-level metrics (`/api/sigils/:id`), never a raw URL.
    pub route: Option<Arc<str>>,
    /// Queued in the outbox if it cannot be delivered now ([`Breaker::make_durable`]).
    pub durable: Option<Durable>,
    /// Records attempts and retries for this call's tracing span (only when traced).
    pub trace: Option<Arc<crate::CallTrace>>,
}

impl Call {
    pub fn new(req: PreparedRequest) -> Self {
        Self {
            req,
            timeout: None,
            deadline: None,
            cancel: None,
            stop: None,
            route: None,
            durable: None,
            trace: None,
        }
    }
}

use coalesce::Inflight;

pub struct Breaker {
    config: Config,
    circuit: Circuit,
    /// Routes' own circuits (`circuitPerRoute`, `routes.rs`); `None` when off.
    routes: Option<crate::circuit::RouteCircuits>,
    http: Transport,
    deps: Deps,
    /// The origin of [`Breaker::now`] on tokio's clock.
    origin: Instant,
    wall_origin_ms: u64,
    stop: CancellationToken,
    backoff: Backoff,
    budget: RetryBudget,
    lkg: Option<LkgCache>,
    /// Which request headers split the cache and coalescing key.
    keys: KeyPolicy,
    /// Shared last-known-good for many replicas (only with a local cache).
    redis: Option<RedisLkg>,
    inflight: Mutex<HashMap<CacheKey, Inflight>>,
    /// The bulkhead (`maxConcurrent`); `None` without one.
    limiter: Option<Limiter>,
    /// Hedged reads (`hedgeAfterMs`); `None` without.
    hedge: Option<crate::hedge::Hedger>,
    /// Writes that could not be delivered, kept until they are (`outbox` option).
    outbox: Option<Arc<Outbox>>,
    outbox_backoff: Backoff,
    /// The circuit shared with the other replicas (`fleetCircuit`, `fleet.rs`).
    fleet: Option<Arc<crate::fleet::FleetCircuit>>,
    metrics: BreakerMetrics,
    observers: RwLock<Vec<(u64, Arc<dyn Observer>)>>,
    next_observer: AtomicU64,
    /// `circuitForce` was applied (`control.rs`): once per breaker, not per handle.
    forced_at_start: std::sync::atomic::AtomicBool,
}

impl Breaker {
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn metrics(&self) -> &BreakerMetrics {
        &self.metrics
    }

    pub fn lkg(&self) -> Option<&LkgCache> {
        self.lkg.as_ref()
    }

    /// Time since the breaker was created, on tokio's clock (see [`Deps`]).
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Wall-clock ms since the epoch, as the outbox stamps writes.
    pub fn wall_now_ms(&self) -> u64 {
        self.wall_ms()
    }

    pub(crate) fn wall_ms(&self) -> u64 {
        self.wall_origin_ms + self.now().as_millis() as u64
    }

    fn wall(&self) -> SystemTime {
        self.deps.wall_origin + self.now()
    }

    /// Adds an observer; returns its id for [`Breaker::unsubscribe`].
    pub fn subscribe(&self, o: Arc<dyn Observer>) -> u64 {
        let id = self.next_observer.fetch_add(1, Ordering::Relaxed);
        self.observers.write().push((id, o));
        id
    }

    /// Removes an observer after telling it `Shutdown`.
    pub fn unsubscribe(&self, id: u64) {
        let removed = {
            let mut obs = self.observers.write();
            obs.iter()
                .position(|(i, _)| *i == id)
                .map(|pos| obs.remove(pos).1)
        };
        if let Some(o) = removed {
            o.on_event(&Event::Shutdown);
        }
    }

    pub(crate) fn emit(&self, e: &Event<'_>) {
        for (_, o) in self.observers.read().iter() {
            o.on_event(e);
        }
    }

    pub fn state(&self) -> StateKind {
        self.circuit.state()
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.circuit.stats(self.now());
        s.bulkhead = self.limiter.as_ref().map(|l| BulkheadStats {
            inflight: l.inflight(),
            queued: l.queued(),
            limit: l.limit(),
            rejected_concurrency: l.rejected(Shed::Concurrency),
            rejected_queue_timeout: l.rejected(Shed::QueueTimeout),
        });
        s.hedges = self.hedge.as_ref().map(|h| self.hedge_stats(h));
        s
    }

    /// Refreshes gauges that are derived at scrape time.
    pub fn refresh_gauges(&self) {
        let s = self.stats();
        self.metrics.events.set_failure_rate(s.failure_rate);
        self.metrics.events.set_state(s.state);
        if let Some(l) = &self.limiter {
            l.refresh_gauges();
        }
        if let Some(o) = &self.outbox {
            o.refresh_gauges(Some(self.wall_ms()));
        }
    }

    /// Validates a request against this breaker's baseUrl.
    pub fn prepare(
        &self,
        url: &str,
        method: Option<&str>,
        headers: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<PreparedRequest, CallError> {
        let mut req = prepare(self.config.base_url.as_ref(), url, method, headers, body)?;
        if self.config.retry.generate_idempotency_keys
            && (req.method == Method::POST || req.method == Method::PATCH)
            && !req.has_header(IDEMPOTENCY_KEY)
        {
            // One key per logical call, sent unchanged on every attempt.
            let key = idempotency_key()?;
            if let Ok(v) = HeaderValue::from_str(&key) {
                req.headers.insert(IDEMPOTENCY_KEY, v);
            }
        }
        Ok(req)
    }

    /// `url` (absolute, or a path against baseUrl) as logs and callbacks may show it: no
    /// credentials, no query, no fragment.
    pub fn redacted_url(&self, url: &str) -> String {
        let parsed = match url::Url::parse(url) {
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                self.config.base_url.as_ref().and_then(|b| b.join(url).ok())
            }
            r => r.ok(),
        };
        parsed.map_or_else(|| "(invalid URL)".to_string(), |u| crate::text::redact(&u))
    }

    /// How long the circuit stays open from now; `None` when it admits calls.
    pub fn open_for(&self) -> Option<Duration> {
        self.circuit.open_for(self.now())
    }

    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    /// Synchronous admission. `None`: short-circuited; answer with [`Breaker::rejected`]
    /// without touching the network or the runtime.
    pub fn admit(&self) -> Option<Permit> {
        let now = self.now();
        self.emit(&Event::Fire);
        let p = self
            .circuit
            .try_acquire(now, &mut |t| self.emit(&Event::Transition(t)));
        match p {
            Some(_) => self.circuit.record_fire(now),
            None => self.record_short_circuit(now),
        }
        p
    }

    /// The bookkeeping of every short-circuited call, whichever path answered it.
    fn record_short_circuit(&self, now: Duration) {
        self.circuit.record_reject(now);
        self.emit(&Event::Reject);
    }

    /// The fallback for a short-circuited call; serves last-known-good when `req` has an entry.
    pub fn rejected(&self, req: Option<&PreparedRequest>) -> Fallback {
        self.fallback(Code::OpenBreaker, req)
    }

    /// Runs an admitted call to its end. Never panics: a bug inside becomes EINTERNAL.
    ///
    /// Whatever ends the call (its outcome, the caller's AbortSignal, its handle's
    /// shutdown, a panic, or the future being dropped, even before its first poll), the
    /// permit and every other slot the call holds are given back by their own `Drop`.
    pub async fn execute(self: Arc<Self>, permit: Permit, call: Call) -> CallOutcome {
        // A durable call keeps the outbox's store open until it has ended, so that a
        // shutdown in the middle still finds it open to queue the write.
        let _hold = self.hold_outbox(&call);
        let stop = call.stop.clone().unwrap_or_else(|| self.stop.clone());
        // The deadline counts from here: waiting for the fleet's first read is part of it.
        let started = tokio::time::Instant::now();
        let run = AssertUnwindSafe(async {
            if self.behind_queued(&call).await {
                // Sent live, it would land before the older write that replays later,
                // which would then overwrite it. It goes behind that write instead.
                drop(permit);
                return CallOutcome::Fallback(self.fallback_from(Code::Ordered, None));
            }
            let permit = match &self.fleet {
                None => permit,
                // A route's circuit is this replica's own: the fleet does not gate it.
                Some(_) if permit.route_circuit().is_some() => permit,
                // Boxed, as every rarely taken large future of a call.
                Some(_) => match Box::pin(self.join_fleet(permit, &call)).await {
                    Some(p) => p,
                    None => return CallOutcome::Fallback(self.rejected(Some(&call.req))),
                },
            };
            self.run(permit, &call, started).await
        })
        .catch_unwind();
        let out = tokio::select! {
            biased;
            // Its outcome unknown, a durable write is queued before the call settles.
            _ = stop.cancelled() => return self.queue_at_shutdown(&call).await,
            _ = cancelled(call.cancel.as_ref()) => self.aborted(),
            r = run => r.unwrap_or_else(|_| internal_error()),
        };
        match out {
            // Not delivered (open, failed after retries, deadline, outcome unknown): the
            // write is stored before the caller hears about it.
            CallOutcome::Fallback(f) if call.durable.is_some() => self.queue(&call, f).await,
            o => o,
        }
    }

    /// What a call still running when its handle shuts down resolves to.
    pub(crate) fn shut_down(&self) -> CallOutcome {
        CallOutcome::Rejected(Rejection::from(CallError::new(
            Code::Shutdown,
            format!("breaker {:?} was shut down", self.name()),
        )))
    }

    /// A token cancelled when this breaker closes; a handle's calls watch a child of it,
    /// so shutting down one handle settles only that handle's calls.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Ends the breaker (its last handle shut down): every call still running settles with
    /// ESHUTDOWN, background work (the shared cache's Redis task) stops, and its metric
    /// series are removed. Idempotent.
    pub fn close(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        if let Some(r) = &self.redis {
            r.close();
        }
        if let Some(o) = &self.outbox {
            o.close();
        }
        if let Some(f) = &self.fleet {
            f.close();
        }
        self.metrics.remove();
        // Freed now, not when the last JS handle is collected: cached responses, HTTP clients.
        self.lkg.iter().for_each(LkgCache::close);
        self.http.release();
    }
}

/// Waits for an optional token; never completes without one.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

fn internal_error() -> CallOutcome {
    CallOutcome::Rejected(Rejection::from(CallError::new(
        Code::Internal,
        "internal error in dnastore-breaker (a bug; please report it)",
    )))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hedge;
#[cfg(test)]
mod tests_identity;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_limit;
#[cfg(test)]
mod tests_open_time;
#[cfg(test)]
mod tests_routes;

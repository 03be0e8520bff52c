//! One breaker: admission, the attempt/retry loop, fallbacks, coalescing, and the
//! event stream every observer (metrics, JS events, logs) reads.
//!
//! The call path is split in two so the binding can answer an open circuit synchronously:
//! [`Breaker::admit`] is a plain function (one atomic load while open), and only an
//! admitted call enters [`Breaker::execute`] on the async runtime.
//!
//! Split by concern: `attempts.rs` (the attempt/retry loop), `coalesce.rs` (identical
//! concurrent GETs), `fallback.rs` (fallbacks, last-known-good, Redis).

mod attempts;
mod coalesce;
mod fallback;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Method};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cancel::{cancelled, CancelToken};
use crate::circuit::{Circuit, CircuitConfig, Permit, Stats, Verdict};
use crate::clock::{Clock, MonotonicClock};
use crate::config::Config;
use crate::error::{CallError, Code, FailureKind};
use crate::http::{
    classify_status, prepare, AttemptFailure, HttpClient, PreparedRequest, StatusClass,
};
use crate::lkg::redis::{RedisLkg, READ_TIMEOUT};
use crate::lkg::{cache_key, CacheKey, Hit, LkgCache, Stored};
use crate::metrics::BreakerMetrics;
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind};
use crate::outcome::{CallOutcome, Fallback, Rejection, Success};
use crate::redis::{RedisClient, RedisSpec};
use crate::retry::{method_is_retryable, parse_retry_after, Backoff, RetryBudget, IDEMPOTENCY_KEY};
use crate::rng::{uuid_v4, Rng, SplitMix64};
use crate::transport::Transport;

/// Injected time and randomness.
#[derive(Clone)]
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    /// Wall-clock time at `clock`'s origin, for HTTP dates and LKG ages shared via Redis.
    pub wall_origin: SystemTime,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            clock: Arc::new(MonotonicClock::new()),
            rng: Arc::new(SplitMix64::from_entropy()),
            wall_origin: SystemTime::now(),
        }
    }
}

/// One fire() after validation.
#[derive(Clone, Debug)]
pub struct Call {
    pub req: PreparedRequest,
    /// Per-call override of `timeout` (per attempt).
    pub timeout: Option<Duration>,
    /// Per-call override of `deadline` (all attempts and sleeps).
    pub deadline: Option<Duration>,
    pub cancel: Option<CancelToken>,
    /// Route template for the route-level metrics (`/api/sigils/:id`), never a raw URL.
    pub route: Option<Arc<str>>,
}

impl Call {
    pub fn new(req: PreparedRequest) -> Self {
        Self {
            req,
            timeout: None,
            deadline: None,
            cancel: None,
            route: None,
        }
    }
}

type Inflight = watch::Receiver<Option<CallOutcome>>;

pub struct Breaker {
    config: Config,
    circuit: Circuit,
    http: Transport,
    deps: Deps,
    wall_origin_ms: u64,
    backoff: Backoff,
    budget: RetryBudget,
    lkg: Option<LkgCache>,
    /// Shared last-known-good for many replicas (only with a local cache).
    redis: Option<RedisLkg>,
    inflight: Mutex<HashMap<CacheKey, Inflight>>,
    metrics: Arc<BreakerMetrics>,
    observers: RwLock<Vec<(u64, Arc<dyn Observer>)>>,
    next_observer: AtomicU64,
}

impl Breaker {
    pub fn new(config: Config, deps: Deps) -> Result<Arc<Self>, CallError> {
        if config.lkg.redis_url.is_some() {
            Self::redis_client(&config).map_err(|m| CallError::new(Code::Config, m))?;
        }
        Ok(Self::with_transport(
            config,
            deps,
            Transport::Http(HttpClient::new()?),
        ))
    }

    pub(crate) fn with_transport(config: Config, deps: Deps, http: Transport) -> Arc<Self> {
        let metrics =
            Arc::new(BreakerMetrics::new(&config.name).with_max_routes(config.max_routes));
        metrics.set_state(StateKind::Closed);
        let lkg = LkgCache::new(config.lkg.clone(), metrics.clone());
        let wall_origin_ms = deps
            .wall_origin
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Arc::new_cyclic(|me: &Weak<Self>| Self {
            redis: Self::shared_lkg(&config, lkg.is_some(), &metrics, me.clone()),
            circuit: Circuit::new(CircuitConfig::from(&config)),
            http,
            wall_origin_ms,
            backoff: Backoff::new(config.retry.base, config.retry.max),
            budget: RetryBudget::new(config.retry.budget_percent, config.retry.min_per_sec),
            lkg,
            inflight: Mutex::new(HashMap::new()),
            observers: RwLock::new(vec![(0, metrics.clone() as Arc<dyn Observer>)]),
            next_observer: AtomicU64::new(1),
            metrics,
            deps,
            config,
        })
    }

    /// The Redis side of the cache; its health transitions become events of this breaker.
    fn shared_lkg(
        config: &Config,
        local: bool,
        metrics: &Arc<BreakerMetrics>,
        me: Weak<Self>,
    ) -> Option<RedisLkg> {
        let client = Self::redis_client(config).ok()?.filter(|_| local)?;
        let on_health = Box::new(move |up, reason: Option<&str>| {
            if let Some(b) = me.upgrade() {
                b.emit(&Event::RedisHealth { up, reason });
            }
        });
        Some(RedisLkg::new(
            client,
            &config.name,
            config.lkg.max_stale,
            metrics.clone(),
            on_health,
        ))
    }

    /// The client for `redisUrl` (None without one). Errors never hold credentials.
    fn redis_client(config: &Config) -> Result<Option<RedisClient>, String> {
        let Some(url) = &config.lkg.redis_url else {
            return Ok(None);
        };
        let spec = RedisSpec::parse(url).map_err(|m| format!("invalid redisUrl: {m}"))?;
        RedisClient::new(spec, config.lkg.redis.clone())
            .map(Some)
            .map_err(|m| format!("invalid redisUrl: {m}"))
    }

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

    fn now(&self) -> Duration {
        self.deps.clock.now()
    }

    fn wall_ms(&self) -> u64 {
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

    fn emit(&self, e: &Event<'_>) {
        for (_, o) in self.observers.read().iter() {
            o.on_event(e);
        }
    }

    pub fn state(&self) -> StateKind {
        self.circuit.state()
    }

    pub fn stats(&self) -> Stats {
        self.circuit.stats(self.now())
    }

    /// Refreshes gauges that are derived at scrape time.
    pub fn refresh_gauges(&self) {
        let s = self.stats();
        self.metrics.set_failure_rate(s.failure_rate);
        self.metrics.set_state(s.state);
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
            let key = uuid_v4(self.deps.rng.as_ref());
            if let Ok(v) = HeaderValue::from_str(&key) {
                req.headers.insert(IDEMPOTENCY_KEY, v);
            }
        }
        Ok(req)
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

    /// Returns an unused permit (the request failed validation after admission).
    pub fn release(&self, permit: Permit) {
        self.circuit.release(permit);
    }

    /// Runs an admitted call to its end. Never panics: a bug inside becomes EINTERNAL.
    ///
    /// The permit belongs to the returned future from the start: a future dropped before
    /// its first poll (a batch discarded when a worker thread is terminated) hands it back,
    /// so a half-open trial slot can never leak. Once polled, the attempt loop's guard owns it.
    pub fn execute(
        self: Arc<Self>,
        permit: Permit,
        call: Call,
    ) -> impl std::future::Future<Output = CallOutcome> + Send + 'static {
        let mut unpolled = Unpolled {
            breaker: self.clone(),
            permit: Some(permit),
        };
        async move {
            // A method call, so the block captures the whole guard: a bare
            // `unpolled.permit` would capture a copy of the (Copy) field and leave the guard
            // outside, dropped (releasing the permit) as soon as `execute` returns.
            let permit = unpolled.take();
            match AssertUnwindSafe(self.run(permit, call))
                .catch_unwind()
                .await
            {
                Ok(o) => o,
                Err(_) => CallOutcome::Rejected(Rejection::from(CallError::new(
                    Code::Internal,
                    "internal error in dnastore-breaker (a bug; please report it)",
                ))),
            }
        }
    }
}

/// A permit not yet handed to the attempt loop (see [`Breaker::execute`]).
struct Unpolled {
    breaker: Arc<Breaker>,
    permit: Option<Permit>,
}

impl Unpolled {
    fn take(&mut self) -> Permit {
        self.permit.take().expect("taken once, at the first poll")
    }
}

impl Drop for Unpolled {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.breaker.circuit.release(p);
        }
    }
}

#[cfg(test)]
mod tests;

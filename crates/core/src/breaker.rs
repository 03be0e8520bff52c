//! One breaker: admission, the attempt/retry loop, fallbacks, coalescing, and the
//! event stream every observer (metrics, JS events, logs) reads.
//!
//! The call path is split in two so the binding can answer an open circuit synchronously:
//! [`Breaker::admit`] is a plain function (one atomic load while open), and only an
//! admitted call enters [`Breaker::execute`] on the async runtime.

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
use crate::lkg::redis::{RedisLkg, Target, READ_TIMEOUT};
use crate::lkg::{cache_key, CacheKey, Hit, LkgCache};
use crate::metrics::BreakerMetrics;
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind};
use crate::outcome::{CallOutcome, Fallback, Rejection, Success};
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

/// Returns an attempt's permit to the circuit if the attempt ends without a verdict
/// (caller abort, a dropped future, a panic), so no half-open trial slot leaks.
struct PermitGuard<'a> {
    circuit: &'a Circuit,
    permit: Option<Permit>,
}

impl PermitGuard<'_> {
    fn take(&mut self) -> Option<Permit> {
        self.permit.take()
    }
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.circuit.release(p);
        }
    }
}

fn json_is_valid(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

impl Breaker {
    pub fn new(config: Config, deps: Deps) -> Result<Arc<Self>, CallError> {
        if let Some(url) = &config.lkg.redis_url {
            Target::parse(url).map_err(|m| CallError::new(Code::Config, m))?;
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
        let target = Target::parse(config.lkg.redis_url.as_deref()?)
            .ok()
            .filter(|_| local)?;
        let on_health = Box::new(move |up| {
            if let Some(b) = me.upgrade() {
                b.emit(&Event::RedisHealth { up });
            }
        });
        Some(RedisLkg::new(
            target,
            &config.name,
            config.lkg.max_stale,
            metrics.clone(),
            on_health,
        ))
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
        if p.is_none() {
            self.circuit.record_reject(now);
            self.emit(&Event::Reject);
        } else {
            self.circuit.record_fire(now);
        }
        p
    }

    /// The fallback for a short-circuited call; serves last-known-good when `req` has an entry.
    pub fn rejected(&self, req: Option<&PreparedRequest>) -> Fallback {
        self.fallback(Code::OpenBreaker, req)
    }

    /// Returns an unused permit (the request failed validation after admission).
    pub fn release(&self, permit: Permit) {
        self.circuit.release(permit);
    }

    /// True when a short-circuited call could be answered from the cache, so the binding
    /// knows whether validating the request is worth it on the open path.
    pub fn may_serve_cached(&self) -> bool {
        self.lkg.as_ref().is_some_and(|c| !c.is_empty()) || self.redis.is_some()
    }

    /// The short-circuit answer when it needs no I/O. `None`: the local cache misses and the
    /// entry may be in the shared Redis; answer with [`Breaker::rejected_shared`] instead.
    pub fn rejected_now(&self, req: &PreparedRequest) -> Option<Fallback> {
        let Some((k, c)) = self.lkg_key(Some(req)) else {
            return Some(self.fallback_from(Code::OpenBreaker, None));
        };
        match c.lookup(&k, self.wall_ms()) {
            Some(h) => Some(self.fallback_from(Code::OpenBreaker, Some(h))),
            None if self.redis.as_ref().is_some_and(|r| !r.is_down()) => None,
            None => Some(self.fallback_from(Code::OpenBreaker, None)),
        }
    }

    /// The short-circuit answer after asking the shared Redis, waiting at most
    /// min([`READ_TIMEOUT`], `deadline`).
    pub async fn rejected_shared(
        self: Arc<Self>,
        req: PreparedRequest,
        deadline: Option<Duration>,
    ) -> Fallback {
        let wait = deadline.unwrap_or(self.config.deadline);
        self.fallback_shared(Code::OpenBreaker, Some(&req), wait)
            .await
    }

    /// Tells the metrics that the JS fallback function supplied a fallback's value.
    pub fn note_function_fallback(&self) {
        self.emit(&Event::Fallback {
            code: Code::OpenBreaker,
            source: FallbackSource::Function,
            age: None,
        });
    }

    /// The cache key of a GET, when there is a cache.
    fn lkg_key(&self, req: Option<&PreparedRequest>) -> Option<(CacheKey, &LkgCache)> {
        match (req, &self.lkg) {
            (Some(r), Some(c)) if r.method == Method::GET => Some((
                cache_key(&self.config.name, r, &c.config().tenant_header),
                c,
            )),
            _ => None,
        }
    }

    fn fallback(&self, code: Code, req: Option<&PreparedRequest>) -> Fallback {
        let hit = self
            .lkg_key(req)
            .and_then(|(k, c)| c.lookup(&k, self.wall_ms()));
        self.fallback_from(code, hit)
    }

    /// Like [`Breaker::fallback`], but a local miss asks the shared Redis, for at most
    /// min([`READ_TIMEOUT`], `left`) so the call still ends within its deadline.
    async fn fallback_shared(
        &self,
        code: Code,
        req: Option<&PreparedRequest>,
        left: Duration,
    ) -> Fallback {
        let Some((k, c)) = self.lkg_key(req) else {
            return self.fallback_from(code, None);
        };
        let mut hit = c.lookup(&k, self.wall_ms());
        if let (None, Some(r)) = (&hit, &self.redis) {
            if let Some(e) = r.get(&k, left.min(READ_TIMEOUT)).await {
                // Verified (HMAC, maxStale) before it is served or kept locally.
                hit = c.accept_remote(&k, e, self.wall_ms());
            }
        }
        self.fallback_from(code, hit)
    }

    fn fallback_from(&self, code: Code, hit: Option<Hit>) -> Fallback {
        self.circuit.record_fallback(self.now());
        let f = match hit {
            Some(h) => Fallback {
                code,
                source: FallbackSource::Cache,
                body: Some(h.body),
                json: h.json,
                age: Some(h.age),
            },
            None => Fallback {
                code,
                source: FallbackSource::None,
                body: None,
                json: false,
                age: None,
            },
        };
        self.emit(&Event::Fallback {
            code,
            source: f.source,
            age: f.age,
        });
        f
    }

    /// Runs an admitted call to its end. Never panics: a bug inside becomes EINTERNAL.
    pub async fn execute(self: Arc<Self>, permit: Permit, call: Call) -> CallOutcome {
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

    async fn run(&self, permit: Permit, call: Call) -> CallOutcome {
        let deadline_at = Instant::now() + call.deadline.unwrap_or(self.config.deadline);
        self.budget.deposit(self.now());
        let key = match (&self.lkg, call.req.method == Method::GET) {
            (Some(c), true) => Some(cache_key(
                &self.config.name,
                &call.req,
                &c.config().tenant_header,
            )),
            (None, true) if self.config.coalesce => Some(cache_key(
                &self.config.name,
                &call.req,
                &self.config.lkg.tenant_header,
            )),
            _ => None,
        };
        if !self.config.coalesce {
            return self.attempts(permit, &call, key, deadline_at).await;
        }
        let Some(k) = key else {
            return self.attempts(permit, &call, key, deadline_at).await;
        };
        // Identical concurrent GETs: the first leads, the others wait for its outcome.
        enum Role {
            Lead(watch::Sender<Option<CallOutcome>>),
            Follow(Inflight),
            Solo,
        }
        let role = {
            let mut map = self.inflight.lock();
            match map.get(&k) {
                Some(rx) => Role::Follow(rx.clone()),
                // A caller that may abort does not lead: its abort would cancel the others.
                None if call.cancel.is_some() => Role::Solo,
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(k, rx);
                    Role::Lead(tx)
                }
            }
        };
        let mut rx = match role {
            Role::Lead(tx) => return self.lead(permit, &call, k, deadline_at, tx).await,
            Role::Solo => return self.attempts(permit, &call, Some(k), deadline_at).await,
            Role::Follow(rx) => rx,
        };
        self.circuit.release(permit);
        self.emit(&Event::Coalesced);
        let wait = async { rx.wait_for(|o| o.is_some()).await.map(|o| o.clone()) };
        let waited = tokio::select! {
            biased;
            _ = cancelled(call.cancel.as_ref()) => return self.aborted(),
            r = tokio::time::timeout_at(deadline_at, wait) => r,
        };
        match waited {
            Ok(Ok(Some(o))) => o,
            // The leader's deadline outlived ours.
            Err(_) => CallOutcome::Fallback(self.fallback(Code::Timeout, Some(&call.req))),
            // The leader vanished (its future was dropped): go on our own.
            Ok(_) => match self
                .circuit
                .try_acquire(self.now(), &mut |t| self.emit(&Event::Transition(t)))
            {
                Some(p) => self.attempts(p, &call, Some(k), deadline_at).await,
                None => CallOutcome::Fallback(self.rejected(Some(&call.req))),
            },
        }
    }

    async fn lead(
        &self,
        permit: Permit,
        call: &Call,
        k: CacheKey,
        deadline_at: Instant,
        tx: watch::Sender<Option<CallOutcome>>,
    ) -> CallOutcome {
        /// Removes the in-flight entry however the leader ends (even if dropped).
        struct Unregister<'a>(&'a Mutex<HashMap<CacheKey, Inflight>>, CacheKey);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(&self.1);
            }
        }
        let _unregister = Unregister(&self.inflight, k);
        let outcome = self.attempts(permit, call, Some(k), deadline_at).await;
        let _ = tx.send(Some(outcome.clone()));
        outcome
    }

    fn aborted(&self) -> CallOutcome {
        self.emit(&Event::Aborted);
        CallOutcome::Rejected(Rejection::from(CallError::new(
            Code::Aborted,
            "the call was aborted by its AbortSignal",
        )))
    }

    fn finish(&self, guard: &mut PermitGuard<'_>, verdict: Verdict) -> bool {
        match guard.take() {
            Some(p) => self.circuit.on_result(p, verdict, self.now(), &mut |t| {
                self.emit(&Event::Transition(t))
            }),
            None => false,
        }
    }

    async fn attempts(
        &self,
        permit: Permit,
        call: &Call,
        key: Option<CacheKey>,
        deadline_at: Instant,
    ) -> CallOutcome {
        let req = &call.req;
        let retryable_method = method_is_retryable(&req.method, req.has_header(IDEMPOTENCY_KEY));
        let per_attempt = call.timeout.unwrap_or(self.config.timeout);
        let mut guard = PermitGuard {
            circuit: &self.circuit,
            permit: Some(permit),
        };
        let mut attempt: u32 = 1;
        let mut prev_delay = None;
        loop {
            let budget = per_attempt.min(deadline_at.saturating_duration_since(Instant::now()));
            let started = self.now();
            let res = tokio::select! {
                biased;
                _ = cancelled(call.cancel.as_ref()) => return self.aborted(),
                r = tokio::time::timeout(budget, self.http.send(req, self.config.max_response_bytes)) => r,
            };
            let latency = self.now().saturating_sub(started);
            let failure = match res {
                Err(_) => AttemptFailure::of(FailureKind::Timeout),
                Ok(Err(f)) => f,
                Ok(Ok(resp)) => match classify_status(resp.status) {
                    StatusClass::Success => {
                        let json = resp.is_json();
                        if json && !json_is_valid(&resp.body) {
                            AttemptFailure {
                                kind: FailureKind::BadBody,
                                status: Some(resp.status.as_u16()),
                                retry_after: None,
                            }
                        } else {
                            // The attempt's event first, then the transition it may cause.
                            self.emit(&Event::Success {
                                latency,
                                route: call.route.as_deref(),
                            });
                            self.finish(&mut guard, Verdict::Success);
                            self.emit(&Event::Completed(if attempt > 1 {
                                CallKind::SuccessfulWithRetry
                            } else {
                                CallKind::SuccessfulWithoutRetry
                            }));
                            if let (Some(k), Some(c)) = (key, &self.lkg) {
                                let entry = c.entry(&k, resp.body.clone(), json, self.wall_ms());
                                if c.store(k, entry.clone()) {
                                    if let Some(r) = &self.redis {
                                        r.put(&k, &entry);
                                    }
                                }
                            }
                            return CallOutcome::Ok(Success {
                                status: resp.status.as_u16(),
                                headers: resp.headers,
                                body: resp.body,
                                json,
                            });
                        }
                    }
                    StatusClass::ClientError => {
                        let status = resp.status.as_u16();
                        self.emit(&Event::ClientError {
                            latency,
                            status,
                            route: call.route.as_deref(),
                        });
                        self.finish(&mut guard, Verdict::ClientError);
                        self.emit(&Event::Completed(if attempt > 1 {
                            CallKind::FailedWithRetry
                        } else {
                            CallKind::FailedWithoutRetry
                        }));
                        return CallOutcome::Rejected(Rejection {
                            code: Code::Http,
                            message: format!(
                                "DNAStore answered {status} for {} {}",
                                req.method,
                                req.redacted_url()
                            ),
                            status: Some(status),
                            body: Some(resp.body),
                        });
                    }
                    StatusClass::Failure(kind) => AttemptFailure {
                        kind,
                        status: Some(resp.status.as_u16()),
                        retry_after: resp
                            .headers
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                    },
                },
            };
            let kind = failure.kind;
            self.emit(&Event::Failure {
                kind,
                latency,
                route: call.route.as_deref(),
            });
            let tripped = self.finish(&mut guard, Verdict::Failure(kind));

            let may_retry = !tripped
                && attempt < self.config.retry.max_attempts
                && kind.is_transient()
                && retryable_method;
            let mut code = kind.code();
            if may_retry {
                let delay = self.retry_delay(&failure, prev_delay);
                if Instant::now() + delay < deadline_at {
                    if self.budget.try_withdraw(self.now()) {
                        self.circuit.record_retry(self.now());
                        self.emit(&Event::Retry {
                            attempt,
                            delay,
                            reason: kind,
                        });
                        prev_delay = Some(delay);
                        tokio::select! {
                            biased;
                            _ = cancelled(call.cancel.as_ref()) => return self.aborted(),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        match self
                            .circuit
                            .try_acquire(self.now(), &mut |t| self.emit(&Event::Transition(t)))
                        {
                            Some(p) => {
                                guard.permit = Some(p);
                                attempt += 1;
                                continue;
                            }
                            // Opened meanwhile (by other calls): no retry against an open circuit.
                            None => code = Code::OpenBreaker,
                        }
                    } else {
                        self.emit(&Event::RetryBudgetExhausted);
                    }
                }
            }
            self.emit(&Event::Completed(if attempt > 1 {
                CallKind::FailedWithRetry
            } else {
                CallKind::FailedWithoutRetry
            }));
            let get = (req.method == Method::GET).then_some(req);
            return CallOutcome::Fallback(
                self.fallback_shared(
                    code,
                    get,
                    deadline_at.saturating_duration_since(Instant::now()),
                )
                .await,
            );
        }
    }

    /// Retry-After (429/503), capped, or the jittered backoff.
    fn retry_delay(&self, f: &AttemptFailure, prev: Option<Duration>) -> Duration {
        let honoured = matches!(f.status, Some(429) | Some(503));
        if let (true, Some(v)) = (honoured, &f.retry_after) {
            if let Some(d) = parse_retry_after(v, self.wall()) {
                return d.min(self.config.retry.retry_after_max);
            }
        }
        self.backoff.next(prev, self.deps.rng.as_ref())
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;

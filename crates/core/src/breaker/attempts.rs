//! The attempt/retry loop: per-attempt timeout inside the call's deadline, verdicts for the
//! circuit, backoff or Retry-After, the retry budget, and the fallback at the end.

use super::*;

fn json_is_valid(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// Bodies above this are validated on the runtime's blocking pool: parsing 64 KiB takes
/// ~100 µs, longer than the hand-off, and the I/O thread must not stall every other call
/// while a multi-megabyte body is checked.
const INLINE_JSON_CHECK_BYTES: usize = 64 * 1024;
/// The same on a thread that runs JavaScript too (`own_runtime`): ~25 µs of parsing, about
/// what the hand-off costs, so a lone call never holds the JS thread longer than that.
const INLINE_JSON_CHECK_BYTES_OWN_RUNTIME: usize = 16 * 1024;

async fn json_ok(body: &Bytes) -> bool {
    let inline = if crate::own_runtime::this_thread() {
        INLINE_JSON_CHECK_BYTES_OWN_RUNTIME
    } else {
        INLINE_JSON_CHECK_BYTES
    };
    if body.len() <= inline {
        return json_is_valid(body);
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || json_is_valid(&body))
        .await
        .unwrap_or(false)
}

impl Breaker {
    pub(super) fn aborted(&self) -> CallOutcome {
        self.emit(&Event::Aborted);
        CallOutcome::Rejected(Rejection::from(CallError::new(
            Code::Aborted,
            "the call was aborted by its AbortSignal",
        )))
    }

    /// Records an attempt's verdict on the circuit that admitted it (its permit's).
    fn finish(
        &self,
        permit: Permit,
        route: Option<&str>,
        verdict: Verdict,
        latency: Duration,
    ) -> bool {
        let routed = permit.route_circuit().cloned();
        let circuit = self.circuit_of(routed.as_ref());
        if circuit.is_slow(latency) {
            self.metrics.slow_calls.inc();
        }
        circuit.on_result(permit, verdict, latency, self.now(), &mut |t| {
            self.emit_for(routed.is_some(), route, t)
        })
    }

    /// A call the bulkhead refused: the fallback (last-known-good for a GET) with
    /// ECONCURRENCY (the limiter counted it). Nothing reached DNAStore, so the circuit hears
    /// nothing of it.
    async fn shed(&self, call: &Call, deadline_at: Instant) -> CallOutcome {
        let get = (call.req.method == Method::GET).then_some(&call.req);
        let left = deadline_at.saturating_duration_since(Instant::now());
        CallOutcome::Fallback(self.fallback_shared(Code::Concurrency, get, left).await)
    }

    /// Keeps a successful GET's body as last-known-good, as its `Cache-Control` and `Vary`
    /// allow, and queues the shared (Redis) copy when it may be shared.
    fn store_lkg(&self, k: CacheKey, req: &PreparedRequest, resp: &RawResponse, json: bool) {
        let Some(c) = &self.lkg else { return };
        let rules = Cacheability::of(&resp.headers);
        if !rules.storable(self.keys.has_identity(&req.headers)) {
            return;
        }
        let entry = c.entry(
            &k,
            resp.body.clone(),
            json,
            self.wall_ms(),
            rules.vary_key(&req.headers),
        );
        let shared = self.redis.as_ref().map(|r| (r, entry.clone()));
        if c.store(k, entry, rules.shareable()) == Stored::Share {
            if let Some((r, entry)) = shared {
                r.put(&k, &entry);
            }
        }
    }

    /// Waits `delay` before a retry, or less: true if the circuit opened meanwhile (the
    /// next attempt would be short-circuited anyway, so the call settles now).
    async fn backoff(&self, circuit: &Circuit, delay: Duration) -> bool {
        let opened = circuit.opened();
        tokio::pin!(opened);
        // Registered before the check, so an opening in between is not missed.
        opened.as_mut().enable();
        if circuit.is_open_at(self.now()) {
            return true;
        }
        tokio::select! {
            biased;
            _ = opened => true,
            _ = tokio::time::sleep(delay) => false,
        }
    }

    pub(super) async fn attempts(
        &self,
        permit: Permit,
        call: &Call,
        key: Option<CacheKey>,
        deadline_at: Instant,
    ) -> CallOutcome {
        let req = &call.req;
        let retryable_method = method_is_retryable(&req.method, req.has_header(IDEMPOTENCY_KEY));
        let per_attempt = call.timeout.unwrap_or(self.config.timeout);
        // Owned here until its verdict; if this future ends any other way (abort, shutdown,
        // a panic, being dropped), the permit's Drop gives its trial slot back.
        let mut permit = permit;
        // The bulkhead's slot, held across retries and backoff sleeps; its Drop returns it
        // however this future ends.
        let slot = match &self.limiter {
            None => None,
            Some(l) => match l.acquire(deadline_at).await {
                Ok(s) => Some(s),
                Err(_) => {
                    // Not an attempt: a half-open trial slot goes back unused.
                    drop(permit);
                    return self.shed(call, deadline_at).await;
                }
            },
        };
        let mut attempt: u32 = 1;
        let mut prev_delay = None;
        let route = call.route.as_deref();
        loop {
            // The circuit that admitted this attempt (a route's; `None`: the breaker's).
            let routed = permit.route_circuit().cloned();
            let budget = per_attempt.min(deadline_at.saturating_duration_since(Instant::now()));
            // A trial of a circuit that follows the fleet needs one of the round's leases
            // (a route's circuit is local: never).
            let mut lease = None;
            if self.fleet.is_some() && routed.is_none() {
                // Boxed: the lease's Redis future is large, and a call's future is copied
                // whole when it is spawned (`a_call_future_stays_small`).
                match Box::pin(self.trial_lease(&permit, budget)).await {
                    Ok(l) => lease = l,
                    Err(()) => {
                        drop(permit);
                        self.record_short_circuit(self.now());
                        let get = (req.method == Method::GET).then_some(req);
                        return CallOutcome::Fallback(self.rejected(get));
                    }
                }
            }
            // What waiting for the lease took (a slow or hung Redis) comes out of the
            // attempt's time: the call's deadline holds.
            let budget = budget.min(deadline_at.saturating_duration_since(Instant::now()));
            if let Some(t) = &call.trace {
                t.attempt();
            }
            let started = self.now();
            let res = match self.hedging(req) {
                None => tokio::time::timeout(
                    budget,
                    self.http.send(req, self.config.max_response_bytes),
                )
                .await
                .unwrap_or_else(|_| Err(AttemptFailure::of(FailureKind::Timeout))),
                // Boxed: only hedged reads pay for the race's future (see a_call_future_stays_small).
                Some(h) => Box::pin(self.hedged(h, call, attempt, &permit, budget)).await,
            };
            let latency = self.now().saturating_sub(started);
            if let Some(s) = &slot {
                // Latency says something about DNAStore's queue unless the connection
                // itself failed (refused, reset, DNS): those are not service times.
                let measured = match &res {
                    Err(f) => !matches!(
                        f.kind,
                        FailureKind::ConnectionRefused
                            | FailureKind::ConnectionReset
                            | FailureKind::Dns
                            | FailureKind::Connection
                    ),
                    _ => true,
                };
                if measured {
                    s.sample(latency);
                }
            }
            let failure = match res {
                Err(f) => f,
                Ok(resp) => match classify_status(resp.status) {
                    StatusClass::Success => {
                        let json = resp.is_json();
                        if json && !json_ok(&resp.body).await {
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
                            self.finish(permit, route, Verdict::Success, latency);
                            self.report_trial(&mut lease, Verdict::Success, latency);
                            self.emit(&Event::Completed(CallKind::of(true, attempt)));
                            if let Some(k) = key {
                                self.store_lkg(k, req, &resp, json);
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
                        self.finish(permit, route, Verdict::ClientError, latency);
                        self.report_trial(&mut lease, Verdict::ClientError, latency);
                        self.emit(&Event::Completed(CallKind::of(false, attempt)));
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
            if let (Some(t), Some(status)) = (&call.trace, failure.status) {
                t.status(status);
            }
            self.emit(&Event::Failure {
                kind,
                latency,
                route: call.route.as_deref(),
            });
            let tripped = self.finish(permit, route, Verdict::Failure(kind), latency);
            if tripped {
                // DNAStore said when to come back: not before (capped by retryAfterMaxMs).
                if let Some(d) = self.retry_after_of(&failure) {
                    self.circuit_of(routed.as_ref())
                        .hold_open_for(d, self.now());
                }
            }
            // After the hold: a failed fleet trial carries its circuit's open period.
            self.report_trial(&mut lease, Verdict::Failure(kind), latency);

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
                        if let Some(t) = &call.trace {
                            t.retry(attempt, delay, kind);
                        }
                        prev_delay = Some(delay);
                        let circuit = self.circuit_of(routed.as_ref());
                        let next = if self.backoff(circuit, delay).await {
                            None
                        } else {
                            self.reacquire(routed.as_ref(), route)
                        };
                        match next {
                            Some(p) => {
                                permit = p;
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
            self.emit(&Event::Completed(CallKind::of(false, attempt)));
            // No longer in flight: the slot is not held through a Redis fallback lookup.
            drop(slot);
            let get = (req.method == Method::GET).then_some(req);
            let mut f = self
                .fallback_shared(
                    code,
                    get,
                    deadline_at.saturating_duration_since(Instant::now()),
                )
                .await;
            // Kept for the outbox, which waits at least this long before sending it again.
            f.retry_after = self.retry_after_of(&failure);
            return CallOutcome::Fallback(f);
        }
    }

    /// Retry-After (429/503), capped, or the jittered backoff.
    pub(super) fn retry_delay(&self, f: &AttemptFailure, prev: Option<Duration>) -> Duration {
        self.retry_after_of(f)
            .unwrap_or_else(|| self.backoff.next(prev, self.deps.rng.as_ref()))
    }

    /// The Retry-After of a 429/503, capped by retryAfterMaxMs; `None` without a valid one.
    fn retry_after_of(&self, f: &AttemptFailure) -> Option<Duration> {
        let honoured = matches!(f.status, Some(429) | Some(503));
        let v = f.retry_after.as_ref().filter(|_| honoured)?;
        parse_retry_after(v, self.wall()).map(|d| d.min(self.config.retry.retry_after_max))
    }
}

//! The attempt/retry loop: per-attempt timeout inside the call's deadline, verdicts for the
//! circuit, backoff or Retry-After, the retry budget, and the fallback at the end.

use super::*;

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

/// Bodies above this are validated on the runtime's blocking pool: parsing 64 KiB takes
/// ~100 µs, longer than the hand-off, and the I/O thread must not stall every other call
/// while a multi-megabyte body is checked.
const INLINE_JSON_CHECK_BYTES: usize = 64 * 1024;

async fn json_ok(body: &Bytes) -> bool {
    if body.len() <= INLINE_JSON_CHECK_BYTES {
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

    fn finish(&self, guard: &mut PermitGuard<'_>, verdict: Verdict) -> bool {
        match guard.take() {
            Some(p) => self.circuit.on_result(p, verdict, self.now(), &mut |t| {
                self.emit(&Event::Transition(t))
            }),
            None => false,
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
                            self.finish(&mut guard, Verdict::Success);
                            self.emit(&Event::Completed(CallKind::of(true, attempt)));
                            if let (Some(k), Some(c)) = (key, &self.lkg) {
                                let entry = c.entry(&k, resp.body.clone(), json, self.wall_ms());
                                let shared = self.redis.as_ref().map(|r| (r, entry.clone()));
                                if c.store(k, entry) == Stored::Share {
                                    if let Some((r, entry)) = shared {
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
            self.emit(&Event::Completed(CallKind::of(false, attempt)));
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
    pub(super) fn retry_delay(&self, f: &AttemptFailure, prev: Option<Duration>) -> Duration {
        let honoured = matches!(f.status, Some(429) | Some(503));
        if let (true, Some(v)) = (honoured, &f.retry_after) {
            if let Some(d) = parse_retry_after(v, self.wall()) {
                return d.min(self.config.retry.retry_after_max);
            }
        }
        self.backoff.next(prev, self.deps.rng.as_ref())
    }
}

//! Fallbacks: what a failed or short-circuited call resolves to, from the local
//! last-known-good cache, the shared Redis, or nothing.

use super::*;

impl Breaker {
    /// The whole short-circuit in one call, for the binding's argument-free fast path:
    /// when the circuit is open and nothing could be served from a cache, records the call
    /// as fired, rejected and answered by a `none` fallback, and returns true. Otherwise
    /// returns false having changed nothing (the caller then goes through `admit`).
    pub fn try_short_circuit(&self) -> bool {
        let now = self.now();
        if !self.circuit.is_open_at(now) || self.may_serve_cached() {
            return false;
        }
        // Exactly what admit() + rejected(None) record, without the argument conversions.
        self.emit(&Event::Fire);
        self.record_short_circuit(now);
        self.fallback_from(Code::OpenBreaker, None);
        true
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
        match c.lookup(&k, self.wall_ms(), &req.headers) {
            Some(h) => Some(self.fallback_from(Code::OpenBreaker, Some(h))),
            None if self.redis.as_ref().is_some_and(|r| !r.is_down()) => None,
            None => Some(self.fallback_from(Code::OpenBreaker, None)),
        }
    }

    /// The short-circuit answer after asking the shared Redis, waiting at most
    /// min([`READ_TIMEOUT`], `deadline`); ESHUTDOWN at once if `stop` fires first.
    pub async fn rejected_shared(
        self: Arc<Self>,
        req: PreparedRequest,
        deadline: Option<Duration>,
        stop: Option<CancellationToken>,
    ) -> CallOutcome {
        let wait = deadline.unwrap_or(self.config.deadline);
        let stop = stop.unwrap_or_else(|| self.stop.clone());
        tokio::select! {
            biased;
            _ = stop.cancelled() => self.shut_down(),
            f = self.fallback_shared(Code::OpenBreaker, Some(&req), wait) => CallOutcome::Fallback(f),
        }
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
    pub(super) fn lkg_key(&self, req: Option<&PreparedRequest>) -> Option<(CacheKey, &LkgCache)> {
        match (req, &self.lkg) {
            (Some(r), Some(c)) if r.method == Method::GET => {
                Some((self.keys.key(&self.config.name, r), c))
            }
            _ => None,
        }
    }

    pub(super) fn fallback(&self, code: Code, req: Option<&PreparedRequest>) -> Fallback {
        let hit = match (req, self.lkg_key(req)) {
            (Some(r), Some((k, c))) => c.lookup(&k, self.wall_ms(), &r.headers),
            _ => None,
        };
        self.fallback_from(code, hit)
    }

    /// Like [`Breaker::fallback`], but a local miss asks the shared Redis, for at most
    /// min([`READ_TIMEOUT`], `left`) so the call still ends within its deadline.
    pub(super) async fn fallback_shared(
        &self,
        code: Code,
        req: Option<&PreparedRequest>,
        left: Duration,
    ) -> Fallback {
        let (Some(req), Some((k, c))) = (req, self.lkg_key(req)) else {
            return self.fallback_from(code, None);
        };
        let mut hit = c.lookup(&k, self.wall_ms(), &req.headers);
        if let (None, Some(r)) = (&hit, &self.redis) {
            if let Some(e) = r.get(&k, left.min(READ_TIMEOUT)).await {
                // Verified (HMAC, maxStale, vary) before it is served or kept locally.
                hit = c.accept_remote(&k, e, self.wall_ms(), &req.headers);
            }
        }
        self.fallback_from(code, hit)
    }

    pub(super) fn fallback_from(&self, code: Code, hit: Option<Hit>) -> Fallback {
        self.circuit.record_fallback(self.now());
        let f = match hit {
            Some(h) => Fallback {
                code,
                source: FallbackSource::Cache,
                body: Some(h.body),
                json: h.json,
                age: Some(h.age),
                retry_after: None,
            },
            None => Fallback {
                code,
                source: FallbackSource::None,
                body: None,
                json: false,
                age: None,
                retry_after: None,
            },
        };
        self.emit(&Event::Fallback {
            code,
            source: f.source,
            age: f.age,
        });
        f
    }
}

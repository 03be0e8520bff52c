//! Identical concurrent GETs (same key: same URL and every header that may carry identity,
//! see `lkg/key.rs`) share one upstream request: the first leads, the others wait for its
//! outcome. A follower takes the leader's response only where a cache could: a response
//! with `Cache-Control: no-store` or `Vary: *` only by a follower that sent the identical
//! request, one with `Vary` only by followers whose named headers match; a leader's cached
//! fallback is looked up again for the follower's own request.

use super::*;

/// What a leader hands its followers.
#[derive(Clone)]
pub(super) struct Led {
    outcome: CallOutcome,
    /// The leader's request headers, kept only when its response restricts sharing.
    request: Option<Arc<HeaderMap>>,
}

pub(super) type Inflight = watch::Receiver<Option<Led>>;

impl Breaker {
    /// `started`: when the call began (its deadline counts from then).
    pub(super) async fn run(&self, permit: Permit, call: &Call, started: Instant) -> CallOutcome {
        let deadline_at = started + call.deadline.unwrap_or(self.config.deadline);
        self.budget.deposit(self.now());
        let key = (call.req.method == Method::GET && (self.lkg.is_some() || self.config.coalesce))
            .then(|| self.keys.key(&self.config.name, &call.req));
        let Some(k) = key.filter(|_| self.config.coalesce) else {
            return self.attempts(permit, call, key, deadline_at).await;
        };
        enum Role {
            Lead(watch::Sender<Option<Led>>),
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
            Role::Lead(tx) => return self.lead(permit, call, k, deadline_at, tx).await,
            Role::Solo => return self.attempts(permit, call, Some(k), deadline_at).await,
            Role::Follow(rx) => rx,
        };
        // A follower makes no attempt of its own (unless the answer is not for it).
        drop(permit);
        self.emit(&Event::Coalesced);
        let wait = async { rx.wait_for(|o| o.is_some()).await.map(|o| o.clone()) };
        let led = match tokio::time::timeout_at(deadline_at, wait).await {
            Ok(Ok(Some(led))) => led,
            // The leader's deadline outlived ours.
            Err(_) => return CallOutcome::Fallback(self.fallback(Code::Timeout, Some(&call.req))),
            // The leader vanished (its future was dropped): go on our own.
            Ok(_) => return self.solo(call, k, deadline_at).await,
        };
        match led.outcome {
            CallOutcome::Ok(s) => {
                let rules = Cacheability::of(&s.headers);
                let same = !rules.restricts_sharing()
                    || led
                        .request
                        .is_some_and(|theirs| rules.same_answer(&theirs, &call.req.headers));
                if same {
                    CallOutcome::Ok(s)
                } else {
                    self.solo(call, k, deadline_at).await
                }
            }
            // The cached answer the leader found was chosen for the leader's request (its
            // `Vary` headers): look it up for ours.
            CallOutcome::Fallback(f) if f.source == FallbackSource::Cache => {
                let left = deadline_at.saturating_duration_since(Instant::now());
                CallOutcome::Fallback(self.fallback_shared(f.code, Some(&call.req), left).await)
            }
            other => other,
        }
    }

    /// A follower that may not take the leader's answer makes its own call.
    async fn solo(&self, call: &Call, k: CacheKey, deadline_at: Instant) -> CallOutcome {
        match self.acquire_for(call.route.as_deref()) {
            Some(p) => self.attempts(p, call, Some(k), deadline_at).await,
            None => CallOutcome::Fallback(self.rejected(Some(&call.req))),
        }
    }

    pub(super) async fn lead(
        &self,
        permit: Permit,
        call: &Call,
        k: CacheKey,
        deadline_at: Instant,
        tx: watch::Sender<Option<Led>>,
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
        let request = match &outcome {
            CallOutcome::Ok(s) if Cacheability::of(&s.headers).restricts_sharing() => {
                Some(Arc::new(call.req.headers.clone()))
            }
            _ => None,
        };
        let _ = tx.send(Some(Led {
            outcome: outcome.clone(),
            request,
        }));
        outcome
    }
}

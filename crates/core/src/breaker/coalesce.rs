//! Identical concurrent GETs (same cache key) share one upstream request: the first
//! leads, the others wait for its outcome.

use super::*;

impl Breaker {
    pub(super) async fn run(&self, permit: Permit, call: Call) -> CallOutcome {
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

    pub(super) async fn lead(
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
}

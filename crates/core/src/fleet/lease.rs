//! Trial leases, asked for on the call path by a call that would be a half-open trial of a
//! circuit that follows the fleet. One script (`LEASE`) takes a free lease of the round or
//! says how long they are all held; it waits on Redis at most `redisResponseTimeoutMs`
//! (and the call's deadline). A lease ends in a report of the trial's outcome or, when the
//! call ended without a verdict (aborted, dropped), is given back; both are sent to the
//! fleet's task, so the caller never waits for them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::LeaseResult;
use super::scripts::LEASE;
use super::{Cmd, FleetCircuit, Shared};

/// What a would-be trial is told.
pub enum LeaseAsk {
    /// This call is the trial of its lease.
    Granted(TrialLease),
    /// Every lease of the round is held elsewhere (or the round just ended): the call
    /// gets the fallback, as a short-circuited one.
    Held,
    /// No fleet round to lease from (the fleet has no open decision, or Redis failed or
    /// was too slow): the call is a trial of the local circuit, as without the fleet.
    Local,
}

/// One lease of a round, held by the call making the trial.
pub struct TrialLease {
    shared: Arc<Shared>,
    key: String,
    token: String,
    generation: u64,
    /// The state the round belongs to (what the outcome's compare-and-set expects).
    expected: Vec<u8>,
    reported: bool,
}

impl TrialLease {
    /// The trial's outcome: a success counts towards closing the fleet, a failure (or a
    /// slow answer) reopens it for everyone, for `open`: the period the trial's circuit
    /// chose (ms from now, grown by its failed trials in a row, or held by a Retry-After)
    /// and those failed trials, so every replica stays open that long and grows from there.
    pub fn report(mut self, ok: bool, open: Option<(u64, u32)>) {
        self.reported = true;
        let _ = self.shared.tx.send(Cmd::Report {
            key: std::mem::take(&mut self.key),
            token: std::mem::take(&mut self.token),
            generation: self.generation,
            expected: std::mem::take(&mut self.expected),
            ok,
            open: if ok { None } else { open },
        });
    }
}

impl Drop for TrialLease {
    /// Ended without a verdict: the lease goes back at once (it would expire anyway).
    fn drop(&mut self) {
        if !self.reported {
            let _ = self.shared.tx.send(Cmd::Release {
                key: std::mem::take(&mut self.key),
                token: std::mem::take(&mut self.token),
            });
        }
    }
}

impl FleetCircuit {
    /// Asks for a lease of the fleet's current round for a trial whose attempt may take
    /// `ttl`, waiting on Redis at most `limit`.
    pub async fn lease(&self, ttl: Duration, limit: Duration) -> LeaseAsk {
        let s = &self.shared;
        if s.link_state.load(Ordering::Acquire) != super::LINK_UP {
            return LeaseAsk::Local;
        }
        let now = s.wall_ms();
        let (expected, generation, me) = {
            let v = s.view.lock();
            match v.current() {
                // Leases are of a round that is on: never before the fleet's open period ends.
                Some(r) if r.open && !v.round_on(now) => return LeaseAsk::Held,
                Some(r) if r.open => (v.expected().to_vec(), r.generation, v.me().to_string()),
                _ => return LeaseAsk::Local,
            }
        };
        let token = format!("{me}/{:016x}", s.random());
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut inv = LEASE.key(&s.keys.state);
        for i in 1..=s.settings.trials {
            inv.key(s.keys.lease(generation, i));
        }
        inv.arg(&expected[..]).arg(&token).arg(ttl_ms);
        let full = self.response_timeout();
        let asked = tokio::time::timeout(limit.min(full), s.link.run::<(i64, Vec<u8>)>(&inv)).await;
        let reason = match asked {
            Ok(Ok((1, slot))) => {
                let i: u32 = std::str::from_utf8(&slot)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(1);
                s.metrics.lease(LeaseResult::Granted);
                return LeaseAsk::Granted(TrialLease {
                    shared: s.clone(),
                    key: s.keys.lease(generation, i),
                    token,
                    generation,
                    expected,
                    reported: false,
                });
            }
            Ok(Ok((0, wait))) => {
                s.metrics.lease(LeaseResult::Held);
                let ms = std::str::from_utf8(&wait)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                    .filter(|m| *m > 0)
                    .map_or(ttl_ms, |m| (m as u64).min(ttl_ms));
                if let Some(h) = s.host.upgrade() {
                    h.hold_trials(ms);
                }
                return LeaseAsk::Held;
            }
            Ok(Ok((_, state))) => {
                // The round is over (another replica's trial decided): follow what it decided.
                s.metrics.lease(LeaseResult::Held);
                s.see_state((!state.is_empty()).then_some(&state[..]), false);
                return LeaseAsk::Held;
            }
            Ok(Err(e)) => e,
            // The call's deadline was nearer than redisResponseTimeoutMs: Redis may be
            // fine, and a trial without a lease could be one too many.
            Err(_) if limit < full => {
                s.metrics.lease(LeaseResult::Error);
                return LeaseAsk::Held;
            }
            Err(_) => s.link.client().no_reply(),
        };
        s.metrics.lease(LeaseResult::Error);
        s.disconnected(&reason);
        let _ = s.tx.send(Cmd::Broken(reason));
        LeaseAsk::Local
    }
}

//! Hedged reads in the attempt loop: the race of `hedge/` given this breaker's HTTP client,
//! what a hedge may take (a closed circuit, a bulkhead slot free now, the retry budget),
//! and where its results go (events, counts, the call's trace). The policy and its
//! decisions are documented in `hedge/mod.rs`.

use super::*;
use crate::circuit::HedgeStats;
use crate::config::{HedgeConfig, HedgeDelay};
use crate::hedge::{race, Hedger, Raced, Settles};
use crate::limit::Slot;
use crate::observer::{HedgeResult, HedgeSkip};

type Sent = Result<RawResponse, AttemptFailure>;

/// A finished copy as the race judges it: an answer (2xx, or a 4xx: the caller's mistake,
/// the same answer from any copy) wins; a failure waits for the other copies.
fn settles(out: &Sent) -> Settles {
    match out {
        Ok(r) => match classify_status(r.status) {
            StatusClass::Success | StatusClass::ClientError => Settles::Answer,
            StatusClass::Failure(_) => Settles::Failure { informative: true },
        },
        Err(f) => Settles::Failure {
            informative: f.status.is_some(),
        },
    }
}

impl Breaker {
    /// This breaker's hedging policy, from `hedgeAfterMs` and `hedgeMax`.
    pub(super) fn hedger(h: &HedgeConfig, config: &Config, metrics: &BreakerMetrics) -> Hedger {
        let fixed = match h.delay {
            HedgeDelay::Fixed(d) => Some(d),
            HedgeDelay::Auto => None,
        };
        let (window, buckets) = (config.rolling_count_timeout, config.rolling_count_buckets);
        Hedger::new(fixed, h.max, window, buckets, metrics.hedge())
    }

    /// `stats().hedges`: the hedges over the circuit's rolling window.
    pub(super) fn hedge_stats(&self, h: &Hedger) -> HedgeStats {
        let w = self.circuit.window_time(self.now());
        HedgeStats {
            won: h.total(w, HedgeResult::Won),
            lost: h.total(w, HedgeResult::Lost),
            skipped: h.total(w, HedgeResult::Skipped),
        }
    }

    /// The hedging policy for an attempt of `req`: `None` for a write, or without hedging.
    pub(super) fn hedging(&self, req: &PreparedRequest) -> Option<&Hedger> {
        self.hedge.as_ref().filter(|_| Hedger::hedges(&req.method))
    }

    /// Attempt `attempt` of a read, hedged, within `limit`: what one send would give (a
    /// timeout as an ETIMEDOUT failure). `permit`: the attempt's (a trial is never hedged,
    /// nor an attempt of a circuit not closed: the one that admitted it).
    pub(super) async fn hedged(
        &self,
        h: &Hedger,
        call: &Call,
        attempt: u32,
        permit: &Permit,
        limit: Duration,
    ) -> Sent {
        let circuit = self.circuit_of(permit.route_circuit());
        let trial = permit.is_trial();
        let (req, max_body) = (&call.req, self.config.max_response_bytes);
        let raced = race(
            h.delay(self.now()),
            h.max(),
            limit,
            || self.http.send(req, max_body),
            settles,
            || self.admit_hedge(circuit, trial),
            |latency| h.sample(self.now(), latency),
        )
        .await;
        self.report_hedges(h, call, attempt, &raced);
        raced
            .out
            .unwrap_or_else(|| Err(AttemptFailure::of(FailureKind::Timeout)))
    }

    /// Whether a hedge due now may be sent: what it holds while it runs (its bulkhead slot),
    /// or why not. Checked in this order so that a refusal costs nothing: the circuit (a
    /// load), a slot (given back if the budget then refuses), the budget (spent for good).
    fn admit_hedge(&self, circuit: &Circuit, trial: bool) -> Result<Option<Slot<'_>>, HedgeSkip> {
        if trial || circuit.state() != StateKind::Closed {
            return Err(HedgeSkip::Circuit);
        }
        let slot = match &self.limiter {
            None => None,
            Some(l) => Some(l.try_acquire_now().ok_or(HedgeSkip::Bulkhead)?),
        };
        if !self.budget.try_withdraw(self.now()) {
            return Err(HedgeSkip::Budget);
        }
        Ok(slot)
    }

    /// Counts, events and the trace for the hedges of one attempt.
    fn report_hedges(&self, h: &Hedger, call: &Call, attempt: u32, raced: &Raced<Sent>) {
        let w = self.circuit.window_time(self.now());
        let answered = raced.out.as_ref().map(settles) == Some(Settles::Answer);
        let note = |result: HedgeResult, after: Duration, skip: Option<HedgeSkip>| {
            h.count(w, result);
            self.emit(&Event::Hedge {
                result,
                attempt,
                after,
                skip,
            });
            if let Some(t) = &call.trace {
                t.hedge(attempt, result, after, skip);
            }
        };
        for (i, after) in raced.sent.iter().enumerate() {
            let won = answered && raced.copy as usize == i + 1;
            let result = if won {
                HedgeResult::Won
            } else {
                HedgeResult::Lost
            };
            note(result, *after, None);
        }
        if let Some((after, why)) = raced.skipped {
            note(HedgeResult::Skipped, after, Some(why));
        }
    }
}

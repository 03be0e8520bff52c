//! The circuit state machine: closed -> open -> half-open -> closed/open.
//!
//! State is an enum carrying its data (recloser style). One `parking_lot` mutex guards it;
//! the open state is mirrored in an atomic deadline so the short-circuit path
//! ([`Circuit::try_acquire`] while open) is a single atomic load, no lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::Config;
use crate::error::FailureKind;
use crate::observer::{FleetNote, StateKind, Transition, TransitionReason};
use crate::window::{AtomicWindow, RollingWindow, WindowClock};

mod fleet;
mod force;
mod open_time;
mod per_route;
mod permit;
mod stats;
pub use force::{Control, Forced};
pub use open_time::OpenTime;
pub use per_route::RouteCircuits;
pub use permit::Permit;
pub use stats::{BucketCounts, BulkheadStats, HedgeStats, Stats};

/// The state-machine subset of [`Config`].
#[derive(Clone, Debug)]
pub struct CircuitConfig {
    /// Failure percentage that opens the circuit; 0 opens it on any failure (not a table
    /// value: opossum's `errorThresholdPercentage: 0`, mapped by the class).
    pub error_threshold_percentage: u32,
    pub reset_timeout: Duration,
    pub rolling_count_timeout: Duration,
    pub rolling_count_buckets: u32,
    pub volume_threshold: u32,
    pub max_failures: u32,
    pub half_open_max_calls: u32,
    /// A call slower than this counts as slow (`slowCallDurationMs`); `None`: off.
    pub slow_call_duration: Option<Duration>,
    /// Slow-call percentage that opens the circuit (`slowCallRateThreshold`).
    pub slow_call_rate_threshold: u32,
    /// The window's buckets move on [`Circuit::rotate`] only, not with time (opossum's
    /// `rotateBucketController`); the state's timers still run on the clock.
    pub rotated_by_caller: bool,
}

impl From<&Config> for CircuitConfig {
    fn from(c: &Config) -> Self {
        Self {
            error_threshold_percentage: c.error_threshold_percentage,
            reset_timeout: c.reset_timeout,
            rolling_count_timeout: c.rolling_count_timeout,
            rolling_count_buckets: c.rolling_count_buckets,
            volume_threshold: c.volume_threshold,
            max_failures: c.max_failures,
            half_open_max_calls: c.half_open_max_calls,
            slow_call_duration: c.slow_calls.duration,
            slow_call_rate_threshold: c.slow_calls.rate_threshold,
            rotated_by_caller: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Closed,
    Open { until: Duration },
    HalfOpen { admitted: u32, succeeded: u32 },
}

impl State {
    fn kind(&self) -> StateKind {
        match self {
            State::Closed => StateKind::Closed,
            State::Open { .. } => StateKind::Open,
            State::HalfOpen { .. } => StateKind::HalfOpen,
        }
    }
}

/// An attempt's result as the breaker judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// The upstream answered (4xx): healthy, but the caller's mistake.
    ClientError,
    Failure(FailureKind),
}

#[derive(Debug)]
struct Inner {
    state: State,
    entered: Duration,
    generation: u64,
    consecutive_failures: u32,
    window: RollingWindow,
    /// The fleet decision the current state follows (`fleetCircuit`); `None`: the state
    /// is this replica's own. Kept from a fleet open into its half-open, whose trials are
    /// then leased fleet-wide (`fleet.rs`); any local decision clears it.
    fleet: Option<Arc<FleetNote>>,
    /// While half-open for the fleet: no trial is admitted before this clock time, every
    /// trial lease of the round being held elsewhere (`fleet.rs`).
    trial_hold_until: Duration,
    /// An operator's forced state over the state machine (`force.rs`); `None`: automatic.
    forced: Option<Forced>,
    /// Failed trials in a row, for the open period's growth (`open_time.rs`).
    failed_trials: u32,
}

pub struct Circuit {
    cfg: CircuitConfig,
    /// Shared with trial permits, which give their slot back on drop.
    inner: Arc<Mutex<Inner>>,
    /// Woken on every transition to open, so calls sleeping before a retry settle at once.
    opened: Notify,
    /// Nanoseconds (clock time) until which the circuit is open; 0 when not open.
    open_until: AtomicU64,
    state: AtomicU8,
    trips: AtomicU64,
    fires: AtomicWindow,
    rejects: AtomicWindow,
    fallbacks: AtomicWindow,
    retries: AtomicWindow,
    /// Until this clock time (ns) the rates cannot open the circuit (opossum's allowWarmUp).
    hold_closed_until: AtomicU64,
    /// The windows' time: the clock, or the caller's rotations.
    clock: WindowClock,
    /// How long it stays open, how long a half-open round may take (`open_time.rs`).
    open_time: OpenTime,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl Circuit {
    pub fn new(cfg: CircuitConfig) -> Self {
        let (w, b) = (cfg.rolling_count_timeout, cfg.rolling_count_buckets);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: State::Closed,
                entered: Duration::ZERO,
                generation: 0,
                consecutive_failures: 0,
                window: RollingWindow::new(w, b),
                fleet: None,
                trial_hold_until: Duration::ZERO,
                forced: None,
                failed_trials: 0,
            })),
            opened: Notify::new(),
            open_until: AtomicU64::new(0),
            state: AtomicU8::new(StateKind::Closed as u8),
            trips: AtomicU64::new(0),
            fires: AtomicWindow::new(w, b),
            rejects: AtomicWindow::new(w, b),
            fallbacks: AtomicWindow::new(w, b),
            retries: AtomicWindow::new(w, b),
            hold_closed_until: AtomicU64::new(0),
            clock: WindowClock::new(w, b, cfg.rotated_by_caller),
            open_time: OpenTime::default(),
            cfg,
        }
    }

    /// The state as last recorded (open stays open until a call finds resetTimeout elapsed).
    pub fn state(&self) -> StateKind {
        StateKind::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Lock-free: open, with resetTimeout not yet elapsed at `now`.
    pub fn is_open_at(&self, now: Duration) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && nanos(now) < until
    }

    /// Time left before an open circuit admits a trial; `None` when not open at `now`.
    pub fn open_for(&self, now: Duration) -> Option<Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        (until != 0 && nanos(now) < until).then(|| Duration::from_nanos(until - nanos(now)))
    }

    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Asks to make one attempt. `None` means short-circuit: no I/O, answer with the fallback.
    /// Lock-free while open and resetTimeout has not elapsed.
    pub fn try_acquire(&self, now: Duration, emit: &mut dyn FnMut(&Transition)) -> Option<Permit> {
        let until = self.open_until.load(Ordering::Acquire);
        if until != 0 && nanos(now) < until {
            return None;
        }
        let mut g = self.inner.lock();
        if let Some(f) = g.forced {
            return Self::forced_permit(&g, f);
        }
        match g.state {
            State::Closed => Some(Permit {
                generation: g.generation,
                trial: None,
                circuit: None,
            }),
            State::Open { until } => {
                if now < until {
                    return None;
                }
                // The fleet's round: no trial while its leases are all held elsewhere.
                let held = self.trials_held(&g, now);
                self.transition(
                    &mut g,
                    State::HalfOpen {
                        admitted: u32::from(!held),
                        succeeded: 0,
                    },
                    TransitionReason::ResetTimeoutElapsed,
                    now,
                    emit,
                );
                (!held).then(|| Permit {
                    generation: g.generation,
                    trial: Some(self.inner.clone()),
                    circuit: None,
                })
            }
            State::HalfOpen {
                admitted,
                succeeded,
            } => {
                if self.round_expired(&g, now) {
                    self.open(&mut g, TransitionReason::HalfOpenTimeout, now, emit);
                    return None;
                }
                if admitted >= self.cfg.half_open_max_calls || self.trials_held(&g, now) {
                    return None;
                }
                g.state = State::HalfOpen {
                    admitted: admitted + 1,
                    succeeded,
                };
                Some(Permit {
                    generation: g.generation,
                    trial: Some(self.inner.clone()),
                    circuit: None,
                })
            }
        }
    }

    /// Whether an attempt that took `latency` is slow: strictly longer than
    /// `slowCallDurationMs` (resilience4j's rule; a call of exactly the duration is not).
    pub fn is_slow(&self, latency: Duration) -> bool {
        self.cfg.slow_call_duration.is_some_and(|d| latency > d)
    }

    /// Records an attempt's result and how long it took (for slow-call counting). Returns
    /// true if this result opened the circuit.
    pub fn on_result(
        &self,
        mut permit: Permit,
        verdict: Verdict,
        latency: Duration,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) -> bool {
        // The verdict settles the slot: the permit must not also give it back.
        permit.trial = None;
        let slow = self.is_slow(latency);
        let w = self.clock.at(now);
        let mut g = self.inner.lock();
        {
            let c = g.window.current(w);
            c.slow += slow as u64;
            match verdict {
                Verdict::Success => c.successes += 1,
                Verdict::ClientError => c.client_errors += 1,
                Verdict::Failure(kind) => {
                    c.failures += 1;
                    if kind == FailureKind::Timeout {
                        c.timeouts += 1;
                    }
                }
            }
        }
        // Stale, or forced: counted above, moves nothing.
        if permit.generation != g.generation || g.forced.is_some() {
            return false;
        }
        match (g.state, verdict) {
            (State::Closed, _) => {
                // Evaluated after every call, as resilience4j does: reaching the volume
                // threshold with a success can still find the rate at the threshold.
                if matches!(verdict, Verdict::Failure(_)) {
                    g.consecutive_failures += 1;
                } else {
                    g.consecutive_failures = 0;
                }
                let totals = g.window.totals(w);
                let reason = if nanos(now) < self.hold_closed_until.load(Ordering::Relaxed) {
                    None
                } else if self.cfg.max_failures > 0
                    && g.consecutive_failures >= self.cfg.max_failures
                {
                    Some(TransitionReason::ConsecutiveFailures)
                } else if totals.failures > 0
                    && totals.calls() >= self.cfg.volume_threshold as u64
                    && totals.failure_percent() >= self.cfg.error_threshold_percentage as f64
                {
                    Some(TransitionReason::FailureRate)
                } else if self.cfg.slow_call_duration.is_some()
                    && totals.calls() > 0
                    && totals.calls() >= self.cfg.volume_threshold as u64
                    && totals.slow_percent() >= self.cfg.slow_call_rate_threshold as f64
                {
                    Some(TransitionReason::SlowCalls)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    self.open(&mut g, reason, now, emit);
                    return true;
                }
                false
            }
            (State::HalfOpen { .. }, Verdict::Failure(_)) => {
                g.consecutive_failures += 1;
                self.open(&mut g, TransitionReason::TrialFailed, now, emit);
                true
            }
            // A trial that answered, but slowly: DNAStore is not healthy yet (closing now
            // would only reopen once the window filled with slow calls again).
            (State::HalfOpen { .. }, _) if slow => {
                self.open(&mut g, TransitionReason::SlowCalls, now, emit);
                true
            }
            (
                State::HalfOpen {
                    admitted,
                    succeeded,
                },
                _,
            ) => {
                let succeeded = succeeded + 1;
                if succeeded >= self.cfg.half_open_max_calls {
                    self.transition(
                        &mut g,
                        State::Closed,
                        TransitionReason::TrialsSucceeded,
                        now,
                        emit,
                    );
                    g.window.reset();
                } else {
                    g.state = State::HalfOpen {
                        admitted,
                        succeeded,
                    };
                }
                false
            }
            (State::Open { .. }, _) => false,
        }
    }

    /// Resolves when the circuit next opens (from closed or half-open). Create it, then
    /// check [`Circuit::is_open_at`], so an opening in between is not missed
    /// (`Notified::enable`).
    pub fn opened(&self) -> tokio::sync::futures::Notified<'_> {
        self.opened.notified()
    }

    pub fn record_fire(&self, now: Duration) {
        self.fires.add(self.clock.at(now), 1);
    }

    pub fn record_reject(&self, now: Duration) {
        let w = self.clock.at(now);
        self.fires.add(w, 1);
        self.rejects.add(w, 1);
    }

    pub fn record_fallback(&self, now: Duration) {
        self.fallbacks.add(self.clock.at(now), 1);
    }

    pub fn record_retry(&self, now: Duration) {
        self.retries.add(self.clock.at(now), 1);
    }

    /// The time the windows see at clock time `now` (for windows kept beside the circuit).
    pub fn window_time(&self, now: Duration) -> Duration {
        self.clock.at(now)
    }

    /// Moves the window one bucket on, if its buckets move on the caller's rotations;
    /// answers whether they do.
    pub fn rotate(&self) -> bool {
        self.clock.rotate()
    }

    /// Results before `until` (clock time) cannot open the circuit: a warm-up period in
    /// which the window fills before its rate means anything (opossum's `allowWarmUp`).
    pub fn hold_closed_until(&self, until: Duration) {
        self.hold_closed_until
            .store(nanos(until), Ordering::Relaxed);
    }

    /// Moves the circuit to `to` from whatever state it is in: an operator's `open()` or
    /// `close()`, a failed health check, a restored state. Permits of the old state become
    /// stale. A manual close clears the window, as a trial-success close does, so the old
    /// failures cannot reopen it at the next call. Returns false if it was already in `to`.
    pub fn force(&self, to: StateKind, now: Duration, emit: &mut dyn FnMut(&Transition)) -> bool {
        let c = match to {
            StateKind::ForcedOpen => Control::Open,
            StateKind::Disabled => Control::Disable,
            machine => return self.move_to(machine, now, emit),
        };
        self.control(c, now, emit)
    }

    /// [`Circuit::force`] into a state of the state machine.
    fn move_to(&self, to: StateKind, now: Duration, emit: &mut dyn FnMut(&Transition)) -> bool {
        let mut g = self.inner.lock();
        if g.state.kind() == to {
            return false;
        }
        let reason = TransitionReason::Manual;
        match to {
            StateKind::Open => self.open(&mut g, reason, now, emit),
            StateKind::HalfOpen => {
                let half = State::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                };
                self.transition(&mut g, half, reason, now, emit);
            }
            _ => {
                self.transition(&mut g, State::Closed, reason, now, emit);
                g.window.reset();
            }
        }
        true
    }

    /// Makes an open circuit whose resetTimeout has elapsed half-open now, without
    /// admitting a call (opossum's reset timer; [`Circuit::try_acquire`] makes the same
    /// move lazily). Returns the time left while it is still open, `None` otherwise.
    pub fn poll_half_open(
        &self,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) -> Option<Duration> {
        let mut g = self.inner.lock();
        let State::Open { until } = g.state else {
            return None;
        };
        if g.forced.is_some() {
            return None;
        }
        if now < until {
            return Some(until - now);
        }
        let half = State::HalfOpen {
            admitted: 0,
            succeeded: 0,
        };
        self.transition(
            &mut g,
            half,
            TransitionReason::ResetTimeoutElapsed,
            now,
            emit,
        );
        None
    }

    /// Opens the circuit from any state (tests of stale permits).
    #[cfg(test)]
    pub(crate) fn force_open_for_test(&self, now: Duration) {
        let mut g = self.inner.lock();
        self.open(&mut g, TransitionReason::TrialFailed, now, &mut |_| {});
    }

    fn open(
        &self,
        g: &mut Inner,
        reason: TransitionReason,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) {
        let failed = Self::failed_trials(g);
        self.open_until(g, now + self.open_period(failed), reason, now, emit);
    }

    /// Opens until `until` (clock time): resetTimeout from now, or the fleet's own end.
    fn open_until(
        &self,
        g: &mut Inner,
        until: Duration,
        reason: TransitionReason,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.transition(g, State::Open { until }, reason, now, emit);
        self.opened.notify_waiters();
    }

    fn transition(
        &self,
        g: &mut Inner,
        to: State,
        reason: TransitionReason,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) {
        let from = g.state.kind();
        // A fleet decision carries its note (set by the caller); a fleet open's half-open
        // keeps it (its trials are leased); every local decision is the replica's own.
        if !matches!(
            reason,
            TransitionReason::Fleet | TransitionReason::ResetTimeoutElapsed
        ) {
            g.fleet = None;
        }
        let totals = g.window.totals(self.clock.at(now));
        let t = Transition {
            from,
            to: to.kind(),
            reason,
            failures: totals.failures,
            calls: totals.calls(),
            failure_percent: totals.failure_percent(),
            slow_calls: totals.slow,
            slow_percent: totals.slow_percent(),
            consecutive_failures: g.consecutive_failures,
            time_in_previous: now.saturating_sub(g.entered),
            trips: self.trips(),
            fleet: g.fleet.clone(),
        };
        g.state = to;
        g.entered = now;
        g.generation += 1;
        if to.kind() != StateKind::HalfOpen {
            g.consecutive_failures = 0;
        }
        // While forced, the state machine moves underneath (a fleet decision, the opossum
        // class's open()) unseen: the forced state is what callers see.
        if g.forced.is_none() {
            self.publish(g);
            emit(&t);
        }
    }
}

#[cfg(test)]
mod tests;

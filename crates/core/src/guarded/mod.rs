//! A circuit around work the caller runs itself: the opossum-compatible `CircuitBreaker`
//! class wraps any async function, so the action, its timeout timer and the fallback run
//! in JS, and only the decisions live here. Per call the caller crosses twice:
//! [`Guarded::admit`] (a slot holding the circuit's permit, or why not) and
//! [`Guarded::record`] (the verdict, timed from admission).
//!
//! The same [`Circuit`] as a fetch breaker decides, so thresholds, half-open trials, stale
//! results and counts behave the same; the same series as a breaker's ([`BreakerMetrics`])
//! carry the `name` label. Transitions are queued for the caller to emit and log synchronously, in
//! the order they happened (opossum emits `open` before the call's fallback runs).

mod latency;
mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::breaker::BreakerMetrics;
use crate::circuit::{BucketCounts, Circuit, CircuitConfig, Stats, Verdict};
use crate::config::Config;
use crate::error::FailureKind;
use crate::metrics::{EventMetrics, DEFAULT_MAX_ROUTES};
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind, Transition};
use crate::window::AtomicWindow;

use latency::LatencyWindow;
use slots::Slots;

pub use latency::PERCENTILES;

/// Why a call was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The circuit is open, or half-open with its trial slots taken (EOPENBREAKER).
    Open,
    /// `capacity` calls are already running (ESEMLOCKED).
    Capacity,
    /// The breaker was shut down (ESHUTDOWN).
    Shutdown,
}

/// How the caller's action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The action threw or rejected.
    Failure,
    /// The caller's timer fired first.
    Timeout,
    /// The action threw, but the caller's errorFilter says it is no sign of ill health
    /// (a 404, a validation error): a healthy answer, as a fetch breaker's 4xx is.
    Filtered,
    /// The caller's timer fired, and its errorFilter accepts timeouts: healthy for the
    /// circuit (as [`Outcome::Filtered`]), still counted in `timeouts` (opossum does both).
    FilteredTimeout,
}

/// Counters the circuit does not keep, served with its stats (opossum's `stats` shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A call that never reached admission (disabled breaker, answered from a cache).
    Fire,
    CacheHit,
    CacheMiss,
    CoalesceHit,
    CoalesceMiss,
    /// The caller's fallback function answered.
    Fallback,
}

/// The settings a guarded circuit takes beyond the table's circuit options.
#[derive(Clone, Debug)]
pub struct GuardedConfig {
    pub circuit: CircuitConfig,
    /// The `name` label of its metric series (see [`metric_label`]).
    pub label: String,
    /// Most calls running at once; `None`: unbounded.
    pub capacity: Option<usize>,
    /// The first rollingCountTimeout cannot open the circuit (opossum's `allowWarmUp`).
    pub warm_up: bool,
}

/// Circuits alive in the process, so a scrape refreshes their derived gauges.
static LIVE: LazyLock<Mutex<Vec<Weak<Guarded>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Refreshes the scrape-time gauges (the failure rate) of every live guarded circuit.
pub fn refresh_gauges() {
    let live: Vec<Arc<Guarded>> = {
        let mut l = LIVE.lock();
        l.retain(|w| w.strong_count() > 0);
        l.iter().filter_map(Weak::upgrade).collect()
    };
    for g in live {
        g.refresh_gauges();
    }
}

impl GuardedConfig {
    pub fn new(config: &Config, name: &str) -> Self {
        Self {
            circuit: CircuitConfig::from(config),
            label: metric_label(name),
            capacity: None,
            warm_up: false,
        }
    }
}

/// A metric label for any caller-chosen name (opossum names are free text, a function's
/// name or a UUID): the characters the `name` option accepts, others as `_`, 1-64 of them.
pub fn metric_label(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "circuit".into()
    } else {
        s
    }
}

/// One bucket of the window: the circuit's counts plus the ones kept here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardedBucket {
    pub circuit: BucketCounts,
    pub semaphore_rejections: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub coalesce_hits: u64,
    pub coalesce_misses: u64,
}

/// Stats: the circuit's counts plus the ones kept here.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardedStats {
    pub circuit: Stats,
    pub semaphore_rejections: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub coalesce_hits: u64,
    pub coalesce_misses: u64,
    /// Mean latency (ms) of the calls in the window; 0 when it holds none.
    pub latency_mean_ms: f64,
    /// Latency (ms) at each of [`PERCENTILES`].
    pub percentiles_ms: [f64; PERCENTILES.len()],
}

pub struct Guarded {
    circuit: Circuit,
    metrics: BreakerMetrics,
    origin: Instant,
    slots: Mutex<Slots>,
    /// Transitions not yet taken by the caller, oldest first.
    transitions: Mutex<Vec<Transition>>,
    latency: Mutex<LatencyWindow>,
    semaphore_rejections: AtomicWindow,
    /// Timeouts the errorFilter accepted: not in the circuit's counts, added to `timeouts`.
    filtered_timeouts: AtomicWindow,
    cache_hits: AtomicWindow,
    cache_misses: AtomicWindow,
    coalesce_hits: AtomicWindow,
    coalesce_misses: AtomicWindow,
    shut: AtomicBool,
    /// The caller answers refused calls with a fallback function: counted at admission, so
    /// an open circuit's call crosses the boundary once.
    fallback_on_refusal: AtomicBool,
    /// End of the warm-up period on this breaker's clock (zero: none).
    warm_until: Duration,
}

impl Guarded {
    pub fn new(cfg: GuardedConfig) -> Self {
        let (w, b) = (
            cfg.circuit.rolling_count_timeout,
            cfg.circuit.rolling_count_buckets,
        );
        let metrics = BreakerMetrics::new(&cfg.label, DEFAULT_MAX_ROUTES);
        let g = Self {
            circuit: Circuit::new(cfg.circuit),
            metrics,
            origin: Instant::now(),
            slots: Mutex::new(Slots::new(cfg.capacity)),
            transitions: Mutex::new(Vec::new()),
            latency: Mutex::new(LatencyWindow::new(w, b)),
            semaphore_rejections: AtomicWindow::new(w, b),
            filtered_timeouts: AtomicWindow::new(w, b),
            cache_hits: AtomicWindow::new(w, b),
            cache_misses: AtomicWindow::new(w, b),
            coalesce_hits: AtomicWindow::new(w, b),
            coalesce_misses: AtomicWindow::new(w, b),
            shut: AtomicBool::new(false),
            fallback_on_refusal: AtomicBool::new(false),
            warm_until: if cfg.warm_up { w } else { Duration::ZERO },
        };
        g.circuit.hold_closed_until(g.warm_until);
        g
    }

    /// A shared circuit whose gauges [`refresh_gauges`] keeps current at each scrape.
    pub fn shared(cfg: GuardedConfig) -> Arc<Self> {
        let g = Arc::new(Self::new(cfg));
        LIVE.lock().push(Arc::downgrade(&g));
        g
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Metrics see a transition at once; the caller takes it with [`Guarded::take_transitions`].
    fn emitter<'a>(
        metrics: &'a EventMetrics,
        queue: &'a Mutex<Vec<Transition>>,
    ) -> impl FnMut(&Transition) + 'a {
        move |t| {
            metrics.on_event(&Event::Transition(t));
            queue.lock().push(t.clone());
        }
    }

    /// Asks to run one call: a slot to [`Guarded::record`] its end with, or why not.
    /// Lock-free while the circuit is open.
    pub fn admit(&self) -> Result<u32, Refusal> {
        if self.shut.load(Ordering::Acquire) {
            return Err(Refusal::Shutdown);
        }
        let now = self.now();
        let mut emit = Self::emitter(&self.metrics.events, &self.transitions);
        let Some(permit) = self.circuit.try_acquire(now, &mut emit) else {
            self.circuit.record_reject(now);
            self.metrics.events.on_event(&Event::Reject);
            if self.fallback_on_refusal.load(Ordering::Relaxed) {
                self.count_fallback(now);
            }
            return Err(Refusal::Open);
        };
        self.circuit.record_fire(now);
        // A full bulkhead drops the permit: a half-open trial slot comes back at once.
        match self.slots.lock().take(permit, now) {
            Some(slot) => Ok(slot),
            None => {
                self.semaphore_rejections
                    .add(self.circuit.window_time(now), 1);
                self.metrics.events.on_event(&Event::Reject);
                Err(Refusal::Capacity)
            }
        }
    }

    /// Records how the call of `slot` ended; returns its duration (from admission), or
    /// `None` for a slot that is not running (already recorded, or freed by shutdown).
    /// Any transition it caused is queued for [`Guarded::take_transitions`].
    pub fn record(&self, slot: u32, outcome: Outcome) -> Option<Duration> {
        let now = self.now();
        let (permit, started) = self.slots.lock().release(slot)?;
        let latency = now.saturating_sub(started);
        let verdict = match outcome {
            Outcome::Success => Verdict::Success,
            Outcome::Filtered => Verdict::ClientError,
            Outcome::FilteredTimeout => {
                self.filtered_timeouts.add(self.circuit.window_time(now), 1);
                Verdict::ClientError
            }
            Outcome::Failure => Verdict::Failure(FailureKind::Upstream),
            Outcome::Timeout => Verdict::Failure(FailureKind::Timeout),
        };
        let mut emit = Self::emitter(&self.metrics.events, &self.transitions);
        self.circuit
            .on_result(permit, verdict, latency, now, &mut emit);
        self.latency
            .lock()
            .add(self.circuit.window_time(now), latency);
        self.metrics.events.on_event(&match verdict {
            Verdict::Success => Event::Success {
                latency,
                route: None,
            },
            Verdict::ClientError => Event::ClientError {
                latency,
                status: 0,
                route: None,
            },
            Verdict::Failure(kind) => Event::Failure {
                kind,
                latency,
                route: None,
            },
        });
        let healthy = !matches!(verdict, Verdict::Failure(_));
        self.metrics
            .events
            .on_event(&Event::Completed(CallKind::of(healthy, 1)));
        Some(latency)
    }

    /// Whether transitions wait in the queue (cheap: checked after a call may have moved it).
    pub fn has_transitions(&self) -> bool {
        !self.transitions.lock().is_empty()
    }

    /// The transitions since the last take, oldest first.
    pub fn take_transitions(&self) -> Vec<Transition> {
        std::mem::take(&mut *self.transitions.lock())
    }

    pub fn note(&self, note: Note) {
        let now = self.now();
        let w = self.circuit.window_time(now);
        match note {
            Note::Fire => self.circuit.record_fire(now),
            Note::CacheHit => {
                self.circuit.record_fire(now);
                self.cache_hits.add(w, 1);
            }
            Note::CacheMiss => self.cache_misses.add(w, 1),
            Note::CoalesceHit => {
                self.circuit.record_fire(now);
                self.coalesce_hits.add(w, 1);
            }
            Note::CoalesceMiss => self.coalesce_misses.add(w, 1),
            Note::Fallback => self.count_fallback(now),
        }
    }

    /// Whether the caller answers an open circuit's refusals with its fallback function
    /// (then counted by [`Guarded::admit`], not by a [`Note::Fallback`]).
    pub fn set_fallback_on_refusal(&self, on: bool) {
        self.fallback_on_refusal.store(on, Ordering::Relaxed);
    }

    fn count_fallback(&self, now: Duration) {
        self.circuit.record_fallback(now);
        self.metrics.events.on_event(&Event::Fallback {
            code: crate::error::Code::OpenBreaker,
            source: FallbackSource::Function,
            age: None,
        });
    }

    pub fn state(&self) -> StateKind {
        self.circuit.state()
    }

    /// Moves the circuit by hand (open(), close(), a failed health check, a restored state).
    pub fn force(&self, to: StateKind) -> bool {
        let mut emit = Self::emitter(&self.metrics.events, &self.transitions);
        self.circuit.force(to, self.now(), &mut emit)
    }

    /// An operator's command (the class's `disable()` and `enable()`): the fetch
    /// breaker's forced states (`circuit/force.rs`), one mechanism for both.
    pub fn control(&self, c: crate::circuit::Control) -> bool {
        let mut emit = Self::emitter(&self.metrics.events, &self.transitions);
        self.circuit.control(c, self.now(), &mut emit)
    }

    /// Half-opens an open circuit whose resetTimeout elapsed; the time left otherwise
    /// (the caller's reset timer fired early), `None` when not open.
    pub fn poll_half_open(&self) -> Option<Duration> {
        let mut emit = Self::emitter(&self.metrics.events, &self.transitions);
        self.circuit.poll_half_open(self.now(), &mut emit)
    }

    /// Whether the warm-up period (the first rollingCountTimeout) is still running.
    pub fn warming_up(&self) -> bool {
        self.now() < self.warm_until
    }

    pub fn stats(&self) -> GuardedStats {
        let now = self.now();
        let w = self.circuit.window_time(now);
        let mut circuit = self.circuit.stats(now);
        circuit.timeouts += self.filtered_timeouts.total(w);
        self.metrics.events.set_failure_rate(circuit.failure_rate);
        let (latency_mean_ms, percentiles_ms) = self.latency.lock().summary(w);
        GuardedStats {
            circuit,
            semaphore_rejections: self.semaphore_rejections.total(w),
            cache_hits: self.cache_hits.total(w),
            cache_misses: self.cache_misses.total(w),
            coalesce_hits: self.coalesce_hits.total(w),
            coalesce_misses: self.coalesce_misses.total(w),
            latency_mean_ms,
            percentiles_ms,
        }
    }

    /// The window bucket by bucket, the current one first (opossum's `status.window`).
    pub fn buckets(&self) -> Vec<GuardedBucket> {
        let now = self.now();
        let w = self.circuit.window_time(now);
        let kept = [
            self.filtered_timeouts.buckets(w),
            self.semaphore_rejections.buckets(w),
            self.cache_hits.buckets(w),
            self.cache_misses.buckets(w),
            self.coalesce_hits.buckets(w),
            self.coalesce_misses.buckets(w),
        ];
        self.circuit
            .buckets(now)
            .into_iter()
            .enumerate()
            .map(|(i, mut circuit)| {
                circuit.counts.timeouts += kept[0][i];
                GuardedBucket {
                    circuit,
                    semaphore_rejections: kept[1][i],
                    cache_hits: kept[2][i],
                    cache_misses: kept[3][i],
                    coalesce_hits: kept[4][i],
                    coalesce_misses: kept[5][i],
                }
            })
            .collect()
    }

    /// Moves the window one bucket on (opossum's `rotateBucketController` 'rotate'
    /// event); answers false, doing nothing, if its buckets move with time.
    pub fn rotate(&self) -> bool {
        self.circuit.rotate()
    }

    /// The failure-rate gauge from the window now (an empty window keeps the last rate).
    pub fn refresh_gauges(&self) {
        if !self.is_shutdown() {
            let rate = self.circuit.stats(self.now()).failure_rate;
            self.metrics.events.set_failure_rate(rate);
        }
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.slots.lock().in_use()
    }

    /// Refuses every later call and removes the metric series. Calls admitted before still
    /// record their end, and move the circuit as they would have (opossum lets a call fired
    /// before its shutdown finish). Idempotent.
    pub fn shutdown(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.remove();
    }

    pub fn is_shutdown(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;

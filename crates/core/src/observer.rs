//! What the breaker tells the outside world. The metrics of what happens to calls
//! (`metrics::EventMetrics`), logs and JS events are all observers of the same event
//! stream, so none of them can disagree with another. A foundation, with the typed label
//! enums the events carry (states, call kinds, fallback sources, dead-letter reasons).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Code, FailureKind};

/// Circuit state. The discriminant is the `dnastore_circuit_state` gauge value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StateKind {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
    /// Held open by hand (`breaker.open()`, `circuitForce: 'open'`) until `close()` or
    /// `enable()`: no trials.
    ForcedOpen = 3,
    /// Tripping turned off by hand (`breaker.disable()`, `circuitForce: 'disabled'`): every
    /// call goes to DNAStore, outcomes still counted.
    Disabled = 4,
}

impl StateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Closed => "closed",
            StateKind::Open => "open",
            StateKind::HalfOpen => "halfOpen",
            StateKind::ForcedOpen => "forcedOpen",
            StateKind::Disabled => "disabled",
        }
    }

    /// The event a transition into this state is emitted as (opossum's names: `close`,
    /// not `closed`), for fetch breakers and wrapped functions alike.
    pub fn event_name(self) -> &'static str {
        match self {
            StateKind::Closed => "close",
            StateKind::Open => "open",
            StateKind::HalfOpen => "halfOpen",
            StateKind::ForcedOpen => "forcedOpen",
            StateKind::Disabled => "disabled",
        }
    }

    pub fn from_u8(v: u8) -> StateKind {
        match v {
            1 => StateKind::Open,
            2 => StateKind::HalfOpen,
            3 => StateKind::ForcedOpen,
            4 => StateKind::Disabled,
            _ => StateKind::Closed,
        }
    }
}

/// An operator's command (`breaker.open()`, ..., `dnastore-breaker circuit open`): applied by
/// the circuit, carried fleet-wide by the fleet circuit's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Forced open until `Close` or `Enable`.
    Open,
    /// Closed now (forced or not), the window cleared; automatic operation again.
    Close,
    /// Every call goes through; nothing trips.
    Disable,
    /// Back to automatic operation, in the state machine's own state.
    Enable,
}

impl Control {
    /// The command named `s` (`open`, `close`, `disable`, `enable`).
    pub fn parse(s: &str) -> Option<Control> {
        Some(match s {
            "open" => Control::Open,
            "close" => Control::Close,
            "disable" => Control::Disable,
            "enable" => Control::Enable,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Control::Open => "open",
            Control::Close => "close",
            Control::Disable => "disable",
            Control::Enable => "enable",
        }
    }
}

/// Why the circuit changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionReason {
    /// The failure percentage reached the threshold past the volume threshold.
    FailureRate,
    /// `maxFailures` failures in a row.
    ConsecutiveFailures,
    /// The slow-call percentage reached `slowCallRateThreshold` past the volume threshold
    /// (closed), or a half-open trial was slower than `slowCallDurationMs`.
    SlowCalls,
    /// `resetTimeout` elapsed; the next call is a trial.
    ResetTimeoutElapsed,
    /// A half-open trial failed.
    TrialFailed,
    /// Every half-open trial succeeded.
    TrialsSucceeded,
    /// A half-open round was not decided within `halfOpenMaxWaitMs`.
    HalfOpenTimeout,
    /// Set by hand (`open()`, `close()`), by a failed health check or a restored state.
    Manual,
    /// An operator's manual control of a fetch breaker (`open()`, `close()`, `disable()`,
    /// `enable()`, `circuitForce`): into or out of a forced state.
    Forced,
    /// The fleet circuit decided (`fleetCircuit`): the transition's [`FleetNote`] says why
    /// and which replica.
    Fleet,
}

impl TransitionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionReason::FailureRate => "failure rate",
            TransitionReason::ConsecutiveFailures => "consecutive failures",
            TransitionReason::SlowCalls => "slow calls",
            TransitionReason::ResetTimeoutElapsed => "reset timeout elapsed",
            TransitionReason::TrialFailed => "trial failed",
            TransitionReason::TrialsSucceeded => "trial succeeded",
            TransitionReason::HalfOpenTimeout => "half-open timeout",
            TransitionReason::Manual => "manual",
            TransitionReason::Forced => "forced",
            TransitionReason::Fleet => "fleet decision",
        }
    }
}

/// One state change, with the counts behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub from: StateKind,
    pub to: StateKind,
    pub reason: TransitionReason,
    /// Failures and calls in the rolling window when it happened.
    pub failures: u64,
    pub calls: u64,
    pub failure_percent: f64,
    /// Slow calls in the rolling window and their percentage of its calls.
    pub slow_calls: u64,
    pub slow_percent: f64,
    pub consecutive_failures: u32,
    pub time_in_previous: Duration,
    /// Total trips (closed/half-open -> open) of this breaker so far.
    pub trips: u64,
    /// The fleet decision this transition applies (`fleetCircuit`); `None`: this replica's
    /// own (local) decision.
    pub fleet: Option<Arc<FleetNote>>,
}

/// A decision of the fleet circuit, as the transitions it causes carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetNote {
    /// The replica that tripped (opened the fleet), or whose trial closed or reopened it.
    pub by: String,
    /// The fleet state's generation (one more at every fleet decision).
    pub generation: u64,
    /// Replicas whose trips opened the fleet (0 for decisions of a trial).
    pub votes: u32,
    pub why: FleetWhy,
}

/// Why the fleet's state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetWhy {
    /// `fleetQuorum` replicas opened on their own evidence within one rollingCountTimeout.
    Quorum,
    /// A leased half-open trial failed (or was slow).
    TrialFailed,
    /// The round's leased trials succeeded.
    TrialsSucceeded,
}

impl FleetWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            FleetWhy::Quorum => "quorum",
            FleetWhy::TrialFailed => "trial failed",
            FleetWhy::TrialsSucceeded => "trials succeeded",
        }
    }

    /// The short form fleet records carry (`fleet/record.rs`).
    pub fn code(self) -> &'static str {
        match self {
            FleetWhy::Quorum => "q",
            FleetWhy::TrialFailed => "f",
            FleetWhy::TrialsSucceeded => "s",
        }
    }

    pub fn from_code(c: &str) -> Option<Self> {
        match c {
            "q" => Some(FleetWhy::Quorum),
            "f" => Some(FleetWhy::TrialFailed),
            "s" => Some(FleetWhy::TrialsSucceeded),
            _ => None,
        }
    }
}

/// What the fleet circuit reports besides transitions.
#[derive(Clone, Debug)]
pub enum FleetEvent<'a> {
    /// Connected to Redis and read the fleet's state: the replica follows the fleet.
    Connected { replica: &'a str },
    /// Redis unreachable or too slow: the replica runs on its local circuit alone.
    Disconnected { reason: &'a str },
    /// The fleet's state changed, as this replica learned it (also when its own circuit
    /// was already there).
    State {
        state: StateKind,
        note: &'a FleetNote,
    },
    /// A fleet message or record that did not verify (forged, garbled) was ignored;
    /// reported once per connection, counted every time.
    Rejected { reason: &'static str },
}

/// Where a fallback's data came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackSource {
    None,
    Cache,
    /// The user's fallback function (applied by the JS facade).
    Function,
}

impl FallbackSource {
    /// Every source, in discriminant order (`source as usize` indexes it).
    pub const ALL: [FallbackSource; 3] = [
        FallbackSource::None,
        FallbackSource::Cache,
        FallbackSource::Function,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackSource::None => "none",
            FallbackSource::Cache => "cache",
            FallbackSource::Function => "function",
        }
    }
}

/// How a logical call ended, as resilience4j's Retry counts calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    SuccessfulWithoutRetry,
    SuccessfulWithRetry,
    FailedWithoutRetry,
    FailedWithRetry,
}

impl CallKind {
    pub const ALL: [CallKind; 4] = [
        CallKind::SuccessfulWithoutRetry,
        CallKind::SuccessfulWithRetry,
        CallKind::FailedWithoutRetry,
        CallKind::FailedWithRetry,
    ];

    /// The kind of a call that ended after `attempts` attempts.
    pub fn of(succeeded: bool, attempts: u32) -> CallKind {
        match (succeeded, attempts > 1) {
            (true, false) => CallKind::SuccessfulWithoutRetry,
            (true, true) => CallKind::SuccessfulWithRetry,
            (false, false) => CallKind::FailedWithoutRetry,
            (false, true) => CallKind::FailedWithRetry,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::SuccessfulWithoutRetry => "successful_without_retry",
            CallKind::SuccessfulWithRetry => "successful_with_retry",
            CallKind::FailedWithoutRetry => "failed_without_retry",
            CallKind::FailedWithRetry => "failed_with_retry",
        }
    }
}

/// What became of one hedge (an extra copy of a read, `hedge/`): the `result` label of
/// `dnastore_hedges_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeResult {
    /// Sent, and its answer was the one the call took.
    Won,
    /// Sent, and another copy answered first (or it failed, or the attempt ran out of time):
    /// cancelled, never a failure of the call.
    Lost,
    /// Due, but not sent: the retry budget was spent, the bulkhead had no free slot, or the
    /// circuit was not closed.
    Skipped,
}

impl HedgeResult {
    pub const ALL: [HedgeResult; 3] = [HedgeResult::Won, HedgeResult::Lost, HedgeResult::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            HedgeResult::Won => "won",
            HedgeResult::Lost => "lost",
            HedgeResult::Skipped => "skipped",
        }
    }
}

/// Why a hedge that was due was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeSkip {
    /// The retry budget (`retryBudgetPercent`), which hedges share with retries, was spent.
    Budget,
    /// Every bulkhead slot (`maxConcurrent`) was taken, or calls were waiting for one.
    Bulkhead,
    /// The circuit was not closed (a half-open trial is never hedged).
    Circuit,
}

impl HedgeSkip {
    pub fn as_str(self) -> &'static str {
        match self {
            HedgeSkip::Budget => "budget",
            HedgeSkip::Bulkhead => "bulkhead",
            HedgeSkip::Circuit => "circuit",
        }
    }
}

/// A step of the outbox's delivery, logged once each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxPhase {
    /// Delivery began on a queue holding writes (after an outage, or at startup).
    Started,
    /// The circuit opened again mid-delivery; writes wait.
    Paused,
    /// The queue is empty.
    Drained,
}

impl OutboxPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxPhase::Started => "started",
            OutboxPhase::Paused => "paused",
            OutboxPhase::Drained => "drained",
        }
    }
}

/// Why a queued write was moved to the dead letters (`dnastore_outbox_dead_lettered_total`'s
/// `reason`, the dead letter's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// DNAStore refused it (a 4xx other than 408/429, or a redirect to another origin).
    Rejected,
    /// Not delivered within `outboxMaxAgeMs`.
    Expired,
    /// Its signature does not verify under `signingSecret`.
    Tampered,
    /// The stored write cannot be read back.
    Unreadable,
}

impl DeadReason {
    /// Every reason, in discriminant order (`reason as usize` indexes it).
    pub const ALL: [DeadReason; 4] = [
        DeadReason::Rejected,
        DeadReason::Expired,
        DeadReason::Tampered,
        DeadReason::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Rejected => "rejected",
            DeadReason::Expired => "expired",
            DeadReason::Tampered => "tampered",
            DeadReason::Unreadable => "unreadable",
        }
    }
}

/// Everything a breaker reports.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    Transition(&'a Transition),
    /// A transition of a route's own circuit (`circuitPerRoute`); the breaker's circuit,
    /// its state gauge and `state` are not moved by it.
    RouteTransition {
        route: &'a str,
        transition: &'a Transition,
    },
    /// A call was admitted (closed, or a half-open trial).
    Fire,
    /// An attempt got a 2xx.
    Success {
        latency: Duration,
        /// The caller's route template (`init.route`), if any.
        route: Option<&'a str>,
    },
    /// An attempt got a 4xx other than 408/429 (counts as a healthy answer).
    ClientError {
        latency: Duration,
        status: u16,
        route: Option<&'a str>,
    },
    /// An attempt failed in a way that counts against the breaker.
    Failure {
        kind: FailureKind,
        latency: Duration,
        route: Option<&'a str>,
    },
    /// A call was short-circuited (open, or half-open with every trial slot taken).
    Reject,
    /// A call resolved to a fallback.
    Fallback {
        code: Code,
        source: FallbackSource,
        age: Option<Duration>,
    },
    /// Another attempt follows after `delay`.
    Retry {
        attempt: u32,
        delay: Duration,
        reason: FailureKind,
    },
    /// A retry was wanted but the retry budget was spent.
    RetryBudgetExhausted,
    /// A hedge of a read's attempt `attempt`, sent (or due) `after` the attempt started:
    /// reported when the attempt ends (won, lost) or when it was due (skipped, with why).
    Hedge {
        result: HedgeResult,
        attempt: u32,
        after: Duration,
        skip: Option<HedgeSkip>,
    },
    /// The caller aborted the call.
    Aborted,
    /// A logical call ended (for the calls-by-kind counters).
    Completed(CallKind),
    /// Identical concurrent GETs were served by one upstream request.
    Coalesced,
    Shutdown,
    /// The shared LKG Redis became unreachable (`up: false`) or is back (`up: true`);
    /// reported once per transition.
    RedisHealth {
        up: bool,
        /// Why it is down (never with credentials); `None` when up.
        reason: Option<&'a str>,
    },
    /// The fleet circuit's connection and decisions (`fleetCircuit`).
    Fleet(FleetEvent<'a>),
    /// The TLS files changed: the new material is in use (`ok`), or it did not load and
    /// the previous material stays (`reason` names the file and the problem, never its
    /// content).
    TlsReload {
        ok: bool,
        reason: Option<&'a str>,
    },
    /// A write that could not be delivered was stored in the outbox.
    Queued {
        id: &'a str,
        code: Code,
    },
    /// A queued write reached DNAStore, `after` it was queued.
    Delivered {
        id: &'a str,
        status: u16,
        after: Duration,
        idempotency_key: &'a str,
        /// DNAStore's answer (the created sigil, say), so a service can tell its client.
        body: &'a [u8],
    },
    /// A queued write was moved to the dead letters.
    DeadLetter {
        id: &'a str,
        reason: DeadReason,
        status: Option<u16>,
    },
    /// The delivery loop started, paused or drained the queue.
    Outbox {
        phase: OutboxPhase,
        queued: u64,
        delivered: u64,
        dead_lettered: u64,
        elapsed: Duration,
    },
}

impl Event<'_> {
    /// Bit for interest masks (the JS side only asks for what it listens to).
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Transition(_) => EventKind::Transition,
            Event::RouteTransition { .. } => EventKind::RouteTransition,
            Event::Fire => EventKind::Fire,
            Event::Success { .. } => EventKind::Success,
            Event::ClientError { .. } => EventKind::ClientError,
            Event::Failure { .. } => EventKind::Failure,
            Event::Reject => EventKind::Reject,
            Event::Fallback { .. } => EventKind::Fallback,
            Event::Retry { .. } => EventKind::Retry,
            Event::RetryBudgetExhausted => EventKind::RetryBudgetExhausted,
            Event::Hedge { .. } => EventKind::Hedge,
            Event::Aborted => EventKind::Aborted,
            Event::Completed(_) => EventKind::Completed,
            Event::Coalesced => EventKind::Coalesced,
            Event::Shutdown => EventKind::Shutdown,
            Event::RedisHealth { .. } => EventKind::RedisHealth,
            Event::TlsReload { .. } => EventKind::TlsReload,
            Event::Fleet(_) => EventKind::Fleet,
            Event::Queued { .. } => EventKind::Queued,
            Event::Delivered { .. } => EventKind::Delivered,
            Event::DeadLetter { .. } => EventKind::DeadLetter,
            Event::Outbox { .. } => EventKind::Outbox,
        }
    }
}

/// An event's kind without its data: the unit of interest masks (the JS side only asks
/// for the kinds it listens to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Transition,
    Fire,
    Success,
    ClientError,
    Failure,
    Reject,
    Fallback,
    Retry,
    RetryBudgetExhausted,
    Aborted,
    Completed,
    Coalesced,
    Shutdown,
    RedisHealth,
    Queued,
    Delivered,
    DeadLetter,
    Outbox,
    TlsReload,
    Fleet,
    Hedge,
    RouteTransition,
}

impl EventKind {
    pub const fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// Watches a breaker. Called on the thread where the event happened; must not block.
/// Transitions are delivered while the circuit lock is held, so every observer sees
/// them in the order they happened (a transition is rare; the observers only enqueue).
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &Event<'_>);
}

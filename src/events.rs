//! Core events -> JS, through one weak (unref'd) ThreadsafeFunction per handle.
//! Non-blocking: the core never waits for JS. Only events the JS side listens to
//! cross the boundary (an interest mask the facade keeps up to date); transitions
//! always do, because the facade logs them.

use std::sync::atomic::{AtomicU32, Ordering};

use dnastore_core::{Event, EventKind, FleetEvent, FleetNote, Observer, Transition};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// One event's payload; fields are set according to the event.
#[napi(object)]
#[derive(Default)]
pub struct BreakerEvent {
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    pub failures: Option<f64>,
    pub calls: Option<f64>,
    pub failure_rate: Option<f64>,
    /// Transitions: slow calls in the window and their percentage.
    pub slow_calls: Option<f64>,
    pub slow_call_rate: Option<f64>,
    pub consecutive_failures: Option<u32>,
    pub time_in_previous_ms: Option<f64>,
    pub trips: Option<f64>,
    pub latency_ms: Option<f64>,
    pub code: Option<String>,
    pub status: Option<u32>,
    pub source: Option<String>,
    pub age_ms: Option<f64>,
    pub attempt: Option<u32>,
    pub delay_ms: Option<f64>,
    pub kind: Option<String>,
    /// `redis` events: whether the shared LKG Redis is reachable (`reason` says why not);
    /// `tls` events: whether rotated TLS files loaded (`reason` says why not).
    pub up: Option<bool>,
    /// `queued`, `delivered`, `deadLetter`: the outbox entry's id.
    pub id: Option<String>,
    /// `delivered`: the write's Idempotency-Key.
    pub idempotency_key: Option<String>,
    /// `delivered`: ms from queued to delivered; `outbox`: ms since delivery started.
    pub after_ms: Option<f64>,
    /// `outbox`: started | paused | drained.
    pub phase: Option<String>,
    /// `outbox`: writes still queued.
    pub queued: Option<f64>,
    /// `outbox`: writes delivered in this run.
    pub delivered: Option<f64>,
    /// `outbox`: writes dead-lettered in this run.
    pub dead_lettered: Option<f64>,
    /// `delivered`: DNAStore's answer (up to 64 KiB; absent when larger).
    pub body: Option<String>,
    /// `routeTransition`: the route whose own circuit changed state (`circuitPerRoute`).
    pub route: Option<String>,
    /// Transitions: 'local' (this replica's own decision) or 'fleet' (the fleet circuit's).
    pub decision: Option<String>,
    /// Fleet decisions: the replica that tripped (opened the fleet) or whose trial decided.
    pub tripped_by: Option<String>,
    /// Fleet decisions: the fleet state's generation.
    pub generation: Option<f64>,
    /// Fleet decisions: replicas whose trips opened the fleet.
    pub votes: Option<u32>,
    /// Fleet decisions: quorum | trial failed | trials succeeded.
    pub fleet_reason: Option<String>,
    /// `fleet` events (connected): this replica's id.
    pub replica: Option<String>,
    /// `hedge`: won | lost | skipped (`reason` says why skipped: budget | bulkhead | circuit;
    /// `attempt` the attempt it hedged; `afterMs` when it was sent or due, from that attempt's start).
    pub result: Option<String>,
}

/// Largest answer a `delivered` event carries.
const MAX_EVENT_BODY: usize = 64 * 1024;

pub struct EventMsg {
    name: &'static str,
    payload: BreakerEvent,
}

pub type EventFn =
    ThreadsafeFunction<EventMsg, (), FnArgs<(&'static str, BreakerEvent)>, Status, false, true>;

pub fn build(f: &Function<FnArgs<(String, BreakerEvent)>, ()>) -> Result<EventFn> {
    f.build_threadsafe_function::<EventMsg>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|ctx| Ok(FnArgs::from((ctx.value.name, ctx.value.payload))))
}

/// Always delivered: transitions, shutdown, Redis health and the outbox's runs (the facade
/// logs them).
const ALWAYS: u32 = EventKind::Transition.bit()
    | EventKind::Shutdown.bit()
    | EventKind::RedisHealth.bit()
    | EventKind::Outbox.bit()
    | EventKind::TlsReload.bit()
    | EventKind::Fleet.bit()
    | EventKind::RouteTransition.bit();

/// Event name (as the facade's listeners use it) -> interest bit.
pub fn bit_of(name: &str) -> u32 {
    let kind = match name {
        "open" | "halfOpen" | "close" | "forcedOpen" | "disabled" => EventKind::Transition,
        "fire" => EventKind::Fire,
        "success" => EventKind::Success,
        "clientError" => EventKind::ClientError,
        "failure" | "timeout" => EventKind::Failure,
        "reject" => EventKind::Reject,
        "fallback" => EventKind::Fallback,
        "retry" => EventKind::Retry,
        "retryBudgetExhausted" => EventKind::RetryBudgetExhausted,
        "abort" => EventKind::Aborted,
        "coalesced" => EventKind::Coalesced,
        "shutdown" => EventKind::Shutdown,
        "redis" => EventKind::RedisHealth,
        "queued" => EventKind::Queued,
        "delivered" => EventKind::Delivered,
        "deadLetter" => EventKind::DeadLetter,
        "outbox" => EventKind::Outbox,
        "tls" => EventKind::TlsReload,
        "fleet" => EventKind::Fleet,
        "hedge" => EventKind::Hedge,
        "routeTransition" => EventKind::RouteTransition,
        _ => return 0,
    };
    kind.bit()
}

pub struct JsObserver {
    tsfn: EventFn,
    mask: AtomicU32,
}

impl JsObserver {
    pub fn new(tsfn: EventFn) -> Self {
        Self {
            tsfn,
            mask: AtomicU32::new(ALWAYS),
        }
    }

    pub fn set_interest(&self, names: &[String]) {
        let m = names.iter().fold(ALWAYS, |m, n| m | bit_of(n));
        self.mask.store(m, Ordering::Relaxed);
    }
}

fn ms(d: std::time::Duration) -> Option<f64> {
    Some(d.as_secs_f64() * 1000.0)
}

impl Observer for JsObserver {
    fn on_event(&self, e: &Event<'_>) {
        if self.mask.load(Ordering::Relaxed) & e.kind().bit() == 0 {
            return;
        }
        let (name, payload) = match e {
            Event::RouteTransition { route, transition } => (
                "routeTransition",
                BreakerEvent {
                    route: Some((*route).into()),
                    ..transition_event(transition)
                },
            ),
            Event::Transition(t) => (t.to.event_name(), transition_event(t)),
            Event::Fleet(f) => ("fleet", fleet_event(f)),
            Event::Fire => ("fire", BreakerEvent::default()),
            Event::Success { latency, .. } => (
                "success",
                BreakerEvent {
                    latency_ms: ms(*latency),
                    ..Default::default()
                },
            ),
            Event::ClientError {
                latency, status, ..
            } => (
                "clientError",
                BreakerEvent {
                    latency_ms: ms(*latency),
                    status: Some(*status as u32),
                    ..Default::default()
                },
            ),
            Event::Failure { kind, latency, .. } => (
                "failure",
                BreakerEvent {
                    latency_ms: ms(*latency),
                    code: Some(kind.code().as_str().into()),
                    kind: Some(kind.label().into()),
                    ..Default::default()
                },
            ),
            Event::Reject => (
                "reject",
                BreakerEvent {
                    code: Some("EOPENBREAKER".into()),
                    ..Default::default()
                },
            ),
            Event::Fallback { code, source, age } => (
                "fallback",
                BreakerEvent {
                    code: Some(code.as_str().into()),
                    source: Some(source.as_str().into()),
                    age_ms: age.map(|a| a.as_millis() as f64),
                    ..Default::default()
                },
            ),
            Event::Retry {
                attempt,
                delay,
                reason,
            } => (
                "retry",
                BreakerEvent {
                    attempt: Some(*attempt),
                    delay_ms: ms(*delay),
                    reason: Some(reason.label().into()),
                    code: Some(reason.code().as_str().into()),
                    ..Default::default()
                },
            ),
            Event::RetryBudgetExhausted => ("retryBudgetExhausted", BreakerEvent::default()),
            Event::Hedge {
                result,
                attempt,
                after,
                skip,
            } => (
                "hedge",
                BreakerEvent {
                    result: Some(result.as_str().into()),
                    attempt: Some(*attempt),
                    after_ms: ms(*after),
                    reason: skip.map(|s| s.as_str().into()),
                    ..Default::default()
                },
            ),
            Event::Aborted => ("abort", BreakerEvent::default()),
            Event::Completed(k) => (
                "completed",
                BreakerEvent {
                    kind: Some(k.as_str().into()),
                    ..Default::default()
                },
            ),
            Event::Coalesced => ("coalesced", BreakerEvent::default()),
            Event::Shutdown => ("shutdown", BreakerEvent::default()),
            Event::RedisHealth { up, reason } => (
                "redis",
                BreakerEvent {
                    up: Some(*up),
                    reason: reason.map(str::to_string),
                    ..Default::default()
                },
            ),
            Event::TlsReload { ok, reason } => (
                "tls",
                BreakerEvent {
                    up: Some(*ok),
                    reason: reason.map(str::to_string),
                    ..Default::default()
                },
            ),
            Event::Queued { id, code } => (
                "queued",
                BreakerEvent {
                    id: Some(id.to_string()),
                    code: Some(code.as_str().into()),
                    ..Default::default()
                },
            ),
            Event::Delivered {
                id,
                status,
                after,
                idempotency_key,
                body,
            } => (
                "delivered",
                BreakerEvent {
                    id: Some(id.to_string()),
                    status: Some(u32::from(*status)),
                    after_ms: ms(*after),
                    idempotency_key: Some(idempotency_key.to_string()),
                    // Bounded: an event is not the place for a large answer.
                    body: (!body.is_empty() && body.len() <= MAX_EVENT_BODY)
                        .then(|| String::from_utf8_lossy(body).into_owned()),
                    ..Default::default()
                },
            ),
            Event::DeadLetter { id, reason, status } => (
                "deadLetter",
                BreakerEvent {
                    id: Some(id.to_string()),
                    reason: Some(reason.as_str().into()),
                    status: status.map(u32::from),
                    ..Default::default()
                },
            ),
            Event::Outbox {
                phase,
                queued,
                delivered,
                dead_lettered,
                elapsed,
            } => (
                "outbox",
                BreakerEvent {
                    phase: Some(phase.as_str().into()),
                    queued: Some(*queued as f64),
                    delivered: Some(*delivered as f64),
                    dead_lettered: Some(*dead_lettered as f64),
                    after_ms: ms(*elapsed),
                    ..Default::default()
                },
            ),
        };
        // NonBlocking on an unbounded queue: never waits. A Closing status (the env is
        // tearing down) means nobody is left to listen.
        let _ = self.tsfn.call(
            EventMsg { name, payload },
            ThreadsafeFunctionCallMode::NonBlocking,
        );
        // Emitted by a call running on this JS thread's own runtime: its promise must not
        // settle before this event reaches its listeners (see `bridge::event_queued`).
        crate::bridge::event_queued();
    }
}

fn with_note(e: &mut BreakerEvent, n: &FleetNote) {
    e.tripped_by = Some(n.by.clone());
    e.generation = Some(n.generation as f64);
    e.votes = Some(n.votes);
    e.fleet_reason = Some(n.why.as_str().to_string());
}

/// A transition's decision fields: `decision` ('local' | 'fleet') and, for the fleet's,
/// which replica and why.
fn fleet_fields(e: &mut BreakerEvent, t: &Transition) {
    e.decision = Some(if t.fleet.is_some() { "fleet" } else { "local" }.into());
    if let Some(n) = &t.fleet {
        with_note(e, n);
    }
}

/// The `fleet` event: `kind` says what happened.
fn fleet_event(f: &FleetEvent<'_>) -> BreakerEvent {
    let mut e = BreakerEvent::default();
    match f {
        FleetEvent::Connected { replica } => {
            e.kind = Some("connected".into());
            e.up = Some(true);
            e.replica = Some(replica.to_string());
        }
        FleetEvent::Disconnected { reason } => {
            e.kind = Some("disconnected".into());
            e.up = Some(false);
            e.reason = Some(reason.to_string());
        }
        FleetEvent::State { state, note } => {
            e.kind = Some("state".into());
            e.to = Some(state.as_str().into());
            with_note(&mut e, note);
        }
        FleetEvent::Rejected { reason } => {
            e.kind = Some("rejected".into());
            e.reason = Some(reason.to_string());
        }
    }
    e
}

/// A transition's payload (the breaker's circuit, or a route's).
fn transition_event(t: &Transition) -> BreakerEvent {
    let mut p = BreakerEvent {
        from: Some(t.from.as_str().into()),
        to: Some(t.to.as_str().into()),
        reason: Some(t.reason.as_str().into()),
        failures: Some(t.failures as f64),
        calls: Some(t.calls as f64),
        failure_rate: Some(t.failure_percent),
        slow_calls: Some(t.slow_calls as f64),
        slow_call_rate: Some(t.slow_percent),
        consecutive_failures: Some(t.consecutive_failures),
        time_in_previous_ms: ms(t.time_in_previous),
        trips: Some(t.trips as f64),
        ..Default::default()
    };
    fleet_fields(&mut p, t);
    p
}

//! Prometheus metrics for every breaker in the process, in one registry of our own (so
//! `metrics()` never includes series the host application registered elsewhere).
//!
//! A foundation: the metric families (the one table below), a breaker's set of series
//! ([`Series`]), and the observer that counts the breaker's events ([`EventMetrics`]).
//! It imports nothing but `observer` and `error`.
//!
//! # Who counts what: one owner per family
//!
//! Every family has exactly one owner, the only code that writes its series. Handles are
//! resolved once, when a breaker is built (the hot path increments atomics, it never
//! hashes label values), from the families here, through the breaker's [`Series`] (which
//! adds the `name` label and removes exactly what it created when the breaker closes).
//!
//! - **The breaker's events** ([`EventMetrics`], subscribed to every breaker as its first
//!   observer; a guarded circuit feeds it the same events): what an [`Event`] says and
//!   nothing else: state and trips, attempts by outcome and their durations (with the
//!   route families), short-circuited and aborted calls, fallbacks, retries and the spent
//!   budget, calls by kind, coalesced GETs. The state and failure-rate gauges are also
//!   refreshed from the circuit's stats at scrape time, by the same owner.
//! - **Each feature, its own state** (handles it builds from these families and writes
//!   itself, where it changes; no event carries them): `lkg/metrics.rs` (entries, bytes,
//!   evictions, rejections, Redis errors), `outbox/metrics.rs` (the queue's gauges,
//!   enqueued, refused, delivered, dead-lettered, delivery time, the fleet's spill),
//!   `limit/metrics.rs` (the bulkhead's gauges and rejections), `tls/metrics.rs`
//!   (insecure mode, reloads), `fleet/metrics.rs` (the fleet circuit's state, connectivity,
//!   replicas, refusals, leases, propagation), `hedge/metrics.rs` (hedges by result).
//! - **The breaker itself**: slow attempts (`breaker/metrics.rs`), which only its attempt
//!   loop sees.
//!
//! So no family is written both by a listener and by a feature, and a label value is an
//! enum's (`FailureKind`, `CallKind`, `FallbackSource`, `Shed`, the outbox's reasons), never
//! a string looked up at the call site.
//!
//! # Adding a family
//!
//! One line in `families!` below (its field, type, name, labels, help, buckets): it is
//! registered, listed by [`families`] and rendered from there. Then its owner builds its
//! handles with `series.of(&FAMILIES.<field>, &[labels after name])`.

mod events;
mod routes;
mod series;

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub use events::EventMetrics;
pub use routes::{RouteMetrics, DEFAULT_MAX_ROUTES, OTHER_ROUTE};
pub use series::Series;

#[cfg(doc)]
use crate::observer::Event;

/// `dnastore_request_duration_seconds` buckets: 1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `outcome` label values of `dnastore_requests_total`, besides the failure kinds.
pub const OUTCOME_SUCCESS: &str = "success";
pub const OUTCOME_CLIENT_ERROR: &str = "client_error";
pub const OUTCOME_REJECTED: &str = "rejected";
pub const OUTCOME_ABORTED: &str = "aborted";

/// `dnastore_outbox_delivery_seconds` buckets: from queued to delivered, 100 ms to a day
/// (writes wait out whole outages).
pub const OUTBOX_DELIVERY_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// `dnastore_fleet_propagation_seconds` buckets: 1 ms to 5 s.
pub const FLEET_PROPAGATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 5.0,
];

/// A family's Prometheus type and how it is made.
trait Kind: Collector + Clone + 'static {
    const TYPE: &'static str;
    fn make(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Self;
}

impl Kind for IntCounterVec {
    const TYPE: &'static str = "counter";
    fn make(name: &str, help: &str, labels: &[&str], _: &[f64]) -> Self {
        Self::new(Opts::new(name, help), labels).expect("static metric definition")
    }
}

impl Kind for IntGaugeVec {
    const TYPE: &'static str = "gauge";
    fn make(name: &str, help: &str, labels: &[&str], _: &[f64]) -> Self {
        Self::new(Opts::new(name, help), labels).expect("static metric definition")
    }
}

impl Kind for GaugeVec {
    const TYPE: &'static str = "gauge";
    fn make(name: &str, help: &str, labels: &[&str], _: &[f64]) -> Self {
        Self::new(Opts::new(name, help), labels).expect("static metric definition")
    }
}

impl Kind for HistogramVec {
    const TYPE: &'static str = "histogram";
    fn make(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Self {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        Self::new(opts, labels).expect("static metric definition")
    }
}

/// The table: `field: Type = "name", [labels], "help" (, buckets);`. Each becomes a field
/// of [`Families`], registered once, and an entry of [`families`].
macro_rules! families {
    ($($field:ident: $ty:ty = $name:literal, [$($label:literal),*], $help:literal $(, $buckets:expr)?;)*) => {
        /// Every metric family this crate defines (see the table in `metrics/mod.rs`).
        pub struct Families {
            registry: Registry,
            $(pub $field: $ty,)*
        }

        impl Families {
            fn new() -> Self {
                let registry = Registry::new();
                $(
                    let $field = <$ty as Kind>::make($name, $help, &[$($label),*], families!(@buckets $($buckets)?));
                    registry.register(Box::new($field.clone())).expect("metric registered once");
                )*
                Self { registry, $($field,)* }
            }

            /// Each family and its Prometheus type.
            fn each(&self) -> Vec<(&dyn Collector, &'static str)> {
                vec![$((&self.$field as &dyn Collector, <$ty as Kind>::TYPE),)*]
            }
        }
    };
    (@buckets) => { &[] };
    (@buckets $b:expr) => { $b };
}

families! {
    // The breaker's events (EventMetrics).
    state: IntGaugeVec = "dnastore_circuit_state", ["name"],
        "Circuit state: 0 closed, 1 open, 2 half-open.";
    trips: IntCounterVec = "dnastore_circuit_trips_total", ["name"],
        "Times the circuit opened.";
    requests: IntCounterVec = "dnastore_requests_total", ["name", "outcome"],
        "Upstream attempts by outcome, plus short-circuited (rejected) and aborted calls.";
    duration: HistogramVec = "dnastore_request_duration_seconds", ["name"],
        "Duration of each upstream attempt (connect to last body byte), in seconds.", DURATION_BUCKETS;
    failure_rate: GaugeVec = "dnastore_circuit_failure_rate", ["name"],
        "Failure percentage of the calls in the rolling window; an empty window (an open circuit makes no calls) keeps the last rate.";
    retries: IntCounterVec = "dnastore_retries_total", ["name", "reason"],
        "Retries made, by the failure that caused them.";
    budget_exhausted: IntCounterVec = "dnastore_retry_budget_exhausted_total", ["name"],
        "Retries skipped because the retry budget was spent.";
    calls: IntCounterVec = "dnastore_calls_total", ["name", "kind"],
        "Logical calls by kind, as resilience4j counts them.";
    fallbacks: IntCounterVec = "dnastore_fallbacks_total", ["name", "source"],
        "Calls answered with a fallback, by source.";
    coalesced: IntCounterVec = "dnastore_coalesced_total", ["name"],
        "GETs answered by another identical in-flight request.";
    route_requests: IntCounterVec = "dnastore_route_requests_total", ["name", "route", "outcome"],
        "Upstream attempts by caller-supplied route template and outcome (bounded by maxRoutes).";
    route_duration: HistogramVec = "dnastore_route_request_duration_seconds", ["name", "route"],
        "Duration of each upstream attempt by caller-supplied route template, in seconds.", DURATION_BUCKETS;
    route_state: IntGaugeVec = "dnastore_route_circuit_state", ["name", "route"],
        "State of a route's own circuit (circuitPerRoute), as dnastore_circuit_state; at most maxRoutes routes, an evicted route's series removed.";
    // The breaker's attempt loop (breaker/metrics.rs).
    slow_calls: IntCounterVec = "dnastore_slow_calls_total", ["name"],
        "Attempts slower than slowCallDurationMs (counted whatever their outcome).";
    // lkg/metrics.rs
    lkg_entries: IntGaugeVec = "dnastore_lkg_entries", ["name"],
        "Entries in the last-known-good cache.";
    lkg_bytes: IntGaugeVec = "dnastore_lkg_bytes", ["name"],
        "Bytes of bodies in the last-known-good cache.";
    lkg_evictions: IntCounterVec = "dnastore_lkg_evictions_total", ["name"],
        "Entries evicted from the last-known-good cache.";
    lkg_rejected: IntCounterVec = "dnastore_lkg_rejected_total", ["name", "reason"],
        "Entries refused by the last-known-good cache, by reason.";
    lkg_redis_errors: IntCounterVec = "dnastore_lkg_redis_errors_total", ["name"],
        "Failed Redis operations of the shared cache.";
    // outbox/metrics.rs
    outbox_entries: IntGaugeVec = "dnastore_outbox_entries", ["name"],
        "Writes queued in the durable outbox.";
    outbox_dead_letters: IntGaugeVec = "dnastore_outbox_dead_letters", ["name"],
        "Writes in the outbox's dead letters (never sent again unless retried).";
    outbox_oldest_age: GaugeVec = "dnastore_outbox_oldest_age_seconds", ["name"],
        "Age of the oldest queued write, in seconds (0 when the outbox is empty).";
    outbox_enqueued: IntCounterVec = "dnastore_outbox_enqueued_total", ["name"],
        "Writes stored in the outbox because they could not be delivered.";
    outbox_refused: IntCounterVec = "dnastore_outbox_refused_total", ["name", "reason"],
        "Writes that could not be queued (the caller got the plain fallback), by reason.";
    outbox_delivered: IntCounterVec = "dnastore_outbox_delivered_total", ["name"],
        "Queued writes delivered to DNAStore.";
    outbox_dead_lettered: IntCounterVec = "dnastore_outbox_dead_lettered_total", ["name", "reason"],
        "Queued writes moved to the dead letters, by reason.";
    outbox_delivery: HistogramVec = "dnastore_outbox_delivery_seconds", ["name"],
        "Time from queued to delivered, in seconds.", OUTBOX_DELIVERY_BUCKETS;
    outbox_spilled_entries: IntGaugeVec = "dnastore_outbox_spilled_entries", ["name"],
        "Fleet outbox: writes this replica spilled to its own file (Redis could not take them) and has not yet forwarded to the stream (aggregate with sum).";
    outbox_spilled: IntCounterVec = "dnastore_outbox_spilled_total", ["name", "reason"],
        "Fleet outbox: writes spilled to this replica's file because Redis could not take them, by reason (unreachable, timeout, error).";
    outbox_forwarded: IntCounterVec = "dnastore_outbox_forwarded_total", ["name"],
        "Fleet outbox: spilled writes forwarded to the stream once Redis answered again.";
    // hedge/metrics.rs
    hedges: IntCounterVec = "dnastore_hedges_total", ["name", "result"],
        "Hedges of GET/HEAD attempts by result: won (sent, and its answer was taken), lost (sent, another copy answered first; cancelled), skipped (due but not sent: retry budget spent, bulkhead full, circuit not closed).";
    // limit/metrics.rs
    inflight: IntGaugeVec = "dnastore_inflight_requests", ["name"],
        "Calls holding a bulkhead slot (in flight to DNAStore); breakers with maxConcurrent.";
    concurrency_limit: IntGaugeVec = "dnastore_concurrency_limit", ["name"],
        "The bulkhead's current cap: maxConcurrent, or the adaptive limit.";
    queued: IntGaugeVec = "dnastore_queued_requests", ["name"],
        "Calls waiting for a bulkhead slot.";
    concurrency_rejections: IntCounterVec = "dnastore_concurrency_rejections_total", ["name", "reason"],
        "Calls the bulkhead refused (answered with the ECONCURRENCY fallback), by reason: concurrency (no slot, no queue place) or queue_timeout.";
    // tls/metrics.rs
    tls_insecure: IntGaugeVec = "dnastore_tls_insecure", ["name"],
        "1 when DNASTORE_TLS_INSECURE=true turned certificate verification off.";
    tls_reloads: IntCounterVec = "dnastore_tls_reloads_total", ["name", "result"],
        "Rotations of the TLS files seen, by result (error: the new material did not load; the previous stays in use).";
    // fleet/metrics.rs
    fleet_state: IntGaugeVec = "dnastore_fleet_state", ["name"],
        "The fleet circuit's state as this replica follows it: 0 closed (or no fleet decision), 1 open, 2 half-open (its round of leased trials).";
    fleet_connected: IntGaugeVec = "dnastore_fleet_connected", ["name"],
        "1 while the fleet circuit's Redis answers; 0: this replica runs on its local circuit alone.";
    fleet_replicas: IntGaugeVec = "dnastore_fleet_replicas", ["name"],
        "Replicas of this breaker name seen by the fleet circuit in the last few seconds (heartbeats in Redis).";
    fleet_rejected: IntCounterVec = "dnastore_fleet_rejected_total", ["name", "reason"],
        "Fleet messages and records ignored, by reason: signature (forged, or another secret), malformed, stale (older than one seen).";
    fleet_leases: IntCounterVec = "dnastore_fleet_leases_total", ["name", "result"],
        "Half-open trial leases asked for, by result: granted (this replica makes the trial), held (every lease of the round is held elsewhere), error (Redis failed: a local trial).";
    fleet_propagation: HistogramVec = "dnastore_fleet_propagation_seconds", ["name"],
        "From a fleet decision (its replica's wall clock) to this replica applying it, in seconds.", FLEET_PROPAGATION_BUCKETS;
}

/// The families, registered once per process.
pub static FAMILIES: LazyLock<Families> = LazyLock::new(Families::new);

/// Every metric family this crate defines, as (name, type, help), whether or not a breaker
/// exists yet: what an exporter needs to register them up front (prom-client does).
pub fn families() -> Vec<(String, &'static str, String)> {
    let mut out: Vec<_> = FAMILIES
        .each()
        .into_iter()
        .flat_map(|(c, t)| {
            c.desc()
                .into_iter()
                .map(move |d| (d.fq_name.clone(), t, d.help.clone()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Prometheus text exposition (format 0.0.4) of every breaker's metrics.
pub fn render() -> String {
    let families = FAMILIES.registry.gather();
    let mut buf = Vec::with_capacity(8 * 1024);
    // Encoding gathered families into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests;

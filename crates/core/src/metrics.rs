//! Prometheus metrics for every breaker in the process, in one registry of our own (so
//! `metrics()` never includes series the host application registered elsewhere).
//!
//! Handles for each breaker's label values are resolved once at creation: the hot path
//! increments atomics, it never hashes label values.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::FailureKind;
use crate::limit::Shed;
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind};
use crate::route_metrics::{RouteMetrics, DEFAULT_MAX_ROUTES};

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

/// LKG rejection reasons (`dnastore_lkg_rejected_total{reason}`).
pub const LKG_REJECT_REASONS: [&str; 2] = ["tampered", "too_large"];

pub(crate) struct Families {
    registry: Registry,
    pub(crate) route_requests: IntCounterVec,
    pub(crate) route_duration: HistogramVec,
    state: IntGaugeVec,
    trips: IntCounterVec,
    requests: IntCounterVec,
    duration: HistogramVec,
    failure_rate: GaugeVec,
    retries: IntCounterVec,
    budget_exhausted: IntCounterVec,
    calls: IntCounterVec,
    fallbacks: IntCounterVec,
    lkg_entries: IntGaugeVec,
    lkg_bytes: IntGaugeVec,
    lkg_evictions: IntCounterVec,
    lkg_rejected: IntCounterVec,
    lkg_redis_errors: IntCounterVec,
    coalesced: IntCounterVec,
    outbox_entries: IntGaugeVec,
    outbox_dead_letters: IntGaugeVec,
    outbox_oldest_age: GaugeVec,
    outbox_enqueued: IntCounterVec,
    outbox_refused: IntCounterVec,
    outbox_delivered: IntCounterVec,
    outbox_dead_lettered: IntCounterVec,
    outbox_delivery: HistogramVec,
    slow_calls: IntCounterVec,
    inflight: IntGaugeVec,
    concurrency_limit: IntGaugeVec,
    queued: IntGaugeVec,
    concurrency_rejections: IntCounterVec,
    tls_insecure: IntGaugeVec,
    tls_reloads: IntCounterVec,
    /// Counted by the hedging policy itself (`hedge/`), which owns its handles.
    pub(crate) hedges: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(v.clone()))
        .expect("metric registered once");
    v
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), &["name"]).expect("static metric definition");
    r.register(Box::new(v.clone()))
        .expect("metric registered once");
    v
}

pub(crate) static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let r = Registry::new();
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "dnastore_request_duration_seconds",
            "Duration of each upstream attempt (connect to last body byte), in seconds.",
        )
        .buckets(DURATION_BUCKETS.to_vec()),
        &["name"],
    )
    .expect("static metric definition");
    r.register(Box::new(duration.clone()))
        .expect("metric registered once");
    let failure_rate = GaugeVec::new(
        Opts::new(
            "dnastore_circuit_failure_rate",
            "Failure percentage of the calls in the rolling window; an empty window (an open circuit makes no calls) keeps the last rate.",
        ),
        &["name"],
    )
    .expect("static metric definition");
    r.register(Box::new(failure_rate.clone()))
        .expect("metric registered once");
    Families {
        state: int_gauge(
            &r,
            "dnastore_circuit_state",
            "Circuit state: 0 closed, 1 open, 2 half-open.",
        ),
        trips: counter(
            &r,
            "dnastore_circuit_trips_total",
            "Times the circuit opened.",
            &["name"],
        ),
        requests: counter(
            &r,
            "dnastore_requests_total",
            "Upstream attempts by outcome, plus short-circuited (rejected) and aborted calls.",
            &["name", "outcome"],
        ),
        duration,
        failure_rate,
        retries: counter(
            &r,
            "dnastore_retries_total",
            "Retries made, by the failure that caused them.",
            &["name", "reason"],
        ),
        budget_exhausted: counter(
            &r,
            "dnastore_retry_budget_exhausted_total",
            "Retries skipped because the retry budget was spent.",
            &["name"],
        ),
        calls: counter(
            &r,
            "dnastore_calls_total",
            "Logical calls by kind, as resilience4j counts them.",
            &["name", "kind"],
        ),
        fallbacks: counter(
            &r,
            "dnastore_fallbacks_total",
            "Calls answered with a fallback, by source.",
            &["name", "source"],
        ),
        lkg_entries: int_gauge(
            &r,
            "dnastore_lkg_entries",
            "Entries in the last-known-good cache.",
        ),
        lkg_bytes: int_gauge(
            &r,
            "dnastore_lkg_bytes",
            "Bytes of bodies in the last-known-good cache.",
        ),
        lkg_evictions: counter(
            &r,
            "dnastore_lkg_evictions_total",
            "Entries evicted from the last-known-good cache.",
            &["name"],
        ),
        lkg_rejected: counter(
            &r,
            "dnastore_lkg_rejected_total",
            "Entries refused by the last-known-good cache, by reason.",
            &["name", "reason"],
        ),
        lkg_redis_errors: counter(
            &r,
            "dnastore_lkg_redis_errors_total",
            "Failed Redis operations of the shared cache.",
            &["name"],
        ),
        coalesced: counter(
            &r,
            "dnastore_coalesced_total",
            "GETs answered by another identical in-flight request.",
            &["name"],
        ),
        outbox_entries: int_gauge(&r, "dnastore_outbox_entries", "Writes queued in the durable outbox."),
        outbox_dead_letters: int_gauge(
            &r,
            "dnastore_outbox_dead_letters",
            "Writes in the outbox's dead letters (never sent again unless retried).",
        ),
        outbox_oldest_age: {
            let v = GaugeVec::new(
                Opts::new(
                    "dnastore_outbox_oldest_age_seconds",
                    "Age of the oldest queued write, in seconds (0 when the outbox is empty).",
                ),
                &["name"],
            )
            .expect("static metric definition");
            r.register(Box::new(v.clone())).expect("metric registered once");
            v
        },
        outbox_enqueued: counter(
            &r,
            "dnastore_outbox_enqueued_total",
            "Writes stored in the outbox because they could not be delivered.",
            &["name"],
        ),
        outbox_refused: counter(
            &r,
            "dnastore_outbox_refused_total",
            "Writes that could not be queued (the caller got the plain fallback), by reason.",
            &["name", "reason"],
        ),
        outbox_delivered: counter(
            &r,
            "dnastore_outbox_delivered_total",
            "Queued writes delivered to DNAStore.",
            &["name"],
        ),
        outbox_dead_lettered: counter(
            &r,
            "dnastore_outbox_dead_lettered_total",
            "Queued writes moved to the dead letters, by reason.",
            &["name", "reason"],
        ),
        outbox_delivery: {
            let v = HistogramVec::new(
                HistogramOpts::new(
                    "dnastore_outbox_delivery_seconds",
                    "Time from queued to delivered, in seconds.",
                )
                .buckets(OUTBOX_DELIVERY_BUCKETS.to_vec()),
                &["name"],
            )
            .expect("static metric definition");
            r.register(Box::new(v.clone())).expect("metric registered once");
            v
        },
        slow_calls: counter(
            &r,
            "dnastore_slow_calls_total",
            "Attempts slower than slowCallDurationMs (counted whatever their outcome).",
            &["name"],
        ),
        inflight: int_gauge(
            &r,
            "dnastore_inflight_requests",
            "Calls holding a bulkhead slot (in flight to DNAStore); breakers with maxConcurrent.",
        ),
        concurrency_limit: int_gauge(
            &r,
            "dnastore_concurrency_limit",
            "The bulkhead's current cap: maxConcurrent, or the adaptive limit.",
        ),
        queued: int_gauge(
            &r,
            "dnastore_queued_requests",
            "Calls waiting for a bulkhead slot.",
        ),
        concurrency_rejections: counter(
            &r,
            "dnastore_concurrency_rejections_total",
            "Calls the bulkhead refused (answered with the ECONCURRENCY fallback), by reason: concurrency (no slot, no queue place) or queue_timeout.",
            &["name", "reason"],
        ),
        route_requests: counter(
            &r,
            "dnastore_route_requests_total",
            "Upstream attempts by caller-supplied route template and outcome (bounded by maxRoutes).",
            &["name", "route", "outcome"],
        ),
        route_duration: {
            let v = HistogramVec::new(
                HistogramOpts::new(
                    "dnastore_route_request_duration_seconds",
                    "Duration of each upstream attempt by caller-supplied route template, in seconds.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["name", "route"],
            )
            .expect("static metric definition");
            r.register(Box::new(v.clone())).expect("metric registered once");
            v
        },
        tls_insecure: int_gauge(
            &r,
            "dnastore_tls_insecure",
            "1 when DNASTORE_TLS_INSECURE=true turned certificate verification off.",
        ),
        tls_reloads: counter(
            &r,
            "dnastore_tls_reloads_total",
            "Rotations of the TLS files seen, by result (error: the new material did not load; the previous stays in use).",
            &["name", "result"],
        ),
        hedges: counter(
            &r,
            "dnastore_hedges_total",
            "Hedges of GET/HEAD attempts by result: won (sent, and its answer was taken), lost (sent, another copy answered first; cancelled), skipped (due but not sent: retry budget spent, bulkhead full, circuit not closed).",
            &["name", "result"],
        ),
        registry: r,
    }
});

/// A metric family whose series can be removed by label values.
trait Family: Sync {
    fn remove(&self, labels: &[&str]);
}

impl<T: prometheus::core::MetricVecBuilder> Family for prometheus::core::MetricVec<T> {
    fn remove(&self, labels: &[&str]) {
        let _ = self.remove_label_values(labels);
    }
}

/// Creates a breaker's series and remembers each one, so `remove` deletes exactly what was
/// created: the two can never drift apart as families are added.
#[derive(Default)]
struct Series(Vec<(&'static dyn Family, Vec<String>)>);

impl Series {
    fn track(&mut self, family: &'static dyn Family, labels: &[&str]) {
        self.0
            .push((family, labels.iter().map(|l| l.to_string()).collect()));
    }

    /// The series of `family` with `labels`, created now and remembered for `remove`.
    fn of<T: prometheus::core::MetricVecBuilder>(
        &mut self,
        family: &'static prometheus::core::MetricVec<T>,
        labels: &[&str],
    ) -> T::M {
        self.track(family, labels);
        family.with_label_values(labels)
    }

    fn remove(&self) {
        for (family, labels) in &self.0 {
            let l: Vec<&str> = labels.iter().map(String::as_str).collect();
            family.remove(&l);
        }
    }
}

/// One breaker's metric handles.
pub struct BreakerMetrics {
    state: IntGauge,
    trips: IntCounter,
    success: IntCounter,
    client_error: IntCounter,
    rejected: IntCounter,
    aborted: IntCounter,
    failures: Vec<IntCounter>,
    retries: Vec<IntCounter>,
    duration: Histogram,
    failure_rate: Gauge,
    budget_exhausted: IntCounter,
    calls: Vec<IntCounter>,
    fallback_none: IntCounter,
    fallback_cache: IntCounter,
    fallback_function: IntCounter,
    pub lkg_entries: IntGauge,
    pub lkg_bytes: IntGauge,
    pub lkg_evictions: IntCounter,
    pub lkg_tampered: IntCounter,
    pub lkg_too_large: IntCounter,
    pub lkg_redis_errors: IntCounter,
    coalesced: IntCounter,
    pub tls_insecure: IntGauge,
    tls_reloaded: IntCounter,
    tls_reload_failed: IntCounter,
    routes: RouteMetrics,
    outbox: Option<OutboxMetrics>,
    slow_calls: IntCounter,
    bulkhead: Option<BulkheadMetrics>,
    series: Series,
}

/// The bulkhead's series, for breakers with `maxConcurrent`.
struct BulkheadMetrics {
    inflight: IntGauge,
    limit: IntGauge,
    queued: IntGauge,
    /// By `Shed as usize`.
    rejected: Vec<IntCounter>,
}

/// The outbox's series, for breakers with an outbox.
pub struct OutboxMetrics {
    pub entries: IntGauge,
    pub dead_letters: IntGauge,
    pub oldest_age: Gauge,
    pub enqueued: IntCounter,
    refused: Vec<IntCounter>,
    pub delivered: IntCounter,
    dead_lettered: Vec<IntCounter>,
    pub delivery_seconds: Histogram,
}

impl OutboxMetrics {
    fn new(s: &mut Series, f: &'static Families, n: &str) -> Self {
        use crate::outbox::{DEAD_REASONS, REFUSED_REASONS};
        Self {
            entries: s.of(&f.outbox_entries, &[n]),
            dead_letters: s.of(&f.outbox_dead_letters, &[n]),
            oldest_age: s.of(&f.outbox_oldest_age, &[n]),
            enqueued: s.of(&f.outbox_enqueued, &[n]),
            refused: REFUSED_REASONS
                .iter()
                .map(|r| s.of(&f.outbox_refused, &[n, r]))
                .collect(),
            delivered: s.of(&f.outbox_delivered, &[n]),
            dead_lettered: DEAD_REASONS
                .iter()
                .map(|r| s.of(&f.outbox_dead_lettered, &[n, r]))
                .collect(),
            delivery_seconds: s.of(&f.outbox_delivery, &[n]),
        }
    }

    /// The counter of a reason in `outbox::REFUSED_REASONS`.
    pub fn refused(&self, reason: &str) -> &IntCounter {
        let i = crate::outbox::REFUSED_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        &self.refused[i]
    }

    /// The counter of a reason in `outbox::DEAD_REASONS`.
    pub fn dead_lettered(&self, reason: &str) -> &IntCounter {
        let i = crate::outbox::DEAD_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        &self.dead_lettered[i]
    }
}

impl BreakerMetrics {
    pub fn new(name: &str) -> Self {
        Self::with_max_routes(name, DEFAULT_MAX_ROUTES)
    }

    /// `max_routes` caps the distinct route labels (the `maxRoutes` option).
    pub fn with_max_routes(name: &str, max_routes: u32) -> Self {
        Self::build(name, max_routes, false)
    }

    /// A breaker's series; the outbox's only when it has one.
    pub fn build(name: &str, max_routes: u32, outbox: bool) -> Self {
        Self::build_with(name, max_routes, outbox, false)
    }

    /// Like [`BreakerMetrics::build`], with the bulkhead's series when `bulkhead`.
    pub fn build_with(name: &str, max_routes: u32, outbox: bool, bulkhead: bool) -> Self {
        let f: &'static Families = &FAMILIES;
        let n = name;
        let mut s = Series::default();
        let m = Self {
            state: s.of(&f.state, &[n]),
            trips: s.of(&f.trips, &[n]),
            success: s.of(&f.requests, &[n, OUTCOME_SUCCESS]),
            client_error: s.of(&f.requests, &[n, OUTCOME_CLIENT_ERROR]),
            rejected: s.of(&f.requests, &[n, OUTCOME_REJECTED]),
            aborted: s.of(&f.requests, &[n, OUTCOME_ABORTED]),
            failures: FailureKind::ALL
                .iter()
                .map(|k| s.of(&f.requests, &[n, k.label()]))
                .collect(),
            retries: FailureKind::ALL
                .iter()
                .map(|k| s.of(&f.retries, &[n, k.label()]))
                .collect(),
            duration: s.of(&f.duration, &[n]),
            // 0 until the window first holds calls, then the last window's rate.
            failure_rate: s.of(&f.failure_rate, &[n]),
            budget_exhausted: s.of(&f.budget_exhausted, &[n]),
            calls: CallKind::ALL
                .iter()
                .map(|k| s.of(&f.calls, &[n, k.as_str()]))
                .collect(),
            fallback_none: s.of(&f.fallbacks, &[n, FallbackSource::None.as_str()]),
            fallback_cache: s.of(&f.fallbacks, &[n, FallbackSource::Cache.as_str()]),
            fallback_function: s.of(&f.fallbacks, &[n, FallbackSource::Function.as_str()]),
            lkg_entries: s.of(&f.lkg_entries, &[n]),
            lkg_bytes: s.of(&f.lkg_bytes, &[n]),
            lkg_evictions: s.of(&f.lkg_evictions, &[n]),
            lkg_tampered: s.of(&f.lkg_rejected, &[n, LKG_REJECT_REASONS[0]]),
            lkg_too_large: s.of(&f.lkg_rejected, &[n, LKG_REJECT_REASONS[1]]),
            lkg_redis_errors: s.of(&f.lkg_redis_errors, &[n]),
            coalesced: s.of(&f.coalesced, &[n]),
            tls_insecure: s.of(&f.tls_insecure, &[n]),
            tls_reloaded: s.of(&f.tls_reloads, &[n, "ok"]),
            tls_reload_failed: s.of(&f.tls_reloads, &[n, "error"]),
            routes: RouteMetrics::new(n, max_routes),
            outbox: None,
            slow_calls: s.of(&f.slow_calls, &[n]),
            bulkhead: None,
            series: Series::default(),
        };
        let outbox = outbox.then(|| OutboxMetrics::new(&mut s, f, n));
        let bulkhead = bulkhead.then(|| BulkheadMetrics {
            inflight: s.of(&f.inflight, &[n]),
            limit: s.of(&f.concurrency_limit, &[n]),
            queued: s.of(&f.queued, &[n]),
            rejected: Shed::ALL
                .iter()
                .map(|w| s.of(&f.concurrency_rejections, &[n, w.label()]))
                .collect(),
        });
        Self {
            outbox,
            bulkhead,
            series: s,
            ..m
        }
    }

    /// An attempt slower than slowCallDurationMs.
    pub fn slow_call(&self) {
        self.slow_calls.inc();
    }

    /// A call the bulkhead refused.
    pub fn concurrency_rejected(&self, why: Shed) {
        if let Some(b) = &self.bulkhead {
            b.rejected[why as usize].inc();
        }
    }

    /// The bulkhead's gauges, read at scrape time.
    pub fn set_bulkhead(&self, inflight: u32, queued: u32, limit: u32) {
        if let Some(b) = &self.bulkhead {
            b.inflight.set(inflight as i64);
            b.queued.set(queued as i64);
            b.limit.set(limit as i64);
        }
    }

    pub fn outbox(&self) -> Option<&OutboxMetrics> {
        self.outbox.as_ref()
    }

    pub fn set_state(&self, s: StateKind) {
        self.state.set(s as i64);
    }

    /// The window's failure percentage; an empty window (`None`) keeps the last rate, so an
    /// open circuit, which makes no calls, keeps showing the rate that opened it.
    pub fn set_failure_rate(&self, pct: Option<f64>) {
        if let Some(p) = pct {
            self.failure_rate.set(p);
        }
    }

    /// Removes every series of this breaker (after its last handle shut down); routes seen
    /// later are not labelled again.
    pub fn remove(&self) {
        self.series.remove();
        self.routes.remove();
    }
}

impl Observer for BreakerMetrics {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Transition(t) => {
                self.state.set(t.to as i64);
                if t.to == StateKind::Open {
                    self.trips.inc();
                    // The rate that opened it, even if no scrape saw the window before
                    // it emptied (an open circuit's window only empties).
                    if t.calls > 0 {
                        self.failure_rate.set(t.failure_percent);
                    }
                }
            }
            Event::Success { latency, route } => {
                self.success.inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, OUTCOME_SUCCESS, *latency);
            }
            Event::ClientError { latency, route, .. } => {
                self.client_error.inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, OUTCOME_CLIENT_ERROR, *latency);
            }
            Event::Failure {
                kind,
                latency,
                route,
            } => {
                self.failures[kind.index()].inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, kind.label(), *latency);
            }
            Event::Reject => self.rejected.inc(),
            Event::Aborted => self.aborted.inc(),
            Event::Fallback { source, .. } => match source {
                FallbackSource::None => self.fallback_none.inc(),
                FallbackSource::Cache => self.fallback_cache.inc(),
                FallbackSource::Function => self.fallback_function.inc(),
            },
            Event::Retry { reason, .. } => self.retries[reason.index()].inc(),
            Event::RetryBudgetExhausted => self.budget_exhausted.inc(),
            Event::Completed(kind) => self.calls[*kind as usize].inc(),
            Event::Coalesced => self.coalesced.inc(),
            Event::TlsReload { ok: true, .. } => self.tls_reloaded.inc(),
            Event::TlsReload { ok: false, .. } => self.tls_reload_failed.inc(),
            // Redis errors are counted where they happen (lkg/redis.rs), the outbox's where
            // its writes change (outbox/), hedges by the hedging policy (hedge/), transitions
            // are logged.
            Event::Fire
            | Event::Hedge { .. }
            | Event::Shutdown
            | Event::RedisHealth { .. }
            | Event::Queued { .. }
            | Event::Delivered { .. }
            | Event::DeadLetter { .. }
            | Event::Outbox { .. } => {}
        }
    }
}

/// Every metric family this crate defines, as (name, type, help), whether or not a breaker
/// exists yet: what an exporter needs to register them up front (prom-client does).
pub fn families() -> Vec<(String, &'static str, String)> {
    use prometheus::core::Collector;
    let f = &*FAMILIES;
    let all: [(&dyn Collector, &'static str); 33] = [
        (&f.state, "gauge"),
        (&f.trips, "counter"),
        (&f.requests, "counter"),
        (&f.duration, "histogram"),
        (&f.failure_rate, "gauge"),
        (&f.retries, "counter"),
        (&f.budget_exhausted, "counter"),
        (&f.calls, "counter"),
        (&f.fallbacks, "counter"),
        (&f.lkg_entries, "gauge"),
        (&f.lkg_bytes, "gauge"),
        (&f.lkg_evictions, "counter"),
        (&f.lkg_rejected, "counter"),
        (&f.lkg_redis_errors, "counter"),
        (&f.coalesced, "counter"),
        (&f.route_requests, "counter"),
        (&f.route_duration, "histogram"),
        (&f.outbox_entries, "gauge"),
        (&f.outbox_dead_letters, "gauge"),
        (&f.outbox_oldest_age, "gauge"),
        (&f.outbox_enqueued, "counter"),
        (&f.outbox_refused, "counter"),
        (&f.outbox_delivered, "counter"),
        (&f.outbox_dead_lettered, "counter"),
        (&f.outbox_delivery, "histogram"),
        (&f.slow_calls, "counter"),
        (&f.inflight, "gauge"),
        (&f.concurrency_limit, "gauge"),
        (&f.queued, "gauge"),
        (&f.concurrency_rejections, "counter"),
        (&f.tls_insecure, "gauge"),
        (&f.tls_reloads, "counter"),
        (&f.hedges, "counter"),
    ];
    let mut out: Vec<_> = all
        .iter()
        .flat_map(|(c, t)| {
            c.desc()
                .into_iter()
                .map(move |d| (d.fq_name.clone(), *t, d.help.clone()))
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
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn families_list_matches_what_render_prints() {
        // With the outbox's families, so the check does not depend on another test having
        // made a breaker with an outbox first.
        let m = BreakerMetrics::build_with("metrics-test-families", DEFAULT_MAX_ROUTES, true, true);
        m.on_event(&Event::Success {
            latency: Duration::from_millis(1),
            route: Some("/r"),
        });
        let text = render();
        let mut typed: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (n, t) = l.split_once(' ').unwrap();
                (n.to_string(), t.to_string())
            })
            .collect();
        typed.sort();
        let listed: Vec<(String, String)> = families()
            .into_iter()
            .map(|(n, t, _)| (n, t.to_string()))
            .collect();
        assert_eq!(typed, listed);
        m.remove();
    }

    #[test]
    fn series_appear_and_are_removed() {
        let m = BreakerMetrics::new("metrics-test-a");
        m.on_event(&Event::Success {
            latency: Duration::from_millis(3),
            route: None,
        });
        m.set_state(StateKind::Open);
        let text = render();
        assert!(text.contains("dnastore_circuit_state{name=\"metrics-test-a\"} 1"));
        assert!(
            text.contains("dnastore_requests_total{name=\"metrics-test-a\",outcome=\"success\"} 1")
        );
        assert!(text.contains(
            "dnastore_request_duration_seconds_bucket{name=\"metrics-test-a\",le=\"0.005\"} 1"
        ));
        m.remove();
        assert!(!render().contains("metrics-test-a"));
    }
}

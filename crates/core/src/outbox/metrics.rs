//! The outbox's own series, written only here where its writes change (the ownership rule
//! is in `metrics/mod.rs`). Reasons are enums: a reason that is not one cannot be counted.

use prometheus::{Gauge, Histogram, IntCounter, IntGauge};

use crate::metrics::{Series, FAMILIES};
use crate::observer::DeadReason;

/// Why a write could not be queued (`dnastore_outbox_refused_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedReason {
    /// `outboxMaxEntries` or `outboxMaxBytes` reached.
    Full,
    /// The store failed, or is closed.
    StoreError,
    /// Fleet outbox: Redis could not take a write with an ordering key, which is never
    /// spilled (its order against the key's writes elsewhere could not be kept).
    OrderingKey,
}

impl RefusedReason {
    /// Every reason, in discriminant order (`reason as usize` indexes it).
    pub const ALL: [RefusedReason; 3] = [
        RefusedReason::Full,
        RefusedReason::StoreError,
        RefusedReason::OrderingKey,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RefusedReason::Full => "full",
            RefusedReason::StoreError => "store_error",
            RefusedReason::OrderingKey => "ordering_key",
        }
    }
}

/// Why Redis could not take a fleet write that was then spilled to this replica's file
/// (`dnastore_outbox_spilled_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpillReason {
    /// No connection could be opened (refused, no answer within `redisConnectTimeoutMs`,
    /// or still backing off after a failed attempt), or it broke under the write.
    Unreachable,
    /// Connected, but no reply within `redisResponseTimeoutMs`: the write may have reached
    /// the stream anyway (`spill/` says what that costs).
    Timeout,
    /// Redis answered with an error (a replica during a failover: READONLY; out of memory).
    Error,
}

impl SpillReason {
    /// Every reason, in discriminant order (`reason as usize` indexes it).
    pub const ALL: [SpillReason; 3] = [
        SpillReason::Unreachable,
        SpillReason::Timeout,
        SpillReason::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SpillReason::Unreachable => "unreachable",
            SpillReason::Timeout => "timeout",
            SpillReason::Error => "error",
        }
    }
}

/// One breaker's outbox series (breakers with an outbox).
pub struct OutboxMetrics {
    pub(super) entries: IntGauge,
    pub(super) dead_letters: IntGauge,
    pub(super) oldest_age: Gauge,
    pub(super) enqueued: IntCounter,
    /// By `RefusedReason as usize`.
    refused: Vec<IntCounter>,
    pub(super) delivered: IntCounter,
    /// By `DeadReason as usize`.
    dead_lettered: Vec<IntCounter>,
    pub(super) delivery_seconds: Histogram,
    /// The fleet's spill (0 for the embedded store, which never spills).
    pub(super) spilled_entries: IntGauge,
    /// By `SpillReason as usize`.
    spilled: Vec<IntCounter>,
    pub(super) forwarded: IntCounter,
}

impl OutboxMetrics {
    pub fn new(s: &Series) -> Self {
        let f = &*FAMILIES;
        Self {
            entries: s.of(&f.outbox_entries, &[]),
            dead_letters: s.of(&f.outbox_dead_letters, &[]),
            oldest_age: s.of(&f.outbox_oldest_age, &[]),
            enqueued: s.of(&f.outbox_enqueued, &[]),
            refused: RefusedReason::ALL
                .iter()
                .map(|r| s.of(&f.outbox_refused, &[r.label()]))
                .collect(),
            delivered: s.of(&f.outbox_delivered, &[]),
            dead_lettered: DeadReason::ALL
                .iter()
                .map(|r| s.of(&f.outbox_dead_lettered, &[r.as_str()]))
                .collect(),
            delivery_seconds: s.of(&f.outbox_delivery, &[]),
            spilled_entries: s.of(&f.outbox_spilled_entries, &[]),
            spilled: SpillReason::ALL
                .iter()
                .map(|r| s.of(&f.outbox_spilled, &[r.label()]))
                .collect(),
            forwarded: s.of(&f.outbox_forwarded, &[]),
        }
    }

    pub(super) fn spilled(&self, why: SpillReason) -> &IntCounter {
        &self.spilled[why as usize]
    }

    pub(super) fn refused(&self, why: RefusedReason) -> &IntCounter {
        &self.refused[why as usize]
    }

    pub(super) fn dead_lettered(&self, why: DeadReason) -> &IntCounter {
        &self.dead_lettered[why as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render;

    #[test]
    fn each_reason_counts_in_its_own_series() {
        let s = Series::new("outbox-reasons-unit");
        let m = OutboxMetrics::new(&s);
        for (i, r) in DeadReason::ALL.iter().enumerate() {
            m.dead_lettered(*r).inc_by(i as u64 + 1);
        }
        for (i, r) in RefusedReason::ALL.iter().enumerate() {
            m.refused(*r).inc_by(i as u64 + 1);
        }
        for (i, r) in SpillReason::ALL.iter().enumerate() {
            m.spilled(*r).inc_by(i as u64 + 1);
        }
        let text = render();
        for (i, r) in DeadReason::ALL.iter().enumerate() {
            let line = format!(
                "dnastore_outbox_dead_lettered_total{{name=\"outbox-reasons-unit\",reason=\"{}\"}} {}",
                r.as_str(),
                i + 1
            );
            assert!(text.contains(&line), "{line}");
        }
        for (i, r) in RefusedReason::ALL.iter().enumerate() {
            let line = format!(
                "dnastore_outbox_refused_total{{name=\"outbox-reasons-unit\",reason=\"{}\"}} {}",
                r.label(),
                i + 1
            );
            assert!(text.contains(&line), "{line}");
        }
        for (i, r) in SpillReason::ALL.iter().enumerate() {
            let line = format!(
                "dnastore_outbox_spilled_total{{name=\"outbox-reasons-unit\",reason=\"{}\"}} {}",
                r.label(),
                i + 1
            );
            assert!(text.contains(&line), "{line}");
        }
        s.remove();
        assert!(!render().contains("outbox-reasons-unit"));
    }
}

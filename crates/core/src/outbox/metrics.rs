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
}

impl RefusedReason {
    /// Every reason, in discriminant order (`reason as usize` indexes it).
    pub const ALL: [RefusedReason; 2] = [RefusedReason::Full, RefusedReason::StoreError];

    pub fn label(self) -> &'static str {
        match self {
            RefusedReason::Full => "full",
            RefusedReason::StoreError => "store_error",
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
        }
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
        s.remove();
        assert!(!render().contains("outbox-reasons-unit"));
    }
}

//! The bulkhead's own series, for breakers with `maxConcurrent`: rejections counted where
//! the limiter refuses, gauges set at scrape time (the ownership rule is in
//! `metrics/mod.rs`).

use prometheus::{IntCounter, IntGauge};

use super::Shed;
use crate::metrics::{Series, FAMILIES};

pub struct LimitMetrics {
    inflight: IntGauge,
    limit: IntGauge,
    queued: IntGauge,
    /// By `Shed as usize`.
    rejected: Vec<IntCounter>,
}

impl LimitMetrics {
    pub fn new(s: &Series) -> Self {
        let f = &*FAMILIES;
        Self {
            inflight: s.of(&f.inflight, &[]),
            limit: s.of(&f.concurrency_limit, &[]),
            queued: s.of(&f.queued, &[]),
            rejected: Shed::ALL
                .iter()
                .map(|w| s.of(&f.concurrency_rejections, &[w.label()]))
                .collect(),
        }
    }

    pub(super) fn rejected(&self, why: Shed) {
        self.rejected[why as usize].inc();
    }

    pub(super) fn set(&self, inflight: u32, queued: u32, limit: u32) {
        self.inflight.set(inflight as i64);
        self.queued.set(queued as i64);
        self.limit.set(limit as i64);
    }
}

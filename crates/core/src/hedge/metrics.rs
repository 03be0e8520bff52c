//! Hedging's own series: `dnastore_hedges_total{result}`, counted where a hedge's fate is
//! known (the ownership rule is in `metrics/mod.rs`).

use prometheus::IntCounter;

use crate::metrics::{Series, FAMILIES};
use crate::observer::HedgeResult;

pub struct HedgeMetrics {
    /// By `HedgeResult as usize`.
    by_result: [IntCounter; 3],
}

impl HedgeMetrics {
    pub fn new(s: &Series) -> Self {
        Self {
            by_result: HedgeResult::ALL.map(|r| s.of(&FAMILIES.hedges, &[r.as_str()])),
        }
    }

    pub(super) fn count(&self, result: HedgeResult) {
        self.by_result[result as usize].inc();
    }
}

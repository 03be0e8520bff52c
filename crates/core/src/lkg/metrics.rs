//! The last-known-good cache's own series (its local LRU and its Redis side), written only
//! here where they change (the ownership rule is in `metrics/mod.rs`).

use prometheus::{IntCounter, IntGauge};

use crate::metrics::{Series, FAMILIES};

/// Why an entry was refused (`dnastore_lkg_rejected_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Its HMAC does not verify (or a value read from Redis does not decode).
    Tampered,
    /// Larger than `lkgMaxEntryBytes` or `lkgMaxBytes`.
    TooLarge,
}

impl Rejected {
    /// Every reason, in discriminant order (`reason as usize` indexes it).
    pub const ALL: [Rejected; 2] = [Rejected::Tampered, Rejected::TooLarge];

    pub fn label(self) -> &'static str {
        match self {
            Rejected::Tampered => "tampered",
            Rejected::TooLarge => "too_large",
        }
    }
}

/// One breaker's cache series (shown whether or not its cache is enabled).
pub struct LkgMetrics {
    pub entries: IntGauge,
    pub bytes: IntGauge,
    pub evictions: IntCounter,
    /// By `Rejected as usize`.
    rejected: Vec<IntCounter>,
    pub redis_errors: IntCounter,
}

impl LkgMetrics {
    pub fn new(s: &Series) -> Self {
        let f = &*FAMILIES;
        Self {
            entries: s.of(&f.lkg_entries, &[]),
            bytes: s.of(&f.lkg_bytes, &[]),
            evictions: s.of(&f.lkg_evictions, &[]),
            rejected: Rejected::ALL
                .iter()
                .map(|r| s.of(&f.lkg_rejected, &[r.label()]))
                .collect(),
            redis_errors: s.of(&f.lkg_redis_errors, &[]),
        }
    }

    pub fn rejected(&self, why: Rejected) -> &IntCounter {
        &self.rejected[why as usize]
    }
}

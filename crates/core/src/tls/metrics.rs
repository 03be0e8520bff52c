//! The upstream TLS's own series: insecure mode (set when the breaker is built) and the
//! rotations its watch sees, counted by the watch (the ownership rule is in
//! `metrics/mod.rs`).

use prometheus::{IntCounter, IntGauge};

use crate::metrics::{Series, FAMILIES};

#[derive(Clone)]
pub struct TlsMetrics {
    pub insecure: IntGauge,
    pub(super) reloaded: IntCounter,
    pub(super) reload_failed: IntCounter,
}

impl TlsMetrics {
    pub fn new(s: &Series) -> Self {
        let f = &*FAMILIES;
        Self {
            insecure: s.of(&f.tls_insecure, &[]),
            reloaded: s.of(&f.tls_reloads, &["ok"]),
            reload_failed: s.of(&f.tls_reloads, &["error"]),
        }
    }
}

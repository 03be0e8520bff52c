//! The fleet circuit's own series, written by the fleet where its state changes (the
//! ownership rule is in `metrics/mod.rs`). Labels are the breaker name and bounded
//! enumerations only (never a replica id).

use prometheus::{Histogram, IntCounter, IntGauge};

use super::record::Refused;
use crate::metrics::{Series, FAMILIES};
use crate::observer::StateKind;

/// `dnastore_fleet_leases_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseResult {
    Granted,
    Held,
    Error,
}

impl LeaseResult {
    pub const ALL: [LeaseResult; 3] = [LeaseResult::Granted, LeaseResult::Held, LeaseResult::Error];

    pub fn label(self) -> &'static str {
        match self {
            LeaseResult::Granted => "granted",
            LeaseResult::Held => "held",
            LeaseResult::Error => "error",
        }
    }
}

pub struct FleetMetrics {
    state: IntGauge,
    connected: IntGauge,
    replicas: IntGauge,
    /// By `Refused::ALL` order.
    rejected: Vec<IntCounter>,
    /// By `LeaseResult::ALL` order.
    leases: Vec<IntCounter>,
    propagation: Histogram,
}

impl FleetMetrics {
    pub fn new(s: &Series) -> Self {
        let f = &*FAMILIES;
        Self {
            state: s.of(&f.fleet_state, &[]),
            connected: s.of(&f.fleet_connected, &[]),
            replicas: s.of(&f.fleet_replicas, &[]),
            rejected: Refused::ALL
                .iter()
                .map(|r| s.of(&f.fleet_rejected, &[r.as_str()]))
                .collect(),
            leases: LeaseResult::ALL
                .iter()
                .map(|r| s.of(&f.fleet_leases, &[r.label()]))
                .collect(),
            propagation: s.of(&f.fleet_propagation, &[]),
        }
    }

    pub fn set_state(&self, s: StateKind) {
        self.state.set(s as i64);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.set(i64::from(up));
    }

    pub fn set_replicas(&self, n: u64) {
        self.replicas.set(n as i64);
    }

    pub fn rejected(&self, why: Refused) {
        self.rejected[why as usize].inc();
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(IntCounter::get).sum()
    }

    pub fn lease(&self, r: LeaseResult) {
        self.leases[r as usize].inc();
    }

    pub fn propagated(&self, seconds: f64) {
        self.propagation.observe(seconds);
    }
}

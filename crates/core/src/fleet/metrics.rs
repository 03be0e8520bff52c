//! The fleet circuit's series, one set per breaker, built from the families declared with
//! every other in `metrics.rs`. Labels are the breaker name and bounded enumerations only
//! (never a replica id).

use prometheus::{Histogram, IntCounter, IntGauge};

use super::record::Refused;
use crate::metrics::FAMILIES;
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
    name: String,
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
    pub fn new(name: &str) -> Self {
        let f = &*FAMILIES;
        let n = [name];
        Self {
            name: name.to_string(),
            state: f.fleet_state.with_label_values(&n),
            connected: f.fleet_connected.with_label_values(&n),
            replicas: f.fleet_replicas.with_label_values(&n),
            rejected: Refused::ALL
                .iter()
                .map(|r| f.fleet_rejected.with_label_values(&[name, r.as_str()]))
                .collect(),
            leases: LeaseResult::ALL
                .iter()
                .map(|r| f.fleet_leases.with_label_values(&[name, r.label()]))
                .collect(),
            propagation: f.fleet_propagation.with_label_values(&n),
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

    /// Removes this breaker's series (its last handle shut down).
    pub fn remove(&self) {
        let f = &*FAMILIES;
        let n = [self.name.as_str()];
        let _ = f.fleet_state.remove_label_values(&n);
        let _ = f.fleet_connected.remove_label_values(&n);
        let _ = f.fleet_replicas.remove_label_values(&n);
        let _ = f.fleet_propagation.remove_label_values(&n);
        for r in Refused::ALL {
            let _ = f.fleet_rejected.remove_label_values(&[n[0], r.as_str()]);
        }
        for r in LeaseResult::ALL {
            let _ = f.fleet_leases.remove_label_values(&[n[0], r.label()]);
        }
    }
}

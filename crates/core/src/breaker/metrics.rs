//! A breaker's series, assembled: the event-counted ones (`metrics::EventMetrics`, its
//! first observer), each feature's own (built here from the families, handed to the
//! feature that writes them), and the one only the breaker sees (slow attempts). The
//! ownership rule is in `metrics/mod.rs`. A guarded circuit (the opossum class) shows the
//! same series, so a dashboard built for one works for the other.

use std::sync::Arc;

use prometheus::IntCounter;

use crate::fleet::FleetMetrics;
use crate::hedge::HedgeMetrics;
use crate::limit::LimitMetrics;
use crate::lkg::LkgMetrics;
use crate::metrics::{EventMetrics, Series, FAMILIES};
use crate::outbox::OutboxMetrics;
use crate::tls::TlsMetrics;

/// One breaker's metric handles.
pub struct BreakerMetrics {
    /// Every series created for this breaker, removed together when it closes.
    series: Series,
    pub events: Arc<EventMetrics>,
    pub lkg: Arc<LkgMetrics>,
    pub tls: TlsMetrics,
    /// Attempts slower than slowCallDurationMs (counted by the attempt loop).
    pub slow_calls: IntCounter,
}

impl BreakerMetrics {
    /// The series every breaker shows, whatever its options; `max_routes` caps the distinct
    /// route labels (the `maxRoutes` option).
    pub fn new(name: &str, max_routes: u32) -> Self {
        let series = Series::new(name);
        Self {
            events: Arc::new(EventMetrics::new(&series, max_routes)),
            lkg: Arc::new(LkgMetrics::new(&series)),
            tls: TlsMetrics::new(&series),
            slow_calls: series.of(&FAMILIES.slow_calls, &[]),
            series,
        }
    }

    /// The outbox's series (for a breaker with an outbox).
    pub fn outbox(&self) -> OutboxMetrics {
        OutboxMetrics::new(&self.series)
    }

    /// The fleet circuit's series (for a breaker with `fleetCircuit: 'on'`).
    pub fn fleet(&self) -> FleetMetrics {
        FleetMetrics::new(&self.series)
    }

    /// The bulkhead's series (for a breaker with `maxConcurrent`).
    pub fn limit(&self) -> LimitMetrics {
        LimitMetrics::new(&self.series)
    }

    /// Hedging's series (for a breaker with `hedgeAfterMs`).
    pub fn hedge(&self) -> HedgeMetrics {
        HedgeMetrics::new(&self.series)
    }

    /// Removes every series of this breaker (after its last handle shut down); routes seen
    /// later are not labelled again.
    pub fn remove(&self) {
        self.series.remove();
        self.events.remove_routes();
    }
}

//! The fleet circuit's `stats().fleet` as JS sees it (its event fields: `events.rs`).

use dnastore_core::fleet::FleetStats as CoreFleetStats;
use napi_derive::napi;

/// `stats().fleet` (null with fleetCircuit off).
#[napi(object)]
pub struct FleetStats {
    /// This replica's id (host name, pid, random digits), as other replicas' logs name it.
    pub replica: String,
    /// Whether the fleet's Redis answers; false: this replica runs on its local circuit.
    pub connected: bool,
    /// The fleet's state as this replica follows it: 'closed' | 'open' | 'halfOpen'.
    pub state: String,
    /// Grows by one at every fleet decision.
    pub generation: f64,
    pub quorum: u32,
    /// Live trip votes within rollingCountTimeout (this replica's included).
    pub votes: u32,
    /// Replicas of this breaker name seen in the last few seconds.
    pub replicas: f64,
    /// The replica that opened the fleet, while it is open.
    pub tripped_by: Option<String>,
    /// Fleet messages and records ignored (forged, garbled, stale) so far.
    pub rejected: f64,
}

impl From<CoreFleetStats> for FleetStats {
    fn from(s: CoreFleetStats) -> Self {
        Self {
            replica: s.replica,
            connected: s.connected,
            state: s.state.as_str().to_string(),
            generation: s.generation as f64,
            quorum: s.quorum,
            votes: s.votes,
            replicas: s.replicas as f64,
            tripped_by: s.tripped_by,
            rejected: s.rejected as f64,
        }
    }
}

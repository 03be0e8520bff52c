//! The fleet circuit as JS sees it: `stats().fleet`, and the fleet fields of events.

use dnastore_core::fleet::FleetStats as CoreFleetStats;
use dnastore_core::{FleetEvent, FleetNote, Transition};
use napi_derive::napi;

use crate::events::BreakerEvent;

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

fn with_note(e: &mut BreakerEvent, n: &FleetNote) {
    e.tripped_by = Some(n.by.clone());
    e.generation = Some(n.generation as f64);
    e.votes = Some(n.votes);
    e.fleet_reason = Some(n.why.as_str().to_string());
}

/// A transition's decision fields: `decision` ('local' | 'fleet') and, for the fleet's,
/// which replica and why.
pub fn transition_fields(e: &mut BreakerEvent, t: &Transition) {
    e.decision = Some(if t.fleet.is_some() { "fleet" } else { "local" }.into());
    if let Some(n) = &t.fleet {
        with_note(e, n);
    }
}

/// The `fleet` event: `kind` says what happened.
pub fn event(f: &FleetEvent<'_>) -> BreakerEvent {
    let mut e = BreakerEvent::default();
    match f {
        FleetEvent::Connected { replica } => {
            e.kind = Some("connected".into());
            e.up = Some(true);
            e.replica = Some(replica.to_string());
        }
        FleetEvent::Disconnected { reason } => {
            e.kind = Some("disconnected".into());
            e.up = Some(false);
            e.reason = Some(reason.to_string());
        }
        FleetEvent::State { state, note } => {
            e.kind = Some("state".into());
            e.to = Some(state.as_str().into());
            with_note(&mut e, note);
        }
        FleetEvent::Rejected { reason } => {
            e.kind = Some("rejected".into());
            e.reason = Some(reason.to_string());
        }
    }
    e
}

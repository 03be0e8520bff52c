//! What the fleet hears from its breaker: the local circuit opening on its own evidence (a
//! trip vote) and the outcome of each attempt (a failure corroborates another replica's
//! trip). Runs on the call path: atomics and a non-blocking send only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Cmd, Shared};
use crate::observer::{Event, Observer, StateKind, TransitionReason};

pub(super) struct FleetObserver {
    shared: Arc<Shared>,
}

impl FleetObserver {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Observer for FleetObserver {
    fn on_event(&self, e: &Event<'_>) {
        let s = &self.shared;
        match e {
            // Its own decision (not the fleet's, not an operator's): a trip vote.
            Event::Transition(t)
                if t.to == StateKind::Open
                    && t.fleet.is_none()
                    && t.reason != TransitionReason::Manual =>
            {
                let at = s.wall_ms().max(1);
                s.tripped_ms.store(at, Ordering::Release);
                let _ = s.tx.send(Cmd::Tripped(at));
            }
            // Closed (on its own trial, or by the fleet): no trip of its own stands.
            Event::Transition(t) if t.to == StateKind::Closed => {
                s.tripped_ms.store(0, Ordering::Release);
            }
            Event::Failure { .. } => {
                let now = s.wall_ms().max(1);
                s.last_failure_ms.store(now, Ordering::Release);
                if s.corroborate.swap(false, Ordering::AcqRel) {
                    let _ = s.tx.send(Cmd::Failed(now));
                }
            }
            Event::Success { .. } | Event::ClientError { .. } => {
                s.last_failure_ms.store(0, Ordering::Release);
            }
            _ => {}
        }
    }
}

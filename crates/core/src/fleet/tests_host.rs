//! What the fleet asks of its breaker when it reads a state record, with a fake breaker
//! whose wall clock a test sets by hand (no Redis: nothing here does I/O).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::record::{Signer, StateRecord};
use super::{FleetCircuit, FleetHost, FleetMetrics, FleetSettings};
use crate::config::{RedisOptions, RedisSpec};
use crate::metrics::{render, Series};
use crate::observer::{FleetEvent, FleetNote, FleetWhy};
use crate::redis::RedisClient;
use crate::rng::SplitMix64;

#[derive(Default)]
struct FakeHost {
    wall: AtomicU64,
    calls: Mutex<Vec<String>>,
}

impl FleetHost for FakeHost {
    fn wall_ms(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }
    fn fleet_open(&self, until_ms: u64, note: Arc<FleetNote>, fresh: bool, _trials: u32) {
        self.calls.lock().push(format!(
            "open:{until_ms}:{}:{}",
            note.generation,
            if fresh { "fresh" } else { "again" }
        ));
    }
    fn fleet_close(&self, note: Arc<FleetNote>) {
        self.calls.lock().push(format!("close:{}", note.generation));
    }
    fn fleet_detach(&self) {
        self.calls.lock().push("detach".into());
    }
    fn hold_trials(&self, ms: u64) {
        self.calls.lock().push(format!("hold:{ms}"));
    }
    fn fleet_control(&self, c: crate::observer::Control) {
        self.calls.lock().push(format!("control:{}", c.as_str()));
    }
    fn emit_fleet(&self, e: FleetEvent<'_>) {
        let s = match e {
            FleetEvent::Rejected { reason } => format!("event:rejected:{reason}"),
            FleetEvent::State { state, .. } => format!("event:state:{}", state.as_str()),
            FleetEvent::Connected { .. } => "event:connected".into(),
            FleetEvent::Disconnected { .. } => "event:disconnected".into(),
        };
        self.calls.lock().push(s);
    }
}

const SECRET: &str = "host-test-secret";

fn fleet(name: &str, host: &Arc<FakeHost>) -> FleetCircuit {
    let spec = RedisSpec::parse("redis://127.0.0.1:1").unwrap();
    let client = RedisClient::new(spec, RedisOptions::default()).unwrap();
    let weak: Weak<dyn FleetHost> = Arc::downgrade(host) as Weak<dyn FleetHost>;
    FleetCircuit::new(
        name,
        FleetSettings {
            quorum: 2,
            window: std::time::Duration::from_secs(10),
            reset_timeout: std::time::Duration::from_secs(1),
            trials: 1,
            open_max: std::time::Duration::from_secs(1),
        },
        Some(SECRET),
        client,
        weak,
        Arc::new(SplitMix64::seeded(3)),
        FleetMetrics::new(&Series::new(name)),
    )
}

fn open(generation: u64, at_ms: u64) -> StateRecord {
    StateRecord {
        generation,
        open: true,
        until_ms: at_ms + 1000,
        at_ms,
        by: "web-1".into(),
        why: FleetWhy::Quorum,
        votes: 2,
        trials: 0,
    }
}

#[test]
fn a_decision_stamped_ahead_of_this_clock_still_counts_as_propagated() {
    // Another replica's clock is 40 ms ahead of this one's (another host, or a process whose
    // clock origin was taken later): its decision is applied and its delay counted as 0.
    let name = "fleet-host-ahead";
    let host = Arc::new(FakeHost::default());
    host.wall.store(10_000, Ordering::SeqCst);
    let f = fleet(name, &host);
    let raw = Signer::new(name, Some(SECRET)).state(&open(1, 10_040));
    f.shared.see_state(Some(raw.as_bytes()), false);
    assert_eq!(host.calls.lock()[0], "open:11040:1:fresh");
    let text = render();
    assert!(
        text.contains(&format!(
            "dnastore_fleet_propagation_seconds_count{{name=\"{name}\"}} 1"
        )),
        "{text}"
    );
}

#[test]
fn reading_the_state_applies_new_decisions_once_and_refuses_the_rest() {
    let name = "fleet-host-apply";
    let host = Arc::new(FakeHost::default());
    host.wall.store(5_000, Ordering::SeqCst);
    let f = fleet(name, &host);
    let signer = Signer::new(name, Some(SECRET));
    let g2 = signer.state(&open(2, 4_990));
    f.shared.see_state(Some(g2.as_bytes()), true);
    // The same record at the next read: nothing; after a reconnect: followed again.
    f.shared.see_state(Some(g2.as_bytes()), false);
    f.shared.see_state(Some(g2.as_bytes()), true);
    // A forgery (no secret), then the key deleted: no decision, the breaker decides alone;
    // the refusal is said once.
    let forged = Signer::new(name, None).state(&open(9, 5_000));
    f.shared.see_state(Some(forged.as_bytes()), false);
    f.shared.see_state(None, false);
    // An older genuine record: stale.
    let g1 = signer.state(&open(1, 4_000));
    f.shared.see_state(Some(g1.as_bytes()), false);
    assert_eq!(
        *host.calls.lock(),
        [
            "open:5990:2:fresh",
            "event:state:open",
            "open:5990:2:again",
            "detach",
            "event:rejected:signature",
            "detach",
            "detach",
        ]
    );
    assert!(render().contains(&format!(
        "dnastore_fleet_rejected_total{{name=\"{name}\",reason=\"stale\"}} 1"
    )));
    assert_eq!(f.stats().rejected, 2);
}

#[test]
fn operator_commands_apply_once_in_order_and_a_rejoin_keeps_only_held_states() {
    use super::force::ForceRecord;
    use crate::observer::Control;
    let name = "fleet-host-force";
    let host = Arc::new(FakeHost::default());
    let f = fleet(name, &host);
    let cmd = |seq, command| ForceRecord {
        seq,
        command,
        at_ms: seq,
        by: "cli:ops".into(),
    };
    // The first read at start: a close of long ago is not applied (this replica's own
    // circuitForce stands); a held state is.
    f.shared.see_force(cmd(10, Control::Close), true).unwrap();
    f.shared.see_force(cmd(11, Control::Open), false).unwrap();
    // Heard again (the channel, then the heartbeat): once.
    f.shared.see_force(cmd(11, Control::Open), false).unwrap();
    // An older command: stale, refused.
    assert_eq!(
        f.shared.see_force(cmd(9, Control::Enable), false),
        Err(super::record::Refused::Stale)
    );
    // After a reconnect: the held open again; a close issued meanwhile applies.
    f.shared.see_force(cmd(11, Control::Open), true).unwrap();
    f.shared.see_force(cmd(12, Control::Close), true).unwrap();
    assert_eq!(
        *host.calls.lock(),
        ["control:open", "control:open", "control:close"]
    );
    // A record round-trips through the signer; a forged one does not verify.
    let signer = Signer::new(name, Some(SECRET));
    let raw = signer.force(&cmd(13, Control::Disable));
    assert_eq!(
        signer.open(raw.as_bytes()),
        Ok(super::record::Message::Force(cmd(13, Control::Disable)))
    );
    let forged = Signer::new(name, None).force(&cmd(14, Control::Open));
    assert_eq!(
        signer.open(forged.as_bytes()),
        Err(super::record::Refused::Signature)
    );
}

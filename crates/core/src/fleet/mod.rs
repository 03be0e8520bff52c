//! The fleet circuit (`fleetCircuit: 'on'`): one circuit shared by every replica of a
//! breaker name through Redis (`redisUrl`, every form it takes).
//!
//! **State changes, not calls.** Each replica keeps its own circuit and its own window; it
//! tells the fleet only when that circuit opens on its own evidence (a *trip vote*) and how
//! a leased trial ended. Every replica follows the fleet's *state record*, one Redis key
//! changed only by compare-and-set scripts and published on a channel as it changes
//! (`scripts.rs`), read at start, after every reconnect and every [`POLL`] (pub/sub is
//! at-most-once).
//!
//! **Opening: quorum with corroboration.** The fleet opens when `fleetQuorum` replicas
//! voted within one `rollingCountTimeout`. A replica votes when its circuit opens on its own
//! evidence, as without the fleet. While another replica's vote is live, one failure of this
//! replica's own calls (its latest outcome, within the window) is its vote too: five quiet
//! replicas at 4 req/s corroborate a busy one's trip within tens of milliseconds, where
//! each would need a second or more to reach `maxFailures` alone. A replica whose own path
//! is broken (a partition) gets no corroboration (the others' calls succeed), so at the
//! default quorum of 2 it opens alone and the fleet stays closed. A lone replica (a fleet of
//! one) never reaches a quorum above 1 and behaves as a local breaker.
//!
//! **Half-open is fleet-wide.** When the fleet's open period ends, its round of trials is
//! on: a replica's trial must first take one of `halfOpenMaxCalls` leases of the round
//! (`SET NX PX`, as long as the trial's attempt may take), so at most that many trials run
//! across the fleet at once; the others get the fallback and admit no trial until the
//! leases could free. A trial's failure reopens the fleet for everyone; the round's
//! `halfOpenMaxCalls` successes close it (the local circuit's rule, so a fleet of one
//! behaves as a local breaker). A lease whose holder dies expires, and the round goes on.
//!
//! **Authenticity.** With `signingSecret`, records are signed (`record.rs`) and replicas
//! count only what verifies: a client that can write to Redis but lacks the secret can
//! neither open nor close the fleet's circuit. Redis only orders (it never sees the secret).
//! A missing, refused or older state record is no decision: replicas fall back to their
//! own circuits, which keep their state (deleting keys closes nothing).
//!
//! **Redis down or slow.** The call path awaits Redis only for a trial's lease and, right
//! after start, for the first read of the fleet's state, both bounded by
//! `redisResponseTimeoutMs` (and the call's deadline). When Redis fails or is slower, the
//! replica runs on its local circuit alone (said once in the log and in
//! `dnastore_fleet_connected`), reconnects with a backoff, and on return reads the state
//! and follows it again without writing anything that resets another replica.

mod force;
mod lease;
mod metrics;
mod observe;
pub mod record;
mod scripts;
mod task;
pub mod view;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::FleetConfig;
use crate::observer::{Control, FleetEvent, FleetNote, Observer, StateKind};
use crate::redis::{RedisClient, RedisLink};
use crate::rng::Rng;

pub use force::{FleetAdmin, FleetStatus, ForceRecord};
pub use lease::{LeaseAsk, TrialLease};
pub use metrics::FleetMetrics;
use record::{Refused, Signer, StateRecord};
use scripts::Keys;
use view::{Seen, View};

/// How often a replica reads the fleet's state and says it is alive (heartbeat).
pub const POLL: Duration = Duration::from_millis(500);
/// A replica not heard from for this long is no longer counted as seen.
pub const SEEN_FOR: Duration = Duration::from_millis(1500);
const LINK_UNKNOWN: u8 = 0;
const LINK_UP: u8 = 1;
const LINK_DOWN: u8 = 2;

/// How long a round's finished leases and success count are kept.
const ROUND_KEEP: Duration = Duration::from_secs(600);

/// What the fleet asks of the breaker it serves (the breaker implements it, so this module
/// knows nothing of the breaker or of the circuit).
pub trait FleetHost: Send + Sync {
    /// Wall-clock ms now (from the breaker's injected clock).
    fn wall_ms(&self) -> u64;
    /// The fleet is open until `until_ms` (wall clock); at or before now its round of
    /// trials is on. `fresh`: a decision this replica had not applied yet (a closed circuit
    /// joins a round only then; a replica that recovered alone while Redis was away keeps
    /// its closed circuit). `trials`: failed trials in a row behind this open, from which
    /// the next failed trial grows the open period (`resetTimeoutMax`).
    fn fleet_open(&self, until_ms: u64, note: Arc<FleetNote>, fresh: bool, trials: u32);
    /// How long, in ms from now, this replica's own circuit chose to stay open (its open
    /// period, held longer by a Retry-After); `None` when it is not open on its own.
    fn own_open_ms(&self) -> Option<u64> {
        None
    }
    /// The fleet closed: a circuit that follows the fleet closes.
    fn fleet_close(&self, note: Arc<FleetNote>);
    /// No fleet decision to follow: the local circuit decides alone.
    fn fleet_detach(&self);
    /// Every trial lease is held elsewhere for `ms`: no trial before then.
    fn hold_trials(&self, ms: u64);
    /// An operator's command, from another replica or the operator command (`force.rs`).
    fn fleet_control(&self, c: Control);
    fn emit_fleet(&self, e: FleetEvent<'_>);
}

/// The circuit settings the protocol needs.
#[derive(Clone, Copy, Debug)]
pub struct FleetSettings {
    pub quorum: u32,
    /// `rollingCountTimeout`: the quorum window.
    pub window: Duration,
    pub reset_timeout: Duration,
    /// `halfOpenMaxCalls`: leases per round, successes that close.
    pub trials: u32,
    /// The longest open period this replica's configuration allows: resetTimeout,
    /// resetTimeoutMax, retryAfterMaxMs (a Retry-After holds a circuit open that long at
    /// most). No decision holds this replica longer, whatever the deciding host's clock.
    pub open_max: Duration,
}

impl FleetSettings {
    pub fn new(f: &FleetConfig, c: &crate::config::Config) -> Self {
        Self {
            quorum: f.quorum,
            window: c.rolling_count_timeout,
            reset_timeout: c.reset_timeout,
            trials: c.half_open_max_calls,
            open_max: open_max(c),
        }
    }
}

/// The longest open period `c` allows a circuit: resetTimeout, grown up to
/// resetTimeoutMax, held by a Retry-After up to retryAfterMaxMs.
pub fn open_max(c: &crate::config::Config) -> Duration {
    c.reset_timeout
        .max(c.reset_timeout_max)
        .max(c.retry.retry_after_max)
}

/// `stats().fleet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetStats {
    /// This replica's id (host name, pid, random digits).
    pub replica: String,
    /// Whether Redis answers (false: the local circuit alone).
    pub connected: bool,
    /// The fleet's state as this replica follows it (closed when it has no decision).
    pub state: StateKind,
    pub generation: u64,
    pub quorum: u32,
    /// Live trip votes (this replica's included).
    pub votes: u32,
    /// Replicas seen in the last [`SEEN_FOR`].
    pub replicas: u64,
    /// The replica that opened the fleet, while it is open.
    pub tripped_by: Option<String>,
    /// Messages and records refused so far.
    pub rejected: u64,
}

/// Work for the fleet's task, from the call path and the observer (never waits).
pub(crate) enum Cmd {
    /// The local circuit opened on its own evidence (wall ms).
    Tripped(u64),
    /// A call failed while another replica's vote is live (wall ms).
    Failed(u64),
    /// A leased trial ended.
    Report {
        key: String,
        token: String,
        generation: u64,
        expected: Vec<u8>,
        ok: bool,
        /// After a failure: the open period the trial's circuit chose (ms from the
        /// failure; `None`: resetTimeout) and its failed trials in a row.
        open: Option<(u64, u32)>,
    },
    /// A lease given back unused.
    Release { key: String, token: String },
    /// The call path found Redis failing or too slow.
    Broken(String),
    /// An operator's command on this replica, for every replica (`force.rs`).
    Control(Control),
}

pub(crate) struct Shared {
    host: Weak<dyn FleetHost>,
    link: RedisLink,
    keys: Keys,
    signer: Signer,
    settings: FleetSettings,
    view: Mutex<View>,
    metrics: FleetMetrics,
    rng: Arc<dyn Rng>,
    tx: mpsc::UnboundedSender<Cmd>,
    cancel: CancellationToken,
    /// [`LINK_UNKNOWN`] until the first connect, then [`LINK_UP`] or [`LINK_DOWN`].
    link_state: AtomicU8,
    /// The first read of the fleet's state is done (or failed): calls no longer wait.
    joined: AtomicBool,
    joined_now: Notify,
    replicas: AtomicU64,
    /// Wall ms of this replica's latest failed call; 0 when its latest call succeeded.
    last_failure_ms: AtomicU64,
    /// Another replica's vote is live and this one has none: its next failure is its vote.
    corroborate: AtomicBool,
    /// Wall ms of the local circuit's latest open on its own evidence; 0 once it closed
    /// since. A trip is voted only while it stands: a trip the replica already recovered
    /// from (queued while Redis was away, its circuit closed on a successful trial before
    /// Redis came back) would reopen the whole fleet after DNAStore recovered.
    tripped_ms: AtomicU64,
    /// A refusal was reported (logged) since the last connect.
    refusal_told: AtomicBool,
    /// The latest operator's command seen (its sequence; 0: none yet).
    force_seq: AtomicU64,
}

/// One breaker's fleet circuit.
pub struct FleetCircuit {
    shared: Arc<Shared>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>,
}

/// This process's name for itself: the host name (a pod's name), the pid and random digits.
fn replica_id(rng: &dyn Rng) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| record::clean_id(h.trim()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    let host: String = host.chars().take(40).collect();
    format!(
        "{host}:{}:{:06x}",
        std::process::id(),
        rng.next_u64() & 0xff_ffff
    )
}

impl FleetCircuit {
    /// No I/O until [`FleetCircuit::start`].
    pub fn new(
        name: &str,
        settings: FleetSettings,
        secret: Option<&str>,
        client: RedisClient,
        host: Weak<dyn FleetHost>,
        rng: Arc<dyn Rng>,
        metrics: FleetMetrics,
    ) -> Self {
        let me = replica_id(rng.as_ref());
        let (tx, rx) = mpsc::unbounded_channel();
        let window_ms = settings.window.as_millis() as u64;
        Self {
            shared: Arc::new(Shared {
                host,
                link: RedisLink::new(client, "fleet Redis"),
                keys: Keys::new(name),
                signer: Signer::new(name, secret),
                view: Mutex::new(View::new(&me, settings.quorum, window_ms)),
                metrics,
                settings,
                rng,
                tx,
                cancel: CancellationToken::new(),
                link_state: AtomicU8::new(LINK_UNKNOWN),
                joined: AtomicBool::new(false),
                joined_now: Notify::new(),
                replicas: AtomicU64::new(0),
                last_failure_ms: AtomicU64::new(0),
                corroborate: AtomicBool::new(false),
                tripped_ms: AtomicU64::new(0),
                refusal_told: AtomicBool::new(false),
                force_seq: AtomicU64::new(0),
            }),
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Starts the task that connects, subscribes and follows the fleet; true the first
    /// time (later calls do nothing).
    pub fn start(&self, rt: &tokio::runtime::Handle) -> bool {
        match self.rx.lock().take() {
            Some(rx) => {
                rt.spawn(task::run(self.shared.clone(), rx));
                true
            }
            None => false,
        }
    }

    /// What the breaker subscribes so the fleet hears of trips and failures.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(observe::FleetObserver::new(self.shared.clone()))
    }

    pub fn replica(&self) -> String {
        self.shared.view.lock().me().to_string()
    }

    /// Whether the first read of the fleet's state is done (or failed).
    pub fn joined(&self) -> bool {
        self.shared.joined.load(Ordering::Acquire)
    }

    /// Waits for the first read of the fleet's state, at most `limit`.
    pub async fn wait_joined(&self, limit: Duration) {
        let n = self.shared.joined_now.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.joined() {
            return;
        }
        let _ = tokio::time::timeout(limit, n).await;
    }

    /// The most a call waits on Redis (`redisResponseTimeoutMs`).
    pub fn response_timeout(&self) -> Duration {
        self.shared.link.client().options().response_timeout
    }

    pub fn stats(&self) -> FleetStats {
        let s = &self.shared;
        let now = s.wall_ms();
        let v = s.view.lock();
        let cur = v.current();
        FleetStats {
            replica: v.me().to_string(),
            connected: s.link_state.load(Ordering::Acquire) == LINK_UP,
            state: state_of(cur, now),
            generation: v.generation(),
            quorum: v.quorum(),
            votes: v.live_votes(now).len() as u32,
            replicas: s.replicas.load(Ordering::Relaxed),
            tripped_by: cur.filter(|r| r.open).map(|r| r.by.clone()),
            rejected: s.metrics.rejected_total(),
        }
    }

    /// Stops the task (it says goodbye to the fleet's replica count on its way out). The
    /// series go with the breaker's.
    pub fn close(&self) {
        self.shared.cancel.cancel();
    }
}

/// The fleet's state as the metric and `stats()` show it.
fn state_of(r: Option<&StateRecord>, now_ms: u64) -> StateKind {
    match r {
        Some(r) if r.open && r.until_ms > now_ms => StateKind::Open,
        Some(r) if r.open => StateKind::HalfOpen,
        _ => StateKind::Closed,
    }
}

fn note_of(r: &StateRecord) -> Arc<FleetNote> {
    Arc::new(FleetNote {
        by: r.by.clone(),
        generation: r.generation,
        votes: r.votes,
        why: r.why,
    })
}

impl Shared {
    fn wall_ms(&self) -> u64 {
        self.host.upgrade().map_or(0, |h| h.wall_ms())
    }

    fn window_ms(&self) -> u64 {
        self.settings.window.as_millis() as u64
    }

    fn reset_ms(&self) -> u64 {
        self.settings.reset_timeout.as_millis() as u64
    }

    /// The longest open period a decision may hold this replica ([`FleetSettings::open_max`]).
    fn open_max_ms(&self) -> u64 {
        (self.settings.open_max.as_millis() as u64).max(self.reset_ms())
    }

    /// The open period a decision of this replica carries: `chosen` (what its circuit
    /// chose), at least resetTimeout, at most what its configuration allows.
    fn open_ms(&self, chosen: Option<u64>) -> u64 {
        chosen
            .unwrap_or(0)
            .clamp(self.reset_ms(), self.open_max_ms())
    }

    fn mark_joined(&self) {
        if !self.joined.swap(true, Ordering::AcqRel) {
            self.joined_now.notify_waiters();
        }
    }

    /// A refused record or message: counted every time, reported once per connection.
    fn refused(&self, why: Refused) {
        self.metrics.rejected(why);
        if !self.refusal_told.swap(true, Ordering::AcqRel) {
            if let Some(h) = self.host.upgrade() {
                h.emit_fleet(FleetEvent::Rejected {
                    reason: why.as_str(),
                });
            }
        }
    }

    /// The state key holds `raw` (`None`: missing): follow the decision it holds, or none.
    /// `rejoin`: the first read after a (re)connect, when the replica follows the fleet's
    /// current decision again even if it knew it already.
    fn see_state(&self, raw: Option<&[u8]>, rejoin: bool) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let now = host.wall_ms();
        let mut v = self.view.lock();
        let seen = v.see_state(raw, &self.signer);
        // Applied under the view's lock, so two decisions are applied in the order seen.
        match seen {
            Seen::New(r) => {
                v.learned(now, self.open_max_ms());
                self.follow(host.as_ref(), &r, true, now);
                // Another host's clock may be ahead of this one's: counted as no delay.
                if r.at_ms > 0 {
                    self.metrics
                        .propagated(now.saturating_sub(r.at_ms) as f64 / 1000.0);
                }
            }
            Seen::Same { record, back } => {
                if back || rejoin {
                    v.learned(now, self.open_max_ms());
                    self.follow(host.as_ref(), &record, false, now);
                }
            }
            Seen::Nothing(why) => {
                host.fleet_detach();
                self.metrics.set_state(StateKind::Closed);
                if let Some(w) = why {
                    drop(v);
                    self.refused(w);
                    return;
                }
            }
        }
        self.corroborate
            .store(v.other_tripped(now) && !v.voted(now), Ordering::Release);
    }

    /// Whether this replica's next failure is its vote (another replica's vote is live and
    /// this one has none), for the observer to read without a lock.
    fn refresh_corroborate(&self, now: u64) {
        let v = self.view.lock();
        self.corroborate
            .store(v.other_tripped(now) && !v.voted(now), Ordering::Release);
    }

    /// The local circuit's own trip still stands (it has not closed since).
    fn trip_stands(&self) -> bool {
        self.tripped_ms.load(Ordering::Acquire) != 0
    }

    fn follow(&self, host: &dyn FleetHost, r: &StateRecord, fresh: bool, now: u64) {
        let note = note_of(r);
        if r.open {
            host.fleet_open(r.until_ms, note.clone(), fresh, r.trials);
        } else {
            host.fleet_close(note.clone());
        }
        let state = state_of(Some(r), now);
        self.metrics.set_state(state);
        if fresh {
            host.emit_fleet(FleetEvent::State { state, note: &note });
        }
    }

    /// Redis failed or was too slow: the local circuit alone from now on (said once).
    fn disconnected(&self, reason: &str) {
        self.link.reset();
        self.view.lock().lose_sight();
        if let Some(h) = self.host.upgrade() {
            h.fleet_detach();
            if self.link_state.swap(LINK_DOWN, Ordering::AcqRel) != LINK_DOWN {
                h.emit_fleet(FleetEvent::Disconnected { reason });
            }
        }
        self.metrics.set_connected(false);
        self.corroborate.store(false, Ordering::Release);
    }

    fn reconnected(&self) {
        self.refusal_told.store(false, Ordering::Release);
        self.metrics.set_connected(true);
        if self.link_state.swap(LINK_UP, Ordering::AcqRel) != LINK_UP {
            if let Some(h) = self.host.upgrade() {
                let me = self.view.lock().me().to_string();
                h.emit_fleet(FleetEvent::Connected { replica: &me });
            }
        }
    }

    fn random(&self) -> u64 {
        self.rng.next_u64()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_acl;
#[cfg(test)]
mod tests_clock;
#[cfg(test)]
mod tests_deadline;
#[cfg(test)]
mod tests_force_redis;
#[cfg(test)]
mod tests_host;
#[cfg(test)]
mod tests_modes;
#[cfg(test)]
mod tests_open_time;
#[cfg(test)]
mod tests_redis;
#[cfg(test)]
mod tests_rejoin;
#[cfg(test)]
mod tests_replay;
#[cfg(test)]
mod tests_routes;

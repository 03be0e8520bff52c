//! The fleet circuit against real redis-server processes: several breakers of one name in
//! this process stand for replicas (each with its own circuit, connections and scripted
//! upstream); the Jest suites (`__test__/fleet*.test.js`) run them as separate processes.
//! Real time, bounded waits. The other forms of `redisUrl` (ACL, TLS, Sentinel):
//! `tests_modes.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::scripts::Keys;
use crate::breaker::Transport;
use crate::breaker::{Breaker, Call, Deps};
use crate::config::{Config, RawOptions, RawValue};
use crate::observer::{Event, FleetEvent, Observer, StateKind};
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server};
use crate::rng::SplitMix64;
use crate::test_support::{eventually, Script, Step};

pub(super) const SECRET: &str = "fleet-test-secret";

/// What one replica's breaker reported, in order, with when.
#[derive(Default)]
pub(super) struct Log(Mutex<Vec<(Instant, String)>>);

impl Observer for Log {
    fn on_event(&self, e: &Event<'_>) {
        let s = match e {
            Event::Transition(t) => match &t.fleet {
                Some(n) => format!("{}:fleet:{}:{}", t.to.as_str(), n.why.as_str(), n.by),
                None => format!("{}:local:{}", t.to.as_str(), t.reason.as_str()),
            },
            Event::Fleet(FleetEvent::Connected { .. }) => "fleet:connected".into(),
            Event::Fleet(FleetEvent::Disconnected { reason }) => {
                format!("fleet:disconnected:{reason}")
            }
            Event::Fleet(FleetEvent::Rejected { reason }) => format!("fleet:rejected:{reason}"),
            _ => return,
        };
        self.0.lock().push((Instant::now(), s));
    }
}

impl Log {
    pub(super) fn has(&self, prefix: &str) -> bool {
        self.0.lock().iter().any(|(_, s)| s.starts_with(prefix))
    }

    pub(super) fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .iter()
            .filter(|(_, s)| s.starts_with(prefix))
            .count()
    }

    pub(super) fn first(&self, prefix: &str) -> Option<Instant> {
        self.0
            .lock()
            .iter()
            .find(|(_, s)| s.starts_with(prefix))
            .map(|(t, _)| *t)
    }

    pub(super) fn lines(&self) -> Vec<String> {
        self.0.lock().iter().map(|(_, s)| s.clone()).collect()
    }
}

pub(super) struct Replica {
    pub(super) b: Arc<Breaker>,
    pub(super) up: Arc<AtomicBool>,
    script: Arc<Script>,
    pub(super) log: Arc<Log>,
}

impl Replica {
    pub(super) fn new(url: &str, name: &str, seed: u64, extra: &[(&str, RawValue)]) -> Self {
        let mut o = RawOptions::new()
            .set("name", RawValue::String(name.into()))
            .set("redisUrl", RawValue::String(url.into()))
            .set("fleetCircuit", RawValue::String("on".into()))
            .set("signingSecret", RawValue::String(SECRET.into()))
            .set("maxFailures", RawValue::Number(3.0))
            .set("volumeThreshold", RawValue::Number(1000.0))
            .set("resetTimeout", RawValue::Number(400.0))
            .set("halfOpenMaxCalls", RawValue::Number(1.0))
            .set("maxAttempts", RawValue::Number(1.0))
            .set("lkgMaxEntries", RawValue::Number(0.0))
            .set("redisResponseTimeoutMs", RawValue::Number(300.0))
            .set("redisConnectTimeoutMs", RawValue::Number(300.0));
        for (k, v) in extra {
            o.insert(k, v.clone());
        }
        let cfg = Config::resolve(&o, &|_| None).expect("valid options");
        let up = Arc::new(AtomicBool::new(true));
        // Each answer takes 20 ms, so calls fired together are all in flight at once (a
        // trial's outcome does not land before the others asked for their lease).
        let script = Script::new(vec![Step::After(
            Duration::from_millis(20),
            Box::new(Step::Switch(up.clone())),
        )]);
        let deps = Deps {
            rng: Arc::new(SplitMix64::seeded(seed)),
            wall_origin: SystemTime::now(),
            runtime: Some(tokio::runtime::Handle::current()),
        };
        let b = Breaker::with_transport(cfg, deps, Transport::Script(script.clone()))
            .expect("a breaker");
        let log = Arc::new(Log::default());
        b.subscribe(log.clone());
        b.start();
        Self { b, up, script, log }
    }

    pub(super) async fn fire(&self) -> CallOutcome {
        let req = self
            .b
            .prepare("http://dnastore.test/api/sigils", Some("GET"), &[], None)
            .expect("valid request");
        match self.b.admit() {
            Some(p) => self.b.clone().execute(p, Call::new(req)).await,
            None => CallOutcome::Fallback(self.b.rejected(Some(&req))),
        }
    }

    pub(super) fn state(&self) -> StateKind {
        self.b.state()
    }

    pub(super) fn sent(&self) -> usize {
        self.script.count()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.b.close();
    }
}

/// Every replica connected and counting the others (heartbeats every `POLL`).
pub(super) async fn connected(rs: &[&Replica]) {
    eventually(5, "every replica connected to the fleet", || async {
        rs.iter().all(|r| {
            r.b.fleet_stats()
                .is_some_and(|s| s.connected && s.replicas >= rs.len() as u64)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_trip_corroborated_by_one_failure_opens_every_replica_and_rounds_are_leased() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-quorum";
    let a = Replica::new(&url, name, 1, &[]);
    let b = Replica::new(&url, name, 2, &[]);
    let c = Replica::new(&url, name, 3, &[]);
    connected(&[&a, &b, &c]).await;
    for r in [&a, &b, &c] {
        r.up.store(false, Ordering::SeqCst);
    }
    // A trips on its own evidence (maxFailures 3): it opens alone, the fleet not yet.
    for _ in 0..3 {
        a.fire().await;
    }
    assert_eq!(a.state(), StateKind::Open);
    eventually(5, "A's vote seen by B", || async {
        b.b.fleet_stats().is_some_and(|s| s.votes == 1)
    })
    .await;
    assert_eq!(b.state(), StateKind::Closed);
    assert_eq!(c.state(), StateKind::Closed);
    // B's one failure corroborates A's trip: the fleet opens, C too (C made no call).
    let corroborated = Instant::now();
    b.fire().await;
    eventually(5, "every replica open", || async {
        [&a, &b, &c].iter().all(|r| r.state() == StateKind::Open)
    })
    .await;
    let spread = c
        .log
        .first("open:fleet")
        .unwrap()
        .saturating_duration_since(corroborated);
    assert!(
        c.log.has(&format!(
            "open:fleet:quorum:{}",
            a.b.fleet_stats().unwrap().replica
        )),
        "C's open names A, who tripped: {:?}",
        c.log.lines()
    );
    assert!(a.log.has("open:local:consecutive failures"));
    assert_eq!(c.sent(), 0, "C learnt it without a call");
    let st = c.b.fleet_stats().unwrap();
    // Votes count towards the closed generation they were cast against: none now.
    assert_eq!((st.state, st.votes, st.replicas), (StateKind::Open, 0, 3));
    assert_eq!(st.generation, 1);
    assert_eq!(
        st.tripped_by.as_deref(),
        Some(a.b.fleet_stats().unwrap().replica.as_str())
    );
    eprintln!(
        "fleet open: C open {} ms after B's corroborating failure",
        spread.as_millis()
    );

    // The round: every replica fires at once; one lease, one trial fleet-wide.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let before: usize = [&a, &b, &c].iter().map(|r| r.sent()).sum();
    let (ra, rb, rc) = tokio::join!(a.fire(), b.fire(), c.fire());
    for r in [ra, rb, rc] {
        assert!(matches!(r, CallOutcome::Fallback(_)));
    }
    let after: usize = [&a, &b, &c].iter().map(|r| r.sent()).sum();
    assert_eq!(after - before, 1, "one trial for the fleet");
    // It failed: every replica open again.
    eventually(5, "reopened everywhere", || async {
        [&a, &b, &c].iter().all(|r| r.state() == StateKind::Open)
    })
    .await;

    // DNAStore back: the next round's one trial closes the whole fleet.
    for r in [&a, &b, &c] {
        r.up.store(true, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    let before: usize = [&a, &b, &c].iter().map(|r| r.sent()).sum();
    let _ = tokio::join!(a.fire(), b.fire(), c.fire());
    eventually(5, "closed everywhere", || async {
        [&a, &b, &c].iter().all(|r| r.state() == StateKind::Closed)
    })
    .await;
    let after: usize = [&a, &b, &c].iter().map(|r| r.sent()).sum();
    assert_eq!(
        after - before,
        1,
        "one trial for the fleet: {:?} {:?} {:?}",
        a.log.lines(),
        b.log.lines(),
        c.log.lines()
    );
    // The replica whose trial succeeded closed on its own; the two others on the fleet's word.
    let by_fleet = [&a, &b, &c]
        .iter()
        .filter(|r| r.log.has("closed:fleet:trials succeeded"))
        .count();
    assert_eq!(
        by_fleet,
        2,
        "{:?} {:?} {:?}",
        a.log.lines(),
        b.log.lines(),
        c.log.lines()
    );
    assert!(matches!(c.fire().await, CallOutcome::Ok(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_replica_whose_own_path_fails_opens_alone_at_the_default_quorum() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-partition";
    let lone = Replica::new(&url, name, 1, &[]);
    let b = Replica::new(&url, name, 2, &[]);
    let c = Replica::new(&url, name, 3, &[]);
    connected(&[&lone, &b, &c]).await;
    lone.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        lone.fire().await;
    }
    assert_eq!(lone.state(), StateKind::Open);
    eventually(5, "the vote seen", || async {
        b.b.fleet_stats().is_some_and(|s| s.votes == 1)
    })
    .await;
    // The others keep succeeding: no corroboration, no fleet open.
    for _ in 0..20 {
        assert!(matches!(b.fire().await, CallOutcome::Ok(_)));
        assert!(matches!(c.fire().await, CallOutcome::Ok(_)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.state(), StateKind::Closed);
    assert_eq!(c.state(), StateKind::Closed);
    assert_eq!(b.b.fleet_stats().unwrap().state, StateKind::Closed);
    assert_eq!(
        srv.cli(&["EXISTS", &Keys::new(name).state]),
        "0",
        "no fleet decision"
    );
    // The lone replica's own half-open is its own (no lease): it recovers alone.
    lone.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(lone.fire().await, CallOutcome::Ok(_)));
    assert_eq!(lone.state(), StateKind::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_replica_started_while_the_fleet_is_open_starts_open_without_a_call() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-join";
    let long = [("resetTimeout", RawValue::Number(5000.0))];
    let a = Replica::new(&url, name, 1, &long);
    let b = Replica::new(&url, name, 2, &long);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
        b.fire().await;
    }
    eventually(5, "the fleet open", || async {
        a.b.fleet_stats()
            .is_some_and(|s| s.state == StateKind::Open)
    })
    .await;
    // A new replica: its very first call, fired at once, is answered open, not sent.
    let d = Replica::new(&url, name, 4, &long);
    d.up.store(false, Ordering::SeqCst);
    let t = Instant::now();
    let r = d.fire().await;
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    match r {
        CallOutcome::Fallback(f) => assert_eq!(f.code, crate::error::Code::OpenBreaker),
        _ => panic!("not a fallback"),
    }
    assert_eq!(d.sent(), 0);
    assert_eq!(d.state(), StateKind::Open);
    assert!(d.log.has("open:fleet:quorum"), "{:?}", d.log.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_lease_whose_holder_vanished_expires_and_the_round_goes_on() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-lease";
    let a = Replica::new(&url, name, 1, &[("fleetQuorum", RawValue::Number(1.0))]);
    connected(&[&a]).await;
    a.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    eventually(5, "the fleet open", || async {
        a.b.fleet_stats()
            .is_some_and(|s| s.state == StateKind::Open)
    })
    .await;
    let generation = a.b.fleet_stats().unwrap().generation;
    // Another replica took the round's lease and died with it (700 ms left on it).
    let lease = Keys::new(name).lease(generation, 1);
    assert_eq!(
        srv.cli(&["SET", &lease, "dead-replica/1", "PX", "700"]),
        "OK"
    );
    a.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        matches!(a.fire().await, CallOutcome::Fallback(_)),
        "the lease is held"
    );
    assert_eq!(a.state(), StateKind::HalfOpen);
    let sent = a.sent();
    // Held trials are not asked for again before the lease could have expired.
    for _ in 0..10 {
        assert!(matches!(a.fire().await, CallOutcome::Fallback(_)));
    }
    assert_eq!(a.sent(), sent);
    // Expired: the round goes on, its trial succeeds, the fleet closes.
    let until = Instant::now() + Duration::from_secs(5);
    while a.state() != StateKind::Closed {
        assert!(Instant::now() < until, "{:?}", a.log.lines());
        a.fire().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.sent(), sent + 1, "one trial");
    eventually(5, "the fleet closed", || async {
        a.b.fleet_stats()
            .is_some_and(|s| s.state == StateKind::Closed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn redis_lost_in_an_outage_leaves_every_replica_protected_and_rejoins_without_a_reset() {
    require_redis();
    let mut srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-redis-down";
    let long = [("resetTimeout", RawValue::Number(3000.0))];
    let a = Replica::new(&url, name, 1, &long);
    let b = Replica::new(&url, name, 2, &long);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    b.fire().await;
    eventually(5, "both open", || async {
        a.state() == StateKind::Open && b.state() == StateKind::Open
    })
    .await;
    srv.stop();
    eventually(5, "both disconnected", || async {
        [&a, &b].iter().all(|r| r.log.has("fleet:disconnected"))
    })
    .await;
    // Still open (protected), answering at once.
    for r in [&a, &b] {
        let t = Instant::now();
        assert!(matches!(r.fire().await, CallOutcome::Fallback(_)));
        assert!(t.elapsed() < Duration::from_millis(50));
        assert_eq!(r.state(), StateKind::Open);
    }
    let reason = a
        .log
        .lines()
        .into_iter()
        .find(|l| l.starts_with("fleet:disconnected"))
        .unwrap();
    assert!(reason.contains("fleet Redis"), "{reason}");
    // Told once, however long it lasts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(a.log.count("fleet:disconnected"), 1, "{:?}", a.log.lines());
    srv.restart();
    eventually(10, "both reconnected", || async {
        [&a, &b]
            .iter()
            .all(|r| r.b.fleet_stats().is_some_and(|s| s.connected))
    })
    .await;
    // Redis came back empty: nothing was written that closes or resets anyone.
    assert_eq!(a.state(), StateKind::Open);
    assert_eq!(b.state(), StateKind::Open);
    assert_eq!(srv.cli(&["EXISTS", &Keys::new(name).state]), "0");
    assert_eq!(a.log.count("fleet:connected"), 2, "{:?}", a.log.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_forged_state_or_message_without_the_secret_opens_and_closes_nothing() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-forged";
    let a = Replica::new(&url, name, 1, &[]);
    connected(&[&a]).await;
    let keys = Keys::new(name);
    let forger = super::record::Signer::new(name, None);
    let open = super::record::StateRecord {
        generation: 99,
        open: true,
        until_ms: u64::MAX / 2,
        at_ms: 1,
        by: "forger".into(),
        why: crate::observer::FleetWhy::Quorum,
        votes: 9,
        trials: 0,
    };
    let forged = forger.state(&open);
    srv.cli(&["PUBLISH", &keys.channel, &forged]);
    srv.cli(&["SET", &keys.state, &forged]);
    let vote = forger.vote(&super::record::VoteRecord {
        generation: 0,
        replica: "forger".into(),
        at_ms: a.b.wall_ms(),
    });
    srv.cli(&["PUBLISH", &keys.channel, &vote]);
    eventually(5, "the forgeries counted", || async {
        a.b.fleet_stats().is_some_and(|s| s.rejected >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(a.state(), StateKind::Closed, "{:?}", a.log.lines());
    let st = a.b.fleet_stats().unwrap();
    assert_eq!(st.votes, 0);
    // Each distinct forgery once (the key is read every poll): the message, the key (the
    // same record), the vote.
    assert_eq!(st.rejected, 3, "{st:?}");
    assert_eq!(a.log.count("fleet:rejected:signature"), 1);
    // And a genuine decision overwrites the forgery: the fleet still works.
    a.up.store(false, Ordering::SeqCst);
    let b = Replica::new(&url, name, 2, &[]);
    connected(&[&b]).await;
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    b.fire().await;
    eventually(5, "the fleet opened by its replicas", || async {
        b.state() == StateKind::Open
            && a.b
                .fleet_stats()
                .is_some_and(|s| s.state == StateKind::Open)
    })
    .await;
    assert_eq!(a.b.fleet_stats().unwrap().generation, 1);
}

/// The fleet's first event (here: its Redis refuses) reaches an observer subscribed before
/// [`Breaker::start`], however fast the task is: nothing runs before it (the binding
/// subscribes the facade's observer, then starts; `registry::open_with`). Without Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_starts_only_when_asked_so_its_first_event_is_heard() {
    let dead = crate::redis::test_servers::free_port();
    let url = format!("redis://127.0.0.1:{dead}");
    let o = RawOptions::new()
        .set("name", RawValue::String("fleet-start".into()))
        .set("redisUrl", RawValue::String(url))
        .set("fleetCircuit", RawValue::String("on".into()))
        .set("lkgMaxEntries", RawValue::Number(0.0));
    let cfg = Config::resolve(&o, &|_| None).unwrap();
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(9)),
        wall_origin: SystemTime::now(),
        runtime: Some(tokio::runtime::Handle::current()),
    };
    let script = Script::new(vec![Step::Reply(200, "application/json", "{}")]);
    let b = Breaker::with_transport(cfg, deps, Transport::Script(script)).unwrap();
    // Long enough for a refused connect to be reported, had the task started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.fleet().unwrap().joined(), "nothing ran before start()");
    let log = Arc::new(Log::default());
    b.subscribe(log.clone());
    b.start();
    eventually(5, "the refusal reported", || async {
        log.has("fleet:disconnected")
    })
    .await;
    assert_eq!(log.count("fleet:disconnected"), 1);
    b.close();
}

/// A trial permit taken in one round and used after another replica's trial reopened the
/// fleet makes no trial before the next round (it once took the next round's lease early:
/// two trials within milliseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_trial_permit_of_an_ended_round_makes_no_trial_before_the_next() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-stale-permit";
    let q1 = [("fleetQuorum", RawValue::Number(1.0))];
    let a = Replica::new(&url, name, 1, &q1);
    let b = Replica::new(&url, name, 2, &q1);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    eventually(5, "B follows the fleet's open", || async {
        b.state() == StateKind::Open
    })
    .await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    // B takes a trial permit of round 1 and holds it; A's trial fails and reopens the fleet.
    let stale = b.b.admit().expect("a trial permit");
    assert!(stale.is_trial());
    a.fire().await;
    eventually(5, "B sees the reopen", || async {
        b.b.fleet_stats().is_some_and(|s| s.generation == 2)
    })
    .await;
    assert_eq!(b.state(), StateKind::Open);
    let sent = b.sent();
    let req =
        b.b.prepare("http://dnastore.test/api/sigils", Some("GET"), &[], None)
            .unwrap();
    match b.b.clone().execute(stale, Call::new(req)).await {
        CallOutcome::Fallback(f) => assert_eq!(f.code, crate::error::Code::OpenBreaker),
        _ => panic!("not a fallback"),
    }
    assert_eq!(b.sent(), sent, "no trial outside a round");
}

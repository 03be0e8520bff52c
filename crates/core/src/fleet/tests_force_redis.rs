//! Operator commands fleet-wide against a real redis-server: one replica's `open()` forces
//! every replica open; the operator command's `FleetAdmin` reads the status and closes,
//! disables and enables every replica; a record without the secret changes nothing.

use std::time::Duration;

use super::tests_redis::{connected, Replica};
use super::FleetAdmin;
use crate::config::{Config, RawOptions, RawValue};
use crate::observer::{Control, StateKind};
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

fn admin(url: &str, name: &str, secret: Option<&str>) -> FleetAdmin {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("redisUrl", RawValue::String(url.into()));
    if let Some(s) = secret {
        o.insert("signingSecret", RawValue::String(s.into()));
    }
    FleetAdmin::new(&Config::resolve(&o, &|_| None).unwrap()).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn all_in(rs: &[&Replica], state: StateKind, what: &'static str) {
    eventually(5, what, || async { rs.iter().all(|r| r.state() == state) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn an_operators_command_reaches_every_replica() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-force";
    let a = Replica::new(&url, name, 1, &[]);
    let b = Replica::new(&url, name, 2, &[]);
    connected(&[&a, &b]).await;
    // One replica's open() is every replica's.
    assert!(a.b.control(Control::Open));
    all_in(&[&a, &b], StateKind::ForcedOpen, "B forced open by A").await;
    assert!(b.log.has("forcedOpen:local:forced"), "{:?}", b.log.lines());
    let ops = admin(&url, name, Some(super::tests_redis::SECRET));
    let s = ops.status(now_ms(), Duration::from_secs(5)).await.unwrap();
    assert_eq!(s.state, StateKind::ForcedOpen);
    assert_eq!(s.command.as_ref().map(|c| c.command), Some(Control::Open));
    assert_eq!(s.replicas, 2);
    // The operator command closes, disables, enables every replica.
    ops.command(Control::Close, "cli:test", now_ms())
        .await
        .unwrap();
    all_in(&[&a, &b], StateKind::Closed, "every replica closed").await;
    ops.command(Control::Disable, "cli:test", now_ms())
        .await
        .unwrap();
    all_in(&[&a, &b], StateKind::Disabled, "every replica disabled").await;
    // A command without the secret is refused by every replica.
    let forger = admin(&url, name, None);
    forger
        .command(Control::Open, "cli:forger", now_ms())
        .await
        .unwrap();
    eventually(5, "the forged command refused", || async {
        b.log.has("fleet:rejected:signature")
    })
    .await;
    assert_eq!(a.state(), StateKind::Disabled);
    assert_eq!(b.state(), StateKind::Disabled);
    // The operator's next command replaces the forgery.
    ops.command(Control::Enable, "cli:test", now_ms())
        .await
        .unwrap();
    all_in(&[&a, &b], StateKind::Closed, "every replica enabled").await;
}

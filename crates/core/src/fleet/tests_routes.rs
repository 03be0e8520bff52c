//! Per-route circuits (`circuitPerRoute`) with the fleet circuit on, against a real
//! redis-server: a route's circuit is the replica's own (its trip is no vote, the fleet
//! does not gate it: a routed call is admitted by its route's circuit while the fleet holds
//! the breaker's open), while the breaker's circuit follows the fleet as before.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::tests_redis::{connected, Replica};
use crate::breaker::Call;
use crate::config::RawValue;
use crate::observer::StateKind;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

async fn fire_route(r: &Replica, route: &str) -> CallOutcome {
    let req =
        r.b.prepare("http://dnastore.test/api/validate", Some("GET"), &[], None)
            .expect("valid request");
    let mut call = Call::new(req.clone());
    call.route = Some(Arc::from(route));
    match r.b.admit_route(Some(route)) {
        Some(p) => r.b.clone().execute(p, call).await,
        None => CallOutcome::Fallback(r.b.rejected(Some(&req))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn route_circuits_stay_local_while_the_fleet_holds_the_breaker_open() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-per-route";
    let on = [("circuitPerRoute", RawValue::Bool(true))];
    let a = Replica::new(&url, name, 1, &on);
    let b = Replica::new(&url, name, 2, &on);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    // maxFailures 3: the route's circuit opens on A, nothing else does.
    for _ in 0..3 {
        fire_route(&a, "/api/validate").await;
    }
    assert_eq!(a.b.state_of("/api/validate"), Some(StateKind::Open));
    assert_eq!(a.state(), StateKind::Closed);
    // A route-less trip on A, corroborated by one failure on B: the fleet opens the
    // breakers' circuits on both replicas.
    for _ in 0..3 {
        a.fire().await;
    }
    eventually(5, "A's vote seen by B", || async {
        b.b.fleet_stats().is_some_and(|s| s.votes >= 1)
    })
    .await;
    b.up.store(false, Ordering::SeqCst);
    b.fire().await;
    eventually(5, "both replicas open", || async {
        a.state() == StateKind::Open && b.state() == StateKind::Open
    })
    .await;
    // B's routed calls are their routes' to admit: they reach the upstream, now up again.
    b.up.store(true, Ordering::SeqCst);
    let sent = b.sent();
    let o = fire_route(&b, "/api/sigils/:id").await;
    assert!(matches!(o, CallOutcome::Ok(_)), "{o:?}");
    assert_eq!(b.sent(), sent + 1);
    assert_eq!(b.b.state_of("/api/validate"), None);
    assert_eq!(a.b.state_of("/api/validate"), Some(StateKind::Open));
}

//! One redis-server: everything the hand-written client did, through redis-rs.

use super::*;
use crate::error::FailureKind;
use crate::observer::FallbackSource;
use crate::redis::test_servers::{free_port, require_redis, Server};
use crate::test_support::Step;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn writes_and_reads_with_auth_select_and_ttl() {
    require_redis();
    let srv = Server::start(&["--requirepass", "s3cret"]);
    let (c, health, m) = client(
        &format!("redis://:s3cret@127.0.0.1:{}/2", srv.port),
        "redis-rt",
    );
    assert_eq!(c.get(&K, READ_TIMEOUT).await, None, "nothing stored yet");
    round_trip(&c, entry("{\"v\":1}")).await;
    // Stored in database 2, under the documented key, expiring after maxStale.
    let key = format!("dnastore:lkg:redis-rt:{}", "ab".repeat(32));
    let pttl: i64 = srv
        .cli(&["-a", "s3cret", "-n", "2", "PTTL", &key])
        .parse()
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "pttl {pttl}");
    assert_eq!(srv.cli(&["-a", "s3cret", "-n", "0", "EXISTS", &key]), "0");
    assert!(health.lock().is_empty(), "no transition while healthy");
    assert_eq!(m.redis_errors.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_value_it_did_not_write_counts_as_tampered() {
    require_redis();
    let srv = Server::start(&[]);
    let (c, _, m) = client(&format!("redis://127.0.0.1:{}", srv.port), "redis-foreign");
    srv.cli(&["SET", &c.key(&K), "{\"v\":1}"]);
    assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
    assert_eq!(m.rejected(crate::lkg::Rejected::Tampered).get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_wrong_password_is_down_once_with_a_clear_reason_and_reads_stay_fast() {
    require_redis();
    let srv = Server::start(&["--requirepass", "right"]);
    let (c, health, m) = client(
        &format!("redis://:wrong-hunter2@127.0.0.1:{}", srv.port),
        "redis-auth",
    );
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
        assert!(
            t.elapsed() <= READ_TIMEOUT + Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        c.put(&K, &entry("1"));
    }
    eventually(5, "down reported", || async { !health.lock().is_empty() }).await;
    assert_eq!(ups(&health), vec![false], "reported once");
    let reason = down_reason(&health);
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(!reason.contains("hunter2"), "{reason}");
    assert!(c.is_down());
    assert!(m.redis_errors.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn redis_stopped_then_back() {
    require_redis();
    let mut srv = Server::start(&[]);
    let (c, health, m) = client(&format!("redis://127.0.0.1:{}", srv.port), "redis-bounce");
    round_trip(&c, entry("1")).await;

    // Noticed while idle (the probe), not only by the next command.
    srv.stop();
    eventually(5, "down reported", || async { ups(&health) == vec![false] }).await;
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "known down: no wait ({:?})",
            t.elapsed()
        );
        c.put(&K, &entry("2"));
    }
    assert_eq!(ups(&health), vec![false], "still reported once");
    assert!(m.redis_errors.get() >= 1);

    srv.restart();
    eventually(10, "back reported", || async {
        ups(&health) == vec![false, true]
    })
    .await;
    round_trip(&c, entry("3")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_never_blocks_longer_than_the_wait() {
    let (c, health, _) = client(&format!("redis://127.0.0.1:{}", free_port()), "redis-dead");
    let wait = Duration::from_millis(100);
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(c.get(&K, wait).await, None);
        assert!(
            t.elapsed() < wait + Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }
    eventually(5, "down reported", || async { ups(&health) == vec![false] }).await;
    assert!(
        down_reason(&health).contains("refused"),
        "{}",
        down_reason(&health)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_fresh_replica_serves_what_another_cached_but_never_a_tampered_value() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let a = replica(
        "redis-replicas",
        &url,
        &Script::new(vec![Step::Reply(
            200,
            "application/json",
            "{\"sigils\":[1]}",
        )]),
        &[],
    );
    assert!(matches!(get(&a, None).await, CallOutcome::Ok(_)));
    let req = a
        .prepare("http://127.0.0.1:9/api/sigils", None, &[], None)
        .unwrap();
    let key = format!(
        "dnastore:lkg:redis-replicas:{}",
        crate::lkg::KeyPolicy::new(&a.config().lkg)
            .key("redis-replicas", &req)
            .hex()
    );
    eventually(5, "replica A's write lands", || async {
        srv.cli(&["EXISTS", &key]) == "1"
    })
    .await;

    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = replica("redis-replicas", &url, &down, &[]);
    let (source, body) = fallback_source(&get(&b, None).await).expect("a fallback");
    assert_eq!(
        (source, body.as_deref()),
        (FallbackSource::Cache, Some(&b"{\"sigils\":[1]}"[..]))
    );
    assert!(b.lkg().unwrap().len() == 1, "kept locally once verified");

    // Flip one byte of the body in place: the layout still decodes, the HMAC does not verify.
    let len: usize = srv.cli(&["STRLEN", &key]).parse().unwrap();
    srv.cli(&["SETRANGE", &key, &(len - 3).to_string(), "2"]);
    let c = replica("redis-replicas", &url, &down, &[]);
    assert_eq!(
        fallback_source(&get(&c, None).await).map(|f| f.0),
        Some(FallbackSource::None)
    );
    assert_eq!(
        c.metrics()
            .lkg
            .rejected(crate::lkg::Rejected::Tampered)
            .get(),
        1
    );
    assert_eq!(c.lkg().unwrap().len(), 0, "never kept");
}

pub(super) fn fallback_source(o: &CallOutcome) -> Option<(FallbackSource, Option<Bytes>)> {
    match o {
        CallOutcome::Fallback(f) => Some((f.source, f.body.clone())),
        _ => None,
    }
}

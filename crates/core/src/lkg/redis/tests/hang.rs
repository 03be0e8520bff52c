//! A Redis that accepts the connection and then never answers, and one that drops every
//! connection at once: every wait stays within its bound, fire() is never delayed past
//! its deadline, and close() stops reconnecting for good.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

use super::single::fallback_source;
use super::*;
use crate::error::FailureKind;
use crate::observer::FallbackSource;
use crate::test_support::Step;

/// Accepts connections and keeps them open without reading or writing.
async fn hanging_server() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

fn short() -> RedisOptions {
    RedisOptions {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(200),
        ca_file: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_holds_no_write_or_read_past_its_bound() {
    let (port, server) = hanging_server().await;
    let url = format!("redis://127.0.0.1:{port}");
    // Long Redis timeouts (5 s): only the read's own budget (150 ms) bounds it. The slack
    // below absorbs a loaded CI machine (a 1.1 s stall was seen once while other tests were
    // starting Redis processes) and is still far from the 5 s an unbounded wait takes.
    let long = RedisOptions {
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        ca_file: None,
    };
    let (c, _, _) = client_with(&url, "redis-hang-bound", long);
    let wait = Duration::from_millis(150);
    for _ in 0..3 {
        let t = Instant::now();
        c.put(&K, &entry("1"));
        assert!(t.elapsed() < Duration::from_millis(50), "put never waits");
        assert_eq!(c.get(&K, wait).await, None);
        assert!(
            t.elapsed() < wait + Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    // TCP accepted, then silence: down once the handshake or the PING runs out of time.
    let (c, health, m) = client_with(&url, "redis-hang", short());
    for _ in 0..3 {
        c.put(&K, &entry("1"));
        let _ = c.get(&K, wait).await;
    }
    eventually(3, "down reported", || async { ups(&health) == vec![false] }).await;
    let reason = down_reason(&health);
    assert!(
        reason.contains("no connection within 300 ms") || reason.contains("no reply within 200 ms"),
        "{reason}"
    );
    assert!(c.is_down());
    // The queued writes were failed and counted, not held.
    assert!(m.redis_errors.get() >= 3);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_never_delays_fire_past_its_deadline() {
    let (port, server) = hanging_server().await;
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused); 4]);
    let b = replica(
        "redis-hang-fire",
        &format!("redis://127.0.0.1:{port}"),
        &down,
        &[
            ("redisConnectTimeoutMs", RawValue::Number(5000.0)),
            ("redisResponseTimeoutMs", RawValue::Number(5000.0)),
        ],
    );
    // Long Redis timeouts: only the fallback read's own budget bounds these calls.
    for deadline in [80, 120, 400] {
        let t = Instant::now();
        let o = get(&b, Some(Duration::from_millis(deadline))).await;
        assert_eq!(fallback_source(&o).map(|f| f.0), Some(FallbackSource::None));
        let took = t.elapsed();
        let bound = Duration::from_millis(deadline.min(250 + 20) + 60);
        assert!(took < bound, "deadline {deadline} ms: took {took:?}");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_reconnecting_and_makes_put_and_get_no_ops() {
    // A "Redis" that drops every connection at once: the task keeps reconnecting.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let n = accepts.clone();
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    let (c, _, m) = client_with(&format!("redis://127.0.0.1:{port}"), "redis-close", short());
    c.put(&K, &entry("1"));
    eventually(5, "a few reconnects", || async {
        accepts.load(Ordering::SeqCst) >= 3
    })
    .await;

    c.close();
    c.close(); // idempotent
    assert!(c.is_closed());
    // A connect already past accept() when close() ran may still be counted: settle first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_close = accepts.load(Ordering::SeqCst);
    let errors = m.redis_errors.get();
    let t = Instant::now();
    c.put(&K, &entry("2"));
    assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
    assert!(
        t.elapsed() < Duration::from_millis(5),
        "no-ops return at once"
    );
    // Longer than the longest backoff (2 s): any surviving loop would have connected again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        at_close,
        "no reconnect after close()"
    );
    assert_eq!(m.redis_errors.get(), errors, "no-ops are not errors");
    server.abort();
}

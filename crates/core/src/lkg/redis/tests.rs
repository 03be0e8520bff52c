//! The client against a real `redis-server` (Debian's, on a free loopback port), and two
//! breakers standing in for two replicas. Real time, bounded: every wait polls with a
//! deadline. Without redis-server on the PATH these tests say so and pass, except under
//! CI=true, where a missing server is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use parking_lot::Mutex;

use super::*;
use crate::breaker::{Breaker, Call, Deps};
use crate::config::{Config, RawOptions, RawValue};
use crate::error::FailureKind;
use crate::observer::FallbackSource;
use crate::outcome::CallOutcome;
use crate::rng::SplitMix64;
use crate::test_support::{Script, Step};
use crate::transport::Transport;

const HINT: &str = "redis-server is not on the PATH (install it: apt-get install redis-server)";

/// A redis-server we started; killed (by its own child handle) when dropped.
struct Server {
    child: Child,
    port: u16,
    args: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// None (and a message) when redis-server is missing outside CI.
    fn start(extra: &[&str]) -> Option<Self> {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()));
        if !found {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{HINT}");
            eprintln!("skipped: {HINT}");
            return None;
        }
        let args = extra.iter().map(|s| s.to_string()).collect();
        Some(Self::spawn(free_port(), args))
    }

    fn spawn(port: u16, args: Vec<String>) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let s = Self { child, port, args };
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < until,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port.
    fn restart(&mut self) {
        self.stop();
        *self = Self::spawn(self.port, std::mem::take(&mut self.args));
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn target(url: &str) -> Target {
    Target::parse(url).unwrap()
}

/// A client and the health transitions it reported.
fn client(url: &str, name: &str) -> (RedisLkg, Arc<Mutex<Vec<bool>>>, Arc<BreakerMetrics>) {
    let seen = Arc::new(Mutex::new(vec![]));
    let s = seen.clone();
    let m = Arc::new(BreakerMetrics::new(name));
    let c = RedisLkg::new(
        target(url),
        name,
        Duration::from_secs(60),
        m.clone(),
        Box::new(move |up| s.lock().push(up)),
    );
    (c, seen, m)
}

fn entry(body: &'static str) -> Entry {
    Entry {
        body: Bytes::from_static(body.as_bytes()),
        json: true,
        stored_at_ms: 42,
        vary: None,
        mac: Some([9; 32]),
    }
}

const K: CacheKey = CacheKey([0xab; 32]);

/// Polls `f` until it holds, for at most `secs`.
async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_with_auth_select_and_ttl() {
    let Some(srv) = Server::start(&["--requirepass", "s3cret"]) else {
        return;
    };
    let (c, health, m) = client(
        &format!("redis://:s3cret@127.0.0.1:{}/2", srv.port),
        "redis-rt",
    );
    assert_eq!(c.get(&K, READ_TIMEOUT).await, None, "nothing stored yet");
    c.put(&K, &entry("{\"v\":1}"));
    eventually(5, "the write lands", || async {
        c.get(&K, READ_TIMEOUT).await.is_some()
    })
    .await;
    assert_eq!(c.get(&K, READ_TIMEOUT).await, Some(entry("{\"v\":1}")));
    // Stored in database 2, under the documented key, expiring after maxStale.
    let key = format!("dnastore:lkg:redis-rt:{}", "ab".repeat(32));
    let pttl: i64 = srv
        .cli(&["-a", "s3cret", "-n", "2", "PTTL", &key])
        .parse()
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "pttl {pttl}");
    assert_eq!(srv.cli(&["-a", "s3cret", "-n", "0", "EXISTS", &key]), "0");
    assert!(health.lock().is_empty(), "no transition while healthy");
    assert_eq!(m.lkg_redis_errors.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_it_did_not_write_counts_as_tampered() {
    let Some(srv) = Server::start(&[]) else {
        return;
    };
    let (c, _, m) = client(&format!("redis://127.0.0.1:{}", srv.port), "redis-foreign");
    srv.cli(&["SET", &c.key(&K), "{\"v\":1}"]);
    assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
    assert_eq!(m.lkg_tampered.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_down_once_and_reads_stay_fast() {
    let Some(srv) = Server::start(&["--requirepass", "right"]) else {
        return;
    };
    let (c, health, m) = client(
        &format!("redis://:wrong@127.0.0.1:{}", srv.port),
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
    assert_eq!(*health.lock(), vec![false], "reported once");
    assert!(c.is_down());
    assert!(m.lkg_redis_errors.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_then_back() {
    let Some(mut srv) = Server::start(&[]) else {
        return;
    };
    let (c, health, m) = client(&format!("redis://127.0.0.1:{}", srv.port), "redis-bounce");
    c.put(&K, &entry("1"));
    eventually(5, "the write lands", || async {
        c.get(&K, READ_TIMEOUT).await.is_some()
    })
    .await;

    srv.stop();
    eventually(5, "down reported", || async {
        *health.lock() == vec![false]
    })
    .await;
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
    assert_eq!(*health.lock(), vec![false], "still reported once");
    assert!(m.lkg_redis_errors.get() >= 1);

    srv.restart();
    eventually(15, "back reported", || async {
        *health.lock() == vec![false, true]
    })
    .await;
    c.put(&K, &entry("3"));
    eventually(5, "writes work again", || async {
        c.get(&K, READ_TIMEOUT).await == Some(entry("3"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_never_blocks_longer_than_the_wait() {
    if Server::start(&[]).is_none() {
        return;
    }
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
    eventually(5, "down reported", || async {
        *health.lock() == vec![false]
    })
    .await;
}

// Two breakers with the same name and Redis stand in for two replicas.

fn replica(name: &str, redis: &str, script: &Arc<Script>) -> Arc<Breaker> {
    let o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("redisUrl", RawValue::String(redis.into()))
        .set("signingSecret", RawValue::String("k".into()))
        .set("maxAttempts", RawValue::Number(1.0));
    let cfg = Config::resolve(&o, &|_| None).unwrap();
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(1)),
        wall_origin: std::time::SystemTime::now(),
    };
    Breaker::with_transport(cfg, deps, Transport::Script(script.clone()))
}

async fn get(b: &Arc<Breaker>) -> CallOutcome {
    let req = b
        .prepare("http://127.0.0.1:9/api/sigils", None, &[], None)
        .unwrap();
    let p = b.admit().expect("closed");
    b.clone().execute(p, Call::new(req)).await
}

fn fallback_source(o: &CallOutcome) -> Option<(FallbackSource, Option<Bytes>)> {
    match o {
        CallOutcome::Fallback(f) => Some((f.source, f.body.clone())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_replica_serves_what_another_cached_but_never_a_tampered_value() {
    let Some(srv) = Server::start(&[]) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let a = replica(
        "redis-replicas",
        &url,
        &Script::new(vec![Step::Reply(
            200,
            "application/json",
            "{\"sigils\":[1]}",
        )]),
    );
    assert!(matches!(get(&a).await, CallOutcome::Ok(_)));
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
    let b = replica("redis-replicas", &url, &down);
    let (source, body) = fallback_source(&get(&b).await).expect("a fallback");
    assert_eq!(
        (source, body.as_deref()),
        (FallbackSource::Cache, Some(&b"{\"sigils\":[1]}"[..]))
    );
    assert!(b.lkg().unwrap().len() == 1, "kept locally once verified");

    // Flip one byte of the body in place: the layout still decodes, the HMAC does not verify.
    let len: usize = srv.cli(&["STRLEN", &key]).parse().unwrap();
    srv.cli(&["SETRANGE", &key, &(len - 3).to_string(), "2"]);
    let c = replica("redis-replicas", &url, &down);
    assert_eq!(
        fallback_source(&get(&c).await).map(|f| f.0),
        Some(FallbackSource::None)
    );
    assert_eq!(c.metrics().lkg_tampered.get(), 1);
    assert_eq!(c.lkg().unwrap().len(), 0, "never kept");
}

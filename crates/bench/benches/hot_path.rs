//! The core's per-call hot path without a server, so a regression shows up in `cargo bench`
//! long before it shows up in req/s: the circuit's admission and result recording (closed and
//! open), the rolling window update, the last-known-good store and lookup, and the cache key.
//!
//! Run: cargo bench -p dnastore-bench --bench hot_path
//! Each call site reads the clock the breaker reads (tokio's `Instant`: outside a paused
//! test runtime, the monotonic clock, a vDSO read).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnastore_core::circuit::{Circuit, CircuitConfig, Verdict};
use dnastore_core::config::Config;
use dnastore_core::error::FailureKind;
use dnastore_core::lkg::{CacheKey, KeyPolicy, LkgCache, LkgMetrics};
use dnastore_core::metrics::Series;
use dnastore_core::request::{prepare, PreparedRequest};
use dnastore_core::window::RollingWindow;
use http::HeaderMap;

/// Time since creation, as `Breaker::now` reads it.
struct MonotonicClock(tokio::time::Instant);

impl MonotonicClock {
    fn new() -> Self {
        Self(tokio::time::Instant::now())
    }

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A 1 KiB JSON body, the size of a typical DNAStore record.
fn body() -> Bytes {
    let mut s = String::from("{\"items\":[");
    while s.len() < 1000 {
        s.push_str("{\"id\":12345,\"ok\":true},");
    }
    s.pop();
    s.push_str("]}");
    Bytes::from(s)
}

fn request(path: &str) -> PreparedRequest {
    let headers = [
        (
            "authorization".to_string(),
            "Bearer 0123456789abcdef0123456789abcdef".to_string(),
        ),
        ("x-tenant-id".to_string(), "tenant-42".to_string()),
        ("accept".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), "sigil-api/1.0".to_string()),
        (
            "traceparent".to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
        ),
    ];
    prepare(
        None,
        &format!("http://127.0.0.1:9001{path}"),
        None,
        &headers,
        None,
    )
    .expect("valid request")
}

fn circuit(c: &mut Criterion) {
    let cfg = CircuitConfig::from(&Config::defaults());
    let clock = MonotonicClock::new();
    let mut g = c.benchmark_group("circuit");
    g.throughput(Throughput::Elements(1));

    let closed = Circuit::new(cfg.clone());
    g.bench_function("closed: try_acquire + on_result(success)", |b| {
        b.iter(|| {
            let now = clock.now();
            let permit = closed.try_acquire(now, &mut |_| {}).expect("closed admits");
            black_box(closed.on_result(permit, Verdict::Success, Duration::ZERO, now, &mut |_| {}))
        })
    });

    // Opened by maxFailures consecutive failures; resetTimeout pushed out so it stays open.
    let open = Circuit::new(CircuitConfig {
        reset_timeout: Duration::from_secs(3600),
        ..cfg
    });
    open_circuit(&open, &clock);
    assert!(
        open.try_acquire(clock.now(), &mut |_| {}).is_none(),
        "circuit should be open"
    );
    g.bench_function("open: try_acquire (short-circuit)", |b| {
        b.iter(|| black_box(open.try_acquire(clock.now(), &mut |_| {})))
    });
    g.bench_function("open: try_acquire + record_reject + record_fallback", |b| {
        b.iter(|| {
            let now = clock.now();
            let p = open.try_acquire(now, &mut |_| {});
            open.record_reject(now);
            open.record_fallback(now);
            black_box(p)
        })
    });
    g.finish();
}

/// Fails calls until the circuit opens.
fn open_circuit(c: &Circuit, clock: &MonotonicClock) {
    let fail = Verdict::Failure(FailureKind::ConnectionRefused);
    for _ in 0..1000 {
        let now = clock.now();
        match c.try_acquire(now, &mut |_| {}) {
            Some(p) => {
                c.on_result(p, fail, Duration::ZERO, now, &mut |_| {});
            }
            None => return,
        }
    }
    panic!("circuit never opened");
}

fn window(c: &mut Criterion) {
    let clock = MonotonicClock::new();
    let mut w = RollingWindow::new(Duration::from_secs(10), 10);
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(1));
    g.bench_function("RollingWindow::current + increment", |b| {
        b.iter(|| {
            w.current(clock.now()).successes += 1;
        })
    });
    g.bench_function("RollingWindow::totals", |b| {
        b.iter(|| black_box(w.totals(clock.now())))
    });
    g.finish();
}

fn lkg(c: &mut Criterion) {
    let cfg = Config::defaults().lkg;
    let metrics = Arc::new(LkgMetrics::new(&Series::new("bench-hot-path")));
    let cache = LkgCache::new(cfg.clone(), metrics.clone()).expect("default LKG config is enabled");
    let body = body();
    let keys = KeyPolicy::new(&cfg);
    let key = keys.key("bench", &request("/api/sigils/1"));
    let no_headers = HeaderMap::new();
    let mut g = c.benchmark_group("lkg");
    g.throughput(Throughput::Elements(1));

    // The success path of a GET: build the entry, store it (same key: replace in place).
    g.bench_function("store (same key, 1 KiB)", |b| {
        b.iter(|| {
            let e = cache.entry(&key, body.clone(), true, 1_000, None);
            black_box(cache.store(key, e, true))
        })
    });
    g.bench_function("lookup (hit)", |b| {
        b.iter(|| black_box(cache.lookup(&key, 2_000, &no_headers)))
    });

    // Distinct keys into a full cache: every store evicts the least recently used entry.
    let distinct: Vec<CacheKey> = (0..cfg.max_entries * 2)
        .map(|i| keys.key("bench", &request(&format!("/api/sigils/{i}"))))
        .collect();
    let mut i = 0usize;
    g.bench_function("store (distinct keys, full cache, evicting)", |b| {
        b.iter(|| {
            let k = distinct[i % distinct.len()];
            i += 1;
            let e = cache.entry(&k, body.clone(), true, 1_000, None);
            black_box(cache.store(k, e, true))
        })
    });

    // With a signing secret every store and lookup pays an HMAC-SHA256 over the body.
    let signed_cfg = {
        let mut s = cfg.clone();
        s.signing_secret = Some("bench-secret-0123456789".into());
        s
    };
    let signed = LkgCache::new(signed_cfg, metrics).expect("enabled");
    g.bench_function("store (signed, 1 KiB)", |b| {
        b.iter(|| {
            let e = signed.entry(&key, body.clone(), true, 1_000, None);
            black_box(signed.store(key, e, true))
        })
    });
    g.bench_function("lookup (signed, hit)", |b| {
        b.iter(|| black_box(signed.lookup(&key, 2_000, &no_headers)))
    });
    g.finish();

    let mut g = c.benchmark_group("cache_key");
    g.throughput(Throughput::Elements(1));
    let req = request("/api/sigils/1?include=owner");
    g.bench_function(
        "cache_key (GET, authorization + tenant + 3 neutral headers)",
        |b| b.iter(|| black_box(keys.key("bench", black_box(&req)))),
    );
    g.finish();
}

/// The bulkhead's cost per call when a slot is free (issue 15: the hot path must not get
/// slower with `maxConcurrent` above the concurrency): the semaphore's compare-and-swap, the
/// in-flight count, and the release (the semaphore's waiter lock), plus the adaptive limit's
/// sample under its mutex.
fn bulkhead(c: &mut Criterion) {
    use dnastore_core::config::{LimitConfig, LimitKind};
    use dnastore_core::limit::Limiter;
    use futures_util::FutureExt;
    let cfg = LimitConfig {
        max_concurrent: 64,
        max_queued: 0,
        queue_timeout: Duration::from_millis(100),
        kind: LimitKind::Fixed,
    };
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut g = c.benchmark_group("bulkhead");
    g.throughput(Throughput::Elements(1));
    let fixed = Limiter::new(&cfg);
    let adaptive = Limiter::new(&LimitConfig {
        kind: LimitKind::Adaptive { min: 2 },
        ..cfg
    });
    // `sample` is a no-op for the fixed cap: the same loop measures both.
    for (name, limiter) in [
        ("fixed 64: acquire + release (a free slot)", &fixed),
        ("adaptive 64: acquire + sample + release", &adaptive),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let slot = limiter
                    .acquire(far)
                    .now_or_never()
                    .expect("ready")
                    .expect("a slot");
                slot.sample(Duration::from_millis(5));
                drop(black_box(slot));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, circuit, window, lkg, bulkhead);
criterion_main!(benches);

//! The bulkhead on paused tokio time: FIFO hand-off, the queue's bounds, and the adaptive
//! limit driven by a scripted latency curve.

use std::sync::Arc;

use super::window::WINDOW;
use super::*;

const MS: Duration = Duration::from_millis(1);

fn fixed(max: u32, queued: u32, timeout_ms: u32) -> Limiter {
    Limiter::new(&LimitConfig {
        max_concurrent: max,
        max_queued: queued,
        queue_timeout: timeout_ms * MS,
        kind: LimitKind::Fixed,
    })
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[tokio::test(start_paused = true)]
async fn over_the_cap_without_a_queue_is_refused_at_once() {
    let l = fixed(2, 0, 100);
    let a = l.acquire(far()).await.unwrap();
    let _b = l.acquire(far()).await.unwrap();
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::Concurrency));
    assert_eq!((l.inflight(), l.rejected(Shed::Concurrency)), (2, 1));
    drop(a);
    assert_eq!(l.inflight(), 1);
    assert!(
        l.acquire(far()).await.is_ok(),
        "a returned slot is taken again"
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_in_first_out() {
    let l = Arc::new(fixed(1, 3, 1000));
    let held = l.acquire(far()).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (l, order) = (l.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let s = l.acquire(far()).await.expect("a slot within the timeout");
            order.lock().push(i);
            tokio::time::sleep(10 * MS).await;
            drop(s);
        }));
        // Queued in this order.
        tokio::time::sleep(MS).await;
    }
    assert_eq!(l.queued(), 3);
    // Full queue: the next is refused without waiting.
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::Concurrency));
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2]);
    assert_eq!((l.inflight(), l.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_waits_at_most_queue_timeout_or_its_deadline() {
    let l = fixed(1, 5, 100);
    let _held = l.acquire(far()).await.unwrap();
    let t0 = Instant::now();
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::QueueTimeout));
    assert_eq!(t0.elapsed(), 100 * MS);
    // A deadline closer than queueTimeoutMs ends the wait first.
    let t0 = Instant::now();
    assert_eq!(
        l.acquire(Instant::now() + 30 * MS).await.err(),
        Some(Shed::QueueTimeout)
    );
    assert_eq!(t0.elapsed(), 30 * MS);
    assert_eq!((l.queued(), l.rejected(Shed::QueueTimeout)), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_by_its_caller_leaves_the_queue_and_takes_nothing() {
    let l = Arc::new(fixed(1, 5, 10_000));
    let held = l.acquire(far()).await.unwrap();
    let l2 = l.clone();
    let waiter = tokio::spawn(async move { l2.acquire(far()).await.map(|_| ()) });
    tokio::time::sleep(MS).await;
    assert_eq!(l.queued(), 1);
    // An AbortSignal or a shutdown drops the call's future mid-wait.
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(l.queued(), 0);
    drop(held);
    assert_eq!(l.inflight(), 0);
    let _a = l.acquire(far()).await.expect("the slot came back");
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::QueueTimeout));
}

fn adaptive(min: u32, max: u32) -> Arc<Limiter> {
    Arc::new(Limiter::new(&LimitConfig {
        max_concurrent: max,
        max_queued: 0,
        queue_timeout: MS,
        kind: LimitKind::Adaptive { min },
    }))
}

/// DNAStore's latency at `t` seconds: 5 ms, then 2.5 s from 10 s to 30 s, then 5 ms.
fn step_curve(t: f64) -> Duration {
    if (10.0..30.0).contains(&t) {
        2500 * MS
    } else {
        5 * MS
    }
}

/// Calls arriving at 100/s for `secs` against `curve`; returns (second, limit, in flight)
/// every 500 ms and the most calls ever in flight.
async fn drive(
    l: &Arc<Limiter>,
    secs: u64,
    curve: fn(f64) -> Duration,
) -> (Vec<(f64, u32, u32)>, u32) {
    let t0 = Instant::now();
    let mut trace = Vec::new();
    let mut peak = 0;
    for tick in 0..secs * 100 {
        let t = tick as f64 / 100.0;
        let l2 = l.clone();
        let latency = curve(t);
        tokio::spawn(async move {
            if let Ok(slot) = l2.acquire(Instant::now() + Duration::from_secs(10)).await {
                tokio::time::sleep(latency).await;
                slot.sample(latency);
            }
        });
        tokio::time::sleep_until(t0 + 10 * MS * (tick as u32 + 1)).await;
        peak = peak.max(l.inflight());
        if tick % 50 == 0 {
            trace.push((t, l.limit(), l.inflight()));
        }
    }
    (trace, peak)
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_shrinks_on_a_slow_step_and_grows_back() {
    let l = adaptive(2, 64);
    let (trace, peak) = drive(&l, 40, step_curve).await;
    let at = |s: f64| trace.iter().find(|(t, _, _)| *t >= s).copied().unwrap();
    for (t, limit, inflight) in &trace {
        assert!(
            (2..=64).contains(limit),
            "limit {limit} at {t} s: {trace:?}"
        );
        assert!(*inflight <= 64, "{inflight} in flight at {t} s");
    }
    assert!(peak <= 64);
    // Fast: ~1 call in flight, and the limit stays at maxConcurrent.
    assert_eq!(at(9.5).1, 64, "{trace:?}");
    // The first slow answers arrive 2.5 s after the step; within 3 s the limit has fallen.
    assert!(at(13.0).1 <= 16, "{trace:?}");
    // Sustained slowness: at Gradient2's fixed point (2 x queue = 8).
    let slow = at(29.5).1;
    assert!((2..=10).contains(&slow), "{trace:?}");
    // Fast again at 30 s: the slow calls still in flight end by 32.5 s, then the limit
    // grows back to maxConcurrent within 5 s of the recovery.
    assert_eq!(at(35.0).1, 64, "{trace:?}");
    assert_eq!(l.inflight(), 0);
}

#[test]
fn gradient_stays_in_bounds_for_any_sample() {
    let mut g = Gradient::new(3, 20);
    let mut x: u64 = 0x9E37_79B9;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let rtt = Duration::from_micros(x % 5_000_000);
        let inflight = (x >> 32) as u32 % 40;
        let limit = g.sample(rtt, inflight);
        assert!((3..=20).contains(&limit), "{limit}");
    }
}

/// `n` samples of `rtt` taken a tenth of a window apart (so each window holds ~10).
async fn feed(slot: &Slot<'_>, rtt: Duration, n: u32) {
    for _ in 0..n {
        slot.sample(rtt);
        tokio::time::advance(WINDOW / 10).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_lowered_limit_is_paid_by_returned_slots_and_a_raised_one_cancels_debt() {
    let l = adaptive(2, 32);
    // Learn a 5 ms baseline with the bulkhead full (not app-limited).
    let held: Vec<_> = futures_util::future::join_all((0..32).map(|_| l.acquire(far())))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    feed(&held[0], 5 * MS, 30).await;
    assert_eq!(l.limit(), 32);
    // Slow samples while all 32 slots are held: the limit falls below what is held.
    feed(&held[0], 2500 * MS, 40).await;
    let low = l.limit();
    assert!(low < 16, "{low}");
    drop(held);
    assert_eq!(l.inflight(), 0);
    // Exactly `low` slots are free: the rest were forgotten as they came back.
    let again: Vec<_> = futures_util::future::join_all((0..low).map(|_| l.acquire(far())))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::Concurrency));
    // Fast again while saturated: it grows, one permit per step up.
    feed(&again[0], 5 * MS, 400).await;
    assert_eq!(l.limit(), 32);
    drop(again);
    let all: Vec<_> = futures_util::future::join_all((0..32).map(|_| l.acquire(far())))
        .await
        .into_iter()
        .collect();
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(l.acquire(far()).await.err(), Some(Shed::Concurrency));
}

#[tokio::test(start_paused = true)]
async fn one_late_sample_does_not_move_the_limit() {
    let l = adaptive(2, 32);
    let held: Vec<_> = futures_util::future::join_all((0..32).map(|_| l.acquire(far())))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    feed(&held[0], 5 * MS, 30).await;
    // Per sample, one 2.5 s answer among 5 ms ones took the limit from 32 to 28; now the
    // window's median is 5 ms.
    for i in 0..100 {
        held[0].sample(if i % 10 == 3 { 2500 * MS } else { 5 * MS });
        tokio::time::advance(WINDOW / 10).await;
        assert_eq!(l.limit(), 32, "after sample {i}");
    }
}

/// A client that stalls now and then (CPU-bound, descheduled): every answer that arrives
/// during a stall is seen only when the stall ends. Stalls start at exponential gaps (mean
/// `gap_ms`) and last uniformly 5 to `stall_ms` ms; seeded, so the schedule is fixed.
fn stalls(seed: u64, secs: u64, gap_ms: f64, stall_ms: f64) -> Vec<(Duration, Duration)> {
    use crate::rng::{Rng, SplitMix64};
    let rng = SplitMix64::seeded(seed);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < secs as f64 * 1000.0 {
        t += -gap_ms * (1.0 - rng.next_f64()).ln();
        let len = 5.0 + (stall_ms - 5.0) * rng.next_f64();
        out.push((
            Duration::from_secs_f64(t / 1000.0),
            Duration::from_secs_f64((t + len) / 1000.0),
        ));
        t += len;
    }
    out
}

/// `callers` callers in a loop against a DNAStore that always answers in `store`, seen
/// through a client with `stalls`: returns (calls, shed, lowest limit).
async fn steady_through_stalls(
    l: &Arc<Limiter>,
    callers: usize,
    secs: u64,
    store: Duration,
    stalls: Arc<Vec<(Duration, Duration)>>,
) -> (u64, u64, u32) {
    let t0 = Instant::now();
    // When the client next sees anything at or after `at` (the end of a stall covering it).
    let seen = move |at: Duration| -> Duration {
        let i = stalls.partition_point(|(_, end)| *end <= at);
        match stalls.get(i) {
            Some((start, end)) if *start <= at => *end,
            _ => at,
        }
    };
    let seen = Arc::new(seen);
    let end = Duration::from_secs(secs);
    let lowest = Arc::new(AtomicU32::new(u32::MAX));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (l, seen, lowest) = (l.clone(), seen.clone(), lowest.clone());
            tokio::spawn(async move {
                let (mut calls, mut shed) = (0u64, 0u64);
                loop {
                    let now = t0.elapsed();
                    if now >= end {
                        return (calls, shed);
                    }
                    calls += 1;
                    match l.acquire(far()).await {
                        Ok(slot) => {
                            let done = seen(now + store);
                            tokio::time::sleep_until(t0 + done).await;
                            slot.sample(done - now);
                        }
                        Err(_) => {
                            shed += 1;
                            // The caller's fallback, then its next call.
                            tokio::time::sleep(store).await;
                        }
                    }
                    lowest.fetch_min(l.limit(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    let (mut calls, mut shed) = (0, 0);
    for t in tasks {
        let (c, s) = t.await.unwrap();
        calls += c;
        shed += s;
    }
    (calls, shed, lowest.load(Ordering::Relaxed))
}

// Issue 25: DNAStore steady at 2 ms, 40 callers, adaptive limit up to 60; the client's
// measured latency jitters (its own CPU). Fed sample by sample, Gradient2 read each burst
// of late answers as DNAStore slowing down and shed calls; through the sampling window a
// stall is a minority of a window's samples and the limit stays at maxConcurrent.
#[tokio::test(start_paused = true)]
async fn client_side_jitter_at_a_steady_store_latency_sheds_nothing() {
    for (store_ms, seed) in [(2u32, 1u64), (5, 2), (20, 3)] {
        let l = adaptive(2, 60);
        let s = Arc::new(stalls(seed, 6, 100.0, 60.0));
        let (calls, shed, lowest) = steady_through_stalls(&l, 40, 6, store_ms * MS, s).await;
        assert!(calls > 5_000, "{calls} calls at {store_ms} ms");
        assert_eq!(
            (shed, lowest),
            (0, 60),
            "{shed} of {calls} calls shed at a steady {store_ms} ms, the limit as low as {lowest}"
        );
    }
}

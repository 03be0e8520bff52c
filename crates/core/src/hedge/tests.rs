//! The race and the 'auto' delay on paused time, with plain futures for copies (the
//! breaker's wiring is tested in `breaker/tests_hedge.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::observer::HedgeSkip;

const MS: Duration = Duration::from_millis(1);

type Out = Result<u32, &'static str>;

/// Copy `i` of an attempt answers `plan[i]` after its delay (`None`: never); counts the
/// copies dropped before they finished.
struct Copies {
    plan: Vec<(Option<Duration>, Out)>,
    started: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

struct Unfinished(Option<Arc<AtomicUsize>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Copies {
    fn new(plan: Vec<(Option<Duration>, Out)>) -> Self {
        Self {
            plan,
            started: AtomicUsize::new(0),
            dropped: Arc::default(),
        }
    }

    fn send(&self) -> impl std::future::Future<Output = Out> {
        let i = self.started.fetch_add(1, Ordering::Relaxed);
        let (after, out) = self.plan[i];
        let dropped = self.dropped.clone();
        async move {
            let mut guard = Unfinished(Some(dropped));
            match after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
            guard.0 = None;
            out
        }
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn settles(o: &Out) -> Settles {
    match o {
        Ok(_) => Settles::Answer,
        Err(e) => Settles::Failure {
            informative: *e == "503",
        },
    }
}

/// Runs a race that admits every hedge; its result, the time it took and the samples.
async fn run(
    c: &Copies,
    delay: Option<Duration>,
    max: u32,
    limit: Duration,
) -> (Raced<Out>, Duration, Vec<Duration>) {
    let t0 = Instant::now();
    let mut samples = vec![];
    let r = race(
        delay,
        max,
        limit,
        || c.send(),
        settles,
        || Ok::<(), HedgeSkip>(()),
        |l| samples.push(l),
    )
    .await;
    (r, t0.elapsed(), samples)
}

#[tokio::test(start_paused = true)]
async fn a_hedge_goes_out_at_the_delay_the_first_answer_wins_and_the_loser_is_dropped() {
    let c = Copies::new(vec![(Some(300 * MS), Ok(0)), (Some(2 * MS), Ok(1))]);
    let (r, took, samples) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!(
        (r.out, r.copy, r.sent.clone()),
        (Some(Ok(1)), 1, vec![25 * MS])
    );
    assert_eq!(took, 27 * MS);
    // The slow first copy was dropped the moment the hedge answered, not awaited.
    assert_eq!((c.started(), c.dropped()), (2, 1));
    // The winner's own latency, and the loser's age when dropped (a lower bound).
    assert_eq!(samples, vec![2 * MS, 27 * MS]);
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_delay_sends_no_hedge() {
    let c = Copies::new(vec![(Some(10 * MS), Ok(0)), (Some(MS), Ok(1))]);
    let (r, took, samples) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!((r.out, r.copy, r.sent.len()), (Some(Ok(0)), 0, 0));
    assert_eq!((took, c.started(), c.dropped()), (10 * MS, 1, 0));
    assert_eq!(samples, vec![10 * MS]);
    // No delay (a write, or 'auto' still learning): the first copy alone.
    let c = Copies::new(vec![(Some(500 * MS), Ok(0))]);
    let (r, took, _) = run(&c, None, 1, 3000 * MS).await;
    assert_eq!((r.out, took, c.started()), (Some(Ok(0)), 500 * MS, 1));
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_fails_while_another_runs_fails_nothing() {
    // The first fails after the hedge went out: the hedge's answer is the attempt's.
    let c = Copies::new(vec![(Some(30 * MS), Err("503")), (Some(35 * MS), Ok(1))]);
    let (r, took, samples) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!((r.out, r.copy, took), (Some(Ok(1)), 1, 60 * MS));
    assert_eq!(samples, vec![35 * MS], "failures are not sampled");
    // The hedge fails first: the first copy's answer is taken.
    let c = Copies::new(vec![(Some(100 * MS), Ok(0)), (Some(5 * MS), Err("reset"))]);
    let (r, took, _) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!((r.out, r.copy, took), (Some(Ok(0)), 0, 100 * MS));
    assert_eq!(c.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn when_every_copy_fails_the_attempt_fails_with_what_says_most() {
    let c = Copies::new(vec![
        (Some(40 * MS), Err("reset")),
        (Some(20 * MS), Err("503")),
    ]);
    let (r, took, _) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!((r.out, r.copy, took), (Some(Err("503")), 1, 45 * MS));
    // A failure before the hedge is due ends the attempt at once (a retry, with its
    // backoff, is the loop's business), with no hedge sent.
    let c = Copies::new(vec![(Some(5 * MS), Err("reset")), (Some(MS), Ok(1))]);
    let (r, took, _) = run(&c, Some(25 * MS), 1, 3000 * MS).await;
    assert_eq!((r.out, took, c.started()), (Some(Err("reset")), 5 * MS, 1));
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_drops_every_copy() {
    let c = Copies::new(vec![(None, Ok(0)), (None, Ok(1))]);
    let (r, took, samples) = run(&c, Some(25 * MS), 1, 100 * MS).await;
    assert_eq!((r.out, r.sent.len(), took), (None, 1, 100 * MS));
    assert_eq!(c.dropped(), 2);
    assert_eq!(samples, vec![100 * MS, 75 * MS], "each at its age");
    // A delay at or past the limit: no hedge, the first copy times out alone.
    let c = Copies::new(vec![(None, Ok(0))]);
    let (r, took, _) = run(&c, Some(100 * MS), 1, 100 * MS).await;
    assert_eq!(
        (r.out, r.sent.len(), took, c.dropped()),
        (None, 0, 100 * MS, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn hedges_go_out_a_delay_apart_up_to_max() {
    let c = Copies::new(vec![
        (None, Ok(0)),
        (None, Ok(1)),
        (Some(3 * MS), Ok(2)),
        (Some(MS), Ok(3)),
    ]);
    let (r, took, _) = run(&c, Some(10 * MS), 2, 3000 * MS).await;
    assert_eq!(
        (r.out, r.copy, r.sent.clone()),
        (Some(Ok(2)), 2, vec![10 * MS, 20 * MS])
    );
    assert_eq!((took, c.started(), c.dropped()), (23 * MS, 3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_refused_hedge_is_skipped_and_ends_hedging() {
    let c = Copies::new(vec![(Some(300 * MS), Ok(0)), (Some(MS), Ok(1))]);
    let asked = AtomicUsize::new(0);
    let r = race(
        Some(25 * MS),
        3,
        3000 * MS,
        || c.send(),
        settles,
        || {
            asked.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(HedgeSkip::Budget)
        },
        |_| {},
    )
    .await;
    assert_eq!((r.out, r.sent.len()), (Some(Ok(0)), 0));
    assert_eq!(r.skipped, Some((25 * MS, HedgeSkip::Budget)));
    assert_eq!((asked.load(Ordering::Relaxed), c.started()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn what_a_hedge_holds_is_given_back_when_it_ends_or_is_dropped() {
    struct Held(Arc<AtomicUsize>);
    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let held = Arc::new(AtomicUsize::new(0));
    // Two hedges: the first fails (gives its guard back), the second loses to the first copy.
    let c = Copies::new(vec![
        (Some(50 * MS), Ok(0)),
        (Some(MS), Err("reset")),
        (None, Ok(2)),
    ]);
    let r = race(
        Some(10 * MS),
        2,
        3000 * MS,
        || c.send(),
        settles,
        || {
            held.fetch_add(1, Ordering::Relaxed);
            Ok(Held(held.clone()))
        },
        |_| {},
    )
    .await;
    assert_eq!((r.out, r.copy, r.sent.len()), (Some(Ok(0)), 0, 2));
    assert_eq!(held.load(Ordering::Relaxed), 0);
}

#[test]
fn auto_waits_for_samples_and_never_goes_below_its_floor() {
    let p = P95::new();
    let t = Duration::from_secs(100);
    for _ in 0..AUTO_MIN_SAMPLES - 1 {
        p.add(t, 2 * MS);
    }
    assert_eq!(p.delay(t), None, "too few samples to hedge on");
    p.add(t, 2 * MS);
    // Refreshed at most every 100 ms.
    assert_eq!(p.delay(t), None);
    assert_eq!(p.delay(t + 100 * MS), Some(AUTO_FLOOR));
    assert!(p.p95_us(t).unwrap() <= 2_250);
}

#[test]
fn auto_tracks_the_p95_through_a_latency_shift() {
    let p = P95::new();
    let mut t = Duration::from_secs(100);
    // 90 % at 5 ms, 10 % at 80 ms: the p95 is in the slow part.
    let feed = |p: &P95, t: Duration, fast: Duration, slow: Duration| {
        for i in 0..200 {
            p.add(t, if i % 10 == 0 { slow } else { fast });
        }
    };
    for _ in 0..5 {
        feed(&p, t, 5 * MS, 80 * MS);
        t += Duration::from_secs(1);
    }
    let d = p.delay(t - MS).unwrap();
    assert!((80 * MS..=90 * MS).contains(&d), "{d:?}");
    // DNAStore gets slower: 200 ms for most, 400 ms for some. Within the window's length the
    // delay follows; the old samples are gone.
    for _ in 0..5 {
        feed(&p, t, 200 * MS, 400 * MS);
        t += Duration::from_secs(1);
    }
    let d = p.delay(t - MS).unwrap();
    assert!((400 * MS..=450 * MS).contains(&d), "{d:?}");
    // And faster again: the floor.
    for _ in 0..5 {
        for _ in 0..200 {
            p.add(t, 3 * MS);
        }
        t += Duration::from_secs(1);
    }
    assert_eq!(p.delay(t - MS), Some(AUTO_FLOOR));
    // Quiet for longer than the window: no samples, no hedging.
    let later = t + Duration::from_secs(10);
    assert_eq!(p.delay(later), None);
}

#[test]
fn auto_halfway_through_a_shift_answers_from_both() {
    // Mid-shift the window holds old and new samples: the p95 moves as the new ones fill it.
    let p = P95::new();
    let t = Duration::from_secs(50);
    for _ in 0..1000 {
        p.add(t, 2 * MS);
    }
    for _ in 0..100 {
        p.add(t + Duration::from_secs(1), 100 * MS);
    }
    let d = p.p95_us(t + Duration::from_secs(1)).unwrap();
    assert!((100_000..=112_500).contains(&d), "{d}");
}

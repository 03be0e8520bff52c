//! One hedged attempt: the first copy alone until the delay, then up to `max` more, each a
//! delay after the one before; the first answer takes the attempt, and every other copy is
//! dropped at that moment (for HTTP: its connection is closed, its body never read).
//!
//! Generic over what a copy is, so the race is tested on paused time with plain futures;
//! the breaker (`breaker/hedged.rs`) gives it HTTP sends and the permission to hedge (a
//! closed circuit, a bulkhead slot, the retry budget).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::observer::HedgeSkip;

/// How a finished copy ends the race.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settles {
    /// An answer (for HTTP: a 2xx, or a 4xx that is the caller's mistake): it wins.
    Answer,
    /// A failure. It ends the attempt only when no other copy is still running;
    /// `informative`: DNAStore answered (a 503 with its Retry-After), so it is preferred as
    /// the attempt's failure over one that says less (a reset).
    Failure { informative: bool },
}

/// What the race did.
#[derive(Debug)]
pub struct Raced<T> {
    /// The winning answer; or, when every copy failed, the failure that says most (the first
    /// informative one, else the first); `None`: `limit` ran out with copies still running.
    pub out: Option<T>,
    /// Which copy `out` came from: 0 the first, k the k-th hedge.
    pub copy: u32,
    /// When each hedge was sent, from the attempt's start (its length: hedges sent).
    pub sent: Vec<Duration>,
    /// A hedge that was due but not sent, with when and why (hedging stops there).
    pub skipped: Option<(Duration, HedgeSkip)>,
}

/// One hedge in flight: its number and result; `guard` (its bulkhead slot) goes with it,
/// whether it finishes or is dropped.
async fn hedge<T, G>(n: u32, fut: impl Future<Output = T>, guard: G) -> (u32, T) {
    let out = fut.await;
    drop(guard);
    (n, out)
}

/// The race's bookkeeping: copies' starts (`None` once finished), the failure kept.
struct Book<T> {
    start: Instant,
    since: Vec<Option<Instant>>,
    failure: Option<(u32, T, bool)>,
}

impl<T> Book<T> {
    /// Records copy `n`'s result: `Some` if it is the answer.
    fn finished(
        &mut self,
        n: u32,
        out: T,
        settles: &impl Fn(&T) -> Settles,
        sample: &mut impl FnMut(Duration),
    ) -> Option<T> {
        let started = self.since[n as usize].take().unwrap_or(self.start);
        match settles(&out) {
            Settles::Answer => {
                sample(Instant::now().saturating_duration_since(started));
                Some(out)
            }
            Settles::Failure { informative } => {
                let better = match &self.failure {
                    None => true,
                    Some((_, _, was)) => informative && !*was,
                };
                if better {
                    self.failure = Some((n, out, informative));
                }
                None
            }
        }
    }

    /// The copies still running, sampled at their age (they are dropped now).
    fn drop_running(&mut self, sample: &mut impl FnMut(Duration)) {
        let now = Instant::now();
        for s in self.since.iter_mut().filter_map(Option::take) {
            sample(now.saturating_duration_since(s));
        }
    }
}

/// Runs one attempt with hedges.
///
/// - `delay`: when the first hedge is due (`None`: none for this attempt); `max`: hedges at
///   most; `limit`: the attempt's whole time (its timeout within the call's deadline), after
///   which every copy still running is dropped and `out` is `None`.
/// - `send` starts one copy; `settles` judges a finished one.
/// - `admit` is asked when a hedge is due: what the hedge holds while it runs, or why it may
///   not be sent.
/// - `sample` gets each copy's latency when it answers, and its age when it is dropped
///   (`hedgeAfterMs: 'auto'` learns from both; failures are not sampled).
pub async fn race<T, G, Fut>(
    delay: Option<Duration>,
    max: u32,
    limit: Duration,
    send: impl Fn() -> Fut,
    settles: impl Fn(&T) -> Settles,
    mut admit: impl FnMut() -> Result<G, HedgeSkip>,
    mut sample: impl FnMut(Duration),
) -> Raced<T>
where
    Fut: Future<Output = T>,
{
    let start = Instant::now();
    let end = start + limit;
    let mut raced = Raced {
        out: None,
        copy: 0,
        sent: Vec::new(),
        skipped: None,
    };
    let mut book = Book {
        start,
        since: vec![Some(start)],
        failure: None,
    };
    let mut first = pin!(send());
    // The first copy alone until the first hedge is due: no set, no allocation for an
    // attempt that answers in time.
    let delay = delay.filter(|_| max > 0);
    let alone_until = delay.map_or(end, |d| (start + d).min(end));
    tokio::select! {
        biased;
        out = &mut first => {
            raced.out = book.finished(0, out, &settles, &mut sample);
            if raced.out.is_none() {
                raced.out = book.failure.take().map(|(_, out, _)| out);
            }
            return raced;
        }
        () = tokio::time::sleep_until(alone_until) => {}
    }
    let Some(delay) = delay.filter(|_| alone_until < end) else {
        book.drop_running(&mut sample);
        return raced;
    };
    let mut first_running = true;
    let mut running = FuturesUnordered::new();
    let mut due = Some(alone_until);
    loop {
        // A hedge due now (its timer fired, or the first copy's time alone ended): sent if
        // admitted; a refusal ends hedging for this attempt.
        if let Some(at) = due.filter(|at| *at <= Instant::now()) {
            due = None;
            match admit() {
                Ok(guard) => {
                    let n = raced.sent.len() as u32 + 1;
                    raced.sent.push(at.saturating_duration_since(start));
                    book.since.push(Some(Instant::now()));
                    running.push(hedge(n, send(), guard));
                    if n < max {
                        due = Some(at + delay);
                    }
                }
                Err(why) => raced.skipped = Some((at.saturating_duration_since(start), why)),
            }
        }
        tokio::select! {
            biased;
            out = &mut first, if first_running => {
                first_running = false;
                if let Some(out) = book.finished(0, out, &settles, &mut sample) {
                    raced.out = Some(out);
                    book.drop_running(&mut sample);
                    return raced;
                }
            }
            Some((n, out)) = running.next(), if !running.is_empty() => {
                if let Some(out) = book.finished(n, out, &settles, &mut sample) {
                    raced.out = Some(out);
                    raced.copy = n;
                    book.drop_running(&mut sample);
                    return raced;
                }
            }
            () = sleep_until(due), if due.is_some() => {}
            () = tokio::time::sleep_until(end) => {
                book.drop_running(&mut sample);
                return raced;
            }
        }
        if !first_running && running.is_empty() {
            // Every copy sent has failed: so does the attempt (another copy now would be a
            // retry without its backoff).
            let (n, out, _) = book.failure.take().expect("a failed copy is kept");
            raced.out = Some(out);
            raced.copy = n;
            return raced;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

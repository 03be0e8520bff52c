//! The fleet's task: subscribe, read the state, then follow messages, run what the call
//! path and the observer asked for (votes, trial reports, given-back leases) and read the
//! state every [`POLL`] as a heartbeat, until Redis fails; then run on the local circuit
//! alone, remember a trip to vote it on return, back off (100 ms doubling to 2 s) and
//! connect again. Stops at once when the breaker closes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::record::{Message, Refused};
use super::scripts::{CAS, POLL as POLL_SCRIPT, RELEASE, REPORT, VOTE};
use super::{Cmd, Shared, POLL, ROUND_KEEP, SEEN_FOR};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A session that lasted this long resets the backoff.
const STEADY: Duration = Duration::from_secs(1);
/// Refused records remembered so one sitting in Redis is counted once, not every poll.
const REFUSED_MEMORY: usize = 256;

enum Ended {
    Closed,
    Broken(String),
}

type Step = Result<(), String>;

/// The task's own memory across sessions.
#[derive(Default)]
struct Local {
    /// A trip of the local circuit while Redis was away (wall ms): voted on return if
    /// still within the window and the circuit has not closed since.
    offline_trip: Option<u64>,
    /// Hashes of refused records already counted.
    refused: HashSet<u64>,
}

pub(super) async fn run(s: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut backoff = BACKOFF_MIN;
    let mut local = Local::default();
    loop {
        let started = Instant::now();
        let reason = match session(&s, &mut rx, &mut local).await {
            Ended::Closed => break,
            Ended::Broken(r) => r,
        };
        s.disconnected(&reason);
        s.mark_joined();
        if started.elapsed() >= STEADY {
            backoff = BACKOFF_MIN;
        }
        let wake = Instant::now() + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        // Offline: the local circuit decides alone; its trips are remembered.
        loop {
            tokio::select! {
                biased;
                _ = s.cancel.cancelled() => return leave(&s).await,
                _ = sleep_until(wake) => break,
                cmd = rx.recv() => match cmd {
                    None => return leave(&s).await,
                    Some(Cmd::Tripped(at)) => local.offline_trip = Some(at),
                    // Reports and leases wait out their expiry; nothing else to do.
                    Some(_) => {}
                },
            }
        }
    }
    leave(&s).await;
}

/// Says goodbye: this replica leaves the count of replicas seen; the connection closes.
async fn leave(s: &Shared) {
    if s.link_state.load(Ordering::Acquire) == super::LINK_UP {
        let me = s.view.lock().me().to_string();
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(&s.keys.replicas).arg(me);
        let t = s.link.client().options().response_timeout;
        let _ = tokio::time::timeout(t, s.link.query::<i64>(&zrem)).await;
    }
    s.link.disconnect();
}

async fn session(
    s: &Arc<Shared>,
    rx: &mut mpsc::UnboundedReceiver<Cmd>,
    local: &mut Local,
) -> Ended {
    let subscribed = tokio::select! {
        biased;
        _ = s.cancel.cancelled() => return Ended::Closed,
        r = s.link.client().subscribe(&s.keys.channel) => r,
    };
    let mut sub = match subscribed {
        Ok(sub) => sub,
        Err(e) => {
            let url = s.link.client().spec().redacted();
            return Ended::Broken(format!("fleet Redis {url}: {e}"));
        }
    };
    // Read after subscribing: no change falls between the two.
    let first = tokio::select! {
        biased;
        _ = s.cancel.cancelled() => return Ended::Closed,
        r = poll(s, true, local) => r,
    };
    if let Err(e) = first {
        return Ended::Broken(e);
    }
    s.reconnected();
    s.mark_joined();
    if let Some(at) = local.offline_trip.take() {
        if s.wall_ms().saturating_sub(at) <= s.window_ms() && s.trip_stands() {
            if let Err(e) = vote(s, at, local).await {
                return Ended::Broken(e);
            }
        }
    }
    let mut tick = tokio::time::interval_at(Instant::now() + POLL, POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            biased;
            _ = s.cancel.cancelled() => return Ended::Closed,
            m = sub.next() => match m {
                Some(payload) => on_message(s, &payload, local).await,
                None => Err(format!(
                    "fleet Redis {}: the subscription's connection ended",
                    s.link.client().spec().redacted()
                )),
            },
            cmd = rx.recv() => match cmd {
                Some(c) => on_cmd(s, c, local).await,
                None => return Ended::Closed,
            },
            _ = tick.tick() => poll(s, false, local).await,
        };
        if let Err(e) = step {
            return Ended::Broken(e);
        }
    }
}

fn opt(raw: &[u8]) -> Option<&[u8]> {
    (!raw.is_empty()).then_some(raw)
}

/// Counts a refused record once per distinct record.
fn refuse(s: &Shared, local: &mut Local, raw: &[u8], why: Refused) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut h);
    if local.refused.len() >= REFUSED_MEMORY {
        local.refused.clear();
    }
    if local.refused.insert(h.finish()) {
        s.refused(why);
    }
}

fn see_votes(s: &Shared, votes: &[Vec<u8>], local: &mut Local) {
    for raw in votes {
        match s.signer.open(raw) {
            Ok(Message::Vote(v)) => s.view.lock().see_vote(v),
            Ok(Message::State(_) | Message::Force(_)) => refuse(s, local, raw, Refused::Malformed),
            Err(why) => refuse(s, local, raw, why),
        }
    }
}

/// The heartbeat: reads the state, the votes and the replicas seen.
async fn poll(s: &Shared, rejoin: bool, local: &mut Local) -> Step {
    let me = s.view.lock().me().to_string();
    let mut inv = POLL_SCRIPT.key(&s.keys.replicas);
    inv.key(&s.keys.state)
        .key(&s.keys.votes)
        .key(&s.keys.force)
        .arg(me)
        .arg(SEEN_FOR.as_millis() as u64);
    let (count, state, votes, force): (u64, Vec<u8>, Vec<Vec<u8>>, Vec<u8>) =
        s.link.run(&inv).await?;
    s.replicas.store(count, Ordering::Relaxed);
    s.metrics.set_replicas(count);
    s.see_state(opt(&state), rejoin);
    // An operator's command first (a forced state hides what the state machine does).
    if let Some(raw) = opt(&force) {
        match s.signer.open(raw) {
            Ok(Message::Force(f)) => {
                if let Err(why) = s.see_force(f, rejoin) {
                    refuse(s, local, raw, why);
                }
            }
            Ok(_) => refuse(s, local, raw, Refused::Malformed),
            Err(why) => refuse(s, local, raw, why),
        }
    }
    see_votes(s, &votes, local);
    let now = s.wall_ms();
    s.view.lock().prune(now);
    s.refresh_corroborate(now);
    // A message lost while the quorum was reached is caught up here.
    try_quorum(s).await
}

async fn on_message(s: &Shared, payload: &[u8], local: &mut Local) -> Step {
    match s.signer.open(payload) {
        Ok(Message::State(r)) => {
            // A genuine but older state on the channel is a replay: ignored (the key is
            // what counts, and the next read would say the same).
            if r.generation < s.view.lock().generation() {
                refuse(s, local, payload, Refused::Stale);
                return Ok(());
            }
            s.see_state(Some(payload), false);
            Ok(())
        }
        Ok(Message::Vote(v)) => {
            let mine = v.replica == s.view.lock().me();
            s.view.lock().see_vote(v);
            if mine {
                return Ok(());
            }
            let now = s.wall_ms();
            let (other, voted) = {
                let v = s.view.lock();
                (v.other_tripped(now), v.voted(now))
            };
            // Corroboration: this replica's latest call failed, within the window.
            let failed_at = s.last_failure_ms.load(Ordering::Acquire);
            if other && !voted && failed_at != 0 && now.saturating_sub(failed_at) <= s.window_ms() {
                return vote(s, failed_at, local).await;
            }
            s.refresh_corroborate(now);
            try_quorum(s).await
        }
        Ok(Message::Force(f)) => {
            if let Err(why) = s.see_force(f, false) {
                refuse(s, local, payload, why);
            }
            Ok(())
        }
        Err(why) => {
            refuse(s, local, payload, why);
            Ok(())
        }
    }
}

async fn on_cmd(s: &Shared, cmd: Cmd, local: &mut Local) -> Step {
    match cmd {
        // A trip queued while the session (re)connected counts only if it still stands.
        Cmd::Tripped(at) if s.trip_stands() => vote(s, at, local).await,
        Cmd::Tripped(_) => Ok(()),
        Cmd::Failed(at) => {
            let now = s.wall_ms();
            let go = {
                let v = s.view.lock();
                v.other_tripped(now) && !v.voted(now)
            };
            if go {
                vote(s, at, local).await
            } else {
                Ok(())
            }
        }
        Cmd::Report {
            key,
            token,
            generation,
            expected,
            ok,
            open,
        } => report(s, &key, &token, generation, &expected, ok, open).await,
        Cmd::Release { key, token } => {
            let mut inv = RELEASE.key(&key);
            inv.arg(&token);
            s.link.run::<i64>(&inv).await.map(drop)
        }
        Cmd::Broken(reason) => Err(reason),
        Cmd::Control(c) => {
            let me = s.view.lock().me().to_string();
            let r = super::force::publish(&s.link, &s.keys, &s.signer, c, &me, s.wall_ms()).await?;
            // Its own command: seen, not applied again when it comes back on the channel.
            s.force_seq.fetch_max(r.seq, Ordering::AcqRel);
            Ok(())
        }
    }
}

/// This replica's trip vote (tripped at `at`, wall ms), while the fleet has no open
/// decision: stored, published, and the quorum checked on the votes it answers with.
async fn vote(s: &Shared, at: u64, local: &mut Local) -> Step {
    let (me, record) = {
        let mut v = s.view.lock();
        if !v.may_vote() {
            return Ok(());
        }
        let mine = v.my_vote(at);
        let record = s.signer.vote(&mine);
        v.see_vote(mine);
        (v.me().to_string(), record)
    };
    let mut inv = VOTE.key(&s.keys.votes);
    inv.key(&s.keys.state)
        .arg(me)
        .arg(record)
        .arg(2 * s.window_ms().max(1))
        .arg(&s.keys.channel);
    let (state, votes): (Vec<u8>, Vec<Vec<u8>>) = s.link.run(&inv).await?;
    s.see_state(opt(&state), false);
    see_votes(s, &votes, local);
    s.refresh_corroborate(s.wall_ms());
    try_quorum(s).await
}

/// Opens the fleet when the quorum is reached (compare-and-set on the state this replica
/// saw; when another got there first, its record is what the reply holds).
async fn try_quorum(s: &Shared) -> Step {
    // The fleet stays open as long as this replica's own circuit chose to (a Retry-After
    // on its trip holds every replica), within what its configuration allows.
    let open_ms = s.open_ms(s.host.upgrade().and_then(|h| h.own_open_ms()));
    for _ in 0..2 {
        let now = s.wall_ms();
        let (record, expected) = {
            let v = s.view.lock();
            match v.quorum_open(now, open_ms) {
                Some(r) => (s.signer.state(&r), v.expected().to_vec()),
                None => return Ok(()),
            }
        };
        let mut inv = CAS.key(&s.keys.state);
        inv.arg(expected).arg(record).arg(&s.keys.channel);
        let (set, cur): (i64, Vec<u8>) = s.link.run(&inv).await?;
        s.see_state(opt(&cur), false);
        if set == 1 {
            return Ok(());
        }
    }
    Ok(())
}

/// A leased trial's outcome, against the state of its round.
async fn report(
    s: &Shared,
    key: &str,
    token: &str,
    generation: u64,
    expected: &[u8],
    ok: bool,
    open: Option<(u64, u32)>,
) -> Step {
    let now = s.wall_ms();
    let (open_ms, trials) = (s.open_ms(open.map(|o| o.0)), open.map_or(0, |o| o.1));
    let record = {
        let v = s.view.lock();
        s.signer
            .state(&v.trial_outcome(generation, ok, now, open_ms, trials))
    };
    let mut inv = REPORT.key(&s.keys.state);
    inv.key(key)
        .key(s.keys.successes(generation))
        .arg(expected)
        .arg(token)
        .arg(if ok { "ok" } else { "fail" })
        .arg(s.settings.trials)
        .arg(record)
        .arg(&s.keys.channel)
        .arg(ROUND_KEEP.as_millis() as u64);
    let (code, cur): (i64, Vec<u8>) = s.link.run(&inv).await?;
    if code != 2 {
        s.see_state(opt(&cur), false);
    }
    Ok(())
}

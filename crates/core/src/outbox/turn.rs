//! The delivery loop's side of the two stores: the fleet's turn on each pass of the loop
//! (take writes, renew claims, read the shared counts), the check before an attempt, and
//! how an attempt's end is written to the store.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backend::{blocking, ms, Backend, FleetSide};
use super::fleet::{self, Begin};
use super::sqlite::Stored;
use super::{Meta, Outbox};

impl Outbox {
    /// The fleet's periodic work, due or not, on each turn of the delivery loop: read the
    /// shared counts, renew claims (dropping writes taken over), forward writes this replica
    /// spilled (whatever the circuit says: this is Redis), and, while the circuit `admits`
    /// calls, take writes over from dead replicas and read new ones. Returns when the next
    /// piece is due (`None` for the embedded store: nothing to poll).
    pub async fn tick(&self, now: u64, admits: bool) -> Option<Duration> {
        let Backend::Fleet(f) = &self.backend else {
            return None;
        };
        let (stats_due, keep_due) = {
            let t = f.timers.lock();
            (now >= t.stats, now >= t.keep)
        };
        if stats_due {
            self.refresh_snapshot(f).await;
            f.timers.lock().stats = now + ms(fleet::STATS_EVERY);
            self.refresh_gauges(Some(now));
        }
        if keep_due {
            self.keep(f, now).await;
        }
        self.forward_spilled(f, now).await;
        if admits {
            self.take(f, now).await;
        }
        // Reading is due again only with room to hold more (else the loop would spin on a
        // read time long past while this replica is full).
        let room = f.held.lock().len() < self.capacity();
        let spilled = f.spill.as_ref().is_some_and(|sp| !sp.is_empty());
        let t = f.timers.lock();
        let mut next = t.stats.min(t.keep);
        if spilled {
            next = next.min(t.forward);
        }
        if admits {
            next = next.min(t.take_over);
            if room {
                next = next.min(t.read);
            }
        }
        Some(Duration::from_millis(next.saturating_sub(now)))
    }

    /// The breaker closed: the writes this replica holds and is not delivering are handed
    /// back, so another replica takes them over at its next look rather than after
    /// `outboxClaimIdleMs` (a rolling deploy does not delay them). A process that dies
    /// without closing leaves them to the claim idle time.
    pub async fn hand_back(&self) {
        let Backend::Fleet(f) = &self.backend else {
            return;
        };
        // Deliveries still running end at once (the breaker's calls settle with ESHUTDOWN)
        // and release their writes; those are handed back too. Durable calls in flight
        // queue their writes first, each within SHUTDOWN_QUEUE_TIMEOUT (`shutdown.rs`).
        self.quiesce(super::SHUTDOWN_QUEUE_TIMEOUT + Duration::from_secs(1))
            .await;
        let sids: Vec<String> = {
            let s = self.schedule.lock();
            let held = f.held.lock();
            held.iter()
                .filter(|(seq, _)| !s.is_in_flight(**seq))
                .map(|(_, h)| h.sid.clone())
                .collect()
        };
        if !sids.is_empty() {
            let _ = f.fleet.hand_back(&sids).await;
        }
        f.fleet.disconnect();
    }

    /// How many writes this replica holds at most before it reads more.
    fn capacity(&self) -> usize {
        fleet::HOLD_PER_SLOT * self.cfg.concurrency.max(1) as usize
    }

    async fn keep(&self, f: &FleetSide, now: u64) {
        let sids: Vec<(u64, String)> = f
            .held
            .lock()
            .iter()
            .map(|(seq, h)| (*seq, h.sid.clone()))
            .collect();
        let every = ms(f.fleet.claim_idle() / 3).max(1);
        if sids.is_empty() {
            f.timers.lock().keep = now + every;
            return;
        }
        let list: Vec<String> = sids.iter().map(|(_, s)| s.clone()).collect();
        match f.fleet.keep(&list).await {
            Ok(kept) => {
                // Taken over by another replica (this one stalled past the claim idle
                // time): no longer ours to deliver. One in flight finishes; its ack is
                // harmless (same Idempotency-Key, counted once).
                let mut s = self.schedule.lock();
                let mut held = f.held.lock();
                for (seq, sid) in sids {
                    if !kept.contains(&sid) && !s.is_in_flight(seq) {
                        s.remove(seq);
                        held.remove(&seq);
                    }
                }
                drop((s, held));
                f.timers.lock().keep = now + every;
            }
            // Redis unreachable: try again soon; past the idle time others take over.
            Err(_) => f.timers.lock().keep = now + every.min(ms(fleet::POLL)),
        }
    }

    async fn take(&self, f: &FleetSide, now: u64) {
        let capacity = self.capacity();
        let held = f.held.lock().len();
        let (read_due, take_due, mut cursor) = {
            let t = f.timers.lock();
            let fresh = f.fresh.load(Ordering::Acquire);
            (
                (fresh || now >= t.read) && held < capacity,
                now >= t.take_over,
                t.cursor.clone(),
            )
        };
        if !read_due && !take_due {
            return;
        }
        f.fresh.store(false, Ordering::Release);
        let read = if read_due { capacity - held } else { 0 };
        let take_over = if take_due { capacity } else { 0 };
        match f.fleet.intake(take_over, read, &mut cursor).await {
            Ok(got) => {
                let n = got.len();
                {
                    let mut s = self.schedule.lock();
                    let mut h = f.held.lock();
                    for (m, held) in got {
                        // Our own claim, taken back after Redis was out of reach: held already.
                        if h.contains_key(&m.seq) {
                            continue;
                        }
                        h.insert(m.seq, held);
                        s.insert(m);
                    }
                }
                let mut t = f.timers.lock();
                t.cursor = cursor;
                if read_due {
                    // A full batch: more may be waiting, read again on the next turn.
                    t.read = if n >= read {
                        now
                    } else {
                        now + ms(fleet::POLL)
                    };
                }
                if take_due {
                    t.take_over =
                        now + ms((f.fleet.claim_idle() / 2).min(fleet::TAKEOVER_EVERY)).max(1);
                }
                drop(t);
                if n > 0 {
                    self.wake.notify_one();
                }
            }
            Err(_) => {
                let mut t = f.timers.lock();
                t.read = now + ms(fleet::POLL) * 5;
                t.take_over = t.take_over.max(now + ms(fleet::POLL) * 5);
            }
        }
    }

    /// Before an attempt: for the fleet, is the write still this replica's and the oldest
    /// of its ordering key (the claim is renewed either way)?
    pub async fn begin(&self, m: &Meta) -> Begin {
        let Backend::Fleet(f) = &self.backend else {
            return Begin::Go;
        };
        let Some(sid) = f.held.lock().get(&m.seq).map(|h| h.sid.clone()) else {
            return Begin::Lost;
        };
        // Redis unreachable: not an attempt; wait and look again.
        f.fleet.begin(&sid, m).await.unwrap_or(Begin::Wait)
    }

    /// The write is no longer this replica's: forget it here.
    pub fn forget(&self, m: &Meta) {
        self.schedule.lock().remove(m.seq);
        if let Backend::Fleet(f) = &self.backend {
            f.held.lock().remove(&m.seq);
        }
    }

    /// A queued write's encoding and MAC.
    pub(super) async fn stored(&self, m: &Meta) -> Option<Stored> {
        match &self.backend {
            // On the blocking pool: the read may wait behind a commit's sync, and the I/O
            // thread runs every breaker's calls.
            Backend::Embedded(s) => {
                let (store, seq) = (s.clone(), m.seq);
                blocking("load", move || store.load(seq)).await.ok()?
            }
            Backend::Fleet(f) => f.held.lock().get(&m.seq).map(|h| h.stored.clone()),
        }
    }

    /// Delivered: out of the store. If that fails the write stays queued and is sent
    /// again, with the same key.
    pub(super) async fn store_delivered(&self, m: &Meta) {
        match &self.backend {
            Backend::Embedded(s) => {
                let _ = s.delete_async(m.seq).await;
            }
            Backend::Fleet(f) => {
                let sid = f.held.lock().remove(&m.seq).map(|h| h.sid);
                if let Some(sid) = sid {
                    let _ = f.fleet.done(&sid, m).await;
                }
            }
        }
    }

    /// Moves a write to the dead letters. `Some(true)`: moved; `Some(false)`: another
    /// replica finished it first; `None`: the store failed (try again later).
    pub(super) async fn store_bury(
        &self,
        m: &Meta,
        attempts: u32,
        reason: &'static str,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        now_ms: u64,
    ) -> Option<bool> {
        match &self.backend {
            Backend::Embedded(s) => {
                let (store, seq) = (s.clone(), m.seq);
                blocking("bury", move || {
                    store.bury(seq, attempts, reason, status, answer, now_ms)
                })
                .await
                .ok()
                .map(|()| true)
            }
            Backend::Fleet(f) => {
                let sid = f.held.lock().get(&m.seq).map(|h| h.sid.clone())?;
                let r = f
                    .fleet
                    .bury(&sid, m, attempts, reason, status, answer.as_deref(), now_ms)
                    .await
                    .ok();
                if r.is_some() {
                    f.held.lock().remove(&m.seq);
                }
                r
            }
        }
    }

    /// Not delivered: its new backoff, kept in the store.
    pub(super) async fn store_again(&self, m: &Meta, next: u64, attempts: u32, error: &str) {
        match &self.backend {
            Backend::Embedded(s) => {
                let (store, seq, err) = (s.clone(), m.seq, error.to_string());
                let _ = blocking("reschedule", move || {
                    store.reschedule(seq, next, attempts, Some(err))
                })
                .await;
            }
            Backend::Fleet(f) => {
                let _ = f.fleet.again(&m.id, attempts, next, error).await;
            }
        }
    }

    /// Claimed but not attempted: for the fleet, no longer marked in flight.
    pub(super) fn store_release(&self, m: &Meta) {
        if let Backend::Fleet(f) = &self.backend {
            let (fleet, id) = (f.fleet.clone(), m.id.clone());
            tokio::spawn(async move {
                let _ = fleet.release(&id).await;
            });
        }
    }
}

//! Forwarding spilled writes into the shared stream, on the delivery loop's turns
//! (`Outbox::tick`), whatever the circuit says (this is Redis, not DNAStore): oldest first,
//! in batches, each removed from the file only after Redis acknowledged it.

use std::sync::atomic::Ordering;

use super::super::backend::{ms, FleetSide};
use super::super::fleet::{self, Forwarded, Spilled};
use super::super::Outbox;

/// Writes per forward script, and about how many bytes.
const BATCH_ROWS: usize = 64;
const BATCH_BYTES: u64 = 1 << 20;
/// Batches per turn of the loop; more are forwarded on the next turn, at once.
const BATCHES_PER_TURN: usize = 16;

impl Outbox {
    /// Forwards what this replica spilled, if it is time to try. Returns how many writes
    /// were added to the stream.
    pub(in crate::outbox) async fn forward_spilled(&self, f: &FleetSide, now: u64) -> u64 {
        let Some(sp) = &f.spill else {
            return 0;
        };
        if sp.is_empty() || now < f.timers.lock().forward {
            return 0;
        }
        if !f.fleet.may_connect() {
            // The link is backing off after a failed connect: nothing to read from disk yet.
            f.timers.lock().forward = now + ms(fleet::POLL);
            return 0;
        }
        let ttl = ms(self.cfg.max_age);
        let mut added = 0;
        for _ in 0..BATCHES_PER_TURN {
            let batch = sp.claim(BATCH_ROWS, BATCH_BYTES);
            if batch.is_empty() {
                break;
            }
            let Some(loaded) = sp.stored(&batch).await else {
                // The file cannot be read now (a failing disk): try again later, in order.
                sp.put_back(&batch);
                f.timers.lock().forward = now + ms(fleet::POLL) * 5;
                break;
            };
            let writes: Vec<Spilled<'_>> = batch
                .iter()
                .zip(&loaded)
                .map(|(m, (blob, mac))| Spilled {
                    id: &m.id,
                    ordering_key: m.ordering_key.as_deref(),
                    created_at_ms: m.created_at_ms,
                    size: m.size,
                    blob,
                    mac: mac.as_deref(),
                })
                .collect();
            let answered = f
                .fleet
                .forward(&writes, self.cfg.max_entries, self.cfg.max_bytes, ttl)
                .await;
            drop(writes);
            let Ok(answers) = answered else {
                // Redis still cannot take them: look again soon (its link backs off itself).
                sp.put_back(&batch);
                f.timers.lock().forward = now + ms(fleet::POLL);
                break;
            };
            let (mut gone, mut stay) = (vec![], vec![]);
            for (m, a) in batch.into_iter().zip(&answers) {
                match a {
                    Forwarded::Added => {
                        added += 1;
                        gone.push(m);
                    }
                    Forwarded::Before => gone.push(m),
                    Forwarded::NoRoom => stay.push(m),
                }
            }
            sp.forwarded(&gone).await;
            if !stay.is_empty() {
                // The shared queue is full: they wait here, in order, until it has room.
                sp.put_back(&stay);
                f.timers.lock().forward = now + ms(fleet::POLL) * 5;
                break;
            }
        }
        if added > 0 {
            self.forwarded.fetch_add(added, Ordering::Relaxed);
            self.metrics.forwarded.inc_by(added);
            // Read the stream at once rather than at the next poll.
            f.fresh.store(true, Ordering::Release);
            self.wake.notify_one();
        }
        self.refresh_gauges(Some(now));
        added
    }
}

//! The delivery side of the fleet's queue: append, take (new writes and writes left by
//! dead replicas), check before an attempt, renew claims, and finish (delivered,
//! dead-lettered, tried again later, released). Each is one script or one pipeline.

use redis::{FromRedisValue, Value};

use super::link::Failure;
use super::{parse_state, scripts, seq_of, Begin, Fleet, Held, GROUP};
use crate::outbox::schedule::Meta;
use crate::outbox::SpillReason;

impl Fleet {
    /// Appends a write once Redis has it; `None` when the outbox is full. A failure says
    /// why (the write may then be spilled, `outbox/spill/`).
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue(
        &self,
        id: &str,
        ordering_key: Option<&str>,
        created_at_ms: u64,
        size: u64,
        blob: &[u8],
        mac: Option<&[u8]>,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<Option<String>, Failure> {
        let k = &self.keys;
        let mut inv = scripts::ENQUEUE.prepare_invoke();
        inv.key(&k.q)
            .key(&k.bytes)
            .key(&k.ids)
            .key(k.line(ordering_key))
            .key(k.forwarded(id))
            .arg(max_entries)
            .arg(max_bytes)
            .arg(size)
            .arg(id)
            .arg(blob)
            .arg(mac.unwrap_or_default())
            .arg(ordering_key.unwrap_or_default())
            .arg(created_at_ms);
        let reply = self.run_classified::<Vec<Value>>(&inv).await?;
        let odd = |m: String| Failure {
            message: m,
            reason: SpillReason::Error,
        };
        let (ok, sid): (i64, Option<String>) = match reply.as_slice() {
            [ok] => (
                i64::from_redis_value(ok.clone()).map_err(|e| odd(e.to_string()))?,
                None,
            ),
            [ok, sid] => (
                i64::from_redis_value(ok.clone()).map_err(|e| odd(e.to_string()))?,
                Some(String::from_redis_value(sid.clone()).map_err(|e| odd(e.to_string()))?),
            ),
            _ => {
                return Err(odd(
                    "outbox Redis: unexpected reply to the enqueue script".into()
                ))
            }
        };
        Ok(if ok == 1 { sid } else { None })
    }

    /// Takes writes for this replica: up to `take_over` left unrenewed by others (with the
    /// XAUTOCLAIM cursor, updated), then up to `read` new ones.
    pub async fn intake(
        &self,
        take_over: usize,
        read: usize,
        cursor: &mut String,
    ) -> Result<Vec<(Meta, Held)>, String> {
        type Raw = (
            String,
            String,
            Vec<u8>,
            Vec<u8>,
            String,
            String,
            String,
            String,
        );
        let mut inv = scripts::INTAKE.prepare_invoke();
        let idle = if take_over > 0 {
            self.claim_idle.as_millis() as u64
        } else {
            0
        };
        inv.key(&self.keys.q)
            .key(&self.keys.state)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(take_over.max(1))
            .arg(idle)
            .arg(cursor.as_str())
            .arg(read);
        let (next, raw): (String, Vec<Raw>) = self.run(&inv).await?;
        *cursor = next;
        Ok(raw
            .into_iter()
            .map(|(sid, id, blob, mac, k, t, sz, state)| {
                let (attempts, next_at_ms, _) = parse_state(&state);
                let meta = Meta {
                    seq: seq_of(&sid),
                    // A forged entry without an id is still addressable (and dead-lettered).
                    id: if id.is_empty() { sid.clone() } else { id },
                    ordering_key: Some(k).filter(|k| !k.is_empty()),
                    next_at_ms,
                    attempts,
                    size: sz.parse().unwrap_or(0),
                    created_at_ms: t.parse().unwrap_or(0),
                };
                let mac = (!mac.is_empty()).then_some(mac);
                (
                    meta,
                    Held {
                        sid,
                        stored: (blob, mac),
                    },
                )
            })
            .collect())
    }

    pub async fn begin(&self, sid: &str, m: &Meta) -> Result<Begin, String> {
        let mut inv = scripts::BEGIN.prepare_invoke();
        inv.key(&self.keys.q)
            .key(&self.keys.ids)
            .key(&self.keys.flight)
            .key(self.keys.line(m.ordering_key.as_deref()))
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(sid)
            .arg(&m.id);
        let r: String = self.run(&inv).await?;
        Ok(match r.as_str() {
            "go" => Begin::Go,
            "wait" => Begin::Wait,
            _ => Begin::Lost,
        })
    }

    /// True while a write of ordering key `k` is queued in the fleet (a newer one waits).
    pub async fn has_queued(&self, k: &str) -> Result<bool, String> {
        let n: i64 = self
            .query(redis::cmd("LLEN").arg(self.keys.line(Some(k))))
            .await?;
        Ok(n > 0)
    }

    /// Renews the claims on `sids`; returns those still this replica's.
    pub async fn keep(&self, sids: &[String]) -> Result<Vec<String>, String> {
        self.claims(sids, 0).await
    }

    /// Makes this replica's claims on `sids` look abandoned, so another replica takes them
    /// over at its next look (the breaker is closing).
    pub async fn hand_back(&self, sids: &[String]) -> Result<Vec<String>, String> {
        self.claims(sids, self.claim_idle.as_millis() as u64).await
    }

    async fn claims(&self, sids: &[String], idle_ms: u64) -> Result<Vec<String>, String> {
        let mut inv = scripts::KEEP.prepare_invoke();
        inv.key(&self.keys.q)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(idle_ms);
        for s in sids {
            inv.arg(s);
        }
        self.run(&inv).await
    }

    /// Delivered: out of the queue. False if another replica had finished it already.
    pub async fn done(&self, sid: &str, m: &Meta) -> Result<bool, String> {
        let k = &self.keys;
        let mut inv = scripts::DONE.prepare_invoke();
        inv.key(&k.q)
            .key(&k.ids)
            .key(&k.state)
            .key(&k.flight)
            .key(&k.bytes)
            .key(k.line(m.ordering_key.as_deref()))
            .arg(GROUP)
            .arg(sid)
            .arg(&m.id);
        self.run::<i64>(&inv).await.map(|n| n == 1)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn bury(
        &self,
        sid: &str,
        m: &Meta,
        attempts: u32,
        reason: &str,
        status: Option<u16>,
        answer: Option<&[u8]>,
        at_ms: u64,
    ) -> Result<bool, String> {
        let k = &self.keys;
        let mut inv = scripts::BURY.prepare_invoke();
        inv.key(&k.q)
            .key(&k.dead)
            .key(&k.ids)
            .key(&k.state)
            .key(&k.flight)
            .key(&k.bytes)
            .key(k.line(m.ordering_key.as_deref()))
            .arg(GROUP)
            .arg(sid)
            .arg(&m.id)
            .arg(reason)
            .arg(status.map(|s| s.to_string()).unwrap_or_default())
            .arg(answer.unwrap_or_default())
            .arg(at_ms)
            .arg(attempts);
        self.run::<i64>(&inv).await.map(|n| n == 1)
    }

    /// Not delivered this time: its backoff, kept for whoever holds it next.
    pub async fn again(
        &self,
        id: &str,
        attempts: u32,
        next_at_ms: u64,
        error: &str,
    ) -> Result<(), String> {
        let mut p = redis::pipe();
        p.hset(
            &self.keys.state,
            id,
            format!("{attempts}|{next_at_ms}|{error}"),
        )
        .ignore()
        .hdel(&self.keys.flight, id)
        .ignore();
        self.pipe::<()>(&p).await
    }

    /// Claimed but not attempted: no longer in flight.
    pub async fn release(&self, id: &str) -> Result<(), String> {
        self.query::<()>(redis::cmd("HDEL").arg(&self.keys.flight).arg(id))
            .await
    }
}

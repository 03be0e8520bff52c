//! The operator's side of the fleet's queue: list, dead letters, retry, discard and the
//! shared counts, read from the stream and the hashes.

use std::collections::HashMap;

use super::{parse_state, scripts, Discarded, Entries, Fleet, Row, Snapshot, GROUP};
use crate::outbox::sqlite::DeadRow;

impl Fleet {
    /// Where a write id is: `('q' | 'd', stream id, fields)`.
    async fn locate(&self, id: &str) -> Result<Option<(char, String, Fields)>, String> {
        let at: Option<String> = self
            .query(redis::cmd("HGET").arg(&self.keys.ids).arg(id))
            .await?;
        let Some((kind, sid)) = at.as_deref().and_then(|a| a.split_once(' ')) else {
            return Ok(None);
        };
        let stream = if kind == "d" {
            &self.keys.dead
        } else {
            &self.keys.q
        };
        let mut rows = self.range(stream, sid, sid, 1).await?;
        Ok(rows
            .pop()
            .map(|(_, f)| (kind.chars().next().unwrap_or('q'), sid.to_string(), f)))
    }

    async fn range(
        &self,
        stream: &str,
        from: &str,
        to: &str,
        count: usize,
    ) -> Result<Vec<(String, Fields)>, String> {
        let raw: Entries = self
            .query(
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        Ok(raw
            .into_iter()
            .map(|(sid, f)| (sid, Fields(f.into_iter().collect())))
            .collect())
    }

    /// A dead letter back at the end of the queue, its age counted from `now_ms`. False if
    /// there is none with `id`.
    pub async fn retry(&self, id: &str, now_ms: u64) -> Result<bool, String> {
        let Some(('d', sid, f)) = self.locate(id).await? else {
            return Ok(false);
        };
        let k = &self.keys;
        let mut inv = scripts::RETRY.prepare_invoke();
        inv.key(&k.q)
            .key(&k.dead)
            .key(&k.ids)
            .key(&k.bytes)
            .key(k.line(f.text("k").as_deref()))
            .arg(id)
            .arg(&sid)
            .arg(now_ms);
        self.run::<i64>(&inv).await.map(|n| n == 1)
    }

    /// Removes a queued write (unless a live replica is delivering it) or a dead letter.
    pub async fn discard(&self, id: &str) -> Result<Discarded, String> {
        let Some((kind, sid, f)) = self.locate(id).await? else {
            return Ok(Discarded::NotFound);
        };
        let k = &self.keys;
        let mut inv = scripts::DISCARD.prepare_invoke();
        inv.key(&k.q)
            .key(&k.dead)
            .key(&k.ids)
            .key(&k.state)
            .key(&k.flight)
            .key(&k.bytes)
            .key(k.line(f.text("k").as_deref()))
            .arg(GROUP)
            .arg(id)
            .arg(kind.to_string())
            .arg(&sid)
            .arg(self.claim_idle.as_millis() as u64);
        Ok(match self.run::<i64>(&inv).await? {
            1 => Discarded::Removed,
            -1 => Discarded::Busy,
            _ => Discarded::NotFound,
        })
    }

    /// Queued writes, oldest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<Row>, String> {
        let rows = self.range(&self.keys.q, "-", "+", limit).await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<String> = rows
            .iter()
            .map(|(_, f)| f.text("id").unwrap_or_default())
            .collect();
        let mut p = redis::pipe();
        p.cmd("HMGET").arg(&self.keys.state).arg(&ids);
        p.cmd("HMGET").arg(&self.keys.flight).arg(&ids);
        let (states, flights): (Vec<Option<String>>, Vec<Option<String>>) = self.pipe(&p).await?;
        Ok(rows
            .into_iter()
            .zip(ids)
            .zip(states.into_iter().zip(flights))
            .map(|(((sid, f), id), (state, flight))| {
                let (attempts, next_at_ms, last_error) =
                    parse_state(state.as_deref().unwrap_or(""));
                Row {
                    ordering_key: f.text("k").filter(|k| !k.is_empty()),
                    created_at_ms: f.number("t"),
                    blob: f.bytes("w"),
                    mac: Some(f.bytes("m")).filter(|m| !m.is_empty()),
                    sid,
                    id,
                    attempts,
                    next_at_ms,
                    last_error,
                    delivering: flight.is_some(),
                }
            })
            .collect())
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadRow>, String> {
        Ok(self
            .range(&self.keys.dead, "-", "+", limit)
            .await?
            .into_iter()
            .map(|(_, f)| DeadRow {
                id: f.text("id").unwrap_or_default(),
                reason: f.text("reason").unwrap_or_default(),
                status: f.text("status").and_then(|s| s.parse().ok()),
                answer: Some(f.bytes("answer")).filter(|a| !a.is_empty()),
                attempts: f.number("attempts") as u32,
                created_at_ms: f.number("t"),
                died_at_ms: f.number("died"),
                blob: f.bytes("w"),
            })
            .collect())
    }

    /// Writes some replica is attempting right now, fleet-wide.
    pub async fn in_flight(&self) -> Result<u64, String> {
        self.query(redis::cmd("HLEN").arg(&self.keys.flight)).await
    }

    /// The Redis URL without credentials, for messages.
    pub fn location(&self) -> String {
        self.link.client().spec().redacted()
    }

    /// The shared counts.
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        let mut p = redis::pipe();
        p.cmd("XLEN").arg(&self.keys.q);
        p.cmd("GET").arg(&self.keys.bytes);
        p.cmd("XLEN").arg(&self.keys.dead);
        p.cmd("XRANGE")
            .arg(&self.keys.q)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let (entries, bytes, dead, first): (u64, Option<u64>, u64, Entries) = self.pipe(&p).await?;
        Ok(Snapshot {
            entries,
            bytes: bytes.unwrap_or(0),
            dead,
            oldest_created_at_ms: first
                .into_iter()
                .next()
                .map(|(_, f)| Fields(f.into_iter().collect()).number("t")),
        })
    }
}

/// A stream entry's fields.
struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    fn bytes(&self, k: &str) -> Vec<u8> {
        self.0.get(k).cloned().unwrap_or_default()
    }

    fn text(&self, k: &str) -> Option<String> {
        self.0
            .get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn number(&self, k: &str) -> u64 {
        self.text(k).and_then(|t| t.parse().ok()).unwrap_or(0)
    }
}

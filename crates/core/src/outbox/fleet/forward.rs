//! Forwarding a replica's spilled writes into the shared stream (`outbox/spill/` keeps them
//! meanwhile): one script for a batch, each write added at most once (`scripts::FORWARD`).

use super::{scripts, Fleet};

/// A spilled write, as the stream will hold it.
pub struct Spilled<'a> {
    pub id: &'a str,
    pub ordering_key: Option<&'a str>,
    pub created_at_ms: u64,
    pub size: u64,
    pub blob: &'a [u8],
    pub mac: Option<&'a [u8]>,
}

/// What forwarding did with one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Added to the stream now.
    Added,
    /// In Redis already (forwarded before, or its live enqueue reached Redis after all):
    /// not added again.
    Before,
    /// The shared queue is full (`outboxMaxEntries` / `outboxMaxBytes`): still spilled.
    NoRoom,
}

impl Fleet {
    /// Forwards `writes` (oldest first); one answer per write, in order. `marker_ttl_ms`:
    /// how long Redis remembers each forwarded id (`outboxMaxAgeMs`: a write older than
    /// that is dead-lettered as expired rather than delivered, so a forward repeated after
    /// its marker lapsed is never sent).
    pub async fn forward(
        &self,
        writes: &[Spilled<'_>],
        max_entries: usize,
        max_bytes: u64,
        marker_ttl_ms: u64,
    ) -> Result<Vec<Forwarded>, String> {
        if writes.is_empty() {
            return Ok(vec![]);
        }
        let k = &self.keys;
        let mut inv = scripts::FORWARD.prepare_invoke();
        inv.key(&k.q).key(&k.bytes).key(&k.ids);
        for w in writes {
            inv.key(k.forwarded(w.id)).key(k.line(w.ordering_key));
        }
        inv.arg(max_entries)
            .arg(max_bytes)
            .arg(marker_ttl_ms.max(1));
        for w in writes {
            inv.arg(w.id)
                .arg(w.blob)
                .arg(w.mac.unwrap_or_default())
                .arg(w.ordering_key.unwrap_or_default())
                .arg(w.created_at_ms)
                .arg(w.size);
        }
        let got: Vec<i64> = self.run(&inv).await?;
        if got.len() != writes.len() {
            return Err("outbox Redis: unexpected reply to the forward script".into());
        }
        Ok(got
            .into_iter()
            .map(|n| match n {
                1 => Forwarded::Added,
                2 => Forwarded::Before,
                _ => Forwarded::NoRoom,
            })
            .collect())
    }
}

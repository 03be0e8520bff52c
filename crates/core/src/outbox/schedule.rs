//! Which queued writes may be delivered now: FIFO by sequence, and writes sharing an
//! ordering key one at a time, in order (only the oldest of a key is eligible, and not while
//! it is being delivered). Each eligible write waits until its `next_at` (its backoff).
//!
//! In memory, for the embedded store: rebuilt from the file at open, updated as the store
//! is. Claiming is O(log n) per write, however many writes wait behind a busy key.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// What scheduling needs to know of a queued write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub seq: u64,
    pub id: String,
    pub ordering_key: Option<String>,
    /// Wall-clock ms before which it is not attempted again.
    pub next_at_ms: u64,
    pub attempts: u32,
    pub size: u64,
    pub created_at_ms: u64,
}

#[derive(Default)]
pub struct Schedule {
    entries: BTreeMap<u64, Meta>,
    by_id: HashMap<String, u64>,
    /// Per ordering key, its writes oldest first; the front is the only eligible one.
    keyed: HashMap<String, VecDeque<u64>>,
    /// Eligible writes not yet due, by (next_at, seq).
    waiting: BTreeSet<(u64, u64)>,
    /// Eligible writes that are due, oldest first.
    ready: BTreeSet<u64>,
    in_flight: HashSet<u64>,
    bytes: u64,
    /// (created_at, seq) of every write: the oldest in O(log n). Sequence order is not
    /// creation order (a revived dead letter keeps its age; the fleet takes writes over).
    by_age: BTreeSet<(u64, u64)>,
}

impl Schedule {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn oldest_created_at_ms(&self) -> Option<u64> {
        self.by_age.first().map(|(at, _)| *at)
    }

    /// True while a write of ordering key `k` is queued (a newer write of it must wait).
    pub fn has_key(&self, k: &str) -> bool {
        self.keyed.contains_key(k)
    }

    pub fn get(&self, id: &str) -> Option<&Meta> {
        self.by_id.get(id).and_then(|s| self.entries.get(s))
    }

    pub fn is_in_flight(&self, seq: u64) -> bool {
        self.in_flight.contains(&seq)
    }

    /// Writes oldest first (for listing).
    pub fn iter(&self) -> impl Iterator<Item = &Meta> {
        self.entries.values()
    }

    fn make_eligible(&mut self, seq: u64) {
        if let Some(m) = self.entries.get(&seq) {
            self.waiting.insert((m.next_at_ms, seq));
        }
    }

    /// Adds a write. Usually the newest (the embedded store's always are); the fleet's may
    /// be older than some held already (taken over from a replica that died), so it goes
    /// into its key's line by `seq`. A write it displaces from the front stops being
    /// eligible; one displaced while being delivered finishes first.
    pub fn insert(&mut self, m: Meta) {
        let seq = m.seq;
        let eligible = match &m.ordering_key {
            None => true,
            Some(k) => {
                let q = self.keyed.entry(k.clone()).or_default();
                let at = q.partition_point(|s| *s < seq);
                q.insert(at, seq);
                match (at, q.get(1).copied()) {
                    (0, Some(old)) if self.in_flight.contains(&old) => false,
                    (0, Some(old)) => {
                        self.ready.remove(&old);
                        if let Some(o) = self.entries.get(&old) {
                            self.waiting.remove(&(o.next_at_ms, old));
                        }
                        true
                    }
                    (at, _) => at == 0,
                }
            }
        };
        self.bytes += m.size;
        self.by_age.insert((m.created_at_ms, seq));
        self.by_id.insert(m.id.clone(), seq);
        self.entries.insert(seq, m);
        if eligible {
            self.make_eligible(seq);
        }
    }

    /// Up to `max` writes due at `now`, oldest first, marked in flight.
    pub fn claim(&mut self, now_ms: u64, max: usize) -> Vec<Meta> {
        while let Some(&(at, seq)) = self.waiting.first() {
            if at > now_ms {
                break;
            }
            self.waiting.pop_first();
            self.ready.insert(seq);
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(seq) = self.ready.pop_first() else {
                break;
            };
            self.in_flight.insert(seq);
            if let Some(m) = self.entries.get(&seq) {
                out.push(m.clone());
            }
        }
        out
    }

    /// The earliest `next_at` of an eligible write that is not yet due.
    pub fn next_due_ms(&self) -> Option<u64> {
        if !self.ready.is_empty() {
            return Some(0);
        }
        self.waiting.first().map(|(at, _)| *at)
    }

    /// A write left the queue (delivered, dead-lettered, discarded): the next write of its
    /// ordering key becomes eligible.
    pub fn remove(&mut self, seq: u64) -> Option<Meta> {
        let m = self.entries.remove(&seq)?;
        self.by_id.remove(&m.id);
        self.bytes -= m.size;
        self.by_age.remove(&(m.created_at_ms, seq));
        self.in_flight.remove(&seq);
        self.ready.remove(&seq);
        self.waiting.remove(&(m.next_at_ms, seq));
        if let Some(k) = &m.ordering_key {
            let mut front = None;
            if let Some(q) = self.keyed.get_mut(k) {
                q.retain(|s| *s != seq);
                front = q.front().copied();
                if q.is_empty() {
                    self.keyed.remove(k);
                }
            }
            if let Some(n) = front {
                self.make_front_eligible(n);
            }
        }
        Some(m)
    }

    /// The front of a key's line may go (unless it is going already).
    fn make_front_eligible(&mut self, seq: u64) {
        if !self.in_flight.contains(&seq) && !self.ready.contains(&seq) {
            self.make_eligible(seq);
        }
    }

    /// The front of `seq`'s key when `seq` no longer is (an older write came in meanwhile).
    fn displaced_by(&self, seq: u64) -> Option<u64> {
        let k = self.entries.get(&seq)?.ordering_key.as_ref()?;
        let front = *self.keyed.get(k)?.front()?;
        (front != seq).then_some(front)
    }

    /// A write in flight stays queued and is tried again at `next_at` (after `attempts`).
    pub fn reschedule(&mut self, seq: u64, next_at_ms: u64, attempts: u32) {
        if !self.in_flight.remove(&seq) {
            return;
        }
        if let Some(m) = self.entries.get_mut(&seq) {
            m.next_at_ms = next_at_ms;
            m.attempts = attempts;
        }
        match self.displaced_by(seq) {
            Some(front) => self.make_front_eligible(front),
            None => self.make_eligible(seq),
        }
    }

    /// A write claimed but not attempted (the circuit opened first): due again at once.
    pub fn release(&mut self, seq: u64) {
        if self.in_flight.remove(&seq) {
            match self.displaced_by(seq) {
                Some(front) => self.make_front_eligible(front),
                None => {
                    self.ready.insert(seq);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64, key: Option<&str>) -> Meta {
        Meta {
            seq,
            id: format!("id{seq}"),
            ordering_key: key.map(str::to_string),
            next_at_ms: 0,
            attempts: 0,
            size: 10,
            created_at_ms: 100 + seq,
        }
    }

    fn seqs(v: &[Meta]) -> Vec<u64> {
        v.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn fifo_and_one_at_a_time_per_ordering_key() {
        let mut s = Schedule::default();
        s.insert(meta(1, Some("/a")));
        s.insert(meta(2, None));
        s.insert(meta(3, Some("/a")));
        s.insert(meta(4, Some("/b")));
        s.insert(meta(5, None));
        //                               1:/a  2  3:/a (behind 1)  4:/b  5
        assert_eq!(seqs(&s.claim(0, 10)), [1, 2, 4, 5]);
        assert!(s.claim(0, 10).is_empty(), "3 waits for 1");
        s.remove(1);
        assert_eq!(seqs(&s.claim(0, 10)), [3]);
        assert_eq!((s.len(), s.bytes(), s.in_flight()), (4, 40, 4));
    }

    #[test]
    fn a_failed_head_holds_its_key_until_its_backoff_ends() {
        let mut s = Schedule::default();
        s.insert(meta(1, Some("/a")));
        s.insert(meta(2, Some("/a")));
        s.insert(meta(3, None));
        assert_eq!(seqs(&s.claim(0, 1)), [1]);
        s.reschedule(1, 500, 1);
        assert_eq!(seqs(&s.claim(100, 10)), [3], "2 must not overtake 1");
        assert_eq!(s.next_due_ms(), Some(500));
        assert_eq!(seqs(&s.claim(500, 10)), [1]);
        assert_eq!(s.get("id1").map(|m| m.attempts), Some(1));
        s.remove(1);
        assert_eq!(seqs(&s.claim(500, 10)), [2]);
    }

    #[test]
    fn an_older_write_taken_over_goes_before_newer_ones_of_its_key() {
        let mut s = Schedule::default();
        s.insert(meta(5, Some("/k")));
        s.insert(meta(9, Some("/j")));
        assert_eq!(seqs(&s.claim(0, 10)), [5, 9]);
        s.insert(meta(7, Some("/j"))); // older than 9, which is being delivered: finishes first
        s.insert(meta(3, Some("/k"))); // older than 5, which is released below
        s.release(5);
        s.insert(meta(2, Some("/k")));
        //                                   /k: 2 3 5    /j: 9 (busy) 7
        assert_eq!(seqs(&s.claim(0, 10)), [2]);
        s.remove(2);
        assert_eq!(seqs(&s.claim(0, 10)), [3]);
        s.remove(9);
        s.remove(3);
        assert_eq!(seqs(&s.claim(0, 10)), [5, 7]);
        assert!(s.claim(0, 10).is_empty());
    }

    #[test]
    fn released_claims_come_back_first_and_discarding_a_middle_write_keeps_order() {
        let mut s = Schedule::default();
        for i in 1..=3 {
            s.insert(meta(i, Some("/k")));
        }
        s.insert(meta(4, None));
        assert_eq!(seqs(&s.claim(0, 10)), [1, 4]);
        s.release(1);
        s.release(4);
        s.remove(2); // discarded while waiting behind 1
        assert_eq!(seqs(&s.claim(0, 10)), [1, 4]);
        s.remove(1);
        assert_eq!(seqs(&s.claim(0, 10)), [3]);
        assert_eq!(s.oldest_created_at_ms(), Some(103));
    }
}

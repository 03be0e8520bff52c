//! What one replica knows of the fleet, and the protocol's decisions on it: which state
//! record to follow (generations only grow; a refused or older record is no decision),
//! the trip votes within the quorum window, when the quorum is reached, and the records a
//! replica proposes (an open by quorum, a trial's outcome). Pure: wall-clock time comes in
//! as an argument, so the unit tests drive it by hand.

use std::collections::HashMap;

use super::record::{Message, Refused, Signer, StateRecord, VoteRecord};
use crate::observer::FleetWhy;

/// What reading the state key (or a published state) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A decision newer than any seen: apply it.
    New(StateRecord),
    /// The decision already known. `back`: it had been out of sight (the key was missing
    /// or refused, or the replica just reconnected), so the replica follows it again.
    Same { record: StateRecord, back: bool },
    /// No decision: the key is missing, or holds a record that was refused (`Some`, the
    /// first time this value is seen). Each replica decides alone.
    Nothing(Option<Refused>),
}

#[derive(Debug)]
pub struct View {
    me: String,
    quorum: u32,
    /// `rollingCountTimeout`: how long a vote counts.
    window_ms: u64,
    /// The state key's value as last seen (`None`: missing): what compare-and-set expects.
    raw: Option<Vec<u8>>,
    /// The decision the key holds now; `None` while it holds none.
    current: Option<StateRecord>,
    /// The last decision followed (survives a gap in `current`).
    last: Option<StateRecord>,
    /// The highest generation of any genuine record or vote seen.
    high: u64,
    /// Genuine votes, the latest per replica.
    votes: HashMap<String, VoteRecord>,
    /// When, on this replica's wall clock, the round of the open decision `last` starts at
    /// the latest: the longest open period its own configuration allows after the replica
    /// learned it (`learned`), so a decision stamped by a host whose clock is ahead holds no
    /// replica's trials longer than its own circuit could stay open (`FleetHost::fleet_open`
    /// caps it the same way).
    round_by: Option<u64>,
}

impl View {
    pub fn new(me: &str, quorum: u32, window_ms: u64) -> Self {
        Self {
            me: me.to_string(),
            quorum: quorum.max(1),
            window_ms,
            raw: None,
            current: None,
            last: None,
            high: 0,
            votes: HashMap::new(),
            round_by: None,
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// What compare-and-set scripts expect the state key to hold ("" for missing).
    pub fn expected(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(b"")
    }

    pub fn current(&self) -> Option<&StateRecord> {
        self.current.as_ref()
    }

    pub fn generation(&self) -> u64 {
        self.high
    }

    /// Forgets that the current decision is being followed (a disconnect): the next read
    /// of the same record says `back`.
    pub fn lose_sight(&mut self) {
        self.raw = None;
        self.current = None;
    }

    /// The state key holds `raw` (`None`: missing).
    pub fn see_state(&mut self, raw: Option<&[u8]>, signer: &Signer) -> Seen {
        let changed = self.raw.as_deref() != raw;
        if !changed {
            return match &self.current {
                Some(r) => Seen::Same {
                    record: r.clone(),
                    back: false,
                },
                None => Seen::Nothing(None),
            };
        }
        self.raw = raw.map(<[u8]>::to_vec);
        let Some(bytes) = raw else {
            self.current = None;
            return Seen::Nothing(None);
        };
        let r = match signer.open(bytes) {
            Ok(Message::State(r)) => r,
            Ok(Message::Vote(_) | Message::Force(_)) => {
                self.current = None;
                return Seen::Nothing(Some(Refused::Malformed));
            }
            Err(why) => {
                self.current = None;
                return Seen::Nothing(Some(why));
            }
        };
        if r.generation < self.high {
            // Older than what this replica knows (a replay, or a Redis that lost writes):
            // never followed, never allowed to close anything.
            self.current = None;
            return Seen::Nothing(Some(Refused::Stale));
        }
        if r.generation == self.high && self.last.as_ref() == Some(&r) {
            self.current = Some(r.clone());
            return Seen::Same {
                record: r,
                back: true,
            };
        }
        self.high = r.generation;
        self.current = Some(r.clone());
        self.last = Some(r.clone());
        self.round_by = None;
        Seen::New(r)
    }

    /// A genuine vote (from the hash, a message, or this replica's own).
    pub fn see_vote(&mut self, v: VoteRecord) {
        self.high = self.high.max(v.generation);
        match self.votes.get(&v.replica) {
            Some(old) if (old.generation, old.at_ms) >= (v.generation, v.at_ms) => {}
            _ => {
                self.votes.insert(v.replica.clone(), v);
            }
        }
    }

    /// Whether a trip vote means anything now: the fleet has no open decision.
    pub fn may_vote(&self) -> bool {
        self.current.as_ref().is_none_or(|r| !r.open)
    }

    fn live(&self, v: &VoteRecord, now_ms: u64) -> bool {
        // A vote stamped ahead of this replica's clock counts only within the window too
        // (clocks of replicas on other hosts differ a little).
        v.generation == self.high
            && now_ms.saturating_sub(v.at_ms) <= self.window_ms
            && v.at_ms.saturating_sub(now_ms) <= self.window_ms
    }

    /// Live votes, oldest first.
    pub fn live_votes(&self, now_ms: u64) -> Vec<&VoteRecord> {
        let mut v: Vec<&VoteRecord> = self
            .votes
            .values()
            .filter(|v| self.live(v, now_ms))
            .collect();
        v.sort_by(|a, b| (a.at_ms, &a.replica).cmp(&(b.at_ms, &b.replica)));
        v
    }

    /// Another replica tripped within the window while the fleet is closed: one failure
    /// of this replica's own calls corroborates it.
    pub fn other_tripped(&self, now_ms: u64) -> bool {
        self.may_vote()
            && self
                .votes
                .values()
                .any(|v| v.replica != self.me && self.live(v, now_ms))
    }

    /// Whether this replica's own vote is live.
    pub fn voted(&self, now_ms: u64) -> bool {
        self.votes
            .get(&self.me)
            .is_some_and(|v| self.live(v, now_ms))
    }

    /// This replica's vote, tripped at `now_ms`, against the fleet's generation.
    pub fn my_vote(&self, now_ms: u64) -> VoteRecord {
        VoteRecord {
            generation: self.high,
            replica: self.me.clone(),
            at_ms: now_ms,
        }
    }

    /// The open this replica proposes when the quorum is reached: only a replica that
    /// voted itself proposes (the others would only race it), and only while the fleet
    /// has no open decision. The replica that tripped first is named; the fleet stays open
    /// `open_ms`, the period the proposing replica's circuit chose (at least resetTimeout,
    /// longer when a Retry-After holds it).
    pub fn quorum_open(&self, now_ms: u64, open_ms: u64) -> Option<StateRecord> {
        if !self.may_vote() || !self.voted(now_ms) {
            return None;
        }
        let live = self.live_votes(now_ms);
        if (live.len() as u64) < u64::from(self.quorum) {
            return None;
        }
        Some(StateRecord {
            generation: self.high + 1,
            open: true,
            until_ms: now_ms + open_ms,
            at_ms: now_ms,
            by: live[0].replica.clone(),
            why: FleetWhy::Quorum,
            votes: live.len() as u32,
            trials: 0,
        })
    }

    /// The record a leased trial of the round of `generation` proposes: closed after
    /// success (the growth of the open period ends fleet-wide), open again after a failure
    /// for `open_ms`, the period the trial's circuit chose (grown by `trials` failed trials
    /// in a row, or held by a Retry-After).
    pub fn trial_outcome(
        &self,
        generation: u64,
        ok: bool,
        now_ms: u64,
        open_ms: u64,
        trials: u32,
    ) -> StateRecord {
        StateRecord {
            generation: generation + 1,
            open: !ok,
            until_ms: if ok { 0 } else { now_ms + open_ms },
            at_ms: now_ms,
            by: self.me.clone(),
            why: if ok {
                FleetWhy::TrialsSucceeded
            } else {
                FleetWhy::TrialFailed
            },
            votes: 0,
            trials: if ok { 0 } else { trials },
        }
    }

    /// Whether the fleet's round of half-open trials is on: the fleet is open and its open
    /// period is over.
    pub fn round_on(&self, now_ms: u64) -> bool {
        self.current.as_ref().is_some_and(|r| {
            r.open && (r.until_ms <= now_ms || self.round_by.is_some_and(|t| t <= now_ms))
        })
    }

    /// This replica follows the current decision from `now_ms` on: if it is open, its round
    /// starts `max_ms` (the longest open period its configuration allows) from now at the
    /// latest, whatever the deciding host's clock says (the first time it is followed counts).
    pub fn learned(&mut self, now_ms: u64, max_ms: u64) {
        if self.current.as_ref().is_some_and(|r| r.open) {
            let by = now_ms.saturating_add(max_ms);
            self.round_by = Some(self.round_by.map_or(by, |t| t.min(by)));
        }
    }

    /// Votes that can no longer count are forgotten (bounded by the fleet's size anyway).
    pub fn prune(&mut self, now_ms: u64) {
        let (high, w) = (self.high, self.window_ms);
        self.votes
            .retain(|_, v| v.generation == high && now_ms.saturating_sub(v.at_ms) <= 2 * w);
    }
}

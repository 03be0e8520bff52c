//! Unit tests of the fleet protocol: the quorum window, corroboration, which state records
//! are followed (generations, forgeries, replays, a missing key), the records a replica
//! proposes. Pure: wall-clock time is an argument, moved by hand.

use super::record::{Message, Refused, Signer, StateRecord, VoteRecord};
use super::view::{Seen, View};
use crate::observer::FleetWhy;

const WINDOW: u64 = 10_000;
const RESET: u64 = 1_000;

fn signer() -> Signer {
    Signer::new("dnastore", Some("s3cret"))
}

fn vote(replica: &str, generation: u64, at_ms: u64) -> VoteRecord {
    VoteRecord {
        generation,
        replica: replica.into(),
        at_ms,
    }
}

fn closed(generation: u64) -> StateRecord {
    StateRecord {
        generation,
        open: false,
        until_ms: 0,
        at_ms: 5,
        by: "b".into(),
        why: FleetWhy::TrialsSucceeded,
        votes: 0,
        trials: 0,
    }
}

fn opened(generation: u64, until_ms: u64) -> StateRecord {
    StateRecord {
        generation,
        open: true,
        until_ms,
        at_ms: until_ms - RESET,
        by: "a".into(),
        why: FleetWhy::Quorum,
        votes: 2,
        trials: 0,
    }
}

#[test]
fn quorum_needs_distinct_replicas_within_one_window() {
    let mut v = View::new("a", 2, WINDOW);
    v.see_vote(vote("a", 0, 1_000));
    assert_eq!(v.quorum_open(1_000, RESET), None, "one vote is no quorum");
    // The same replica voting again is still one replica.
    v.see_vote(vote("a", 0, 1_500));
    assert_eq!(v.quorum_open(1_500, RESET), None);
    v.see_vote(vote("b", 0, 2_000));
    let open = v
        .quorum_open(2_000, RESET)
        .expect("two replicas within the window");
    assert_eq!(open.generation, 1);
    assert!(open.open);
    assert_eq!(open.until_ms, 2_000 + RESET);
    assert_eq!(open.votes, 2);
    // The first to trip is named.
    assert_eq!(open.by, "a");
    assert_eq!(open.why, FleetWhy::Quorum);
}

#[test]
fn a_vote_older_than_the_window_does_not_count() {
    let mut v = View::new("b", 2, WINDOW);
    v.see_vote(vote("a", 0, 1_000));
    v.see_vote(vote("b", 0, 1_000 + WINDOW + 1));
    assert_eq!(v.quorum_open(1_000 + WINDOW + 1, RESET), None);
    assert_eq!(v.live_votes(1_000 + WINDOW + 1).len(), 1);
    // At the window's edge it still counts.
    let mut v = View::new("b", 2, WINDOW);
    v.see_vote(vote("a", 0, 1_000));
    v.see_vote(vote("b", 0, 1_000 + WINDOW));
    assert!(v.quorum_open(1_000 + WINDOW, RESET).is_some());
}

#[test]
fn votes_of_an_earlier_generation_do_not_count() {
    let s = signer();
    let mut v = View::new("b", 2, WINDOW);
    // Votes that opened the fleet at generation 1...
    v.see_vote(vote("a", 0, 1_000));
    v.see_vote(vote("b", 0, 1_000));
    // ...then it closed again (generation 2): they must not reopen it.
    let c = s.state(&closed(2));
    assert!(matches!(v.see_state(Some(c.as_bytes()), &s), Seen::New(_)));
    assert_eq!(v.quorum_open(1_200, RESET), None);
    assert!(!v.other_tripped(1_200));
    v.see_vote(vote("a", 2, 1_300));
    v.see_vote(vote("b", 2, 1_300));
    assert_eq!(v.quorum_open(1_300, RESET).map(|r| r.generation), Some(3));
}

#[test]
fn only_a_replica_that_voted_proposes_the_open() {
    let mut v = View::new("c", 2, WINDOW);
    v.see_vote(vote("a", 0, 1_000));
    v.see_vote(vote("b", 0, 1_000));
    assert_eq!(
        v.quorum_open(1_000, RESET),
        None,
        "c did not vote: it only follows"
    );
}

#[test]
fn a_fleet_of_one_never_opens_the_fleet_above_quorum_one() {
    let mut v = View::new("a", 2, WINDOW);
    for t in 0..100 {
        v.see_vote(vote("a", 0, t * 500));
        assert_eq!(v.quorum_open(t * 500, RESET), None);
    }
    let mut v = View::new("a", 1, WINDOW);
    v.see_vote(vote("a", 0, 500));
    assert!(
        v.quorum_open(500, RESET).is_some(),
        "quorum 1: its own trip opens it"
    );
}

#[test]
fn corroboration_is_asked_only_while_another_replica_tripped_and_the_fleet_is_closed() {
    let s = signer();
    let mut v = View::new("b", 2, WINDOW);
    assert!(!v.other_tripped(1_000));
    v.see_vote(vote("b", 0, 1_000));
    assert!(
        !v.other_tripped(1_000),
        "its own vote asks nothing of itself"
    );
    v.see_vote(vote("a", 0, 1_100));
    assert!(v.other_tripped(1_100));
    assert!(!v.other_tripped(1_100 + WINDOW + 1), "expired");
    // While the fleet is open, votes mean nothing.
    let o = s.state(&opened(1, 5_000));
    v.see_state(Some(o.as_bytes()), &s);
    assert!(!v.may_vote());
    assert!(!v.other_tripped(1_200));
}

#[test]
fn generations_only_grow_and_an_older_record_is_no_decision() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    let g3 = s.state(&opened(3, 9_000));
    assert!(matches!(v.see_state(Some(g3.as_bytes()), &s), Seen::New(r) if r.generation == 3));
    assert_eq!(v.expected(), g3.as_bytes());
    // Read again: the same decision.
    assert!(matches!(
        v.see_state(Some(g3.as_bytes()), &s),
        Seen::Same { back: false, .. }
    ));
    // A genuine record of generation 2 (a replay, a Redis that lost writes): refused as
    // stale, and followed by nothing; compare-and-set now expects it.
    let g2 = s.state(&closed(2));
    assert_eq!(
        v.see_state(Some(g2.as_bytes()), &s),
        Seen::Nothing(Some(Refused::Stale))
    );
    assert_eq!(v.current(), None);
    assert_eq!(v.expected(), g2.as_bytes());
    // The next proposal overwrites it with a newer generation than any seen.
    v.see_vote(vote("a", 3, 9_500));
    assert_eq!(v.trial_outcome(3, true, 9_600, RESET, 0).generation, 4);
    // The genuine generation-3 record back: followed again (`back`).
    assert!(matches!(
        v.see_state(Some(g3.as_bytes()), &s),
        Seen::Same { back: true, .. }
    ));
}

#[test]
fn a_missing_or_forged_state_closes_nothing() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    let g5 = s.state(&opened(5, 9_000));
    v.see_state(Some(g5.as_bytes()), &s);
    // The key deleted: no decision (the replica keeps its own circuit's state).
    assert_eq!(v.see_state(None, &s), Seen::Nothing(None));
    assert_eq!(v.expected(), b"");
    // A forged "closed" with a higher generation, written without the secret.
    let forged = Signer::new("dnastore", None).state(&closed(99));
    assert_eq!(
        v.see_state(Some(forged.as_bytes()), &s),
        Seen::Nothing(Some(Refused::Signature))
    );
    // Counted once: the same value read again is not refused again.
    assert_eq!(
        v.see_state(Some(forged.as_bytes()), &s),
        Seen::Nothing(None)
    );
    // The forgery did not move the generation: a later genuine record of generation 6
    // is followed.
    assert_eq!(v.generation(), 5);
    let g6 = s.state(&closed(6));
    assert!(matches!(v.see_state(Some(g6.as_bytes()), &s), Seen::New(_)));
}

#[test]
fn the_round_is_on_when_the_fleets_open_period_ends() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    let o = s.state(&opened(1, 2_000));
    v.see_state(Some(o.as_bytes()), &s);
    assert!(!v.round_on(1_999));
    assert!(v.round_on(2_000));
    let fail = v.trial_outcome(1, false, 2_100, RESET, 0);
    assert_eq!(
        (fail.generation, fail.open, fail.until_ms),
        (2, true, 3_100)
    );
    assert_eq!(fail.why, FleetWhy::TrialFailed);
    assert_eq!(fail.by, "a");
    let ok = v.trial_outcome(1, true, 2_100, RESET, 0);
    assert_eq!((ok.generation, ok.open), (2, false));
    assert_eq!(ok.why, FleetWhy::TrialsSucceeded);
}

#[test]
fn a_failed_trial_carries_its_circuits_open_period_and_a_success_ends_the_growth() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    let o = s.state(&opened(1, 2_000));
    v.see_state(Some(o.as_bytes()), &s);
    // The trial's circuit chose 1.7 s after its second failed trial in a row.
    let fail = v.trial_outcome(1, false, 2_100, 1_700, 2);
    assert_eq!((fail.until_ms, fail.trials), (3_800, 2));
    let back = s.state(&fail);
    assert!(matches!(s.open(back.as_bytes()), Ok(Message::State(r)) if r.trials == 2));
    let ok = v.trial_outcome(1, true, 2_100, 1_700, 2);
    assert_eq!((ok.until_ms, ok.trials), (0, 0));
}

#[test]
fn a_decision_starts_its_round_within_the_longest_open_period_of_this_replica() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    // Stamped by a host an hour ahead.
    let o = s.state(&opened(1, 3_600_000));
    v.see_state(Some(o.as_bytes()), &s);
    v.learned(1_000, 2_500);
    assert!(!v.round_on(3_499));
    assert!(v.round_on(3_500));
}

#[test]
fn lost_sight_after_a_disconnect_the_same_record_is_followed_again() {
    let s = signer();
    let mut v = View::new("a", 2, WINDOW);
    let o = s.state(&opened(1, 2_000));
    v.see_state(Some(o.as_bytes()), &s);
    v.lose_sight();
    assert!(
        v.may_vote(),
        "no decision while disconnected: trips are votes again"
    );
    assert!(matches!(
        v.see_state(Some(o.as_bytes()), &s),
        Seen::Same { back: true, .. }
    ));
}

#[test]
fn votes_are_kept_per_replica_latest_first_and_pruned() {
    let mut v = View::new("a", 3, WINDOW);
    v.see_vote(vote("b", 0, 3_000));
    v.see_vote(vote("b", 0, 2_000)); // an older one arriving late changes nothing
    v.see_vote(vote("c", 0, 2_500));
    let live: Vec<_> = v
        .live_votes(3_000)
        .iter()
        .map(|v| v.replica.clone())
        .collect();
    assert_eq!(live, ["c", "b"]);
    v.prune(3_000 + 3 * WINDOW);
    assert!(v.live_votes(3_000 + 3 * WINDOW).is_empty());
}

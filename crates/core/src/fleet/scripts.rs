//! The fleet circuit's keys and scripts. Every key of one breaker's fleet carries the hash
//! tag `{<name>}`, so in a Cluster they share one slot and a script may touch them all.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `dnastore:fleet:{name}:state` | string | the fleet state record (no expiry) |
//! | `dnastore:fleet:{name}:votes` | hash | replica -> its latest trip vote (expires 2 windows after the last vote) |
//! | `dnastore:fleet:{name}:replicas` | sorted set | replica -> last heartbeat, Redis time (replicas seen) |
//! | `dnastore:fleet:{name}:lease:<generation>:<i>` | string | trial lease `i` of a round: its holder's token (expires with the trial), or `done` after a success |
//! | `dnastore:fleet:{name}:ok:<generation>` | string | successful trials of a round |
//! | `dnastore:fleet:{name}:force` | string | the latest operator's command (`force.rs`; no expiry) |
//!
//! Changes are published on `dnastore:fleet:{name}:events` (a plain channel: a Cluster
//! broadcasts it to every node). Redis verifies nothing: scripts compare and set whole
//! records, which the replicas sign and verify (`record.rs`).

use redis::Script;
use std::sync::LazyLock;

pub struct Keys {
    prefix: String,
    pub state: String,
    pub votes: String,
    pub replicas: String,
    pub channel: String,
    pub force: String,
}

impl Keys {
    pub fn new(name: &str) -> Self {
        let prefix = format!("dnastore:fleet:{{{name}}}");
        let k = |s: &str| format!("{prefix}:{s}");
        Self {
            state: k("state"),
            votes: k("votes"),
            replicas: k("replicas"),
            channel: k("events"),
            force: k("force"),
            prefix,
        }
    }

    /// Trial lease `i` (1-based) of the round that follows the open of `generation`.
    pub fn lease(&self, generation: u64, i: u32) -> String {
        format!("{}:lease:{generation}:{i}", self.prefix)
    }

    pub fn successes(&self, generation: u64) -> String {
        format!("{}:ok:{generation}", self.prefix)
    }
}

/// A replica's trip vote: stored, published, and answered with the state and every vote.
/// KEYS: votes, state. ARGV: replica, vote record, votes' ttl (ms), channel.
pub static VOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {redis.call('GET', KEYS[2]) or '', redis.call('HVALS', KEYS[1])}
",
    )
});

/// Compare-and-set of the state: `{1, new}` when the key held exactly `expected` ('' for
/// missing), else `{0, what it holds}`. KEYS: state. ARGV: expected, new record, channel.
pub static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {1, ARGV[2]}
",
    )
});

/// A trial lease of the current round: `{1, i}` (lease i is the caller's for ttl ms),
/// `{0, ms}` (every lease is held; the first frees in ms, -1 when none expires), or
/// `{-1, state}` (the state is no longer `expected`: the round is over).
/// KEYS: state, lease 1..n. ARGV: expected, token, ttl (ms).
pub static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {-1, cur} end
local wait = -1
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[3]) then return {1, tostring(i - 1)} end
  local t = redis.call('PTTL', KEYS[i])
  if t > 0 and (wait < 0 or t < wait) then wait = t end
end
return {0, tostring(wait)}
",
    )
});

/// A leased trial's outcome. A failure sets the given open record at once. A success
/// marks the lease done and counts; the count reaching `n` sets the given closed record.
/// Answers `{1, record}` (set), `{2, ''}` (counted, the round goes on) or `{0, state}` (the
/// state moved meanwhile: nothing set; the lease is given back).
/// KEYS: state, lease, successes. ARGV: expected, token, ok|fail, n, record, channel, keep (ms).
pub static REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  return {0, cur}
end
if ARGV[3] == 'ok' then
  redis.call('SET', KEYS[2], 'done', 'PX', ARGV[7])
  local n = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
  if n < tonumber(ARGV[4]) then return {2, ''} end
end
redis.call('SET', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[5])
return {1, ARGV[5]}
",
    )
});

/// Gives a lease back unused (the call ended without a verdict), if still the caller's.
/// KEYS: lease. ARGV: token.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// A heartbeat that reads the fleet: this replica seen now (Redis's clock), replicas not
/// seen for `live` ms dropped; answers `{replicas seen, state, votes, operator's command}`.
/// KEYS: replicas, state, votes, force. ARGV: replica, live (ms).
pub static POLL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return {redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2]) or '', redis.call('HVALS', KEYS[3]), redis.call('GET', KEYS[4]) or ''}
",
    )
});

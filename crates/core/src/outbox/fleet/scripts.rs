//! The fleet outbox's Lua scripts: every change that touches more than one structure runs
//! as one script, so Redis applies it atomically (no replica sees a write in the stream but
//! not in its key's line, or counted twice in the byte total). Every key a script touches
//! is passed in KEYS and shares the outbox's hash tag, so the scripts run on a Cluster too.
//!
//! Keys (`P` = `dnastore:outbox:{<name>}`): `P:q` the stream (consumer group `delivery`),
//! `P:dead` the dead letters (a stream), `P:ids` (write id -> `q <stream id>` or
//! `d <dead stream id>`), `P:state` (write id -> `attempts|next_at_ms|last error`),
//! `P:flight` (write id -> the consumer delivering it now), `P:bytes` (bytes queued),
//! `P:key:<sha256 of the ordering key>` (the key's queued write ids, oldest first),
//! `P:fwd:<id>` (a write a replica forwarded from its spill file, kept for
//! `outboxMaxAgeMs`: the same write forwarded again is not added twice).

use std::sync::LazyLock;

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local function field(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return ''
end
-- Removes queued entry `sid` (fields `f`) of write `id` from the stream, the byte count
-- (only if this call deleted it: two replicas finishing the same write count it once),
-- its key's line and the per-write hashes.
local function unqueue(q, bytes, line, state, flight, ids, sid, id, f)
  if redis.call('XDEL', q, sid) == 1 then
    if redis.call('DECRBY', bytes, tonumber(field(f, 'sz')) or 0) < 0 then
      redis.call('SET', bytes, 0)
    end
  end
  if line ~= q then redis.call('LREM', line, 1, id) end
  if redis.call('HGET', ids, id) == 'q ' .. sid then redis.call('HDEL', ids, id) end
  redis.call('HDEL', state, id)
  redis.call('HDEL', flight, id)
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: q, bytes, ids, line (q when the write has no ordering key), the write's forward
/// marker. ARGV: max entries, max bytes, size, id, encoded write, mac, ordering key,
/// created at. Returns `{1, stream id}`, or `{0}` when the outbox is full. A write its
/// replica already forwarded from its spill file (this script reached Redis late, after
/// the replica had given up waiting for it and spilled the write) is not added again:
/// `{1, ''}`.
pub static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[5]) then return {1, ''} end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return {0} end
local used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if used + tonumber(ARGV[3]) > tonumber(ARGV[2]) then return {0} end
local sid = redis.call('XADD', KEYS[1], '*', 'id', ARGV[4], 'w', ARGV[5], 'm', ARGV[6],
  'k', ARGV[7], 't', ARGV[8], 'sz', ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], 'q ' .. sid)
if ARGV[7] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[4]) end
return {1, sid}
"#,
    )
});

/// Takes writes for this consumer: first those another consumer left unrenewed for the
/// claim idle time (XAUTOCLAIM, resumed at the cursor), then new ones (XREADGROUP). Creates
/// the group on first use; forgets consumers long gone that hold nothing.
/// KEYS: q, state. ARGV: group, consumer, takeover count, claim idle ms (0: take none
/// over), cursor, read count (0: read none).
/// Returns `{next cursor, {{stream id, id, write, mac, ordering key, created at, size,
/// state}, ..}}`.
pub static INTAKE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local q, g, me, idle = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[4])
redis.pcall('XGROUP', 'CREATE', q, g, '0', 'MKSTREAM')
local cursor, out = ARGV[5], {}
local function add(e)
  if type(e) ~= 'table' or type(e[2]) ~= 'table' then return end
  local f = e[2]
  local id = field(f, 'id')
  out[#out + 1] = {e[1], id, field(f, 'w'), field(f, 'm'), field(f, 'k'), field(f, 't'),
    field(f, 'sz'), redis.call('HGET', KEYS[2], id) or ''}
end
if idle > 0 then
  local r = redis.call('XAUTOCLAIM', q, g, me, idle, cursor, 'COUNT', ARGV[3])
  cursor = r[1]
  for _, e in ipairs(r[2]) do add(e) end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', q, g)) do
    local name, pending, quiet = field(c, 'name'), field(c, 'pending'), field(c, 'idle')
    if name ~= me and pending == 0 and quiet > 10 * idle then
      redis.call('XGROUP', 'DELCONSUMER', q, g, name)
    end
  end
end
if tonumber(ARGV[6]) > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', ARGV[6], 'STREAMS', q, '>')
  if r then for _, e in ipairs(r[1][2]) do add(e) end end
end
return {cursor, out}
"#,
    )
});

/// Before delivering: is the write still this consumer's, and the oldest queued write of
/// its ordering key? Renews the claim either way; marks it in flight when it may go.
/// KEYS: q, ids, flight, line (q when none). ARGV: group, consumer, stream id, id.
/// Returns `go`, `wait` (an older write of its key is queued) or `lost` (taken over).
pub static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 'lost' end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
if KEYS[4] ~= KEYS[1] then
  while true do
    local head = redis.call('LINDEX', KEYS[4], 0)
    if not head or head == ARGV[4] then break end
    local at = redis.call('HGET', KEYS[2], head)
    if at and string.sub(at, 1, 2) == 'q ' then return 'wait' end
    -- The head is no longer queued (removed by hand): no reason to wait for it forever.
    redis.call('LPOP', KEYS[4])
  end
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[2])
return 'go'
"#,
    )
});

/// Renews this consumer's claims (so no replica takes them over while it lives), or, with
/// an idle time, hands them back (they look abandoned, so the next XAUTOCLAIM takes them).
/// KEYS: q. ARGV: group, consumer, idle ms (0: renew), stream ids...
/// Returns the stream ids that were still its own.
pub static KEEP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local kept = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"#,
    )
});

/// Delivered: the write leaves the queue. KEYS: q, ids, state, flight, bytes, line.
/// ARGV: group, stream id, id. Returns 1, or 0 if another replica finished it first.
pub static DONE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return 0 end
unqueue(KEYS[1], KEYS[5], KEYS[6], KEYS[3], KEYS[4], KEYS[2], ARGV[2], ARGV[3], e[1][2])
return 1
"#,
    )
});

/// Moves a write to the dead letters with the reason and DNAStore's answer.
/// KEYS: q, dead, ids, state, flight, bytes, line.
/// ARGV: group, stream id, id, reason, status ('' none), answer, died at, attempts.
/// Returns 1, or 0 if another replica finished it first.
pub static BURY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return 0 end
local f = e[1][2]
local dsid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'w', field(f, 'w'),
  'm', field(f, 'm'), 'k', field(f, 'k'), 't', field(f, 't'), 'sz', field(f, 'sz'),
  'reason', ARGV[4], 'status', ARGV[5], 'answer', ARGV[6], 'died', ARGV[7], 'attempts', ARGV[8])
unqueue(KEYS[1], KEYS[6], KEYS[7], KEYS[4], KEYS[5], KEYS[3], ARGV[2], ARGV[3], f)
redis.call('HSET', KEYS[3], ARGV[3], 'd ' .. dsid)
return 1
"#,
    )
});

/// A dead letter back at the end of the queue, attempts reset, its age counted from now.
/// KEYS: q, dead, ids, bytes, line. ARGV: id, dead stream id, now (ms).
/// Returns 1, or 0 if it is gone.
pub static RETRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('HGET', KEYS[3], ARGV[1]) ~= 'd ' .. ARGV[2] then return 0 end
local e = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local sid = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'w', field(f, 'w'),
  'm', field(f, 'm'), 'k', field(f, 'k'), 't', ARGV[3], 'sz', field(f, 'sz'))
redis.call('XDEL', KEYS[2], ARGV[2])
redis.call('INCRBY', KEYS[4], tonumber(field(f, 'sz')) or 0)
redis.call('HSET', KEYS[3], ARGV[1], 'q ' .. sid)
if field(f, 'k') ~= '' then redis.call('RPUSH', KEYS[5], ARGV[1]) end
return 1
"#,
    )
});

/// Removes a queued write or a dead letter for good.
/// KEYS: q, dead, ids, state, flight, bytes, line.
/// ARGV: group, id, `q` or `d`, stream id, claim idle ms.
/// Returns 1, 0 (no such write), or -1 (a live replica is delivering it now).
pub static DISCARD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] .. ' ' .. ARGV[4] then return 0 end
if ARGV[3] == 'd' then
  redis.call('HDEL', KEYS[3], ARGV[2])
  return redis.call('XDEL', KEYS[2], ARGV[4])
end
local who = redis.call('HGET', KEYS[5], ARGV[2])
if who then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], ARGV[4], 1)
  if #p == 1 and p[1][2] == who and p[1][3] < tonumber(ARGV[5]) then return -1 end
end
local e = redis.call('XRANGE', KEYS[1], ARGV[4], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[4])
if #e == 0 then redis.call('HDEL', KEYS[3], ARGV[2]) return 0 end
unqueue(KEYS[1], KEYS[6], KEYS[7], KEYS[4], KEYS[5], KEYS[3], ARGV[4], ARGV[2], e[1][2])
return 1
"#,
    )
});

/// Forwards writes a replica spilled to its own file while Redis could not take them
/// (`outbox/spill/`), oldest first, each with its id, encoding, MAC, ordering key and
/// creation time. A write is added only once: not if its marker says it was forwarded
/// before (the replica died between Redis's acknowledgement and its local delete, and
/// forwards it again after a restart), nor if its id is queued or dead already (its live
/// enqueue timed out in the replica but reached Redis). Either way the marker is set (or
/// renewed) for `ttl` ms. Bounded like ENQUEUE; once one write does not fit, neither do
/// the later ones (they stay in the file, in order).
/// KEYS: q, bytes, ids, then per write: its marker, its line (q when none).
/// ARGV: max entries, max bytes, marker ttl ms, then per write: id, encoded write, mac,
/// ordering key, created at, size.
/// Returns per write: 1 added, 2 added before, 0 no room.
pub static FORWARD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local q, bytes, ids = KEYS[1], KEYS[2], KEYS[3]
local maxn, maxb, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out, full = {}, false
for i = 0, (#ARGV - 3) / 6 - 1 do
  local a = 4 + i * 6
  local id, k, sz = ARGV[a], ARGV[a + 3], tonumber(ARGV[a + 5]) or 0
  local marker, line = KEYS[4 + i * 2], KEYS[5 + i * 2]
  if redis.call('GET', marker) or redis.call('HGET', ids, id) then
    redis.call('SET', marker, '1', 'PX', ttl)
    out[#out + 1] = 2
  elseif full or redis.call('XLEN', q) >= maxn
      or (tonumber(redis.call('GET', bytes) or '0') or 0) + sz > maxb then
    full = true
    out[#out + 1] = 0
  else
    local sid = redis.call('XADD', q, '*', 'id', id, 'w', ARGV[a + 1], 'm', ARGV[a + 2],
      'k', k, 't', ARGV[a + 4], 'sz', ARGV[a + 5])
    redis.call('INCRBY', bytes, sz)
    redis.call('HSET', ids, id, 'q ' .. sid)
    if k ~= '' then redis.call('RPUSH', line, id) end
    redis.call('SET', marker, '1', 'PX', ttl)
    out[#out + 1] = 1
  end
end
return out
"#,
    )
});

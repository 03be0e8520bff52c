'use strict';

// The write audit of the soak and the demo: what clients were told about their writes
// against what the fake DNAStore holds once the outbox has drained.
//
// Each client write carries a unique Idempotency-Key and the same value in its body's `ref`,
// so a stored sigil is matched to the write that made it by its body, not only by the key
// (a write stored under another key, or none, still counts as its own).
//
//   told:   [{ key, status }]  one per write a client sent (status 0: no answer)
//   stored: [{ idempotencyKey, sigil }]  GET /__control/sigils
//
// A write answered 201 (stored) or 202 (queued) is acknowledged: it must be in DNAStore
// exactly once. `ok` is false unless nothing acknowledged was lost, nothing was stored
// twice, every stored write carries its client's key, and no client key was used twice
// (the audit could not tell those writes apart).

const ACKNOWLEDGED = new Set([201, 202]);

function audit({ told, stored }) {
  const status = new Map();
  const reusedKeys = [];
  for (const t of told) {
    if (status.has(t.key)) reusedKeys.push(t.key);
    else status.set(t.key, t.status);
  }
  const copies = new Map(); // ref -> stored sigils made by that write
  const keyMismatch = [];
  const unknownRefs = [];
  for (const r of stored) {
    const ref = r.sigil && r.sigil.ref;
    if (typeof ref !== 'string') continue; // not a client write of this run (warm-up data)
    if (!status.has(ref)) unknownRefs.push(ref);
    if (r.idempotencyKey !== ref) keyMismatch.push(ref);
    copies.set(ref, (copies.get(ref) || 0) + 1);
  }
  const lost = [];
  const storedUnacknowledged = [];
  let created = 0;
  let queued = 0;
  for (const [key, s] of status) {
    const n = copies.get(key) || 0;
    if (s === 201) created++;
    if (s === 202) queued++;
    if (ACKNOWLEDGED.has(s) && n === 0) lost.push(key);
    if (!ACKNOWLEDGED.has(s) && n > 0) storedUnacknowledged.push(key);
  }
  const duplicated = [...copies].filter(([, n]) => n > 1).map(([ref]) => ref);
  return {
    writes: status.size,
    acknowledged: created + queued,
    created,
    queued,
    lost,
    duplicated,
    keyMismatch,
    reusedKeys,
    unknownRefs,
    // Allowed: a write whose client heard 503 "outcome unknown" (or nothing) may have landed.
    storedUnacknowledged,
    ok: lost.length === 0 && duplicated.length === 0 && keyMismatch.length === 0 && reusedKeys.length === 0,
  };
}

/** The ledger k6 writes (console output, one JSON line per write: {"write": key, "status": n}). */
function parseLedger(text) {
  const told = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line);
      if (typeof rec.write === 'string' && Number.isInteger(rec.status)) told.push({ key: rec.write, status: rec.status });
    } catch {
      // Not a ledger line (k6 may print others).
    }
  }
  return told;
}

/** One line per number, with the first few offending keys. */
function formatAudit(a, indent = '  ') {
  const some = (keys) => (keys.length ? ` (${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', ...' : ''})` : '');
  const line = (label, text) => `${indent}${label.padEnd(22)}${text}`;
  return [
    line('writes audited', `${a.writes}: ${a.created} answered 201 (stored), ${a.queued} answered 202 (queued), ${a.writes - a.acknowledged} other`),
    line('lost', `${a.lost.length}${some(a.lost)} (answered 201/202, not in DNAStore)`),
    line('duplicated', `${a.duplicated.length}${some(a.duplicated)} (in DNAStore more than once)`),
    line('key not carried', `${a.keyMismatch.length}${some(a.keyMismatch)} (stored under another Idempotency-Key)`),
    line('stored, not acked', `${a.storedUnacknowledged.length} (allowed: the client heard 503 "unknown" or nothing)`),
    line('audit', a.ok ? 'PASS: every write answered 201 or 202 is in DNAStore exactly once' : 'FAIL'),
  ].join('\n');
}

module.exports = { audit, parseLedger, formatAudit, ACKNOWLEDGED };

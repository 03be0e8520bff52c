'use strict';

// The soak's write audit (examples/fake-dnastore/audit.js): each way a write can go wrong is
// caught, and only those fail it.

const { audit, parseLedger, formatAudit } = require('../examples/fake-dnastore/audit');

const sigil = (ref, key = ref, id = `sig-${ref}`) => ({ idempotencyKey: key, sigil: { id, name: `soak-${ref}`, ref } });
const warm = { idempotencyKey: null, sigil: { id: 'sig-w', name: 'warm-0' } };

test.each([
  ['every acknowledged write stored once', [['a', 201], ['b', 202]], [warm, sigil('a'), sigil('b')], { ok: true }],
  ['a queued write never delivered is lost', [['a', 201], ['b', 202]], [sigil('a')], { ok: false, lost: ['b'] }],
  ['a write stored twice is duplicated', [['a', 202]], [sigil('a', 'a', 'sig-1'), sigil('a', 'a', 'sig-2')], { ok: false, duplicated: ['a'] }],
  ['a write stored under another key fails', [['a', 202]], [sigil('a', 'generated-key')], { ok: false, keyMismatch: ['a'] }],
  ['a key a client used twice fails (writes cannot be told apart)', [['a', 201], ['a', 202]], [sigil('a')], { ok: false, reusedKeys: ['a'] }],
  ['a 503 not stored is fine', [['a', 503]], [], { ok: true, acknowledged: 0 }],
  ['a 503 "unknown" (or no answer) that landed is allowed, and reported', [['a', 503], ['b', 0]], [sigil('a'), sigil('b')], { ok: true, storedUnacknowledged: ['a', 'b'] }],
  ['a 503 write stored twice is still a duplicate', [['a', 503]], [sigil('a', 'a', 'sig-1'), sigil('a', 'a', 'sig-2')], { ok: false, duplicated: ['a'], storedUnacknowledged: ['a'] }],
])('%s', (_name, told, stored, expected) => {
  const a = audit({ told: told.map(([key, status]) => ({ key, status })), stored });
  expect(a).toEqual(expect.objectContaining({ lost: [], duplicated: [], keyMismatch: [], reusedKeys: [], storedUnacknowledged: [], ...expected }));
  expect(formatAudit(a)).toMatch(expected.ok ? /audit +PASS/ : /audit +FAIL/);
});

test('counts what clients were told', () => {
  const a = audit({ told: [['a', 201], ['b', 202], ['c', 202], ['d', 503]].map(([key, status]) => ({ key, status })), stored: [sigil('a'), sigil('b'), sigil('c')] });
  expect({ writes: a.writes, acknowledged: a.acknowledged, created: a.created, queued: a.queued }).toEqual({ writes: 4, acknowledged: 3, created: 1, queued: 2 });
});

test('the ledger: JSON lines with write and status; anything else is skipped', () => {
  const text = ['{"write":"k1","status":201}', 'time="x" level=warning msg="not ours"', '{"write":"k2","status":0}', '{"other":1}', '{"write":"k3","status":202'].join('\n');
  expect(parseLedger(text)).toEqual([{ key: 'k1', status: 201 }, { key: 'k2', status: 0 }]);
});

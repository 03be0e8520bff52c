'use strict';

// `dnastore-breaker outbox` on the embedded SQLite store, as an operator runs it (the real
// command in a child process): a real breaker in another process queues writes against a
// DNAStore that fails them, and dead-letters those DNAStore refuses. stats, list and dead
// read the store while that process holds it (without its lock, without disturbing it or
// the WAL and acknowledged-writes checks: a writer queueing all the while, killed, still
// delivers every write it acknowledged); retry, discard and drain refuse then, saying what
// to do instead, and work once it has stopped. --json parsed, bodies only with --bodies,
// credentials never, exit statuses 0 / 1 / 2.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { startUpstream, json } = require('./helpers/upstream');
const { cli, holder } = require('./helpers/cli');
const { writer } = require('./helpers/writer');

let up;
let root;
// What DNAStore does: 'flaky' fails every live attempt (so writes are queued), refuses
// /api/bad on delivery and fails the rest; 'up' stores everything.
let mode = 'flaky';
const seen = new Map(); // idempotency key -> attempts
const stored = [];

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-cli-outbox-'));
  up = await startUpstream((req, res, hit) => {
    const key = hit.headers['idempotency-key'];
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    if (mode === 'up') {
      stored.push(hit);
      return json(res, 201, { ok: true });
    }
    if (n > 1 && hit.url.startsWith('/api/bad')) return json(res, 422, { error: 'sigil rejected' });
    req.socket.destroy();
  });
});

afterAll(async () => {
  await up.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

const WRITES = [
  { method: 'POST', path: '/api/sigils/a?token=query-secret', headers: { 'content-type': 'application/json', authorization: 'Bearer auth-secret-1', 'x-tenant-id': 'acme' }, body: '{"sigil":"a"}' },
  { method: 'PUT', path: '/api/sigils/b', headers: { 'content-type': 'application/json' }, body: '{"sigil":"b"}' },
  { method: 'POST', path: '/api/bad/c', headers: { 'content-type': 'application/json', authorization: 'Bearer auth-secret-2' }, body: '{"sigil":"c"}' },
];

let seq = 0;
/** A store with two queued writes and one dead letter, made by a real breaker. */
async function store(extra = {}) {
  seq += 1;
  const dir = path.join(root, `s${seq}`);
  const name = `cli-${seq}`;
  mode = 'flaky';
  const h = await holder({ name, baseUrl: up.url, dir, writes: WRITES, dead: 1, ...extra });
  const ids = { a: h.ids[WRITES[0].path], b: h.ids[WRITES[1].path], c: h.ids[WRITES[2].path] };
  if (!extra.hold) expect(await h.exited).toEqual({ code: 0, signal: null });
  return { dir, name, ids, h, args: ['--name', name, '--dir', dir] };
}

const digest = (p) => (fs.existsSync(p) ? crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex') : null);

test('stats, list and dead read a stopped service\'s store: tables, --json, no bodies unless asked, never a credential', async () => {
  const s = await store();
  const db = path.join(s.dir, `${s.name}.outbox.sqlite`);
  const before = ['', '-wal', '-ack'].map((x) => digest(db + x));

  const st = await cli(['outbox', 'stats', ...s.args, '--json']);
  expect(st.code).toBe(0);
  expect(st.json).toMatchObject({ ok: true, name: s.name, store: 'sqlite', location: db, entries: 2, deadLetters: 1, inFlight: null });
  expect(st.json.bytes).toBeGreaterThan(0);
  expect(st.json.oldestAgeMs).toBeGreaterThanOrEqual(0);
  const stT = await cli(['outbox', 'stats', ...s.args]);
  expect(stT.stdout).toContain(`Outbox of breaker ${s.name}: ${db} (sqlite)`);
  expect(stT.stdout).toMatch(/^queued writes +2$/m);
  expect(stT.stdout).toMatch(/^dead letters +1$/m);

  const ls = await cli(['outbox', 'list', ...s.args, '--json']);
  expect(ls.code).toBe(0);
  expect(ls.json.writes.map((w) => w.id)).toEqual([s.ids.a, s.ids.b]);
  expect(ls.json.writes[0]).toMatchObject({ method: 'POST', url: `${up.url}/api/sigils/a`, delivering: false });
  expect(ls.json.writes[0].attempts).toBeGreaterThanOrEqual(1);
  expect(ls.json.writes[0]).not.toHaveProperty('body');
  expect(ls.json.writes[0]).not.toHaveProperty('headers');
  const lsT = await cli(['outbox', 'list', ...s.args]);
  expect(lsT.stdout).toMatch(/^ID +METHOD +URL +ATTEMPTS +AGE +NEXT ATTEMPT +LAST ERROR$/m);
  expect(lsT.stdout).toContain(s.ids.b);
  expect((await cli(['outbox', 'list', ...s.args, '--limit', '1', '--json'])).json.writes).toHaveLength(1);

  const dead = await cli(['outbox', 'dead', ...s.args, '--json']);
  expect(dead.code).toBe(0);
  expect(dead.json.deadLetters).toEqual([
    expect.objectContaining({ id: s.ids.c, method: 'POST', url: `${up.url}/api/bad/c`, reason: 'rejected', status: 422, answer: '{"error":"sigil rejected"}' }),
  ]);
  const deadT = await cli(['outbox', 'dead', ...s.args]);
  expect(deadT.stdout).toMatch(new RegExp(`^${s.ids.c} +POST +${up.url}/api/bad/c +rejected +422 `, 'm'));

  // Without --bodies nothing of a write's body or headers; with it, the body and the headers,
  // credentials hidden; the query (which may hold a token) never.
  for (const r of [st, stT, ls, lsT, dead, deadT]) {
    for (const secret of ['"sigil"', 'auth-secret', 'acme', 'query-secret']) expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
  }
  const bl = await cli(['outbox', 'list', ...s.args, '--bodies', '--json']);
  expect(bl.json.writes[0]).toMatchObject({ body: '{"sigil":"a"}', bodyEncoding: 'utf8' });
  expect(Object.fromEntries(bl.json.writes[0].headers)).toEqual({ 'content-type': 'application/json', 'idempotency-key': expect.any(String), 'x-tenant-id': '***', authorization: '***' });
  const bd = await cli(['outbox', 'dead', ...s.args, '--bodies']);
  expect(bd.stdout).toContain('body (utf8): "{\\"sigil\\":\\"c\\"}"');
  expect(bd.stdout).toContain('    authorization: ***');
  const blT = await cli(['outbox', 'list', ...s.args, '--bodies']);
  for (const r of [bl, bd, blT]) for (const secret of ['auth-secret', 'acme', 'query-secret']) expect(r.stdout).not.toContain(secret);

  // Reading changed nothing.
  expect(['', '-wal', '-ack'].map((x) => digest(db + x))).toEqual(before);
});

test('retry and discard change a stopped service\'s store; unknown ids exit 1', async () => {
  const s = await store();
  const retried = await cli(['outbox', 'retry', s.ids.c, ...s.args, '--json']);
  expect(retried).toMatchObject({ code: 0, json: { ok: true, id: s.ids.c, retried: true } });
  let st = (await cli(['outbox', 'stats', ...s.args, '--json'])).json;
  expect([st.entries, st.deadLetters]).toEqual([3, 0]);
  const ls = (await cli(['outbox', 'list', ...s.args, '--json'])).json.writes;
  expect(ls.at(-1)).toMatchObject({ id: s.ids.c, attempts: 0 });

  const again = await cli(['outbox', 'retry', s.ids.c, ...s.args]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain(`no dead letter with id ${s.ids.c}`);

  const discarded = await cli(['outbox', 'discard', s.ids.a, ...s.args]);
  expect(discarded.code).toBe(0);
  expect(discarded.stdout).toContain(`write ${s.ids.a} is discarded`);
  const gone = await cli(['outbox', 'discard', s.ids.a, ...s.args, '--json']);
  expect(gone).toMatchObject({ code: 1, json: { ok: false, id: s.ids.a, discarded: false, error: { message: expect.stringContaining('no queued write or dead letter') } } });
  st = (await cli(['outbox', 'stats', ...s.args, '--json'])).json;
  expect([st.entries, st.deadLetters]).toEqual([2, 0]);
});

test('drain delivers the queue with the environment\'s configuration, and stops (exit 1) when DNAStore fails', async () => {
  const s = await store();
  // DNAStore still failing: the circuit opens, the writes stay queued.
  mode = 'flaky';
  // (A short backoff after its failures: the next drain need not wait it out.)
  const failing = await cli(['outbox', 'drain', ...s.args, '--json'], { env: { DNASTORE_RETRY_MAX_ATTEMPTS: '1', DNASTORE_CIRCUIT_MAX_FAILURES: '1', DNASTORE_CIRCUIT_RESET_MS: '600000', DNASTORE_OUTBOX_RETRY_MAX_MS: '200' } });
  expect(failing.code).toBe(1);
  expect(failing.json).toMatchObject({ ok: false, queuedBefore: 2, queued: 2, delivered: 0, stopped: 'circuit open' });
  expect(failing.stderr).toContain('still queued');

  mode = 'up';
  stored.length = 0;
  const r = await cli(['outbox', 'drain', ...s.args]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('2 delivered, 0 dead-lettered, 0 still queued');
  expect(stored.map((h) => h.url).sort()).toEqual(['/api/sigils/a?token=query-secret', '/api/sigils/b']);
  // The writes as they were queued: their keys, bodies and kept headers.
  const a = stored.find((h) => h.url.startsWith('/api/sigils/a'));
  expect(a.headers).toMatchObject({ authorization: 'Bearer auth-secret-1', 'x-tenant-id': 'acme' });
  expect(a.body).toBe('{"sigil":"a"}');
  const st = (await cli(['outbox', 'stats', ...s.args, '--json'])).json;
  expect([st.entries, st.deadLetters]).toEqual([0, 1]);
  expect((await cli(['outbox', 'drain', ...s.args, '--json'])).json).toMatchObject({ ok: true, queuedBefore: 0, stopped: 'empty' });
});

test('drain refuses, sending nothing, when the queued writes do not verify with the signing secret', async () => {
  const s = await store({ secret: 'the-service-secret' });
  mode = 'up';
  stored.length = 0;
  const r = await cli(['outbox', 'drain', ...s.args], { env: { DNASTORE_LKG_SECRET: 'another-secret' } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('2 of the 2 oldest queued writes');
  expect(r.stderr).toContain('Nothing was sent');
  for (const secret of ['the-service-secret', 'another-secret']) expect(r.stderr).not.toContain(secret);
  expect(stored).toEqual([]);
  const ok = await cli(['outbox', 'drain', ...s.args], { env: { DNASTORE_LKG_SECRET: 'the-service-secret' } });
  expect(ok.code).toBe(0);
  expect(stored).toHaveLength(2);
});

test('while a service holds the store: reads work, changes are refused with what to do instead, the service is undisturbed', async () => {
  const s = await store({ hold: true });
  try {
    const st = await cli(['outbox', 'stats', ...s.args, '--json']);
    expect(st).toMatchObject({ code: 0, json: { entries: 2, deadLetters: 1, inFlight: null } });
    expect((await cli(['outbox', 'list', ...s.args, '--json'])).json.writes.map((w) => w.id)).toEqual([s.ids.a, s.ids.b]);
    expect((await cli(['outbox', 'dead', ...s.args, '--json'])).json.deadLetters.map((d) => d.id)).toEqual([s.ids.c]);
    for (const args of [['retry', s.ids.c], ['discard', s.ids.a], ['drain']]) {
      const r = await cli(['outbox', ...args, ...s.args, '--json']);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.json.ok).toBe(false);
      expect(r.stderr).toMatch(/held by a running process/);
      expect(r.stderr).toMatch(args[0] === 'drain' ? /breaker\.outbox\.drain\(\) there/ : new RegExp(`breaker\\.outbox\\.${args[0]}\\(id\\) in that process`));
      expect(r.stderr).toContain('or stop');
    }
    // The service still delivers: DNAStore up, its queue empties.
    mode = 'up';
    const until = Date.now() + 20_000;
    while ((await cli(['outbox', 'stats', ...s.args, '--json'])).json.entries > 0) {
      if (Date.now() > until) throw new Error('the holder did not deliver its queue within 20 s');
    }
    expect((await cli(['outbox', 'dead', ...s.args, '--json'])).json.deadLetters.map((d) => d.id)).toEqual([s.ids.c]);
  } finally {
    expect(await s.h.stop()).toEqual({ code: 0, signal: null });
  }
  // Released: the change works now.
  expect((await cli(['outbox', 'retry', s.ids.c, ...s.args])).code).toBe(0);
});

test('reads while a writer queues and is then killed: every acknowledged write is still delivered', async () => {
  const dir = path.join(root, 'live');
  const name = 'live';
  mode = 'flaky';
  // The writer's circuit opens at once and stays open: it queues as fast as it can.
  const w = writer({ dir, name, baseUrl: up.url, run: 'live', n: 20_000, phase: 'queue', pauseMs: 20 });
  try {
    await w.waitFor((l) => l.length > 50, 30_000);
    let last = 0;
    for (let i = 0; i < 6; i++) {
      for (const sub of ['stats', 'list', 'dead']) {
        const r = await cli(['outbox', sub, '--name', name, '--dir', dir, '--json', ...(sub === 'stats' ? [] : ['--limit', '5'])]);
        expect({ sub, code: r.code, stderr: r.stderr }).toEqual({ sub, code: 0, stderr: '' });
        if (sub === 'stats') {
          expect(r.json.entries).toBeGreaterThanOrEqual(last);
          last = r.json.entries;
        }
      }
    }
    expect(last).toBeGreaterThan(0);
  } finally {
    w.kill();
    await w.exited;
  }
  const acked = w.lines.filter((l) => l.startsWith('A ')).map((l) => l.slice(2));
  expect(acked.length).toBeGreaterThan(50);
  mode = 'up';
  stored.length = 0;
  const d = writer({ dir, name, baseUrl: up.url, run: 'live', n: 0, phase: 'deliver' });
  await d.waitFor((l) => l.some((x) => x === 'EMPTY' || x.startsWith('REFUSED ')), 60_000);
  await d.exited;
  expect(d.lines.filter((x) => x.startsWith('REFUSED '))).toEqual([]);
  const keys = new Set(stored.map((h) => h.headers['idempotency-key']));
  expect(acked.filter((k) => !keys.has(k))).toEqual([]);
}, 120_000);

test('a missing store, a bad configuration and bad command lines', async () => {
  const nowhere = path.join(root, 'nowhere');
  const r = await cli(['outbox', 'stats', '--name', 'x', '--dir', nowhere, '--json']);
  expect(r.code).toBe(1);
  expect(r.json.error.message).toContain('no such file');
  for (const op of [['retry', 'some-id'], ['discard', 'some-id'], ['drain']]) expect((await cli(['outbox', ...op, '--name', 'x', '--dir', nowhere])).code).toBe(1);
  expect(fs.existsSync(nowhere)).toBe(false);

  const bad = await cli(['outbox', 'stats', '--redis', 'http://127.0.0.1:1']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid option `outboxRedisUrl`');
  expect(bad.stderr).toContain('(given by --redis)');
  const env = await cli(['outbox', 'stats', '--dir', nowhere], { env: { DNASTORE_OUTBOX_MAX_ENTRIES: '0' } });
  expect(env.code).toBe(1);
  expect(env.stderr).toContain('DNASTORE_OUTBOX_MAX_ENTRIES');

  for (const args of [
    ['outbox'],
    ['outbox', 'nope'],
    ['outbox', 'constructor'],
    ['outbox', 'retry'],
    ['outbox', 'stats', 'extra'],
    ['outbox', 'stats', '--dir', 'a', '--redis', 'redis://127.0.0.1:1'],
    ['outbox', 'list', '--limit', '0'],
    ['outbox', 'stats', '--bodies'],
    ['outbox', 'list', '--timeout-ms', '5'],
  ]) {
    const u = await cli(args);
    expect({ args, code: u.code, stdout: u.stdout }).toEqual({ args, code: 2, stdout: '' });
    expect(u.stderr).toContain('Usage: dnastore-breaker outbox');
  }
});

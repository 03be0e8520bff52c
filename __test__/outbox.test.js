'use strict';

// The durable outbox at the JS boundary, against a real upstream on 127.0.0.1 and the real
// SQLite file: what `fire()` answers for durable writes, delivery with the same
// Idempotency-Key, what is kept at rest, the operations on `breaker.outbox`, events and
// startup errors. (SIGKILL safety: outbox-crash.test.js; the core's own tests cover the
// scheduler, pacing and expiry on paused time.)

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createBreaker, metrics } = require('..');
const { startUpstream, json, hang, eventually, uniqueName } = require('./helpers/upstream');

let up;
let dir;
const breakers = [];

function make(opts = {}) {
  const b = createBreaker({
    name: uniqueName('ob'),
    baseUrl: up.url,
    logger: false,
    outbox: 'on',
    outboxDir: dir,
    maxAttempts: 1,
    maxFailures: 1,
    resetTimeout: 200,
    halfOpenMaxCalls: 1,
    ...opts,
  });
  breakers.push(b);
  return b;
}

const down = (req) => req.socket.destroy();
const created = (req, res, hit) => json(res, 201, { id: `sig-${hit.headers['idempotency-key']}` });

beforeEach(async () => {
  up = await startUpstream(down);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-jest-'));
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const post = (b, body, extra = {}) =>
  b.fire('/api/sigils', { method: 'POST', headers: { 'content-type': 'application/json', ...extra.headers }, body: JSON.stringify(body), durable: true, ...extra.init });

test('a durable write that cannot be delivered is queued, then delivered with the same Idempotency-Key', async () => {
  const b = make();
  const events = [];
  for (const e of ['queued', 'delivered']) b.on(e, (p) => events.push([e, p]));
  const r = await post(b, { n: 1 }, { headers: { 'idempotency-key': 'caller-key-1' } });
  expect(r).toEqual({ queued: true, fallback: true, id: expect.any(String), idempotencyKey: 'caller-key-1', code: 'ECONNRESET', data: null, error: 'DNAStore unavailable', source: 'outbox' });
  const r2 = await post(b, { n: 2 });
  expect(r2).toMatchObject({ queued: true, code: 'EOPENBREAKER', idempotencyKey: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  expect(b.outbox.stats()).toMatchObject({ entries: 2, enqueued: 2, delivered: 0 });

  // A delivery attempt may already have been refused while DNAStore was still down (the
  // circuit half-opens after resetTimeout, 200 ms, which a loaded machine can spend above):
  // only what reached it once it is up counts as delivered.
  const whileDown = up.hits.length;
  up.set(created);
  await eventually(() => b.outbox.stats().entries === 0, 5000);
  const posts = up.hits.filter((h) => h.method === 'POST');
  // The live attempt, then one delivery each, each with its write's key and body. The two
  // writes have no ordering key: the first waits out its failed attempt's backoff, so either
  // may be delivered first (a fresh-clone CI run saw the second first).
  expect(posts[0].headers['idempotency-key']).toBe('caller-key-1');
  const delivered = up.hits.slice(whileDown).map((h) => [h.headers['idempotency-key'], JSON.parse(h.body)]);
  expect(delivered.sort(([a], [b]) => (a === 'caller-key-1' ? -1 : b === 'caller-key-1' ? 1 : 0))).toEqual([
    ['caller-key-1', { n: 1 }],
    [r2.idempotencyKey, { n: 2 }],
  ]);
  await eventually(() => events.filter(([e]) => e === 'delivered').length === 2);
  expect(events.slice(0, 2).map(([e, p]) => `${e}:${p.id}`)).toEqual([`queued:${r.id}`, `queued:${r2.id}`]);
  expect(events.slice(2).map(([e, p]) => `${e}:${p.id}`).sort()).toEqual([`delivered:${r.id}`, `delivered:${r2.id}`].sort());
  const first = events.find(([e, p]) => e === 'delivered' && p.id === r.id)[1];
  expect(first).toMatchObject({ status: 201, idempotencyKey: 'caller-key-1', afterMs: expect.any(Number) });
  expect(JSON.parse(first.body)).toEqual({ id: 'sig-caller-key-1' }, 'DNAStore\'s answer reaches the service');
  const m = metrics();
  expect(m).toContain(`dnastore_outbox_enqueued_total{name="${b.name}"} 2`);
  expect(m).toContain(`dnastore_outbox_delivered_total{name="${b.name}"} 2`);
  expect(m).toContain(`dnastore_outbox_entries{name="${b.name}"} 0`);
});

test('a write DNAStore answers is not queued: 201 resolves, 4xx rejects EHTTP', async () => {
  up.set((req, res) => (req.url === '/bad' ? json(res, 422, { error: 'no' }) : json(res, 201, { ok: true })));
  const b = make();
  expect(await post(b, {})).toEqual({ ok: true });
  await expect(b.fire('/bad', { method: 'POST', body: '{}', durable: true })).rejects.toMatchObject({ code: 'EHTTP', status: 422 });
  expect(b.outbox.stats().entries).toBe(0);
});

test('durable needs the outbox, and only writes qualify', async () => {
  const off = make({ outbox: 'off' });
  expect(off.outbox).toBeNull();
  await expect(off.fire('/x', { method: 'POST', body: '{}', durable: true })).rejects.toMatchObject({ code: 'EINVALID', message: expect.stringMatching(/outbox/) });
  const b = make();
  await expect(b.fire('/x', { durable: true })).rejects.toMatchObject({ code: 'EINVALID', message: expect.stringMatching(/GET cannot be queued/) });
  await expect(b.fire('/x', { method: 'POST', body: '{}', durable: 'yes' })).rejects.toMatchObject({ code: 'EINVALID' });
  await expect(b.fire(`http://u:p@127.0.0.1:${up.port}/x`, { method: 'POST', body: '{}', durable: true })).rejects.toMatchObject({
    code: 'EINVALID',
    message: expect.not.stringContaining('u:p'),
  });
  // An empty key names no write: DNAStore could not tell a replay from a new one.
  for (const key of ['', '  ']) {
    await expect(post(b, {}, { headers: { 'idempotency-key': key } })).rejects.toMatchObject({ code: 'EINVALID', message: expect.stringMatching(/must not be empty/) });
  }
  expect(up.hits).toHaveLength(0);
});

test('a newer write of a resource goes behind its queued one (EORDERED), so the newest lands last', async () => {
  const b = make({ maxFailures: 100, retryBaseMs: 50 });
  const put = (v) => b.fire('/api/sigils/1', { method: 'PUT', headers: { 'content-type': 'application/json', 'idempotency-key': `v${v}` }, body: JSON.stringify({ v }), durable: true });
  const v1 = await put(1);
  expect(v1).toMatchObject({ queued: true, code: 'ECONNRESET' });
  // DNAStore is back, but v1 is still in line when v2 comes: sent live, v2 would land
  // first and v1's replay would overwrite it.
  up.set((req, res, hit) => setTimeout(() => json(res, 200, { v: JSON.parse(hit.body).v }), 100));
  const v2 = await put(2);
  expect(v2).toMatchObject({ queued: true, code: 'EORDERED', idempotencyKey: 'v2' });
  await eventually(() => b.outbox.stats().entries === 0, 5000);
  const puts = up.hits.filter((h) => h.method === 'PUT').map((h) => h.headers['idempotency-key']);
  expect(puts).toEqual(['v1', 'v1', 'v2']);
  // With nothing queued for it, the next write goes live again.
  expect(await put(3)).toEqual({ v: 3 });
});

test("outbox 'all': every write is durable unless it opts out; reads are never queued", async () => {
  const b = make({ outbox: 'all' });
  await b.fire('/trip', { method: 'POST', body: '{}' }); // refused: queued, and the circuit opens
  expect(await b.fire('/api/sigils', { method: 'PUT', body: '{}' })).toMatchObject({ queued: true, code: 'EOPENBREAKER' });
  expect(await b.fire('/api/sigils', { method: 'DELETE', durable: false })).toMatchObject({ fallback: true, source: 'none' });
  expect(await b.fire('/api/sigils')).toMatchObject({ fallback: true, source: 'none' });
  expect(b.outbox.stats().entries).toBe(2);
});

// The open-circuit check happens in the binding, before the call's fields are converted,
// except for a call that may be a durable write (issue 27 moved that decision out of JS).
test('on an open circuit, durable: true is still queued with an outbox and refused without one; the rest short-circuits', async () => {
  const b = make();
  const off = make({ outbox: 'off' });
  await b.fire('/trip', { method: 'POST', body: '{}' }).catch(() => {});
  await off.fire('/trip').catch(() => {});
  expect([b.state, off.state]).toEqual(['open', 'open']);
  expect(await post(b, { n: 1 })).toMatchObject({ queued: true, code: 'EOPENBREAKER' });
  await expect(off.fire('/x', { method: 'POST', body: '{}', durable: true })).rejects.toMatchObject({ code: 'EINVALID', message: expect.stringMatching(/outbox/) });
  expect(await b.fire('/api/sigils', { method: 'POST', body: '{}' })).toMatchObject({ fallback: true, source: 'none' });
  expect(await off.fire('/x', { method: 'POST', body: '{}', durable: false })).toMatchObject({ fallback: true, source: 'none' });
  expect(b.outbox.stats().entries).toBe(1);
});

test('at rest: only content-type, idempotency-key, the tenant header and outboxHeaders are kept', async () => {
  const b = make({ outboxHeaders: ['x-signature'] });
  await post(b, { n: 1 }, { headers: { authorization: 'Bearer s3cret', cookie: 'sid=1', 'x-tenant-id': 't1', 'x-signature': 'sig', 'x-other': 'o' } });
  const file = fs.readFileSync(path.join(dir, `${b.name}.outbox.sqlite`));
  const wal = fs.readFileSync(path.join(dir, `${b.name}.outbox.sqlite-wal`));
  for (const bytes of [file, wal]) {
    expect(bytes.includes('s3cret')).toBe(false);
    expect(bytes.includes('sid=1')).toBe(false);
  }
  up.set(created);
  await eventually(() => b.outbox.stats().entries === 0, 5000);
  const delivered = up.hits.filter((h) => h.method === 'POST').at(-1).headers;
  expect(delivered).toMatchObject({ 'content-type': 'application/json', 'x-tenant-id': 't1', 'x-signature': 'sig' });
  expect(delivered).not.toHaveProperty('authorization');
  expect(delivered).not.toHaveProperty('cookie');
  expect(delivered).not.toHaveProperty('x-other');
  // The file and its directory are private to the service's user.
  expect(fs.statSync(path.join(dir, `${b.name}.outbox.sqlite`)).mode & 0o777).toBe(0o600);
});

test('dead letters keep DNAStore\'s answer; retry() puts one back, discard() removes it', async () => {
  const b = make();
  const dead = [];
  b.on('deadLetter', (e) => dead.push(e));
  const q = await post(b, { n: 1 });
  up.set((req, res) => json(res, 409, { error: 'duplicate sigil name' }));
  // The count is read synchronously from the store; the event reaches JS through the
  // loop a moment later (a fresh-clone CI run read the count with the event still queued).
  await eventually(() => b.outbox.stats().deadLetters === 1 && dead.length > 0, 5000);
  expect(dead).toEqual([expect.objectContaining({ id: q.id, reason: 'rejected', status: 409 })]);
  const [d] = await b.outbox.deadLetters();
  expect(d).toMatchObject({ id: q.id, method: 'POST', reason: 'rejected', status: 409, idempotencyKey: q.idempotencyKey });
  expect(JSON.parse(d.answer)).toEqual({ error: 'duplicate sigil name' });
  expect(d.url).toBe(`${up.url}/api/sigils`);

  up.set(created);
  expect(await b.outbox.retry(q.id)).toBe(true);
  await eventually(() => b.outbox.stats().entries === 0 && b.outbox.stats().delivered === 1, 5000);
  expect(up.hits.at(-1).headers['idempotency-key']).toBe(q.idempotencyKey);
  expect(await b.outbox.retry('no-such-id')).toBe(false);

  up.set(down);
  const q2 = await post(b, { n: 2 });
  expect((await b.outbox.list()).map((e) => e.id)).toEqual([q2.id]);
  expect(await b.outbox.discard(q2.id)).toBe(true);
  expect(b.outbox.stats().entries).toBe(0);
});

test('drain() settles when the queue is empty, or while the circuit is open', async () => {
  const b = make({ resetTimeout: 60_000 });
  await post(b, {});
  const t0 = Date.now();
  await b.outbox.drain(); // open: nothing can be delivered now
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(b.outbox.stats().entries).toBe(1);
});

test('a restarted process (a new breaker on the same directory) delivers what the last one queued', async () => {
  const name = uniqueName('ob-restart');
  const first = make({ name, resetTimeout: 60_000 });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await post(first, { i })).id);
  first.shutdown();
  up.set(created);
  // One at a time: writes without an ordering key start in FIFO order, but concurrent
  // ones may reach the server in any order.
  const second = make({ name, outboxConcurrency: 1 });
  expect(second.outbox.stats().entries).toBe(5);
  await eventually(() => second.outbox.stats().entries === 0, 5000);
  // The first write's live attempt (refused, which opened the circuit), then all five, in order.
  expect(up.hits.filter((h) => h.method === 'POST').map((h) => JSON.parse(h.body).i)).toEqual([0, 0, 1, 2, 3, 4]);
  expect(ids).toHaveLength(5);
});

test('durable writes in flight at shutdown() are queued before they settle, and the next process delivers them', async () => {
  // A rolling deploy: SIGTERM, shutdown() while DNAStore hangs on ten writes whose outcome
  // is therefore unknown (issue 25).
  up.set(hang);
  const name = uniqueName('ob-shutdown');
  const first = make({ name, timeout: 60_000, deadline: 60_000 });
  const keys = Array.from({ length: 10 }, (_, i) => `shutdown-key-${i}`);
  const calls = keys.map((k) => post(first, { k }, { headers: { 'idempotency-key': k } }));
  await eventually(() => up.hits.length === 10, 5000);
  first.shutdown();
  const settled = await Promise.allSettled(calls);
  expect(settled.map((s) => s.status)).toEqual(keys.map(() => 'fulfilled'));
  for (const [i, s] of settled.entries()) {
    expect(s.value).toMatchObject({ queued: true, fallback: true, code: 'ESHUTDOWN', idempotencyKey: keys[i], source: 'outbox' });
  }
  up.set(created);
  const second = make({ name });
  expect(second.outbox.stats().entries).toBe(10);
  await eventually(() => second.outbox.stats().entries === 0, 5000);
  const delivered = up.hits.slice(10).map((h) => h.headers['idempotency-key']);
  expect(delivered.sort()).toEqual([...keys].sort());
});

test('a corrupt or unreadable store is an error naming the path at startup, never emptied', () => {
  const name = uniqueName('ob-corrupt');
  const file = path.join(dir, `${name}.outbox.sqlite`);
  fs.writeFileSync(file, Buffer.alloc(8192, 0x42));
  let err;
  try {
    make({ name });
  } catch (e) {
    err = e;
  }
  expect(err.code).toBe('ECONFIG');
  expect(err.message).toContain(file);
  expect(fs.readFileSync(file)).toEqual(Buffer.alloc(8192, 0x42));
});

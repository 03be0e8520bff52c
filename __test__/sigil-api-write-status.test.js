'use strict';

// The Sigil API's write status (the Location of a 202) against a real breaker and outbox:
// queued from fire()'s result, delivered/dead letter from the events, seeded from the
// outbox after a restart, and bounded.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createBreaker } = require('..');
const { WriteStatus } = require('../examples/sigil-api/write-status.cjs');
const { startUpstream, eventually, freePort } = require('./helpers/upstream');

let dir;
const breakers = [];
const upstreams = [];

function breaker(baseUrl, name) {
  const b = createBreaker({ name, baseUrl, outbox: 'on', outboxDir: dir, logger: false, maxAttempts: 1, maxFailures: 1, resetTimeout: 200 });
  breakers.push(b);
  return b;
}

const write = (b, body, key) =>
  b.fire('/api/sigils', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'idempotency-key': key }, durable: true });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-status-'));
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await Promise.all(upstreams.splice(0).map((u) => (u.server.listening ? u.stop() : undefined)));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('queued, then delivered (with the status and key) once DNAStore answers', async () => {
  const upstream = await down((_req, res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"sig-1"}'));
  const b = breaker(upstream.url, `ws-deliver-${process.pid}`);
  const status = new WriteStatus(b);
  const q = await write(b, { name: 'a' }, 'key-a');
  expect(q.queued).toBe(true);
  status.queued(q);
  expect(status.get(q.id)).toEqual(expect.objectContaining({ id: q.id, state: 'queued', idempotencyKey: 'key-a', code: 'ECONNREFUSED' }));

  await upstream.restart();
  await eventually(() => status.get(q.id).state === 'delivered');
  expect(status.get(q.id)).toEqual(expect.objectContaining({ state: 'delivered', status: 201, idempotencyKey: 'key-a', sigil: { id: 'sig-1' } }));
  // A late queued() (the event came first) does not move it back.
  status.queued(q);
  expect(status.get(q.id).state).toBe('delivered');
});

test('a write DNAStore refuses is a dead letter with its reason and status', async () => {
  const upstream = await down((_req, res) => res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"name"}'));
  const b = breaker(upstream.url, `ws-dead-${process.pid}`);
  const status = new WriteStatus(b);
  const q = await write(b, { glyph: 'x' }, 'key-dead');
  status.queued(q);
  await upstream.restart();
  await eventually(() => status.get(q.id).state === 'dead_letter');
  expect(status.get(q.id)).toEqual(expect.objectContaining({ state: 'dead_letter', reason: 'rejected', status: 422, idempotencyKey: 'key-dead' }));
});

test('after a restart the queued writes are known again (seeded from the outbox)', async () => {
  const port = await freePort();
  const name = `ws-restart-${process.pid}`;
  const first = breaker(`http://127.0.0.1:${port}`, name);
  const q = await write(first, { name: 'kept' }, 'key-kept');
  const before = new WriteStatus(first);
  await before.ready;
  expect(before.get(q.id)).toEqual(expect.objectContaining({ state: 'queued' }));
  first.shutdown();
  const second = breaker(`http://127.0.0.1:${port}`, name);
  const status = new WriteStatus(second);
  expect(status.get(q.id)).toBeUndefined(); // not before the outbox was read
  await status.ready;
  expect(status.get(q.id)).toEqual(expect.objectContaining({ id: q.id, state: 'queued', idempotencyKey: 'key-kept' }));
  expect(status.get('no-such-id')).toBeUndefined();
});

test('bounded: past `max` writes the oldest record is forgotten', async () => {
  const port = await freePort();
  const b = breaker(`http://127.0.0.1:${port}`, `ws-bound-${process.pid}`);
  const status = new WriteStatus(b, { max: 2 });
  const ids = [];
  for (const k of ['k1', 'k2', 'k3']) {
    const q = await write(b, { name: k }, k);
    status.queued(q);
    ids.push(q.id);
  }
  expect(ids.map((id) => status.get(id)?.idempotencyKey)).toEqual([undefined, 'k2', 'k3']);
});

// An upstream that answers with `handler` once restarted; stopped (refusing) until then.
async function down(handler) {
  const up = await startUpstream(handler);
  upstreams.push(up);
  await up.stop();
  return up;
}

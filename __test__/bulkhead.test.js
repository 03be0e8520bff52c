'use strict';

// Slow calls, the bulkhead and the adaptive limit at the JS boundary, against a real local
// upstream: ECONCURRENCY resolves with the fallback (last-known-good for a GET) and is one
// of the core's codes, stats() shows the bulkhead, and an opening for slow calls is logged
// with the rate. The mechanisms themselves are tested in the core on paused time
// (crates/core/src/limit/tests.rs, breaker/tests_limit.rs, circuit_tests.rs).

const native = require('../binding.js');
const { createBreaker } = require('..');
const { startUpstream, json } = require('./helpers/upstream');

let up;
const breakers = [];
let seq = 0;
const uniqueName = () => `bulkhead-${process.pid}-${++seq}`;

beforeAll(async () => {
  up = await startUpstream();
});

afterAll(async () => {
  for (const b of breakers) b.shutdown();
  await up.stop();
});

function make(opts) {
  const b = createBreaker({ name: uniqueName(), baseUrl: up.url, logger: false, maxAttempts: 1, coalesce: false, ...opts });
  breakers.push(b);
  return b;
}

test('over maxConcurrent a GET resolves at once with its last-known-good and ECONCURRENCY; nothing counts as a failure', async () => {
  const b = make({ maxConcurrent: 1 });
  up.set((req, res) => json(res, 200, { sigil: 1 }));
  await expect(b.fire('/api/sigils/1')).resolves.toEqual({ sigil: 1 });
  let release;
  up.set((req, res) => {
    if (req.url === '/api/sigils/slow') release = () => json(res, 200, { slow: true });
    else json(res, 200, { sigil: 2 });
  });
  const held = b.fire('/api/sigils/slow');
  for (let i = 0; i < 100 && b.stats().bulkhead.inflight === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(b.stats().bulkhead).toMatchObject({ inflight: 1, limit: 1, queued: 0 });
  const t = Date.now();
  await expect(b.fire('/api/sigils/1')).resolves.toEqual({ fallback: true, data: { sigil: 1 }, error: 'DNAStore unavailable', code: 'ECONCURRENCY', source: 'cache', ageMs: expect.any(Number) });
  expect(Date.now() - t).toBeLessThan(1000);
  await expect(b.fire('/api/sigils/2')).resolves.toMatchObject({ fallback: true, code: 'ECONCURRENCY', source: 'none' });
  const hits = up.hits.length;
  for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 10));
  release();
  await expect(held).resolves.toEqual({ slow: true });
  expect(up.hits.length).toBe(hits);
  const s = b.stats();
  expect(s).toMatchObject({ state: 'closed', failures: 0, successes: 2, bulkhead: { inflight: 0, rejectedConcurrency: 2, rejectedQueueTimeout: 0 } });
  expect(native.errorCodes()).toContain('ECONCURRENCY');
  expect(native.metrics()).toMatch(new RegExp(`dnastore_concurrency_rejections_total\\{name="${b.name}",reason="concurrency"\\} 2`));
});

test('without maxConcurrent stats().bulkhead is absent and slow calls are 0', async () => {
  const b = make({});
  up.set((req, res) => json(res, 200, {}));
  await b.fire('/x');
  const s = b.stats();
  expect(s.bulkhead).toBeUndefined();
  expect(s.slowCalls).toBe(0);
});

test('slow successes open the circuit, and the log names the slow-call rate', async () => {
  const warnings = [];
  const logger = { warn: (o, m) => warnings.push([o, m]), info: () => {}, error: () => {} };
  const b = make({ logger, slowCallDurationMs: 50, slowCallRateThreshold: 50, volumeThreshold: 4, maxFailures: 0 });
  up.set((req, res) => setTimeout(() => json(res, 200, { ok: true }), 120));
  const opened = new Promise((resolve) => b.once('open', resolve));
  for (let i = 0; i < 4; i++) await expect(b.fire(`/s/${i}`)).resolves.toEqual({ ok: true });
  const e = await opened;
  expect(e).toMatchObject({ reason: 'slow calls', slowCalls: 4, slowCallRate: 100, calls: 4, failures: 0 });
  expect(b.state).toBe('open');
  expect(b.stats()).toMatchObject({ slowCalls: 4, slowCallRate: 100, failures: 0 });
  expect(warnings.map(([, m]) => m)).toContain('DNAStore circuit breaker OPEN (slow calls: 100 % of 4 calls slower than slowCallDurationMs)');
  expect(native.metrics()).toMatch(new RegExp(`dnastore_slow_calls_total\\{name="${b.name}"\\} 4`));
});

test('options are validated in the core with their range', () => {
  expect(() => make({ concurrencyLimit: 'adaptive' })).toThrow(/adaptive needs maxConcurrent/);
  expect(() => make({ maxConcurrent: 4, concurrencyLimit: 'adaptive', minConcurrency: 5 })).toThrow(/minConcurrency \(5\): must be <= maxConcurrent \(4\)/);
  expect(() => make({ maxQueued: -1 })).toThrow(/`maxQueued`: must be an integer from 0 to 100000/);
  const b = make({ maxConcurrent: 8, concurrencyLimit: 'adaptive', minConcurrency: 2 });
  expect(b.stats().bulkhead).toMatchObject({ limit: 8, inflight: 0 });
});

test('a durable write refused by the bulkhead was never sent: it is queued in the outbox (ECONCURRENCY) and delivered later', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-outbox-'));
  try {
    const b = make({ maxConcurrent: 1, outbox: 'on', outboxDir: dir });
    let release;
    const posts = [];
    up.set((req, res, hit) => {
      if (req.url === '/held') release = () => json(res, 200, {});
      else {
        posts.push(hit);
        json(res, 201, { id: 'w1' });
      }
    });
    const held = b.fire('/held');
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 10));
    const delivered = new Promise((resolve) => b.once('delivered', resolve));
    const w = await b.fire('/api/sigils', { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' }, durable: true });
    expect(w).toMatchObject({ queued: true, code: 'ECONCURRENCY', source: 'outbox' });
    expect(posts).toHaveLength(0);
    release();
    await held;
    // The slot is free again: the outbox delivers the write, with its Idempotency-Key.
    const d = await delivered;
    expect(d).toMatchObject({ id: w.id, idempotencyKey: w.idempotencyKey });
    expect(posts).toHaveLength(1);
    expect(posts[0].headers['idempotency-key']).toBe(w.idempotencyKey);
  } finally {
    for (const b of breakers.splice(0)) b.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

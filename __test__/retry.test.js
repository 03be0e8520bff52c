'use strict';

// Retries against a real local server: attempts, idempotency, Retry-After, deadline, budget.

const { createBreaker } = require('..');
const { startUpstream, json, hang, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];
function make(opts = {}) {
  const b = createBreaker({ name: uniqueName('r'), baseUrl: up.url, logger: false, retryBaseMs: 10, retryMaxMs: 50, ...opts });
  breakers.push(b);
  return b;
}

beforeEach(async () => {
  up = await startUpstream();
});
afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
});

test('fails twice then succeeds: success, and the server saw 3 attempts', async () => {
  let n = 0;
  up.set((req, res) => (++n <= 2 ? json(res, 503, {}) : json(res, 200, { attempt: n })));
  const b = make();
  const retries = [];
  b.on('retry', (e) => retries.push(e));
  expect(await b.fire('/api/sigils')).toEqual({ attempt: 3 });
  expect(up.hits).toHaveLength(3);
  await new Promise((r) => setImmediate(r));
  expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
  expect(retries[0]).toMatchObject({ reason: 'upstream_error', code: 'EUPSTREAM' });
  for (const r of retries) {
    expect(r.delayMs).toBeGreaterThanOrEqual(10);
    expect(r.delayMs).toBeLessThanOrEqual(50);
  }
});

test('maxAttempts bounds the attempts', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make({ maxAttempts: 5, maxFailures: 0 });
  expect((await b.fire('/x')).code).toBe('EUPSTREAM');
  expect(up.hits).toHaveLength(5);
});

test('a POST without Idempotency-Key is sent once', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make();
  const r = await b.fire('/api/sigils', { method: 'POST', body: '{}' });
  expect(r).toMatchObject({ fallback: true, code: 'EUPSTREAM' });
  expect(up.hits).toHaveLength(1);
});

test('with generated keys every attempt carries the same Idempotency-Key', async () => {
  let n = 0;
  up.set((req, res) => (++n <= 2 ? json(res, 502, {}) : json(res, 201, { ok: true })));
  const b = make({ generateIdempotencyKeys: true });
  expect(await b.fire('/api/sigils', { method: 'POST', body: '{}' })).toEqual({ ok: true });
  const keys = up.hits.map((h) => h.headers['idempotency-key']);
  expect(keys).toHaveLength(3);
  expect(new Set(keys).size).toBe(1);
  expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
});

test('a caller-supplied Idempotency-Key makes a POST retryable and is kept', async () => {
  let n = 0;
  up.set((req, res) => (++n <= 1 ? json(res, 503, {}) : json(res, 201, {})));
  const b = make();
  await b.fire('/api/sigils', { method: 'POST', body: '{}', headers: { 'Idempotency-Key': 'mine-1' } });
  expect(up.hits.map((h) => h.headers['idempotency-key'])).toEqual(['mine-1', 'mine-1']);
});

test('429 with Retry-After: 1 waits about a second', async () => {
  let n = 0;
  up.set((req, res) => (++n === 1 ? json(res, 429, {}, { 'retry-after': '1' }) : json(res, 200, { ok: 1 })));
  const b = make();
  const t0 = Date.now();
  expect(await b.fire('/rl')).toEqual({ ok: 1 });
  const e = Date.now() - t0;
  expect(e).toBeGreaterThanOrEqual(950);
  expect(e).toBeLessThan(2000);
});

test('retryAfterMaxMs caps a long Retry-After', async () => {
  let n = 0;
  up.set((req, res) => (++n === 1 ? json(res, 503, {}, { 'retry-after': '30' }) : json(res, 200, {})));
  const b = make({ retryAfterMaxMs: 200 });
  const t0 = Date.now();
  await b.fire('/rl');
  const e = Date.now() - t0;
  expect(e).toBeGreaterThanOrEqual(190);
  expect(e).toBeLessThan(1500);
});

test('a hanging server with a 500 ms deadline settles within ~600 ms', async () => {
  up.set(hang);
  const b = make({ deadline: 500, timeout: 3000, maxAttempts: 3 });
  const t0 = Date.now();
  const r = await b.fire('/hang');
  const e = Date.now() - t0;
  expect(r).toMatchObject({ fallback: true, code: 'ETIMEDOUT' });
  expect(e).toBeGreaterThanOrEqual(480);
  expect(e).toBeLessThan(650);
});

test('per-call deadline overrides the option', async () => {
  up.set(hang);
  const b = make({ deadline: 10_000 });
  const t0 = Date.now();
  await b.fire('/hang', { deadline: 200 });
  expect(Date.now() - t0).toBeLessThan(600);
});

test('4xx is not retried', async () => {
  up.set((req, res) => json(res, 400, {}));
  const b = make({ maxAttempts: 3 });
  await expect(b.fire('/bad')).rejects.toMatchObject({ code: 'EHTTP', status: 400 });
  expect(up.hits).toHaveLength(1);
});

test('retry budget: with 0 % and no minimum, nothing is retried', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make({ retryBudgetPercent: 0, retryMinPerSec: 0, maxFailures: 0 });
  const exhausted = [];
  b.on('retryBudgetExhausted', () => exhausted.push(1));
  for (let i = 0; i < 5; i++) await b.fire('/x');
  expect(up.hits).toHaveLength(5);
  await new Promise((r) => setImmediate(r));
  expect(exhausted).toHaveLength(5);
});

test('retry budget: retries stay bounded by percent + minimum during an outage', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make({ retryBudgetPercent: 20, retryMinPerSec: 1, maxFailures: 0, volumeThreshold: 1000000, retryBaseMs: 1, retryMaxMs: 1 });
  const calls = 100;
  for (let i = 0; i < calls; i++) await b.fire('/x');
  const retries = up.hits.length - calls;
  // 20 % of 100 + 1/s over the 10 s budget window = 30; without a budget 200.
  expect(retries).toBeLessThanOrEqual(30);
  expect(retries).toBeGreaterThanOrEqual(20);
});

test('no retry once the breaker trips', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make({ maxFailures: 2, maxAttempts: 5 });
  await b.fire('/x');
  expect(up.hits).toHaveLength(2);
  expect(b.state).toBe('open');
});

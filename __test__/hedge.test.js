'use strict';

// Hedged reads (issue 31) against a real upstream on 127.0.0.1: the first answer wins and the
// losing copy's connection is closed (counted on the server's side), writes are never hedged
// (each method, keyed or not, durable or not), and a lone call hedges on its JS thread's own
// runtime as on the I/O thread. The policy's timing and budget rules are tested in the core
// on paused time (crates/core/src/hedge/tests.rs, breaker/tests_hedge.rs).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createBreaker, metrics } = require('..');
const { inlineStats } = require('../lib/testing');
const { startUpstream, json, eventually, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];
const dirs = [];

function make(opts = {}) {
  const b = createBreaker({ name: uniqueName('hedge'), baseUrl: up.url, logger: false, env: {}, hedgeAfterMs: 40, maxAttempts: 1, ...opts });
  breakers.push(b);
  return b;
}

// The n-th request (1-based) is answered after `delays[n - 1]` ms (the last one for the
// rest); every request's socket is remembered so the test can see it close.
function answerAfter(delays, { headersFirst = false } = {}) {
  const sockets = [];
  let n = 0;
  up.set((req, res) => {
    n += 1;
    const me = n;
    sockets.push(req.socket);
    const wait = delays[Math.min(me, delays.length) - 1];
    if (headersFirst && me === 1) {
      // Headers and half the body now, the rest late: the client must not wait to read it.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 12 });
      res.write('{"copy":');
      setTimeout(() => res.destroyed || res.end('1} '), wait).unref();
      return;
    }
    setTimeout(() => res.destroyed || json(res, 200, { copy: me }), wait).unref();
  });
  return sockets;
}

beforeEach(async () => {
  up = await startUpstream();
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

test.each([
  ['the slow copy has not answered', false],
  ['the slow copy sent its headers and half its body', true],
])('a slow read is hedged, the first answer wins and the losing connection is closed (%s)', async (_, headersFirst) => {
  const sockets = answerAfter([3000, 1], { headersFirst });
  const b = make();
  const events = [];
  b.on('hedge', (e) => events.push(e));
  const t0 = Date.now();
  await expect(b.fire('/sigils/1')).resolves.toEqual({ copy: 2 });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(up.hits).toHaveLength(2);
  // Two connections: the hedge could not share the first copy's (busy).
  expect(sockets[0]).not.toBe(sockets[1]);
  // The loser's connection is dropped by the client: the server sees it close, well before
  // the 3 s answer it was waiting to send.
  await eventually(() => sockets[0].destroyed, 1500);
  expect(sockets[1].destroyed).toBe(false);
  await eventually(() => events.length === 1, 1000);
  expect(events[0]).toMatchObject({ result: 'won', attempt: 1 });
  expect(events[0].afterMs).toBeGreaterThanOrEqual(39);
  expect(b.stats().hedges).toEqual({ won: 1, lost: 0, skipped: 0 });
  expect(metrics()).toContain(`dnastore_hedges_total{name="${b.name}",result="won"} 1`);
});

test('a read that answers in time sends no hedge; one whose hedge loses counts it lost', async () => {
  answerAfter([5, 120, 3000]);
  const b = make({ hedgeAfterMs: 60 });
  await expect(b.fire('/fast')).resolves.toEqual({ copy: 1 });
  expect(up.hits).toHaveLength(1);
  // The second request answers at 120 ms; its hedge (the third, sent at 60 ms) never answers.
  await expect(b.fire('/late')).resolves.toEqual({ copy: 2 });
  expect(up.hits).toHaveLength(3);
  expect(b.stats().hedges).toEqual({ won: 0, lost: 1, skipped: 0 });
  expect(b.stats().successes).toBe(2);
  expect(b.stats().failures).toBe(0);
});

describe('writes are never hedged', () => {
  const cases = [];
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    cases.push([method, 'plain'], [method, 'keyed'], [method, 'durable']);
  }
  test.each(cases)('%s (%s)', async (method, variant) => {
    answerAfter([300]);
    let opts = {};
    if (variant === 'durable') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-hedge-'));
      dirs.push(dir);
      opts = { outbox: 'on', outboxDir: dir };
    }
    const b = make(opts);
    const events = [];
    b.on('hedge', (e) => events.push(e));
    const init = { method, body: '{}', headers: { 'content-type': 'application/json' } };
    if (variant === 'keyed') init.headers['idempotency-key'] = `k-${method}`;
    if (variant === 'durable') init.durable = true;
    await expect(b.fire('/sigils', init)).resolves.toEqual({ copy: 1 });
    expect(up.hits).toHaveLength(1);
    expect(events).toEqual([]);
    expect(b.stats().hedges).toEqual({ won: 0, lost: 0, skipped: 0 });
  });
});

test('a lone call hedges on its JS thread own runtime (inline I/O)', async () => {
  const sockets = answerAfter([3000, 1]);
  const b = make();
  const before = inlineStats().calls;
  await expect(b.fire('/inline')).resolves.toEqual({ copy: 2 });
  expect(inlineStats().calls).toBe(before + 1);
  await eventually(() => sockets[0].destroyed, 1500);
  expect(b.stats().hedges.won).toBe(1);
});

test("hedgeAfterMs 'auto' learns the p95 first, then hedges at its floor", async () => {
  answerAfter([1]);
  const b = make({ hedgeAfterMs: 'auto' });
  // 32 samples, then a refresh (every 100 ms at most).
  for (let i = 0; i < 32; i++) await b.fire(`/learn/${i}`);
  await new Promise((r) => setTimeout(r, 120));
  await b.fire('/refresh');
  const sockets = answerAfter([3000, 1]);
  const events = [];
  b.on('hedge', (e) => events.push(e));
  const t0 = Date.now();
  await expect(b.fire('/slow')).resolves.toEqual({ copy: 2 });
  expect(Date.now() - t0).toBeLessThan(1500);
  await eventually(() => events.length === 1 && sockets[0].destroyed, 1500);
  // A p95 of a couple of ms: the 10 ms floor.
  expect(events[0].result).toBe('won');
  expect(events[0].afterMs).toBeGreaterThanOrEqual(9);
  expect(events[0].afterMs).toBeLessThan(500);
});

test('options are validated: a delay the timeout never reaches, hedgeMax without hedging', () => {
  expect(() => make({ hedgeAfterMs: 5000, timeout: 3000 })).toThrow(/hedgeAfterMs \(5000 ms\): must be below timeout \(3000 ms\)/);
  expect(() => make({ hedgeAfterMs: 'soon' })).toThrow(/hedgeAfterMs.*'auto'/);
  expect(() => make({ hedgeAfterMs: 0, hedgeMax: 2 })).toThrow(/hedgeMax: only applies with hedgeAfterMs/);
  const off = make({ hedgeAfterMs: 0 });
  expect(off.stats().hedges).toBeUndefined();
});

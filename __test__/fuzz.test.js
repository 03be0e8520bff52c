'use strict';

// A seeded fuzz test of the JS boundary: fire() with random URLs and init objects (wrong
// types, throwing getters and iterators, odd headers, bodies, signals, overrides) against a
// real upstream that answers at random (JSON, 5xx, 4xx, hangs, resets, garbage, oversized),
// on breakers that open and close meanwhile. Every call must return a Promise without
// throwing, every Promise must settle, and every rejection must carry one of the core's
// codes; the process must not crash.
//
// CI runs it for FUZZ_SECONDS (default 3); a longer run: `npm run fuzz` (60 s), or set
// FUZZ_SECONDS and FUZZ_SEED to replay a failure (the seed is printed on failure).

const native = require('../binding.js');
const { createBreaker } = require('..');
const { startUpstream, json, uniqueName } = require('./helpers/upstream');
const { seededRandom } = require('../examples/fake-dnastore/random');

const SECONDS = Number(process.env.FUZZ_SECONDS || 3);
const SEED = Number(process.env.FUZZ_SEED || Date.now() % 2 ** 31);
const CODES = new Set(native.errorCodes());

let up;
const breakers = [];

beforeAll(async () => {
  up = await startUpstream();
});

afterAll(async () => {
  for (const b of breakers) b.shutdown();
  await up.stop();
});

test(`fuzz fire() for ${SECONDS} s (seed ${SEED}): never throws, always settles, every rejection coded`, async () => {
  const r = seededRandom(SEED);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const int = (n) => Math.floor(r() * n);

  up.set((req, res) => {
    switch (int(8)) {
      case 0:
        return json(res, 503, { down: true }, { 'retry-after': '0' });
      case 1:
        return json(res, 404, { none: true });
      case 2:
        return setTimeout(() => json(res, 200, { slow: true }), int(300));
      case 3:
        return req.socket.destroy();
      case 4:
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{not json');
      case 5:
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ big: 'x'.repeat(4000) }));
      default:
        return json(res, 200, { ok: true, url: req.url }, int(4) === 0 ? { 'cache-control': 'no-store', vary: 'accept' } : {});
    }
  });

  for (let i = 0; i < 4; i++) {
    breakers.push(
      createBreaker({
        name: uniqueName('fuzz'),
        baseUrl: up.url,
        logger: false,
        timeout: 200,
        deadline: 600,
        maxFailures: 1 + int(4),
        resetTimeout: 50 + int(200),
        halfOpenMaxCalls: 1 + int(2),
        maxResponseBytes: 2000,
        retryBaseMs: 1,
        retryMaxMs: 20,
        coalesce: r() < 0.7,
        lkgMaxEntries: pick([0, 10, 1000]),
        fallback: r() < 0.3 ? () => (r() < 0.5 ? 'stub' : Promise.reject(Object.assign(new Error('fb'), { code: 'EINVALID' }))) : undefined,
      }),
    );
  }

  const throwing = (v) => () => {
    throw v;
  };
  const weird = () => pick([null, undefined, 0, -1, NaN, Infinity, '', 'x', Symbol('s'), {}, [], () => {}, 10n, new Error('e')]);
  const anyValue = () => (r() < 0.5 ? weird() : pick(['GET', 'POST', 'PUT', 'delete', 'GE T', 'x'.repeat(300), '\r\n']));

  const url = () =>
    pick([
      () => '/api/sigils',
      () => `/api/sigils/${int(5)}?q=${int(3)}`,
      () => `${up.url}/abs/${int(3)}`,
      () => `http://user:pw@127.0.0.1:${up.port}/cred`,
      () => new URL('/u', up.url),
      () => 'http://127.0.0.1:1/refused',
      () => 'ftp://x/',
      () => 'http://[::1',
      () => `/${'a'.repeat(int(5000))}`,
      () => '/\u0000\r\n',
      weird,
      () => ({ toString: throwing(null) }),
    ])();

  const headers = () =>
    pick([
      () => undefined,
      () => ({ 'x-tenant-id': `t${int(3)}`, cookie: `s=${int(3)}`, accept: pick(['a', 'b']) }),
      () => [['x-a', '1'], ['x-a', '2']],
      () => new Map([['authorization', 'Bearer x']]),
      () => new Headers({ 'x-h': 'v' }),
      () => ({ 'bad name': 'v' }),
      () => ({ 'x-v': 'bad\r\nvalue' }),
      () => [[1, 2, 3]],
      () => Array.from({ length: pick([999, 1000, 1001, 40000]) }, (_, i) => [`x-${i}`, 'v']),
      () => ({ [Symbol.iterator]: throwing(pick([null, undefined, 'it'])) }),
      () => Object.defineProperty({}, 'x', { get: throwing(undefined), enumerable: true }),
      weird,
    ])();

  const signal = () => {
    switch (int(6)) {
      case 0: {
        const c = new AbortController();
        c.abort();
        return c.signal;
      }
      case 1: {
        const c = new AbortController();
        setTimeout(() => c.abort(), int(100));
        return c.signal;
      }
      case 2:
        return { aborted: false, addEventListener() {}, removeEventListener: throwing(null) };
      case 3:
        return weird();
      default:
        return new AbortController().signal;
    }
  };

  const init = () => {
    if (r() < 0.15) return weird();
    const o = {};
    const fields = {
      method: anyValue,
      headers,
      body: () => pick([undefined, 'x', Buffer.from('b'), new Uint8Array(3), {}, 5, weird()]),
      timeout: () => pick([undefined, 1, 50, 1000, 0, -5, 1.5, NaN, 1e12, '100', weird()]),
      deadline: () => pick([undefined, 1, 100, 500, 0, NaN, 1e12, weird()]),
      signal,
      fullResponse: () => pick([undefined, true, false, 'yes']),
      route: () => pick([undefined, '/api/sigils/:id', 'no-slash', '/q?x', 'x'.repeat(200), weird()]),
    };
    for (const [k, gen] of Object.entries(fields)) {
      if (r() < 0.4) continue;
      if (r() < 0.05) Object.defineProperty(o, k, { get: throwing(weird()), enumerable: true });
      else o[k] = gen();
    }
    return o;
  };

  const problems = [];
  const pending = new Set();
  let calls = 0;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    for (let i = 0; i < 50; i++) {
      const b = pick(breakers);
      const args = [url(), init()];
      let p;
      try {
        p = b.fire(...args);
      } catch (err) {
        problems.push(`fire() threw synchronously: ${String(err?.message ?? err)}`);
        continue;
      }
      if (!p || typeof p.then !== 'function') {
        problems.push('fire() did not return a Promise');
        continue;
      }
      calls += 1;
      const tracked = p.then(
        () => {},
        (err) => {
          if (!err || !CODES.has(err.code)) problems.push(`rejection without a known code: ${String(err?.code)} ${String(err?.message ?? err)}`);
        },
      );
      pending.add(tracked);
      tracked.finally(() => pending.delete(tracked));
    }
    await new Promise((res) => setImmediate(res));
  }
  // Every call has a deadline of at most 600 ms (or was rejected at once): all settle.
  const deadline = Date.now() + 10_000;
  while (pending.size > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  if (pending.size > 0) problems.push(`${pending.size} of ${calls} promises never settled`);
  if (problems.length > 0) {
    throw new Error(`seed ${SEED}: ${problems.length} problems in ${calls} calls, first: ${[...new Set(problems)].slice(0, 5).join(' | ')}`);
  }
  expect(calls).toBeGreaterThan(100);
}, 60_000 + SECONDS * 1000);

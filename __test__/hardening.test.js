'use strict';

// Issue 11's defects, each as a regression test at the JS boundary, against real servers
// on 127.0.0.1. (Crash 1 lives in workers.test.js, the heap test in memory.test.js, the
// fuzz test in fuzz.test.js, the identity table in identity.test.js.)

const { execFileSync } = require('node:child_process');
const path = require('node:path');
const native = require('../binding.js');
const { createBreaker, metrics } = require('..');
const { startUpstream, json, hang, eventually, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];

function make(opts = {}) {
  const b = createBreaker({ name: uniqueName('hard'), baseUrl: up.url, logger: false, maxAttempts: 1, ...opts });
  breakers.push(b);
  return b;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  up = await startUpstream();
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
});

test('(2) too many headers is EINVALID before anything is built, and a half-open trial slot can never wedge', async () => {
  const b = make({ maxFailures: 1, resetTimeout: 100, halfOpenMaxCalls: 1 });
  await b.fire('http://127.0.0.1:1/');
  expect(b.state).toBe('open');
  await sleep(150);
  const many = Array.from({ length: 40000 }, (_, i) => [`x-h${i}`, 'v']);
  const err = await b.fire('/ok', { headers: many }).catch((e) => e);
  expect(err.code).toBe('EINVALID');
  expect(err.message).toMatch(/too many headers: 40000 \(at most 1000\)/);
  // The trial slot came back: the next call is the trial, reaches the healthy upstream, closes.
  const r = await b.fire('/ok');
  expect(r).toEqual({ ok: true });
  expect(b.state).toBe('closed');
  expect(up.hits.map((h) => h.url)).toEqual(['/ok']);
});

test('(5) fire() never throws: getters and iterators that throw anything (null, undefined, ...) reject with EINVALID', async () => {
  const b = make();
  const thrown = [null, undefined, 0, 'str', Symbol('s'), new Error('boom'), { code: 'EOPENBREAKER' }];
  for (const value of thrown) {
    const throwing = () => {
      throw value;
    };
    const inits = [
      Object.defineProperty({}, 'method', { get: throwing }),
      Object.defineProperty({}, 'headers', { get: throwing }),
      { headers: { [Symbol.iterator]: throwing } },
      { headers: [[{ toString: throwing }, 'v']] },
      Object.defineProperty({}, 'signal', { get: throwing }),
      { signal: { aborted: false, addEventListener: throwing, removeEventListener() {} } },
    ];
    for (const init of inits) {
      let p;
      expect(() => {
        p = b.fire('/x', init);
      }).not.toThrow();
      const e = await p.then(
        () => null,
        (x) => x,
      );
      expect(e).not.toBeNull();
      expect(e.code).toBe('EINVALID');
      expect(e.cause).toBe(value);
    }
  }
  expect(up.hits).toHaveLength(0);
});

test('(5) the signal is read once, before anything is sent: a getter that throws later cannot turn a sent call into EINTERNAL', async () => {
  const b = make();
  let reads = 0;
  const signal = {
    addEventListener() {},
    removeEventListener() {},
    get aborted() {
      reads += 1;
      if (reads > 1) throw new Error('second read');
      return false;
    },
  };
  const r = await b.fire('/once', { method: 'POST', body: '{}', signal });
  expect(r).toEqual({ ok: true });
  expect(reads).toBe(1);
  expect(up.hits.map((h) => h.url)).toEqual(['/once']);
});

test('a relative URL cannot leave baseUrl\'s origin (//host/x, \\\\host/x): EINVALID, nothing sent', async () => {
  const b = make();
  for (const evil of ['//evil.example/x', '\\\\evil.example/x', '/\\evil.example/x']) {
    const e = await b.fire(evil, { headers: { authorization: 'Bearer s3cret' } }).catch((x) => x);
    expect(e.code).toBe('EINVALID');
    expect(e.message).toMatch(/origin/);
    expect(e.message).not.toMatch(/s3cret/);
  }
  expect(up.hits).toHaveLength(0);
  expect(await b.fire(`//${new URL(up.url).host}/same`)).toEqual({ ok: true });
});

test('(6) shutdown() settles the handle\'s calls still running at once with ESHUTDOWN', async () => {
  up.set(hang);
  const b = make({ timeout: 60_000, deadline: 60_000 });
  const pending = [b.fire('/slow/1'), b.fire('/slow/2', { method: 'POST', body: 'x' }), b.fire('/slow/3', { signal: new AbortController().signal })];
  await eventually(() => up.hits.length === 3);
  const t0 = Date.now();
  b.shutdown();
  const settled = await Promise.allSettled(pending);
  expect(Date.now() - t0).toBeLessThan(500);
  for (const s of settled) expect(s).toMatchObject({ status: 'rejected', reason: { code: 'ESHUTDOWN' } });
  expect(native.__pendingAborts()).toBe(0);
});

test('(6) shutting down one handle leaves another handle of the same breaker running', async () => {
  up.set((req, res) => setTimeout(() => json(res, 200, { late: true }), 200));
  const name = uniqueName('two-handles');
  const a = make({ name });
  const other = make({ name });
  const mine = a.fire('/a');
  const theirs = other.fire('/b');
  await eventually(() => up.hits.length === 2);
  a.shutdown();
  await expect(mine).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  await expect(theirs).resolves.toEqual({ late: true });
});

test('(6) shutdown() stops the shared cache\'s Redis task: no reconnect afterwards', async () => {
  // A "Redis" that accepts and closes every connection: the task keeps reconnecting.
  const net = require('node:net');
  let connections = 0;
  const fake = net.createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const b = make({ redisUrl: `redis://127.0.0.1:${fake.address().port}` });
    await b.fire('/ok'); // a stored GET starts the Redis task
    await eventually(() => connections >= 2, 5000);
    b.shutdown();
    // A connect the task began just before shutdown may still be accepted: let it land.
    await sleep(300);
    const at = connections;
    await sleep(1500); // its backoff is 0.1-2 s at this point: reconnects if it were alive
    expect(connections).toBe(at);
  } finally {
    await new Promise((r) => fake.close(r));
  }
});

test('(6) breakers dropped without shutdown() are collected and remove their metric series', () => {
  // A child process with --expose-gc: 1,000 breakers created and dropped, then GC.
  const script = `
    const { createBreaker, metrics } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const lines = () => metrics().split('\\n').filter((l) => l.includes('name="gc-')).length;
    function createAndDrop() {
      for (let i = 0; i < 1000; i++) {
        const b = createBreaker({ name: 'gc-' + i, logger: false });
        b.on('open', () => {});
      }
    }
    (async () => {
      createAndDrop();
      const before = lines();
      for (let i = 0; i < 50 && lines() > 0; i++) {
        global.gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(JSON.stringify({ before, after: lines() }));
    })();
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000 }));
  expect(out.before).toBeGreaterThan(10_000);
  expect(out.after).toBe(0);
});

test('(7) the fallback function gets the redacted URL and the route template, never credentials or the query', async () => {
  up.set((req, res) => json(res, 503, {}));
  const seen = [];
  const b = make({ fallback: (info) => seen.push(info) && 'fb', maxFailures: 1, resetTimeout: 60_000 });
  const url = `http://admin:hunter2@127.0.0.1:${up.port}/api/sigils/7?token=q-secret#frag`;
  await b.fire(url, { route: '/api/sigils/:id' });
  await b.fire(url); // open now: the short-circuit path
  await b.fire(url, { route: '/api/sigils/:id' });
  expect(seen).toEqual([
    { code: 'EUPSTREAM', url: `http://127.0.0.1:${up.port}/api/sigils/7`, route: '/api/sigils/:id' },
    { code: 'EOPENBREAKER', url: `http://127.0.0.1:${up.port}/api/sigils/7` },
    { code: 'EOPENBREAKER', url: `http://127.0.0.1:${up.port}/api/sigils/7`, route: '/api/sigils/:id' },
  ]);
});

test('(7) EINVALID messages quote caller input bounded and escaped; secrets are never echoed in ECONFIG', async () => {
  const b = make();
  const evil = `X\r\nSet-Cookie: a=b${'z'.repeat(500)}`;
  for (const init of [{ method: evil }, { headers: [[evil, 'v']] }]) {
    const e = await b.fire('/x', init).catch((x) => x);
    expect(e.code).toBe('EINVALID');
    expect(e.message).not.toMatch(/[\r\n]/);
    expect(e.message).toContain('\\r\\n');
    expect(e.message.length).toBeLessThan(200);
  }
  for (const signingSecret of [424242, true, ['hunter2']]) {
    let err;
    try {
      createBreaker({ name: uniqueName(), signingSecret, logger: false });
    } catch (e) {
      err = e;
    }
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toMatch(/`signingSecret`/);
    expect(err.message).not.toMatch(/424242|true|hunter2/);
  }
  expect(() => createBreaker({ name: uniqueName(), signingSecret: '', logger: false })).toThrow(/must not be empty/);
});

test('(8) a call waiting out its backoff settles with the fallback as soon as the circuit opens', async () => {
  let n = 0;
  // The first request fails fast; the others hang until the circuit opens.
  up.set((req, res) => (n++ === 0 ? json(res, 503, {}) : json(res, 503, {})));
  const b = make({ maxAttempts: 3, maxFailures: 2, retryBaseMs: 2000, retryMaxMs: 2000, resetTimeout: 60_000 });
  const t0 = Date.now();
  const waiting = b.fire('/a'); // fails, then sleeps 2 s before its retry
  await eventually(() => up.hits.length === 1);
  await b.fire('/b'); // the second consecutive failure opens the circuit
  expect(b.state).toBe('open');
  const r = await waiting;
  expect(r).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(up.hits).toHaveLength(2);
});

test('typed boundary: outcome kinds are named constants, error codes come from the core list', () => {
  expect(native.OutcomeKind).toMatchObject({ Response: expect.any(Number), Fallback: expect.any(Number), Rejection: expect.any(Number), Queued: expect.any(Number) });
  expect(new Set(Object.values(native.OutcomeKind)).size).toBe(4);
  expect(native.errorCodes()).toEqual(
    expect.arrayContaining(['EOPENBREAKER', 'ETIMEDOUT', 'EINVALID', 'ESHUTDOWN', 'EINTERNAL', 'ECONFIG', 'EHTTP', 'EABORTED']),
  );
  // Metrics still render after all of the above.
  expect(typeof metrics()).toBe('string');
});

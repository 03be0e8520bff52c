'use strict';

// The JS boundary against a real HTTP server on 127.0.0.1: result shapes, error codes,
// state changes, events, shutdown. The ticket's unit tests ("opens after consecutive
// failures", "fallback when open") are the first two.

const { createBreaker, metrics } = require('..');
const { testPanic } = require('../lib/testing');
const { startUpstream, json, hang, eventually, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];

function make(opts = {}) {
  const b = createBreaker({ name: uniqueName(), baseUrl: up.url, logger: false, maxAttempts: 1, ...opts });
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

const fail503 = (req, res) => json(res, 503, { error: 'down' });

test('opens after consecutive failures (maxFailures)', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 3 });
  const opened = new Promise((resolve) => b.once('open', resolve));
  for (let i = 0; i < 2; i++) await b.fire('/api/sigils');
  expect(b.state).toBe('closed');
  const third = await b.fire('/api/sigils');
  expect(third).toEqual({ fallback: true, data: null, error: 'DNAStore unavailable', code: 'EUPSTREAM', source: 'none' });
  expect(b.state).toBe('open');
  const t = await opened;
  expect(t).toMatchObject({ from: 'closed', to: 'open', reason: 'consecutive failures', consecutiveFailures: 3, trips: 1 });
});

test('fallback when open: answers at once and no request reaches the server', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 1, resetTimeout: 60_000 });
  await b.fire('/x');
  expect(b.state).toBe('open');
  const before = up.hits.length;
  const pending = Array.from({ length: 100 }, () => b.fire('/x'));
  // Always a thenable, even when answered synchronously.
  for (const p of pending) expect(typeof p.then).toBe('function');
  const results = await Promise.all(pending);
  for (const r of results) expect(r).toMatchObject({ fallback: true, code: 'EOPENBREAKER', data: null, source: 'none' });
  expect(up.hits.length).toBe(before);
  expect(b.stats().rejects).toBe(100);
});

test('wrong argument types reject EINVALID whatever the state; an open circuit never hides them', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 1, resetTimeout: 60_000 });
  const bad = () => [b.fire(42), b.fire(42, {}), b.fire('/x', 'init'), b.fire('/x', { method: 5 }), b.fire('/x', { body: {} })];
  for (const state of ['closed', 'open']) {
    if (state === 'open') await b.fire('/x');
    expect(b.state).toBe(state);
    for (const p of bad()) await expect(p).rejects.toMatchObject({ code: 'EINVALID' });
  }
  await expect(b.fire('/x')).resolves.toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
  await expect(b.fire('/x', { method: 'GET' })).resolves.toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
});

test('2xx resolves parsed JSON, text as text, fullResponse gives status and headers', async () => {
  up.set((req, res) => {
    if (req.url === '/text') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('hello');
    }
    json(res, 201, { id: 7, path: req.url }, { 'x-trace': 'abc' });
  });
  const b = make();
  expect(await b.fire('/api/sigils/7')).toEqual({ id: 7, path: '/api/sigils/7' });
  expect(await b.fire(`${up.url}/abs`)).toEqual({ id: 7, path: '/abs' });
  expect(await b.fire(new URL('/u', up.url))).toEqual({ id: 7, path: '/u' });
  expect(await b.fire('/text')).toBe('hello');
  const full = await b.fire('/f', { fullResponse: true });
  expect(full.status).toBe(201);
  expect(full.headers['x-trace']).toBe('abc');
  expect(full.data).toEqual({ id: 7, path: '/f' });
});

test('POST sends method, headers and body (string or Buffer)', async () => {
  up.set((req, res, hit) => json(res, 200, { got: hit.body }));
  const b = make();
  const r = await b.fire('/api/sigils', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': 't1' },
    body: JSON.stringify({ a: 1 }),
  });
  expect(r).toEqual({ got: '{"a":1}' });
  expect(up.hits[0]).toMatchObject({ method: 'POST', url: '/api/sigils' });
  expect(up.hits[0].headers['x-tenant-id']).toBe('t1');
  await b.fire('/b', { method: 'PUT', headers: new Headers({ 'x-h': '1' }), body: Buffer.from('raw') });
  expect(up.hits[1]).toMatchObject({ method: 'PUT', body: 'raw' });
  expect(up.hits[1].headers['x-h']).toBe('1');
});

test('404 rejects with EHTTP, status and body, and does not count against the breaker', async () => {
  up.set((req, res) => json(res, 404, { error: 'no such sigil' }));
  const b = make({ maxFailures: 1 });
  const err = await b.fire('/api/sigils/404').catch((e) => e);
  expect(Object.prototype.toString.call(err)).toBe('[object Error]');
  expect(err.code).toBe('EHTTP');
  expect(err.status).toBe(404);
  expect(JSON.parse(err.body)).toEqual({ error: 'no such sigil' });
  await b.fire('/api/sigils/404').catch(() => {});
  expect(b.state).toBe('closed');
  expect(b.stats()).toMatchObject({ failures: 0, clientErrors: 2 });
});

test('408 and 429 count as failures; a garbage JSON 200 is EBADBODY', async () => {
  const b = make({ maxFailures: 10 });
  up.set((req, res) => json(res, 408, {}));
  expect((await b.fire('/a')).code).toBe('EUPSTREAM');
  up.set((req, res) => json(res, 429, {}));
  expect((await b.fire('/a')).code).toBe('ERATELIMITED');
  up.set((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"truncated": ');
  });
  expect((await b.fire('/a')).code).toBe('EBADBODY');
  expect(b.stats().failures).toBe(3);
});

test('a hanging upstream yields the fallback within the timeout', async () => {
  up.set(hang);
  const b = make({ timeout: 200 });
  const t0 = Date.now();
  const r = await b.fire('/slow');
  const elapsed = Date.now() - t0;
  expect(r).toMatchObject({ fallback: true, code: 'ETIMEDOUT' });
  expect(elapsed).toBeGreaterThanOrEqual(190);
  expect(elapsed).toBeLessThan(1000);
});

test('per-call timeout overrides the option', async () => {
  up.set(hang);
  const b = make({ timeout: 5000 });
  const t0 = Date.now();
  expect((await b.fire('/slow', { timeout: 100 })).code).toBe('ETIMEDOUT');
  expect(Date.now() - t0).toBeLessThan(1000);
});

test('connection refused is ECONNREFUSED', async () => {
  const b = make();
  await up.stop();
  expect((await b.fire('/x')).code).toBe('ECONNREFUSED');
  await up.restart();
});

test('opens, goes half-open after resetTimeout, closes after the upstream recovers', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 2, resetTimeout: 200, halfOpenMaxCalls: 1 });
  const seen = [];
  for (const e of ['open', 'halfOpen', 'close']) b.on(e, () => seen.push(e));
  await b.fire('/x');
  await b.fire('/x');
  expect(b.state).toBe('open');
  up.set((req, res) => json(res, 200, { ok: true }));
  // resetTimeout is decided lazily: the first call after it is the trial.
  await eventually(async () => {
    await b.fire('/x');
    return b.state === 'closed';
  }, 3000, 50);
  await eventually(() => seen.length === 3);
  expect(seen).toEqual(['open', 'halfOpen', 'close']);
});

test('half-open admits exactly halfOpenMaxCalls trial calls', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 1, resetTimeout: 100, halfOpenMaxCalls: 2 });
  await b.fire('/x');
  const hitsAtOpen = up.hits.length;
  let release;
  const gate = new Promise((r) => (release = r));
  up.set((req, res) => gate.then(() => json(res, 200, {})));
  await new Promise((r) => setTimeout(r, 120));
  // Distinct URLs: identical concurrent GETs would be coalesced into one request.
  const calls = Array.from({ length: 10 }, (_, i) => b.fire(`/x/${i}`));
  await eventually(() => up.hits.length === hitsAtOpen + 2);
  release();
  const results = await Promise.all(calls);
  expect(up.hits.length).toBe(hitsAtOpen + 2);
  expect(results.filter((r) => r && r.fallback && r.code === 'EOPENBREAKER')).toHaveLength(8);
  expect(b.state).toBe('closed');
});

test('percentage trips only past volumeThreshold (errorThresholdPercentage)', async () => {
  const b = make({ maxFailures: 0, volumeThreshold: 10, errorThresholdPercentage: 50 });
  let n = 0;
  // Alternating 503/200: exactly 50 % failures.
  up.set((req, res) => (n++ % 2 === 0 ? json(res, 503, {}) : json(res, 200, {})));
  for (let i = 0; i < 9; i++) await b.fire('/x');
  expect(b.state).toBe('closed');
  // Below volumeThreshold the rate is real (no -1 sentinel); it just cannot trip yet.
  expect(b.stats().failureRate).toBeCloseTo(55.56, 1);
  await b.fire('/x');
  expect(b.state).toBe('open');
  const b2 = make({ maxFailures: 0, volumeThreshold: 10, errorThresholdPercentage: 60 });
  n = 0;
  for (let i = 0; i < 20; i++) await b2.fire('/x');
  expect(b2.state).toBe('closed');
  expect(b2.stats().failureRate).toBe(50);
});

test('rollingCountTimeout/rollingCountBuckets: failures leave the window', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 0, rollingCountTimeout: 400, rollingCountBuckets: 4 });
  await b.fire('/x');
  await b.fire('/x');
  expect(b.stats()).toMatchObject({ failures: 2, windowMs: 400 });
  await eventually(() => b.stats().failures === 0, 2000);
});

test('maxResponseBytes: a larger body fails with ETOOLARGE', async () => {
  up.set((req, res) => json(res, 200, { blob: 'x'.repeat(2000) }));
  const b = make({ maxResponseBytes: 1000 });
  expect((await b.fire('/big')).code).toBe('ETOOLARGE');
  const b2 = make({ maxResponseBytes: 5000 });
  expect((await b2.fire('/big')).blob).toHaveLength(2000);
});

test('AbortSignal rejects with EABORTED and does not count as a failure', async () => {
  up.set(hang);
  const b = make({ timeout: 5000 });
  const ac = new AbortController();
  const p = b.fire('/slow', { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await expect(p).rejects.toMatchObject({ code: 'EABORTED' });
  expect(b.stats().failures).toBe(0);
  const pre = new AbortController();
  pre.abort();
  await expect(b.fire('/slow', { signal: pre.signal })).rejects.toMatchObject({ code: 'EABORTED' });
});

test('bad input rejects with EINVALID and a clear message; nothing is sent', async () => {
  const b = make();
  const noBase = createBreaker({ name: uniqueName(), logger: false });
  breakers.push(noBase);
  const cases = [
    [b.fire(42), /url must be a string/],
    [b.fire('/x', { body: { a: 1 } , method: 'POST' }), /JSON.stringify/],
    [b.fire('/x', 'GET'), /init must be an object/],
    [b.fire('/x', { method: 'GE T' }), /invalid HTTP method/],
    [b.fire('/x', { headers: { 'bad header': 'v' } }), /invalid header name/],
    [b.fire('/x', { headers: { authorization: 'Bearer sec\nret' } }), /invalid value for header/],
    [b.fire('/x', { timeout: -1 }), /init.timeout/],
    [b.fire('/x', { timeout: '100' }), /init.timeout must be a number/],
    [b.fire('ftp://127.0.0.1/x'), /unsupported URL scheme/],
    [noBase.fire('/relative'), /baseUrl/],
  ];
  for (const [p, msg] of cases) {
    const err = await p.catch((e) => e);
    expect(Object.prototype.toString.call(err)).toBe('[object Error]');
    expect(err.code).toBe('EINVALID');
    expect(err.message).toMatch(msg);
    expect(err.message).not.toMatch(/sec.?ret/);
  }
  expect(up.hits).toHaveLength(0);
  expect(b.stats().failures).toBe(0);
});

describe('configuration', () => {
  const bad = [
    [{ timeout: 'abc' }, /`timeout`: must be an integer from 1 to 600000/],
    [{ timeout: NaN }, /`timeout`/],
    [{ timeout: 0 }, /`timeout`/],
    [{ errorThresholdPercentage: 101 }, /from 1 to 100/],
    [{ halfOpenMaxCalls: 0 }, /halfOpenMaxCalls/],
    [{ rollingCountTimeout: 1005, rollingCountBuckets: 10 }, /multiple of rollingCountBuckets/],
    [{ retryBaseMs: 500, retryMaxMs: 100 }, /retryMaxMs/],
    [{ baseUrl: 'not a url' }, /option `baseUrl`/],
    [{ timout: 5 }, /unknown option `timout`/],
    [{ name: 'has spaces' }, /breaker name/],
    [{ fallback: 'x' }, /`fallback`: must be a function/],
    [{ logger: {} }, /`logger`/],
    [{ ioThreads: 0 }, /`ioThreads`: must be an integer from 1 to 64/],
  ];
  test.each(bad)('option %j is rejected', (opts, msg) => {
    let err;
    try {
      createBreaker({ name: uniqueName(), logger: false, ...opts });
    } catch (e) {
      err = e;
    }
    expect(Object.prototype.toString.call(err)).toBe('[object Error]');
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toMatch(msg);
  });

  test('numeric options may be decimal strings, read like env values', async () => {
    // `timeout: process.env.DNASTORE_TIMEOUT_MS || 3000` passes a string.
    const b = createBreaker({ name: uniqueName(), logger: false, timeout: '100', maxAttempts: '1', baseUrl: up.url });
    breakers.push(b);
    up.set(hang);
    await expect(b.fire('/slow')).resolves.toMatchObject({ fallback: true, code: 'ETIMEDOUT' });
    for (const [v, msg] of [['3000.5', /`timeout`: must be an integer from 1 to 600000/], ['1e3', /got "1e3"/], ['-1', /`timeout`/]]) {
      expect(() => createBreaker({ name: uniqueName(), logger: false, timeout: v })).toThrow(msg);
    }
  });

  const badEnv = [
    ['DNASTORE_TIMEOUT_MS', 'abc', /DNASTORE_TIMEOUT_MS="abc": must be an integer from 1 to 600000/],
    ['DNASTORE_TIMEOUT_MS', '-5', /from 1 to 600000/],
    ['DNASTORE_CIRCUIT_MAX_FAILURES', '1.5', /DNASTORE_CIRCUIT_MAX_FAILURES/],
    ['DNASTORE_CIRCUIT_RESET_MS', '0', /DNASTORE_CIRCUIT_RESET_MS/],
    ['DNASTORE_CIRCUIT_HALF_OPEN_CALLS', '0', /DNASTORE_CIRCUIT_HALF_OPEN_CALLS/],
    ['DNASTORE_URL', 'http//oops', /DNASTORE_URL/],
    ['DNASTORE_RETRY_MAX_ATTEMPTS', '11', /from 1 to 10/],
    ['DNASTORE_IO_THREADS', 'many', /DNASTORE_IO_THREADS="many": must be an integer from 1 to 64/],
  ];
  test.each(badEnv)('env %s=%s is rejected naming the variable and range', (k, v, msg) => {
    expect(() => createBreaker({ name: uniqueName(), logger: false, env: { [k]: v } })).toThrow(msg);
  });

  test('ioThreads is process-wide: a later breaker asking for another count is warned, and still works', async () => {
    const warnings = [];
    const logger = { warn: (o, m) => warnings.push(m), info: () => {}, error: () => {} };
    // The first breaker of the process starts the I/O runtime (1 thread unless told otherwise).
    breakers.push(createBreaker({ name: uniqueName(), logger, ioThreads: 1 }));
    const b = createBreaker({ name: uniqueName(), baseUrl: up.url, logger, ioThreads: 3 });
    breakers.push(b);
    expect(warnings).toEqual([expect.stringMatching(/ioThreads 3 ignored: .* runs with 1 thread\(s\)/)]);
    up.set((req, res) => json(res, 200, { ok: 1 }));
    await expect(b.fire('/x')).resolves.toEqual({ ok: 1 });
    const same = createBreaker({ name: uniqueName(), baseUrl: up.url, logger, ioThreads: 1 });
    breakers.push(same);
    expect(warnings).toHaveLength(1);
  });

  test('environment fills what options do not set; options win', async () => {
    up.set(hang);
    const b = createBreaker({ name: uniqueName(), logger: false, env: { DNASTORE_URL: up.url, DNASTORE_TIMEOUT_MS: '100', DNASTORE_RETRY_MAX_ATTEMPTS: '1' } });
    breakers.push(b);
    const t0 = Date.now();
    expect((await b.fire('/from-env')).code).toBe('ETIMEDOUT');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(up.hits[0].url).toBe('/from-env');
    // An option replaces its variable entirely: the variable is not read.
    const c = createBreaker({ name: uniqueName(), logger: false, timeout: 100, env: { DNASTORE_TIMEOUT_MS: 'abc' } });
    c.shutdown();
  });

  test('a URL with credentials is never echoed in errors', () => {
    let err;
    try {
      createBreaker({ name: uniqueName(), logger: false, env: { DNASTORE_URL: 'ftp://admin:hunter2@127.0.0.1/' } });
    } catch (e) {
      err = e;
    }
    expect(err.message).toMatch(/DNASTORE_URL/);
    expect(err.message).not.toMatch(/hunter2/);
  });

  test('same name + same options share one breaker; different options are refused', async () => {
    up.set(fail503);
    const name = uniqueName();
    const a = make({ name, maxFailures: 1 });
    const b = make({ name, maxFailures: 1 });
    await a.fire('/x');
    expect(b.state).toBe('open');
    expect(() => make({ name, maxFailures: 2 })).toThrow(/already exists/);
  });
});

test('events arrive in the order they happened', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 2, resetTimeout: 60_000 });
  const seen = [];
  for (const e of ['fire', 'success', 'failure', 'open', 'reject', 'fallback']) b.on(e, (p) => seen.push(`${e}${p.code ? `:${p.code}` : ''}`));
  await b.fire('/1');
  await b.fire('/2');
  await b.fire('/3');
  await eventually(() => seen.length >= 9);
  expect(seen).toEqual([
    'fire', 'failure:EUPSTREAM', 'fallback:EUPSTREAM',
    'fire', 'failure:EUPSTREAM', 'open', 'fallback:EUPSTREAM',
    'fire', 'reject:EOPENBREAKER', 'fallback:EOPENBREAKER',
  ].slice(0, seen.length));
  expect(seen).toHaveLength(10);
});

test('timeout event accompanies a timed-out attempt', async () => {
  up.set(hang);
  const b = make({ timeout: 50 });
  const got = new Promise((resolve) => b.once('timeout', resolve));
  await b.fire('/slow');
  expect(await got).toMatchObject({ code: 'ETIMEDOUT' });
});

test('the fallback function supplies a value when nothing is cached', async () => {
  up.set(fail503);
  const b = make({ fallback: async ({ code, url }) => ({ stub: true, code, url }) });
  expect(await b.fire('/fb')).toEqual({
    fallback: true,
    data: { stub: true, code: 'EUPSTREAM', url: `${up.url}/fb` },
    error: 'DNAStore unavailable',
    code: 'EUPSTREAM',
    source: 'function',
  });
  await eventually(() => metrics().includes(`dnastore_fallbacks_total{name="${b.name}",source="function"} 1`));
});

test('transition logs go to the injected logger: open=warn, halfOpen/close=info, no secrets', async () => {
  up.set(fail503);
  const lines = [];
  const logger = { warn: (o, m) => lines.push(['warn', o, m]), info: (o, m) => lines.push(['info', o, m]), error: () => {} };
  const b = make({ logger, maxFailures: 1, resetTimeout: 100, halfOpenMaxCalls: 1 });
  await b.fire('/x', { headers: { authorization: 'Bearer top-secret' } });
  up.set((req, res) => json(res, 200, {}));
  await new Promise((r) => setTimeout(r, 120));
  await b.fire('/x');
  await eventually(() => lines.length === 3);
  expect(lines.map(([l, o]) => `${l}:${o.to}`)).toEqual(['warn:open', 'info:halfOpen', 'info:closed']);
  expect(lines[0][1]).toMatchObject({ breaker: b.name, from: 'closed', reason: 'consecutive failures', consecutiveFailures: 1 });
  expect(lines[1][1].timeInPreviousMs).toBeGreaterThanOrEqual(100);
  expect(lines[0][2]).toMatch(/OPEN/);
  expect(JSON.stringify(lines)).not.toMatch(/top-secret/);
});

test('shutdown: emits shutdown, later calls reject with ESHUTDOWN, series removed', async () => {
  const b = make();
  await b.fire('/ok');
  expect(metrics()).toContain(`name="${b.name}"`);
  const got = new Promise((resolve) => b.once('shutdown', resolve));
  b.shutdown();
  await got;
  await expect(b.fire('/ok')).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  expect(metrics()).not.toContain(`name="${b.name}"`);
  b.shutdown(); // idempotent
});

test('a panic inside the addon becomes an EINTERNAL error, not a crash', async () => {
  await expect(testPanic('async')).rejects.toMatchObject({ code: 'EINTERNAL' });
  await expect(testPanic('sync')).rejects.toMatchObject({ code: 'EINTERNAL' });
});

test('metrics(): state, trips, requests by outcome and latency histogram', async () => {
  up.set(fail503);
  const b = make({ maxFailures: 2 });
  await b.fire('/x');
  await b.fire('/x');
  await b.fire('/x');
  const m = metrics();
  const n = `name="${b.name}"`;
  expect(m).toContain(`dnastore_circuit_state{${n}} 1`);
  expect(m).toContain(`dnastore_circuit_trips_total{${n}} 1`);
  expect(m).toContain(`dnastore_requests_total{${n},outcome="upstream_error"} 2`);
  expect(m).toContain(`dnastore_requests_total{${n},outcome="rejected"} 1`);
  expect(m).toContain(`dnastore_request_duration_seconds_count{${n}} 2`);
  expect(m).toMatch(/# TYPE dnastore_request_duration_seconds histogram/);
  expect(m).not.toMatch(/127\.0\.0\.1/);
});

test('redirects are followed within the upstream origin only; one to another host is answered as EHTTP', async () => {
  const other = await startUpstream((req, res) => json(res, 200, { leaked: true }));
  try {
    up.set((req, res) => {
      if (req.url === '/same') {
        res.writeHead(302, { location: '/final' }).end();
      } else if (req.url === '/away') {
        res.writeHead(302, { location: `${other.url}/final` }).end();
      } else json(res, 200, { final: true });
    });
    const b = make();
    await expect(b.fire('/same', { headers: { 'x-api-key': 'k1' } })).resolves.toEqual({ final: true });
    const err = await b.fire('/away', { headers: { 'x-api-key': 'k1' } }).then(
      () => null,
      (e) => e,
    );
    expect(err).toMatchObject({ code: 'EHTTP', status: 302 });
    expect(other.hits).toHaveLength(0);
    expect(b.state).toBe('closed');
  } finally {
    await other.stop();
  }
});

test('the per-request fast path, fire(url, ...init fields), rejects bad arguments with an error, never a crash', () => {
  const native = require('../binding.js');
  const nb = new native.NativeBreaker({ name: uniqueName(), baseUrl: 'http://127.0.0.1:9' }, {}, () => {});
  const { fire } = nb.fastPath();
  const thrown = (...args) => {
    try {
      fire(...args);
    } catch (e) {
      return e;
    }
    return undefined;
  };
  for (const bad of [42, undefined, {}, null]) {
    const err = thrown(bad);
    expect(Object.prototype.toString.call(err)).toBe('[object Error]');
    expect(err.message).toMatch(/string/i);
  }
  // init's fields, as the facade checked them: one of the wrong type is an error too.
  const u = undefined;
  for (const args of [[3], [u, [1, 2]], [u, u, 7], [u, u, u, 'soon'], [u, u, u, u, u, 'no'], [u, u, u, u, u, u, u, u, u, u, 5]]) {
    const err = thrown('/x', ...args);
    expect(Object.prototype.toString.call(err)).toBe('[object Error]');
  }
  nb.shutdown();
  // After shutdown: no short-circuit; fire() answers ESHUTDOWN synchronously, init or not.
  const { OutcomeKind } = require('../binding.js');
  expect(fire('/x')).toMatchObject({ kind: OutcomeKind.Rejection, code: 'ESHUTDOWN' });
  expect(fire('/x', 'GET', ['accept', 'text/plain'], undefined, 100)).toMatchObject({ kind: OutcomeKind.Rejection, code: 'ESHUTDOWN' });
});

test('the generated BreakerOptions type lists exactly the core option names', () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const dts = fs.readFileSync(path.join(__dirname, '..', 'binding.d.ts'), 'utf8');
  const body = dts.slice(dts.indexOf('export interface BreakerOptions {'));
  const fields = body.slice(0, body.indexOf('\n}')).match(/^ {2}(\w+)\?:/gm).map((f) => f.trim().replace('?:', ''));
  expect(fields.sort()).toEqual([...require('..').optionNames()].sort());
});

test('URL credentials and secret headers never reach errors, logs, events or metrics', async () => {
  up.set((req, res) => json(res, 404, { error: 'nope' }));
  const lines = [];
  const logger = { warn: (o, m) => lines.push(JSON.stringify(o) + m), info: (o, m) => lines.push(JSON.stringify(o) + m), error: () => {} };
  const withCreds = up.url.replace('http://', 'http://admin:hunter2@');
  const b = make({ baseUrl: withCreds, logger, maxFailures: 1 });
  const events = [];
  for (const e of ['failure', 'fallback', 'clientError', 'open']) b.on(e, (p) => events.push(JSON.stringify(p)));
  const err = await b.fire('/s?token=q-secret', { headers: { authorization: 'Bearer h-secret' } }).catch((e) => e);
  expect(err.code).toBe('EHTTP');
  expect(err.message).toContain('/s');
  up.set((req, res) => json(res, 503, {}));
  await b.fire('/s?token=q-secret', { headers: { authorization: 'Bearer h-secret' } });
  await eventually(() => lines.length >= 1 && events.length >= 3);
  const everything = [err.message, err.stack, ...lines, ...events, metrics()].join('\n');
  for (const secret of ['hunter2', 'admin:', 'q-secret', 'h-secret']) expect(everything).not.toContain(secret);
});

test('worker threads of one process share a breaker by name', async () => {
  const { Worker } = require('node:worker_threads');
  up.set((req, res) => json(res, 503, {}));
  const name = uniqueName('shared');
  const opts = { name, baseUrl: up.url, maxFailures: 2, maxAttempts: 1, resetTimeout: 60_000 };
  const main = make(opts);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { createBreaker } = require(workerData.pkg);
    const b = createBreaker({ ...workerData.opts, logger: false });
    (async () => {
      await b.fire('/w1');
      await b.fire('/w2');
      parentPort.postMessage(b.state);
      b.shutdown();
    })();
  `;
  const w = new Worker(code, { eval: true, workerData: { pkg: require.resolve('..'), opts } });
  const stateInWorker = await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  expect(stateInWorker).toBe('open');
  // The worker's failures opened the breaker the main thread holds.
  expect(main.state).toBe('open');
  expect(await main.fire('/m')).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
  expect(up.hits.map((h) => h.url)).toEqual(['/w1', '/w2']);
});

test('a worker that exits with calls in flight: their late completions are dropped safely, the shared breaker keeps working', async () => {
  const { Worker } = require('node:worker_threads');
  // Answers after 150 ms: the worker is gone by then.
  up.set((req, res) => setTimeout(() => json(res, 200, { late: true }), 150));
  const name = uniqueName('terminated');
  const opts = { name, baseUrl: up.url, maxFailures: 1, maxAttempts: 1, halfOpenMaxCalls: 1, resetTimeout: 60_000 };
  const main = make(opts);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { createBreaker } = require(workerData.pkg);
    const b = createBreaker({ ...workerData.opts, logger: false });
    for (let i = 0; i < 20; i++) b.fire('/inflight/' + i);
    // Started on the next turn; then more calls fired just before the worker exits.
    setTimeout(() => {
      for (let i = 0; i < 20; i++) b.fire('/unstarted/' + i);
      parentPort.postMessage('fired');
      process.exit(0);
    }, 20);
  `;
  const w = new Worker(code, { eval: true, workerData: { pkg: require.resolve('..'), opts } });
  await new Promise((resolve, reject) => {
    w.once('exit', resolve);
    w.once('error', reject);
  });
  // The in-flight answers arrive after the worker's environment is gone.
  await eventually(() => up.hits.filter((h) => h.url.startsWith('/inflight/')).length === 20);
  // Calls fired right before process.exit() are sent or dropped depending on teardown
  // timing; either way their answers (or permits) must not hurt anyone else.
  await new Promise((r) => setTimeout(r, 300));
  // The process is alive and the shared breaker still serves calls.
  expect(main.state).toBe('closed');
  await expect(main.fire('/after')).resolves.toEqual({ late: true });
});

test('route metrics: labelled only from init.route, capped by maxRoutes', async () => {
  const b = make({ maxRoutes: 2 });
  await b.fire('/api/sigils/1', { route: '/api/sigils/:id' });
  await b.fire('/api/sigils/2', { route: '/api/sigils/:id' });
  await b.fire('/api/other/1', { route: '/api/other/:id' });
  await b.fire('/api/third/1', { route: '/api/third/:id' });
  await b.fire('/api/no-route/1');
  const m = metrics();
  const line = (route) => `dnastore_route_requests_total{name="${b.name}",outcome="success",route="${route}"}`;
  expect(m).toContain(`${line('/api/sigils/:id')} 2`);
  expect(m).toContain(`${line('/api/other/:id')} 1`);
  expect(m).toContain(`${line('other')} 1`);
  expect(m).not.toContain('/api/third');
  expect(m).not.toContain('/api/no-route');
  await expect(b.fire('/x', { route: '/api/sigils?id=1' })).rejects.toMatchObject({ code: 'EINVALID' });
  const off = make({ maxRoutes: 0 });
  await off.fire('/x', { route: '/x' });
  expect(metrics()).not.toContain(`dnastore_route_requests_total{name="${off.name}"`);
});

test('a pending fire() keeps the process alive until it settles, and no longer', async () => {
  const { spawn } = require('node:child_process');
  up.set((req, res) => setTimeout(() => json(res, 200, { late: true }), 300));
  const code = `
    const { createBreaker } = require(${JSON.stringify(require.resolve('..'))});
    const b = createBreaker({ name: 'alive', baseUrl: ${JSON.stringify(up.url)}, logger: false });
    b.fire('/slow').then((r) => console.log(JSON.stringify(r)));
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const t0 = Date.now();
  const exitCode = await new Promise((resolve) => child.on('exit', resolve));
  expect(exitCode).toBe(0);
  expect(JSON.parse(out)).toEqual({ late: true });
  // Exits on its own right after (no handle left behind, no shutdown() needed).
  expect(Date.now() - t0).toBeLessThan(3000);
});

test('a throwing fallback function rejects the call (it never throws from fire())', async () => {
  up.set((req, res) => json(res, 503, {}));
  const b = make({
    maxFailures: 1,
    fallback: () => {
      throw new Error('fallback broke');
    },
  });
  await expect(b.fire('/x')).rejects.toThrow('fallback broke');
  let p;
  expect(() => {
    p = b.fire('/x'); // open now: the synchronous path
  }).not.toThrow();
  await expect(p).rejects.toThrow('fallback broke');
});

test('an AbortSignal listener is removed once the call settles', async () => {
  const { getEventListeners } = require('node:events');
  const b = make({ maxFailures: 1, resetTimeout: 60_000 });
  const ac = new AbortController();
  await b.fire('/ok', { signal: ac.signal });
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  up.set((req, res) => json(res, 503, {}));
  await b.fire('/fail', { signal: ac.signal });
  expect(b.state).toBe('open');
  // Answered synchronously from the cache while open.
  expect(await b.fire('/ok', { signal: ac.signal })).toMatchObject({ source: 'cache' });
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
});

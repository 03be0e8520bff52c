'use strict';

// What the native circuit adds, and the differences from opossum docs/opossum.md lists.

const { IMPLS, factory, ok, boom } = require('./impls');
const { CircuitBreaker, createBreaker, metrics } = require('../..');
const { spawnSync } = require('node:child_process');
const { eventually } = require('../helpers/upstream');

const make = factory();

describe('dnastore: native extras', () => {
  test('every CircuitBreaker is in metrics() with the fetch breakers\' families and its name label', async () => {
    const b = make(CircuitBreaker, async (x) => (x ? 1 : Promise.reject(new Error('x'))), { name: 'wrapped-metrics', resetTimeout: 10_000 });
    await b.fire(true);
    await b.fire(false).catch(() => {});
    await b.fire(true).catch(() => {});
    const text = metrics();
    expect(text).toContain('dnastore_requests_total{name="wrapped-metrics",outcome="success"} 1');
    expect(text).toContain('dnastore_requests_total{name="wrapped-metrics",outcome="upstream_error"} 1');
    expect(text).toContain('dnastore_requests_total{name="wrapped-metrics",outcome="rejected"} 1');
    expect(text).toContain('dnastore_circuit_state{name="wrapped-metrics"} 1');
    expect(text).toContain('dnastore_circuit_trips_total{name="wrapped-metrics"} 1');
    expect(text).toMatch(/dnastore_request_duration_seconds_count\{name="wrapped-metrics"\} 2/);
    // Same families as a fetch breaker.
    const fetch = createBreaker({ name: 'fetch-metrics-peer', logger: false });
    const families = (name) => new Set(metrics().split('\n').filter((l) => l.includes(`name="${name}"`)).map((l) => l.split('{')[0]));
    const wrapped = families('wrapped-metrics');
    for (const f of ['dnastore_circuit_state', 'dnastore_requests_total', 'dnastore_circuit_trips_total', 'dnastore_fallbacks_total']) {
      expect(wrapped.has(f) || wrapped.has(`${f}_count`)).toBe(families('fetch-metrics-peer').has(f) || families('fetch-metrics-peer').has(`${f}_count`));
    }
    fetch.shutdown();
    b.shutdown();
    expect(metrics()).not.toContain('name="wrapped-metrics"');
  });

  test('slowCallDurationMs: slow successes of a wrapped action open the circuit, with the reason "slow calls"', async () => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const logs = [];
    const logger = { warn: (fields, msg) => logs.push(msg), info() {}, error() {} };
    // The fast call sets no timer and the threshold sits far from both durations: under a
    // loaded CI machine a 1 ms timer with a 20 ms threshold measured slow (100 % instead of 75 %).
    const action = async (ms) => (ms > 0 && (await sleep(ms)), ms);
    const b = make(CircuitBreaker, action, { name: 'wrapped-slow', slowCallDurationMs: 100, slowCallRateThreshold: 50, volumeThreshold: 4, resetTimeout: 10_000, logger });
    for (const ms of [0, 180, 180, 180]) await b.fire(ms);
    expect(b.opened).toBe(true);
    expect(logs).toEqual([expect.stringMatching(/OPEN \(slow calls: 75 % of 4 calls slower than slowCallDurationMs\)/)]);
    expect(b.stats.failures).toBe(0);
    b.shutdown();
  });

  test('a free-text name becomes a valid label; the name property keeps it', () => {
    const b = make(CircuitBreaker, async () => 1, { name: 'bound load user' });
    expect(b.name).toBe('bound load user');
    expect(metrics()).toContain('dnastore_circuit_state{name="bound_load_user"} 0');
  });

  test('transitions are logged like a fetch breaker\'s', async () => {
    const lines = [];
    const logger = { warn: (f, m) => lines.push(['warn', f, m]), info: (f, m) => lines.push(['info', f, m]), error: () => {} };
    const b = make(CircuitBreaker, boom, { name: 'wrapped-log', resetTimeout: 20, logger });
    await b.fire().catch(() => {});
    await eventually(() => b.halfOpen, 2000, 5);
    expect(lines[0]).toEqual(['warn', expect.objectContaining({ breaker: 'wrapped-log', from: 'closed', to: 'open', reason: 'failure rate', failures: 1, calls: 1 }), 'DNAStore circuit breaker OPEN (failure rate)']);
    expect(lines[1]).toEqual(['info', expect.objectContaining({ to: 'halfOpen', reason: 'reset timeout elapsed' }), 'DNAStore circuit breaker HALF-OPEN (reset timeout elapsed)']);
  });

  test('maxFailures opens on consecutive failures whatever the rate', async () => {
    let n = 0;
    const b = make(CircuitBreaker, () => (++n <= 10 ? ok(n) : boom()), { maxFailures: 3, errorThresholdPercentage: 90, resetTimeout: 10_000 });
    for (let i = 0; i < 10; i++) await b.fire();
    await b.fire().catch(() => {});
    await b.fire().catch(() => {});
    expect(b.closed).toBe(true);
    await b.fire().catch(() => {});
    expect(b.opened).toBe(true);
  });

  test('halfOpenMaxCalls lets that many trials through; all must succeed', async () => {
    const release = [];
    const b = make(CircuitBreaker, () => new Promise((r) => release.push(r)), { halfOpenMaxCalls: 2, resetTimeout: 20 });
    b.open();
    await eventually(() => b.halfOpen, 2000, 5);
    const [t1, t2] = [b.fire(), b.fire()];
    await expect(b.fire()).rejects.toMatchObject({ code: 'EOPENBREAKER' });
    release[0](1);
    await t1;
    expect(b.halfOpen).toBe(true);
    release[1](2);
    await t2;
    expect(b.closed).toBe(true);
  });

  test('stats: percentiles and latencyMean come from the native window', async () => {
    const b = make(CircuitBreaker, async () => 1);
    for (let i = 0; i < 5; i++) await b.fire();
    const s = b.stats;
    expect(Object.keys(s.percentiles).map(Number).sort()).toEqual([0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 1]);
    expect(s.latencyMean).toBeGreaterThanOrEqual(0);
    expect(s.percentiles[1]).toBeGreaterThanOrEqual(s.percentiles[0.5]);
    expect(b.status.stats.fires).toBe(5);
    expect(b.status.window).toHaveLength(10);
  });
});

describe.each(IMPLS)('%s: the threshold (docs/opossum.md difference: reached opens, as createBreaker)', (impl, Impl) => {
  test('1 failure of 2 calls at errorThresholdPercentage 50', async () => {
    let n = 0;
    const b = make(Impl, () => (++n === 2 ? boom() : ok(n)), { resetTimeout: 10_000 });
    await b.fire();
    await b.fire().catch(() => {});
    // opossum opens above the threshold (50 > 50 is false); the core opens at it.
    expect(b.opened).toBe(impl === 'dnastore');
  });
});

describe.each(IMPLS)('%s: other listed differences', (impl, Impl) => {
  test('an action returning undefined synchronously', async () => {
    const b = make(Impl, () => undefined);
    const r = await b.fire().then(
      (v) => ['resolved', v],
      (e) => ['rejected', e.message],
    );
    if (impl === 'opossum') expect(r).toEqual(['rejected', "Cannot read properties of undefined (reading 'then')"]);
    else expect(r).toEqual(['resolved', undefined]);
  });

  test('close() by hand: the old failures stay (opossum) or the window starts clean', async () => {
    let fail = true;
    const b = make(Impl, () => (fail ? boom() : ok(1)), { resetTimeout: 10_000 });
    await b.fire().catch(() => {});
    expect(b.opened).toBe(true);
    b.close();
    fail = false;
    await b.fire();
    fail = true;
    await b.fire().catch(() => {});
    // opossum: 2 failures of 3 fires > 50 %; here: 1 of 2 calls since the close, at 50 %.
    expect(b.stats.failures).toBe(impl === 'opossum' ? 2 : 1);
  });
});

describe('dnastore: a throwing listener never leaves a call unsettled', () => {
  // A listener's throw rejects that call with it, as in opossum where it survives one (its
  // success handler runs in the call's promise chain); opossum dies of a 'failure' or
  // 'timeout' listener's (reentrancy.test.js has them all). Jest intercepts uncaught
  // errors, so this runs in a child process that records them.
  test('success, failure, timeout and a synchronous result', () => {
    const script = `
      const { CircuitBreaker } = require(${JSON.stringify(require.resolve('../..'))});
      const uncaught = [];
      process.on('uncaughtException', (e) => uncaught.push(e.message));
      process.on('unhandledRejection', (e) => uncaught.push(e.message));
      const cases = [
        ['success', async () => 1, {}],
        ['failure', async () => { throw new Error('boom'); }, {}],
        ['timeout', () => new Promise(() => {}), { timeout: 10 }],
        ['success', () => 2, {}],
      ];
      (async () => {
        const settled = [];
        for (const [event, action, opts] of cases) {
          const b = new CircuitBreaker(action, { logger: false, resetTimeout: 10000, ...opts });
          b.on(event, () => { throw new Error('listener ' + event); });
          settled.push(await b.fire().then((v) => 'resolved ' + v, (e) => 'rejected ' + (e.code || e.message)));
          await new Promise((r) => setTimeout(r, 5));
          b.shutdown();
        }
        console.log(JSON.stringify({ settled, uncaught }));
      })();
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      settled: ['rejected listener success', 'rejected listener failure', 'rejected listener timeout', 'rejected listener success'],
      uncaught: [],
    });
  });
});

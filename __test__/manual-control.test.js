'use strict';

// Manual control of a fetch breaker against a real HTTP server on 127.0.0.1: open(),
// close(), disable(), enable() and DNASTORE_CIRCUIT_FORCE, seen in state, events, the log
// and the state gauge (the rules themselves: crates/core/src/circuit/force_tests.rs).

const { createBreaker, metrics } = require('..');
const { startUpstream, json, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];

function recorder() {
  const lines = [];
  const at = (level) => (fields, msg) => lines.push({ level, msg, ...fields });
  return { lines, logger: { warn: at('warn'), info: at('info'), error: at('error') } };
}

function make(opts = {}) {
  const b = createBreaker({ name: uniqueName(), baseUrl: up.url, logger: false, maxAttempts: 1, ...opts });
  breakers.push(b);
  return b;
}

const gauge = (b) => metrics().match(new RegExp(`dnastore_circuit_state\\{name="${b.name}"\\} (\\d+)`))[1];

beforeEach(async () => {
  up = await startUpstream();
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
});

test('open(): forced open serves the fallback without a request until close(); state, event, log, gauge', async () => {
  const log = recorder();
  const b = make({ logger: log.logger, resetTimeout: 1 });
  const events = [];
  b.on('forcedOpen', (e) => events.push(e));
  b.on('close', (e) => events.push(e));
  expect(b.open()).toBe(true);
  expect(b.open()).toBe(false);
  expect(b.state).toBe('forcedOpen');
  expect(b.opened).toBe(true);
  expect(gauge(b)).toBe('3');
  for (let i = 0; i < 5; i++) {
    expect(await b.fire('/api/sigils')).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
  }
  expect(up.hits.length).toBe(0);
  expect(b.close()).toBe(true);
  expect(await b.fire('/api/sigils')).toEqual({ ok: true });
  expect(up.hits.length).toBe(1);
  expect(b.state).toBe('closed');
  expect(gauge(b)).toBe('0');
  expect(events.map((e) => [e.from, e.to, e.reason])).toEqual([
    ['closed', 'forcedOpen', 'forced'],
    ['forcedOpen', 'closed', 'forced'],
  ]);
  expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
    ['warn', 'DNAStore circuit breaker FORCED OPEN (forced)'],
    ['info', 'DNAStore circuit breaker CLOSED (forced)'],
  ]);
});

test('disable(): every call reaches DNAStore and is counted, nothing trips; enable() goes back', async () => {
  up.set((req, res) => json(res, 503, { error: 'down' }));
  const b = make({ maxFailures: 2 });
  const seen = [];
  b.on('disabled', (e) => seen.push(e.reason));
  expect(b.disable()).toBe(true);
  for (let i = 0; i < 10; i++) expect(await b.fire('/x')).toMatchObject({ fallback: true, code: 'EUPSTREAM' });
  expect(up.hits.length).toBe(10);
  expect(b.stats()).toMatchObject({ state: 'disabled', failures: 10, trips: 0 });
  expect(gauge(b)).toBe('4');
  expect(seen).toEqual(['forced']);
  expect(b.enable()).toBe(true);
  expect(b.state).toBe('closed');
});

test('DNASTORE_CIRCUIT_FORCE applies at startup; other values are ECONFIG naming it', async () => {
  const b = make({ env: { DNASTORE_CIRCUIT_FORCE: 'open' } });
  expect(b.state).toBe('forcedOpen');
  expect(await b.fire('/x')).toMatchObject({ code: 'EOPENBREAKER' });
  expect(up.hits.length).toBe(0);
  const d = make({ env: { DNASTORE_CIRCUIT_FORCE: 'disabled' } });
  expect(d.state).toBe('disabled');
  expect(() => make({ env: { DNASTORE_CIRCUIT_FORCE: 'shut' } })).toThrow(
    expect.objectContaining({ code: 'ECONFIG', message: expect.stringContaining('DNASTORE_CIRCUIT_FORCE') }),
  );
  expect(() => make({ circuitForce: 'halfOpen' })).toThrow(expect.objectContaining({ code: 'ECONFIG', message: expect.stringContaining('circuitForce') }));
});

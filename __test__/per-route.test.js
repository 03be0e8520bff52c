'use strict';

// Per-route circuits (circuitPerRoute) against a real HTTP server on 127.0.0.1: a failing
// route opens its own circuit only, other routes and route-less calls keep reaching the
// upstream; its transitions are events and log lines with the route; the per-route state
// series stay bounded by maxRoutes under 10,000 distinct routes (the rules themselves:
// crates/core/src/breaker/tests_routes.rs, crates/core/src/circuit/per_route_tests.rs).

const { createBreaker, metrics } = require('..');
const { startUpstream, json, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];

function make(opts = {}) {
  const b = createBreaker({ name: uniqueName(), baseUrl: up.url, logger: false, maxAttempts: 1, maxFailures: 1, resetTimeout: 60_000, ...opts });
  breakers.push(b);
  return b;
}

// The validation endpoint fails; everything else answers.
beforeEach(async () => {
  up = await startUpstream((req, res) => (req.url.startsWith('/api/validate') ? json(res, 503, { down: true }) : json(res, 200, { ok: true })));
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
});

test("route A's failing endpoint opens A's circuit only; B and route-less calls keep answering from upstream", async () => {
  const lines = [];
  const at = (level) => (fields, msg) => lines.push({ level, msg, ...fields });
  const b = make({ circuitPerRoute: true, logger: { warn: at('warn'), info: at('info'), error: at('error') } });
  const events = [];
  b.on('routeTransition', (e) => events.push(e));
  const A = '/api/validate/:id';
  const B = '/api/sigils/:id';
  expect(await b.fire('/api/validate/1', { route: A })).toMatchObject({ fallback: true, code: 'EUPSTREAM' });
  expect(b.stateOf(A)).toBe('open');
  expect(b.state).toBe('closed');
  const hits = up.hits.length;
  expect(await b.fire('/api/validate/2', { route: A })).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
  expect(up.hits.length).toBe(hits);
  for (let i = 0; i < 5; i++) {
    expect(await b.fire(`/api/sigils/${i}`, { route: B })).toEqual({ ok: true });
    expect(await b.fire(`/api/sigils/${i}`)).toEqual({ ok: true });
  }
  expect(up.hits.length).toBe(hits + 10);
  expect(b.stateOf(B)).toBe('closed');
  expect(b.stateOf('/never/called')).toBeNull();
  expect(() => b.stateOf('no-slash')).toThrow(expect.objectContaining({ code: 'EINVALID' }));
  expect(events.map((e) => [e.route, e.from, e.to, e.reason])).toEqual([[A, 'closed', 'open', 'consecutive failures']]);
  expect(lines.map((l) => [l.level, l.route, l.msg])).toEqual([['warn', A, `DNAStore circuit breaker route ${A} OPEN (consecutive failures)`]]);
  const text = metrics();
  expect(text).toContain(`dnastore_route_circuit_state{name="${b.name}",route="${A}"} 1`);
  expect(text).toContain(`dnastore_circuit_state{name="${b.name}"} 0`);
});

test("route-less calls opening the breaker's circuit do not short-circuit routed calls", async () => {
  const b = make({ circuitPerRoute: true });
  await b.fire('/api/validate/1');
  expect(b.state).toBe('open');
  const hits = up.hits.length;
  // The binding's open-circuit shortcut (no argument converted) must not answer for a route.
  expect(await b.fire('/api/sigils/1', { route: '/api/sigils/:id' })).toEqual({ ok: true });
  expect(await b.fire('/api/sigils/2', { route: '/api/sigils/:id', fullResponse: false })).toEqual({ ok: true });
  expect(up.hits.length).toBe(hits + 2);
  expect(await b.fire('/api/sigils/3')).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
});

test('without circuitPerRoute a failing route opens the breaker for every route', async () => {
  const b = make();
  await b.fire('/api/validate/1', { route: '/api/validate/:id' });
  expect(b.state).toBe('open');
  expect(b.stateOf('/api/validate/:id')).toBeNull();
  expect(await b.fire('/api/sigils/1', { route: '/api/sigils/:id' })).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
});

test('open() forces every route circuit open; close() closes them', async () => {
  const b = make({ circuitPerRoute: true });
  expect(await b.fire('/api/sigils/1', { route: '/a' })).toEqual({ ok: true });
  b.open();
  expect(b.stateOf('/a')).toBe('forcedOpen');
  expect(await b.fire('/api/sigils/1', { route: '/b' })).toMatchObject({ code: 'EOPENBREAKER' });
  b.close();
  expect(b.stateOf('/a')).toBe('closed');
  expect(await b.fire('/api/sigils/1', { route: '/b' })).toEqual({ ok: true });
});

test('10,000 distinct routes: route label sets stay within maxRoutes', async () => {
  const maxRoutes = 50;
  const b = make({ circuitPerRoute: true, maxRoutes });
  // One route in 500 fails (and opens its circuit); the rest answer, and their closed
  // circuits are evicted to make room.
  const N = 10_000;
  for (let i = 0; i < N; i += 100) {
    const batch = [];
    for (let j = i; j < i + 100; j++) {
      const url = j % 500 === 0 ? `/api/validate/${j}` : `/api/sigils/${j}`;
      batch.push(b.fire(url, { route: `/r${j}/:id` }));
    }
    await Promise.all(batch);
  }
  const text = metrics();
  const labels = (family) => new Set([...text.matchAll(new RegExp(`^${family}\\{name="${b.name}",(?:outcome="[^"]*",)?route="([^"]*)"`, 'gm'))].map((m) => m[1]));
  // Every route the registry holds has its state series (from its first call), no more.
  const states = labels('dnastore_route_circuit_state');
  expect(states.size).toBe(maxRoutes);
  expect(labels('dnastore_route_requests_total').size).toBeLessThanOrEqual(maxRoutes + 1);
  const open = [...text.matchAll(new RegExp(`^dnastore_route_circuit_state\\{name="${b.name}",route="([^"]*)"\\} 1$`, 'gm'))].map((m) => m[1]);
  expect(open).toHaveLength(N / 500);
  for (const r of open) expect(b.stateOf(r)).toBe('open');
  for (const r of states) expect(b.stateOf(r)).toBe(open.includes(r) ? 'open' : 'closed');
  expect(b.state).toBe('closed');
}, 120_000);

'use strict';

// Last-known-good fallback and coalescing against a real upstream on 127.0.0.1.

const { createBreaker, metrics } = require('..');
const { startUpstream, json, uniqueName } = require('./helpers/upstream');

let up;
const breakers = [];
function make(opts = {}) {
  const b = createBreaker({ name: uniqueName('lkg'), baseUrl: up.url, logger: false, maxAttempts: 1, ...opts });
  breakers.push(b);
  return b;
}
const sigils = (req, res) => json(res, 200, { sigils: [{ id: 1 }], path: req.url, auth: req.headers.authorization ?? null });
const alice = { headers: { authorization: 'Bearer alice' } };
const bob = { headers: { authorization: 'Bearer bob' } };

beforeEach(async () => {
  up = await startUpstream(sigils);
});
afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop().catch(() => {});
});

test('a cached GET is served when the upstream is stopped; never to another user; POST never', async () => {
  const b = make({ maxFailures: 100 });
  const fresh = await b.fire('/api/sigils', alice);
  expect(fresh.auth).toBe('Bearer alice');
  await up.stop();
  const r = await b.fire('/api/sigils', alice);
  expect(r).toMatchObject({ fallback: true, source: 'cache', error: 'DNAStore unavailable', data: fresh });
  // A pooled keep-alive socket to the stopped upstream may surface as a reset first.
  expect(['ECONNREFUSED', 'ECONNRESET']).toContain(r.code);
  expect(r.ageMs).toBeGreaterThanOrEqual(0);
  expect(await b.fire('/api/sigils', bob)).toMatchObject({ fallback: true, source: 'none', data: null });
  expect(await b.fire('/api/sigils?page=2', alice)).toMatchObject({ source: 'none' });
  expect(await b.fire('/api/sigils', { ...alice, method: 'POST', body: '{}' })).toMatchObject({ source: 'none', data: null });
  await up.restart();
});

test('the tenant header partitions the cache (tenantHeader)', async () => {
  const b = make({ tenantHeader: 'x-org', maxFailures: 100 });
  await b.fire('/s', { headers: { 'x-org': 'acme' } });
  await up.stop();
  expect(await b.fire('/s', { headers: { 'x-org': 'acme' } })).toMatchObject({ source: 'cache' });
  expect(await b.fire('/s', { headers: { 'x-org': 'globex' } })).toMatchObject({ source: 'none' });
  await up.restart();
});

test('an open breaker answers from cache synchronously, without the network', async () => {
  const b = make({ maxFailures: 1, resetTimeout: 60_000 });
  const fresh = await b.fire('/api/sigils');
  up.set((req, res) => json(res, 503, {}));
  await b.fire('/other');
  expect(b.state).toBe('open');
  const hits = up.hits.length;
  expect(await b.fire('/api/sigils')).toMatchObject({ fallback: true, source: 'cache', code: 'EOPENBREAKER', data: fresh });
  expect(await b.fire('/never-cached')).toMatchObject({ source: 'none', code: 'EOPENBREAKER' });
  expect(up.hits.length).toBe(hits);
});

test('lkgMaxStaleMs: an older entry is not served', async () => {
  const b = make({ lkgMaxStaleMs: 150, maxFailures: 100 });
  await b.fire('/s');
  await up.stop();
  expect(await b.fire('/s')).toMatchObject({ source: 'cache' });
  await new Promise((r) => setTimeout(r, 200));
  expect(await b.fire('/s')).toMatchObject({ source: 'none' });
  await up.restart();
});

test('lkgMaxEntryBytes: a large response is served but not cached', async () => {
  up.set((req, res) => json(res, 200, { blob: 'x'.repeat(500) }));
  const b = make({ lkgMaxEntryBytes: 100, maxFailures: 100 });
  expect((await b.fire('/big')).blob).toHaveLength(500);
  expect(metrics()).toContain(`dnastore_lkg_rejected_total{name="${b.name}",reason="too_large"} 1`);
  await up.stop();
  expect(await b.fire('/big')).toMatchObject({ source: 'none' });
  await up.restart();
});

test('lkgMaxEntries and lkgMaxBytes bound the cache (LRU)', async () => {
  const b = make({ lkgMaxEntries: 2, maxFailures: 100 });
  for (const p of ['/a', '/b', '/c']) await b.fire(p);
  const n = `name="${b.name}"`;
  expect(metrics()).toContain(`dnastore_lkg_entries{${n}} 2`);
  expect(metrics()).toContain(`dnastore_lkg_evictions_total{${n}} 1`);
  await up.stop();
  expect(await b.fire('/a')).toMatchObject({ source: 'none' });
  expect(await b.fire('/c')).toMatchObject({ source: 'cache' });
  await up.restart();

  const small = make({ lkgMaxBytes: 150, maxFailures: 100 });
  for (const p of ['/a', '/b', '/c']) await small.fire(p);
  const bytes = Number(metrics().match(new RegExp(`dnastore_lkg_bytes\\{name="${small.name}"\\} (\\d+)`))[1]);
  expect(bytes).toBeLessThanOrEqual(150);
  expect(bytes).toBeGreaterThan(0);
});

test('lkgMaxEntries 0 disables the cache', async () => {
  const b = make({ lkgMaxEntries: 0, maxFailures: 100 });
  await b.fire('/s');
  await up.stop();
  expect(await b.fire('/s')).toMatchObject({ source: 'none' });
  await up.restart();
});

test('signed entries (signingSecret) are served after verification', async () => {
  const b = make({ signingSecret: 'k3y', maxFailures: 100 });
  const fresh = await b.fire('/s');
  await up.stop();
  expect(await b.fire('/s')).toMatchObject({ source: 'cache', data: fresh });
  await up.restart();
});

test('100 concurrent identical GETs make 1 upstream request (coalesce)', async () => {
  up.set((req, res) => setTimeout(() => sigils(req, res), 50));
  const b = make();
  const results = await Promise.all(Array.from({ length: 100 }, () => b.fire('/api/sigils')));
  expect(up.hits).toHaveLength(1);
  for (const r of results) expect(r.sigils).toEqual([{ id: 1 }]);
  expect(metrics()).toContain(`dnastore_coalesced_total{name="${b.name}"} 99`);
});

test('coalesce: false sends every GET', async () => {
  up.set((req, res) => setTimeout(() => sigils(req, res), 50));
  const b = make({ coalesce: false });
  await Promise.all(Array.from({ length: 20 }, () => b.fire('/api/sigils')));
  expect(up.hits).toHaveLength(20);
});

test('different users are not coalesced together', async () => {
  up.set((req, res) => setTimeout(() => sigils(req, res), 50));
  const b = make();
  const [a, c] = await Promise.all([b.fire('/s', alice), b.fire('/s', bob)]);
  expect(a.auth).toBe('Bearer alice');
  expect(c.auth).toBe('Bearer bob');
  expect(up.hits).toHaveLength(2);
});

test('many concurrent calls keep exact counts', async () => {
  const b = make({ coalesce: false });
  await Promise.all(Array.from({ length: 300 }, (_, i) => b.fire(`/c/${i}`)));
  expect(b.stats()).toMatchObject({ successes: 300, failures: 0, fires: 300 });
  expect(up.hits).toHaveLength(300);
});

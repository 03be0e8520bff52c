'use strict';

// Data never crosses callers (issue 11, defect 3), at the JS boundary: a table of header
// sets against a real upstream that answers each caller for itself, with coalescing on a
// healthy upstream, during an outage (last-known-good), and through a Redis shared by two
// replica processes. The core's own table (crates/core/src/breaker/tests_identity.rs)
// covers the same rules on paused time.

const { createBreaker } = require('..');
const { startUpstream, json, uniqueName, eventually } = require('./helpers/upstream');
const { describeRedis, startRedis, startReplica } = require('./helpers/redis');

// The upstream answers with the request's value of `x-echo-header`'s header, after a short
// delay (so concurrent calls overlap), with the response headers the test asks for.
function echo(req, res) {
  const name = req.headers['x-echo-header'];
  const extra = req.headers['x-echo-response'] ? JSON.parse(req.headers['x-echo-response']) : {};
  setTimeout(() => json(res, 200, { saw: req.headers[name] ?? null }, extra), 30);
}

// [header, options, splits the key?]
const TABLE = [
  ['cookie', {}, true],
  ['x-api-key', {}, true],
  ['authorization', {}, true],
  ['proxy-authorization', {}, true],
  ['x-tenant-id', {}, true],
  ['x-something-unknown', {}, true],
  ['traceparent', {}, false],
  ['accept-language', {}, false],
  ['accept-language', { varyHeaders: ['accept-language'] }, true],
  ['x-debug-id', { cacheIgnoreHeaders: 'x-debug-id' }, false],
];

const value = (header, v) => (header === 'cookie' ? `sess=${v}` : v);
const init = (header, v, response) => ({
  headers: { [header]: value(header, v), 'x-echo-header': header, ...(response ? { 'x-echo-response': JSON.stringify(response) } : {}) },
});

let up;
const breakers = [];

function make(opts) {
  const b = createBreaker({ name: uniqueName('id'), baseUrl: up.url, logger: false, maxAttempts: 1, maxFailures: 1000, ...opts });
  breakers.push(b);
  return b;
}

beforeEach(async () => {
  up = await startUpstream(echo);
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await up.stop();
});

test.each(TABLE)('healthy upstream, coalescing on: %s %j splits=%s', async (header, opts, splits) => {
  const b = make(opts);
  const [a, bb] = await Promise.all([b.fire('/r', init(header, 'A')), b.fire('/r', init(header, 'B'))]);
  expect(a).toEqual({ saw: value(header, 'A') });
  if (splits) {
    expect(bb).toEqual({ saw: value(header, 'B') });
    expect(up.hits).toHaveLength(2);
  } else {
    expect(bb).toEqual({ saw: value(header, 'A') });
    expect(up.hits).toHaveLength(1);
  }
});

test.each(TABLE)('outage, last-known-good: %s %j splits=%s', async (header, opts, splits) => {
  const b = make(opts);
  await b.fire('/r', init(header, 'A'));
  up.set((req, res) => json(res, 503, {}));
  expect(await b.fire('/r', init(header, 'A'))).toMatchObject({ fallback: true, source: 'cache', data: { saw: value(header, 'A') } });
  const other = await b.fire('/r', init(header, 'C'));
  if (splits) expect(other).toMatchObject({ fallback: true, source: 'none', data: null });
  else expect(other).toMatchObject({ fallback: true, source: 'cache', data: { saw: value(header, 'A') } });
});

test('docs/security.md states the rule this table tests', () => {
  const doc = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'docs', 'security.md'), 'utf8');
  expect(doc).toMatch(/^# Security: what is and is not shared/m);
  for (const h of ['Authorization', 'Proxy-Authorization', 'Cookie', 'X-Api-Key', 'varyHeaders', 'cacheIgnoreHeaders']) expect(doc).toContain(h);
});

describeRedis('identity.test.js')('through a Redis shared by two replica processes', () => {
  let redis;
  const replicas = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis.stop();
  });

  test('a fresh replica serves only the same identity, never private entries, and honours Vary', async () => {
    const opts = { name: uniqueName('id-redis'), baseUrl: up.url, redisUrl: redis.url, signingSecret: 's', maxAttempts: 1, maxFailures: 1000 };
    const a = await startReplica(opts, replicas);
    const writes = [
      ['/c', init('cookie', 'A')],
      ['/k', init('x-api-key', 'A')],
      ['/p', init('cookie', 'A', { 'cache-control': 'private' })],
      ['/v', init('accept-language', 'en', { vary: 'Accept-Language' })],
      ['/n', init('cookie', 'A', { 'cache-control': 'no-store' })],
    ];
    for (const [url, i] of writes) expect((await a.fire(url, i)).value).toHaveProperty('saw');
    // Three shareable entries land in Redis (private and no-store never do).
    await eventually(() => redis.cli('--scan', '--pattern', `dnastore:lkg:${opts.name}:*`).split('\n').filter(Boolean).length === 3, 5000);
    await new Promise((r) => setTimeout(r, 200));
    expect(redis.cli('--scan', '--pattern', `dnastore:lkg:${opts.name}:*`).split('\n').filter(Boolean)).toHaveLength(3);

    up.set((req) => req.socket.destroy());
    const b = await startReplica(opts, replicas);
    const got = async (url, i) => (await b.fire(url, i)).value;
    expect(await got('/c', init('cookie', 'A'))).toMatchObject({ source: 'cache', data: { saw: 'sess=A' } });
    expect(await got('/c', init('cookie', 'C'))).toMatchObject({ source: 'none', data: null });
    expect(await got('/k', init('x-api-key', 'A'))).toMatchObject({ source: 'cache' });
    expect(await got('/k', init('x-api-key', 'C'))).toMatchObject({ source: 'none' });
    // The same requests as replica A made (the response rules ride on x-echo-response).
    expect(await got('/p', init('cookie', 'A', { 'cache-control': 'private' }))).toMatchObject({ source: 'none' });
    const vary = { vary: 'Accept-Language' };
    expect(await got('/v', init('accept-language', 'en', vary))).toMatchObject({ source: 'cache', data: { saw: 'en' } });
    expect(await got('/v', init('accept-language', 'de', vary))).toMatchObject({ source: 'none' });
    expect(await got('/n', init('cookie', 'A', { 'cache-control': 'no-store' }))).toMatchObject({ source: 'none' });
    // Replica A itself kept the private entry (its key carries the cookie) but not no-store.
    expect((await a.fire('/p', init('cookie', 'A', { 'cache-control': 'private' }))).value).toMatchObject({ source: 'cache' });
    expect((await a.fire('/n', init('cookie', 'A', { 'cache-control': 'no-store' }))).value).toMatchObject({ source: 'none' });
  });
});

'use strict';

// The fake DNAStore honours Idempotency-Key, as the outbox's "exactly once" relies on: a
// repeated key stores nothing new and answers the first result, in the same process and
// after a restart (the key is journalled with its sigil). Its control route lists what is
// stored, for the soak's audit. A real process, stopped and started like the outages.

const { startDnastore, request } = require('../../examples/fake-dnastore/control');

jest.setTimeout(20000);

let store;
const create = (body, key) =>
  request('POST', `${store.url}/api/sigils`, { body, headers: key ? { 'idempotency-key': key } : {} });
const stored = async () => (await store.sigils()).sigils.map((r) => ({ key: r.idempotencyKey, id: r.sigil.id, name: r.sigil.name }));

beforeAll(async () => {
  store = await startDnastore();
});

afterAll(async () => {
  await store?.close();
});

test('a repeated Idempotency-Key answers the first result (201, same sigil, marked replayed) and stores nothing new', async () => {
  const first = await create({ name: 'alpha' }, 'key-a');
  const again = await create({ name: 'alpha, sent again' }, 'key-a');
  expect({ status: first.status, replayed: first.headers['idempotent-replayed'] }).toEqual({ status: 201, replayed: undefined });
  expect({ status: again.status, replayed: again.headers['idempotent-replayed'], body: again.json }).toEqual({
    status: 201,
    replayed: 'true',
    body: first.json,
  });
  const noKey = await create({ name: 'beta' });
  expect(await stored()).toEqual([
    { key: 'key-a', id: first.json.id, name: 'alpha' },
    { key: null, id: noKey.json.id, name: 'beta' },
  ]);
  expect((await store.stats()).replayed).toBe(1);
});

test.each([
  ['SIGTERM', { kill: false }],
  ['SIGKILL', { kill: true }],
])('after a restart (%s) a repeated key still stores nothing new', async (_sig, how) => {
  const before = await stored();
  const first = before.find((r) => r.key === 'key-a');
  await store.stop(how);
  await store.start();
  const again = await create({ name: 'alpha, after restart' }, 'key-a');
  expect({ status: again.status, replayed: again.headers['idempotent-replayed'], id: again.json.id }).toEqual({
    status: 201,
    replayed: 'true',
    id: first.id,
  });
  // A new key after the restart gets a new id, never one already used.
  const fresh = await create({ name: 'gamma' }, `key-${how.kill ? 'kill' : 'term'}`);
  expect(before.map((r) => r.id)).not.toContain(fresh.json.id);
  expect(await stored()).toEqual([...before, { key: `key-${how.kill ? 'kill' : 'term'}`, id: fresh.json.id, name: 'gamma' }]);
});

test('lostreply mode stores a write, then resets the connection; its retry is answered from the first result', async () => {
  await store.setMode('lostreply');
  const lost = await create({ name: 'lost reply' }, 'key-lost').then(
    (r) => ({ status: r.status }),
    (err) => ({ error: err.code }),
  );
  expect(lost).toEqual({ error: 'ECONNRESET' });
  await store.setMode('up');
  const held = (await stored()).filter((r) => r.key === 'key-lost');
  expect(held.map((r) => r.name)).toEqual(['lost reply']);
  const retry = await create({ name: 'lost reply' }, 'key-lost');
  expect({ status: retry.status, replayed: retry.headers['idempotent-replayed'], id: retry.json.id }).toEqual({ status: 201, replayed: 'true', id: held[0].id });
  expect((await stored()).filter((r) => r.key === 'key-lost')).toHaveLength(1);
});

test('a sigil without a name is refused with 422 and not stored', async () => {
  const before = (await store.sigils()).total;
  const r = await create({ glyph: '✶' }, 'key-no-name');
  expect({ status: r.status, body: r.json }).toEqual({ status: 422, body: { error: 'name must be a non-empty string' } });
  expect((await store.sigils()).total).toBe(before);
});

test('latency mode: a step from fast to slow and back, set at run time, and calls in flight counted', async () => {
  await store.setMode('up');
  await request('POST', `${store.url}/__control/stats/reset`);
  const timed = async () => {
    const t = Date.now();
    const r = await request('GET', `${store.url}/api/sigils`);
    expect(r.status).toBe(200);
    return Date.now() - t;
  };
  // 5 ms for 400 ms, then 300 ms answers for 1 s, then 5 ms again (times from when it is set).
  const set = await store.setMode('latency', { shape: 'step', fromMs: 5, toMs: 300, afterMs: 400, holdMs: 1000 });
  expect(set).toMatchObject({ mode: 'latency', params: { shape: 'step', fromMs: 5, toMs: 300 } });
  const t0 = Date.now();
  expect(await timed()).toBeLessThan(250);
  await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - t0))));
  // Slow: three at once, all in flight together at the fake DNAStore.
  const slow = await Promise.all([timed(), timed(), timed()]);
  for (const ms of slow) expect(ms).toBeGreaterThanOrEqual(290);
  const s = await store.stats();
  expect(s.maxInflight).toBeGreaterThanOrEqual(3);
  expect(s.inflight).toBe(0);
  await new Promise((r) => setTimeout(r, Math.max(0, 1500 - (Date.now() - t0))));
  expect(await timed()).toBeLessThan(250);
  // A fixed latency, and a shape it does not know.
  await store.setMode('latency', { shape: 'fixed', ms: 200 });
  expect(await timed()).toBeGreaterThanOrEqual(190);
  const bad = await request('POST', `${store.url}/__control/mode`, { body: { mode: 'latency', shape: 'zigzag' } });
  expect(bad.status).toBe(400);
  await store.setMode('up');
});

'use strict';

// `dnastore-breaker outbox --redis` on the fleet's store (Redis Streams) against a real
// redis-server: a service process queues writes (DNAStore fails them) and dead-letters
// those DNAStore refuses; the command reads, retries, discards and drains through Redis,
// while that process runs and after it stopped. --json parsed, exit statuses checked.

const { startUpstream, json, uniqueName } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis } = require('./helpers/redis');
const { cli, holder } = require('./helpers/cli');

const describeRedis = describeRedisIn('cli-outbox-redis.test.js');

describeRedis('outbox commands on the fleet store', () => {
  let redis;
  let up;
  let mode = 'flaky';
  const seen = new Map();
  const stored = [];

  beforeAll(async () => {
    redis = await startRedis();
    up = await startUpstream((req, res, hit) => {
      const key = hit.headers['idempotency-key'];
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      if (mode === 'down') return req.socket.destroy();
      if (mode === 'up') {
        stored.push(hit);
        return json(res, 201, { ok: true });
      }
      if (n > 1 && hit.url.startsWith('/api/bad')) return json(res, 422, { error: 'sigil rejected' });
      req.socket.destroy();
    });
  });

  afterAll(async () => {
    if (up) await up.stop();
    if (redis) await redis.stop();
  });

  const WRITES = [
    { method: 'POST', path: '/api/sigils/a', headers: { 'content-type': 'application/json', authorization: 'Bearer fleet-secret-1' }, body: '{"sigil":"a"}' },
    { method: 'POST', path: '/api/sigils/b', headers: { 'content-type': 'application/json' }, body: '{"sigil":"b"}' },
    { method: 'POST', path: '/api/bad/c', headers: { 'content-type': 'application/json' }, body: '{"sigil":"c"}' },
  ];

  test('stats, list, dead, retry and discard through Redis while a replica runs; drain once it stopped', async () => {
    const name = uniqueName('cli-fleet');
    mode = 'flaky';
    const h = await holder({ name, baseUrl: up.url, redis: redis.url, writes: WRITES, dead: 1, hold: true });
    const ids = { a: h.ids[WRITES[0].path], b: h.ids[WRITES[1].path], c: h.ids[WRITES[2].path] };
    const args = ['--name', name, '--redis', redis.url];
    try {
      const st = await cli(['outbox', 'stats', ...args, '--json']);
      expect(st.code).toBe(0);
      expect(st.json).toMatchObject({ ok: true, name, store: 'redis', location: `${redis.url}/0`, entries: 2, deadLetters: 1 });
      expect(st.json.inFlight).toEqual(expect.any(Number));
      const t = await cli(['outbox', 'stats', ...args]);
      expect(t.stdout).toMatch(/^being delivered +\d+$/m);

      const ls = await cli(['outbox', 'list', ...args, '--json']);
      expect(ls.json.writes.map((w) => w.id)).toEqual([ids.a, ids.b]);
      expect(typeof ls.json.writes[0].delivering).toBe('boolean');
      const lsT = await cli(['outbox', 'list', ...args]);
      expect(lsT.stdout).toMatch(/^ID +METHOD +URL +ATTEMPTS +AGE +NEXT ATTEMPT +LAST ERROR +DELIVERING$/m);
      const bodies = await cli(['outbox', 'list', ...args, '--bodies', '--json']);
      expect(Object.fromEntries(bodies.json.writes[0].headers)).toMatchObject({ authorization: '***' });
      expect(bodies.json.writes[0].body).toBe('{"sigil":"a"}');
      for (const r of [st, t, ls, lsT, bodies]) expect(r.stdout).not.toContain('fleet-secret');

      const dead = await cli(['outbox', 'dead', ...args, '--json']);
      expect(dead.json.deadLetters).toEqual([expect.objectContaining({ id: ids.c, reason: 'rejected', status: 422 })]);

      // Changes go through Redis: allowed while replicas run. (DNAStore down from here, so
      // the replica's attempts leave the retried write queued.)
      mode = 'down';
      expect(await cli(['outbox', 'retry', ids.c, ...args, '--json'])).toMatchObject({ code: 0, json: { retried: true } });
      expect((await cli(['outbox', 'retry', ids.c, ...args])).code).toBe(1);
      expect((await cli(['outbox', 'stats', ...args, '--json'])).json).toMatchObject({ entries: 3, deadLetters: 0 });
      // a may be in an attempt right now (discard then refuses, saying so): b is discarded
      // once its attempt ends.
      let discarded;
      const until = Date.now() + 10_000;
      for (;;) {
        discarded = await cli(['outbox', 'discard', ids.b, ...args, '--json']);
        if (discarded.code === 0 || Date.now() > until) break;
        expect(discarded.stderr).toContain('is being delivered by a replica right now');
      }
      expect(discarded.json).toEqual({ ok: true, id: ids.b, discarded: true });
      expect((await cli(['outbox', 'list', ...args, '--json'])).json.writes.map((w) => w.id)).not.toContain(ids.b);
    } finally {
      expect(await h.stop()).toEqual({ code: 0, signal: null });
    }

    // The replica is gone: the command's own breaker delivers what is left (a, and c
    // retried). The replica's claims lapse at once for a taker configured so, and a failed
    // attempt's backoff is short (it is kept in Redis for the next taker).
    const quick = { DNASTORE_OUTBOX_CLAIM_IDLE_MS: '100', DNASTORE_OUTBOX_RETRY_MAX_MS: '200' };
    const fast = { ...quick, DNASTORE_RETRY_MAX_ATTEMPTS: '1', DNASTORE_CIRCUIT_MAX_FAILURES: '1', DNASTORE_CIRCUIT_RESET_MS: '600000' };
    const drained = await cli(['outbox', 'drain', ...args, '--json'], { env: fast });
    expect(drained.code).toBe(1);
    expect(drained.json).toMatchObject({ ok: false, queued: 2, stopped: 'circuit open' });
    mode = 'up';
    stored.length = 0;
    const ok = await cli(['outbox', 'drain', ...args, '--json'], { env: quick });
    expect(ok.code).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, store: 'redis', queued: 0, stopped: 'empty' });
    expect(stored.map((x) => x.url).sort()).toEqual(['/api/bad/c', '/api/sigils/a']);
    expect(stored.find((x) => x.url === '/api/sigils/a').headers.authorization).toBe('Bearer fleet-secret-1');
    expect((await cli(['outbox', 'stats', ...args, '--json'])).json).toMatchObject({ entries: 0, deadLetters: 0, inFlight: 0 });
  }, 90_000);

  test('a Redis that is down is a failure naming it without credentials', async () => {
    const r = await cli(['outbox', 'stats', '--name', 'x', '--redis', 'redis://user:pw-down@127.0.0.1:1', '--json'], { env: { DNASTORE_LKG_REDIS_CONNECT_TIMEOUT_MS: '500' } });
    expect(r.code).toBe(1);
    expect(r.json.error.message).toContain('redis://***@127.0.0.1:1/0');
    expect(`${r.stdout}${r.stderr}`).not.toContain('pw-down');
  });
});

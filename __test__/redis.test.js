'use strict';

// Shared last-known-good through a real Redis (Debian's redis-server on a free loopback
// port) between replicas that are separate Node processes, against a real upstream.

const { startUpstream, json, eventually } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis, startReplica } = require('./helpers/redis');

const describeRedis = describeRedisIn('redis.test.js');

let redis;
let up;
const replicas = [];

function cli(...args) {
  return redis.cli(...args);
}

const BODY = { sigils: [{ id: 7, name: 'shared' }] };
const NAME = 'redis-shared';

// A new Node process with its own breaker (and empty memory), same name and options as the others.
function replica(extra = {}) {
  const opts = { name: NAME, baseUrl: up.url, redisUrl: redis.url, signingSecret: 'test-secret', maxAttempts: 1, maxFailures: 100, ...extra };
  return startReplica(opts, replicas);
}

function metric(text, name, labels) {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`name="${NAME}"`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describeRedis('shared last-known-good in Redis', () => {
  beforeAll(async () => {
    redis = await startRedis();
    up = await startUpstream((req, res) => json(res, 200, BODY));
  });

  afterAll(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.stop()));
    if (up) await up.stop().catch(() => {});
    if (redis) await redis.stop();
  });

  let key;

  test('replica B (empty memory) serves what replica A cached, during an outage', async () => {
    const a = await replica();
    const fresh = await a.fire('/api/sigils');
    expect(fresh.value).toEqual(BODY);
    // A's write is off the request path: wait for it to land.
    key = await eventually(() => cli('--scan', '--pattern', `dnastore:lkg:${NAME}:*`) || null, 5000);
    expect(key).toMatch(new RegExp(`^dnastore:lkg:${NAME}:[0-9a-f]{64}$`));
    const ttl = Number(cli('PTTL', key));
    expect(ttl).toBeGreaterThan(250000); // lkgMaxStaleMs default 300000
    expect(ttl).toBeLessThanOrEqual(300000);

    await up.stop();
    const b = await replica();
    const r = await b.fire('/api/sigils');
    expect(r.value).toMatchObject({ fallback: true, source: 'cache', code: 'ECONNREFUSED', data: BODY });
    // Vary isolation holds across replicas too.
    const other = await b.fire('/api/sigils', { headers: { 'x-tenant-id': 'globex' } });
    expect(other.value).toMatchObject({ fallback: true, source: 'none', data: null });
    expect((await b.events()).events).toEqual([]);
  });

  test('an open circuit with a local miss asks Redis (a Promise) and serves the entry', async () => {
    const c = await replica({ maxFailures: 1 });
    await c.fire('/api/other'); // refused: trips the circuit
    const r = await c.fire('/api/sigils');
    expect(r.value).toMatchObject({ fallback: true, source: 'cache', code: 'EOPENBREAKER', data: BODY });
  });

  test('a tampered Redis value is never served and is counted', async () => {
    // Flip one byte of the body in place: the value still decodes, its HMAC does not verify.
    const len = Number(cli('STRLEN', key));
    const original = cli('GETRANGE', key, String(len - 3), String(len - 3));
    expect(cli('SETRANGE', key, String(len - 3), original === '9' ? '8' : '9')).toBe(String(len));
    const d = await replica();
    const r = await d.fire('/api/sigils');
    expect(r.value).toMatchObject({ fallback: true, source: 'none', data: null });
    expect(metric(await d.metrics(), 'dnastore_lkg_rejected_total', 'reason="tampered"')).toBe(1);
  });

  test('a hung, then a dead Redis never makes fire() miss its deadline; down is logged once', async () => {
    const e = await replica();
    // Hung: the process is stopped, so connecting works but no reply ever comes.
    process.kill(redis.proc.pid, 'SIGSTOP');
    const hung = await e.fire('/api/sigils', { deadline: 100 });
    expect(hung.value).toMatchObject({ fallback: true, source: 'none' });
    expect(hung.ms).toBeLessThan(100 + 100); // min(250 ms, what is left of the deadline)

    // Dead: killed (by its PID) mid-test.
    process.kill(redis.proc.pid, 'SIGCONT');
    process.kill(redis.proc.pid, 'SIGKILL');
    await redis.exited;
    for (let i = 0; i < 5; i += 1) {
      const r = await e.fire('/api/sigils', { deadline: 200 });
      expect(r.value).toMatchObject({ fallback: true, source: 'none' });
      expect(r.ms).toBeLessThan(200 + 100);
    }
    const { events, logs } = await eventually(async () => {
      const s = await e.events();
      return s.events.length > 0 ? s : null;
    }, 10000);
    expect(events).toEqual([{ up: false, reason: expect.any(String) }]);
    const warns = logs.filter((l) => l.msg.includes('Redis'));
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 'warn', breaker: NAME, up: false, reason: events[0].reason });
    expect(JSON.stringify(logs)).not.toContain(String(redis.port));
    expect(metric(await e.metrics(), 'dnastore_lkg_redis_errors_total', '')).toBeGreaterThan(0);
  });
});

'use strict';

// The fleet outbox (outboxRedisUrl) with real processes: two replicas of a service (separate
// Node processes, each with its own breaker) share one Redis Stream; one is killed with
// SIGKILL while it holds writes it took; the other delivers them. The upstream is a real
// HTTP server that counts what it stores per Idempotency-Key, as a DNAStore honouring the
// key would: every write answered `queued` must be stored exactly once, and the PUTs to
// one resource in the order they were written.
//
// Why Jest and Node processes rather than a Rust test: a replica in production is a Node
// process running the addon, so this goes through the options, the binding and the
// process's death as deployed; the core's own tests (crates/core/src/outbox/fleet/tests.rs)
// cover the store's semantics one by one.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startUpstream, json, eventually, uniqueName } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis, startReplica } = require('./helpers/redis');

const describeRedis = describeRedisIn('outbox-redis.test.js');

let redis;
let up;
const replicas = [];
const cluster = [];

describeRedis('fleet outbox on Redis Streams', () => {
  // While `down`, DNAStore answers 503; then it stores each key's first write and answers
  // repeats of a key with the first result, storing nothing new.
  let down = true;
  const stored = new Map(); // Idempotency-Key -> times it reached the upstream while up
  const order = []; // keys stored, in arrival order

  beforeAll(async () => {
    // Redis as docs/outbox.md asks of a fleet outbox: every write synced before it is acknowledged.
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    up = await startUpstream((req, res, hit) => {
      if (down) return json(res, 503, { error: 'restarting' });
      const key = hit.headers['idempotency-key'];
      if (!stored.has(key)) order.push(key);
      stored.set(key, (stored.get(key) ?? 0) + 1);
      return json(res, 201, { ok: true });
    });
  });

  afterAll(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.stop()));
    if (up) await up.stop().catch(() => {});
    if (redis) await redis.stop();
    await Promise.all(cluster.splice(0).map((n) => n.stop()));
  });

  test('a replica killed while holding writes: the other delivers each once, none lost, in order per key', async () => {
    const name = uniqueName('fleet');
    const stream = `dnastore:outbox:{${name}}:q`;
    const opts = {
      name,
      baseUrl: up.url,
      outbox: 'on',
      outboxRedisUrl: redis.url,
      outboxClaimIdleMs: 1000,
      signingSecret: 'test-secret',
      maxAttempts: 1,
      maxFailures: 1,
      resetTimeout: 150,
      halfOpenMaxCalls: 1,
      retryBaseMs: 50,
      outboxRetryMaxMs: 200,
      // One slot: a replica holds at most 4 writes, so both hold some when A dies.
      outboxConcurrency: 1,
    };
    const a = await startReplica(opts, replicas);
    const b = await startReplica(opts, replicas);

    // DNAStore is down: every durable write is answered `queued`, half through each replica.
    const written = [];
    const puts = [];
    for (let i = 0; i < 16; i += 1) {
      const r = i % 2 === 0 ? a : b;
      const put = i % 3 === 1;
      const url = put ? '/api/sigils/7' : '/api/sigils';
      const m = await r.fire(url, { method: put ? 'PUT' : 'POST', body: JSON.stringify({ i }), headers: { 'content-type': 'application/json' }, durable: true });
      expect(m.error).toBeUndefined();
      expect(m.value).toMatchObject({ queued: true, fallback: true });
      written.push(m.value.idempotencyKey);
      if (put) puts.push(m.value.idempotencyKey);
    }
    expect(new Set(written).size).toBe(16);
    expect(Number(redis.cli('XLEN', stream))).toBe(16);

    // Both replicas take writes on their half-open trials. Wait until A holds some.
    const consumerOf = (pid) =>
      redis
        .cli('XINFO', 'CONSUMERS', stream, 'delivery')
        .split('\n')
        .find((l) => l.startsWith(`${pid}-`));
    // XPENDING's summary: total, first id, last id, then each consumer and its count.
    const heldBy = (consumer) => {
      const lines = redis.cli('XPENDING', stream, 'delivery').split('\n');
      const at = lines.indexOf(consumer);
      return at < 3 ? 0 : Number(lines[at + 1]);
    };
    let aConsumer;
    await eventually(() => {
      aConsumer = consumerOf(a.child.pid);
      return aConsumer && heldBy(aConsumer) > 0;
    }, 10000);
    a.child.kill('SIGKILL');
    await a.stop();
    const heldByDead = heldBy(aConsumer);
    expect(heldByDead).toBeGreaterThan(0);

    // DNAStore is back: B delivers its own writes, and A's once their claims lapse.
    down = false;
    await eventually(() => written.every((k) => stored.has(k)), 15000);
    await eventually(() => redis.cli('XLEN', stream) === '0', 5000);

    expect([...stored.keys()].sort()).toEqual([...written].sort());
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    expect(order.filter((k) => puts.includes(k))).toEqual(puts);
    expect(heldBy(aConsumer)).toBe(0);
    expect(await b.outbox('list')).toEqual([]);
    // stats() reads the shared counts at most a second before.
    const stats = await eventually(async () => {
      const st = await b.outbox('stats');
      return st.entries === 0 && st;
    }, 3000);
    expect(stats).toMatchObject({ entries: 0, inFlight: 0, deadLetters: 0 });
    expect(stats.delivered).toBe(16);
  }, 40000);

  test('Redis down: writes are spilled to the replica\'s file and acknowledged; the replica is SIGKILLed; a new process on its directory forwards them, each delivered once', async () => {
    const own = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-spill-'));
    let again;
    try {
      const name = uniqueName('fleet-spill');
      const opts = {
        name,
        baseUrl: up.url,
        outbox: 'on',
        outboxRedisUrl: own.url,
        outboxDir: dir,
        signingSecret: 'test-secret',
        maxAttempts: 1,
        maxFailures: 1,
        resetTimeout: 150,
        retryBaseMs: 50,
        outboxRetryMaxMs: 200,
        redisConnectTimeoutMs: 300,
        redisResponseTimeoutMs: 300,
      };
      down = true;
      const a = await startReplica(opts, replicas);
      await own.stop();
      // DNAStore and Redis both down: each POST is spilled (on A's disk before it is
      // answered) and acknowledged.
      const written = [];
      for (let i = 0; i < 6; i += 1) {
        const m = await a.fire('/api/sigils', { method: 'POST', body: JSON.stringify({ spill: i }), durable: true });
        expect(m.error).toBeUndefined();
        expect(m.value).toMatchObject({ queued: true, fallback: true, source: 'outbox' });
        written.push(m.value.idempotencyKey);
      }
      expect(await a.outbox('stats')).toMatchObject({ spilled: 6, enqueued: 6, forwarded: 0 });
      expect(await a.metrics()).toMatch(new RegExp(`dnastore_outbox_spilled_entries\\{name="${name}"\\} 6`));
      expect(fs.readdirSync(dir)).toContain(`${name}.spill.sqlite`);
      // A dies with them; Redis and DNAStore come back; a new process on A's directory takes
      // its file over and forwards them; they are delivered once each.
      a.child.kill('SIGKILL');
      await a.stop();
      again = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'], own.port);
      down = false;
      const b = await startReplica(opts, replicas);
      await eventually(() => written.every((k) => stored.has(k)), 15000);
      const st = await eventually(async () => {
        const x = await b.outbox('stats');
        return x.spilled === 0 && x.forwarded === 6 && x.delivered === 6 && x;
      }, 5000);
      expect(st).toMatchObject({ spilled: 0, forwarded: 6 });
      expect(written.map((k) => stored.get(k))).toEqual([1, 1, 1, 1, 1, 1]);
      expect(await b.outbox('list')).toEqual([]);
    } finally {
      if (again) await again.stop();
      await own.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 40000);

  test('on a Redis Cluster: every key of one outbox in one slot, the scripts run there', async () => {
    const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000'];
    const nodes = await Promise.all([0, 1, 2].map(() => startRedis(args)));
    cluster.push(...nodes);
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { stdio: 'ignore', timeout: 30000 });
    await eventually(() => nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok')), 15000);
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
    const name = uniqueName('fleet-cluster');
    const r = await startReplica(
      { name, baseUrl: up.url, outbox: 'on', outboxRedisUrl: `redis+cluster://${seeds}`, maxAttempts: 1, maxFailures: 1, resetTimeout: 150, retryBaseMs: 50, outboxRetryMaxMs: 200 },
      replicas,
    );
    down = true;
    const keys = [];
    for (let i = 0; i < 4; i += 1) {
      const m = await r.fire('/api/sigils/9', { method: 'PUT', body: JSON.stringify({ i }), durable: true });
      expect(m.value).toMatchObject({ queued: true });
      keys.push(m.value.idempotencyKey);
    }
    expect((await r.outbox('list')).map((e) => e.idempotencyKey)).toEqual(keys);
    down = false;
    await eventually(() => keys.every((k) => stored.has(k)), 10000);
    expect(order.filter((k) => keys.includes(k))).toEqual(keys);
    expect(keys.every((k) => stored.get(k) === 1)).toBe(true);
    // One node holds the whole outbox (the {name} hash tag).
    const holders = nodes.filter((n) => n.cli('--scan', '--pattern', `dnastore:outbox:{${name}}:*`).trim() !== '');
    expect(holders).toHaveLength(1);
  }, 40000);
});

'use strict';

// The fleet circuit when things break: a replica SIGKILLed while it holds the round's trial
// lease, Redis SIGKILLed (and restarted) or hung during an outage, a Sentinel failover during
// an outage. Replicas are separate Node processes (fixtures/fleet-replica.js), Redis and
// Sentinel real processes, DNAStore a real HTTP server here; every process stopped by PID.

const { execFileSync } = require('node:child_process');
const { startUpstream, json, eventually } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis, startSentinel } = require('./helpers/redis');
const { startFleetReplica } = require('./helpers/fleet');

const describeRedis = describeRedisIn('fleet-faults.test.js');

const SECRET = 'fleet-jest-secret';
const replicas = [];
const servers = [];
let up;
let mode = 'ok'; // ok | fail | hang

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stateOf = async (r) => (await r.events()).state;
const logsOf = async (r, re) => (await r.events()).logs.filter((l) => re.test(l.msg));

// Waits for `n` "fleet circuit connected" lines from every replica; on timeout, says what each logged.
async function connectedTimes(rs, n, ms) {
  try {
    await eventually(async () => (await Promise.all(rs.map((r) => logsOf(r, /fleet circuit connected/)))).every((l) => l.length >= n), ms);
  } catch (err) {
    const seen = await Promise.all(rs.map(async (r) => (await r.events()).logs.map((l) => `${l.t} ${l.msg}`)));
    throw new Error(`${err.message}: ${JSON.stringify(seen, null, 1)}`);
  }
}

function options(name, redisUrl, extra = {}) {
  return { name, baseUrl: up.url, redisUrl, fleetCircuit: 'on', signingSecret: SECRET, resetTimeout: 1000, halfOpenMaxCalls: 1, maxAttempts: 1, ...extra };
}

describeRedis('the fleet circuit under faults', () => {
  beforeAll(async () => {
    up = await startUpstream((req, res, hit) => {
      hit.t = Date.now();
      if (mode === 'ok') json(res, 200, { ok: true });
      else if (mode === 'fail') json(res, 503, { error: 'unavailable' });
      // hang: never answers (the caller's timeout ends it)
    });
  });

  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.end()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    mode = 'ok';
  });

  afterAll(async () => {
    if (up) await up.stop().catch(() => {});
  });

  test('a replica SIGKILLed while it holds the trial lease does not stop the next round', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const name = 'fleet-kill-lease';
    // A trial's lease lasts its attempt (timeout 1500 ms) plus redisResponseTimeoutMs (500).
    const opts = options(name, redis.url, { timeout: 1500, redisResponseTimeoutMs: 500 });
    const rs = await Promise.all([0, 1, 2, 3].map(() => startFleetReplica(opts, replicas)));
    mode = 'fail';
    await Promise.all(rs.map((r, i) => r.traffic(10, `/k/${i}`)));
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'open'), 10000);
    // The next round's trial hangs: whoever holds the lease is killed mid-trial.
    const hangAt = Date.now();
    mode = 'hang';
    const trial = await eventually(() => up.hits.find((h) => h.t >= hangAt), 5000);
    const holder = rs[Number(trial.url.split('/')[2])];
    await holder.kill();
    mode = 'ok';
    const others = rs.filter((r) => r !== holder);
    await eventually(async () => (await Promise.all(others.map(stateOf))).every((s) => s === 'closed'), 8000);
    const next = up.hits.filter((h) => h.t > trial.t);
    // Nobody else tried while the dead replica's lease was live; then one trial closed the fleet.
    expect(next[0].t - trial.t).toBeGreaterThanOrEqual(2000 - 100);
    const closedAt = Math.max(...(await Promise.all(others.map(async (r) => (await r.events()).events.find((e) => e.name === 'close' && e.t > hangAt).t))));
    process.stderr.write(`fleet-faults.test.js: lease holder killed; next trial ${next[0].t - trial.t} ms after its trial, fleet closed ${closedAt - trial.t} ms after\n`);
    if (closedAt - trial.t >= 2000 + 1000 + 1500) {
      const seen = await Promise.all(others.map(async (r) => (await r.events()).events.filter((e) => e.t >= hangAt - 1500).map((e) => `${e.t - trial.t} ${e.name} ${e.kind || ''} ${e.reason || ''} ${e.decision || ''}`)));
      throw new Error(`closed ${closedAt - trial.t} ms after the hung trial: ${JSON.stringify(seen, null, 1)} hits ${JSON.stringify(up.hits.filter((h) => h.t >= hangAt - 1500).map((h) => `${h.t - trial.t} ${h.url}`))}`);
    }
  });

  test('Redis SIGKILLed during an outage: every replica stays protected on its own circuit, says so once, and rejoins without a reset', async () => {
    let redis = await startRedis();
    servers.push(redis);
    const { port } = redis;
    const name = 'fleet-redis-killed';
    const opts = options(name, redis.url, { redisResponseTimeoutMs: 300, redisConnectTimeoutMs: 300 });
    const rs = await Promise.all([0, 1, 2].map(() => startFleetReplica(opts, replicas)));
    mode = 'fail';
    await Promise.all(rs.map((r, i) => r.traffic(10, `/d/${i}`)));
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'open'), 10000);
    process.kill(redis.proc.pid, 'SIGKILL');
    await redis.exited;
    const killedAt = Date.now();
    await eventually(async () => (await Promise.all(rs.map((r) => logsOf(r, /fleet circuit disconnected/)))).every((l) => l.length === 1), 5000);
    // Three seconds without Redis: each replica runs its own circuit; DNAStore sees at most
    // its own trials (one per resetTimeout per replica), and no call waits on Redis.
    await sleep(3000);
    for (const [i, r] of rs.entries()) {
      const hits = up.hits.filter((h) => h.t > killedAt && h.url === `/d/${i}`).length;
      expect(hits).toBeLessThanOrEqual(4);
      const { events, logs } = await r.events();
      expect(events.filter((e) => e.name === 'close' && e.t > killedAt)).toEqual([]);
      expect(logs.filter((l) => /fleet circuit disconnected/.test(l.msg))).toHaveLength(1); // once
      const f = await r.fire(`/d/${i}`);
      expect(f.ms).toBeLessThan(300 + 100);
      expect((await r.stats()).fleet.connected).toBe(false);
    }
    const downMetric = await rs[0].metrics();
    expect(downMetric).toContain(`dnastore_fleet_connected{name="${name}"} 0`);
    // Redis back (empty: no persistence): they reconnect; nobody's state is reset.
    redis = await startRedis([], port);
    servers.push(redis);
    await connectedTimes(rs, 2, 10000);
    for (const r of rs) expect(['open', 'halfOpen']).toContain(await stateOf(r));
    // Nothing that closes: no state, or an open voted by replicas that tripped meanwhile.
    const state = redis.cli('GET', `dnastore:fleet:{${name}}:state`);
    if (state !== '') expect(state).toMatch(/^s1\|\d+\|o\|/);
    if (process.env.FLEET_DEBUG) for (const r of rs) process.stderr.write(`${JSON.stringify((await r.events()).logs.map((l) => `${l.t - killedAt} ${l.msg}`), null, 1)}\n`);
    mode = 'ok';
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'closed'), 5000);
  });

  test('a hung Redis (SIGSTOP) in a round: a call waits on it at most redisResponseTimeoutMs, then the local circuit decides', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const name = 'fleet-redis-hung';
    // No LKG cache: its fallback read from the same Redis has its own bound (min(250 ms, the
    // deadline)); this test measures the fleet circuit's wait alone.
    const opts = options(name, redis.url, { redisResponseTimeoutMs: 300, resetTimeout: 500, lkgMaxEntries: 0 });
    const rs = await Promise.all([0, 1].map(() => startFleetReplica(opts, replicas)));
    mode = 'fail';
    await Promise.all(rs.map((r, i) => r.traffic(10, `/h/${i}`)));
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'open'), 10000);
    await Promise.all(rs.map((r) => r.stop()));
    process.kill(redis.proc.pid, 'SIGSTOP');
    try {
      await sleep(600); // the fleet's round is on: the next call asks for a lease
      for (const r of rs) {
        const f = await r.fire('/h/x');
        expect(f.ms).toBeLessThan(300 + 150);
      }
      await eventually(async () => (await Promise.all(rs.map((r) => logsOf(r, /fleet circuit disconnected/)))).every((l) => l.length === 1), 5000);
      for (const r of rs) expect(['open', 'halfOpen']).toContain(await stateOf(r));
    } finally {
      process.kill(redis.proc.pid, 'SIGCONT');
    }
    await connectedTimes(rs, 2, 10000);
  });

  test('a Sentinel failover during an outage: the fleet follows the new master and goes on deciding', async () => {
    const master = await startRedis();
    const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)]);
    servers.push(master, replica);
    const sentinels = await Promise.all([0, 1, 2].map(() => startSentinel(master.port, 400)));
    servers.push(...sentinels);
    await eventually(() => replica.cli('INFO', 'replication').includes('master_link_status:up'), 15000);
    await eventually(
      () => sentinels.every((s) => s.cli('SENTINEL', 'replicas', 'mymaster').includes(String(replica.port)) && (s.cli('SENTINEL', 'sentinels', 'mymaster').match(/name/g) || []).length === 2),
      15000,
    );
    const url = `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/mymaster`;
    const name = 'fleet-sentinel';
    const opts = options(name, url, { redisResponseTimeoutMs: 300, redisConnectTimeoutMs: 500 });
    const rs = await Promise.all([0, 1].map(() => startFleetReplica(opts, replicas)));
    mode = 'fail';
    await Promise.all(rs.map((r, i) => r.traffic(10, `/s/${i}`)));
    await eventually(async () => (await Promise.all(rs.map(async (r) => (await r.stats()).fleet.state))).every((s) => s !== 'closed'), 10000);
    await eventually(() => replica.cli('GET', `dnastore:fleet:{${name}}:state`).startsWith('s1|'), 5000);
    const generation = (await rs[0].stats()).fleet.generation;
    process.kill(master.proc.pid, 'SIGKILL');
    await master.exited;
    const killedAt = Date.now();
    await eventually(() => replica.cli('ROLE').startsWith('master'), 20000);
    await connectedTimes(rs, 2, 20000);
    process.stderr.write(`fleet-faults.test.js: Sentinel failover: the fleet reconnected ${Date.now() - killedAt} ms after the master was killed\n`);
    // DNAStore still down: the next rounds' trials fail and reopen the fleet, through the new master.
    await eventually(async () => (await rs[0].stats()).fleet.generation > generation, 10000);
    expect(execFileSync('redis-cli', ['-p', String(replica.port), 'GET', `dnastore:fleet:{${name}}:state`], { encoding: 'utf8' })).toMatch(/^s1\|\d+\|o\|/);
    mode = 'ok';
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'closed'), 10000);
  });
});

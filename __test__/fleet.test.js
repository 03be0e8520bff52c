'use strict';

// The fleet circuit (fleetCircuit: 'on'): replicas are separate Node processes
// (fixtures/fleet-replica.js) sharing one real redis-server; DNAStore is a real HTTP server
// in this process that a test turns from healthy to 503 and back. Every replica records its
// transitions with the wall-clock time (one machine, one clock), DNAStore every request.

const { startUpstream, json, eventually } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis } = require('./helpers/redis');
const { startFleetReplica } = require('./helpers/fleet');

const describeRedis = describeRedisIn('fleet.test.js');

const SECRET = 'fleet-jest-secret';
const replicas = [];
let redis;
let up;
let mode = 'ok'; // how DNAStore answers: ok | fail

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function options(name, extra = {}) {
  // The setting: library defaults, resetTimeout 1000, halfOpenMaxCalls 1.
  return { name, baseUrl: up.url, redisUrl: redis.url, fleetCircuit: 'on', signingSecret: SECRET, resetTimeout: 1000, halfOpenMaxCalls: 1, ...extra };
}

const stateOf = async (r) => (await r.events()).state;
const opensOf = async (r, since) => (await r.events()).events.filter((e) => e.name === 'open' && e.t >= since);
const hitsOf = (prefix, since = 0) => up.hits.filter((h) => h.t >= since && h.url.startsWith(prefix));

/** Requests that reached DNAStore after `since`, grouped into rounds (a gap over `gap` ms starts a new one). */
function rounds(since, gap) {
  const out = [];
  for (const h of up.hits.filter((x) => x.t >= since)) {
    const last = out[out.length - 1];
    if (last && h.t - last[last.length - 1].t <= gap) last.push(h);
    else out.push([h]);
  }
  return out;
}

describeRedis('the fleet circuit: replicas sharing one circuit through Redis', () => {
  beforeAll(async () => {
    redis = await startRedis();
    up = await startUpstream((req, res, hit) => {
      hit.t = Date.now();
      if (mode === 'ok') json(res, 200, { ok: true });
      else json(res, 503, { error: 'unavailable' });
    });
  });

  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.end()));
    mode = 'ok';
  });

  afterAll(async () => {
    if (up) await up.stop().catch(() => {});
    if (redis) await redis.stop();
  });

  test('uneven traffic: every replica open within 150 ms of the first, one trial per round fleet-wide, closed together', async () => {
    const name = 'fleet-uneven';
    const rates = [50, 4, 4, 4, 4, 4]; // one busy replica, five quiet ones
    const rs = await Promise.all(rates.map(() => startFleetReplica(options(name), replicas)));
    await eventually(async () => (await Promise.all(rs.map((r) => r.stats()))).every((s) => s.fleet.connected && s.fleet.replicas === 6), 5000);
    await Promise.all(rs.map((r, i) => r.traffic(rates[i], `/r/${i}`)));
    await sleep(1000); // healthy traffic first
    const failedAt = Date.now();
    mode = 'fail';
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'open'), 10000);
    const firstOpens = await Promise.all(rs.map(async (r) => (await opensOf(r, failedAt))[0]));
    const times = firstOpens.map((e) => e.t);
    const first = Math.min(...times);
    const spread = Math.max(...times) - first;
    // The first to open did so alone (its own evidence); the others on the fleet's decision.
    const byFleet = firstOpens.filter((e) => e.decision === 'fleet');
    expect(byFleet.length).toBeGreaterThanOrEqual(4);
    for (const e of byFleet) expect(e).toMatchObject({ reason: 'fleet decision', fleetReason: 'quorum', trippedBy: expect.any(String), votes: expect.any(Number) });
    expect(rs.map((r) => r.replica)).toContain(byFleet[0].trippedBy);
    process.stderr.write(`fleet.test.js: every replica open ${spread} ms after the first (${times.map((t) => t - first).join(', ')})\n`);
    expect(spread).toBeLessThanOrEqual(150);

    // Three recovery rounds against a store still down: at most halfOpenMaxCalls (1) trial each.
    const allOpen = Math.max(...times);
    await sleep(3500);
    const trialRounds = rounds(allOpen + 20, 500);
    process.stderr.write(`fleet.test.js: trials per round with DNAStore down: ${trialRounds.map((x) => x.length).join(', ')}\n`);
    expect(trialRounds.length).toBeGreaterThanOrEqual(2);
    for (const round of trialRounds) expect(round.length).toBeLessThanOrEqual(1);

    // DNAStore back: one trial closes the whole fleet.
    const backAt = Date.now();
    mode = 'ok';
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'closed'), 5000);
    const closes = await Promise.all(rs.map(async (r) => (await r.events()).events.find((e) => e.name === 'close' && e.t >= backAt)));
    const closedIn = Math.max(...closes.map((e) => e.t)) - backAt;
    process.stderr.write(`fleet.test.js: every replica closed ${closedIn} ms after DNAStore recovered\n`);
    expect(closedIn).toBeLessThanOrEqual(1000 + 1500);
    expect(closes.filter((e) => e.decision === 'fleet').length).toBeGreaterThanOrEqual(5);
    const m = await rs[1].metrics();
    expect(m).toMatch(new RegExp(`dnastore_fleet_connected\\{name="${name}"\\} 1`));
    expect(m).toMatch(new RegExp(`dnastore_fleet_replicas\\{name="${name}"\\} 6`));
    expect(m).toMatch(new RegExp(`dnastore_fleet_propagation_seconds_count\\{name="${name}"\\} [1-9]`));
  });

  test('quorum: a replica whose own path to DNAStore fails opens alone; the others stay closed', async () => {
    const name = 'fleet-partition';
    const dead = await startUpstream();
    const deadUrl = dead.url;
    await dead.stop(); // nothing listens there now: connection refused
    const lone = await startFleetReplica(options(name, { baseUrl: deadUrl }), replicas);
    const others = await Promise.all([0, 1].map(() => startFleetReplica(options(name), replicas)));
    const since = Date.now();
    await Promise.all([lone, ...others].map((r, i) => r.traffic(20, `/p/${i}`)));
    await eventually(async () => (await stateOf(lone)) === 'open', 5000);
    const [opened] = await opensOf(lone, since);
    expect(opened).toMatchObject({ decision: 'local', reason: 'consecutive failures' });
    // Its vote is seen, but nobody corroborates it: the others' calls succeed.
    await eventually(async () => (await others[0].stats()).fleet.votes >= 1, 5000);
    await sleep(1500);
    for (const r of others) {
      expect(await stateOf(r)).toBe('closed');
      expect(await opensOf(r, since)).toEqual([]);
      expect((await r.stats()).fleet).toMatchObject({ state: 'closed', generation: 0, connected: true });
    }
    expect(redis.cli('EXISTS', `dnastore:fleet:{${name}}:state`)).toBe('0');
    expect(hitsOf('/p/1', since).length).toBeGreaterThan(20);
  });

  test('a replica started while the fleet is open starts open: its first call never reaches DNAStore', async () => {
    const name = 'fleet-join';
    const long = { resetTimeout: 10000 };
    const rs = await Promise.all([0, 1].map(() => startFleetReplica(options(name, long), replicas)));
    mode = 'fail';
    await Promise.all(rs.map((r, i) => r.traffic(20, `/j/${i}`)));
    await eventually(async () => (await rs[0].stats()).fleet.state === 'open', 5000);
    const late = await startFleetReplica(options(name, long), replicas);
    const r = await late.fire('/j/late');
    expect(r.value).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
    expect(r.ms).toBeLessThan(1000); // redisResponseTimeoutMs bounds the wait for the fleet's state
    expect(hitsOf('/j/late')).toEqual([]);
    const { events, state } = await late.events();
    expect(state).toBe('open');
    expect(events.find((e) => e.name === 'open')).toMatchObject({ decision: 'fleet', fleetReason: 'quorum' });
  });

  test('a fleet message or state forged without the secret is ignored and counted', async () => {
    const name = 'fleet-forged';
    const r = await startFleetReplica(options(name), replicas);
    // What a client that can write to Redis but lacks the secret can write: an unsigned
    // "open" on the channel and in the state key, and an unsigned trip vote.
    const forgedOpen = `s1|99|o|${Date.now() + 600000}|${Date.now()}|intruder|q|9|-`;
    redis.cli('PUBLISH', `dnastore:fleet:{${name}}:events`, forgedOpen);
    redis.cli('SET', `dnastore:fleet:{${name}}:state`, forgedOpen);
    redis.cli('PUBLISH', `dnastore:fleet:{${name}}:events`, `v1|0|intruder|${Date.now()}|-`);
    await eventually(async () => (await r.stats()).fleet.rejected >= 3, 5000);
    await sleep(1200); // two heartbeats read the forged key again: counted once
    const st = await r.stats();
    expect(st.fleet).toMatchObject({ rejected: 3, state: 'closed', votes: 0 });
    expect(st.state).toBe('closed');
    expect((await r.fire('/f/0')).value).toEqual({ ok: true });
    const { logs } = await r.events();
    const warned = logs.filter((l) => l.msg.includes('ignored a fleet record'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 'warn', reason: 'signature' });
    expect(await r.metrics()).toContain(`dnastore_fleet_rejected_total{name="${name}",reason="signature"} 3`);
  });
});

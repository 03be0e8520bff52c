'use strict';

// Shared last-known-good on a real Redis Cluster (redis-server --cluster-enabled yes on free
// loopback ports, joined with redis-cli --cluster create), written and read by breaker
// replicas that are separate Node processes. Two clusters: three masters without replicas
// (one is killed: a clear health transition, the other masters keep serving), and three
// masters with one replica each (one master is killed: the replica takes over, writes resume).

const { execFileSync } = require('node:child_process');
const { startUpstream, json, eventually } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis, startReplica } = require('./helpers/redis');

const describeRedis = describeRedisIn('redis-cluster.test.js');

const ITEMS = 24; // enough keys that every master holds some (the hashes are deterministic)
const replicas = [];
const clusters = [];
let up;
let version = 1; // the upstream's current body version

/** `masters` masters (and `perMaster` replicas each), slots assigned, state ok everywhere. */
async function startCluster(masters, perMaster) {
  const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000', '--cluster-require-full-coverage', 'no'];
  const nodes = await Promise.all(Array.from({ length: masters * (1 + perMaster) }, () => startRedis(args)));
  clusters.push(nodes);
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(perMaster), '--cluster-yes'], { stdio: 'ignore', timeout: 30000 });
  await eventually(() => nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok') && n.cli('CLUSTER', 'INFO').includes(`cluster_known_nodes:${nodes.length}`)), 15000);
  if (perMaster > 0) await eventually(() => nodes.filter((n) => n.cli('ROLE').startsWith('slave')).every((n) => n.cli('INFO', 'replication').includes('master_link_status:up')), 15000);
  return nodes;
}

const isMaster = (n) => n.alive() && n.cli('ROLE').startsWith('master');
const keysOn = (n) => (n.cli('--scan', '--pattern', 'dnastore:lkg:*') || '').split('\n').filter(Boolean);
const paths = Array.from({ length: ITEMS }, (_, i) => `/api/items/${i}`);

function options(name, nodes) {
  // Two seed nodes are enough: the client learns the rest from them.
  const seeds = nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
  return { name, baseUrl: up.url, redisUrl: `redis+cluster://${seeds}`, signingSecret: 'test-secret', maxAttempts: 1, maxFailures: 1000, volumeThreshold: 1000 };
}

describeRedis('shared last-known-good on Redis Cluster', () => {
  beforeAll(async () => {
    up = await startUpstream((req, res) => json(res, 200, { path: req.url, version }));
  });

  afterAll(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.stop()));
    if (up) await up.stop().catch(() => {});
    await Promise.all(clusters.flat().map((n) => n.stop()));
  });

  test('entries spread over the masters; a master killed: down once, the others keep serving', async () => {
    const nodes = await startCluster(3, 0);
    const a = await startReplica(options('cluster-a', nodes), replicas);
    for (const p of paths) expect((await a.fire(p)).value).toEqual({ path: p, version });
    await eventually(() => nodes.reduce((n, node) => n + keysOn(node).length, 0) === ITEMS, 5000);
    const held = nodes.map((n) => keysOn(n).length);
    expect(held.every((k) => k > 0)).toBe(true); // spread over all three masters' slots

    // Kill the master that is not a seed; its slots have no replica to take over.
    const victim = nodes[2];
    await victim.stop();
    await up.stop();
    const b = await startReplica(options('cluster-a', nodes), replicas);
    let cached = 0;
    for (const p of paths) {
      const r = await b.fire(p, { deadline: 1000 });
      expect(r.ms).toBeLessThan(1000 + 200);
      expect(r.value).toMatchObject({ fallback: true, code: 'ECONNREFUSED' });
      if (r.value.source === 'cache') {
        expect(r.value.data).toEqual({ path: p, version }); // each from its own key
        cached += 1;
      } else {
        expect(r.value).toMatchObject({ source: 'none', data: null });
      }
    }
    expect(cached).toBe(held[0] + held[1]); // every entry on a surviving master, none from the dead one

    // One clear transition, with the reason, logged once; no credentials, no URL.
    const { events, logs } = await eventually(async () => {
      const s = await b.events();
      return s.events.length > 0 ? s : null;
    }, 5000);
    expect(events).toEqual([{ up: false, reason: expect.any(String) }]);
    expect(logs.filter((l) => l.msg.includes('Redis'))).toHaveLength(1);
    expect(JSON.stringify(logs)).not.toContain('redis+cluster');
    up = await startUpstream((req, res) => json(res, 200, { path: req.url, version }));
  });

  test('with replicas: a master killed, its replica promoted, writes resume', async () => {
    const nodes = await startCluster(3, 1);
    const masters = nodes.filter(isMaster);
    const a = await startReplica(options('cluster-b', nodes), replicas);
    for (const p of paths) await a.fire(p);
    await eventually(() => masters.reduce((n, m) => n + keysOn(m).length, 0) === ITEMS, 5000).catch(async (e) => {
      throw new Error(`${e.message}: keys per master ${masters.map((m) => keysOn(m).length)}; ${JSON.stringify(await a.events())}`);
    });

    // A master that is not a seed node, and the replica that follows it.
    const victim = masters.find((m) => m !== nodes[0] && m !== nodes[1]);
    const heir = nodes.find((n) => n.cli('ROLE').startsWith('slave') && n.cli('ROLE').includes(`\n${victim.port}\n`));
    const victimKeys = keysOn(victim);
    expect(victimKeys.length).toBeGreaterThan(0);
    await victim.stop();
    const killed = Date.now();
    await eventually(() => isMaster(heir) && heir.cli('CLUSTER', 'INFO').includes('cluster_state:ok'), 15000);

    // New bodies: every write must land, the failed-over slots included.
    version = 2;
    await eventually(async () => {
      for (const p of paths) await a.fire(p);
      return victimKeys.every((k) => heir.cli('GET', k).includes('"version":2'));
    }, 15000);
    const readBack = await startReplica(options('cluster-b', nodes), replicas);
    await up.stop();
    for (const p of paths) {
      const r = await readBack.fire(p);
      expect(r.value).toMatchObject({ fallback: true, source: 'cache', data: { path: p, version: 2 } });
    }
    process.stdout.write(`redis-cluster.test.js: writes resumed on the promoted replica ${Date.now() - killed} ms after the master was killed\n`);
  });
});

'use strict';

// The fleet circuit on a real Redis Cluster (three masters on free loopback ports, joined
// with redis-cli --cluster create): its keys share one hash slot, its scripts run on that
// slot's master, its channel reaches every node (a plain PUBLISH is broadcast), and the
// replicas (separate Node processes) subscribe on a seed node each.

const { execFileSync } = require('node:child_process');
const { startUpstream, json, eventually } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis } = require('./helpers/redis');
const { startFleetReplica } = require('./helpers/fleet');

const describeRedis = describeRedisIn('fleet-cluster.test.js');

const replicas = [];
let nodes = [];
let up;
let mode = 'ok';

const stateOf = async (r) => (await r.events()).state;

describeRedis('the fleet circuit on Redis Cluster', () => {
  beforeAll(async () => {
    up = await startUpstream((req, res, hit) => {
      hit.t = Date.now();
      if (mode === 'ok') json(res, 200, { ok: true });
      else json(res, 503, { error: 'unavailable' });
    });
    const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000', '--cluster-require-full-coverage', 'no'];
    nodes = await Promise.all([0, 1, 2].map(() => startRedis(args)));
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 30000 });
    await eventually(() => nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok')), 15000);
  });

  afterAll(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.end()));
    if (up) await up.stop().catch(() => {});
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('a trip opens every replica, a failed trial reopens them, one trial closes them, through the cluster', async () => {
    const name = 'fleet-cluster';
    // Each replica knows a different seed: it subscribes there, and the broadcast reaches it.
    const rs = await Promise.all(
      [0, 1, 2].map((i) =>
        startFleetReplica(
          { name, baseUrl: up.url, redisUrl: `redis+cluster://127.0.0.1:${nodes[i].port}`, fleetCircuit: 'on', signingSecret: 'fleet-cluster-secret', resetTimeout: 1000, halfOpenMaxCalls: 1, maxAttempts: 1 },
          replicas,
        ),
      ),
    );
    await eventually(async () => (await Promise.all(rs.map((r) => r.stats()))).every((s) => s.fleet.connected && s.fleet.replicas === 3), 10000);
    mode = 'fail';
    // Uneven traffic, so one replica trips well before the others would on their own: they
    // open on the fleet's decision.
    await Promise.all(rs.map((r, i) => r.traffic(i === 0 ? 50 : 5, `/c/${i}`)));
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'open'), 10000);
    const opens = await Promise.all(rs.map(async (r) => (await r.events()).events.find((e) => e.name === 'open')));
    expect(opens.filter((e) => e.decision === 'fleet').length).toBeGreaterThanOrEqual(2);
    // The state lives on the master of its slot, one key per breaker name.
    const holders = nodes.filter((n) => n.cli('EXISTS', `dnastore:fleet:{${name}}:state`) === '1');
    expect(holders).toHaveLength(1);
    // A round fails (the generation moves on), then DNAStore recovers and one trial closes all.
    const generation = (await rs[0].stats()).fleet.generation;
    await eventually(async () => (await rs[2].stats()).fleet.generation > generation, 5000);
    mode = 'ok';
    await eventually(async () => (await Promise.all(rs.map(stateOf))).every((s) => s === 'closed'), 5000);
    for (const r of rs) {
      const { logs } = await r.events();
      expect(logs.filter((l) => /fleet circuit disconnected/.test(l.msg))).toEqual([]);
    }
  });
});

'use strict';

// Redis as a fleet runs it: a primary, one replica and three Sentinels (quorum 2), real
// `redis-server` processes on free loopback ports, each with its own config file and
// directory so that a process killed and started again comes back as it was (Sentinel
// rewrites the files as roles change). The data nodes run with `appendonly yes` and
// `appendfsync always`, as the README asks of a fleet outbox's Redis: what Redis
// acknowledged survives a SIGKILL of every node. Clients reach it through the
// `redis+sentinel://` URL form.

const fs = require('node:fs');
const path = require('node:path');
const { freePort } = require('../../examples/fake-dnastore/control');
const procs = require('./procs');

const MASTER = 'mymaster';
// Sentinel's timings: a master unreachable for 1 s is down; a failover that has not
// finished after 5 s is given up (and may be tried again after twice that).
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;

function dataConf({ port, dir, replicaOf }) {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    'logfile redis.log',
    'appendonly yes',
    'appendfsync always',
    'save ""',
    ...(replicaOf ? [`replicaof 127.0.0.1 ${replicaOf}`] : []),
    '',
  ].join('\n');
}

function sentinelConf({ port, dir, masterPort }) {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    'logfile sentinel.log',
    `sentinel monitor ${MASTER} 127.0.0.1 ${masterPort} 2`,
    `sentinel down-after-milliseconds ${MASTER} ${DOWN_AFTER_MS}`,
    `sentinel failover-timeout ${MASTER} ${FAILOVER_TIMEOUT_MS}`,
    `sentinel parallel-syncs ${MASTER} 1`,
    '',
  ].join('\n');
}

/** Starts the five processes under `dir`; resolves once a master is known to the Sentinels. */
async function startRedisSet({ dir, log }) {
  const [p0, p1, s0, s1, s2] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const nodes = [];
  const add = (name, port, conf, sentinel) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    const file = path.join(d, sentinel ? 'sentinel.conf' : 'redis.conf');
    fs.writeFileSync(file, conf(d));
    nodes.push({ name, port, dir: d, file, sentinel, child: null });
  };
  add('redis-a', p0, (d) => dataConf({ port: p0, dir: d }), false);
  add('redis-b', p1, (d) => dataConf({ port: p1, dir: d, replicaOf: p0 }), false);
  for (const [i, p] of [s0, s1, s2].entries()) add(`sentinel-${i + 1}`, p, (d) => sentinelConf({ port: p, dir: d, masterPort: p0 }), true);
  const data = nodes.filter((n) => !n.sentinel);
  const sentinels = nodes.filter((n) => n.sentinel);

  async function startNode(n) {
    if (procs.alive(n.child)) return;
    n.child = procs.start(n.name, 'redis-server', n.sentinel ? [n.file, '--sentinel'] : [n.file]);
    await procs.until(`${n.name} to listen on ${n.port}`, async () => {
      if (!procs.alive(n.child)) throw new Error(`${n.name} exited: ${n.child.output.slice(-500)}`);
      return procs.canConnect(n.port);
    }, { timeoutMs: 10000, intervalMs: 50 });
  }

  /** SIGKILL, as a crash or an OOM kill: nothing is flushed that was not already. */
  async function killNode(n) {
    if (!procs.alive(n.child)) return;
    n.child.kill('SIGKILL');
    await n.child.exited;
  }

  const cli = (port, ...args) => procs.run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeoutMs: 2000 });

  /** The master's port as the Sentinels that answer agree on (null when none answers). */
  async function masterPort() {
    const votes = new Map();
    await Promise.all(sentinels.map(async (s) => {
      if (!procs.alive(s.child)) return;
      const r = await cli(s.port, 'SENTINEL', 'get-master-addr-by-name', MASTER);
      const port = Number(r.stdout.trim().split('\n')[1]);
      if (r.code === 0 && port) votes.set(port, (votes.get(port) || 0) + 1);
    }));
    let best = null;
    for (const [port, n] of votes) if (!best || n > votes.get(best)) best = port;
    return best;
  }

  /** Resolves the data node that is master and answers as one (bounded). */
  async function waitForMaster(timeoutMs = 20000, notPort = undefined) {
    return procs.until('a Redis master the Sentinels agree on', async () => {
      const port = await masterPort();
      if (!port || port === notPort) return null;
      const role = await cli(port, 'ROLE');
      return role.code === 0 && role.stdout.startsWith('master') ? data.find((n) => n.port === port) : null;
    }, { timeoutMs, intervalMs: 250 });
  }

  for (const n of data) await startNode(n);
  for (const s of sentinels) await startNode(s);
  await waitForMaster();
  // The replica must be in sync before the first fault, or a failover would find nothing.
  await procs.until('the Redis replica to sync', async () => /master_link_status:up/.test((await cli(p1, 'INFO', 'replication')).stdout), { timeoutMs: 15000 });
  log(`Redis: primary ${p0}, replica ${p1}, Sentinels ${s0}, ${s1}, ${s2} (down-after ${DOWN_AFTER_MS} ms, AOF fsync always)`);

  return {
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER}`,
    nodes,
    data,
    sentinels,
    masterPort,
    waitForMaster,
    startNode,
    killNode,
    /** SIGSTOP / SIGCONT to one process (a hang: its connections stay open, unanswered). */
    signal(n, sig) {
      if (procs.alive(n.child)) n.child.kill(sig);
    },
    /** Every process down (SIGKILL). */
    async killAll() {
      await Promise.all(nodes.map(killNode));
    },
    /** Every process up again (data nodes first), then a master (bounded). */
    async startAll() {
      for (const n of data) await startNode(n);
      for (const s of sentinels) await startNode(s);
      return waitForMaster();
    },
    /** The length of a stream on the master (null when no master answers). */
    async xlen(key) {
      const port = await masterPort();
      if (!port) return null;
      const r = await cli(port, 'XLEN', key);
      return r.code === 0 && /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : null;
    },
    async stop() {
      // A process left stopped (SIGSTOP) would not act on SIGTERM.
      for (const n of nodes) if (procs.alive(n.child)) n.child.kill('SIGCONT');
      await Promise.all(nodes.map((n) => procs.stop(n.child, 'SIGTERM', 2000)));
    },
  };
}

module.exports = { startRedisSet, MASTER, DOWN_AFTER_MS };

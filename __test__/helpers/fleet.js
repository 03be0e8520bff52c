'use strict';

// Replicas of a service for the fleet circuit's suites and bench: each a separate Node
// process (fixtures/fleet-replica.js) with one breaker, driven over IPC. Every process is
// stopped by its PID; each ends by itself after `lifeMs` anyway.

const { fork } = require('node:child_process');
const path = require('node:path');

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'fleet-replica.js');

/** Starts a replica; resolves once it has read the fleet's state. `list` collects it for cleanup. */
async function startFleetReplica(opts, list) {
  const child = fork(FIXTURE, [JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const pending = new Map();
  let seq = 0;
  const replica = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`replica exited before it was ready (${code ?? signal})`)));
    child.on('message', (m) => {
      if (m.ready) resolve(m.replica);
      else pending.get(m.id)?.(m);
    });
  });
  const call = (msg) =>
    new Promise((resolve) => {
      if (!child.connected) {
        resolve({ error: { code: 'EGONE' } });
        return;
      }
      seq += 1;
      pending.set(seq, resolve);
      child.send({ id: seq, ...msg });
    });
  const r = {
    child,
    replica,
    traffic: (rate, p) => call({ op: 'traffic', rate, path: p }),
    stop: () => call({ op: 'stop' }),
    /** One call: `{ value, ms }` (its outcome, and how long it took in the replica). */
    fire: (p) => call({ op: 'fire', path: p }),
    events: () => call({ op: 'events' }).then((m) => m.value),
    stats: () => call({ op: 'stats' }).then((m) => m.value),
    metrics: () => call({ op: 'metrics' }).then((m) => m.value),
    alive: () => child.exitCode === null && child.signalCode === null,
    /** SIGKILL, by PID: no shutdown, no goodbye to the fleet. */
    kill: () => {
      if (r.alive()) process.kill(child.pid, 'SIGKILL');
      return exited;
    },
    end: () => {
      if (child.connected) child.disconnect();
      const t = setTimeout(() => r.kill(), 5000);
      return exited.finally(() => clearTimeout(t));
    },
  };
  list.push(r);
  return r;
}

/** The wall-clock time of a replica's first event matching `pred` after `since`, or null. */
async function firstEvent(r, pred, since = 0) {
  const { events } = await r.events();
  const e = events.find((x) => x.t >= since && pred(x));
  return e ? e.t : null;
}

module.exports = { startFleetReplica, firstEvent };

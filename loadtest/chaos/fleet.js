'use strict';

// The service fleet: N replicas of the example Sigil API (examples/sigil-api), each its own
// process on its own port, and what a cluster does with them (the kubelet and the endpoints
// controller, in a few lines):
//
// - readiness: /readyz is polled every second; a replica that fails it twice in a row is
//   taken out of the load balancer (its upstream marked `down`, nginx reloaded), one that
//   answers again is put back. /readyz stays 200 while DNAStore is out (examples/sigil-api
//   says why): only a replica that cannot answer leaves.
// - liveness: /healthz every 2 s; three failures in a row while the process is alive (it
//   hangs) and the replica is killed and started again, as a kubelet would. A chaos run
//   should never see this (counted in the summary).
//
// Each readiness answer is also a sample for the timeline: breaker state and the outbox's
// depth (the shared queue and the writes this replica spilled), per replica, per second.

const fs = require('node:fs');
const path = require('node:path');
const { spawnNode, request, freePort, HOST } = require('../../examples/fake-dnastore/control');
const procs = require('./procs');
const { transitionOf } = require('./fleet-circuit');

const SCRIPT = path.join(__dirname, '..', '..', 'examples', 'sigil-api', 'sigil-api.cjs');
const READY_EVERY_MS = 1000;
const LIVE_EVERY_MS = 2000;
const NOT_READY_AFTER = 2;
const LIVENESS_FAILURES = 3;

/**
 * `env`: the replicas' shared environment (DNAStore, Redis, breaker settings).
 * `setServing(i, bool)`: puts replica i in or out of the load balancer.
 */
async function startFleet({ count, env, dir, log, now }) {
  const ports = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const replicas = ports.map((port, i) => ({
    index: i,
    name: `replica-${i + 1}`,
    port,
    base: `http://${HOST}:${port}`,
    proc: null,
    serving: true,
    readyFailures: 0,
    liveFailures: 0,
    starts: 0,
    logFile: path.join(dir, `replica-${i + 1}.log`),
  }));
  const samples = []; // { t, replica, up, state, outbox, inFlight }
  const events = []; // { t, replica, what }
  const transitions = {}; // replica name -> [{ t, to, decision, generation }] from its log lines
  let setServing = () => {};
  let probing = null;

  async function start(r) {
    if (r.proc && procs.alive(r.proc.child)) return;
    const out = fs.createWriteStream(r.logFile, { flags: 'a' });
    r.proc = spawnNode({
      script: SCRIPT,
      env: { ...env, PORT: String(r.port) },
      isReady: (rec) => rec.msg === 'sigil-api listening',
      keepLines: 0,
      readyTimeoutMs: 20000,
      onLine: (rec) => {
        out.write(`${JSON.stringify(rec)}\n`);
        const tr = transitionOf(rec);
        if (tr) (transitions[r.name] ??= []).push(tr);
      },
    });
    r.proc.child.stderr.on('data', (d) => out.write(d));
    r.proc.exited.then(() => out.end());
    procs.track(r.name, r.proc.child);
    r.starts++;
    await r.proc.ready;
    r.startedAt = now();
    r.liveFailures = 0;
  }

  /** SIGKILL (a crash, an OOM kill, a node lost): nothing the replica held is handed back. */
  async function kill(r) {
    if (!r.proc || !procs.alive(r.proc.child)) return;
    r.proc.child.kill('SIGKILL');
    await r.proc.exited;
  }

  async function readyz(r, timeout = 800) {
    return (await request('GET', `${r.base}/readyz`, { timeout })).json;
  }

  async function probeReady(r) {
    const t = now();
    let body = null;
    try {
      body = await readyz(r);
    } catch {
      body = null;
    }
    const b = body?.breakers?.dnastore;
    samples.push({ t, replica: r.name, up: !!b, state: b ? b.state : 'down', outbox: b?.outbox ? b.outbox.entries + (b.outbox.spilled || 0) : null, inFlight: b?.outbox?.inFlight ?? null });
    if (b) {
      r.readyFailures = 0;
      if (!r.serving) {
        r.serving = true;
        events.push({ t, replica: r.name, what: 'ready: back in the load balancer' });
        setServing(r.index, true);
      }
    } else if (++r.readyFailures >= NOT_READY_AFTER && r.serving) {
      r.serving = false;
      events.push({ t, replica: r.name, what: 'not ready: out of the load balancer' });
      setServing(r.index, false);
    }
  }

  async function probeLive(r) {
    if (!r.proc || !procs.alive(r.proc.child)) return; // dead: the fault (or its end) restarts it
    try {
      const res = await request('GET', `${r.base}/healthz`, { timeout: 1000 });
      r.liveFailures = res.status === 200 ? 0 : r.liveFailures + 1;
    } catch {
      r.liveFailures++;
    }
    if (r.liveFailures >= LIVENESS_FAILURES) {
      events.push({ t: now(), replica: r.name, what: 'liveness failed: killed and restarted' });
      log(`${r.name}: /healthz failed ${r.liveFailures} times in a row while the process is alive: restarting it`);
      await kill(r);
      await start(r).catch((err) => log(`${r.name}: restart failed: ${err.message}`));
    }
  }

  // One loop per probe kind; a probe that is still running is not started again.
  function loop(fn, everyMs) {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      Promise.all(replicas.map(fn)).finally(() => {
        busy = false;
      });
    }, everyMs);
    return () => clearInterval(timer);
  }

  await Promise.all(replicas.map(start));
  log(`fleet: ${count} Sigil API replicas on ports ${ports.join(', ')} (PIDs ${replicas.map((r) => r.proc.pid).join(', ')})`);

  return {
    replicas,
    ports,
    samples,
    events,
    transitions,
    start,
    kill,
    readyz,
    /** Starts the probes; `onServing(i, serving)` changes the load balancer. */
    probe(onServing) {
      setServing = onServing;
      const stops = [loop(probeReady, READY_EVERY_MS), loop(probeLive, LIVE_EVERY_MS)];
      probing = () => stops.forEach((s) => s());
    },
    runtime,
    livenessRestarts: () => events.filter((e) => e.what.startsWith('liveness')).length,
    sampleRss: ({ t0, warmupS, stopped }) => sampleRss({ replicas, t0, warmupS, stopped }),
    async stop() {
      if (probing) probing();
      await Promise.all(replicas.map((r) => r.proc && procs.stop(r.proc.child, 'SIGTERM', 3000)));
    },
  };
}

async function runtime(r) {
  try {
    return (await request('GET', `${r.base}/admin/runtime`, { timeout: 2000 })).json;
  } catch {
    return null;
  }
}

// RSS per replica every 5 s (GET /admin/runtime). Growth is measured from the first sample
// taken `warmupS` after the replica's latest start (or the run's, t0), to the last one.
function sampleRss({ replicas, t0, warmupS, stopped }) {
  const samples = replicas.map(() => []);
  let busy = false;
  const take = async () => {
    if (busy) return;
    busy = true;
    await Promise.all(replicas.map(async (r, i) => {
      const rt = await runtime(r);
      if (rt) samples[i].push({ t: Date.now(), starts: r.starts, startedAt: r.startedAt, rss: rt.rssBytes });
    }));
    busy = false;
  };
  const timer = setInterval(() => {
    if (!stopped()) take();
  }, 5000);
  return {
    async finish() {
      clearInterval(timer);
      await take();
      const mib = (b) => Math.round((b / 1048576) * 10) / 10;
      const out = {};
      replicas.forEach((r, i) => {
        const mine = samples[i].filter((s) => s.starts === r.starts && s.t - Math.max(s.startedAt, t0) >= warmupS * 1000);
        if (mine.length < 2) {
          out[r.name] = { afterWarmupMiB: null, endMiB: null, growthMiB: null, restarts: r.starts - 1 };
          return;
        }
        const [first, last] = [mine[0], mine[mine.length - 1]];
        // One sample a minute from the first: whether it levels off (warm-up, caches filling)
        // or keeps climbing (a leak) shows over a long run.
        const perMinuteMiB = mine.filter((x, k) => k === 0 || Math.floor((x.t - first.t) / 60000) > Math.floor((mine[k - 1].t - first.t) / 60000)).map((x) => mib(x.rss));
        out[r.name] = { afterWarmupMiB: mib(first.rss), endMiB: mib(last.rss), growthMiB: mib(last.rss - first.rss), overS: Math.round((last.t - first.t) / 1000), restarts: r.starts - 1, perMinuteMiB };
      });
      return out;
    },
  };
}

module.exports = { startFleet };

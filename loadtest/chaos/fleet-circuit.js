'use strict';

// What the fleet circuit (issue 28, docs/fleet.md) did in each DNAStore outage of a chaos
// run, and its two gates:
//
// - spread: from the first replica's circuit opening to the last one's (ms), read from the
//   replicas' own transition log lines (pino's `time`, ms), so the harness's polling adds
//   nothing to it;
// - trials: upstream attempts the replicas made once every circuit was open (their
//   `dnastore_requests_total`, every outcome but `rejected` and `aborted`, which never
//   reached DNAStore), against the half-open rounds in that time. The counters are read
//   from each replica's /metrics every SAMPLE_MS during outages only. Counting at the
//   replicas, not at DNAStore, works for `dnastore-down` too (a stopped store counts
//   nothing).
//
// Pure functions but for the sampler, unit-tested in __test__/chaos.test.js.

const { request } = require('../../examples/fake-dnastore/control');

const SAMPLE_MS = 250;
// An attempt sent just before a circuit opened ends up to the replicas' timeout (500 ms)
// later: the trials are counted from this long after the last replica opened.
const IN_FLIGHT_MS = 500;
// The spread gate. docs/fleet.md measured 1-11 ms from the first replica open to the last
// with the fleet (182-858 ms without, on quiet replicas), and the fleet test holds 150 ms.
// The fleet's own catch-up for a lost pub/sub message is its 500 ms read. The bound is one
// resetTimeout of this run (2 s, loadtest/k6.js apiEnv): replicas further apart than that
// are in different half-open rounds, which is what the fleet circuit exists to prevent. It
// leaves room for a replica's event loop stalled by a loaded shared machine, not for a lost
// decision.
const SPREAD_LIMIT_MS = 2000;
// Faults during which Redis is down as well: the fleet cannot decide, every replica runs on
// its local circuit (docs/fleet.md, "When Redis fails"). Reported, not gated.
const redisAlsoDown = (name) => name.includes('redis');

const TRANSITION = /^DNAStore circuit breaker (OPEN|HALF-OPEN|CLOSED) /;
const TO = { OPEN: 'open', 'HALF-OPEN': 'halfOpen', CLOSED: 'close' };

/** A replica's log record -> a transition { t, to, decision, generation }, or null. */
function transitionOf(rec) {
  const m = typeof rec?.msg === 'string' && rec.breaker === 'dnastore' ? TRANSITION.exec(rec.msg) : null;
  if (!m) return null;
  return { t: rec.time, to: TO[m[1]], decision: rec.decision ?? 'local', generation: rec.generation ?? null };
}

/** Upstream attempts in a Prometheus text exposition: dnastore_requests_total{name="dnastore"}, outcomes that reached DNAStore. */
function attemptsIn(text) {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('dnastore_requests_total{')) continue;
    if (!line.includes('name="dnastore"') || /outcome="(rejected|aborted)"/.test(line)) continue;
    n += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return n;
}

/** Samples each replica's attempts every SAMPLE_MS while `active()`. Samples: { t, replica, attempts }. */
function startAttemptSampler({ replicas, active }) {
  const samples = [];
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || !active()) return;
    busy = true;
    await Promise.all(replicas.map(async (r) => {
      try {
        const res = await request('GET', `${r.base}/metrics`, { timeout: 1000 });
        if (res.status === 200) samples.push({ t: Date.now(), replica: r.name, attempts: attemptsIn(res.body) });
      } catch {
        // A replica that does not answer (killed) has no sample.
      }
    }));
    busy = false;
  }, SAMPLE_MS);
  return { samples, stop: () => clearInterval(timer) };
}

// A replica's attempts between two times: its first sample at or after `from` to its last
// at or before `to`; null without two such samples, or across a restart (the counter reset).
function delta(samples, from, to) {
  const inside = samples.filter((s) => s.t >= from && s.t <= to);
  if (inside.length < 2) return null;
  const d = inside[inside.length - 1].attempts - inside[0].attempts;
  return d >= 0 ? d : null;
}

/**
 * Per DNAStore outage: { fault, gated, opened, spreadMs, decisions, rounds, trials,
 * trialsPerRound, withoutFleet }. `transitions`: { replica: [{ t, to, decision }] };
 * `samples`: the sampler's; `windows`: the run's faults { name, outage, startMs, endMs };
 * `resetMs`: the replicas' resetTimeout.
 */
function perOutage({ windows, transitions, samples, replicas, resetMs }) {
  const out = [];
  for (const w of windows) {
    if (!w.outage) continue;
    const opens = [];
    const decisions = {};
    for (const r of replicas) {
      // The first open of this outage (it may come a little after the window: a slow call).
      const o = (transitions[r] || []).find((x) => x.to === 'open' && x.t >= w.startMs && x.t <= w.endMs + 1000);
      if (o) {
        opens.push(o.t);
        decisions[o.decision] = (decisions[o.decision] || 0) + 1;
      }
    }
    const allOpen = opens.length ? Math.max(...opens) : null;
    let rounds = null;
    let trials = null;
    if (allOpen !== null) {
      // Rounds that began once all were open and had their trial's time before the end:
      // the half-open transitions of every replica, those less than half a resetTimeout
      // apart being one round. Not one replica's count: a replica whose own trial failed
      // reopens locally and may not log the fleet's next round (it is open already).
      const starts = replicas.flatMap((r) => (transitions[r] || []).filter((x) => x.to === 'halfOpen' && x.t >= allOpen && x.t <= w.endMs - IN_FLIGHT_MS).map((x) => x.t)).sort((a, b) => a - b);
      rounds = 0;
      let roundAt = -Infinity;
      for (const t of starts) {
        if (t - roundAt < resetMs / 2) continue;
        rounds++;
        roundAt = t;
      }
      const perReplica = replicas.map((r) => delta(samples.filter((s) => s.replica === r), allOpen + IN_FLIGHT_MS, w.endMs));
      trials = perReplica.every((d) => d === null) ? null : perReplica.reduce((a, d) => a + (d ?? 0), 0);
    }
    out.push({
      fault: w.name,
      gated: !redisAlsoDown(w.name),
      opened: opens.length,
      spreadMs: opens.length ? Math.max(...opens) - Math.min(...opens) : null,
      decisions,
      rounds,
      trials,
      trialsPerRound: rounds ? Math.round((trials / rounds) * 100) / 100 : null,
      // Without the fleet each replica runs its own rounds of halfOpenMaxCalls (1 in this run).
      withoutFleet: rounds === null ? null : replicas.length * rounds,
    });
  }
  return out;
}

/** The gates over perOutage()'s rows that are gated (Redis up). */
function fleetGates(rows, replicas) {
  const gated = rows.filter((o) => o.gated);
  return [
    [`fleet circuit: in each DNAStore outage (Redis up) every replica opened, first to last within ${SPREAD_LIMIT_MS} ms`,
      gated.length > 0 && gated.every((o) => o.opened === replicas && o.spreadMs !== null && o.spreadMs <= SPREAD_LIMIT_MS)],
    ['fleet circuit: in each DNAStore outage (Redis up) the fleet sent fewer trials than replicas x rounds',
      gated.length > 0 && gated.every((o) => o.rounds > 0 && o.trials !== null && o.trials < o.withoutFleet)],
  ].map(([name, pass]) => ({ name, pass }));
}

module.exports = { transitionOf, attemptsIn, startAttemptSampler, perOutage, fleetGates, SPREAD_LIMIT_MS, SAMPLE_MS };

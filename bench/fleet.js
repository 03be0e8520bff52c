'use strict';

// The fleet circuit against each replica learning alone (issue 28): R replica processes
// (one busy at 50 req/s, the others quiet at 4 req/s) share one redis-server; DNAStore (an
// HTTP server in this process) answers 503 for an outage, then recovers. Library defaults
// plus resetTimeout 1000 and halfOpenMaxCalls 1, redisUrl set either way (the LKG shares
// it); fleetCircuit off, then on, for each R. Reported per run:
//
//   spread        from the first replica open to the last one open
//   failing       requests DNAStore received from the first trip until every replica was open
//   trials/round  requests DNAStore received per resetTimeout round once every replica was
//                 open (the half-open trials), mean and largest round
//   close         from DNAStore's recovery to the last replica closed
//
//   node bench/fleet.js                  # R = 2, 4, 6, 8, 16
//   node bench/fleet.js --replicas 2,6   # chosen fleet sizes
//   node bench/fleet.js --outage 5000    # ms of outage after every replica is open
//
// Needs redis-server and the built addon. Prints a Markdown table; every process it starts
// is stopped by its PID, and every replica ends by itself after two minutes anyway.

const { startUpstream, json, eventually } = require('../__test__/helpers/upstream');
const { startRedis } = require('../__test__/helpers/redis');
const { startFleetReplica } = require('../__test__/helpers/fleet');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const SIZES = opt('replicas', '2,4,6,8,16').split(',').map(Number);
const OUTAGE_MS = Number(opt('outage', '5000'));
const RESET_MS = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let mode = 'ok';

async function run(redis, up, size, fleet) {
  const name = `bench-fleet-${size}-${fleet ? 'on' : 'off'}-${process.pid}`;
  const options = { name, baseUrl: up.url, redisUrl: redis.url, signingSecret: 'bench-secret', resetTimeout: RESET_MS, halfOpenMaxCalls: 1, fleetCircuit: fleet ? 'on' : 'off', logger: false };
  const list = [];
  try {
    const rs = await Promise.all(Array.from({ length: size }, () => startFleetReplica(options, list)));
    if (fleet) await eventually(async () => (await Promise.all(rs.map((r) => r.stats()))).every((s) => s.fleet.replicas >= size), 10000);
    const rates = rs.map((_, i) => (i === 0 ? 50 : 4));
    await Promise.all(rs.map((r, i) => r.traffic(rates[i], `/r/${i}`)));
    await sleep(1000);
    const failedAt = Date.now();
    mode = 'fail';
    const opensOf = async (r) => (await r.events()).events.filter((e) => e.name === 'open' && e.t >= failedAt);
    const states = async () => Promise.all(rs.map(async (r) => (await r.events()).state));
    await eventually(async () => (await states()).every((s) => s !== 'closed'), 20000, 10);
    const first = await Promise.all(rs.map(async (r) => (await opensOf(r))[0].t));
    const firstOpen = Math.min(...first);
    const allOpen = Math.max(...first);
    const failing = up.hits.filter((h) => h.t >= firstOpen && h.t <= allOpen).length;
    // DNAStore recovers half a round after the outage's last full round, so neither mode
    // recovers right as a round begins.
    await sleep(OUTAGE_MS + RESET_MS / 2);
    const trials = up.hits.filter((h) => h.t > allOpen && h.t <= allOpen + OUTAGE_MS + RESET_MS / 2);
    // Rounds: resetTimeout-long windows, the first centred on the first round's trials
    // (resetTimeout after the last replica opened).
    const perRound = [];
    for (let k = 0; k < Math.floor(OUTAGE_MS / RESET_MS); k += 1) {
      const from = allOpen + RESET_MS / 2 + k * RESET_MS;
      perRound.push(trials.filter((h) => h.t > from && h.t <= from + RESET_MS).length);
    }
    const recoveredAt = Date.now();
    mode = 'ok';
    await eventually(async () => (await states()).every((s) => s === 'closed'), 20000, 10);
    const closes = await Promise.all(rs.map(async (r) => (await r.events()).events.filter((e) => e.name === 'close' && e.t >= recoveredAt)[0].t));
    return {
      size,
      fleet,
      spread: allOpen - firstOpen,
      failing,
      trialsMean: perRound.reduce((a, b) => a + b, 0) / perRound.length,
      trialsMax: Math.max(...perRound),
      trialsTotal: trials.length,
      close: Math.max(...closes) - recoveredAt,
    };
  } finally {
    mode = 'ok';
    await Promise.all(list.map((r) => r.end()));
  }
}

async function main() {
  const redis = await startRedis();
  const up = await startUpstream((req, res, hit) => {
    hit.t = Date.now();
    if (mode === 'ok') json(res, 200, { ok: true });
    else json(res, 503, { error: 'unavailable' });
  });
  const rows = [];
  try {
    for (const size of SIZES) {
      for (const fleet of [false, true]) {
        const r = await run(redis, up, size, fleet);
        rows.push(r);
        process.stderr.write(`${JSON.stringify(r)}\n`);
      }
    }
  } finally {
    await up.stop().catch(() => {});
    await redis.stop();
  }
  const lines = [
    '| replicas | fleetCircuit | spread, first open to last | failing requests after the first trip, until all open | trials per round (mean / max) | trials in the outage | close after recovery |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.size} | ${r.fleet ? 'on' : 'off'} | ${r.spread} ms | ${r.failing} | ${r.trialsMean.toFixed(1)} / ${r.trialsMax} | ${r.trialsTotal} | ${r.close} ms |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n\nOutage of ${OUTAGE_MS + RESET_MS / 2} ms after every replica is open; resetTimeout ${RESET_MS} ms, halfOpenMaxCalls 1; one busy replica at 50 req/s, the others at 4 req/s.\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});

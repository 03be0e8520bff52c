'use strict';

// The faults a chaos run injects, and their seeded schedule.
//
// Each fault has a window (seconds): it starts, holds for the window, ends; faults never
// overlap (`dnastore-and-redis-down` is the one that breaks two things at once, on
// purpose). The schedule shuffles the eight with the run's seed, so a seed replays the same
// order and times; a run long enough for more than one round shuffles each round anew.
//
// `outage: true` marks the faults during which DNAStore answers no call within the
// replicas' timeout (down, every connection reset, answers after 2.5 s against a 500 ms
// timeout): the circuit must open, and the DNAStore-down alert (DNAStoreCircuitOpen) must
// fire during each and resolve after it. 30 % of 500s is not one: retries hide most of it
// and the failure rate stays under the breaker's threshold (reported, not gated).

const { seededRandom } = require('../../examples/fake-dnastore/random');

const WINDOW_S = 8; // DNAStore faults, unless --window says otherwise
// A long run repeats the faults in rounds of at least this long, so that it is as dense in
// faults as the 3-minute run (one round in 180 s): its gates (a 1 % failure budget) mean the
// same over 3 or 30 minutes.
const ROUND_MIN_S = 170;
const FAULTS = {
  'dnastore-down': { outage: true, windowS: (w) => w, what: 'the DNAStore process stopped (connections refused)' },
  'dnastore-slow': { outage: true, windowS: (w) => w, what: 'DNAStore answers after 2.5 s (the replicas time out at 500 ms)' },
  'dnastore-errors': { outage: false, windowS: (w) => w, what: 'DNAStore answers 30 % of requests with 500 (seeded)' },
  'dnastore-resets': { outage: true, windowS: (w) => w, what: 'DNAStore handles each request (a write IS stored), then resets the connection before answering' },
  'redis-primary-kill': { outage: false, windowS: () => 10, what: 'SIGKILL of the Redis primary; Sentinel promotes the replica; the old primary restarts after 10 s and rejoins as a replica' },
  'redis-down': { outage: false, windowS: () => 20, what: 'every Redis process (both data nodes and the three Sentinels) SIGKILLed, started again after 20 s' },
  'replica-kill': { outage: false, windowS: () => 10, what: 'SIGKILL of one service replica (not replica-1), started again after 10 s' },
  // As long as the other DNAStore faults. With DNAStore and Redis both down a write can be
  // neither delivered nor queued in Redis; the fleet outbox spills it to the replica's own
  // file, answers it 202, and forwards it to the stream once Redis is back (docs/outbox.md,
  // the spill). Before the spill existed the API answered those writes 503 "not stored",
  // ~20 a second, and this fault had to be shortened to 4 s to stay under the 1 % gate.
  'dnastore-and-redis-down': { outage: true, windowS: (w) => w, what: 'DNAStore stopped and every Redis process SIGKILLed at once' },
};
// The schedule's faults by default: the eight above. These run only when --faults names
// them (alone or as a+b): a Redis that hangs rather than dies (SIGSTOP: connections accepted,
// nothing answered, until SIGCONT).
const EXTRA = {
  'redis-hang': { outage: false, windowS: () => 20, what: 'every Redis process stopped with SIGSTOP (connections hang), resumed after 20 s' },
  'redis-primary-hang': { outage: false, windowS: () => 10, what: 'the Redis primary stopped with SIGSTOP; Sentinel promotes the replica; the old primary resumes after 10 s and is demoted' },
};
const NAMES = Object.keys(FAULTS);
Object.assign(FAULTS, EXTRA);

/**
 * The seeded schedule: [{ name, atS, windowS, outage }], sorted by atS. The first fault
 * starts after `warmupS`; the last one ends `tailS` before `durationS`; the time left is
 * spread evenly between them (at least `minGapS` each, so the fleet recovers in between).
 * Each round (every fault once, shuffled) gets at least `roundMinS` of the run.
 */
function schedule({ seed, durationS, warmupS = 15, tailS = 32, minGapS = 6, windowS = WINDOW_S, only = NAMES, roundMinS = ROUND_MIN_S }) {
  for (const n of only) for (const part of n.split('+')) if (!FAULTS[part]) throw new Error(`unknown fault ${part}; the faults: ${NAMES.join(', ')} (a+b: both at once)`);
  const random = seededRandom(seed);
  const shuffled = () => {
    const a = [...only];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };
  // `a+b`: both at once, for as long as the longer one lasts.
  const win = (n) => Math.max(...n.split('+').map((p) => FAULTS[p].windowS(windowS)));
  const isOutage = (n) => n.split('+').some((p) => FAULTS[p].outage);
  const roundS = only.reduce((s, n) => s + win(n) + minGapS, 0);
  const available = durationS - warmupS - tailS;
  if (available < roundS) {
    throw new Error(`--duration ${durationS}s is too short for the faults ${only.join(', ')}: they need ${Math.ceil(roundS + warmupS + tailS)} s (windows, ${minGapS} s gaps, ${warmupS} s warm-up, ${tailS} s after the last one)`);
  }
  const names = [];
  const rounds = Math.max(1, Math.floor(available / Math.max(roundS, roundMinS)));
  for (let r = 0; r < rounds; r++) names.push(...shuffled());
  const busy = names.reduce((s, n) => s + win(n), 0);
  const gap = (available - busy) / names.length;
  const out = [];
  let at = warmupS;
  for (const name of names) {
    at += gap;
    out.push({ name, atS: Math.round(at * 10) / 10, windowS: win(name), outage: isOutage(name) });
    at += win(name);
  }
  return out;
}

/**
 * Starts a fault; resolves to its end() (which puts things back, bounded). `ctx`: { store,
 * redis, fleet, random, log, note(fault, text) }.
 */
async function inject(name, ctx) {
  if (name.includes('+')) {
    const ends = [];
    for (const part of name.split('+')) ends.push(await inject(part, ctx));
    return async () => {
      for (const end of ends) await end();
    };
  }
  const { store, redis, fleet, log } = ctx;
  switch (name) {
    case 'dnastore-down':
      await ctx.beforeStoreStop();
      await store.stop();
      return () => store.start();
    case 'dnastore-slow':
      await store.setMode('slow', { ms: 2500 });
      return () => store.setMode('up');
    case 'dnastore-errors':
      await store.setMode('flaky', { p: 30, seed: Math.floor(ctx.random() * 1e9) });
      return () => store.setMode('up');
    case 'dnastore-resets':
      await store.setMode('lostreply');
      return () => store.setMode('up');
    case 'redis-primary-kill': {
      const master = await redis.waitForMaster(10000);
      const killedAt = Date.now();
      await redis.killNode(master);
      // Bounded: Sentinel needs down-after (1 s) plus an election; the window is 10 s.
      redis.waitForMaster(9000, master.port).then(
        (m) => ctx.note(name, `${master.name} (port ${master.port}) killed; Sentinel promoted ${m.name} after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`),
        (err) => ctx.note(name, `${master.name} killed; no promotion seen: ${err.message}`),
      );
      return async () => {
        await redis.startNode(master);
        await redis.waitForMaster(15000);
      };
    }
    case 'redis-down':
      await redis.killAll();
      return async () => {
        const m = await redis.startAll();
        ctx.note(name, `every Redis process back; master ${m.name}`);
      };
    case 'replica-kill': {
      // Never replica-1 (when there are others): it lives through the whole run, so its
      // RSS over a long run tells a leak from a warm-up.
      const pool = fleet.replicas.length > 1 ? fleet.replicas.slice(1) : fleet.replicas;
      const r = pool[Math.floor(ctx.random() * pool.length)];
      await fleet.kill(r);
      ctx.note(name, `${r.name} (port ${r.port}) SIGKILLed`);
      return async () => {
        await fleet.start(r);
        log(`${r.name} started again (pid ${r.proc.pid})`);
      };
    }
    case 'redis-hang':
      redis.nodes.forEach((n) => redis.signal(n, 'SIGSTOP'));
      return async () => {
        redis.nodes.forEach((n) => redis.signal(n, 'SIGCONT'));
        await redis.waitForMaster(15000);
      };
    case 'redis-primary-hang': {
      const master = await redis.waitForMaster(10000);
      const stoppedAt = Date.now();
      redis.signal(master, 'SIGSTOP');
      redis.waitForMaster(9000, master.port).then(
        (m) => ctx.note(name, `${master.name} (port ${master.port}) stopped; Sentinel promoted ${m.name} after ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`),
        (err) => ctx.note(name, `${master.name} stopped; no promotion seen: ${err.message}`),
      );
      return async () => {
        redis.signal(master, 'SIGCONT');
        await redis.waitForMaster(15000);
      };
    }
    case 'dnastore-and-redis-down':
      await ctx.beforeStoreStop();
      await Promise.all([store.stop(), redis.killAll()]);
      return async () => {
        await Promise.all([store.start(), redis.startAll()]);
      };
    default:
      throw new Error(`unknown fault ${name}`);
  }
}

/** What a fault (or `a+b`) does, in words. */
const describe = (name) => name.split('+').map((p) => FAULTS[p].what).join('; and at once: ');

module.exports = { FAULTS, NAMES, WINDOW_S, schedule, inject, describe };

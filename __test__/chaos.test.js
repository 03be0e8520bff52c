'use strict';

// The chaos harness's pure parts (loadtest/chaos): the seeded fault schedule, the alert
// rules' time scaling, the gates' alert check, and the load balancer log's per-second
// counts. The harness itself runs in CI as its own step (scripts/test.sh: npm run chaos).

const fs = require('node:fs');
const path = require('node:path');
const { schedule, NAMES, FAULTS } = require('../loadtest/chaos/faults');
const { scaleRules, intervals } = require('../loadtest/chaos/prometheus');
const { alertPerOutage, verdict } = require('../loadtest/chaos/gates');
const { parseAccessLog } = require('../loadtest/chaos/lb');
const { perSecond } = require('../loadtest/chaos/timeline');

describe('fault schedule', () => {
  test('180 s holds all eight faults once, in a seeded order, without overlap, ending 32 s before the end', () => {
    const plan = schedule({ seed: 7, durationS: 180 });
    expect(plan.map((f) => f.name).sort()).toEqual([...NAMES].sort());
    expect(NAMES).toHaveLength(8);
    for (let i = 1; i < plan.length; i++) expect(plan[i].atS).toBeGreaterThanOrEqual(plan[i - 1].atS + plan[i - 1].windowS + 6 - 0.1);
    expect(plan[0].atS).toBeGreaterThanOrEqual(15);
    const last = plan[plan.length - 1];
    expect(last.atS + last.windowS).toBeLessThanOrEqual(180 - 32 + 0.1);
    expect(plan.find((f) => f.name === 'redis-down').windowS).toBe(20);
    expect(plan.find((f) => f.name === 'replica-kill').windowS).toBe(10);
    // As long as the other DNAStore faults: writes Redis cannot take are spilled, not refused.
    expect(plan.find((f) => f.name === 'dnastore-and-redis-down').windowS).toBe(8);
  });

  test('the same seed gives the same schedule; another seed another order', () => {
    expect(schedule({ seed: 42, durationS: 180 })).toEqual(schedule({ seed: 42, durationS: 180 }));
    const orders = new Set([1, 2, 3, 4, 5].map((seed) => schedule({ seed, durationS: 180 }).map((f) => f.name).join()));
    expect(orders.size).toBeGreaterThan(1);
  });

  test('a 30-minute run repeats every fault in rounds; too short a run is refused with the time it needs', () => {
    const plan = schedule({ seed: 3, durationS: 1800 });
    // Rounds of at least 170 s: as dense in faults as the 3-minute run.
    for (const name of NAMES) expect(plan.filter((f) => f.name === name)).toHaveLength(10);
    for (let i = 1; i < plan.length; i++) expect(plan[i].atS).toBeGreaterThan(plan[i - 1].atS + plan[i - 1].windowS + 10);
    expect(() => schedule({ seed: 3, durationS: 90 })).toThrow(/too short .* need 175 s/);
    expect(() => schedule({ seed: 3, durationS: 90, only: ['nope'] })).toThrow(/unknown fault nope/);
  });

  test('the outages (circuit must open, alert must fire) are the faults where DNAStore answers nothing in time', () => {
    expect(NAMES.filter((n) => FAULTS[n].outage).sort()).toEqual(['dnastore-and-redis-down', 'dnastore-down', 'dnastore-resets', 'dnastore-slow']);
  });
});

describe('alert rules, time-scaled for the run', () => {
  const rules = fs.readFileSync(path.join(__dirname, '..', 'monitoring', 'prometheus', 'alerts.yml'), 'utf8');

  test('every for: and range selector is divided by the factor; nothing else changes', () => {
    const { text, changes } = scaleRules(rules, 30);
    expect(changes).toEqual(expect.arrayContaining(['for 1m -> 2s', 'for 5m -> 10s', '[5m] -> [10s]', '[15m] -> [30s]', '[30m] -> [60s]']));
    expect(text).not.toMatch(/for: 1m|\[5m\]/);
    // Everything but the durations is the project's file.
    const strip = (t) => t.replace(/for:\s*\S+/g, 'for: D').replace(/\[\d+(ms|s|m|h|d)\]/g, '[D]');
    expect(strip(text)).toBe(strip(rules));
  });

  test('a factor that does not divide evenly gives milliseconds; below 1 is refused', () => {
    expect(scaleRules('      for: 1m\n', 7).text).toBe('      for: 8571ms\n');
    expect(() => scaleRules(rules, 0.5)).toThrow(/>= 1/);
  });

  test('query_range samples become intervals', () => {
    expect(intervals([1000, 2000, 3000, 7000, 8000], 1000)).toEqual([[1000, 3000], [7000, 8000]]);
  });
});

describe('gates', () => {
  const windows = [
    { name: 'dnastore-down', outage: true, startMs: 10000, endMs: 18000 },
    { name: 'redis-down', outage: false, startMs: 25000, endMs: 45000 },
    { name: 'dnastore-slow', outage: true, startMs: 52000, endMs: 60000 },
  ];

  test('the alert must fire during each outage and resolve before the next fault', () => {
    const ok = alertPerOutage(windows, [[13000, 20000], [55000, 62000]], 100000);
    expect(ok.map((o) => [o.fault, o.fired, o.resolved])).toEqual([['dnastore-down', true, true], ['dnastore-slow', true, true]]);
    expect(ok[0].firedAfterS).toBe(3);
    expect(ok[0].resolvedAfterEndS).toBe(3);
    // Never fired during the second outage.
    expect(alertPerOutage(windows, [[13000, 20000]], 100000)[1]).toMatchObject({ fired: false, resolved: false });
    // Still firing when the next fault began.
    expect(alertPerOutage(windows, [[13000, 30000], [55000, 62000]], 100000)[0]).toMatchObject({ fired: true, resolved: false });
    // A firing that started after the outage (and its evaluation lag) ended did not see it.
    expect(alertPerOutage(windows, [[21000, 22000], [55000, 62000]], 100000)[0].fired).toBe(false);
  });

  test('the verdict fails on any lost or duplicated write, an open circuit or a queued write left', () => {
    const base = {
      replicas: 3,
      k6Metrics: { http_reqs: { count: 18000 }, http_req_failed: { value: 0.004 }, read_failed: { value: 0.001 } },
      audit: { writes: 3600, acknowledged: 3590, created: 3000, queued: 590, lost: [], duplicated: [], keyMismatch: [], reusedKeys: [], storedUnacknowledged: [] },
      windows,
      firing: { DNAStoreCircuitOpen: [[13000, 20000], [55000, 62000]] },
      t0: 0,
      runEndMs: 100000,
      circuitsOpenAtEnd: 0,
      outboxLeft: 0,
      rssGrowth: {},
      required: ['dnastore-down', 'redis-down', 'dnastore-slow'],
    };
    const good = verdict(base);
    expect(good.gates.filter((g) => !g.pass)).toEqual([]);
    expect(good.passed).toBe(true);
    expect(good.summary).toMatchObject({ replicas: 3, requests: 18000, httpReqFailedRate: 0.004, readsFailedRate: 0.001, writes: { acked: 3590, lost: 0, duplicated: 0 }, faults: ['dnastore-down', 'redis-down', 'dnastore-slow'], circuitsOpenAtEnd: 0, outboxLeft: 0 });
    const failing = (over) => verdict({ ...base, ...over }).gates.filter((g) => !g.pass).map((g) => g.name);
    expect(failing({ audit: { ...base.audit, lost: ['k1'] } })).toEqual(['writes.lost == 0']);
    expect(failing({ audit: { ...base.audit, duplicated: ['k1'] } })).toEqual(['writes.duplicated == 0']);
    expect(failing({ audit: { ...base.audit, keyMismatch: ['k1'] } })).toEqual(['writes.keyNotCarried == 0']);
    expect(failing({ audit: null })).toEqual(['writes.lost == 0', 'writes.duplicated == 0', 'writes.keyNotCarried == 0']);
    expect(failing({ circuitsOpenAtEnd: 1 })).toEqual(['circuitsOpenAtEnd == 0']);
    expect(failing({ circuitsOpenAtEnd: null })).toEqual(['circuitsOpenAtEnd == 0']);
    expect(failing({ outboxLeft: 12 })).toEqual(['outboxLeft == 0']);
    expect(failing({ k6Metrics: { ...base.k6Metrics, http_req_failed: { value: 0.01 } } })).toEqual(['httpReqFailedRate < 0.01']);
    expect(failing({ windows: windows.slice(0, 2) })).toEqual(['fault dnastore-slow ran']);
    expect(failing({ firing: {} })).toEqual(['DNAStoreCircuitOpen fired during each DNAStore outage and resolved after it']);
  });
});

test('failed requests belong to the fault they followed', () => {
  const { failedByFault } = require('../loadtest/chaos/gates');
  const windows = [{ name: 'a', startMs: 100, endMs: 200 }, { name: 'b', startMs: 300, endMs: 400 }];
  const rec = (t, method, status) => ({ t, method, status });
  expect(failedByFault([rec(50, 'GET', 503), rec(150, 'POST', 503), rec(250, 'POST', 502), rec(250, 'POST', 202), rec(350, 'GET', 200), rec(500, 'GET', 502)], windows)).toEqual({ 'warm-up': 1, a: 2, b: 1 });
});

describe('load balancer log', () => {
  test('each line is a request; the last upstream tried answered it; per second per replica', () => {
    const text = [
      '{"t":1000.100,"u":"127.0.0.1:5001","s":200,"us":"200","m":"GET","fb":"","rt":0.003}',
      '{"t":1000.500,"u":"127.0.0.1:5001, 127.0.0.1:5002","s":200,"us":"502, 200","m":"GET","fb":"cache","rt":0.010}',
      '{"t":1000.900,"u":"127.0.0.1:5002","s":202,"us":"202","m":"POST","fb":"","rt":0.020}',
      '{"t":1001.200,"u":"127.0.0.1:5001","s":502,"us":"502","m":"POST","fb":"","rt":0.001}',
      '{"t":1001.300,"u":"","s":502,"us":"","m":"GET","fb":"","rt":0.001}',
      'not json',
    ].join('\n');
    const recs = parseAccessLog(text);
    expect(recs).toHaveLength(5);
    expect(recs[1]).toEqual({ t: 1000500, port: 5002, status: 200, method: 'GET', fallback: 'cache' });
    const buckets = perSecond(recs, { t0: 1000000, portToReplica: new Map([[5001, 'replica-1'], [5002, 'replica-2']]) });
    expect(buckets).toEqual([
      { t: 0, replica: 'replica-1', requests: 1, failed: 0, fallbacks: 0, queued: 0 },
      { t: 0, replica: 'replica-2', requests: 2, failed: 0, fallbacks: 1, queued: 1 },
      { t: 1, replica: 'none (load balancer)', requests: 1, failed: 1, fallbacks: 0, queued: 0 },
      { t: 1, replica: 'replica-1', requests: 1, failed: 1, fallbacks: 0, queued: 0 },
      // Answered nothing in that second: a zero, not a gap.
      { t: 1, replica: 'replica-2', requests: 0, failed: 0, fallbacks: 0, queued: 0 },
    ]);
  });
});

describe('timeline data', () => {
  test('readiness samples become runs of one state per replica; a missing sample leaves at most 2 s', () => {
    const { timelineData } = require('../loadtest/chaos/timeline');
    const s = (t, replica, state, outbox = 0) => ({ t: t * 1000, replica, state, outbox });
    const samples = [s(0, 'r1', 'closed'), s(0.5, 'r2', 'closed', 7), s(1, 'r1', 'closed'), s(2, 'r1', 'open', 5), s(3, 'r1', 'open', 9), s(4, 'r1', 'closed'), s(10, 'r1', 'closed')];
    const d = timelineData({ t0: 0, replicas: [{ name: 'r1', port: 1 }, { name: 'r2', port: 2 }], samples, records: [], windows: [], firing: {} });
    expect(d.states).toEqual([
      { t: 0, t2: 2, replica: 'r1', state: 'closed' },
      { t: 0.5, t2: 2.5, replica: 'r2', state: 'closed' },
      { t: 2, t2: 4, replica: 'r1', state: 'open' },
      { t: 4, t2: 6, replica: 'r1', state: 'closed' },
      { t: 10, t2: 12, replica: 'r1', state: 'closed' },
    ]);
    expect(d.outbox).toEqual([{ t: 0, entries: 7 }, { t: 1, entries: 0 }, { t: 2, entries: 5 }, { t: 3, entries: 9 }, { t: 4, entries: 0 }, { t: 10, entries: 0 }]);
  });
});

test('a long run averages its per-second lines over a few seconds (at most 600 points each)', () => {
  const { timelineData } = require('../loadtest/chaos/timeline');
  const records = [];
  for (let t = 0; t < 1800; t++) for (let k = 0; k < 30; k++) records.push({ t: t * 1000 + k, port: 1, status: t === 900 ? 503 : 200, method: 'GET', fallback: '' });
  const { traffic } = timelineData({ t0: 0, replicas: [{ name: 'r1', port: 1 }], samples: [], records, windows: [], firing: {} });
  expect(traffic).toHaveLength(600);
  expect(traffic[0]).toEqual({ t: 0, replica: 'r1', requests: 30, failed: 0, fallbacks: 0, queued: 0 });
  expect(traffic.find((b) => b.t === 900)).toEqual({ t: 900, replica: 'r1', requests: 30, failed: 10, fallbacks: 0, queued: 0 });
});

describe('fleet circuit per outage', () => {
  const fc = require('../loadtest/chaos/fleet-circuit');
  const windows = [
    { name: 'dnastore-down', outage: true, startMs: 10000, endMs: 18000 },
    { name: 'redis-down', outage: false, startMs: 25000, endMs: 45000 },
    { name: 'dnastore-and-redis-down', outage: true, startMs: 52000, endMs: 60000 },
  ];
  const names = ['replica-1', 'replica-2', 'replica-3'];
  // Each replica opens at `opens[i]`, then half-opens every 2 s until the end of the outage.
  const transitions = (opens, outage = windows[0]) => Object.fromEntries(names.map((r, i) => {
    const list = [{ t: opens[i], to: 'open', decision: i === 0 ? 'local' : 'fleet' }];
    for (let t = opens[i] + 2000; t < outage.endMs; t += 2000) list.push({ t, to: 'halfOpen' }, { t: t + 1, to: 'open' });
    return [r, list];
  }));
  // Every 250 ms, each replica's attempts counter, which grows by `perRound[i]` at each round.
  const samples = (perRound, opens) => {
    const out = [];
    for (let t = 9000; t <= 19000; t += 250) {
      names.forEach((r, i) => out.push({ t, replica: r, attempts: 100 + perRound[i] * Math.max(0, Math.floor((t - opens[i]) / 2000)) }));
    }
    return out;
  };

  test('the transition log lines and the attempts counter are read from what a replica prints and exposes', () => {
    expect(fc.transitionOf({ time: 5, breaker: 'dnastore', msg: 'DNAStore circuit breaker OPEN (fleet decision: 2 replicas tripped, first a)', decision: 'fleet', generation: 4 })).toEqual({ t: 5, to: 'open', decision: 'fleet', generation: 4 });
    expect(fc.transitionOf({ time: 6, breaker: 'dnastore', msg: 'DNAStore circuit breaker HALF-OPEN (x)' })).toMatchObject({ to: 'halfOpen', decision: 'local' });
    expect(fc.transitionOf({ time: 6, breaker: 'dnastore-summary', msg: 'DNAStore circuit breaker OPEN (x)' })).toBeNull();
    expect(fc.transitionOf({ time: 6, msg: 'sigil-api listening' })).toBeNull();
    const text = ['# HELP dnastore_requests_total x', 'dnastore_requests_total{name="dnastore",outcome="success"} 40', 'dnastore_requests_total{name="dnastore",outcome="rejected"} 900',
      'dnastore_requests_total{name="dnastore",outcome="aborted"} 3', 'dnastore_requests_total{name="dnastore",outcome="connection_refused"} 7', 'dnastore_requests_total{name="dnastore-summary",outcome="success"} 5'].join('\n');
    expect(fc.attemptsIn(text)).toBe(47);
  });

  test('with the fleet: opened together, one trial per round passes; without it: N trials per round fails', () => {
    const opens = [11000, 11020, 11030];
    const fleet = fc.perOutage({ resetMs: 2000, windows, transitions: transitions(opens), samples: samples([1, 0, 0], opens), replicas: names });
    expect(fleet).toHaveLength(2);
    expect(fleet[0]).toMatchObject({ fault: 'dnastore-down', gated: true, opened: 3, spreadMs: 30, decisions: { local: 1, fleet: 2 }, rounds: 3, trials: 3, trialsPerRound: 1, withoutFleet: 9 });
    expect(fleet[1]).toMatchObject({ fault: 'dnastore-and-redis-down', gated: false, opened: 0 });
    expect(fc.fleetGates(fleet, 3).filter((g) => !g.pass)).toEqual([]);

    const alone = fc.perOutage({ resetMs: 2000, windows, transitions: transitions(opens), samples: samples([1, 1, 1], opens), replicas: names });
    expect(alone[0]).toMatchObject({ trials: 9, withoutFleet: 9 });
    expect(fc.fleetGates(alone, 3).map((g) => g.pass)).toEqual([true, false]);

    const apart = [11000, 11020, 13100];
    const late = fc.perOutage({ resetMs: 2000, windows, transitions: transitions(apart), samples: samples([1, 0, 0], apart), replicas: names });
    expect(late[0].spreadMs).toBe(2100);
    expect(fc.fleetGates(late, 3).map((g) => g.pass)).toEqual([false, true]);
    // Rounds are counted over every replica: one whose own trial failed reopens locally and
    // does not log the fleet's next rounds.
    const quiet = transitions(opens);
    const only = (from, to) => (x) => x.t < 12000 || (x.t > from && x.t < to);
    quiet['replica-1'] = quiet['replica-1'].filter(only(12000, 14000));
    quiet['replica-2'] = quiet['replica-2'].filter(only(14000, 16000));
    quiet['replica-3'] = quiet['replica-3'].filter(only(16000, 18000));
    expect(fc.perOutage({ resetMs: 2000, windows, transitions: quiet, samples: samples([1, 0, 0], opens), replicas: names })[0]).toMatchObject({ rounds: 3, trials: 3 });
    // A replica that never opened, or no outage with Redis up at all, fails too.
    const two = transitions(opens);
    delete two['replica-3'];
    expect(fc.fleetGates(fc.perOutage({ resetMs: 2000, windows, transitions: two, samples: samples([1, 0, 0], opens), replicas: names }), 3)[0].pass).toBe(false);
    expect(fc.fleetGates([fleet[1]], 3).map((g) => g.pass)).toEqual([false, false]);
  });
});

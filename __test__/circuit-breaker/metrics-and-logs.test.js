'use strict';

// The class's metric series and log lines (issue 26): the failure rate while open, a
// stable label for an anonymous action, a throwing listener of an event no call waits on.

const { spawnSync } = require('node:child_process');
const { CircuitBreaker, metrics } = require('../..');
const { factory, boom, sleep } = require('./impls');

const make = factory();
const line = (family, name) => metrics().split('\n').find((l) => l.startsWith(`${family}{name="${name}"}`));

describe('dnastore: metrics and logs of a CircuitBreaker', () => {
  test('dnastore_circuit_failure_rate is the rate that opened it while open, with no stats read', async () => {
    let n = 0;
    const b = make(CircuitBreaker, () => (++n === 1 ? Promise.resolve(1) : boom()), { name: 'rate-while-open', volumeThreshold: 4, rollingCountTimeout: 100, rollingCountBuckets: 2, resetTimeout: 10_000 });
    for (let i = 0; i < 4; i++) await b.fire().catch(() => {});
    expect(b.opened).toBe(true);
    expect(line('dnastore_circuit_failure_rate', 'rate-while-open')).toBe('dnastore_circuit_failure_rate{name="rate-while-open"} 75');
    // The window empties while it stays open: the gauge keeps the rate that opened it.
    await sleep(150);
    expect(b.stats.fires).toBe(0);
    expect(line('dnastore_circuit_failure_rate', 'rate-while-open')).toBe('dnastore_circuit_failure_rate{name="rate-while-open"} 75');
  });

  test('a closed circuit shows its current rate at each scrape', async () => {
    let fail = false;
    const b = make(CircuitBreaker, () => (fail ? boom() : Promise.resolve(1)), { name: 'rate-closed', errorThresholdPercentage: 90, volumeThreshold: 100 });
    await b.fire();
    fail = true;
    await b.fire().catch(() => {});
    expect(line('dnastore_circuit_failure_rate', 'rate-closed')).toBe('dnastore_circuit_failure_rate{name="rate-closed"} 50');
  });

  test("an anonymous action's breaker is labelled 'anonymous' in every process (its name stays opossum's UUID)", () => {
    const src = `const { CircuitBreaker, metrics } = require('./');
      const b = new CircuitBreaker(() => Promise.resolve(1), { logger: false });
      console.log(JSON.stringify({ name: b.name, labels: metrics().split('\\n').filter((l) => l.startsWith('dnastore_circuit_state{')) }));
      b.shutdown();`;
    const run = () => JSON.parse(spawnSync(process.execPath, ['-e', src], { cwd: `${__dirname}/../..`, encoding: 'utf8', timeout: 10_000 }).stdout);
    const [a, b] = [run(), run()];
    expect(a.labels).toEqual(['dnastore_circuit_state{name="anonymous"} 0']);
    expect(b.labels).toEqual(a.labels);
    expect(a.name).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.name).not.toBe(b.name);
  });

  test('a listener of an event no call waits on that throws is logged; the breaker carries on', async () => {
    const errors = [];
    const logger = { warn() {}, info() {}, error: (fields, msg) => errors.push([fields.event, fields.err, msg]) };
    const b = make(CircuitBreaker, boom, { name: 'listener-throws', resetTimeout: 10_000, logger });
    b.on('open', () => {
      throw new Error('dashboard down');
    });
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
    expect(errors).toEqual([['open', 'dashboard down', "a CircuitBreaker 'open' listener threw"]]);
    b.on('shutdown', () => {
      throw new Error('again');
    });
    b.shutdown();
    expect(b.isShutdown).toBe(true);
    expect(errors[1]).toEqual(['shutdown', 'again', "a CircuitBreaker 'shutdown' listener threw"]);
  });
});

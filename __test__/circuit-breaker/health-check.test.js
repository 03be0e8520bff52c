'use strict';

const { IMPLS, factory, sleep } = require('./impls');
const { eventually } = require('../helpers/upstream');

const make = factory();

describe.each(IMPLS)('%s: healthCheck', (impl, Impl) => {
  test('a failing check emits healthCheckFailed and opens the circuit', async () => {
    const b = make(Impl, async () => 1, { resetTimeout: 10_000 });
    const failed = [];
    b.on('healthCheckFailed', (e) => failed.push(e.message));
    b.healthCheck(() => Promise.reject(new Error('unhealthy')), 10_000);
    await eventually(() => b.opened, 1000, 5);
    expect(failed).toEqual(['unhealthy']);
  });

  test('it runs every interval; a passing check changes nothing', async () => {
    const b = make(Impl, async () => 1);
    let runs = 0;
    b.healthCheck(async () => {
      runs += 1;
    }, 15);
    await eventually(() => runs >= 3, 2000, 5);
    expect(b.closed).toBe(true);
  });

  test('argument checks', () => {
    const b = make(Impl, async () => 1);
    expect(() => b.healthCheck('x')).toThrow('Health check function must be a function');
    expect(() => b.healthCheck(async () => {}, 'soon')).toThrow('Health check interval must be a number');
  });

  if (impl === 'dnastore') {
    test('shutdown stops the checks (opossum keeps its interval running)', async () => {
      const b = make(Impl, async () => 1);
      let runs = 0;
      b.healthCheck(async () => {
        runs += 1;
      }, 10);
      b.shutdown();
      const after = runs;
      await sleep(40);
      expect(runs).toBe(after);
    });
  }
});

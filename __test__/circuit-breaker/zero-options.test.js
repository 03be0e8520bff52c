'use strict';

// Every option value opossum 9 accepts is accepted here with opossum's meaning (issue 26):
// zero thresholds and timers, no timeout, zero buckets, a window that is not a multiple of
// its buckets. Both implementations, opossum the expectation.

const { IMPLS, factory, sleep, ok, boom } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: the zero values opossum accepts', (impl, Impl) => {
  test('each reads back as given', () => {
    for (const k of ['timeout', 'resetTimeout', 'errorThresholdPercentage', 'rollingCountTimeout', 'rollingCountBuckets']) {
      expect(make(Impl, ok, { [k]: 0 }).options[k]).toBe(0);
    }
    expect(make(Impl, ok, { timeout: false }).options.timeout).toBe(false);
  });

  test('errorThresholdPercentage 0: any failure opens it, successes never do', async () => {
    let fail = false;
    const b = make(Impl, () => (fail ? boom() : ok(1)), { errorThresholdPercentage: 0, resetTimeout: 10_000 });
    for (let i = 0; i < 20; i++) await b.fire();
    expect(b.closed).toBe(true);
    fail = true;
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
    expect(b.status.window[0].isCircuitBreakerOpen).toBe(true);
  });

  test('errorThresholdPercentage 0 waits for volumeThreshold, as every rate does', async () => {
    const b = make(Impl, boom, { errorThresholdPercentage: 0, volumeThreshold: 3, resetTimeout: 10_000 });
    await expect(b.fire()).rejects.toThrow('boom');
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.closed).toBe(true);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
  });

  // A slow listener (or a loaded machine) lets the 1 ms pass before the circuit is asked
  // for its reset time: it must still be open for the rest of that turn, 'open' first.
  test('resetTimeout 0: open for the rest of the turn, half-open at the next', async () => {
    const b = make(Impl, boom, { errorThresholdPercentage: 1, resetTimeout: 0 });
    const log = [];
    b.on('failure', () => {
      const until = Date.now() + 5;
      while (Date.now() < until);
      log.push('failure');
    });
    b.on('open', () => log.push('open'));
    const halfOpen = new Promise((r) => b.once('halfOpen', r));
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
    expect(log).toEqual(['failure', 'open']);
    await halfOpen;
    expect(b.halfOpen).toBe(true);
  });

  test.each([0, false])('timeout %s: no timeout at all', async (timeout) => {
    const b = make(Impl, () => sleep(60).then(() => 'late'), { timeout });
    await expect(b.fire()).resolves.toBe('late');
    expect(b.stats.timeouts).toBe(0);
  });

  test('rollingCountTimeout 0 and rollingCountBuckets 0: the default window of 10 buckets', async () => {
    const b = make(Impl, ok, { rollingCountTimeout: 0, rollingCountBuckets: 0 });
    await b.fire(1);
    expect(b.status.window).toHaveLength(10);
    expect(b.stats).toMatchObject({ fires: 1, successes: 1 });
  });

  test('rollingCountTimeout 0 with allowWarmUp: no warm-up (opossum warms up for that many ms)', async () => {
    const b = make(Impl, boom, { rollingCountTimeout: 0, allowWarmUp: true, errorThresholdPercentage: 1, resetTimeout: 10_000 });
    await sleep(5);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
  });

  test('a window that is not a multiple of its buckets: buckets of floor(window / buckets) ms', async () => {
    const b = make(Impl, ok, { rollingCountTimeout: 1005, rollingCountBuckets: 10 });
    await b.fire(1);
    expect(b.options.rollingCountTimeout).toBe(1005);
    expect(b.status.window).toHaveLength(10);
    expect(b.stats.successes).toBe(1);
  });
});

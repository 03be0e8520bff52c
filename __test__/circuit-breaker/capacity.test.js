'use strict';

const { IMPLS, factory, sleep } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: capacity (semaphore)', (impl, Impl) => {
  test('over capacity a call rejects with ESEMLOCKED and semaphoreLocked; a freed place is reused', async () => {
    const b = make(Impl, (ms) => sleep(ms).then(() => ms), { capacity: 2, volumeThreshold: 100 });
    const locked = [];
    b.on('semaphoreLocked', (err, latency) => locked.push([err.code, typeof latency]));
    const a = b.fire(30);
    const c = b.fire(30);
    const err = await b.fire(1).catch((e) => e);
    expect(err).toMatchObject({ message: 'Semaphore locked', code: 'ESEMLOCKED' });
    expect(Impl.isOurError(err)).toBe(true);
    expect(locked).toEqual([['ESEMLOCKED', 'number']]);
    await expect(Promise.all([a, c])).resolves.toEqual([30, 30]);
    await expect(b.fire(1)).resolves.toBe(1);
    expect(b.stats.semaphoreRejections).toBe(1);
  });

  test('a locked call gets the fallback', async () => {
    const b = make(Impl, () => sleep(30), { capacity: 1, volumeThreshold: 100 });
    b.fallback((...args) => `fb:${args[args.length - 1].code}`);
    const first = b.fire();
    await expect(b.fire()).resolves.toBe('fb:ESEMLOCKED');
    await first;
  });

  test('a timed-out call frees its place', async () => {
    const b = make(Impl, () => sleep(200), { capacity: 1, timeout: 10, volumeThreshold: 100 });
    await expect(b.fire()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    await expect(b.fire()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  test('stats.failures and the circuit', async () => {
    const b = make(Impl, () => sleep(20), { capacity: 1, errorThresholdPercentage: 10, resetTimeout: 10_000 });
    const first = b.fire();
    await b.fire().catch(() => {});
    await first;
    if (impl === 'opossum') {
      // opossum counts a full bulkhead as a failure of the action: 1 of 2 fires > 10 % opened it.
      expect(b.stats.failures).toBe(1);
      expect(b.opened).toBe(true);
    } else {
      // docs/opossum.md "Differences": a full bulkhead is not a failure of the action.
      expect(b.stats.failures).toBe(0);
      expect(b.closed).toBe(true);
    }
  });
});

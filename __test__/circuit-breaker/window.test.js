'use strict';

// opossum's `status`: the window's buckets (the current one first) that rotate on time or
// on a rotateBucketController's 'rotate' events, rollingPercentilesEnabled, enableSnapshots,
// stats to start from (newStatus(), options.status), and `semaphore.count` (issue 26).

const { EventEmitter } = require('node:events');
const { IMPLS, factory, sleep, ok } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: status and its window', (impl, Impl) => {
  test('rollingCountBuckets buckets that rotate on time: the current one starts empty', async () => {
    const b = make(Impl, ok, { rollingCountTimeout: 200, rollingCountBuckets: 2 });
    await Promise.all([b.fire(1), b.fire(2), b.fire(3)]);
    expect(b.status.window).toHaveLength(2);
    expect(b.status.window.reduce((n, w) => n + w.successes, 0)).toBe(3);
    await sleep(120);
    expect(b.status.window[0].successes).toBe(0);
    await sleep(200);
    expect(b.stats.successes).toBe(0);
  });

  test('a rotateBucketController: its rotate events move the window, time does not', async () => {
    const rotator = new EventEmitter();
    const b = make(Impl, ok, { rotateBucketController: rotator, rollingCountTimeout: 40, rollingCountBuckets: 2 });
    expect(rotator.listenerCount('rotate')).toBe(1);
    await b.fire(1);
    await sleep(100);
    expect(b.status.window.map((w) => w.successes)).toEqual([1, 0]);
    rotator.emit('rotate');
    expect(b.status.window.map((w) => w.successes)).toEqual([0, 1]);
    rotator.emit('rotate');
    expect(b.stats.successes).toBe(0);
  });

  test('disable() detaches from the rotateBucketController, enable() attaches once, shutdown() detaches', () => {
    const rotator = new EventEmitter();
    const b = make(Impl, ok, { rotateBucketController: rotator });
    const other = make(Impl, ok, { rotateBucketController: rotator });
    expect(rotator.listenerCount('rotate')).toBe(2);
    b.disable();
    expect(rotator.listenerCount('rotate')).toBe(1);
    b.enable();
    b.enable();
    expect(rotator.listenerCount('rotate')).toBe(2);
    other.shutdown();
    expect(rotator.listenerCount('rotate')).toBe(1);
  });

  test('rollingPercentilesEnabled: false reports -1 latencies', async () => {
    const on = make(Impl, ok);
    expect(on.status.rollingPercentilesEnabled).toBe(true);
    expect(on.stats.percentiles[0.5]).toBe(0);
    const off = make(Impl, ok, { rollingPercentilesEnabled: false });
    await off.fire(1);
    expect(off.status.rollingPercentilesEnabled).toBe(false);
    expect(off.stats.latencyMean).toBe(-1);
    expect(Object.values(off.stats.percentiles)).toEqual(Array(9).fill(-1));
  });

  test('enableSnapshots reads back on the status', () => {
    expect(make(Impl, ok).status.enableSnapshots).toBe(true);
    expect(make(Impl, ok, { enableSnapshots: false }).status.enableSnapshots).toBe(false);
  });

  test('stats to start from: newStatus() or options.status, reported with the window', async () => {
    const prev = { failures: 1, successes: 2, fires: 3, rejects: 1 };
    const status = Impl.newStatus({ stats: prev });
    expect(status.stats).toMatchObject(prev);
    const b = make(Impl, ok, { status });
    expect(b.status).toBe(status);
    await b.fire(1);
    expect(b.stats).toMatchObject({ failures: 1, successes: 3, fires: 4, rejects: 1 });
    const c = make(Impl, ok, { status: prev });
    expect(c.stats).toMatchObject(prev);
    expect(c.status.window[0]).toMatchObject(prev);
  });

  test('semaphore.count: the free places of the bulkhead', async () => {
    const b = make(Impl, () => sleep(30), { capacity: 2 });
    expect(b.semaphore.count).toBe(2);
    const p = b.fire();
    expect(b.semaphore.count).toBe(1);
    await p;
    expect(b.semaphore.count).toBe(2);
  });
});

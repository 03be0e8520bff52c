'use strict';

const { spawnSync } = require('node:child_process');
const { IMPLS, factory, sleep } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: shutdown', (impl, Impl) => {
  test('emits shutdown, then every call rejects with ESHUTDOWN', async () => {
    const b = make(Impl, async () => 1);
    const seen = [];
    b.on('shutdown', () => seen.push('shutdown'));
    b.shutdown();
    expect(seen).toEqual(['shutdown']);
    expect(b.isShutdown).toBe(true);
    expect(b.enabled).toBe(false);
    const err = await b.fire().catch((e) => e);
    expect(err).toMatchObject({ message: 'The circuit has been shutdown.', code: 'ESHUTDOWN' });
    expect(Impl.isOurError(err)).toBe(true);
    expect(b.toJSON().state.shutdown).toBe(true);
  });

  test('state.shutdown restores a shut breaker', async () => {
    const b = make(Impl, async () => 1, { state: { shutdown: true } });
    expect(b.isShutdown).toBe(true);
    await expect(b.fire()).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });

  // Issue 26: a call fired before shutdown() settles as it would have (it was rejected
  // with ESHUTDOWN, an unhandled rejection when nothing was attached to it).
  test('a call fired before shutdown settles with its own result, nothing attached needed', async () => {
    const unhandled = [];
    const onUnhandled = (e) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const b = make(Impl, (x) => sleep(20).then(() => x));
      const p = b.fire(1);
      b.shutdown();
      await expect(p).resolves.toBe(1);
      const q = make(Impl, () => sleep(20).then(() => 'late'), { timeout: 5 });
      const timedOut = q.fire();
      q.shutdown();
      await expect(timedOut).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      // The first case again, with nothing attached to the call.
      const c = make(Impl, (x) => sleep(10).then(() => x));
      c.fire(2);
      c.shutdown();
      await sleep(50);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  // opossum's own volume-threshold test does this (`.then(breaker.shutdown())`).
  test("a call fired before shutdown still moves the circuit, as opossum's does", async () => {
    const b = make(Impl, () => sleep(10).then(() => Promise.reject(new Error('boom'))), { errorThresholdPercentage: 1, volumeThreshold: 3, resetTimeout: 10_000 });
    await expect(b.fire()).rejects.toThrow('boom');
    await expect(b.fire()).rejects.toThrow('boom');
    const p = b.fire().catch((e) => e.message);
    b.shutdown();
    expect(await p).toBe('boom');
    expect(b.opened).toBe(true);
  });
});

describe('dnastore: no timer of a shut breaker keeps the process alive', () => {
  test('a process with a hung call exits at once after shutdown; the call keeps its timeout', () => {
    // The action never settles (a never-resolving promise holds nothing open); its timeout
    // timer would keep the process up for 60 s if it still held it after shutdown.
    const script = `
      const { CircuitBreaker } = require(${JSON.stringify(require.resolve('../..'))});
      const b = new CircuitBreaker(() => new Promise(() => {}), { timeout: 60000, resetTimeout: 60000, logger: false });
      b.healthCheck(async () => {}, 60000);
      b.fire().catch((e) => console.log(e.code));
      const c = new CircuitBreaker(() => new Promise(() => {}), { timeout: 30, logger: false });
      c.fire().catch((e) => console.log(e.code));
      c.shutdown();
      const keep = setTimeout(() => {}, 100);
      b.open();
      setTimeout(() => b.shutdown(), 10);
    `;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    // c's call timed out while something else kept the process up; b's never settles.
    expect(r.stdout.trim()).toBe('ETIMEDOUT');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

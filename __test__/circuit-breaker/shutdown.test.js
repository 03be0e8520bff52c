'use strict';

const { spawnSync } = require('node:child_process');
const { IMPLS, factory } = require('./impls');

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
});

describe('dnastore: no timer outlives shutdown', () => {
  test('a process with a hung call exits at once after shutdown', () => {
    // The action never settles (a never-resolving promise holds nothing open); the
    // timeout timer would keep the process up for 60 s if it survived shutdown.
    const script = `
      const { CircuitBreaker } = require(${JSON.stringify(require.resolve('../..'))});
      const b = new CircuitBreaker(() => new Promise(() => {}), { timeout: 60000, resetTimeout: 60000, logger: false });
      b.healthCheck(async () => {}, 60000);
      const p = b.fire().catch((e) => console.log(e.code));
      b.open();
      setTimeout(() => b.shutdown(), 10);
    `;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('ESHUTDOWN');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

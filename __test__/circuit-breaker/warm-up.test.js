'use strict';

const { IMPLS, factory, boom, sleep } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: allowWarmUp', (impl, Impl) => {
  test('failures during the first rollingCountTimeout do not open it', async () => {
    const b = make(Impl, boom, { allowWarmUp: true, rollingCountTimeout: 200, rollingCountBuckets: 10, resetTimeout: 10_000 });
    expect(b.warmUp).toBe(true);
    for (let i = 0; i < 5; i++) await expect(b.fire()).rejects.toThrow('boom');
    expect(b.closed).toBe(true);
    await sleep(260);
    expect(b.warmUp).toBe(false);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
  });

  test('without it the first failure can open it', async () => {
    const b = make(Impl, boom, { resetTimeout: 10_000 });
    expect(b.warmUp).toBe(false);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
  });

  test('state.warmUp restores a warming breaker', () => {
    const b = make(Impl, boom, { rollingCountTimeout: 1000, state: { warmUp: true } });
    expect(b.warmUp).toBe(true);
  });
});

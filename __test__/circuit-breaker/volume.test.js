'use strict';

const { IMPLS, factory, boom, ok } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: volumeThreshold', (impl, Impl) => {
  test('failures below the volume threshold do not open it', async () => {
    let fail = true;
    const b = make(Impl, () => (fail ? boom() : ok('ok')), { volumeThreshold: 3, resetTimeout: 10_000 });
    expect(b.volumeThreshold).toBe(3);
    await expect(b.fire()).rejects.toThrow('boom');
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.closed).toBe(true);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
    fail = false;
  });

  test('a healthy majority over the threshold keeps it closed', async () => {
    let n = 0;
    // 1 failure in 4 calls: 25 % < 50 %.
    const b = make(Impl, () => (++n === 4 ? boom() : ok(n)), { volumeThreshold: 2 });
    for (let i = 0; i < 3; i++) await b.fire();
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.closed).toBe(true);
    expect(b.stats).toMatchObject({ fires: 4, successes: 3, failures: 1 });
  });
});

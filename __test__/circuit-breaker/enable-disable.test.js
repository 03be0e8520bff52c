'use strict';

const { IMPLS, factory, boom } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: enable / disable', (impl, Impl) => {
  test('disabled: the action runs unprotected even while open, and nothing trips', async () => {
    let fail = false;
    const b = make(Impl, () => (fail ? boom() : Promise.resolve('ran')), { resetTimeout: 10_000 });
    b.open();
    b.disable();
    expect(b.enabled).toBe(false);
    await expect(b.fire()).resolves.toBe('ran');
    fail = true;
    await expect(b.fire()).rejects.toThrow('boom');
    b.enable();
    expect(b.enabled).toBe(true);
    await expect(b.fire()).rejects.toMatchObject({ code: 'EOPENBREAKER' });
  });

  test('enabled: false starts disabled', async () => {
    const b = make(Impl, boom, { enabled: false });
    expect(b.enabled).toBe(false);
    for (let i = 0; i < 3; i++) await expect(b.fire()).rejects.toThrow('boom');
    expect(b.closed).toBe(true);
    expect(b.stats.fires).toBe(3);
  });
});

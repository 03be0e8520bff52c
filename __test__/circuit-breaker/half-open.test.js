'use strict';

const { IMPLS, factory, sleep, eventually } = { ...require('./impls'), eventually: require('../helpers/upstream').eventually };

const make = factory();

describe.each(IMPLS)('%s: half-open', (impl, Impl) => {
  test('after resetTimeout: halfOpen event with resetTimeout, one trial, success closes', async () => {
    let fail = true;
    const b = make(Impl, () => (fail ? Promise.reject(new Error('down')) : Promise.resolve('up')), { resetTimeout: 40 });
    const events = [];
    b.on('halfOpen', (ms) => events.push(['halfOpen', ms]));
    b.on('close', () => events.push(['close']));
    await expect(b.fire()).rejects.toThrow('down');
    expect(b.opened).toBe(true);
    await eventually(() => b.halfOpen, 2000, 5);
    expect(b.pendingClose).toBe(true);
    fail = false;
    const trial = b.fire();
    expect(b.pendingClose).toBe(false);
    // The trial is running: a second call is rejected.
    await expect(b.fire()).rejects.toMatchObject({ code: 'EOPENBREAKER' });
    await expect(trial).resolves.toBe('up');
    expect(b.closed).toBe(true);
    expect(events).toEqual([['halfOpen', 40], ['close']]);
  });

  test('a failed trial opens it again, and it half-opens again later', async () => {
    const b = make(Impl, () => Promise.reject(new Error('down')), { resetTimeout: 30 });
    const events = [];
    for (const e of ['open', 'halfOpen', 'close']) b.on(e, () => events.push(e));
    await expect(b.fire()).rejects.toThrow('down');
    await eventually(() => b.halfOpen, 2000, 5);
    await expect(b.fire()).rejects.toThrow('down');
    expect(b.opened).toBe(true);
    await eventually(() => b.halfOpen, 2000, 5);
    expect(events).toEqual(['open', 'halfOpen', 'open', 'halfOpen']);
    await sleep(0);
  });
});

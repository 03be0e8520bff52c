'use strict';

const { IMPLS, factory, sleep } = require('./impls');
const { eventually } = require('../helpers/upstream');

const make = factory();

describe.each(IMPLS)('%s: abortController', (impl, Impl) => {
  test('a timeout aborts the given controller; getSignal/getAbortController expose it', async () => {
    const abortController = new AbortController();
    let sawAbort = false;
    const b = make(Impl, () => sleep(200), { timeout: 10, abortController });
    expect(b.getAbortController()).toBe(abortController);
    expect(b.getSignal()).toBe(abortController.signal);
    b.getSignal().addEventListener('abort', () => {
      sawAbort = true;
    });
    await expect(b.fire()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(sawAbort).toBe(true);
  });

  test('no controller: getSignal is undefined', () => {
    const b = make(Impl, async () => 1);
    expect(b.getSignal()).toBeUndefined();
    expect(b.getAbortController()).toBeUndefined();
  });

  test('autoRenewAbortController: a fresh controller after the circuit half-opens', async () => {
    const b = make(Impl, () => sleep(200), { timeout: 10, resetTimeout: 30, autoRenewAbortController: true });
    const first = b.getAbortController();
    expect(first).toBeInstanceOf(AbortController);
    await expect(b.fire()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(first.signal.aborted).toBe(true);
    await eventually(() => b.halfOpen, 2000, 5);
    expect(b.getAbortController()).not.toBe(first);
    expect(b.getSignal().aborted).toBe(false);
  });

  test('a controller without abort() is a TypeError', () => {
    expect(() => new Impl(async () => 1, { abortController: {} })).toThrow('AbortController does not contain `abort()` method');
  });
});

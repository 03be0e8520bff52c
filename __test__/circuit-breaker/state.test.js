'use strict';

const { IMPLS, factory, sleep, boom, settle } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: state', (impl, Impl) => {
  test('starts closed; all-failing calls open it; open rejects with EOPENBREAKER', async () => {
    const b = make(Impl, boom, { errorThresholdPercentage: 50, resetTimeout: 10_000 });
    expect([b.closed, b.opened, b.halfOpen]).toEqual([true, false, false]);
    await expect(b.fire()).rejects.toThrow('boom');
    expect(b.opened).toBe(true);
    const err = await b.fire().catch((e) => e);
    expect(err.message).toBe('Breaker is open');
    expect(err.code).toBe('EOPENBREAKER');
    expect(Impl.isOurError(err)).toBe(true);
    expect(Impl.isOurError(new Error('x'))).toBe(false);
  });

  test('a success keeps it closed and resolves the action value', async () => {
    const b = make(Impl, async (a, c) => a + c);
    await expect(b.fire(2, 3)).resolves.toBe(5);
    expect(b.closed).toBe(true);
    expect(b.stats).toMatchObject({ fires: 1, successes: 1, failures: 0 });
  });

  test('open() and close() move it by hand, with their events', async () => {
    const b = make(Impl, async () => 'x', { resetTimeout: 10_000 });
    const events = [];
    b.on('open', () => events.push('open'));
    b.on('close', () => events.push('close'));
    b.open();
    b.open();
    expect(b.opened).toBe(true);
    await expect(b.fire()).rejects.toMatchObject({ code: 'EOPENBREAKER' });
    b.close();
    expect(b.closed).toBe(true);
    await expect(b.fire()).resolves.toBe('x');
    expect(events).toEqual(['open', 'close']);
  });

  test('call(context, ...args) runs the action with that this', async () => {
    const b = make(Impl, function (x) {
      return Promise.resolve(`${this.prefix}${x}`);
    });
    await expect(b.call({ prefix: 'p-' }, 1)).resolves.toBe('p-1');
  });

  test('a non-function action resolves to itself', async () => {
    const b = make(Impl, 'value');
    await expect(b.fire()).resolves.toBe('value');
  });

  test('no action: TypeError', () => {
    expect(() => new Impl()).toThrow('No action provided. Cannot construct a CircuitBreaker without an invocable action.');
  });

  test('state option restores an open breaker', async () => {
    const b = make(Impl, async () => 'x', { resetTimeout: 10_000, state: { closed: false, open: true } });
    expect(b.opened).toBe(true);
    await expect(b.fire()).rejects.toMatchObject({ code: 'EOPENBREAKER' });
    const j = b.toJSON();
    expect(j.state).toMatchObject({ open: true, closed: false, halfOpen: false, shutdown: false, enabled: true });
    expect(typeof j.state.lastTimerAt).toBe('number');
  });

  test('state option: open past its resetTimeout is half-open', async () => {
    const b = make(Impl, async () => 'x', { resetTimeout: 50, state: { closed: false, lastTimerAt: Date.now() - 1000 } });
    expect(b.halfOpen).toBe(true);
    await expect(b.fire()).resolves.toBe('x');
    expect(b.closed).toBe(true);
  });

  test('toJSON carries name, state and the stats', async () => {
    const b = make(Impl, async () => 1, { name: 'json-check' });
    await b.fire();
    await settle([b.fire()]);
    const j = b.toJSON();
    expect(j.state).toMatchObject({ name: 'json-check', closed: true, open: false, enabled: true, warmUp: false, shutdown: false });
    expect(j.status).toMatchObject({ fires: 2, successes: 2 });
    await sleep(0);
  });
});

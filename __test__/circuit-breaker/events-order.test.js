'use strict';

const { IMPLS, factory, sleep } = require('./impls');

const make = factory();
const NAMES = ['fire', 'success', 'failure', 'timeout', 'reject', 'open', 'halfOpen', 'close', 'fallback', 'semaphoreLocked', 'cacheHit', 'cacheMiss', 'shutdown'];

function record(b) {
  const log = [];
  for (const n of NAMES) b.on(n, () => log.push(n));
  return log;
}

describe.each(IMPLS)('%s: events and their order', (impl, Impl) => {
  test('success', async () => {
    const b = make(Impl, async () => 'v');
    const log = record(b);
    const args = [];
    b.on('fire', (a) => args.push(a));
    b.on('success', (r, latency) => args.push([r, typeof latency]));
    await b.fire(1, 2);
    expect(log).toEqual(['fire', 'success']);
    expect(args).toEqual([[1, 2], ['v', 'number']]);
  });

  test('failure that trips, with a fallback: fire, failure, open, fallback', async () => {
    const b = make(Impl, () => Promise.reject(new Error('x')), { resetTimeout: 10_000 });
    b.fallback((a, err) => `fb:${a}:${err.message}`);
    const log = record(b);
    const payloads = [];
    b.on('failure', (err, latency, args) => payloads.push([err.message, typeof latency, args]));
    b.on('fallback', (result, err) => payloads.push([result, err.message]));
    await expect(b.fire('a')).resolves.toBe('fb:a:x');
    expect(log).toEqual(['fire', 'failure', 'open', 'fallback']);
    expect(payloads).toEqual([['x', 'number', ['a']], ['fb:a:x', 'x']]);
  });

  test('open circuit: fire, reject, fallback', async () => {
    const b = make(Impl, async () => 1, { resetTimeout: 10_000 });
    b.open();
    b.fallback(() => 'fb');
    const log = record(b);
    const rejected = [];
    b.on('reject', (err) => rejected.push(err.code));
    await expect(b.fire()).resolves.toBe('fb');
    expect(log).toEqual(['fire', 'reject', 'fallback']);
    expect(rejected).toEqual(['EOPENBREAKER']);
  });

  test('timeout: fire, timeout, failure, open', async () => {
    const b = make(Impl, () => sleep(300), { timeout: 10, resetTimeout: 10_000 });
    const log = record(b);
    const args = [];
    b.on('timeout', (err, latency, a) => args.push([err.code, typeof latency, a]));
    await expect(b.fire(7)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(log).toEqual(['fire', 'timeout', 'failure', 'open']);
    expect(args).toEqual([['ETIMEDOUT', 'number', [7]]]);
  });

  test('trial success: halfOpen, fire, close, success (opossum closes from its own first success listener)', async () => {
    const b = make(Impl, async () => 1, { resetTimeout: 20 });
    b.open();
    const log = record(b);
    await sleep(60);
    await b.fire();
    expect(log).toEqual(['halfOpen', 'fire', 'close', 'success']);
  });

  test('semaphore: fire, semaphoreLocked, failure, fallback', async () => {
    const b = make(Impl, () => sleep(20), { capacity: 1, volumeThreshold: 10 });
    b.fallback(() => 'fb');
    const first = b.fire();
    const log = record(b);
    await b.fire();
    expect(log).toEqual(['fire', 'semaphoreLocked', 'failure', 'fallback']);
    await first;
  });

  // Events are skipped only when nothing can hear them (no listener, emit() not replaced).
  test('an emit() replaced on the instance sees every event with no listener attached', async () => {
    const b = make(Impl, async (x) => x, { resetTimeout: 10_000 });
    const seen = [];
    const emit = b.emit;
    b.emit = function (name, ...a) {
      seen.push(name);
      return emit.call(this, name, ...a);
    };
    await b.fire(1);
    b.open();
    b.fallback(() => 'fb');
    await b.fire(2);
    expect(seen.filter((n) => n !== 'open')).toEqual(['fire', 'success', 'fire', 'reject', 'fallback']);
  });

  test('a success listener attached after fire() still hears that call', async () => {
    const b = make(Impl, async () => 'v');
    const p = b.fire();
    const heard = [];
    b.on('success', (r, latency) => heard.push([r, typeof latency]));
    await p;
    expect(heard).toEqual([['v', 'number']]);
  });

  test('the fallback gets the call arguments, then the error, with and without arguments', async () => {
    const b = make(Impl, async () => 1, { resetTimeout: 10_000 });
    b.open();
    const got = [];
    b.fallback((...a) => got.push(a.map((x) => (x instanceof Error ? x.code : x))));
    await b.fire();
    await b.fire('a', 2);
    expect(got).toEqual([['EOPENBREAKER'], ['a', 2, 'EOPENBREAKER']]);
  });
});

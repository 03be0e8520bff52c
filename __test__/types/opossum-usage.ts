// An opossum-style file (the patterns of opossum's README and @types/opossum) that must
// compile unchanged against dnastore-breaker except for the import line.
import { EventEmitter } from 'node:events';
import { CircuitBreaker } from '../..';

interface User {
  id: string;
  name: string;
}

async function fetchUser(id: string, verbose: boolean): Promise<User> {
  return { id, name: verbose ? 'long' : 'short' };
}

async function main(): Promise<void> {
  const options: CircuitBreaker.Options<[string, boolean]> = {
    timeout: 3000,
    errorThresholdPercentage: 50,
    resetTimeout: 30000,
    volumeThreshold: 5,
    capacity: 10,
    errorFilter: (err: { status?: number }, id: string) => err.status === 404 && id.length > 0,
    cache: true,
    cacheTTL: 1000,
    cacheGetKey: (id) => id,
    abortController: new AbortController(),
  };
  const breaker = new CircuitBreaker(fetchUser, options);
  breaker.fallback(() => ({ id: 'unknown', name: 'fallback' }));
  breaker.on('success', (result: User, latency: number) => console.log(result.name, latency));
  breaker.on('failure', (err: Error, latency: number, args: [string, boolean]) => console.log(err.message, latency, args[0]));
  breaker.on('timeout', (err) => console.log(err.message));
  breaker.on('halfOpen', (resetTimeout: number) => console.log(resetTimeout));
  breaker.on('open', () => console.log('open'));
  breaker.on('reject', () => console.log('reject'));
  breaker.status.on('snapshot', (s: CircuitBreaker.Stats) => console.log(s.latencyMean));

  const user: User = await breaker.fire('42', true);
  const viaCall: User = await breaker.call(null, '42', false);
  console.log(user.id, viaCall.id);

  const stats: CircuitBreaker.Stats = breaker.stats;
  console.log(stats.fires, stats.failures, stats.percentiles[0.5], breaker.toJSON().state.open);
  console.log(breaker.opened, breaker.closed, breaker.halfOpen, breaker.pendingClose, breaker.isShutdown, breaker.enabled, breaker.warmUp, breaker.volumeThreshold, breaker.name, breaker.group);
  console.log(CircuitBreaker.isOurError(new Error('x')), breaker.getSignal()?.aborted, breaker.getAbortController());
  breaker.healthCheck(async () => undefined, 10_000);
  breaker.disable();
  breaker.enable();
  breaker.open();
  breaker.close();
  breaker.clearCache();

  // A breaker as another's fallback, and the untyped default generics.
  const secondary = new CircuitBreaker(async (id: string) => ({ id, name: 'secondary' }));
  breaker.fallback(secondary);
  const anyBreaker = new CircuitBreaker(async () => 'ok', { timeout: false, name: 'plain' });
  const v: string = await anyBreaker.fire();
  console.log(v);

  // opossum's status and semaphore: stats to start from, the window's buckets, free places.
  const primed = new CircuitBreaker(fetchUser, { status: CircuitBreaker.newStatus({ stats: { fires: 3, failures: 1 } }), rotateBucketController: new EventEmitter() });
  const open: boolean | undefined = primed.status.window[0].isCircuitBreakerOpen;
  console.log(open, primed.status.rollingPercentilesEnabled, primed.status.enableSnapshots, primed.semaphore.count);
  new CircuitBreaker(fetchUser, { status: { successes: 2 }, errorThresholdPercentage: 0, timeout: 0 });
  primed.shutdown();

  // Numeric options may arrive as strings (process.env).
  new CircuitBreaker(fetchUser, { timeout: process.env.DNASTORE_TIMEOUT_MS || 3000 });

  // @ts-expect-error the action's arguments are checked
  await breaker.fire(42, true);
  // @ts-expect-error capacity is a number
  new CircuitBreaker(fetchUser, { capacity: 'ten' });
  breaker.shutdown();
}

void main;

// Compile-only check of the published types (index.d.ts + the generated binding.d.ts):
// `tsc -p __test__/types` must accept this file. Lines marked @ts-expect-error must fail.
import { createBreaker, metrics, registerWith, METRICS_CONTENT_TYPE, optionNames } from '../..';
import type { Fallback, BreakerStats, BulkheadStats, FleetStats, HedgeStats, BreakerEvent, FullResponse, Queued } from '../..';
import { Registry } from 'prom-client';

interface Sigil {
  id: string;
}

async function main(): Promise<void> {
  const breaker = createBreaker({
    name: 'dnastore',
    baseUrl: 'http://127.0.0.1:9001',
    timeout: 3000,
    maxFailures: 5,
    generateIdempotencyKeys: true,
    logger: false,
    fallback: async ({ code }) => ({ stub: code }),
  });
  const res = await breaker.fire<Sigil[]>('/api/sigils', { method: 'GET', headers: { 'x-tenant-id': 't1' }, route: '/api/sigils' });
  if ('fallback' in res) {
    const f: Fallback<Sigil[]> = res;
    console.log(f.code, f.source, f.ageMs);
  } else {
    console.log(res[0].id);
  }
  const full = await breaker.fire<Sigil>('/api/sigils/1', { fullResponse: true });
  if (!('fallback' in full)) {
    const r: FullResponse<Sigil> = full;
    console.log(r.status, r.headers['content-type'], r.data.id);
  }
  breaker.on('open', (e: BreakerEvent) => console.log(e.reason, e.failureRate));
  const s: BreakerStats = breaker.stats();
  const state: 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled' = breaker.state;
  // Manual control (each answers whether the state changed) and circuitForce.
  const changed: boolean = breaker.open() && breaker.close() && breaker.disable() && breaker.enable();
  breaker.on('forcedOpen', (e) => console.log(e.reason, changed));
  createBreaker({ name: 'maintenance', circuitForce: 'open', logger: false }).shutdown();
  createBreaker({ name: 'backoff', resetTimeout: 1000, resetTimeoutMax: 60_000, halfOpenMaxWaitMs: 5000, logger: false }).shutdown();
  // Per-route circuits: a route's own state, its transitions with the route.
  const perRoute = createBreaker({ name: 'per-route', circuitPerRoute: true, logger: false });
  const routeState: 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled' | null = perRoute.stateOf('/api/validate');
  perRoute.on('routeTransition', (e) => console.log(e.route, e.to, routeState));
  perRoute.shutdown();
  console.log(s.failures, state, metrics().length, METRICS_CONTENT_TYPE, optionNames().length);
  registerWith(new Registry());

  const durable = createBreaker({ name: 'durable', outbox: 'on', outboxDir: '/tmp/x', logger: false });
  createBreaker({ name: 'fleet', outbox: 'on', outboxRedisUrl: 'redis://127.0.0.1:6379', outboxSpill: false, logger: false });
  const secured = createBreaker({
    name: 'mtls',
    baseUrl: 'https://10.0.0.5:8443',
    caCert: '/etc/dnastore/tls/ca.crt',
    caMode: 'only',
    clientCert: '/etc/dnastore/tls/tls.crt',
    clientKey: '/etc/dnastore/tls/tls.key',
    tlsServerName: 'dnastore.internal',
    tlsMinVersion: '1.3',
    tlsReloadMs: 30000,
    proxy: 'env',
    logger: false,
  });
  secured.on('tls', (e: { up?: boolean; reason?: string }) => console.log(e.up, e.reason));
  const w = await durable.fire<{ id: string }>('/api/sigils', { method: 'POST', body: '{}', durable: true, orderingKey: 'k' });
  if ('queued' in w && w.queued) {
    const q: Queued = w as Queued;
    console.log(q.id, q.idempotencyKey, q.code);
    // Queued at shutdown: in flight when the breaker was shut down.
    const atShutdown: boolean = q.code === 'ESHUTDOWN';
    console.log(atShutdown);
  }
  if (durable.outbox) {
    const st: number = durable.outbox.stats().entries;
    // The fleet outbox's spill (outboxSpill): this replica's writes waiting for Redis.
    const spilled: number = durable.outbox.stats().spilled + durable.outbox.stats().forwarded;
    const inSpill: boolean | undefined = (await durable.outbox.list())[0]?.spilled;
    console.log(spilled, inSpill);
    const ok: boolean = await durable.outbox.retry('id');
    await durable.outbox.drain();
    console.log(st, ok, (await durable.outbox.list({ limit: 5 }))[0]?.idempotencyKey, (await durable.outbox.deadLetters())[0]?.reason);
  }
  durable.on('delivered', (e: BreakerEvent) => console.log(e.id, e.afterMs));

  // Slow calls and the bulkhead (issue 15).
  const limited = createBreaker({ name: 'limited', maxConcurrent: 64, maxQueued: 8, queueTimeoutMs: 50, concurrencyLimit: 'adaptive', minConcurrency: 2, slowCallDurationMs: 1000, slowCallRateThreshold: 50, logger: false });
  const ls = limited.stats();
  const bh: BulkheadStats | undefined = ls.bulkhead;
  console.log(ls.slowCalls, ls.slowCallRate, bh?.inflight, bh?.limit, bh?.queued, bh?.rejectedConcurrency, bh?.rejectedQueueTimeout);
  const lr = await limited.fire('/x');
  if ('fallback' in lr && lr.code === 'ECONCURRENCY') console.log('refused by the bulkhead');
  limited.on('open', (e: BreakerEvent) => console.log(e.slowCalls, e.slowCallRate));
  limited.shutdown();
  breaker.shutdown();

  // Hedged reads (issue 31): a delay in ms (or its decimal string) or 'auto'.
  const hedging = createBreaker({ name: 'hedging', hedgeAfterMs: 'auto', hedgeMax: 1, logger: false });
  createBreaker({ name: 'hedging-fixed', hedgeAfterMs: 25, logger: false }).shutdown();
  const hs: HedgeStats | undefined = hedging.stats().hedges ?? undefined;
  console.log(hs?.won, hs?.lost, hs?.skipped);
  hedging.on('hedge', (e: BreakerEvent) => console.log(e.result, e.attempt, e.afterMs, e.reason));
  hedging.shutdown();

  // The fleet circuit (issue 28).
  const fleet = createBreaker({ name: 'fleet', redisUrl: 'redis://127.0.0.1:6379', fleetCircuit: 'on', fleetQuorum: 2, signingSecret: 's', logger: false });
  const fs: FleetStats | undefined = fleet.stats().fleet;
  console.log(fs?.replica, fs?.connected, fs?.state, fs?.generation, fs?.quorum, fs?.votes, fs?.replicas, fs?.trippedBy, fs?.rejected);
  fleet.on('open', (e: BreakerEvent) => console.log(e.decision, e.trippedBy, e.generation, e.votes, e.fleetReason));
  fleet.on('fleet', (e: BreakerEvent) => console.log(e.kind, e.up, e.reason, e.replica));
  createBreaker({ fleetQuorum: '3' });
  fleet.shutdown();

  // Numeric options may be decimal strings (`process.env.X || 3000`).
  createBreaker({ timeout: '3000' });
  // @ts-expect-error timeout is a number or its decimal string
  createBreaker({ timeout: true });
  // @ts-expect-error unknown option
  createBreaker({ timout: 3000 });
  // @ts-expect-error body must be a string or bytes
  await breaker.fire('/x', { body: { a: 1 } });
  // @ts-expect-error durable is a boolean
  await breaker.fire('/x', { method: 'POST', durable: 'yes' });
}

void main;

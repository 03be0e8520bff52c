// The public API. Types of the native side (BreakerOptions, BreakerStats, BreakerEvent) are
// generated from Rust into binding.d.ts; this file types the JS facade around them.
import { EventEmitter } from 'node:events';
import type { BreakerOptions as NativeOptions, BreakerStats, BulkheadStats, FleetStats, HedgeStats, BreakerEvent, OutboxStats, OutboxEntry, OutboxDeadLetter } from './binding';

export type { BreakerStats, BulkheadStats, FleetStats, HedgeStats, BreakerEvent, OutboxStats, OutboxEntry, OutboxDeadLetter };

export interface Logger {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Why a call was answered by a fallback. `ESHUTDOWN` only on a Queued write (in flight at shutdown). */
export type FallbackCode =
  | 'EOPENBREAKER' | 'ETIMEDOUT' | 'ECONNREFUSED' | 'ECONNRESET' | 'ENOTFOUND' | 'ECONNECTION' | 'ETLS'
  | 'EUPSTREAM' | 'ERATELIMITED' | 'EBADBODY' | 'ETOOLARGE' | 'EORDERED' | 'ECONCURRENCY' | 'ESHUTDOWN';

export type RejectionCode = 'EHTTP' | 'EABORTED' | 'EINVALID' | 'ESHUTDOWN' | 'EINTERNAL';

export interface BreakerOptions extends NativeOptions {
  /** Transition logger (pino, req.log, console-like) or false to silence. Default: one JSON line on stderr. */
  logger?: Logger | false;
  /**
   * Supplies the fallback's data when no cached entry exists. `url` is redacted (no
   * credentials, query or fragment); `route` is the call's `init.route`, when it has one.
   */
  fallback?: (info: { code: FallbackCode; url: string; route?: string }) => unknown | Promise<unknown>;
  /** Where DNASTORE_* variables are read from. Default process.env. */
  env?: Record<string, string | undefined>;
}

export interface FireInit {
  method?: string;
  headers?: Record<string, string | number> | Headers | Map<string, string> | Array<[string, string]>;
  body?: string | Uint8Array;
  /** Per-attempt timeout override, ms. */
  timeout?: number;
  /** Whole-call deadline override, ms. */
  deadline?: number;
  signal?: AbortSignal;
  /** Resolve { status, headers, data } instead of the parsed body. */
  fullResponse?: boolean;
  /** Route template ('/api/sigils/:id') for the route-level metrics; never the raw URL. */
  route?: string;
  /** Queue this write in the outbox if it cannot be delivered now (POST/PUT/PATCH/DELETE; needs the outbox option). */
  durable?: boolean;
  /** Durable writes sharing it are delivered one at a time, in order. Default: the URL for PUT/PATCH/DELETE, none for POST. */
  orderingKey?: string;
}

/**
 * A durable write that could not be delivered now: stored (synced) in the outbox and delivered
 * later with `idempotencyKey`. A Fallback, so `if (res.fallback)` code keeps working; tell it
 * apart with `res.queued`. `code` says why: a fallback's code, or `ESHUTDOWN` for a write still
 * in flight when the breaker was shut down (its outcome unknown, the next process delivers it).
 */
export interface Queued extends Fallback<never> {
  queued: true;
  /** The outbox entry (outbox.list(), retry(), discard()). */
  id: string;
  /** Sent on every attempt, live and delivered. */
  idempotencyKey: string;
  data: null;
  source: 'outbox';
}

/** The durable outbox's operations (`breaker.outbox`). */
export interface Outbox {
  stats(): OutboxStats;
  /** Queued writes, oldest first (never their body or headers). */
  list(options?: { limit?: number }): Promise<OutboxEntry[]>;
  /** Writes DNAStore refused (with its answer), or that expired or failed their signature. */
  deadLetters(options?: { limit?: number }): Promise<OutboxDeadLetter[]>;
  /** Puts a dead letter back in the queue; false if there is none with `id`. */
  retry(id: string): Promise<boolean>;
  /** Removes a queued write (not while it is being delivered) or a dead letter for good. */
  discard(id: string): Promise<boolean>;
  /** Settles when the queue is empty or the circuit is open. */
  drain(): Promise<void>;
}

export interface Fallback<T = unknown> {
  fallback: true;
  data: T | null;
  error: 'DNAStore unavailable';
  code: FallbackCode;
  source: 'cache' | 'none' | 'function' | 'outbox';
  /** True for a durable write stored in the outbox (see Queued). */
  queued?: boolean;
  /** Age of a cached entry (source 'cache'). */
  ageMs?: number;
}

export interface FullResponse<T = unknown> {
  status: number;
  headers: Record<string, string>;
  data: T;
}

export interface BreakerError extends Error {
  code: RejectionCode;
  /** EHTTP: the upstream's status and body. */
  status?: number;
  body?: string;
}

export type BreakerEventName =
  | 'open' | 'halfOpen' | 'close' | 'fire' | 'success' | 'failure' | 'timeout' | 'clientError' | 'reject'
  | 'fallback' | 'retry' | 'retryBudgetExhausted' | 'abort' | 'coalesced' | 'redis' | 'shutdown'
  | 'queued' | 'delivered' | 'deadLetter' | 'outbox' | 'tls' | 'hedge' | 'fleet' | 'forcedOpen' | 'disabled'
  /** A route's own circuit changed state (circuitPerRoute): the transition's fields and `route`. */
  | 'routeTransition';

export declare class Breaker extends EventEmitter {
  readonly name: string;
  /** The circuit's state; 'forcedOpen' and 'disabled' are an operator's (open(), disable(), circuitForce). */
  readonly state: 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled';
  /** opossum-compatible aliases (opened: open or forced open). */
  readonly opened: boolean;
  readonly closed: boolean;
  readonly halfOpen: boolean;
  /** Forced open until close() or enable(): no trials, fallbacks served, durable writes queued. False if already so. */
  open(): boolean;
  /** Closed now, the rolling window cleared; automatic operation again. False if already closed and not forced. */
  close(): boolean;
  /** Every call goes to DNAStore, nothing trips, outcomes still counted. False if already disabled. */
  disable(): boolean;
  /** Automatic operation again, in the circuit's own state. False if not forced. */
  enable(): boolean;
  /**
   * The state of `route`'s own circuit (circuitPerRoute); null when it has none (the option
   * off, the route not called yet, or its closed circuit evicted). `state` stays the breaker's.
   */
  stateOf(route: string): 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled' | null;
  /** Never throws: the Promise resolves (response, fallback, or a queued durable write) or rejects with a coded error. */
  fire<T = any>(url: string | URL, init?: FireInit & { fullResponse?: false }): Promise<T | Fallback<T> | Queued>;
  fire<T = any>(url: string | URL, init: FireInit & { fullResponse: true }): Promise<FullResponse<T> | Fallback<T> | Queued>;
  /** The durable outbox (null without the outbox option). */
  readonly outbox: Outbox | null;
  stats(): BreakerStats;
  /** Settles this handle's calls still running with ESHUTDOWN (a durable write is queued instead, code ESHUTDOWN); the last handle of a name closes the breaker. */
  shutdown(): void;
  on(event: BreakerEventName, listener: (event: BreakerEvent) => void): this;
  once(event: BreakerEventName, listener: (event: BreakerEvent) => void): this;
}

/** Creates (or joins, by name) a breaker. Options win over DNASTORE_* environment variables. */
export declare function createBreaker(options?: BreakerOptions): Breaker;
/** Prometheus text exposition of every breaker in the process. */
export declare function metrics(): string;
export declare const METRICS_CONTENT_TYPE: string;
/** Adds every dnastore-breaker metric family to a prom-client Registry (`await register.metrics()` then includes them). */
export declare function registerWith<R extends import('prom-client').Registry>(register: R): R;
/** Every option name createBreaker() accepts. */
export declare function optionNames(): string[];

/**
 * opossum 9's CircuitBreaker for any async function, on the native circuit (the same one
 * createBreaker() uses): `const { CircuitBreaker } = require('dnastore-breaker')`.
 * Generics as @types/opossum: TI the action's arguments, TR what it resolves to.
 */
export declare class CircuitBreaker<TI extends unknown[] = unknown[], TR = unknown> extends EventEmitter {
  /** True if the error was built by a CircuitBreaker (EOPENBREAKER, ETIMEDOUT, ESEMLOCKED, ESHUTDOWN), not by the action. */
  static isOurError(error: unknown): boolean;
  /** A status carrying stats to start from, for `options.status` (opossum's). */
  static newStatus(options?: CircuitBreaker.StatusOptions): CircuitBreaker.Status;
  constructor(action: ((...args: TI) => Promise<TR> | TR) | TR, options?: CircuitBreaker.Options<TI>);
  readonly options: CircuitBreaker.Options<TI>;
  readonly action: (...args: TI) => Promise<TR> | TR;
  readonly name: string;
  readonly group: string;
  readonly enabled: boolean;
  readonly pendingClose: boolean;
  readonly closed: boolean;
  readonly opened: boolean;
  readonly halfOpen: boolean;
  readonly isShutdown: boolean;
  readonly status: CircuitBreaker.Status;
  readonly stats: CircuitBreaker.Stats;
  readonly warmUp: boolean;
  readonly volumeThreshold: number;
  /** opossum's semaphore, read-only: `count` is the free places under `capacity`. */
  readonly semaphore: { readonly count: number };
  clearCache(): void;
  open(): void;
  close(): void;
  disable(): void;
  enable(): void;
  fallback(func: ((...args: any[]) => any) | CircuitBreaker<any[], any>): this;
  fire(...args: TI): Promise<TR>;
  call(context: any, ...args: TI): Promise<TR>;
  healthCheck(func: () => Promise<void>, interval?: number): void;
  shutdown(): void;
  getSignal(): AbortSignal | undefined;
  getAbortController(): AbortController | undefined;
  toJSON(): { state: CircuitBreaker.State; status: CircuitBreaker.Stats };
  on(event: 'halfOpen', listener: (resetTimeout: number) => void): this;
  on(event: 'close' | 'open' | 'shutdown' | 'cacheHit' | 'cacheMiss' | 'coalesceCacheHit' | 'coalesceCacheMiss', listener: () => void): this;
  on(event: 'fire', listener: (args: TI) => void): this;
  on(event: 'reject', listener: (err: Error) => void): this;
  on(event: 'timeout' | 'failure', listener: (err: Error, latencyMs: number, args: TI) => void): this;
  on(event: 'success', listener: (result: TR, latencyMs: number) => void): this;
  on(event: 'semaphoreLocked', listener: (err: Error, latencyMs: number) => void): this;
  on(event: 'healthCheckFailed', listener: (err: Error) => void): this;
  on(event: 'fallback', listener: (result: unknown, err: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export declare namespace CircuitBreaker {
  interface Options<TI extends unknown[] = unknown[]> {
    /** ms before a call fails with ETIMEDOUT; false or 0 disables. Default 10000. Numbers may come as decimal strings. */
    timeout?: number | string | false;
    /** Default 30000 ms; 0 half-opens at the next turn of the event loop. */
    resetTimeout?: number | string;
    /** Default 50; 0 opens on any failure. */
    errorThresholdPercentage?: number | string;
    /** Default 10000 ms (0 too). */
    rollingCountTimeout?: number | string;
    /** Default 10 (0 too). */
    rollingCountBuckets?: number | string;
    /** Calls the window must hold before the percentage can open the circuit. Default 0. */
    volumeThreshold?: number | string;
    /** Native extra: consecutive failures that open the circuit whatever the rate. Default 0 (off). */
    maxFailures?: number | string;
    /** Native extra: trial calls while half-open, all must succeed. Default 1. */
    halfOpenMaxCalls?: number | string;
    /** Native extra: a call slower than this (ms) counts as slow, even when it succeeds. Default 0 (off). */
    slowCallDurationMs?: number | string;
    /** Native extra: slow-call % at which the circuit opens, once volumeThreshold is met. Default 50. */
    slowCallRateThreshold?: number | string;
    name?: string;
    group?: string;
    rollingPercentilesEnabled?: boolean;
    /** Most calls running at once; over it, ESEMLOCKED. Default unbounded. */
    capacity?: number;
    enabled?: boolean;
    allowWarmUp?: boolean;
    errorFilter?: (err: any, ...args: TI) => boolean;
    cache?: boolean;
    cacheTTL?: number;
    cacheSize?: number;
    cacheGetKey?: (...args: TI) => string;
    cacheTransport?: { get(key: string): any; set(key: string, value: any, ttl: number): void; flush(): void };
    coalesce?: boolean;
    coalesceTTL?: number;
    coalesceSize?: number;
    coalesceResetOn?: Array<'error' | 'success' | 'timeout'>;
    abortController?: AbortController;
    autoRenewAbortController?: boolean;
    enableSnapshots?: boolean;
    /** Its 'rotate' events move the window one bucket on (time then does not). */
    rotateBucketController?: EventEmitter;
    state?: Partial<State>;
    /** Stats to start from: a status from `CircuitBreaker.newStatus()`, or the stats themselves. */
    status?: Status | Partial<Bucket>;
    /** Transition logger (pino, req.log, console-like) or false to silence. Default: one JSON line on stderr. */
    logger?: Logger | false;
  }

  interface State {
    name: string;
    enabled: boolean;
    closed: boolean;
    open: boolean;
    halfOpen: boolean;
    warmUp: boolean;
    shutdown: boolean;
    lastTimerAt?: number;
  }

  interface Bucket {
    failures: number;
    fallbacks: number;
    successes: number;
    rejects: number;
    fires: number;
    timeouts: number;
    cacheHits: number;
    cacheMisses: number;
    coalesceCacheHits: number;
    coalesceCacheMisses: number;
    semaphoreRejections: number;
    percentiles: { [percentile: number]: number };
    latencyTimes: number[];
  }

  interface Stats extends Bucket {
    latencyMean: number;
  }

  interface StatusOptions {
    rollingCountBuckets?: number;
    rollingCountTimeout?: number;
    rollingPercentilesEnabled?: boolean;
    enableSnapshots?: boolean;
    rotateBucketController?: EventEmitter;
    stats?: Partial<Bucket>;
  }

  interface Status extends EventEmitter {
    readonly stats: Stats;
    /** rollingCountBuckets buckets, the current one first (it carries isCircuitBreakerOpen). */
    readonly window: Array<Bucket & { isCircuitBreakerOpen?: boolean }>;
    readonly rollingPercentilesEnabled: boolean;
    readonly enableSnapshots: boolean;
    on(event: 'snapshot', listener: (stats: Stats) => void): this;
  }
}

// The public API. Types of the native side (BreakerOptions, BreakerStats, BreakerEvent) are
// generated from Rust into binding.d.ts; this file types the JS facade around them.
import { EventEmitter } from 'node:events';
import type { BreakerOptions as NativeOptions, BreakerStats, BreakerEvent } from './binding';

export type { BreakerStats, BreakerEvent };

export interface Logger {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export type FallbackCode =
  | 'EOPENBREAKER' | 'ETIMEDOUT' | 'ECONNREFUSED' | 'ECONNRESET' | 'ENOTFOUND' | 'ECONNECTION'
  | 'EUPSTREAM' | 'ERATELIMITED' | 'EBADBODY' | 'ETOOLARGE';

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
}

export interface Fallback<T = unknown> {
  fallback: true;
  data: T | null;
  error: 'DNAStore unavailable';
  code: FallbackCode;
  source: 'cache' | 'none' | 'function';
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
  | 'fallback' | 'retry' | 'retryBudgetExhausted' | 'abort' | 'coalesced' | 'redis' | 'shutdown';

export declare class Breaker extends EventEmitter {
  readonly name: string;
  readonly state: 'closed' | 'open' | 'halfOpen';
  /** opossum-compatible aliases. */
  readonly opened: boolean;
  readonly closed: boolean;
  readonly halfOpen: boolean;
  /** Never throws: the Promise resolves (response or fallback) or rejects with a coded error. */
  fire<T = any>(url: string | URL, init?: FireInit & { fullResponse?: false }): Promise<T | Fallback<T>>;
  fire<T = any>(url: string | URL, init: FireInit & { fullResponse: true }): Promise<FullResponse<T> | Fallback<T>>;
  stats(): BreakerStats;
  /** Settles this handle's calls still running with ESHUTDOWN; the last handle of a name closes the breaker. */
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

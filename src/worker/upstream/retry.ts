// When an HTTP request may be tried again on another backend, and how many such retries a
// pool may have in flight (its retry budget), so retries never amplify an outage.
//
// What is retried (only before any byte of a response reached the client, and only with a
// body that is fully in memory — limits.buffer_body — or none; a streamed body is never
// replayed, as it was not kept):
// - a failure the catalog marks retriable that proves nothing reached the backend:
//   `upstream_connect_refused`, any method;
// - for idempotent methods (RFC 9110 §9.2.2) also `upstream_connect_timeout`, and
//   `upstream_reset` before any response byte — the stale keep-alive race: undici reports it
//   as UND_ERR_SOCKET "other side closed" / ECONNRESET on a pooled socket the backend closed
//   as we reused it. A non-idempotent request is not retried then: the backend may have read it;
// - for idempotent methods a response status listed in `retry.on_status`, honouring its
//   Retry-After (waited for when ≤ max_retry_after, else the response goes to the client).
// The budget (Envoy's retry budget): retries in flight ≤ max(budget_min, budget_percent% of
// the pool's requests in flight), per worker.

import type { RetryConfig } from '../../config/model.ts';
import { ERROR_CATALOG, type ErrorClass } from '../../shared/errors.ts';

const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** May a request that failed with `cls` (no response byte seen) be tried on another backend? */
export function retriableFailure(cls: ErrorClass, idempotent: boolean): boolean {
  if (cls === 'upstream_connect_refused') return ERROR_CATALOG[cls].retriable;
  if (!idempotent) return false;
  if (cls === 'upstream_connect_timeout') return ERROR_CATALOG[cls].retriable;
  // Not retriable in general (the backend may have acted on it), but for an idempotent request
  // that saw no response byte, trying again is what makes the keep-alive race invisible.
  return cls === 'upstream_reset';
}

/**
 * Retry-After as a delay in ms: undefined when absent or unparseable (retry at once),
 * otherwise ≥ 0 (RFC 9110 §10.2.3: seconds, or an HTTP date).
 */
export function retryAfterMs(v: string | string[] | undefined, now = Date.now()): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || s === '') return undefined;
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Counters for /metrics (this worker). */
const counters = {
  retries_total: 0,
  retries_on_status_total: 0,
  retry_budget_exhausted_total: 0,
  retry_after_too_long_total: 0,
};

export function retryStats(): Readonly<typeof counters> {
  return counters;
}

export function countRetry(onStatus: boolean): void {
  counters.retries_total++;
  if (onStatus) counters.retries_on_status_total++;
}

export function countRetryAfterTooLong(): void {
  counters.retry_after_too_long_total++;
}

/** One pool's requests and retries in flight in this worker. Carried across reloads. */
export class RetryBudget {
  /** Requests of the pool in flight (counted from start to response close). */
  active = 0;
  /** Of those, requests now on a retry. */
  retrying = 0;

  constructor(public config: RetryConfig) {}

  /** One more retry fits the budget (counted as exhausted when not). */
  allow(): boolean {
    const c = this.config;
    const cap = Math.max(c.budgetMin, Math.floor((this.active * c.budgetPercent) / 100));
    if (this.retrying < cap) return true;
    counters.retry_budget_exhausted_total++;
    return false;
  }
}

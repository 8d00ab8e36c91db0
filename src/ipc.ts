// Messages between the primary and its workers (cluster IPC). The primary never proxies
// traffic: it only sends config snapshots, health, and lifecycle commands.

import type { HealthState, Snapshot } from './config/snapshot.ts';
import type { ErrorClass } from './shared/errors.ts';
import type { MetricFamily, TelemetrySummary } from './shared/metrics.ts';

/**
 * Rate-limit token leases (worker/ratelimit/lease-client.ts ⇄ primary/ratelimit/ledger.ts):
 * a worker asks for a batch of tokens of one bucket and spends them without IPC. `b` names the
 * bucket ("limit id\nkey"); its parameters travel along so a reload race cannot desync them.
 */
export interface LeaseRequest {
  readonly seq: number;
  readonly b: string;
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
  readonly want: number;
  /** scope: global (shared across FiberLB instances through the rate_limit_store). */
  readonly global: boolean;
}
export interface LeaseGrant {
  readonly seq: number;
  readonly granted: number;
  /** When granted < 1: ms until the bucket holds a token again. */
  readonly waitMs: number;
}
/** Unused tokens given back (a lease that went idle). */
export interface LeaseReturn {
  readonly b: string;
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
  readonly n: number;
  readonly global: boolean;
}
/** TLS session ticket keys as the primary sends them: base64 of 48 bytes each. */
export interface TicketKeySet {
  readonly current: string;
  readonly previous: string | undefined;
  /** Ticket lifetime hint for clients (seconds): the rotation interval. */
  readonly lifetimeS: number;
}

export type PrimaryToWorker =
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'rl_grant'; readonly grants: readonly LeaseGrant[] }
  | { readonly type: 'health'; readonly health: HealthState }
  // TLS session ticket keys (made and rotated by the primary; not config, so no new revision).
  | { readonly type: 'ticket_keys'; readonly keys: TicketKeySet }
  | { readonly type: 'drain'; readonly deadlineMs: number }
  | { readonly type: 'status' }
  // SIGUSR1 to the primary: reopen access log files (after logrotate moved them).
  | { readonly type: 'reopen_logs' }
  // Asked on a scrape (full: every metric family) and once a second for the dashboard (summary
  // only). Answered with the same id; nothing on the request path talks to the primary.
  | { readonly type: 'metrics'; readonly id: number; readonly full: boolean };

export type WorkerToPrimary =
  // Sent once the worker's message handler exists: IPC messages that arrive before it (e.g.
  // on cluster's 'online', while ESM modules still load) would be silently dropped.
  | { readonly type: 'hello' }
  | {
      readonly type: 'rl_lease';
      readonly reqs: readonly LeaseRequest[];
      readonly returns: readonly LeaseReturn[];
    }
  | { readonly type: 'applied'; readonly revision: number; readonly listeners: readonly string[] }
  // Sent before the 'applied' of the same revision, once per listener that did not open.
  | {
      readonly type: 'listener_error';
      readonly revision: number;
      /** "lb/listener" */
      readonly listener: string;
      /** The listener's key, "http://127.0.0.1:8080". */
      readonly bind: string;
      readonly errorClass: ErrorClass;
      readonly message: string;
    }
  | {
      readonly type: 'status';
      readonly revision: number;
      readonly active: number;
      readonly errors: Record<string, number>;
      /** This worker's rate-limit counters (worker/ratelimit/lease-client.ts stats()). */
      readonly rateLimits?: Record<string, number>;
      /** Feature counters (retries, circuit breaking...), summed by the primary. */
      readonly counters?: Record<string, number>;
    }
  | {
      readonly type: 'metrics';
      readonly id: number;
      readonly families: readonly MetricFamily[];
      readonly summary: TelemetrySummary;
    }
  // Passive health, batched (at most a few per second, never per request): per backend key,
  // the consecutive upstream failures at the end of the batch, and whether a success broke
  // the streak before them.
  | {
      readonly type: 'outlier';
      readonly counts: ReadonlyArray<{ key: string; failures: number; reset: boolean }>;
    }
  // In-flight requests/connections per backend whose admin_state is drain, sent when they
  // change (and once after each applied revision, so 0 is reported too).
  | { readonly type: 'draining'; readonly revision: number; readonly inflight: Record<string, number> };

export function isPrimaryMessage(m: unknown): m is PrimaryToWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

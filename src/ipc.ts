// Messages between the primary and its workers (cluster IPC). The primary never proxies
// traffic: it only sends config snapshots, health, and lifecycle commands.

import type { HealthState, Snapshot } from './config/snapshot.ts';
import type { ErrorClass } from './shared/errors.ts';

export type PrimaryToWorker =
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'health'; readonly health: HealthState }
  | { readonly type: 'drain'; readonly deadlineMs: number }
  | { readonly type: 'status' };

export type WorkerToPrimary =
  // Sent once the worker's message handler exists: IPC messages that arrive before it (e.g.
  // on cluster's 'online', while ESM modules still load) would be silently dropped.
  | { readonly type: 'hello' }
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
      /** Feature counters (retries, circuit breaking...), summed by the primary. */
      readonly counters?: Record<string, number>;
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

// Messages between the primary and its workers (cluster IPC). The primary never proxies
// traffic: it only sends config snapshots, health, and lifecycle commands.

import type { HealthState, Snapshot } from './config/snapshot.ts';
import type { ErrorClass } from './shared/errors.ts';
import type { MetricFamily, TelemetrySummary } from './shared/metrics.ts';

export type PrimaryToWorker =
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'health'; readonly health: HealthState }
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
    }
  | {
      readonly type: 'metrics';
      readonly id: number;
      readonly families: readonly MetricFamily[];
      readonly summary: TelemetrySummary;
    };

export function isPrimaryMessage(m: unknown): m is PrimaryToWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

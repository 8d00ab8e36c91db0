// Where an admin API backend action (drain / disable / enable / weight / reset) is written:
// the primary's in-memory overrides, persisted to admin.state_file (source file:
// admin/override-actions.ts), or the backend's key in Chainfire, which every FiberLB watching
// the store applies (admin/store-actions.ts). api.ts finds the backend and shapes the answer.

import type { ErrorClass } from '../../shared/errors.ts';
import type { ReloadOutcome } from '../health.ts';
import type { BackendAction, Caller } from './routes.ts';

/** A backend this FiberLB serves, as the admin API names it. */
export interface BackendTarget {
  readonly lb: string;
  readonly pool: string;
  readonly id: string;
  /** "lb/pool/id" */
  readonly key: string;
}

export type WriteOutcome =
  | {
      readonly ok: true;
      /** The revision that carries the change, once served (or why not, bounded). */
      readonly outcome: ReloadOutcome;
      /** Added to the answer (e.g. store_key, store_revision). */
      readonly extra?: Readonly<Record<string, unknown>>;
    }
  | {
      readonly ok: false;
      readonly status: number;
      readonly error: string;
      /** Set when the failure was counted (Failures.report) under this class. */
      readonly errorClass?: ErrorClass;
    };

export interface BackendWriter {
  /** Where actions go: the primary's overrides (file source) or the Chainfire store. */
  readonly writesTo: 'overrides' | 'chainfire';
  write(t: BackendTarget, a: BackendAction, caller: Caller): Promise<WriteOutcome>;
  /** For /api/v1/status: where actions go and counters (see each writer's stats). */
  status(): Record<string, unknown>;
  /** Counters for /metrics (fiberlb_admin_backend_actions_total, ..._write_conflicts_total). */
  stats(): WriterStats;
}

/** What a writer did with the actions it was given (found backends only: api.ts 404s the rest). */
export interface WriterStats {
  /** Applied: saved (state file, or memory only without one) or written to the store. */
  readonly written: number;
  /** Refused because the save or the store write failed; nothing changed. */
  readonly failed: number;
  /** Refused to a tenant token for another tenant's pool (chainfire; 403). */
  readonly denied: number;
  /** Store writes tried again after losing to a concurrent change (chainfire). */
  readonly conflictsRetried: number;
}

/** "drain", "weight 3", "reset": for logs and the dashboard's change list. */
export function describeAction(a: BackendAction): string {
  return a.kind === 'reset' ? 'reset' : a.kind === 'weight' ? `weight ${a.weight}` : a.adminState;
}

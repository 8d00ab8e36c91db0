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
  write(t: BackendTarget, a: BackendAction, caller: Caller): Promise<WriteOutcome>;
  /** For /api/v1/status: where actions go and counters (see each writer's stats). */
  status(): Record<string, unknown>;
}

/** "drain", "weight 3", "reset": for logs and the dashboard's change list. */
export function describeAction(a: BackendAction): string {
  return a.kind === 'reset' ? 'reset' : a.kind === 'weight' ? `weight ${a.weight}` : a.adminState;
}

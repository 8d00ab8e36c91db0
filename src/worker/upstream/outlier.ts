// Passive health in a worker: per backend, consecutive upstream failures (connect refused or
// timed out, resets, timeouts, protocol errors, and the pool's outlier_detection.on_status
// responses), reset by a success. Nothing is decided here: the counts go to the primary in
// one batch every REPORT_INTERVAL_MS (never an IPC message per request), which merges all
// workers and broadcasts one ejection decision. Client-side faults never count (the
// catalog's side column): a client that leaves or is too slow says nothing about a backend.

import type { OutlierDetectionConfig } from '../../config/model.ts';
import { ERROR_CATALOG, type ErrorClass } from '../../shared/errors.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';

export const REPORT_INTERVAL_MS = 250;

interface Count {
  failures: number;
  reset: boolean;
}

/** Backend key → what happened since the last batch. Only backends of pools that detect. */
const pending = new Map<string, Count>();

function entry(key: string): Count {
  let c = pending.get(key);
  if (c === undefined) {
    c = { failures: 0, reset: false };
    pending.set(key, c);
  }
  return c;
}

/** A request or connection to `t` failed with `cls`. */
export function outlierFailure(
  od: OutlierDetectionConfig | undefined,
  t: BackendTarget,
  cls: ErrorClass,
): void {
  if (od === undefined || ERROR_CATALOG[cls].side !== 'upstream') return;
  entry(t.key).failures++;
}

/** `t` answered (status) or accepted the connection (status 0). */
export function outlierResult(
  od: OutlierDetectionConfig | undefined,
  t: BackendTarget,
  status: number,
): void {
  if (od === undefined) return;
  const c = entry(t.key);
  if (status >= 500 && od.onStatus.includes(status)) {
    c.failures++;
    return;
  }
  // Only a streak matters: a success clears what came before it in this batch.
  c.failures = 0;
  c.reset = true;
}

/** The batch since the last call (empty when nothing happened), and a fresh one begins. */
export function takeOutlierBatch(): Array<{ key: string; failures: number; reset: boolean }> {
  if (pending.size === 0) return [];
  const out: Array<{ key: string; failures: number; reset: boolean }> = [];
  for (const [key, c] of pending) out.push({ key, failures: c.failures, reset: c.reset });
  pending.clear();
  return out;
}

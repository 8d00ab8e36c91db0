// A snapshot is the served part of one validated config at one revision, plus the one process
// fact the data plane needs (how many workers share each socket). It is immutable,
// serialisable over IPC, and the only thing a worker needs to (re)build its data plane.

import type { AccessLogConfig, DynamicConfig } from './model.ts';

export interface Snapshot {
  /** From the source: the file source's own counter; the Chainfire store revision for Chainfire. */
  readonly revision: number;
  /** Where it came from, for logs: a file path or "chainfire:<endpoint>". */
  readonly origin: string;
  /**
   * Workers sharing each listening socket (cluster.workers as the primary runs it): listeners
   * split per-listener limits by it, so a resize re-splits them without a respawn.
   */
  readonly workers: number;
  /** The served config only: process settings (admin, cluster, source) stay in the primary. */
  readonly config: DynamicConfig;
  /** The top-level access log (listeners without their own use it). */
  readonly accessLog?: AccessLogConfig | undefined;
}

/** Health is a separate input from config: a change here must not rebuild routing tables. */
export interface HealthState {
  /** Backend keys (see backendKey) currently considered down. Everything else is up. */
  readonly down: readonly string[];
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

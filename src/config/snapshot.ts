// A snapshot is one validated config at one revision. It is immutable, serialisable over IPC,
// and the only thing a worker needs to (re)build its data plane.

import type { Config } from './model.ts';

export interface Snapshot {
  /** Monotonic per primary for file sources; the Chainfire store revision for Chainfire. */
  readonly revision: number;
  /** Where it came from, for logs: a file path or "chainfire:<endpoint>". */
  readonly origin: string;
  readonly config: Config;
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

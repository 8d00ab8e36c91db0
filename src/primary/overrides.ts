// Runtime overrides from the admin API (source file): a backend drained, disabled or enabled,
// or given another weight, on top of whatever config is loaded. They live in the primary and
// are applied to every config it loads, so a file reload does not undo a drain; the result is
// broadcast to the workers as a new snapshot. They are persisted to admin.state_file
// (overrides-state.ts) and restored at start. With the Chainfire source the actions write the
// backend's key in the store instead (admin/store-actions.ts) and this set stays empty.

import { type AdminState, backendKey, type DynamicConfig } from '../config/model.ts';
import { deepFreeze } from '../config/snapshot.ts';

export interface BackendOverride {
  readonly adminState?: AdminState;
  readonly weight?: number;
  /** When and how it was set, for the API and the dashboard. */
  readonly at: string;
}

export class BackendOverrides {
  private readonly byKey = new Map<string, BackendOverride>();

  get(key: string): BackendOverride | undefined {
    return this.byKey.get(key);
  }

  entries(): Array<[string, BackendOverride]> {
    return [...this.byKey];
  }

  set(key: string, change: { adminState?: AdminState; weight?: number }): void {
    const prev = this.byKey.get(key);
    this.byKey.set(key, { ...prev, ...change, at: new Date().toISOString() });
  }

  clear(key: string): boolean {
    return this.byKey.delete(key);
  }

  /** Put back exactly `o` (undefined: none), e.g. a saved one, or the one before a failed write. */
  restore(key: string, o: BackendOverride | undefined): void {
    if (o === undefined) this.byKey.delete(key);
    else this.byKey.set(key, o);
  }

  /**
   * `config` with every override applied (a new frozen object; the input is untouched).
   * Overrides of backends the config no longer has are dropped and returned.
   */
  apply(config: DynamicConfig): { config: DynamicConfig; dropped: string[] } {
    const seen = new Set<string>();
    const loadBalancers = config.loadBalancers.map((lb) => ({
      ...lb,
      pools: lb.pools.map((pool) => ({
        ...pool,
        backends: pool.backends.map((b) => {
          const key = backendKey(lb.name, pool.name, b.id);
          const o = this.byKey.get(key);
          if (!o) return b;
          seen.add(key);
          return { ...b, adminState: o.adminState ?? b.adminState, weight: o.weight ?? b.weight };
        }),
      })),
    }));
    const dropped = [...this.byKey.keys()].filter((k) => !seen.has(k));
    for (const k of dropped) this.byKey.delete(k);
    return { config: deepFreeze({ ...config, loadBalancers }), dropped };
  }
}

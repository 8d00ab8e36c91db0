// Parts of the config shape that validate today but whose runtime arrives with later work.
// They are named to the operator (by `check` and at startup) instead of being silently ignored.

import type { DynamicConfig } from './model.ts';

export function inactiveFeatures(config: DynamicConfig): string[] {
  const notes: string[] = [];
  config.loadBalancers.forEach((lb, i) => {
    lb.pools.forEach((p, j) => {
      if (p.healthCheck) notes.push(`load_balancers[${i}].pools[${j}].health_check: probes are not run yet`);
    });
  });
  return notes;
}

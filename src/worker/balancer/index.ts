// PLACEHOLDER (replaced by the balancer work): round robin for every algorithm.
import type { Algorithm, BackendTarget, Balancer } from './types.ts';

export function createBalancer(_algorithm: Algorithm, targets: readonly BackendTarget[]): Balancer {
  let i = 0;
  return { pick: () => (targets.length === 0 ? undefined : targets[i++ % targets.length]) };
}

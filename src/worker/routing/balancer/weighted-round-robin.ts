// weighted_round_robin: nginx's smooth weighted round robin. Each pick adds every backend's
// weight to its current weight, takes the largest, and subtracts the total from the winner,
// so weights 5,1,1 give a a b a c a a instead of the bursty a a a a a b c. Excluded backends
// sit the pick out, as nginx's tried peers do: no weight added, none in the total, so the
// current weights still sum to 0 and the others' order is undisturbed.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { excludes, weightsOf } from './weights.ts';

export function weightedRoundRobin(targets: readonly BackendTarget[]): Balancer {
  return new SmoothWeightedRoundRobin(targets);
}

class SmoothWeightedRoundRobin implements Balancer {
  private readonly weights: Float64Array;
  private readonly current: Float64Array;

  constructor(private readonly targets: readonly BackendTarget[]) {
    this.weights = weightsOf(targets);
    this.current = new Float64Array(targets.length);
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets, weights, current } = this;
    const ex = ctx.exclude;
    const skip = excludes(ex);
    let best = -1;
    let bestWeight = Number.NEGATIVE_INFINITY;
    let total = 0;
    for (let i = 0; i < targets.length; i++) {
      if (skip && ex.has(targets[i]!)) continue;
      const w = weights[i]!;
      const c = current[i]! + w;
      current[i] = c;
      total += w;
      if (c > bestWeight) {
        best = i;
        bestWeight = c;
      }
    }
    if (best < 0) return undefined;
    current[best] = bestWeight - total;
    return targets[best];
  }
}

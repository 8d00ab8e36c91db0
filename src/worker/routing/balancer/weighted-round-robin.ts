// weighted_round_robin: nginx's smooth weighted round robin. Each pick adds every backend's
// weight to its current weight, takes the largest, and subtracts the total from the winner,
// so weights 5,1,1 give a a b a c a a instead of the bursty a a a a a b c.

import type { BackendTarget, Balancer } from './types.ts';
import { weightsOf } from './weights.ts';

export function weightedRoundRobin(targets: readonly BackendTarget[]): Balancer {
  return new SmoothWeightedRoundRobin(targets);
}

class SmoothWeightedRoundRobin implements Balancer {
  private readonly weights: Float64Array;
  private readonly current: Float64Array;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    this.weights = weightsOf(targets);
    this.current = new Float64Array(targets.length);
    let total = 0;
    for (const w of this.weights) total += w;
    this.total = total;
  }

  pick(_hashKey: string): BackendTarget | undefined {
    const n = this.targets.length;
    if (n === 0) return undefined;
    const { weights, current } = this;
    let best = 0;
    let bestWeight = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const c = current[i]! + weights[i]!;
      current[i] = c;
      if (c > bestWeight) {
        best = i;
        bestWeight = c;
      }
    }
    current[best] = bestWeight - this.total;
    return this.targets[best];
  }
}

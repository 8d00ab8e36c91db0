// random: each pick independently chooses backend i with probability weight_i / Σweight.

import type { BackendTarget, Balancer } from './types.ts';
import { allEqual, cumulative, indexAt, weightsOf } from './weights.ts';

export function random(targets: readonly BackendTarget[]): Balancer {
  return new WeightedRandom(targets);
}

class WeightedRandom implements Balancer {
  /** undefined when all weights are equal: a plain uniform index is exact and cheaper. */
  private readonly cum: Float64Array | undefined;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    const w = weightsOf(targets);
    this.cum = allEqual(w) ? undefined : cumulative(w);
    this.total = this.cum ? this.cum[this.cum.length - 1]! : targets.length;
  }

  pick(_hashKey: string): BackendTarget | undefined {
    const n = this.targets.length;
    if (n === 0) return undefined;
    const x = Math.random() * this.total;
    return this.targets[this.cum ? indexAt(this.cum, x) : Math.floor(x)];
  }
}

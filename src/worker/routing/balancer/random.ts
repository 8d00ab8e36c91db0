// random: each pick independently chooses backend i with probability weight_i / Σweight.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { allEqual, cumulative, drawExcluding, excludes, indexAt, weightsOf } from './weights.ts';

export function random(targets: readonly BackendTarget[]): Balancer {
  return new WeightedRandom(targets);
}

class WeightedRandom implements Balancer {
  private readonly weights: Float64Array;
  /** undefined when all weights are equal: a plain uniform index is exact and cheaper. */
  private readonly cum: Float64Array | undefined;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    this.weights = weightsOf(targets);
    this.cum = allEqual(this.weights) ? undefined : cumulative(this.weights);
    this.total = this.cum ? this.cum[this.cum.length - 1]! : targets.length;
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets } = this;
    const ex = ctx.exclude;
    if (excludes(ex)) {
      // The same distribution, conditioned on not excluded.
      const i = drawExcluding(targets, this.weights, ex, -1, Math.random());
      return i < 0 ? undefined : targets[i];
    }
    if (targets.length === 0) return undefined;
    const x = Math.random() * this.total;
    return targets[this.cum ? indexAt(this.cum, x) : Math.floor(x)];
  }
}

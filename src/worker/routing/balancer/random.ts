// random: each pick independently chooses backend i with probability weight_i / Σweight.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { drawExcluding, excludes, indexAt, weightTable } from './weights.ts';

export function random(targets: readonly BackendTarget[]): Balancer {
  return new WeightedRandom(targets);
}

class WeightedRandom implements Balancer {
  private readonly weights: Float64Array;
  /** undefined when all weights are equal: a plain uniform index is exact and cheaper. */
  private readonly cum: Float64Array | undefined;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    ({ weights: this.weights, cum: this.cum, total: this.total } = weightTable(targets));
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

// p2c (power of two choices): sample two distinct backends, weighted by weight, and take the one
// with fewer in-flight requests per unit of weight. Near least_connections' balance without its
// herd behaviour: workers with stale counts don't all pile onto the same "least" backend.

import type { BackendTarget, Balancer } from './types.ts';
import { allEqual, cumulative, indexAt, weightsOf } from './weights.ts';

export function p2c(targets: readonly BackendTarget[]): Balancer {
  return new PowerOfTwoChoices(targets);
}

class PowerOfTwoChoices implements Balancer {
  private readonly weights: Float64Array;
  /** undefined when all weights are equal: uniform sampling is exact and cheaper. */
  private readonly cum: Float64Array | undefined;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    this.weights = weightsOf(targets);
    this.cum = allEqual(this.weights) ? undefined : cumulative(this.weights);
    this.total = this.cum ? this.cum[this.cum.length - 1]! : targets.length;
  }

  pick(_hashKey: string): BackendTarget | undefined {
    const { targets, weights, cum } = this;
    const n = targets.length;
    if (n < 2) return targets[0];
    let a: number;
    let b: number;
    if (cum === undefined) {
      a = Math.floor(Math.random() * n);
      b = Math.floor(Math.random() * (n - 1));
      if (b >= a) b++;
    } else {
      // Second draw without replacement: sample the line with a's interval cut out, then map
      // points at or after the cut past it.
      a = indexAt(cum, Math.random() * this.total);
      const start = a === 0 ? 0 : cum[a - 1]!;
      let x = Math.random() * (this.total - weights[a]!);
      if (x >= start) x += cum[a]! - start;
      b = indexAt(cum, x);
      if (b === a) b = a + 1 === n ? 0 : a + 1; // only reachable through float rounding
    }
    const ta = targets[a]!;
    const tb = targets[b]!;
    return tb.active / weights[b]! < ta.active / weights[a]! ? tb : ta;
  }
}

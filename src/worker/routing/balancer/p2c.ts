// p2c (power of two choices): sample two distinct backends, weighted by weight, and take the one
// with fewer in-flight requests per unit of weight. Near least_connections' balance without its
// herd behaviour: workers with stale counts don't all pile onto the same "least" backend.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { drawExcluding, excludes, indexAt, weightTable } from './weights.ts';

export function p2c(targets: readonly BackendTarget[]): Balancer {
  return new PowerOfTwoChoices(targets);
}

class PowerOfTwoChoices implements Balancer {
  private readonly weights: Float64Array;
  /** undefined when all weights are equal: uniform sampling is exact and cheaper. */
  private readonly cum: Float64Array | undefined;
  private readonly total: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    ({ weights: this.weights, cum: this.cum, total: this.total } = weightTable(targets));
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets, weights, cum } = this;
    const ex = ctx.exclude;
    if (excludes(ex)) return this.pickExcluding(ex);
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
    return this.better(a, b);
  }

  /** The same two weighted draws without replacement, among the backends not excluded. */
  private pickExcluding(ex: ReadonlySet<BackendTarget>): BackendTarget | undefined {
    const { targets, weights } = this;
    const a = drawExcluding(targets, weights, ex, -1, Math.random());
    if (a < 0) return undefined;
    const b = drawExcluding(targets, weights, ex, a, Math.random());
    return b < 0 ? targets[a] : this.better(a, b);
  }

  /** The less loaded per unit of weight; the first candidate on a tie. */
  private better(a: number, b: number): BackendTarget {
    const ta = this.targets[a]!;
    const tb = this.targets[b]!;
    return tb.active / this.weights[b]! < ta.active / this.weights[a]! ? tb : ta;
  }
}

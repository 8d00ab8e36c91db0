// least_connections: the backend with the fewest in-flight requests per unit of weight.
// Ties are broken round-robin (the scan starts after the last winner); always taking the first
// tied backend would send every request of a quiet pool, where all counts are 0, to one backend.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { excludes, weightsOf } from './weights.ts';

export function leastConnections(targets: readonly BackendTarget[]): Balancer {
  return new LeastConnections(targets);
}

class LeastConnections implements Balancer {
  // Divide rather than multiply by 1/weight: division is correctly rounded, so equal ratios
  // (1/3 and 3/9) compare equal and still rotate as ties.
  private readonly weights: Float64Array;
  private start: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    this.weights = weightsOf(targets);
    this.start = Math.floor(Math.random() * targets.length);
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets, weights } = this;
    const n = targets.length;
    const ex = ctx.exclude;
    const skip = excludes(ex);
    let i = this.start;
    let best = -1;
    let bestLoad = Number.POSITIVE_INFINITY; // loads are finite: the first candidate always wins it
    for (let k = 0; k < n; k++) {
      if (!skip || !ex.has(targets[i]!)) {
        const load = targets[i]!.active / weights[i]!;
        if (load < bestLoad) {
          best = i;
          bestLoad = load;
        }
      }
      i = i + 1 === n ? 0 : i + 1;
    }
    if (best < 0) return undefined;
    this.start = best + 1 === n ? 0 : best + 1;
    return targets[best];
  }
}

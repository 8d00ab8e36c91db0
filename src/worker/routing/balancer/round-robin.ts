// round_robin: cycles through the available backends, ignoring weight.

import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { excludes } from './weights.ts';

export function roundRobin(targets: readonly BackendTarget[]): Balancer {
  return new RoundRobin(targets);
}

class RoundRobin implements Balancer {
  private next: number;

  constructor(private readonly targets: readonly BackendTarget[]) {
    // Every worker (and every rebuild after a health change) would otherwise start on the first
    // backend, piling the first request of each onto it.
    this.next = Math.floor(Math.random() * targets.length);
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets } = this;
    const n = targets.length;
    if (n === 0) return undefined;
    let i = this.next;
    const ex = ctx.exclude;
    if (excludes(ex)) {
      // Go on to the next backend not excluded; the cycle then continues after it.
      for (let k = 1; ex.has(targets[i]!); k++) {
        if (k === n) return undefined;
        i = i + 1 === n ? 0 : i + 1;
      }
    }
    this.next = i + 1 === n ? 0 : i + 1;
    return targets[i];
  }
}

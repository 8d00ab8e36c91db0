// round_robin: cycles through the available backends, ignoring weight.

import type { BackendTarget, Balancer } from './types.ts';

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

  pick(_hashKey: string): BackendTarget | undefined {
    const n = this.targets.length;
    if (n === 0) return undefined;
    const i = this.next;
    this.next = i + 1 === n ? 0 : i + 1;
    return this.targets[i];
  }
}

// ip_hash: the client key hashes to a point on the weight line, so a client sticks to one
// backend while the set is unchanged and backends get clients in proportion to weight. Any
// change to the set remaps most clients; maglev is the algorithm that minimises that.

import { hash32 } from './hash.ts';
import type { BackendTarget, Balancer } from './types.ts';
import { cumulative, indexAt, weightsOf } from './weights.ts';

export function ipHash(targets: readonly BackendTarget[]): Balancer {
  return new IpHash(targets);
}

/** 2^32: scales a 32-bit hash onto [0, 1). */
const HASH_RANGE = 4294967296;

class IpHash implements Balancer {
  /** Ordered by key, so the mapping depends on the set, not on config order. */
  private readonly targets: readonly BackendTarget[];
  private readonly cum: Float64Array;
  private readonly total: number;

  constructor(targets: readonly BackendTarget[]) {
    this.targets = [...targets].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    this.cum = cumulative(weightsOf(this.targets));
    this.total = this.targets.length === 0 ? 0 : this.cum[this.cum.length - 1]!;
  }

  pick(hashKey: string): BackendTarget | undefined {
    if (this.targets.length === 0) return undefined;
    // Scale rather than `hash % total`: works for fractional weights and has no modulo bias.
    return this.targets[indexAt(this.cum, (hash32(hashKey) / HASH_RANGE) * this.total)];
  }
}

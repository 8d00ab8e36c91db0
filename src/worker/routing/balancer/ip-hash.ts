// ip_hash: the client key hashes to a point on the weight line, so a client sticks to one
// backend while the set is unchanged and backends get clients in proportion to weight. Any
// change to the set remaps most clients; maglev is the algorithm that minimises that.
// Excluding a backend (a retry) moves only the keys that hashed to it: the key is rehashed onto
// the line until it lands on a backend not excluded (see rehash.ts).

import { HASH_RANGE, hash32 } from './hash.ts';
import { REHASH_ATTEMPTS, rehashFallback } from './rehash.ts';
import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { cumulative, indexAt, weightsOf } from './weights.ts';

export function ipHash(targets: readonly BackendTarget[]): Balancer {
  return new IpHash(targets);
}

class IpHash implements Balancer {
  /** Ordered by key, so the mapping depends on the set, not on config order. */
  private readonly targets: readonly BackendTarget[];
  private readonly weights: Float64Array;
  private readonly cum: Float64Array;
  private readonly total: number;

  constructor(targets: readonly BackendTarget[]) {
    this.targets = [...targets].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    this.weights = weightsOf(this.targets);
    this.cum = cumulative(this.weights);
    this.total = this.targets.length === 0 ? 0 : this.cum[this.cum.length - 1]!;
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets } = this;
    if (targets.length === 0) return undefined;
    const key = ctx.hashKey();
    const t = this.at(key, 0);
    const ex = ctx.exclude;
    if (ex === undefined || !ex.has(t)) return t;
    for (let seed = 1; seed <= REHASH_ATTEMPTS; seed++) {
      const u = this.at(key, seed);
      if (!ex.has(u)) return u;
    }
    return rehashFallback(targets, this.weights, ex, key);
  }

  /** The backend owning the point hash(key, seed) on the weight line. */
  private at(key: string, seed: number): BackendTarget {
    // Scale rather than `hash % total`: works for fractional weights and has no modulo bias.
    return this.targets[indexAt(this.cum, (hash32(key, seed) / HASH_RANGE) * this.total)]!;
  }
}

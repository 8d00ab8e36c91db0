// maglev: Google's Maglev consistent hashing (NSDI '16, §3.4) with Envoy's weighted fill.
// Each backend walks its own permutation of the M table slots (offset + j·skip mod M, from two
// hashes of its key) and claims the next free slot on each of its turns; a backend gets
// weight/maxWeight turns per round, so it ends up with ≈ weight/Σweight of the slots. Removing a
// backend frees its slots to the others and barely disturbs the rest. Excluding a backend for
// one pick (a retry) rehashes the key onto the table until a slot's owner is not excluded (see
// rehash.ts): only keys on an excluded backend move, and the table is not rebuilt for it.

import { hash32 } from './hash.ts';
import { REHASH_ATTEMPTS, rehashFallback } from './rehash.ts';
import type { BackendTarget, Balancer, PickContext } from './types.ts';
import { weightsOf } from './weights.ts';

/** Table size from the platform spec: prime (so every skip walks all slots) and ≫ 100 backends. */
export const MAGLEV_TABLE_SIZE = 65521;

const M = MAGLEV_TABLE_SIZE;
const OFFSET_SEED = 1;
const SKIP_SEED = 2;

export function maglev(targets: readonly BackendTarget[]): Balancer {
  return new Maglev(targets, buildMaglevTable(targets));
}

/**
 * slot → index into `targets`. Depends only on the set of (key, weight), not on list order:
 * backends take their turns in key order, so the same set always yields the same table.
 */
export function buildMaglevTable(targets: readonly BackendTarget[]): Uint16Array | Uint32Array {
  const n = targets.length;
  // 128 KiB per pool instead of 256 KiB for any realistic backend count.
  const table = n < 0xffff ? new Uint16Array(M) : new Uint32Array(M);
  const empty = n < 0xffff ? 0xffff : 0xffffffff;
  if (n === 0) return table;
  table.fill(empty);

  const order = targets.map((_, i) => i).sort((x, y) => cmp(targets[x]!.key, targets[y]!.key));
  const weights = weightsOf(targets);
  const next = new Uint32Array(n); // position of each backend's permutation walk
  const skip = new Uint32Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const key = targets[i]!.key;
    next[i] = hash32(key, OFFSET_SEED) % M;
    skip[i] = (hash32(key, SKIP_SEED) % (M - 1)) + 1;
    if (weights[i]! > maxWeight) maxWeight = weights[i]!;
  }
  // Envoy's fill: in round r backend i takes a turn when r·w_i ≥ (its turns so far)·maxWeight,
  // in key order within a round — the heaviest plays every round, one a third as heavy every
  // third. (A heap over next-due rounds avoids scanning idle backends but measured slower for
  // everything except weight ratios near 100:1.)
  const due = new Float64Array(n);
  let filled = 0;
  for (let round = 1; filled < M; round++) {
    for (let k = 0; k < n && filled < M; k++) {
      const i = order[k]!;
      if (round * weights[i]! < due[i]!) continue;
      due[i] += maxWeight;
      let c = next[i]!;
      const s = skip[i]!;
      while (table[c] !== empty) {
        c += s;
        if (c >= M) c -= M;
      }
      table[c] = i;
      c += s;
      next[i] = c >= M ? c - M : c;
      filled++;
    }
  }
  return table;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class Maglev implements Balancer {
  /** For rehashFallback, in key order like the table: the same set gives the same answer. */
  private readonly sorted: readonly BackendTarget[];
  private readonly sortedWeights: Float64Array;

  constructor(
    private readonly targets: readonly BackendTarget[],
    private readonly table: Uint16Array | Uint32Array,
  ) {
    this.sorted = [...targets].sort((x, y) => cmp(x.key, y.key));
    this.sortedWeights = weightsOf(this.sorted);
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    const { targets, table } = this;
    if (targets.length === 0) return undefined;
    const key = ctx.hashKey();
    const t = targets[table[hash32(key) % M]!]!;
    const ex = ctx.exclude;
    if (ex === undefined || !ex.has(t)) return t;
    // Not the next slot: neighbouring slots' owners are correlated (measured: a walk sends an
    // excluded backend's keys to the others up to 10 Bernstein bounds off their shares).
    for (let seed = 1; seed <= REHASH_ATTEMPTS; seed++) {
      const u = targets[table[hash32(key, seed) % M]!]!;
      if (!ex.has(u)) return u;
    }
    return rehashFallback(this.sorted, this.sortedWeights, ex, key);
  }
}

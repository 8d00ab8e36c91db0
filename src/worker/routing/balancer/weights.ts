// How the weighted balancers read weights and turn a point on the weight line into a backend.
// Validation guarantees positive weights; mapping anything else to 1 only keeps a bad value
// from hanging a build (maglev) or poisoning every comparison with NaN.

import type { BackendTarget } from './types.ts';

export function weightsOf(targets: readonly BackendTarget[]): Float64Array {
  const w = new Float64Array(targets.length);
  for (let i = 0; i < targets.length; i++) {
    const v = targets[i]!.weight;
    w[i] = v > 0 && Number.isFinite(v) ? v : 1;
  }
  return w;
}

/** cum[i] = w[0] + … + w[i]; backend i owns the half-open interval [cum[i-1], cum[i]). */
export function cumulative(weights: Float64Array): Float64Array {
  const cum = new Float64Array(weights.length);
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    sum += weights[i]!;
    cum[i] = sum;
  }
  return cum;
}

/** The backend owning point x ∈ [0, total): binary search for the first cum[i] > x. */
export function indexAt(cum: Float64Array, x: number): number {
  let lo = 0;
  let hi = cum.length - 1; // clamps x ≥ total (float rounding) onto the last backend
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** True when every weight is the same, so the uniform (cheaper, exact) path applies. */
export function allEqual(weights: Float64Array): boolean {
  for (let i = 1; i < weights.length; i++) if (weights[i] !== weights[0]) return false;
  return true;
}

/**
 * A weighted draw among the targets not in `exclude` and not at index `skip` (-1: none), with
 * u ∈ [0, 1) as the random (or hashed) point. O(n) and allocation-free: exclusion is the retry
 * path, so the common pick keeps its precomputed tables. Returns -1 when nothing is left.
 */
export function drawExcluding(
  targets: readonly BackendTarget[],
  weights: Float64Array,
  exclude: ReadonlySet<BackendTarget>,
  skip: number,
  u: number,
): number {
  let total = 0;
  for (let i = 0; i < targets.length; i++) {
    if (i !== skip && !exclude.has(targets[i]!)) total += weights[i]!;
  }
  if (total === 0) return -1;
  let x = u * total;
  let last = -1;
  for (let i = 0; i < targets.length; i++) {
    if (i === skip || exclude.has(targets[i]!)) continue;
    last = i;
    x -= weights[i]!;
    if (x < 0) return i;
  }
  return last; // x ≥ total through float rounding: the last candidate owns the end of the line
}

/** True when `exclude` is given and not empty: the cheap test every pick starts with. */
export function excludes(
  exclude: ReadonlySet<BackendTarget> | undefined,
): exclude is ReadonlySet<BackendTarget> {
  return exclude !== undefined && exclude.size > 0;
}

/** Weights with their cumulative sums, prepared once per balancer for weighted draws. */
export interface WeightTable {
  readonly weights: Float64Array;
  /** undefined when all weights are equal: a plain uniform index is exact and cheaper. */
  readonly cum: Float64Array | undefined;
  /** Sum of the weights, or the target count when they are all equal. */
  readonly total: number;
}

export function weightTable(targets: readonly BackendTarget[]): WeightTable {
  const weights = weightsOf(targets);
  const cum = allEqual(weights) ? undefined : cumulative(weights);
  return { weights, cum, total: cum ? cum[cum.length - 1]! : targets.length };
}

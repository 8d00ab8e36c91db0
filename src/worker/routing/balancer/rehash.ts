// How the hashing balancers (ip_hash, maglev) place a key whose backend is excluded from a
// pick. Hash it again with seeds 1, 2, ... onto the same structure (weight line or table) and
// take the first backend not excluded. Each rehash is an independent draw by weight, so the
// moved keys spread over the others in proportion to weight; and a key only moves while its
// backend is excluded — excluding one more backend moves no key that was not on it (save the
// rare key that falls through to rehashFallback).

import { HASH_RANGE, hash32 } from './hash.ts';
import type { BackendTarget } from './types.ts';
import { drawExcluding } from './weights.ts';

/**
 * Rehashes before rehashFallback. With a share p of the weight left, a key falls through with
 * probability (1 − p)^8: 0.4% at p = ½, so the common retry costs a hash or two.
 */
export const REHASH_ATTEMPTS = 8;

/**
 * Past the attempts (most weight excluded): one more hash as the point of an exact weighted
 * draw among what is left. Still a function of the key and the set; undefined when nothing is.
 */
export function rehashFallback(
  targets: readonly BackendTarget[],
  weights: Float64Array,
  exclude: ReadonlySet<BackendTarget>,
  key: string,
): BackendTarget | undefined {
  const i = drawExcluding(targets, weights, exclude, -1, hash32(key, REHASH_ATTEMPTS + 1) / HASH_RANGE);
  return i < 0 ? undefined : targets[i];
}

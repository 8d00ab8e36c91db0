// One fast, non-cryptographic 32-bit string hash for every hashing balancer (ip_hash, maglev).
// FNV-1a alone mixes poorly into the low bits for short, similar keys (IPs that differ in the
// last octet), and we reduce modulo small numbers, so the state is finished with murmur3's
// fmix32 avalanche. Allocation-free: it walks UTF-16 code units, no encoding step.

/** 2^32: scales a 32-bit hash onto [0, 1). */
export const HASH_RANGE = 4294967296;

/** Hash `s` to an unsigned 32-bit integer. Different seeds give practically independent hashes. */
export function hash32(s: string, seed = 0): number {
  // Spread the seed over the whole word so seeds 1 and 2 differ in more than the low bits.
  let h = 0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Property tests for the balancing algorithms and PoolRuntime.
//
// Statistical assertions use Bernstein's inequality with a per-check false-failure probability
// DELTA = 1e-9. Checks that depend on Math.random number a few hundred, so by the union bound
// a correct implementation fails a run with probability < 1e-6. Hash-based checks (ip_hash,
// maglev) use keys from a seeded generator and fast-check runs use fixed seeds: their bounds come
// from the ideal-hash model but their outcome is deterministic, so they cannot flake.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AdminState,
  ALGORITHMS,
  type Algorithm,
  backendKey,
  type PoolConfig,
} from '../src/config/model.ts';
import { DEFAULT_RETRY } from '../src/config/validate-health.ts';
import { createBalancer } from '../src/worker/routing/balancer/index.ts';
import { buildMaglevTable, MAGLEV_TABLE_SIZE } from '../src/worker/routing/balancer/maglev.ts';
import type { BackendTarget, Balancer, PickContext } from '../src/worker/routing/balancer/types.ts';
import {
  allEqual,
  cumulative,
  drawExcluding,
  indexAt,
  weightsOf,
} from '../src/worker/routing/balancer/weights.ts';
import { byKey } from '../src/worker/routing/pick-context.ts';
import { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';

const SEED = 20240611;
// Every assert.ok below carries a message: without one, Node re-reads the call site to build
// it, which takes ~1 s per failure under tsx's loader hooks (nodejs/node#52962), so a failing
// property that fast-check shrinks looks like a hang.
const M = MAGLEV_TABLE_SIZE;
const DELTA = 1e-9;

/**
 * Bernstein: for K independent Bernoulli(p) trials, P(|X − Kp| ≥ t) ≤ 2·exp(−t² / (2(Kp(1−p) + t/3))).
 * Setting the right side to δ and solving the quadratic for t gives this deviation.
 */
function bernstein(trials: number, p: number, delta = DELTA): number {
  const l = Math.log(2 / delta);
  return l / 3 + Math.sqrt((l * l) / 9 + 2 * l * trials * p * (1 - p));
}

function assertShares(
  counts: readonly number[],
  probs: readonly number[],
  trials: number,
  what: string,
): void {
  for (let i = 0; i < counts.length; i++) {
    const expected = trials * probs[i]!;
    const bound = bernstein(trials, probs[i]!);
    assert.ok(
      Math.abs(counts[i]! - expected) <= bound,
      `${what}: backend ${i} got ${counts[i]}, expected ${expected.toFixed(1)} ± ${bound.toFixed(1)}`,
    );
  }
}

function makeTargets(weights: readonly number[], actives: readonly number[] = [], keys?: readonly string[]) {
  return weights.map(
    (weight, i): BackendTarget => ({
      key: keys?.[i] ?? `lb/pool/b${i}`,
      id: `b${i}`,
      address: `10.0.0.${i}`,
      port: 8080,
      weight,
      active: actives[i] ?? 0,
    }),
  );
}

/** A pick context hashing on `key`; counts how often a balancer asked for the key. */
class CountingContext implements PickContext {
  calls = 0;
  constructor(
    readonly key: string,
    readonly exclude?: ReadonlySet<BackendTarget>,
  ) {}

  hashKey(): string {
    this.calls++;
    return this.key;
  }
}

function ctx(key: string, exclude?: ReadonlySet<BackendTarget>): CountingContext {
  return new CountingContext(key, exclude);
}

/** mulberry32: a seeded PRNG, so hash-based tests see the same "random" clients every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomIps(count: number, seed: number): string[] {
  const r = seeded(seed);
  const octet = () => Math.floor(r() * 256);
  return Array.from({ length: count }, () => `${octet()}.${octet()}.${octet()}.${octet()}`);
}

/** Adjacent addresses, the worst case for a weak hash: they differ only in the last bits. */
function sequentialIps(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
}

function countPicks(
  b: Balancer,
  targets: readonly BackendTarget[],
  keys: readonly string[],
  exclude?: ReadonlySet<BackendTarget>,
): number[] {
  const counts = new Array<number>(targets.length).fill(0);
  for (const k of keys) counts[targets.indexOf(b.pick(ctx(k, exclude))!)]!++;
  return counts;
}

function sum(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s;
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const r = seeded(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const weightsArb = (minLength: number, maxLength: number, max: number) =>
  fc.array(fc.integer({ min: 1, max }), { minLength, maxLength });

/** Which backends to exclude, by index (bits past the target count are ignored). */
const MASK = fc.array(fc.boolean(), { minLength: 10, maxLength: 10 });

describe('every algorithm', () => {
  it('returns undefined for an empty list', () => {
    for (const algorithm of ALGORITHMS) {
      const b = createBalancer(algorithm, []);
      for (const key of ['', '192.0.2.1', '2001:db8::1'])
        assert.equal(b.pick(ctx(key)), undefined, algorithm);
    }
  });

  it('only returns given targets, never undefined when it has some', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 12, 10),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 12 }),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 40 }),
        (weights, actives, keys) => {
          for (const algorithm of ALGORITHMS) {
            const targets = makeTargets(weights, actives);
            const given = new Set(targets);
            const b = createBalancer(algorithm, targets);
            for (const key of keys) {
              const t = b.pick(ctx(key));
              assert.ok(t !== undefined && given.has(t), algorithm);
              t.active++; // vary the load the load-aware algorithms see
            }
          }
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });
});

describe('balancer construction', () => {
  // Every worker (and every rebuild) has its own balancer: if all started on the first backend,
  // the first request of each would pile onto it.
  it('round_robin and least_connections start at a uniformly random backend', () => {
    const trials = 5_000;
    const n = 5;
    for (const algorithm of ['round_robin', 'least_connections'] as const) {
      const targets = makeTargets(new Array<number>(n).fill(1));
      const counts = new Array<number>(n).fill(0);
      for (let k = 0; k < trials; k++) {
        counts[targets.indexOf(createBalancer(algorithm, targets).pick(ctx(''))!)]!++;
      }
      assertShares(counts, new Array<number>(n).fill(1 / n), trials, `${algorithm} first picks`);
    }
  });

  it('reads weights as given, and anything but a positive finite weight as 1', () => {
    assert.deepEqual([...weightsOf(makeTargets([3, 0.5, 1000]))], [3, 0.5, 1000]);
    assert.deepEqual(
      [...weightsOf(makeTargets([0, -2, Number.NaN, Number.POSITIVE_INFINITY, 7]))],
      [1, 1, 1, 1, 7],
    );
    // So a bad weight neither hangs the maglev fill nor poisons least_connections with NaN.
    const bad = makeTargets([0, Number.NaN, 1]);
    assert.ok(bad.includes(createBalancer('least_connections', bad).pick(ctx(''))!), 'no pick');
    assert.ok(
      buildMaglevTable(bad).every((i) => i < 3),
      'a slot without an owner',
    );
  });

  it('maps points to backends by half-open weight intervals', () => {
    const cum = cumulative(new Float64Array([1, 2, 3]));
    assert.deepEqual([...cum], [1, 3, 6]);
    const at = (x: number) => indexAt(cum, x);
    assert.deepEqual([0, 0.99, 1, 2.99, 3, 5.99, 6, 7].map(at), [0, 0, 1, 1, 2, 2, 2, 2]);
    assert.equal(allEqual(new Float64Array([2, 2, 2])), true);
    assert.equal(allEqual(new Float64Array([2])), true);
    assert.equal(allEqual(new Float64Array([2, 2, 3])), false);
    assert.equal(allEqual(new Float64Array([3, 2, 2])), false);
  });

  it('draws among the backends left by the same half-open intervals', () => {
    const targets = makeTargets([1, 2, 3, 4]);
    const w = weightsOf(targets);
    const none = new Set<BackendTarget>();
    const draw = (ex: ReadonlySet<BackendTarget>, skip: number, u: number) =>
      drawExcluding(targets, w, ex, skip, u);
    // Total 10: [0,1) → 0, [1,3) → 1, [3,6) → 2, [6,10) → 3.
    assert.deepEqual(
      [0, 0.0999, 0.1, 0.2999, 0.3, 0.5999, 0.6, 0.9999].map((u) => draw(none, -1, u)),
      [0, 0, 1, 1, 2, 2, 3, 3],
    );
    // Without backend 1 (weight 2): total 8, [0,1) → 0, [1,4) → 2, [4,8) → 3.
    const ex1 = new Set([targets[1]!]);
    assert.deepEqual(
      [0, 0.124, 0.125, 0.49, 0.5, 0.99].map((u) => draw(ex1, -1, u)),
      [0, 0, 2, 2, 3, 3],
    );
    assert.deepEqual(
      [0, 0.124, 0.125, 0.49, 0.5, 0.99].map((u) => draw(none, 1, u)),
      [0, 0, 2, 2, 3, 3],
    );
    // skip and exclude together; u = 1 (float rounding past the end) is the last candidate.
    assert.equal(draw(ex1, 3, 0.5), 2);
    assert.equal(draw(ex1, 2, 1), 3);
    assert.equal(draw(new Set(targets.slice(1)), -1, 1), 0);
    assert.equal(draw(new Set(targets), -1, 0.5), -1);
    assert.equal(draw(new Set(targets.slice(1)), 0, 0.5), -1);
  });

  it('refuses an unknown algorithm', () => {
    assert.throws(
      () => createBalancer('fastest' as Algorithm, makeTargets([1])),
      /unknown balancing algorithm: fastest/,
    );
  });
});

const HASHING: ReadonlySet<Algorithm> = new Set<Algorithm>(['ip_hash', 'maglev']);

/** The targets whose mask bit is set. */
const subset = (targets: readonly BackendTarget[], mask: readonly boolean[]) =>
  new Set(targets.filter((_, i) => mask[i] === true));

describe('pick context', () => {
  it('asks for the hash key only in ip_hash and maglev, once per pick', () => {
    const targets = makeTargets([1, 2, 3, 4]);
    const excludes = [undefined, new Set<BackendTarget>(), new Set([targets[1]!]), new Set(targets)];
    for (const algorithm of ALGORITHMS) {
      const b = createBalancer(algorithm, targets);
      for (const exclude of excludes) {
        for (const key of randomIps(50, 3)) {
          const c = ctx(key, exclude);
          b.pick(c);
          assert.equal(c.calls, HASHING.has(algorithm) ? 1 : 0, `${algorithm}: hashKey() calls`);
        }
      }
    }
  });

  it('does not ask for the key when the pool is empty', () => {
    for (const algorithm of ALGORITHMS) {
      const c = ctx('192.0.2.1');
      assert.equal(createBalancer(algorithm, []).pick(c), undefined);
      assert.equal(c.calls, 0, `${algorithm} asked for the key of an empty pool`);
    }
  });

  it('byKey() is one reused context over a key at hand', () => {
    const targets = makeTargets([1, 2, 3]);
    const exclude = new Set([targets[0]!]);
    const c = byKey('198.51.100.7', exclude);
    assert.equal(c.hashKey(), '198.51.100.7');
    assert.equal(c.exclude, exclude);
    assert.equal(byKey('203.0.113.1'), c, 'a new object per call');
    assert.equal(c.hashKey(), '203.0.113.1');
    assert.equal(c.exclude, undefined, 'a previous exclude set leaked into the next pick');
    for (const algorithm of ALGORITHMS) {
      if (!HASHING.has(algorithm)) continue;
      const b = createBalancer(algorithm, targets);
      for (const ip of randomIps(100, 5)) {
        assert.equal(b.pick(byKey(ip, exclude)), b.pick(ctx(ip, exclude)), algorithm);
      }
    }
  });

  // Golden digests of which backend each of 3000 keys gets. A change here moves clients of
  // every ip_hash / maglev pool on upgrade (sessions, caches), so it must be deliberate:
  // recompute the digests only when changing the mapping on purpose.
  it('hashes every key to the same backend as the released mapping, with and without exclusions', () => {
    const targets = [5, 1, 3, 2, 8, 1].map(
      (weight, i): BackendTarget => ({
        key: `lb/web/10.0.0.${i}:80`,
        id: `b${i}`,
        address: `10.0.0.${i}`,
        port: 80,
        weight,
        active: 0,
      }),
    );
    const keys = Array.from({ length: 3000 }, (_, i) => `198.51.${(i >> 8) & 255}.${i & 255}`);
    const golden = {
      ip_hash: ['4d3c123bf2a58d9c', 'cf36fc53234079c6', '4de8cc6ae67d4256'],
      maglev: ['e764d0309e657045', 'c76e09ae2d75486c', 'f0849180d730b719'],
    };
    for (const algorithm of ['ip_hash', 'maglev'] as const) {
      // Built from a shuffled list: the mapping depends on the set, not its order.
      const b = createBalancer(algorithm, shuffled(targets, 3));
      const digests = [undefined, new Set([targets[0]!]), new Set(targets.slice(0, 4))].map((exclude) => {
        const ids = keys.map((k) => b.pick(ctx(k, exclude))?.id ?? '-').join(',');
        return createHash('sha256').update(ids).digest('hex').slice(0, 16);
      });
      assert.deepEqual(digests, golden[algorithm], algorithm);
    }
    // The table itself: a change in the fill moves only a few slots, so few of the keys above.
    const reordered = shuffled(targets, 4);
    const table = Array.from(buildMaglevTable(reordered), (i) => reordered[i]!.id).join(',');
    assert.equal(createHash('sha256').update(table).digest('hex').slice(0, 16), '80df0dc959d2ea02');
  });

  it('never returns an excluded backend, and undefined only when every backend is excluded', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 10, 10),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 10 }),
        fc.array(fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 10 }),
        (weights, actives, masks, keys) => {
          for (const algorithm of ALGORITHMS) {
            const targets = makeTargets(weights, actives);
            const b = createBalancer(algorithm, targets);
            for (const mask of [...masks, new Array<boolean>(targets.length).fill(true)]) {
              const exclude = subset(targets, mask);
              for (const key of keys) {
                const t = b.pick(ctx(key, exclude));
                if (exclude.size === targets.length) {
                  assert.equal(t, undefined, `${algorithm}: all excluded`);
                  continue;
                }
                assert.ok(t !== undefined && targets.includes(t), `${algorithm}: no target`);
                assert.ok(!exclude.has(t), `${algorithm} returned an excluded backend`);
                t.active++;
              }
            }
          }
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });
});

describe('round_robin', () => {
  it('cycles through every backend in order, ignoring weight', () => {
    fc.assert(
      fc.property(weightsArb(1, 10, 10), (weights) => {
        const targets = makeTargets(weights);
        const b = createBalancer('round_robin', targets);
        const start = targets.indexOf(b.pick(ctx(''))!);
        for (let k = 1; k <= 3 * targets.length; k++) {
          assert.equal(b.pick(ctx('')), targets[(start + k) % targets.length]);
        }
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  // Model: a cursor; a pick takes the first backend from the cursor on that is not excluded
  // and moves the cursor past it; with everything excluded it returns undefined, cursor kept.
  it('goes on to the next backend not excluded, and continues its cycle after it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(MASK, { minLength: 1, maxLength: 30 }),
        (n, masks) => {
          const targets = makeTargets(new Array<number>(n).fill(1));
          const b = createBalancer('round_robin', targets);
          let cursor = (targets.indexOf(b.pick(ctx(''))!) + 1) % n;
          for (const m of masks) {
            const exclude = subset(targets, m);
            let expected: number | undefined;
            for (let k = 0; k < n && expected === undefined; k++) {
              if (!exclude.has(targets[(cursor + k) % n]!)) expected = (cursor + k) % n;
            }
            const t = b.pick(ctx('', exclude));
            if (expected === undefined) {
              assert.equal(t, undefined);
              continue;
            }
            assert.equal(t, targets[expected]);
            cursor = (expected + 1) % n;
          }
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });
});

describe('weighted_round_robin', () => {
  it('weights 5,1,1 give nginx smooth order a a b a c a a', () => {
    const targets = makeTargets([5, 1, 1]);
    const b = createBalancer('weighted_round_robin', targets);
    const names = Array.from({ length: 14 }, () => 'abc'[targets.indexOf(b.pick(ctx(''))!)]).join('');
    assert.equal(names, 'aabacaa'.repeat(2));
  });

  // Every cycle of Σw picks contains each backend exactly w times (after a cycle all current
  // weights are back to 0, so the sequence is periodic). Smoothness: a backend with weight w
  // among total W has only W−w other picks to separate its w picks, so its longest cyclic run
  // is at least ceil(w/(W−w)); smooth WRR stays within twice that (checked exhaustively for
  // N ≤ 4, w ≤ 20 and on random N ≤ 10, w ≤ 200 when choosing it), while plain WRR runs w long.
  it('gives each backend exactly its weight per cycle, in short runs', () => {
    fc.assert(
      fc.property(weightsArb(1, 8, 20), (weights) => {
        const targets = makeTargets(weights);
        const b = createBalancer('weighted_round_robin', targets);
        const total = sum(weights);
        const cycles = Array.from({ length: 3 }, () =>
          Array.from({ length: total }, () => targets.indexOf(b.pick(ctx(''))!)),
        );
        for (const cycle of cycles) {
          const counts = new Array<number>(weights.length).fill(0);
          for (const i of cycle) counts[i]!++;
          assert.deepEqual(counts, weights);
          assert.deepEqual(cycle, cycles[0]);
        }
        const twice = [...cycles[0]!, ...cycles[0]!];
        weights.forEach((w, i) => {
          if (w === total) return;
          let run = 0;
          let longest = 0;
          for (const j of twice) {
            run = j === i ? run + 1 : 0;
            longest = Math.max(longest, run);
          }
          const bound = 2 * Math.ceil(w / (total - w));
          assert.ok(longest <= bound, `weights ${weights}: backend ${i} ran ${longest} > ${bound}`);
        });
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  // As nginx skips tried peers: an excluded backend gets no weight added and is left out of the
  // total, so a backend excluded from every pick leaves the others exactly their own smooth order.
  it('with a backend excluded from every pick, the rest follow their own smooth order', () => {
    fc.assert(
      fc.property(weightsArb(2, 8, 20), fc.nat(), (weights, r) => {
        const targets = makeTargets(weights);
        const out = r % targets.length;
        const exclude = new Set([targets[out]!]);
        const rest = targets.filter((_, i) => i !== out);
        const b = createBalancer('weighted_round_robin', targets);
        const alone = createBalancer('weighted_round_robin', rest);
        for (let k = 0; k < 2 * (sum(weights) - weights[out]!); k++) {
          assert.equal(b.pick(ctx('', exclude)), alone.pick(ctx('')));
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('a pick with every backend excluded changes nothing; exclusion never changes the totals', () => {
    fc.assert(
      fc.property(weightsArb(1, 8, 10), fc.array(MASK, { minLength: 1, maxLength: 40 }), (weights, masks) => {
        const targets = makeTargets(weights);
        const b = createBalancer('weighted_round_robin', targets);
        const twin = createBalancer('weighted_round_robin', targets);
        const all = new Set(targets);
        for (let k = 0; k < sum(weights); k++) {
          assert.equal(b.pick(ctx('', all)), undefined);
          assert.equal(b.pick(ctx('')), twin.pick(ctx('')));
        }
        // After T more picks, count_i = (T·w_i + c_i(before) − c_i(after)) / W exactly, where c
        // are the current weights. Exclusions keep Σc = 0, and we measured |c_i| < W throughout
        // (3000 random sequences of 3000 picks with random exclusions), so over whole cycles each
        // backend is off its weight by less than 2 picks.
        for (const m of masks) b.pick(ctx('', subset(targets, m)));
        const cycles = 20;
        const counts = new Array<number>(targets.length).fill(0);
        for (let k = 0; k < cycles * sum(weights); k++) counts[targets.indexOf(b.pick(ctx(''))!)]!++;
        weights.forEach((w, i) => {
          assert.ok(
            Math.abs(counts[i]! - cycles * w) < 2,
            `weights ${weights}: backend ${i} got ${counts[i]} in ${cycles} cycles`,
          );
        });
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});

describe('least_connections', () => {
  /** a/wa ≤ b/wb without floating point. */
  const loadLe = (a: BackendTarget, b: BackendTarget) => a.active * b.weight <= b.active * a.weight;

  it('picks a backend with the minimum active/weight', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 10, 4),
        fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 10 }),
        (weights, actives) => {
          const targets = makeTargets(weights, actives);
          const picked = createBalancer('least_connections', targets).pick(ctx(''))!;
          for (const t of targets) assert.ok(loadLe(picked, t), 'picked a backend above the minimum');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('rotates through tied minima instead of always taking the first', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 10, 3),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 10 }),
        (weights, actives) => {
          const targets = makeTargets(weights, actives);
          const min = targets.find((t) => targets.every((u) => loadLe(t, u)))!;
          const tied = targets.filter((t) => loadLe(t, min));
          const b = createBalancer('least_connections', targets);
          const first = Array.from({ length: tied.length }, () => b.pick(ctx(''))!);
          const second = Array.from({ length: tied.length }, () => b.pick(ctx(''))!);
          assert.equal(new Set(first).size, tied.length, 'each tied backend once per round');
          assert.deepEqual(new Set(first), new Set(tied));
          assert.deepEqual(second, first);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  // Invariant: picking a minimum and incrementing it keeps (a_i − 1)/w_i ≤ a_j/w_j for all i, j.
  it('keeps active/weight balanced to within one request under load', () => {
    fc.assert(
      fc.property(weightsArb(1, 8, 5), (weights) => {
        const targets = makeTargets(weights);
        const b = createBalancer('least_connections', targets);
        for (let k = 0; k < 200; k++) {
          b.pick(ctx(''))!.active++;
          for (const t of targets) {
            for (const u of targets) {
              assert.ok((t.active - 1) * u.weight <= u.active * t.weight, 'imbalance beyond one request');
            }
          }
        }
      }),
      { seed: SEED, numRuns: 50 },
    );
  });

  it('a pick with every backend excluded leaves the tie rotation where it was', () => {
    for (let run = 0; run < 20; run++) {
      const targets = makeTargets([1, 1, 1, 1, 1]);
      const b = createBalancer('least_connections', targets);
      const first = targets.indexOf(b.pick(ctx(''))!);
      assert.equal(b.pick(ctx('', new Set(targets))), undefined);
      assert.equal(targets.indexOf(b.pick(ctx(''))!), (first + 1) % targets.length);
    }
  });

  it('picks the minimum active/weight among the backends not excluded, rotating ties', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 10, 3),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 10 }),
        MASK,
        (weights, actives, m) => {
          const targets = makeTargets(weights, actives);
          const exclude = subset(targets, m);
          const rest = targets.filter((t) => !exclude.has(t));
          const b = createBalancer('least_connections', targets);
          if (rest.length === 0) {
            assert.equal(b.pick(ctx('', exclude)), undefined);
            return;
          }
          const min = rest.find((t) => rest.every((u) => loadLe(t, u)))!;
          const tied = rest.filter((t) => loadLe(t, min));
          const first = Array.from({ length: tied.length }, () => b.pick(ctx('', exclude))!);
          assert.deepEqual(new Set(first), new Set(tied), 'each tied backend once per round');
          assert.deepEqual(
            Array.from({ length: tied.length }, () => b.pick(ctx('', exclude))!),
            first,
          );
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('random', () => {
  it('picks each backend with probability weight/Σweight', () => {
    const trials = 50_000;
    fc.assert(
      fc.property(fc.oneof(weightsArb(2, 8, 10), fc.constant([3, 3, 3, 3, 3])), (weights) => {
        const targets = makeTargets(weights);
        const b = createBalancer('random', targets);
        const total = sum(weights);
        const counts = countPicks(b, targets, new Array<string>(trials).fill(''));
        assertShares(
          counts,
          weights.map((w) => w / total),
          trials,
          `random ${weights}`,
        );
      }),
      { seed: SEED, numRuns: 8 },
    );
  });

  it('with some excluded, picks each other backend with probability weight/Σ(their weights)', () => {
    const trials = 40_000;
    fc.assert(
      fc.property(weightsArb(3, 8, 10), MASK, (weights, m) => {
        const targets = makeTargets(weights);
        const exclude = subset(targets, m);
        fc.pre(exclude.size > 0 && exclude.size < targets.length);
        const b = createBalancer('random', targets);
        const left = sum(weights.filter((_, i) => !exclude.has(targets[i]!)));
        const counts = countPicks(b, targets, new Array<string>(trials).fill(''), exclude);
        assertShares(
          counts,
          weights.map((w, i) => (exclude.has(targets[i]!) ? 0 : w / left)),
          trials,
          `random ${weights} excluding ${[...exclude].map((t) => t.id)}`,
        );
      }),
      { seed: SEED, numRuns: 6 },
    );
  });
});

describe('p2c', () => {
  const ratio = (t: BackendTarget) => t.active / t.weight;

  it('with two backends always picks the less loaded one', () => {
    fc.assert(
      fc.property(
        weightsArb(2, 2, 5),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 2, maxLength: 2 }),
        (weights, actives) => {
          const targets = makeTargets(weights, actives);
          fc.pre(ratio(targets[0]!) !== ratio(targets[1]!));
          const lower = ratio(targets[0]!) < ratio(targets[1]!) ? targets[0] : targets[1];
          const b = createBalancer('p2c', targets);
          for (let k = 0; k < 20; k++) assert.equal(b.pick(ctx('')), lower);
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });

  // The two candidates are distinct and the winner is no more loaded than the loser, so a
  // backend strictly more loaded than every other can never win.
  it('never picks a unique most-loaded backend', () => {
    fc.assert(
      fc.property(
        weightsArb(2, 10, 5),
        fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 10, maxLength: 10 }),
        (weights, actives) => {
          const targets = makeTargets(weights, actives);
          const worst = targets.filter((t) => targets.every((u) => u === t || ratio(t) > ratio(u)));
          const b = createBalancer('p2c', targets);
          for (let k = 0; k < 50; k++)
            assert.ok(!worst.includes(b.pick(ctx(''))!), 'picked the most loaded backend');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  // With one idle backend i and the rest busy, i wins exactly when it is one of the candidates:
  // P = w_i/W (first draw) + Σ_{j≠i} (w_j/W)·(w_i/(W − w_j)) (second draw without replacement).
  // With all idle the first candidate wins ties, so shares are w_i/W.
  it('samples two distinct candidates in proportion to weight', () => {
    const trials = 20_000;
    fc.assert(
      fc.property(weightsArb(3, 6, 5), (weights) => {
        const total = sum(weights);
        const inPair = weights.map(
          (wi, i) =>
            wi / total + sum(weights.map((wj, j) => (j === i ? 0 : (wj / total) * (wi / (total - wj))))),
        );
        const idleWins = weights.map((_, i) => {
          const targets = makeTargets(
            weights,
            weights.map((_, j) => (j === i ? 0 : 1_000)),
          );
          return countPicks(createBalancer('p2c', targets), targets, new Array<string>(trials).fill(''))[i]!;
        });
        assertShares(idleWins, inPair, trials, `p2c candidate pairs ${weights}`);
        const idle = makeTargets(weights);
        assertShares(
          countPicks(createBalancer('p2c', idle), idle, new Array<string>(trials).fill('')),
          weights.map((w) => w / total),
          trials,
          `p2c idle shares ${weights}`,
        );
      }),
      { seed: SEED, numRuns: 5 },
    );
  });

  // K = 200k requests (never released) over N = 100 equal backends, mean 2000 each.
  // p2c: the max-load gap is ln ln N / ln 2 + O(1) ≈ 2.2 + O(1) w.h.p. with doubly exponential
  // tails (Berenbrink et al. 2006); 300 trial runs never exceeded 3, so ≤ 8 is a wide margin.
  // random: counts are Binomial(K, 1/N), σ ≈ 44.5, and negatively associated, so
  // P(max < mean + 20) ≤ P(X < mean + 0.45σ)^N ≈ 0.674^100 ≈ 7e-18.
  it('spreads load far more evenly than random under simulated load', () => {
    const n = 100;
    const requests = 200_000;
    const gap = (algorithm: Algorithm) => {
      const targets = makeTargets(new Array<number>(n).fill(1));
      const b = createBalancer(algorithm, targets);
      for (let k = 0; k < requests; k++) b.pick(ctx(''))!.active++;
      return Math.max(...targets.map((t) => t.active)) - requests / n;
    };
    const p2cGap = gap('p2c');
    const randomGap = gap('random');
    assert.ok(p2cGap <= 8, `p2c max load exceeds the mean by ${p2cGap}`);
    assert.ok(randomGap >= 20, `random max load exceeds the mean by only ${randomGap}`);
  });

  it('balances load per unit of weight when weights differ', () => {
    const weights = Array.from({ length: 20 }, (_, i) => 1 + (i % 5));
    const targets = makeTargets(weights);
    const b = createBalancer('p2c', targets);
    const requests = 60_000;
    for (let k = 0; k < requests; k++) b.pick(ctx(''))!.active++;
    const mean = requests / sum(weights);
    for (const t of targets) assert.ok(t.active / t.weight - mean <= 8, `${t.id}: ${t.active}/${t.weight}`);
  });

  // The same two draws without replacement, among the backends not excluded: the formula
  // above with W the weight left.
  it('with some excluded, samples its two candidates among the rest by weight', () => {
    const trials = 20_000;
    fc.assert(
      fc.property(weightsArb(4, 7, 5), MASK, (weights, m) => {
        const all = makeTargets(weights);
        const exclude = subset(all, m);
        fc.pre(exclude.size > 0 && all.length - exclude.size >= 3);
        const live = weights.map((_, i) => !exclude.has(all[i]!));
        const total = sum(weights.filter((_, i) => live[i]));
        const inPair = weights.map((wi, i) =>
          live[i]
            ? wi / total +
              sum(weights.map((wj, j) => (j === i || !live[j] ? 0 : (wj / total) * (wi / (total - wj)))))
            : 0,
        );
        const idleWins = weights.map((_, i) => {
          const targets = makeTargets(
            weights,
            weights.map((_, j) => (j === i ? 0 : 1_000)),
          );
          const ex = subset(targets, m);
          return countPicks(createBalancer('p2c', targets), targets, new Array<string>(trials).fill(''), ex)[
            i
          ]!;
        });
        assertShares(idleWins, inPair, trials, `p2c candidate pairs ${weights} mask ${m}`);
        assertShares(
          countPicks(createBalancer('p2c', all), all, new Array<string>(trials).fill(''), exclude),
          weights.map((w, i) => (live[i] ? w / total : 0)),
          trials,
          `p2c idle shares ${weights} mask ${m}`,
        );
      }),
      { seed: SEED, numRuns: 4 },
    );
  });

  it('with one backend left returns it, however loaded; never a unique most-loaded among the rest', () => {
    fc.assert(
      fc.property(
        weightsArb(2, 10, 5),
        fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 10, maxLength: 10 }),
        MASK,
        fc.nat(),
        (weights, actives, m, r) => {
          const targets = makeTargets(weights, actives);
          const b = createBalancer('p2c', targets);
          const only = targets[r % targets.length]!;
          const allBut = new Set(targets.filter((t) => t !== only));
          for (let k = 0; k < 5; k++) assert.equal(b.pick(ctx('', allBut)), only);
          const exclude = subset(targets, m);
          const rest = targets.filter((t) => !exclude.has(t));
          const worst = rest.filter((t) => rest.every((u) => u === t || ratio(t) > ratio(u)));
          if (rest.length < 2) return;
          for (let k = 0; k < 30; k++)
            assert.ok(!worst.includes(b.pick(ctx('', exclude))!), 'picked the most loaded backend left');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('ip_hash', () => {
  it('maps the same key to the same backend, whatever the list order', () => {
    fc.assert(
      fc.property(
        weightsArb(1, 10, 10),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 30 }),
        fc.integer(),
        (weights, keys, seed) => {
          const targets = makeTargets(weights);
          const b = createBalancer('ip_hash', targets);
          const again = createBalancer('ip_hash', shuffled(targets, seed));
          for (const k of keys) {
            const t = b.pick(ctx(k));
            assert.equal(b.pick(ctx(k)), t);
            assert.equal(again.pick(ctx(k)), t);
          }
        },
      ),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('spreads clients in proportion to weight (random and adjacent addresses)', () => {
    const clients = 50_000;
    let run = 0;
    fc.assert(
      fc.property(weightsArb(2, 10, 10), (weights) => {
        const targets = makeTargets(weights);
        const b = createBalancer('ip_hash', targets);
        const probs = weights.map((w) => w / sum(weights));
        assertShares(
          countPicks(b, targets, randomIps(clients, ++run)),
          probs,
          clients,
          `random ips ${weights}`,
        );
        assertShares(
          countPicks(b, targets, sequentialIps(clients)),
          probs,
          clients,
          `adjacent ips ${weights}`,
        );
      }),
      { seed: SEED, numRuns: 8 },
    );
  });
});

describe('maglev', () => {
  const owners = (table: ArrayLike<number>, targets: readonly BackendTarget[]) =>
    Array.from(table, (i) => targets[i]!.key);

  const backendKeysArb = (minLength: number, maxLength: number) =>
    fc.uniqueArray(
      fc.ipV4().map((ip) => `lb/pool/${ip}:8080`),
      { minLength, maxLength },
    );

  it('has a 65521-slot table, every slot owned by a given backend', () => {
    assert.equal(MAGLEV_TABLE_SIZE, 65521);
    for (const n of [1, 2, 3, 17, 100]) {
      const table = buildMaglevTable(makeTargets(new Array<number>(n).fill(1)));
      assert.equal(table.length, 65521);
      assert.ok(
        table.every((i) => i < n),
        'a slot without a valid owner',
      );
    }
  });

  // The fill gives backend i min(r, ⌊r·w_i/w_max⌋ + 1) turns by round r, i.e. r·ρ_i + e_i turns
  // with ρ_i = w_i/w_max and |e_i| ≤ 1 (including the partial last round). Since the counts sum
  // to M, count_i − M·w_i/W = e_i − (w_i/W)·Σe, so |count_i − M·w_i/W| ≤ 1 + N·w_i/W: a few slots
  // (≤ 0.3% of M at N = 100), far inside 1% of M.
  it('gives each backend its weight share of slots', () => {
    fc.assert(
      fc.property(
        backendKeysArb(1, 100),
        fc.boolean(),
        fc.integer({ min: 1, max: 10 }),
        (keys, weighted, w) => {
          const weights = keys.map((_, i) => (weighted ? 1 + ((i * w) % 10) : 1));
          const targets = makeTargets(weights, [], keys);
          const table = buildMaglevTable(targets);
          const counts = new Array<number>(keys.length).fill(0);
          for (const i of table) counts[i]!++;
          const total = sum(weights);
          weights.forEach((wi, i) => {
            const error = Math.abs(counts[i]! - (M * wi) / total);
            assert.ok(
              error <= 1 + (keys.length * wi) / total,
              `backend ${i}: ${counts[i]} slots, off by ${error}`,
            );
            assert.ok(error <= 0.01 * M, `backend ${i} off by more than 1% of M`);
          });
        },
      ),
      { seed: SEED, numRuns: 30 },
    );
  });

  it('maps the same key to the same backend, whatever the list order', () => {
    fc.assert(
      fc.property(
        backendKeysArb(1, 20),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 30 }),
        fc.integer(),
        (keys, clients, seed) => {
          const targets = makeTargets(
            keys.map((_, i) => 1 + (i % 3)),
            [],
            keys,
          );
          const reordered = shuffled(targets, seed);
          assert.deepEqual(
            owners(buildMaglevTable(reordered), reordered),
            owners(buildMaglevTable(targets), targets),
          );
          const b = createBalancer('maglev', targets);
          const again = createBalancer('maglev', reordered);
          for (const k of clients) {
            const t = b.pick(ctx(k));
            assert.equal(b.pick(ctx(k)), t);
            assert.equal(again.pick(ctx(k)), t);
          }
        },
      ),
      { seed: SEED, numRuns: 50 },
    );
  });

  // Removing backend r must move its own share w_r/W of keys, plus some collateral: Maglev is
  // not minimally disruptive, since r's freed slots shift the others' permutation walks. For
  // N = 2..100 with M = 65521 we measured at most 0.9% of the surviving slots changing owner
  // (300 random sets, equal and 1..10 weights); 2% is the bound asserted. The client sample then
  // adds Bernstein slack for estimating those slot fractions from 20k keys.
  it('moves only ~1/N of keys when a backend leaves, and restores them when it returns', () => {
    const clients = randomIps(20_000, 7);
    const collateralBound = 0.02;
    fc.assert(
      fc.property(
        backendKeysArb(3, 100),
        fc.boolean(),
        fc.nat(),
        fc.integer(),
        (keys, weighted, removedSeed, seed) => {
          const weights = keys.map((_, i) => (weighted ? 1 + ((i * 7) % 10) : 1));
          const total = sum(weights);
          const all = makeTargets(weights, [], keys);
          const r = removedSeed % all.length;
          const rest = all.filter((_, i) => i !== r);
          const ownR = weights[r]! / total;

          const before = owners(buildMaglevTable(all), all);
          const after = owners(buildMaglevTable(rest), rest);
          let slotsOfR = 0;
          let collateral = 0;
          for (let s = 0; s < M; s++) {
            if (before[s] === all[r]!.key) slotsOfR++;
            else if (before[s] !== after[s]) collateral++;
          }
          const collateralShare = collateral / (M - slotsOfR);
          assert.ok(collateralShare <= collateralBound, `collateral ${collateralShare} with N=${all.length}`);

          const full = createBalancer('maglev', all);
          const reduced = createBalancer('maglev', rest);
          let moved = 0;
          let survivors = 0;
          let survivorsMoved = 0;
          for (const c of clients) {
            const was = full.pick(ctx(c))!;
            const now = reduced.pick(ctx(c))!;
            assert.notEqual(now, all[r]);
            if (was !== now) moved++;
            if (was !== all[r]) {
              survivors++;
              if (was !== now) survivorsMoved++;
            }
          }
          const movedShare = ownR + collateralBound;
          assert.ok(
            moved <= clients.length * movedShare + bernstein(clients.length, movedShare),
            `${moved}/${clients.length} clients moved, backend share ${ownR}`,
          );
          assert.ok(
            survivorsMoved <= survivors * collateralBound + bernstein(survivors, collateralBound),
            `${survivorsMoved}/${survivors} clients of surviving backends moved`,
          );

          const back = shuffled([...rest, all[r]!], seed);
          assert.deepEqual(owners(buildMaglevTable(back), back), before, 'adding it back restores the table');
        },
      ),
      { seed: SEED, numRuns: 12 },
    );
  });
});

for (const algorithm of ['ip_hash', 'maglev'] as const) {
  describe(`${algorithm} with exclude`, () => {
    const clients = randomIps(20_000, 29);

    // Ideal-hash model: each rehash is an independent draw by share, so the keys of the
    // excluded backends land on backend j with probability share_j / Σ(shares left), where a
    // share is w_j/W for ip_hash and j's fraction of table slots for maglev.
    it('moves only the keys of excluded backends, spread by weight over the rest', () => {
      let run = 0;
      fc.assert(
        fc.property(weightsArb(2, 12, 10), MASK, fc.integer(), (weights, m, seed) => {
          const targets = makeTargets(
            weights,
            [],
            weights.map((_, i) => `lb/pool/10.9.${run}.${i}:80`),
          );
          run++;
          const exclude = subset(targets, m);
          fc.pre(exclude.size > 0 && exclude.size < targets.length);
          const b = createBalancer(algorithm, targets);
          const reordered = createBalancer(algorithm, shuffled(targets, seed));
          let shares = weights.map((w) => w / sum(weights));
          if (algorithm === 'maglev') {
            const slots = new Array<number>(targets.length).fill(0);
            for (const i of buildMaglevTable(targets)) slots[i]!++;
            shares = slots.map((c) => c / M);
          }
          const left = sum(shares.filter((_, i) => !exclude.has(targets[i]!)));
          const movedTo = new Array<number>(targets.length).fill(0);
          let moved = 0;
          for (const c of clients) {
            const was = b.pick(ctx(c))!;
            const now = b.pick(ctx(c, exclude))!;
            assert.ok(!exclude.has(now), 'an excluded backend');
            assert.equal(reordered.pick(ctx(c, exclude)), now, 'depends on the list order');
            if (!exclude.has(was)) {
              assert.equal(now, was, 'a key of a backend not excluded moved');
              continue;
            }
            moved++;
            movedTo[targets.indexOf(now)]!++;
          }
          assertShares(
            movedTo,
            shares.map((sh, i) => (exclude.has(targets[i]!) ? 0 : sh / left)),
            moved,
            `${algorithm} ${weights} excluding ${[...exclude].map((t) => t.id)}`,
          );
        }),
        { seed: SEED, numRuns: 10 },
      );
    });

    // Excluding one more backend moves only the keys on it, save the keys whose every rehash
    // hit an excluded backend (rehashFallback): at most a share (excluded weight)^(1 + 8) each.
    it('excluding one more backend moves only the keys that were on it', () => {
      fc.assert(
        fc.property(weightsArb(3, 10, 10), MASK, fc.nat(), (weights, m, r) => {
          const targets = makeTargets(weights);
          const smaller = subset(targets, m);
          const extra = targets.filter((t) => !smaller.has(t));
          fc.pre(extra.length >= 2);
          const larger = new Set([...smaller, extra[r % extra.length]!]);
          const b = createBalancer(algorithm, targets);
          const excludedShare = sum([...larger].map((t) => t.weight)) / sum(weights);
          const q = Math.min(1, 2 * excludedShare ** 9);
          let changed = 0;
          for (const c of clients) {
            const before = b.pick(ctx(c, smaller))!;
            const after = b.pick(ctx(c, larger))!;
            assert.ok(!larger.has(after), 'an excluded backend');
            if (!larger.has(before) && after !== before) changed++;
          }
          assert.ok(
            changed <= clients.length * q + bernstein(clients.length, q),
            `${changed} keys moved off backends that stayed (fallback share ${q})`,
          );
        }),
        { seed: SEED, numRuns: 20 },
      );
    });
  });
}

describe('PoolRuntime', () => {
  const LB = 'lb1';
  const pool = (
    algorithm: Algorithm,
    backends: ReadonlyArray<[id: string, weight: number, adminState: AdminState, address?: string]>,
  ): PoolConfig => ({
    name: 'web',
    algorithm,
    proxyProtocol: undefined,
    healthCheck: undefined,
    maxQueue: 1024,
    queueTimeoutMs: 5000,
    tls: undefined,
    http2: false,
    retry: DEFAULT_RETRY,
    outlierDetection: undefined,
    panicThreshold: 0,
    slowStartMs: 0,
    backends: backends.map(([id, weight, adminState, address]) => ({
      id,
      address: address ?? `10.0.0.${id.charCodeAt(0)}`,
      port: 80,
      weight,
      adminState,
      maxConnections: 0,
      maxRequests: 0,
    })),
  });
  const key = (id: string) => backendKey(LB, 'web', id);
  const clients = randomIps(600, 11);
  const picked = (p: PoolRuntime) => new Set(clients.map((c) => p.pick(ctx(c))?.id));

  it('never picks drained, disabled or down backends; setHealth changes picks', () => {
    for (const algorithm of ALGORITHMS) {
      const config = pool(algorithm, [
        ['a', 1, 'enabled'],
        ['b', 1, 'drain'],
        ['c', 1, 'disabled'],
        ['d', 2, 'enabled'],
        ['e', 1, 'enabled'],
      ]);
      const p = new PoolRuntime(LB, config, new Set([key('e')]));
      assert.equal(p.availableCount(), 2, algorithm);
      assert.deepEqual(picked(p), new Set(['a', 'd']), algorithm);

      p.setHealth(new Set());
      assert.equal(p.availableCount(), 3, algorithm);
      assert.deepEqual(picked(p), new Set(['a', 'd', 'e']), algorithm);

      p.setHealth(new Set([key('a'), key('d')]));
      assert.deepEqual(picked(p), new Set(['e']), algorithm);

      p.setHealth(new Set([key('a'), key('d'), key('e')]));
      assert.equal(p.availableCount(), 0, algorithm);
      assert.equal(p.pick(ctx('192.0.2.1')), undefined, algorithm);
      assert.equal(p.targets.length, 5, 'targets keeps every configured backend');
    }
  });

  /** The same pool as a reload delivers it: equal, but every object new. */
  const reparsed = (c: PoolConfig): PoolConfig => structuredClone(c);
  const base = (algorithm: Algorithm) =>
    pool(algorithm, [
      ['a', 1, 'enabled'],
      ['b', 2, 'enabled'],
      ['c', 1, 'enabled'],
      ['d', 3, 'enabled'],
      ['e', 1, 'enabled'],
    ]);

  it('keeps its balancer across reloads that leave the pool alone; round robin goes on with its cycle', () => {
    const config = base('round_robin');
    let p = new PoolRuntime(LB, config, new Set());
    const balancer = p.balancer;
    assert.equal(typeof balancer.pick, 'function');
    const order = p.targets.map((t) => t.id);
    let last = order.indexOf(p.pick(ctx(''))!.id);
    // A fresh balancer starts at a random backend: 12 reloads all continuing the cycle by
    // chance has probability 5^-12.
    for (let k = 0; k < 12; k++) {
      p = new PoolRuntime(LB, reparsed(config), new Set(), p);
      assert.equal(p.balancer, balancer, 'rebuilt on an unchanged reload');
      const now = order.indexOf(p.pick(ctx(''))!.id);
      assert.equal(now, (last + 1) % order.length, 'round robin restarted');
      last = now;
    }
    // What the balancer does not read (health check, PROXY protocol) does not rebuild it.
    const other: PoolConfig = {
      ...reparsed(config),
      proxyProtocol: 'v2',
      healthCheck: {
        type: 'tcp',
        path: '/',
        method: 'GET',
        host: undefined,
        expectStatus: [{ from: 200, to: 399 }],
        bodyContains: undefined,
        intervalMs: 1000,
        timeoutMs: 500,
        jitterMs: 0,
        rise: 2,
        fall: 3,
      },
    };
    p = new PoolRuntime(LB, other, new Set(), p);
    assert.equal(p.balancer, balancer, 'rebuilt for a field the balancer does not use');
  });

  it('keeps the maglev table across an unchanged reload and rebuilds on each real change', () => {
    const config = base('maglev');
    const first = new PoolRuntime(LB, config, new Set());
    const same = new PoolRuntime(LB, reparsed(config), new Set(), first);
    assert.equal(same.balancer, first.balancer);
    const changes: Array<[string, PoolConfig]> = [
      ['algorithm', { ...reparsed(config), algorithm: 'ip_hash' }],
      [
        'weight',
        pool('maglev', [
          ['a', 1, 'enabled'],
          ['b', 3, 'enabled'],
          ['c', 1, 'enabled'],
          ['d', 3, 'enabled'],
          ['e', 1, 'enabled'],
        ]),
      ],
      [
        'backend added',
        pool('maglev', [
          ['a', 1, 'enabled'],
          ['b', 2, 'enabled'],
          ['c', 1, 'enabled'],
          ['d', 3, 'enabled'],
          ['e', 1, 'enabled'],
          ['f', 1, 'enabled'],
        ]),
      ],
      [
        'backend removed',
        pool('maglev', [
          ['a', 1, 'enabled'],
          ['b', 2, 'enabled'],
          ['c', 1, 'enabled'],
          ['d', 3, 'enabled'],
        ]),
      ],
      [
        'drained',
        pool('maglev', [
          ['a', 1, 'enabled'],
          ['b', 2, 'drain'],
          ['c', 1, 'enabled'],
          ['d', 3, 'enabled'],
          ['e', 1, 'enabled'],
        ]),
      ],
      [
        'address',
        pool('maglev', [
          ['a', 1, 'enabled'],
          ['b', 2, 'enabled'],
          ['c', 1, 'enabled', '192.0.2.9'],
          ['d', 3, 'enabled'],
          ['e', 1, 'enabled'],
        ]),
      ],
      [
        'order',
        pool('maglev', [
          ['b', 2, 'enabled'],
          ['a', 1, 'enabled'],
          ['c', 1, 'enabled'],
          ['d', 3, 'enabled'],
          ['e', 1, 'enabled'],
        ]),
      ],
    ];
    for (const [what, changed] of changes) {
      const next = new PoolRuntime(LB, changed, new Set(), same);
      assert.notEqual(next.balancer, same.balancer, `not rebuilt for: ${what}`);
      // The rebuilt balancer serves the new config, not the old one.
      const available = next.targets.filter((_, i) => changed.backends[i]!.adminState === 'enabled');
      for (const c of clients) assert.ok(available.includes(next.pick(ctx(c))!), what);
    }
  });

  it('a health change rebuilds only the balancers whose available backends it changes', () => {
    for (const algorithm of ALGORITHMS) {
      const p = new PoolRuntime(LB, base(algorithm), new Set());
      const before = p.balancer;
      p.setHealth(new Set([backendKey(LB, 'other-pool', 'a'), 'lb1/web/zz']));
      assert.equal(p.balancer, before, `${algorithm}: rebuilt for another pool's health`);
      p.setHealth(new Set([key('b')]));
      const down = p.balancer;
      assert.notEqual(down, before, `${algorithm}: not rebuilt when b went down`);
      assert.ok(!picked(p).has('b'), algorithm);
      p.setHealth(new Set([key('b'), 'lb1/web/zz']));
      assert.equal(p.balancer, down, algorithm);
      p.setHealth(new Set());
      assert.notEqual(p.balancer, down, `${algorithm}: not rebuilt when b came back`);
      assert.ok(picked(p).has('b'), algorithm);
    }
  });

  it('a reload keeps the balancer while the down set is unchanged, and rebuilds when it changed', () => {
    // The registry builds the next snapshot's pools with its current down set: the previous
    // balancer already reflects it, so it is kept.
    const down = new Set([key('c')]);
    const first = new PoolRuntime(LB, base('least_connections'), down);
    const next = new PoolRuntime(LB, reparsed(base('least_connections')), down, first);
    assert.equal(next.balancer, first.balancer);
    assert.equal(next.availableCount(), 4);
    const up = new PoolRuntime(LB, reparsed(base('least_connections')), new Set(), next);
    assert.notEqual(up.balancer, next.balancer);
    assert.equal(up.availableCount(), 5);
  });

  it('carries in-flight counts over a reload, and releases of old picks land on them', () => {
    const config = pool('least_connections', [
      ['a', 1, 'enabled'],
      ['b', 1, 'enabled'],
      ['c', 1, 'enabled'],
    ]);
    const first = new PoolRuntime(LB, config, new Set());
    const [a, b] = first.targets as BackendTarget[];
    for (let k = 0; k < 3; k++) first.acquire(a!);
    first.acquire(b!);

    const second = new PoolRuntime(LB, config, new Set(), first);
    assert.deepEqual(
      second.targets.map((t) => t.active),
      [3, 1, 0],
    );
    assert.equal(second.pick(ctx(''))?.id, 'c');

    // A request picked before the reload finishes after it.
    first.release(a!);
    second.release(a!);
    second.release(a!);
    assert.equal(second.targets[0]!.active, 0);
    second.release(a!);
    assert.equal(second.targets[0]!.active, 0, 'never negative');

    // Weight changes apply; a backend moved to a new address starts from zero.
    const third = new PoolRuntime(
      LB,
      pool('least_connections', [
        ['a', 1, 'enabled'],
        ['b', 4, 'enabled', '192.0.2.50'],
        ['c', 3, 'enabled'],
      ]),
      new Set(),
      second,
    );
    assert.deepEqual(
      third.targets.map((t) => [t.active, t.weight]),
      [
        [0, 1],
        [0, 4],
        [0, 3],
      ],
    );
    assert.equal(b!.active, 1, 'the old address keeps its own in-flight count');
    for (let k = 0; k < 80; k++) third.acquire(third.pick(ctx(''))!);
    assert.deepEqual(
      third.targets.map((t) => t.active),
      [10, 40, 30],
    );
    // A new port is a different server too.
    const moved = pool('least_connections', [
      ['a', 1, 'enabled'],
      ['b', 4, 'enabled', '192.0.2.50'],
      ['c', 3, 'enabled'],
    ]);
    const held = new PoolRuntime(LB, moved, new Set(), third);
    held.acquire(held.targets[0]!);
    const portChanged = new PoolRuntime(
      LB,
      { ...moved, backends: moved.backends.map((x, i) => (i === 0 ? { ...x, port: 81 } : x)) },
      new Set(),
      held,
    );
    assert.equal(portChanged.targets[0]!.active, 0, 'a backend on a new port starts from zero');
    assert.equal(portChanged.targets[1], held.targets[1], 'an unchanged backend keeps its object');
  });
});

// One pool as the data plane sees it: its backends as BackendTargets and a Balancer over the
// ones that may take new traffic (admin_state enabled and not marked down by health).
// Config and health are separate inputs: setHealth() touches only the balancer.
//
// A balancer is rebuilt only when what it was built from changed: the algorithm, the available
// backends (by identity) or their weights. So a reload that leaves a pool alone, or a health
// change in another pool, keeps its balancer — maglev's 65521-slot table is not recomputed and
// round robin goes on with its cycle instead of restarting it at a random backend.

import { backendKey, type PoolConfig } from '../../config/model.ts';
import { createBalancer } from './balancer/index.ts';
import type { Algorithm, BackendTarget, Balancer, PickContext } from './balancer/types.ts';

type MutableTarget = { -readonly [K in keyof BackendTarget]: BackendTarget[K] };

/** A balancer and everything it was built from. */
interface Built {
  readonly algorithm: Algorithm;
  readonly targets: readonly BackendTarget[];
  /** The targets' weights at build time: a reload updates `weight` in place. */
  readonly weights: readonly number[];
  readonly balancer: Balancer;
}

export class PoolRuntime {
  readonly name: string;
  readonly config: PoolConfig;
  /** All backends of the pool, including drained/disabled ones. */
  readonly targets: readonly BackendTarget[];
  /** The same array as `targets`, writable so the next snapshot can update weights in place. */
  private readonly own: MutableTarget[];
  private built: Built;

  /**
   * `previous` (the same pool in the last snapshot) lets in-flight counts carry over, so
   * least_connections stays accurate across a reload, and lets an unchanged pool keep its
   * balancer.
   */
  constructor(lbName: string, config: PoolConfig, down: ReadonlySet<string>, previous?: PoolRuntime) {
    this.name = config.name;
    this.config = config;
    const prior = new Map(previous?.own.map((t) => [t.key, t]));
    this.own = config.backends.map((b) => {
      const key = backendKey(lbName, config.name, b.id);
      const old = prior.get(key);
      // Carry the count over by reusing the object itself: work in flight across the reload
      // releases the object it acquired, so a copy would keep those requests counted forever.
      // A new address is a different server, whose in-flight count starts at 0.
      if (old && old.address === b.address && old.port === b.port) {
        old.weight = b.weight;
        return old;
      }
      return { key, id: b.id, address: b.address, port: b.port, weight: b.weight, active: 0 };
    });
    this.targets = this.own;
    this.built = this.build(down, previous?.built);
  }

  /** Health changed: rebuild the balancer if this pool's available backends changed. */
  setHealth(down: ReadonlySet<string>): void {
    this.built = this.build(down, this.built);
  }

  /** Backends that can take new traffic right now. */
  availableCount(): number {
    return this.built.targets.length;
  }

  /** The current balancer (kept across reloads and health changes that do not affect it). */
  get balancer(): Balancer {
    return this.built.balancer;
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    return this.built.balancer.pick(ctx);
  }

  acquire(t: BackendTarget): void {
    t.active++;
  }

  release(t: BackendTarget): void {
    // Clamped: a stray extra release must not make a backend look idler than idle.
    if (t.active > 0) t.active--;
  }

  private build(down: ReadonlySet<string>, prior: Built | undefined): Built {
    const algorithm = this.config.algorithm;
    const targets = this.targets.filter(
      (t, i) => this.config.backends[i]!.adminState === 'enabled' && !down.has(t.key),
    );
    const weights = targets.map((t) => t.weight);
    if (
      prior !== undefined &&
      prior.algorithm === algorithm &&
      sameItems(prior.targets, targets) &&
      sameItems(prior.weights, weights)
    )
      return prior;
    return { algorithm, targets, weights, balancer: createBalancer(algorithm, targets) };
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

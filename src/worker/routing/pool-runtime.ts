// One pool as the data plane sees it: its backends as BackendTargets and a Balancer over the
// ones that may take new traffic (admin_state enabled and not marked down by health).
// Config and health are separate inputs: setHealth() rebuilds only the balancer.

import { backendKey, type PoolConfig } from '../../config/model.ts';
import { createBalancer } from './balancer/index.ts';
import type { BackendTarget, Balancer, PickContext } from './balancer/types.ts';

type MutableTarget = { -readonly [K in keyof BackendTarget]: BackendTarget[K] };

export class PoolRuntime {
  readonly name: string;
  readonly config: PoolConfig;
  /** All backends of the pool, including drained/disabled ones. */
  readonly targets: readonly BackendTarget[];
  /** The same array as `targets`, writable so the next snapshot can update weights in place. */
  private readonly own: MutableTarget[];
  private balancer: Balancer;
  private available: readonly BackendTarget[] = [];

  /**
   * `previous` (the same pool in the last snapshot) lets in-flight counts carry over, so
   * least_connections stays accurate across a reload.
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
    this.balancer = this.build(down);
  }

  /** Health changed: rebuild the balancer over the now-available backends. */
  setHealth(down: ReadonlySet<string>): void {
    this.balancer = this.build(down);
  }

  /** Backends that can take new traffic right now. */
  availableCount(): number {
    return this.available.length;
  }

  pick(ctx: PickContext): BackendTarget | undefined {
    return this.balancer.pick(ctx);
  }

  acquire(t: BackendTarget): void {
    t.active++;
  }

  release(t: BackendTarget): void {
    // Clamped: a stray extra release must not make a backend look idler than idle.
    if (t.active > 0) t.active--;
  }

  private build(down: ReadonlySet<string>): Balancer {
    this.available = this.targets.filter(
      (t, i) => this.config.backends[i]!.adminState === 'enabled' && !down.has(t.key),
    );
    return createBalancer(this.config.algorithm, this.available);
  }
}

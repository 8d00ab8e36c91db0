// One pool as the data plane sees it: its backends as BackendTargets and a Balancer over the
// ones that may take new traffic (admin_state enabled and not marked down by health).
// Config and health are separate inputs: setHealth() rebuilds only the balancer.

import { backendKey, type PoolConfig } from '../config/model.ts';
import { createBalancer } from './balancer/index.ts';
import type { BackendTarget, Balancer } from './balancer/types.ts';

export class PoolRuntime {
  readonly name: string;
  readonly config: PoolConfig;
  /** All backends of the pool, including drained/disabled ones. */
  readonly targets: readonly BackendTarget[];
  private balancer: Balancer;
  private available: readonly BackendTarget[] = [];

  /**
   * `previous` (the same pool in the last snapshot) lets in-flight counts carry over, so
   * least_connections stays accurate across a reload.
   */
  constructor(lbName: string, config: PoolConfig, down: ReadonlySet<string>, previous?: PoolRuntime) {
    this.name = config.name;
    this.config = config;
    const prior = new Map(previous?.targets.map((t) => [t.key, t]));
    this.targets = config.backends.map((b) => {
      const key = backendKey(lbName, config.name, b.id);
      const old = prior.get(key);
      return { key, id: b.id, address: b.address, port: b.port, weight: b.weight, active: old?.active ?? 0 };
    });
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

  pick(hashKey: string): BackendTarget | undefined {
    return this.balancer.pick(hashKey);
  }

  acquire(t: BackendTarget): void {
    t.active++;
  }

  release(t: BackendTarget): void {
    t.active--;
  }

  private build(down: ReadonlySet<string>): Balancer {
    this.available = this.targets.filter(
      (t, i) => this.config.backends[i]!.adminState === 'enabled' && !down.has(t.key),
    );
    return createBalancer(this.config.algorithm, this.available);
  }
}

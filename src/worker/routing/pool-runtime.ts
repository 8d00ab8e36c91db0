// One pool as the data plane sees it: its backends as BackendTargets and a Balancer over the
// ones that may take new traffic (admin_state enabled and not marked down by health).
// Config and health are separate inputs: setHealth() touches only the balancer.
//
// A balancer is rebuilt only when what it was built from changed: the algorithm, the available
// backends (by identity) or their weights. So a reload that leaves a pool alone, or a health
// change in another pool, keeps its balancer — maglev's 65521-slot table is not recomputed and
// round robin goes on with its cycle instead of restarting it at a random backend.
//
// Panic threshold (Envoy's): when fewer than `panic_threshold`% of the enabled backends are
// healthy, the balancer is built over all enabled ones (down included) — better some errors
// than sending the whole load to the few that are left. Slow start (slow-start.ts) ramps a
// backend that just became available.

import { backendKey, type PoolConfig } from '../../config/model.ts';
import { RetryBudget } from '../upstream/retry.ts';
import { createBalancer } from './balancer/index.ts';
import type { Algorithm, BackendTarget, Balancer, PickContext } from './balancer/types.ts';
import { byKey } from './pick-context.ts';
import { SlowStart } from './slow-start.ts';

/** Algorithms that keep a client on one backend: slow start would move clients around. */
const STICKY: ReadonlySet<Algorithm> = new Set(['ip_hash', 'maglev']);

type MutableTarget = { -readonly [K in keyof BackendTarget]: BackendTarget[K] };

/** A balancer and everything it was built from. */
interface Built {
  readonly algorithm: Algorithm;
  readonly targets: readonly BackendTarget[];
  /** The targets' weights at build time: a reload updates `weight` in place. */
  readonly weights: readonly number[];
  readonly balancer: Balancer;
  /** Built over every enabled backend because too few were healthy. */
  readonly panic: boolean;
}

export class PoolRuntime {
  readonly name: string;
  readonly config: PoolConfig;
  /** All backends of the pool, including drained/disabled ones. */
  readonly targets: readonly BackendTarget[];
  /** The same array as `targets`, writable so the next snapshot can update weights in place. */
  private readonly own: MutableTarget[];
  private built: Built;
  private readonly slow: SlowStart;
  /** Requests and retries in flight, carried across reloads (in-flight work releases it). */
  readonly retryBudget: RetryBudget;

  /**
   * `previous` (the same pool in the last snapshot) lets in-flight counts carry over, so
   * least_connections stays accurate across a reload, and lets an unchanged pool keep its
   * balancer.
   */
  /** Circuit-breaker limits per target for this worker (only targets that have one). */
  private readonly limits: Map<BackendTarget, number> | undefined;

  constructor(
    lbName: string,
    config: PoolConfig,
    down: ReadonlySet<string>,
    previous?: PoolRuntime,
    /** Workers sharing the load: a backend's max_requests / max_connections is split by it. */
    workers = 1,
  ) {
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
    let limits: Map<BackendTarget, number> | undefined;
    config.backends.forEach((b, i) => {
      const lim = minPositive(b.maxRequests, b.maxConnections);
      if (lim === 0) return;
      // Each worker enforces its share, rounded down but at least 1 (as connection_limit).
      limits ??= new Map();
      limits.set(this.own[i]!, Math.max(1, Math.floor(lim / Math.max(1, workers))));
    });
    this.limits = limits;
    this.retryBudget = previous?.retryBudget ?? new RetryBudget(config.retry);
    this.retryBudget.config = config.retry;
    this.slow = previous?.slow ?? new SlowStart(config.slowStartMs);
    this.slow.setWindow(STICKY.has(config.algorithm) ? 0 : config.slowStartMs);
    // Slow start is for backends that become available while the pool serves: at a worker's
    // first snapshot (no previous) everything is simply there.
    this.built = this.build(down, previous?.built, previous !== undefined);
  }

  /** Health changed: rebuild the balancer if this pool's available backends changed. */
  setHealth(down: ReadonlySet<string>): void {
    this.built = this.build(down, this.built, true);
  }

  /** This worker's circuit-breaker limit for `t` (0 = none). */
  limitOf(t: BackendTarget): number {
    return this.limits === undefined ? 0 : (this.limits.get(t) ?? 0);
  }

  /**
   * For connection-level callers (tcp): `first` (a pick) if it is under its limit, else
   * another backend that is; undefined when every available backend is at its limit.
   */
  underLimit(first: BackendTarget, key: string): BackendTarget | undefined {
    let t: BackendTarget | undefined = first;
    let full: Set<BackendTarget> | undefined;
    while (t !== undefined) {
      const lim = this.limitOf(t);
      if (lim === 0 || t.active < lim) return t;
      full ??= new Set();
      full.add(t);
      t = this.pick(byKey(key, full));
    }
    return undefined;
  }

  /** True while fewer than panic_threshold% of the enabled backends are healthy. */
  get panicking(): boolean {
    return this.built.panic;
  }

  /** 0..1: the share of its normal traffic `t` gets while slow-starting (1 otherwise). */
  rampOf(t: BackendTarget): number {
    return this.slow.ramp(t);
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
    const b = this.built.balancer;
    if (this.slow.size === 0) return b.pick(ctx);
    return this.slow.pick(ctx, b);
  }

  acquire(t: BackendTarget): void {
    t.active++;
  }

  release(t: BackendTarget): void {
    // Clamped: a stray extra release must not make a backend look idler than idle.
    if (t.active > 0) t.active--;
  }

  private build(down: ReadonlySet<string>, prior: Built | undefined, ramp: boolean): Built {
    const algorithm = this.config.algorithm;
    const enabled = this.targets.filter((_, i) => this.config.backends[i]!.adminState === 'enabled');
    const healthy = enabled.filter((t) => !down.has(t.key));
    const threshold = this.config.panicThreshold;
    const panic = threshold > 0 && enabled.length > 0 && healthy.length * 100 < threshold * enabled.length;
    const targets = panic ? enabled : healthy;
    if (ramp) {
      const before = new Set(prior?.targets);
      for (const t of targets) if (!before.has(t)) this.slow.begin(t);
    }
    for (const t of prior?.targets ?? []) if (!targets.includes(t)) this.slow.end(t);
    const weights = targets.map((t) => t.weight);
    if (
      prior !== undefined &&
      prior.algorithm === algorithm &&
      prior.panic === panic &&
      sameItems(prior.targets, targets) &&
      sameItems(prior.weights, weights)
    )
      return prior;
    return { algorithm, targets, weights, panic, balancer: createBalancer(algorithm, targets) };
  }
}

function minPositive(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

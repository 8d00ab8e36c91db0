// Slow start: a backend that just became available (recovered from down, drain or disabled,
// or added by a reload) gets a share of new traffic that ramps linearly from 10% (Envoy's
// default min_weight_percent) to 100% over the pool's `slow_start` window. It works with any
// balancer: while a backend ramps, each pick leaves it out with probability 1 − ramp, by
// passing it in the exclude set; when nothing else is left it is still picked. The common case
// (nothing ramping) is one size check. Hashing algorithms (ip_hash, maglev) skip slow start:
// moving clients around during the window would defeat their stickiness.

import type { BackendTarget, Balancer, PickContext } from './balancer/types.ts';

/** Share of its normal traffic a backend gets at the start of its window. */
export const SLOW_START_MIN = 0.1;

export class SlowStart implements PickContext {
  /** Ramping targets → the time their window started. */
  private readonly ramping = new Map<BackendTarget, number>();
  /** Reused for every ramped pick: pick() is synchronous and keeps no reference. */
  private readonly skip = new Set<BackendTarget>();
  private inner: PickContext | undefined = undefined;
  exclude: ReadonlySet<BackendTarget> | undefined = undefined;

  constructor(private windowMs: number) {}

  get size(): number {
    return this.ramping.size;
  }

  setWindow(ms: number): void {
    this.windowMs = ms;
    if (ms === 0) this.ramping.clear();
  }

  /** `t` just became available: its window starts now. */
  begin(t: BackendTarget, now = Date.now()): void {
    if (this.windowMs > 0) this.ramping.set(t, now);
  }

  /** `t` is no longer available. */
  end(t: BackendTarget): void {
    this.ramping.delete(t);
  }

  /** 0..1: the share of its normal traffic `t` gets now (1 when not ramping). */
  ramp(t: BackendTarget, now = Date.now()): number {
    const start = this.ramping.get(t);
    if (start === undefined) return 1;
    const f = (now - start) / this.windowMs;
    return f >= 1 ? 1 : SLOW_START_MIN + (1 - SLOW_START_MIN) * Math.max(0, f);
  }

  /** Pick from `b` with ramping targets left out at random. */
  pick(ctx: PickContext, b: Balancer): BackendTarget | undefined {
    const now = Date.now();
    const skip = this.skip;
    skip.clear();
    for (const [t, start] of this.ramping) {
      const f = (now - start) / this.windowMs;
      if (f >= 1) this.ramping.delete(t);
      else if (Math.random() >= SLOW_START_MIN + (1 - SLOW_START_MIN) * Math.max(0, f)) skip.add(t);
    }
    if (skip.size === 0) return b.pick(ctx);
    if (ctx.exclude !== undefined) for (const t of ctx.exclude) skip.add(t);
    this.inner = ctx;
    this.exclude = skip;
    const t = b.pick(this);
    this.inner = undefined;
    // Only ramping backends left (or excluded by the caller): a ramping one beats none.
    return t ?? b.pick(ctx);
  }

  hashKey(): string {
    return this.inner!.hashKey();
  }
}

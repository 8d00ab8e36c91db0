// Passive health, merged in the primary: every worker counts its own upstream failures per
// backend and reports them in batches (ipc 'outlier'); here they are summed into one
// consecutive-failure streak per backend, and one decision is made for all workers. A backend
// whose streak reaches `consecutive_failures` is ejected for n × base_ejection_time (n = its
// ejection count, capped at max_ejection_time), unless that would put more than
// max_ejection_percent of its pool out at once (Envoy's outlier detection, simplified).

import type { OutlierDetectionConfig } from '../../config/model.ts';
import { log } from '../../shared/log.ts';

/** One backend's failures in one worker's batch. */
export interface OutlierCount {
  readonly key: string;
  /** Consecutive failures at the end of the batch. */
  readonly failures: number;
  /** A success came in the batch (so the streak before it is broken). */
  readonly reset: boolean;
}

interface Entry {
  readonly pool: string;
  config: OutlierDetectionConfig;
  streak: number;
  ejections: number;
  ejectedUntil: number;
  lastReturn: number;
  timer: NodeJS.Timeout | undefined;
}

export interface OutlierInfo {
  readonly ejected: boolean;
  readonly ejected_until: string | undefined;
  readonly ejections: number;
  readonly consecutive_failures: number;
}

export class OutlierTracker {
  private readonly entries = new Map<string, Entry>();
  /** pool → its backend keys (for max_ejection_percent). */
  private readonly pools = new Map<string, string[]>();
  private ejectedTotal = 0;
  private skippedByPercent = 0;

  constructor(private readonly onChange: () => void) {}

  /**
   * The pools as configured now: `pool` "lb/pool", its backend keys and settings (undefined:
   * no outlier detection, and anything it had ejected returns). Unchanged backends keep their
   * streak and ejection.
   */
  configure(
    pools: ReadonlyArray<{
      pool: string;
      keys: readonly string[];
      config: OutlierDetectionConfig | undefined;
    }>,
  ): void {
    const keep = new Set<string>();
    this.pools.clear();
    for (const p of pools) {
      if (p.config === undefined) continue;
      this.pools.set(p.pool, [...p.keys]);
      for (const key of p.keys) {
        keep.add(key);
        const e = this.entries.get(key);
        if (e) e.config = p.config;
        else
          this.entries.set(key, {
            pool: p.pool,
            config: p.config,
            streak: 0,
            ejections: 0,
            ejectedUntil: 0,
            lastReturn: 0,
            timer: undefined,
          });
      }
    }
    let changed = false;
    for (const [key, e] of this.entries) {
      if (keep.has(key)) continue;
      clearTimeout(e.timer);
      if (e.ejectedUntil > 0) changed = true;
      this.entries.delete(key);
    }
    if (changed) this.onChange();
  }

  /** Merge one worker's batch. */
  report(counts: readonly OutlierCount[], now = Date.now()): void {
    for (const c of counts) {
      const e = this.entries.get(c.key);
      if (e === undefined) continue;
      e.streak = c.reset ? c.failures : e.streak + c.failures;
      if (e.ejectedUntil === 0 && e.streak >= e.config.consecutiveFailures) this.eject(c.key, e, now);
    }
  }

  ejected(): string[] {
    const out: string[] = [];
    for (const [key, e] of this.entries) if (e.ejectedUntil > 0) out.push(key);
    return out;
  }

  info(key: string): OutlierInfo | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    return {
      ejected: e.ejectedUntil > 0,
      ejected_until: e.ejectedUntil > 0 ? new Date(e.ejectedUntil).toISOString() : undefined,
      ejections: e.ejections,
      consecutive_failures: e.streak,
    };
  }

  stats(): { ejections_total: number; ejections_skipped_max_percent: number; ejected_now: number } {
    return {
      ejections_total: this.ejectedTotal,
      ejections_skipped_max_percent: this.skippedByPercent,
      ejected_now: this.ejected().length,
    };
  }

  stop(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  private eject(key: string, e: Entry, now: number): void {
    const keys = this.pools.get(e.pool) ?? [];
    const out = keys.filter((k) => (this.entries.get(k)?.ejectedUntil ?? 0) > 0).length;
    const pct = e.config.maxEjectionPercent;
    const allowed = pct === 0 ? 0 : Math.max(1, Math.floor((pct * keys.length) / 100));
    if (out >= allowed) {
      this.skippedByPercent++;
      return;
    }
    // A backend that stayed in for a whole max_ejection_time since it came back starts over.
    if (e.lastReturn > 0 && now - e.lastReturn > e.config.maxEjectionMs) e.ejections = 0;
    e.ejections++;
    this.ejectedTotal++;
    const ms = Math.min(e.config.maxEjectionMs, e.config.baseEjectionMs * e.ejections);
    e.ejectedUntil = now + ms;
    e.streak = 0;
    log('warn', 'backend ejected', {
      backend: key,
      ejection_ms: ms,
      ejections: e.ejections,
      consecutive_failures: e.config.consecutiveFailures,
    });
    e.timer = setTimeout(() => {
      e.timer = undefined;
      e.ejectedUntil = 0;
      e.lastReturn = Date.now();
      log('info', 'backend returned from ejection', { backend: key });
      this.onChange();
    }, ms);
    e.timer.unref();
    this.onChange();
  }
}

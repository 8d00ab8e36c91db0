// The primary's health picture: active probes (one Prober per backend with a health_check),
// passive ejections (OutlierTracker) and drains (DrainTracker), folded into the one HealthState
// the workers receive ({ down: [...] }, over the existing 'health' message). Config reloads
// reconcile the probers: a backend whose key, address and port are unchanged keeps its prober,
// state and history (no flapping on reload); only its settings are updated.

import type { ConnectionOptions } from 'node:tls';
import {
  backendKey,
  type DynamicConfig,
  type HealthCheckConfig,
  type PoolConfig,
} from '../../config/model.ts';
import type { HealthState } from '../../config/snapshot.ts';
import { log } from '../../shared/log.ts';
import { type DrainInfo, DrainTracker } from './drain.ts';
import { type OutlierCount, type OutlierInfo, OutlierTracker } from './outlier.ts';
import { type ProbeResult, Prober, type ProbeState } from './prober.ts';

/**
 * TLS options for a pool's https checks: the pool's own `tls` (CA, verify, servername, client
 * cert) mapped to node:tls options, so a probe trusts exactly what the data plane trusts.
 * Absent: Node's defaults (system CAs, verification on).
 */
export type TlsFor = (pool: PoolConfig) => ConnectionOptions | undefined;

interface BackendEntry {
  readonly key: string;
  readonly lb: string;
  readonly pool: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  adminState: string;
  prober: Prober | undefined;
}

/** One backend in the health report (admin API). */
export interface BackendHealth {
  readonly backend: string;
  readonly address: string;
  readonly admin_state: string;
  /** up: takes traffic; down: an active check failed; ejected: passive health; unchecked: no check. */
  readonly state: 'up' | 'down' | 'ejected' | 'unknown' | 'unchecked';
  readonly check: { type: string; interval_ms: number; rise: number; fall: number } | undefined;
  readonly probes: readonly ProbeResult[];
  readonly outlier: OutlierInfo | undefined;
  readonly drain: DrainInfo | undefined;
}

/** One pool in the health report: how much of it can take traffic. */
export interface PoolHealth {
  readonly pool: string;
  /** Backends with admin_state enabled. */
  readonly enabled: number;
  /** Of those, not down or ejected. */
  readonly healthy: number;
  /** Below panic_threshold: the workers use every enabled backend. */
  readonly panic: boolean;
}

export interface HealthReport {
  readonly down: readonly string[];
  readonly pools: readonly PoolHealth[];
  readonly backends: readonly BackendHealth[];
}

export interface MonitorOptions {
  /** Called whenever the down set changes (broadcast it to the workers). */
  readonly onHealth: (h: HealthState) => void;
  /** Slots of the live workers (for drain accounting). */
  readonly liveWorkers?: () => readonly number[];
  readonly tlsFor?: TlsFor;
}

export class HealthMonitor {
  private readonly backends = new Map<string, BackendEntry>();
  private readonly outliers: OutlierTracker;
  private readonly drains = new DrainTracker();
  private lastDown = '';
  /** "lb/pool" → its backend keys and panic threshold, as configured now. */
  private poolInfo: Array<{ pool: string; enabled: string[]; panicThreshold: number }> = [];
  private transitions = 0;

  constructor(private readonly opts: MonitorOptions) {
    this.outliers = new OutlierTracker(() => this.publish());
  }

  /** Reconcile with a new config (initial load and every reload). */
  update(config: DynamicConfig, revision: number): void {
    const seen = new Set<string>();
    const outlierPools: Array<Parameters<OutlierTracker['configure']>[0][number]> = [];
    const draining: string[] = [];
    const poolInfo: typeof this.poolInfo = [];
    let i = 0;
    for (const lb of config.loadBalancers) {
      for (const pool of lb.pools) {
        const keys: string[] = [];
        for (const b of pool.backends) {
          const key = backendKey(lb.name, pool.name, b.id);
          keys.push(key);
          seen.add(key);
          if (b.adminState === 'drain') draining.push(key);
          let e = this.backends.get(key);
          if (e && (e.address !== b.address || e.port !== b.port)) {
            e.prober?.stop();
            this.backends.delete(key);
            e = undefined;
          }
          if (e === undefined) {
            e = {
              key,
              lb: lb.name,
              pool: pool.name,
              id: b.id,
              address: b.address,
              port: b.port,
              adminState: b.adminState,
              prober: undefined,
            };
            this.backends.set(key, e);
          }
          e.adminState = b.adminState;
          this.reconcileProber(e, pool, i++);
        }
        outlierPools.push({ pool: `${lb.name}/${pool.name}`, keys, config: pool.outlierDetection });
        poolInfo.push({
          pool: `${lb.name}/${pool.name}`,
          enabled: pool.backends
            .filter((b) => b.adminState === 'enabled')
            .map((b) => backendKey(lb.name, pool.name, b.id)),
          panicThreshold: pool.panicThreshold,
        });
      }
    }
    for (const [key, e] of this.backends) {
      if (seen.has(key)) continue;
      e.prober?.stop();
      this.backends.delete(key);
    }
    this.poolInfo = poolInfo;
    this.drains.configure(draining, revision);
    this.outliers.configure(outlierPools);
    this.drains.evaluate(this.live());
    this.publish();
  }

  /** Merge a worker's passive-health batch. */
  outlierReport(counts: readonly OutlierCount[]): void {
    this.outliers.report(counts);
  }

  /** A worker's in-flight counts for draining backends. */
  drainReport(slot: number, revision: number, inflight: Record<string, number>): void {
    this.drains.report(slot, revision, inflight, this.live());
  }

  /** The worker set changed (a worker exited): re-judge drains without it. */
  workersChanged(): void {
    this.drains.evaluate(this.live());
  }

  health(): HealthState {
    return { down: this.down() };
  }

  /** Per backend: state, last probes, ejection, drain. For the admin API (/status, /api/v1). */
  healthReport(): HealthReport {
    const ejected = new Set(this.outliers.ejected());
    const backends: BackendHealth[] = [];
    for (const e of this.backends.values()) {
      const p = e.prober;
      const probeState: ProbeState | 'unchecked' = p ? p.state : 'unchecked';
      const state: BackendHealth['state'] =
        probeState === 'down' ? 'down' : ejected.has(e.key) ? 'ejected' : probeState;
      const check = p?.settings;
      backends.push({
        backend: e.key,
        address: e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`,
        admin_state: e.adminState,
        state,
        check: check && {
          type: check.type,
          interval_ms: check.intervalMs,
          rise: check.rise,
          fall: check.fall,
        },
        probes: p ? [...p.history()] : [],
        outlier: this.outliers.info(e.key),
        drain: this.drains.info(e.key),
      });
    }
    const down = this.down();
    const isDown = new Set(down);
    const pools = this.poolInfo.map((p) => {
      const healthy = p.enabled.filter((k) => !isDown.has(k)).length;
      // The workers' rule (routing/pool-runtime.ts), from the same inputs.
      const panic =
        p.panicThreshold > 0 && p.enabled.length > 0 && healthy * 100 < p.panicThreshold * p.enabled.length;
      return { pool: p.pool, enabled: p.enabled.length, healthy, panic };
    });
    return { down, pools, backends };
  }

  /** Counters for /metrics. */
  stats(): Record<string, number> {
    let probes = 0;
    let probeFailures = 0;
    let down = 0;
    for (const e of this.backends.values()) {
      if (!e.prober) continue;
      probes += e.prober.probes;
      probeFailures += e.prober.failures;
      if (e.prober.state === 'down') down++;
    }
    return {
      health_probes_total: probes,
      health_probe_failures_total: probeFailures,
      health_transitions_total: this.transitions,
      health_backends_down: down,
      ...prefixed('outlier_', this.outliers.stats()),
      backends_drained_total: this.drains.drainedTotal,
    };
  }

  stop(): void {
    for (const e of this.backends.values()) e.prober?.stop();
    this.outliers.stop();
  }

  /** The backend's prober, for tests. */
  prober(key: string): Prober | undefined {
    return this.backends.get(key)?.prober;
  }

  private reconcileProber(e: BackendEntry, pool: PoolConfig, index: number): void {
    const check: HealthCheckConfig | undefined = pool.healthCheck;
    if (check === undefined) {
      if (e.prober) {
        e.prober.stop();
        e.prober = undefined;
      }
      return;
    }
    const tls = check.type === 'https' ? this.opts.tlsFor?.(pool) : undefined;
    if (e.prober) {
      e.prober.update(check, tls);
      return;
    }
    const prober = new Prober(
      { address: e.address, port: e.port },
      check,
      (state, reason) => {
        this.transitions++;
        log(state === 'down' ? 'warn' : 'info', state === 'down' ? 'backend down' : 'backend up', {
          backend: e.key,
          backend_address: `${e.address}:${e.port}`,
          reason,
        });
        this.publish();
      },
      tls,
    );
    e.prober = prober;
    // Spread the first probes of many backends over a few ms instead of one burst.
    prober.start(Math.min(index * 5, 200));
  }

  private down(): string[] {
    const down = new Set(this.outliers.ejected());
    for (const e of this.backends.values()) if (e.prober?.state === 'down') down.add(e.key);
    return [...down].sort();
  }

  private publish(): void {
    const down = this.down();
    const sig = down.join('\n');
    if (sig === this.lastDown) return;
    this.lastDown = sig;
    this.opts.onHealth({ down });
  }

  private live(): readonly number[] {
    return this.opts.liveWorkers?.() ?? [];
  }
}

function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) out[prefix + k] = v;
  return out;
}

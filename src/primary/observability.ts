// Metrics, the admin API's views and the dashboard, wired to the primary in one place so
// primary.ts only hands over what they read: /metrics (primary families + workers' over IPC),
// the admin API (admin/api.ts) and the dashboard feed (per-second ring, config changes, SSE).

import { backendKey, type Config } from '../config/model.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { Failures } from '../shared/failure.ts';
import { MetricsRegistry } from '../shared/metrics.ts';
import { AdminApiImpl } from './admin/api.ts';
import { type ConfigChange, DashboardFeed } from './admin/dashboard/feed.ts';
import type { HealthBody, ReloadOutcome } from './health.ts';
import { adminWriterFamilies } from './metrics/admin-families.ts';
import { addPrimaryCollectors } from './metrics/primary-families.ts';
import { CONTENT_TYPE, PrometheusEndpoint } from './metrics/prometheus.ts';
import type { BackendOverrides } from './overrides.ts';
import type { OverridesStateFile } from './overrides-state.ts';
import type { WorkerSet } from './worker-set.ts';

/** What the primary exposes to them. */
export interface PrimaryInternals {
  readonly workers: WorkerSet;
  readonly failures: Failures;
  readonly overrides: BackendOverrides;
  /** admin.state_file (file source), once the first config is read. */
  stateFile(): OverridesStateFile | undefined;
  revision(): number;
  source(): string;
  config(): Config | undefined;
  snapshot(): Snapshot | undefined;
  health(): { ready: boolean; body: HealthBody };
  reloadsApplied(): number;
  reapply(reason: string): Promise<ReloadOutcome>;
  reload(): Promise<ReloadOutcome>;
  legacyStatus(): Promise<Record<string, unknown>>;
}

export class Observability {
  /** The primary's metric collectors: primary-side modules add theirs here. */
  readonly metrics = new MetricsRegistry();
  /** The admin API (its healthDetail hook is where the health checker plugs in). */
  readonly api: AdminApiImpl;
  private readonly prometheus: PrometheusEndpoint;
  private readonly feed: DashboardFeed;

  constructor(p: PrimaryInternals) {
    const startedAt = Date.now();
    addPrimaryCollectors(
      this.metrics,
      () => ({
        revision: p.revision(),
        source: p.source(),
        reloadsApplied: p.reloadsApplied(),
        workersConfigured: p.config()?.static.cluster.workers ?? 0,
        workersReady: p.health().body.workers_ready,
        backends: backendStates(p),
        overrides: p.overrides.entries().length,
      }),
      p.failures,
    );
    this.prometheus = new PrometheusEndpoint({
      primary: () => this.metrics.collect(),
      workers: () => p.workers.metrics(true),
    });
    p.workers.onRetired = (_slot, last) => this.prometheus.retire(last);
    this.api = new AdminApiImpl({
      startedAt,
      revision: () => p.revision(),
      source: () => p.source(),
      loaded: () => p.config(),
      served: () => p.snapshot()?.config,
      health: () => p.health(),
      workers: () => p.workers.info(),
      down: () => new Set(p.workers.currentHealth().down),
      overrides: p.overrides,
      failures: p.failures,
      stateFile: () => p.stateFile(),
      reapply: (reason) => p.reapply(reason),
      reload: () => p.reload(),
      legacyStatus: () => p.legacyStatus(),
      metrics: async () => ({ contentType: CONTENT_TYPE, text: await this.prometheus.render() }),
    });
    this.feed = new DashboardFeed({
      summaries: async (full) => (await p.workers.metrics(full)).map((a) => a.m.summary),
      state: () => ({
        status: this.api.status(),
        listeners: this.api.listeners(),
        pools: (this.api.pools() as Array<{ lb: string; name: string }>).map((pool) => ({
          ...pool,
          backends: this.api.backends(pool.lb, pool.name),
        })),
      }),
    });
    this.api.live = this.feed;
    // The writer in force (replaced by Chainfire's once the config names the store).
    this.metrics.add('admin_actions', () => adminWriterFamilies(this.api.writer));
  }

  start(): void {
    this.feed.start();
  }

  stop(): void {
    this.feed.stop();
  }

  /** A config loaded, rejected, or changed by an admin action (the dashboard lists them). */
  change(c: Omit<ConfigChange, 'at'>): void {
    this.feed.change(c);
  }
}

/** Every served backend: serving (enabled, not down) and down, for /metrics. */
function backendStates(p: PrimaryInternals): Array<{ key: string; serving: boolean; down: boolean }> {
  const down = new Set(p.workers.currentHealth().down);
  return (p.snapshot()?.config.loadBalancers ?? []).flatMap((lb) =>
    lb.pools.flatMap((pool) =>
      pool.backends.map((b) => {
        const key = backendKey(lb.name, pool.name, b.id);
        return { key, serving: b.adminState === 'enabled' && !down.has(key), down: down.has(key) };
      }),
    ),
  );
}

// The primary's own metric families: the config it serves, its reloads, its workers.

import type { Failures } from '../../shared/failure.ts';
import { counter, gauge, type MetricFamily, type MetricsRegistry } from '../../shared/metrics.ts';
import { failureFamily } from '../../shared/metrics-failures.ts';

export interface PrimaryFacts {
  readonly revision: number;
  /** "config/fiberlb.yaml", later "chainfire:…" */
  readonly source: string;
  /** Reloads that were accepted (the first load included). */
  readonly reloadsApplied: number;
  readonly workersConfigured: number;
  readonly workersReady: number;
  /** Every backend of the served config: takes new traffic, and marked down by health. */
  readonly backends: ReadonlyArray<{
    readonly key: string;
    readonly serving: boolean;
    readonly down: boolean;
  }>;
  /** Admin API overrides in force. */
  readonly overrides: number;
}

/** Registers the primary's collectors; failures counts config_invalid and worker_crash. */
export function addPrimaryCollectors(
  registry: MetricsRegistry,
  facts: () => PrimaryFacts,
  failures: Failures,
): void {
  registry.add('primary', () => {
    const f = facts();
    const rejected = failures.counts.get('config_invalid') ?? 0;
    const families: MetricFamily[] = [
      gauge('fiberlb_config_revision', 'Config revision served.', [{ labels: {}, value: f.revision }], 'max'),
      gauge(
        'fiberlb_config_info',
        'Where the served config comes from (value 1).',
        [{ labels: { source: f.source }, value: 1 }],
        'max',
      ),
      counter(
        'fiberlb_config_reloads_total',
        'Config loads by result (rejected: the last good config kept).',
        [
          { labels: { result: 'applied' }, value: f.reloadsApplied },
          { labels: { result: 'rejected' }, value: rejected },
        ],
      ),
      gauge(
        'fiberlb_workers',
        'Worker processes: configured, and ready (serving the current revision).',
        [
          { labels: { state: 'configured' }, value: f.workersConfigured },
          { labels: { state: 'ready' }, value: f.workersReady },
        ],
        'max',
      ),
      counter('fiberlb_worker_restarts_total', 'Workers that exited unexpectedly and were respawned.', [
        { labels: {}, value: failures.counts.get('worker_crash') ?? 0 },
      ]),
      failureFamily(failures.counts),
      gauge(
        'fiberlb_backend_serving',
        'Backend takes new traffic (1): admin state enabled and not marked down.',
        f.backends.map((b) => ({ labels: { backend: b.key }, value: b.serving ? 1 : 0 })),
        'max',
      ),
      gauge(
        'fiberlb_backend_down',
        'Backend marked down by health checks (1).',
        f.backends.map((b) => ({ labels: { backend: b.key }, value: b.down ? 1 : 0 })),
        'max',
      ),
      gauge(
        'fiberlb_admin_overrides',
        'Backend overrides set through the admin API.',
        [{ labels: {}, value: f.overrides }],
        'max',
      ),
    ];
    return families;
  });
}

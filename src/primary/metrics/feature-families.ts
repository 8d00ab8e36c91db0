// Metric families of the primary's features: active health checks and outlier ejection (the
// monitor), the rate-limit ledger and its Redis store, and the config source's quarantine.
// Read from the counters each module keeps; names pinned by test/metrics.test.ts.

import { counter, gauge, type MetricFamily } from '../../shared/metrics.ts';

export interface FeatureFacts {
  /** HealthMonitor.stats() */
  readonly health: Readonly<Record<string, number>>;
  /** RateLimitService.stats() (undefined before the first config). */
  readonly rateLimits: Readonly<Record<string, number>> | undefined;
  /** Keys of the config source left out as invalid (Chainfire; 0 for a file). */
  readonly quarantined: number;
}

const one = (value: number | undefined) => [{ labels: {}, value: value ?? 0 }];

export function primaryFeatureFamilies(f: FeatureFacts): MetricFamily[] {
  const h = f.health;
  const rl = f.rateLimits ?? {};
  return [
    counter('fiberlb_health_probes_total', 'Active health probes run.', [
      {
        labels: { outcome: 'ok' },
        value: (h.health_probes_total ?? 0) - (h.health_probe_failures_total ?? 0),
      },
      { labels: { outcome: 'failed' }, value: h.health_probe_failures_total ?? 0 },
    ]),
    counter(
      'fiberlb_health_transitions_total',
      'Backends going down or up by active health checks.',
      one(h.health_transitions_total),
    ),
    gauge(
      'fiberlb_health_backends_down',
      'Backends down by active health checks.',
      one(h.health_backends_down),
      'max',
    ),
    counter(
      'fiberlb_outlier_ejections_total',
      'Backends ejected by passive health.',
      one(h.outlier_ejections_total),
    ),
    gauge('fiberlb_outlier_ejected', 'Backends ejected now.', one(h.outlier_ejected_now), 'max'),
    counter(
      'fiberlb_backends_drained_total',
      'Draining backends that reached 0 in flight.',
      one(h.backends_drained_total),
    ),
    gauge(
      'fiberlb_rate_limit_redis_up',
      'The rate-limit Redis store answers (1) or not (0).',
      one(rl.redis_up),
      'max',
    ),
    counter(
      'fiberlb_rate_limit_redis_fallbacks_total',
      'Times global rate limits fell back to local ones (Redis unreachable).',
      one(rl.redis_fallbacks),
    ),
    gauge(
      'fiberlb_config_quarantined_keys',
      'Config source keys left out as invalid.',
      one(f.quarantined),
      'max',
    ),
  ];
}

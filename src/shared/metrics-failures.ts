// Failures by error class as a metric family (workers and the primary both report it; the
// merge sums them).

import { ERROR_CATALOG, type ErrorClass } from './errors.ts';
import { counter, type MetricFamily } from './metrics.ts';

/** Failures by class, every catalog class present (0 when none), so the series are stable. */
export function failureFamily(counts: ReadonlyMap<ErrorClass, number>): MetricFamily {
  return counter(
    'fiberlb_failures_total',
    'Failures by error class (README "Failures and error classes").',
    (Object.keys(ERROR_CATALOG) as ErrorClass[]).map((cls) => ({
      labels: { error_class: cls, side: ERROR_CATALOG[cls].side },
      value: counts.get(cls) ?? 0,
    })),
  );
}

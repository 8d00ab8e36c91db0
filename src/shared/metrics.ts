// Metric families as plain data: what a worker (or a primary module) hands over at scrape
// time, in the shape prom-client's AggregatorRegistry.aggregate() merges (its MetricObject:
// name, help, type, values, aggregator). Counting itself is done in plain numbers and typed
// arrays by each module; only a scrape builds these objects, so the hot path pays nothing.
//
// How to add a metric (any module, worker or primary): keep your counters as numbers in your
// own module, then register a collector once:
//
//   registry.add('ratelimit', () => [
//     counter('fiberlb_rate_limited_total', 'Requests refused by a rate limit.',
//       [...limiter.stats()].map(([listener, n]) => ({ labels: { listener }, value: n }))),
//   ]);
//
// Worker collectors are merged across workers by summing equal (name, labels) series
// (histograms bucket by bucket); a gauge that must not be summed sets `aggregator: 'max'`.

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type Aggregator = 'sum' | 'max' | 'min' | 'first' | 'average' | 'omit';

export interface MetricValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  /** For histograms: `${name}_bucket` | `_sum` | `_count`. */
  readonly metricName?: string;
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly values: readonly MetricValue[];
  readonly aggregator: Aggregator;
}

export type Collector = () => MetricFamily[];

/** Named collectors; a name registered twice replaces the first (a module re-created on reload). */
export class MetricsRegistry {
  private readonly collectors = new Map<string, Collector>();

  add(name: string, collect: Collector): void {
    this.collectors.set(name, collect);
  }

  remove(name: string): void {
    this.collectors.delete(name);
  }

  /** Collectors that threw (they are skipped: a scrape must never take a process down). */
  errors = 0;

  collect(): MetricFamily[] {
    const out: MetricFamily[] = [];
    for (const c of this.collectors.values()) {
      try {
        for (const f of c()) out.push(f);
      } catch {
        this.errors++;
      }
    }
    return out;
  }
}

export interface Sample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

export function counter(name: string, help: string, samples: readonly Sample[]): MetricFamily {
  return { name, help, type: 'counter', values: samples, aggregator: 'sum' };
}

export function gauge(
  name: string,
  help: string,
  samples: readonly Sample[],
  aggregator: Aggregator = 'sum',
): MetricFamily {
  return { name, help, type: 'gauge', values: samples, aggregator };
}

/**
 * Fixed latency buckets (seconds) for every duration histogram, so series from different
 * workers merge bucket by bucket: 0.5 ms .. 30 s.
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** A histogram over LATENCY_BUCKETS: per-bucket (not cumulative) counts, the last one +Inf. */
export class Histogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;

  observe(seconds: number): void {
    const b = LATENCY_BUCKETS;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
  }

  count(): number {
    let n = 0;
    for (let i = 0; i < this.counts.length; i++) n += this.counts[i]!;
    return n;
  }
}

/** A histogram's series in prom-client's JSON shape (cumulative buckets, then sum and count). */
export function histogramValues(
  name: string,
  labels: Readonly<Record<string, string>>,
  h: Histogram,
  into: MetricValue[],
): void {
  let cumulative = 0;
  for (let i = 0; i < h.counts.length; i++) {
    cumulative += h.counts[i]!;
    const le = i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : '+Inf';
    into.push({ value: cumulative, labels: { ...labels, le }, metricName: `${name}_bucket` });
  }
  into.push({ value: h.sum, labels, metricName: `${name}_sum` });
  into.push({ value: cumulative, labels, metricName: `${name}_count` });
}

export function histogram(name: string, help: string, values: readonly MetricValue[]): MetricFamily {
  return { name, help, type: 'histogram', values, aggregator: 'sum' };
}

/** "2xx" for 200..299; "none" when no response head was sent (client gone, connection cut). */
export const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export function statusClassIndex(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
}

/** The per-second numbers the primary's dashboard ring needs (cheaper than a full scrape). */
export interface TelemetrySummary {
  /** HTTP requests ended. */
  readonly requests: number;
  /** Of those, answered 5xx or cut without an answer (not by the client). */
  readonly errors: number;
  /** Request duration histogram summed over every series (per-bucket counts, then +Inf). */
  readonly buckets: readonly number[];
  readonly durationSum: number;
  /** Open client connections (all protocols). */
  readonly connections: number;
}

// The last minutes, one point per second, for the dashboard: request rate, error rate and
// latency (from the merged duration histogram's per-second deltas), open connections. The
// primary asks the workers for their summaries once a second (not per request); every 5th
// ask is a full report, which is what keeps an exited worker's counters (prometheus.ts).

import { LATENCY_BUCKETS, type TelemetrySummary } from '../../shared/metrics.ts';

export interface Point {
  /** Unix time, seconds. */
  readonly t: number;
  readonly rps: number;
  /** 5xx answers per second. */
  readonly errors: number;
  /** Mean, and p50 / p99 as the upper bound of their histogram bucket (ms); null without traffic. */
  readonly mean_ms: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly connections: number;
}

export const RING_SECONDS = 300;

export class Ring {
  readonly points: Point[] = [];
  private prev: { requests: number; errors: number; sum: number; buckets: number[] } | undefined;

  /** Add the point for `t` from the workers' summed counters (a drop = a worker restarted). */
  add(t: number, summaries: readonly TelemetrySummary[]): Point {
    const cur = {
      requests: 0,
      errors: 0,
      sum: 0,
      buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0),
    };
    let connections = 0;
    for (const s of summaries) {
      cur.requests += s.requests;
      cur.errors += s.errors;
      cur.sum += s.durationSum;
      connections += s.connections;
      for (let i = 0; i < cur.buckets.length; i++) cur.buckets[i]! += s.buckets[i] ?? 0;
    }
    const p = this.prev;
    const d = (a: number, b: number | undefined) => Math.max(0, a - (b ?? a));
    const requests = d(cur.requests, p?.requests);
    const deltas = cur.buckets.map((v, i) => d(v, p?.buckets[i]));
    const point: Point = {
      t,
      rps: requests,
      errors: d(cur.errors, p?.errors),
      mean_ms: requests > 0 ? round((d(cur.sum, p?.sum) / requests) * 1000) : null,
      p50_ms: quantile(deltas, 0.5),
      p99_ms: quantile(deltas, 0.99),
      connections,
    };
    this.prev = cur;
    this.points.push(point);
    if (this.points.length > RING_SECONDS) this.points.shift();
    return point;
  }
}

/** The upper bound (ms) of the bucket holding quantile q; the last finite bound for +Inf. */
function quantile(counts: readonly number[], q: number): number | null {
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= q * n) return round((LATENCY_BUCKETS[Math.min(i, LATENCY_BUCKETS.length - 1)] ?? 0) * 1000);
  }
  return null;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

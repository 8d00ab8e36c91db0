// /metrics: the workers' families (asked over IPC at scrape time), the primary's own, and the
// counters of workers that exited, merged series by series (histograms bucket by bucket) by
// prom-client's AggregatorRegistry and rendered by it; the primary's default process metrics
// come from prom-client's collectDefaultMetrics.

import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import type { MetricFamily } from '../../shared/metrics.ts';
import type { WorkerMetrics } from '../worker-set.ts';

export interface MetricsSources {
  /** The primary's own families (config, workers, its failures, other modules' collectors). */
  primary(): MetricFamily[];
  /** Every live worker's families. */
  workers(): Promise<Array<{ slot: number; m: WorkerMetrics }>>;
}

export const CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
const LAG_SAMPLE_MS = 100;

export class PrometheusEndpoint {
  private readonly defaults = new Registry();
  /** Counters and histograms of exited workers, so totals never go backwards on a respawn. */
  private retired: readonly object[] = [];
  private folding: Promise<void> = Promise.resolve();

  constructor(private readonly sources: MetricsSources) {
    // prom-client samples the event-loop delay every 10 ms by default: 100 wake-ups a second
    // that were most of an idle primary's CPU (≈ 5 ms/s on this VM). The primary's loop runs
    // no traffic, so a sample every 100 ms still catches the stalls that matter.
    collectDefaultMetrics({ register: this.defaults, eventLoopMonitoringPrecision: LAG_SAMPLE_MS });
  }

  /** A worker exited: keep what it had counted at its last full report (gauges die with it). */
  retire(last: WorkerMetrics): void {
    const kept = last.families.filter((f) => f.type !== 'gauge');
    this.folding = this.folding.then(async () => {
      this.retired = await AggregatorRegistry.aggregate([this.retired, kept]).getMetricsAsJSON();
    });
  }

  async render(): Promise<string> {
    const [answers] = await Promise.all([this.sources.workers(), this.folding]);
    const lists: Array<readonly object[]> = [this.sources.primary(), this.retired];
    for (const a of answers) lists.push(a.m.families);
    const merged = await AggregatorRegistry.aggregate(lists).metrics();
    return `${await this.defaults.metrics()}\n${merged}`;
  }
}

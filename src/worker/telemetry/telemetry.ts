// The worker's telemetry: its counters (stats.ts) and the registry of metric collectors the
// primary reads on a scrape ('metrics' IPC). Other modules add their own collectors to
// `registry` (see shared/metrics.ts, "How to add a metric").

import { getHeapStatistics } from 'node:v8';
import type { Failures } from '../../shared/failure.ts';
import {
  counter,
  gauge,
  histogram,
  histogramValues,
  LATENCY_BUCKETS,
  type MetricFamily,
  MetricsRegistry,
  type MetricValue,
  STATUS_CLASSES,
  type TelemetrySummary,
} from '../../shared/metrics.ts';
import { failureFamily } from '../../shared/metrics-failures.ts';
import { AccessLogs } from './access-log.ts';
import { ListenerStats, UpstreamStats } from './stats.ts';

export class WorkerTelemetry {
  readonly registry = new MetricsRegistry();
  readonly accessLogs = new AccessLogs();
  private readonly listeners = new Map<string, ListenerStats>();
  private readonly upstreams = new Map<string, UpstreamStats>();

  constructor(
    private readonly failures: Failures,
    /** The worker's slot (0..workers-1): bounded, unlike a pid. */
    private readonly slot: string,
  ) {
    this.registry.add('listeners', () => this.listenerFamilies());
    this.registry.add('upstreams', () => this.upstreamFamilies());
    this.registry.add('failures', () => [failureFamily(this.failures.counts)]);
    this.registry.add('process', () => this.processFamilies());
    this.registry.add('access_log', () => this.accessLogs.families());
  }

  /** One object per listener name for the worker's lifetime: counters survive reloads. */
  listener(name: string, lb: string, protocol: string): ListenerStats {
    let s = this.listeners.get(name);
    if (s === undefined) {
      s = new ListenerStats(name, lb, protocol);
      this.listeners.set(name, s);
    }
    return s;
  }

  upstream(address: string): UpstreamStats {
    let s = this.upstreams.get(address);
    if (s === undefined) {
      s = new UpstreamStats(address);
      this.upstreams.set(address, s);
    }
    return s;
  }

  collect(): MetricFamily[] {
    return this.registry.collect();
  }

  summary(): TelemetrySummary {
    let requests = 0;
    let errors = 0;
    let durationSum = 0;
    let connections = 0;
    const buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
    for (const l of this.listeners.values()) {
      connections += l.connections - l.closed;
      for (const c of l.cells.values()) {
        requests += c.requests;
        errors += c.byClass[5]!;
        durationSum += c.duration.sum;
        for (let i = 0; i < buckets.length; i++) buckets[i]! += c.duration.counts[i]!;
      }
    }
    return { requests, errors, buckets, durationSum, connections };
  }

  private listenerFamilies(): MetricFamily[] {
    const conns: MetricValue[] = [];
    const active: MetricValue[] = [];
    const bytesIn: MetricValue[] = [];
    const bytesOut: MetricValue[] = [];
    const requests: MetricValue[] = [];
    const responses: MetricValue[] = [];
    const duration: MetricValue[] = [];
    const firstByte: MetricValue[] = [];
    const upstream: MetricValue[] = [];
    const reqBody: MetricValue[] = [];
    const respBody: MetricValue[] = [];
    for (const l of this.listeners.values()) {
      const labels = { listener: l.name, protocol: l.protocol };
      conns.push({ labels, value: l.connections });
      active.push({ labels, value: l.connections - l.closed });
      bytesIn.push({ labels, value: l.bytesIn });
      bytesOut.push({ labels, value: l.bytesOut });
      for (const c of l.cells.values()) {
        const cl = c.labels as unknown as Record<string, string>;
        requests.push({ labels: cl, value: c.requests });
        for (let i = 1; i < STATUS_CLASSES.length; i++)
          if (c.byClass[i]! > 0)
            responses.push({ labels: { ...cl, status_class: STATUS_CLASSES[i]! }, value: c.byClass[i]! });
        histogramValues('fiberlb_http_request_duration_seconds', cl, c.duration, duration);
        if (cl.backend !== '') {
          histogramValues('fiberlb_upstream_first_byte_seconds', cl, c.firstByte, firstByte);
          histogramValues('fiberlb_upstream_response_duration_seconds', cl, c.upstream, upstream);
        }
        reqBody.push({ labels: cl, value: c.requestBodyBytes });
        respBody.push({ labels: cl, value: c.responseBodyBytes });
      }
    }
    return [
      counter('fiberlb_connections_total', 'Client connections accepted (udp: sessions opened).', conns),
      gauge('fiberlb_connections_active', 'Client connections open now (udp: sessions).', active),
      counter(
        'fiberlb_received_bytes_total',
        'Bytes received from clients (tcp/http: at connection close).',
        bytesIn,
      ),
      counter('fiberlb_sent_bytes_total', 'Bytes sent to clients (tcp/http: at connection close).', bytesOut),
      counter('fiberlb_http_requests_total', 'HTTP requests ended (answered, failed or cut).', requests),
      counter(
        'fiberlb_http_responses_total',
        'HTTP responses by status class (a response head was sent).',
        responses,
      ),
      histogram('fiberlb_http_request_duration_seconds', 'HTTP request arrival to response end.', duration),
      histogram(
        'fiberlb_upstream_first_byte_seconds',
        'Request handed to the backend to its response head (includes connect when a new connection was needed).',
        firstByte,
      ),
      histogram(
        'fiberlb_upstream_response_duration_seconds',
        'Request handed to the backend to its complete response.',
        upstream,
      ),
      counter('fiberlb_http_request_body_bytes_total', 'Request body bytes received from clients.', reqBody),
      counter(
        'fiberlb_http_response_body_bytes_total',
        'Response body bytes relayed from backends.',
        respBody,
      ),
    ];
  }

  private upstreamFamilies(): MetricFamily[] {
    const connects: MetricValue[] = [];
    const errors: MetricValue[] = [];
    const time: MetricValue[] = [];
    for (const u of this.upstreams.values()) {
      const labels = { address: u.address };
      connects.push({ labels, value: u.connects });
      errors.push({ labels, value: u.connectErrors });
      histogramValues('fiberlb_upstream_connect_duration_seconds', labels, u.connectTime, time);
    }
    return [
      counter(
        'fiberlb_upstream_connections_total',
        'Upstream connections opened, by backend address.',
        connects,
      ),
      counter('fiberlb_upstream_connect_errors_total', 'Upstream connection attempts that failed.', errors),
      histogram('fiberlb_upstream_connect_duration_seconds', 'Upstream TCP connect time.', time),
    ];
  }

  private processFamilies(): MetricFamily[] {
    const labels = { worker: this.slot };
    // RSS is read from /proc/self/stat: out of file descriptors that throws EMFILE, and a
    // scrape must not add to the trouble; the heap figure needs no descriptor.
    let rss: number | undefined;
    try {
      rss = process.memoryUsage.rss();
    } catch {
      rss = undefined;
    }
    const cpu = process.cpuUsage();
    return [
      gauge(
        'fiberlb_worker_resident_memory_bytes',
        'Resident memory of each worker.',
        rss === undefined ? [] : [{ labels, value: rss }],
      ),
      gauge('fiberlb_worker_heap_used_bytes', 'V8 heap used by each worker.', [
        { labels, value: getHeapStatistics().used_heap_size },
      ]),
      counter('fiberlb_worker_http_requests_total', 'HTTP requests ended, by worker (shows imbalance).', [
        { labels, value: this.summary().requests },
      ]),
      counter('fiberlb_worker_cpu_seconds_total', 'CPU time (user + system) of each worker.', [
        { labels, value: (cpu.user + cpu.system) / 1e6 },
      ]),
    ];
  }
}

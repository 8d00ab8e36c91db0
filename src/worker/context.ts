// The contract between the worker's listener registry and each protocol's listener.
// A listener is opened once per (vip, port, protocol) and then only *updated* on config
// changes, so reloads never close a listening socket that is still wanted.

import type { AccessLogConfig, ListenerConfig, LoadBalancerConfig } from '../config/model.ts';
import type { Failures } from '../shared/failure.ts';
import type { LeaseClient } from './ratelimit/lease-client.ts';
import type { PoolRuntime } from './routing/pool-runtime.ts';
import type { WorkerTelemetry } from './telemetry/telemetry.ts';
import type { TicketKeyRing } from './tls/ticket-keys.ts';
import type { UpstreamPools } from './upstream/http-pools.ts';

/** Everything a listener reads per connection/request. Replaced wholesale on reload. */
export interface ListenerState {
  readonly lb: LoadBalancerConfig;
  readonly listener: ListenerConfig;
  /** Pools of this load balancer by name (already health-filtered via PoolRuntime). */
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  /**
   * Workers sharing each listening socket, from the snapshot (to split per-listener limits):
   * a resize changes it with the next snapshot, without respawning anyone.
   */
  readonly workerCount: number;
  /** The access log in force: the listener's own, else the top-level one. */
  readonly accessLog?: AccessLogConfig | undefined;
}

/** Process-wide services a listener may use. */
export interface WorkerEnv {
  /** The one failure path: counts by error class and logs (see shared/failure.ts). */
  readonly failures: Failures;
  /** undici Pools per upstream address, shared by all http listeners of this worker. */
  readonly upstreams: UpstreamPools;
  /** Rate-limit token leases from the primary's ledger, shared by every listener. */
  readonly rateLimits: LeaseClient;
  /** TLS session ticket keys from the primary, shared by all https listeners of this worker. */
  readonly tickets: TicketKeyRing;
  /** Metrics counters and access logs (absent in unit tests that build listeners by hand). */
  readonly telemetry?: WorkerTelemetry | undefined;
}

export interface ListenerHandle {
  /** `${protocol}://${vip}:${port}` — identity across snapshots. */
  readonly key: string;
  /** Resolves once bound; rejects with the listen error (EADDRINUSE, EACCES, ...). */
  readonly ready: Promise<void>;
  /** Swap in new state: new connections/requests use it, in-flight ones keep the old one. */
  update(state: ListenerState): void;
  /** In-flight connections (tcp), sessions (udp) or requests (http). */
  active(): number;
  /**
   * Stop accepting now; resolve once in-flight work has finished, or after `deadlineMs`
   * by destroying what is left.
   */
  close(deadlineMs: number): Promise<void>;
}

export type ListenerFactory = (state: ListenerState, env: WorkerEnv) => ListenerHandle;

export function listenerKey(lb: LoadBalancerConfig, l: ListenerConfig): string {
  return `${l.protocol}://${lb.vip.includes(':') ? `[${lb.vip}]` : lb.vip}:${l.port}`;
}

/**
 * One worker's share of a per-listener connection limit (0 = unlimited). Workers share the
 * listening socket, so each enforces limit/workers, rounded down so the total never exceeds
 * the limit — but at least 1, or a small limit would make some workers refuse everything.
 */
export function perWorkerLimit(limit: number, workerCount: number): number {
  return limit > 0 ? Math.max(1, Math.floor(limit / Math.max(1, workerCount))) : 0;
}

/** How failure logs and metrics name a listener: "lb/listener". */
export function listenerName(state: ListenerState): string {
  return `${state.lb.name}/${state.listener.name}`;
}

// Kept here too for the callers that take every listener fact from the context.
export { backendAddress } from './routing/balancer/types.ts';

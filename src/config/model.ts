// The validated configuration model: what every later stage (snapshot, primary, worker) reads.
// YAML/JSON use snake_case; the model uses camelCase. Durations are milliseconds, sizes bytes.
// Every object here is produced by validate.ts, frozen, and never mutated afterwards.

// The enumerations are values (not only types) so the validator lists exactly these.
export const PROTOCOLS = ['tcp', 'udp', 'http', 'https', 'tls_passthrough'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const ALGORITHMS = [
  'round_robin',
  'weighted_round_robin',
  'least_connections',
  'random',
  'p2c',
  'ip_hash',
  'maglev',
] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export const ADMIN_STATES = ['enabled', 'drain', 'disabled'] as const;
export type AdminState = (typeof ADMIN_STATES)[number];

export type ProxyProtocolVersion = 'v1' | 'v2';

import type { Cidr } from '../shared/cidr.ts';

export type { Cidr };

export interface AdminConfig {
  readonly address: string;
  readonly port: number;
  /** Bearer token file for mutating endpoints; created (0600) with a random token if missing. */
  readonly tokenFile: string | undefined;
}

export interface ClusterConfig {
  /** Resolved worker count (`auto` → CPU count at validation time). */
  readonly workers: number;
  /** SIGTERM: how long in-flight work may continue before connections are cut. */
  readonly drainTimeoutMs: number;
}

export type SourceConfig =
  | {
      readonly type: 'file';
      /** Reload on file changes (fs.watch, debounced), exactly like SIGHUP. */
      readonly watch: boolean;
    }
  | { readonly type: 'chainfire'; readonly endpoints: readonly string[]; readonly prefix: string };

export interface RouteMatch {
  /** Lower-case host, exact ("api.example.com") or wildcard ("*.example.com"). */
  readonly host: string | undefined;
  readonly pathPrefix: string | undefined;
  /** Header name (lower-case) → exact value, or "*" = header present. */
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Upper-case methods; empty = any. */
  readonly methods: readonly string[];
}

export interface RouteConfig {
  readonly match: RouteMatch;
  readonly pool: string;
}

export interface ListenerTimeouts {
  /** tcp/http: time to establish the upstream connection. */
  readonly connectMs: number;
  /** tcp: no bytes in either direction for this long → close. udp: session idle expiry. */
  readonly idleMs: number;
  /** http: time for the client to send the full request head. */
  readonly clientHeaderMs: number;
  /** http: max gap between request body chunks from the client. */
  readonly clientBodyMs: number;
  /** http: end of the request head → last body byte (0 = no limit). */
  readonly clientBodyTotalMs: number;
  /** http: keep-alive idle time between requests on a client connection. */
  readonly clientIdleMs: number;
  /** http: time from request sent to upstream response headers. */
  readonly upstreamResponseMs: number;
  /** http: max gap between upstream response body chunks. */
  readonly upstreamBodyMs: number;
}

/** Upper bound of `limits.max_headers` (Node's own cap is 1000 request headers). */
export const MAX_HEADERS_LIMIT = 1000;

export interface ListenerLimits {
  readonly maxHeaderBytes: number;
  /** http: max header lines in a request head (→ 431) and in an upstream response head (→ 502). */
  readonly maxHeaders: number;
  readonly maxBodyBytes: number;
  /** http: bodies up to this size are read whole before an upstream is taken (0 = never). */
  readonly bufferBodyBytes: number;
  /** http: slowest request body accepted, bytes/s over a sliding window (0 = no minimum). */
  readonly minBodyRate: number;
  /** udp: max concurrent client sessions per worker. */
  readonly maxSessions: number;
}

export interface TlsCertificate {
  readonly cert: string; // resolved absolute path
  readonly key: string; // resolved absolute path
}

export interface TlsConfig {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly certificates: readonly TlsCertificate[];
}

export interface RateLimitConfig {
  readonly key: 'client_ip' | 'global';
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
}

export interface ListenerConfig {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly defaultPool: string | undefined;
  readonly routes: readonly RouteConfig[];
  /** Max concurrent client connections for this listener (0 = unlimited). */
  readonly connectionLimit: number;
  readonly timeouts: ListenerTimeouts;
  readonly limits: ListenerLimits;
  /** Peers allowed to assert the client address (X-Forwarded-For, PROXY protocol). */
  readonly trustedProxies: readonly Cidr[];
  /** Accept a PROXY v1/v2 header from trusted peers (tcp, http). */
  readonly acceptProxyProtocol: boolean;
  readonly tls: TlsConfig | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
}

export const HEALTH_CHECK_TYPES = ['tcp', 'http', 'https'] as const;

/** An inclusive HTTP status range, e.g. 200-399. */
export interface StatusRange {
  readonly from: number;
  readonly to: number;
}

export interface HealthCheckConfig {
  readonly type: (typeof HEALTH_CHECK_TYPES)[number];
  readonly path: string;
  /** http/https: request method (upper-case). */
  readonly method: string;
  /** http/https: Host header; undefined = the backend's address:port. */
  readonly host: string | undefined;
  /** http/https: statuses that count as healthy. */
  readonly expectStatus: readonly StatusRange[];
  /** http/https: the body (its first 64 KiB) must contain this. */
  readonly bodyContains: string | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Each wait between probes is interval + a random 0..jitter. */
  readonly jitterMs: number;
  readonly rise: number;
  readonly fall: number;
}

export interface RetryConfig {
  /** Further tries on other backends after the first (0 = never retry). */
  readonly attempts: number;
  /** Idempotent requests whose response has one of these statuses are tried elsewhere. */
  readonly onStatus: readonly number[];
  /** Retries in flight may be at most this share of the pool's requests in flight... */
  readonly budgetPercent: number;
  /** ...but this many are always allowed. */
  readonly budgetMin: number;
  /** A Retry-After longer than this is not waited for: the response goes to the client. */
  readonly maxRetryAfterMs: number;
}

export interface OutlierDetectionConfig {
  /** Consecutive upstream failures (all workers together) that eject a backend. */
  readonly consecutiveFailures: number;
  /** Response statuses that count as failures too (e.g. 502, 503, 504). */
  readonly onStatus: readonly number[];
  /** The n-th ejection lasts n × this... */
  readonly baseEjectionMs: number;
  /** ...up to this. */
  readonly maxEjectionMs: number;
  /** At most this share of the pool's backends may be ejected at once (at least one). */
  readonly maxEjectionPercent: number;
}

export interface BackendConfig {
  /** Stable id within the pool; defaults to "address:port". */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly adminState: AdminState;
  /** Circuit breaker: max concurrent connections to this backend, all workers (0 = unlimited). */
  readonly maxConnections: number;
  /** Circuit breaker: max requests in flight to this backend, all workers (0 = unlimited). */
  readonly maxRequests: number;
}

export interface PoolConfig {
  readonly name: string;
  readonly algorithm: Algorithm;
  /** Send a PROXY protocol header to each backend connection (tcp listeners). */
  readonly proxyProtocol: ProxyProtocolVersion | undefined;
  readonly healthCheck: HealthCheckConfig | undefined;
  /** http: requests that may wait for a busy backend, per worker (0 = none wait). */
  readonly maxQueue: number;
  /** http: how long a request may wait in that queue. */
  readonly queueTimeoutMs: number;
  /** http: retries on another backend, bounded by a budget. */
  readonly retry: RetryConfig;
  /** Passive health: eject backends that keep failing (undefined = off). */
  readonly outlierDetection: OutlierDetectionConfig | undefined;
  /** Below this percentage of healthy backends, use all enabled ones (0 = off). */
  readonly panicThreshold: number;
  /** A recovered or added backend's share of new traffic ramps up over this long (0 = off). */
  readonly slowStartMs: number;
  readonly backends: readonly BackendConfig[];
}

export interface LoadBalancerConfig {
  readonly name: string;
  readonly org: string;
  readonly project: string;
  readonly vip: string;
  readonly listeners: readonly ListenerConfig[];
  readonly pools: readonly PoolConfig[];
}

// The config is split as Traefik splits it (pkg/config/static vs pkg/config/dynamic): the
// static part sets up the process and always comes from the local file; the dynamic part is
// what is served and comes from the source (the file today, Chainfire later). Only the dynamic
// part goes to workers, so the data plane cannot depend on process settings by accident.

/**
 * Process settings, read from the local file. `admin` and `source` are read once at start (a
 * change on reload is logged as "takes effect on restart"); `cluster` is re-applied by the
 * primary on every reload (workers are forked or drained to match).
 */
export interface StaticConfig {
  readonly admin: AdminConfig;
  readonly cluster: ClusterConfig;
  readonly source: SourceConfig;
}

/** The served configuration: applied live by the workers on every reload, never "on restart". */
export interface DynamicConfig {
  readonly loadBalancers: readonly LoadBalancerConfig[];
}

export interface Config {
  readonly static: StaticConfig;
  readonly dynamic: DynamicConfig;
}

/** Globally unique key of a backend: "lb/pool/backendId". Health state is keyed by it. */
export function backendKey(lb: string, pool: string, backendId: string): string {
  return `${lb}/${pool}/${backendId}`;
}

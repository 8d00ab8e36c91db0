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
import type { AccessLogConfig } from './access-log.ts';

export type { AccessLogConfig, Cidr };

export interface AdminConfig {
  readonly address: string;
  readonly port: number;
  /** Bearer token file for mutating endpoints; created (0600) with a random token if missing. */
  readonly tokenFile: string | undefined;
  /**
   * Tenant tokens for the registration endpoints: a YAML/JSON file mapping token → { org,
   * project }. Absent: those endpoints answer 401.
   */
  readonly tenantTokens?: string | undefined;
  /** Serve GET /metrics without the bearer token (for a Prometheus on the management network). */
  readonly metricsOpen: boolean;
  /**
   * Source file only: where the admin API's backend overrides are persisted (and read back at
   * start). Default `admin-state.json` in token_file's directory, else `.fiberlb/admin-state.json`
   * next to the config file. Undefined with Chainfire (the actions write the store).
   */
  readonly stateFile?: string | undefined;
}

export interface ClusterConfig {
  /** Resolved worker count (`auto` → CPU count at validation time). */
  readonly workers: number;
  /** SIGTERM: how long in-flight work may continue before connections are cut. */
  readonly drainTimeoutMs: number;
  /**
   * TLS session ticket keys are replaced this often (the previous key still opens tickets for
   * one more interval, so a ticket lives at most two intervals).
   */
  readonly ticketRotationMs: number;
  /**
   * The old-generation size each worker's V8 heap starts with, in MiB (0 = V8's own sizing):
   * keeps V8 from running a full GC after every scavenge under steady load (worker-heap.ts).
   */
  readonly workerOldSpaceMiB: number;
}

export type SourceConfig =
  | {
      readonly type: 'file';
      /** Reload on file changes (fs.watch, debounced), exactly like SIGHUP. */
      readonly watch: boolean;
    }
  | ChainfireSourceConfig;

export interface ChainfireSourceConfig {
  readonly type: 'chainfire';
  /** Every member's client URL (http://HOST:PORT, https:// with `tls`). */
  readonly endpoints: readonly string[];
  /** Key prefix of FiberLB's keys, with a trailing '/'. */
  readonly prefix: string;
  /** Wire API: etcd v3 (default) or Chainfire's own chainfire.v1 service names. */
  readonly api: 'etcd' | 'chainfire';
  /** TLS to the store: CA bundle, and an optional client certificate + key (absolute paths). */
  readonly tls: { readonly ca: string; readonly cert?: string; readonly key?: string } | undefined;
  readonly username: string | undefined;
  /** File holding the password for `username` (read at start; never logged). */
  readonly passwordFile: string | undefined;
  /** Where each applied snapshot is persisted; boot serves it while the store is unreachable. */
  readonly lastGood: string;
}

export interface RouteMatch {
  /** Lower-case host, exact ("api.example.com") or wildcard ("*.example.com"). */
  readonly host: string | undefined;
  /** tls_passthrough only: the ClientHello's server_name, exact or wildcard, lower-case. */
  readonly sni: string | undefined;
  readonly pathPrefix: string | undefined;
  /** Header name (lower-case) → exact value, or "*" = header present. */
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Upper-case methods; empty = any. */
  readonly methods: readonly string[];
}

export interface RouteConfig {
  readonly match: RouteMatch;
  readonly pool: string;
  /** Checked after the listener's own limits; every one must pass. */
  readonly rateLimits: readonly RateLimitConfig[];
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
  /** http: a WebSocket tunnel with no bytes in either direction for this long is closed. */
  readonly tunnelIdleMs: number;
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
  /** http: after an early response, the most body bytes read and dropped to keep the
   * connection (more: closed after the response; 0 = always close). */
  readonly drainBodyBytes: number;
  /** http: slowest request body accepted, bytes/s over a sliding window (0 = no minimum). */
  readonly minBodyRate: number;
  /** udp: max concurrent client sessions per worker. */
  readonly maxSessions: number;
}

export interface TlsCertificate {
  readonly cert: string; // resolved absolute path
  readonly key: string; // resolved absolute path
  /**
   * The files' PEM text, read by the primary when it validates (src/config/material.ts), so
   * workers never touch the filesystem and a new certificate is an ordinary config change.
   * undefined only when a config was validated without reading files (unit tests).
   */
  readonly certPem: string | undefined;
  readonly keyPem: string | undefined;
  /** DNS names the certificate covers (SAN DNS entries, else the CN), lower-case. */
  readonly names: readonly string[];
}

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];
export const CLIENT_AUTH_MODES = ['off', 'optional', 'required'] as const;
export type ClientAuth = (typeof CLIENT_AUTH_MODES)[number];

/** Mozilla's "intermediate" TLS 1.2 cipher list (forward secret AEAD only); TLS 1.3 suites are OpenSSL's. */
export const DEFAULT_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:' +
  'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';
export const DEFAULT_ECDH_CURVES = 'X25519:P-256:P-384';

export interface TlsConfig {
  readonly minVersion: TlsVersion;
  readonly certificates: readonly TlsCertificate[];
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are always on). */
  readonly ciphers: string;
  /** OpenSSL group list, "X25519:P-256". */
  readonly ecdhCurves: string;
  /** Offer h2 in ALPN (http/1.1 always). */
  readonly http2: boolean;
  /** A ClientHello whose SNI no certificate covers: the first certificate, or a handshake failure. */
  readonly unknownSni: 'default' | 'refuse';
  /** Session tickets (keys from the primary, shared by all workers, rotated). */
  readonly sessionTickets: boolean;
  readonly clientAuth: ClientAuth;
  /** CA bundle for client certificates (path), required unless client_auth is off. */
  readonly clientCa: string | undefined;
  readonly clientCaPem: string | undefined;
  /**
   * Request headers carrying a verified client certificate's subject and SHA-256 fingerprint
   * (lower-case names). Always removed from what clients send on this listener.
   */
  readonly clientCertHeaders: { readonly subject: string; readonly fingerprint: string };
}

/** http listeners: answer every request with a 308 to https. */
export interface RedirectHttpsConfig {
  /** Port in the Location (443 is left out). */
  readonly port: number;
}

/** https listeners: Strict-Transport-Security on every proxied response. */
export interface HstsConfig {
  readonly maxAgeS: number;
  readonly includeSubdomains: boolean;
  readonly preload: boolean;
}

/** What a rate limit counts by: one bucket per client address (prefix), header value, host, route, or one. */
export const RATE_LIMIT_KEYS = ['client_ip', 'header', 'host', 'route', 'global'] as const;
export type RateLimitKey = (typeof RATE_LIMIT_KEYS)[number];

/** Largest `rate` accepted (per `per`): beyond it a limit is a typo, not a policy. */
export const MAX_RATE = 1_000_000;
/** Largest `burst` accepted. */
export const MAX_BURST = 10_000_000;

/** One token bucket (a `rate_limit` list entry, or a listener's `connection_rate_limit`). */
export interface RateLimitConfig {
  /** Unique within its list; names the limit in RateLimit-Policy headers and logs. */
  readonly name: string;
  readonly key: RateLimitKey;
  /** key header: the lower-case header name. */
  readonly header: string | undefined;
  /** key client_ip: prefix length applied to IPv4 clients (32 = one bucket per address). */
  readonly prefix: number;
  /** key client_ip: prefix length applied to IPv6 clients. */
  readonly prefixV6: number;
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
  /** dry_run: counts and logs what would be limited, never refuses. */
  readonly mode: 'enforce' | 'dry_run';
  /** local: one bucket per FiberLB instance (exact across its workers); global: shared via rate_limit_store. */
  readonly scope: 'local' | 'global';
}

/** Where `scope: global` limits keep their buckets (static: read once at start). */
export interface RateLimitStoreConfig {
  readonly type: 'redis';
  readonly address: string;
  readonly port: number;
  /** Prefix of every Redis key FiberLB writes. */
  readonly keyPrefix: string;
  /** A Redis call that takes longer fails over to local limits. */
  readonly timeoutMs: number;
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
  /** http/https: request limits, every one must pass (route limits add to these). */
  readonly rateLimits: readonly RateLimitConfig[];
  /** Clients (by the same client address the limits key on) that no limit applies to. */
  readonly rateLimitAllow: readonly Cidr[];
  /** New connections per client address (key client_ip), checked at accept. */
  readonly connectionRateLimit: RateLimitConfig | undefined;
  /** Concurrent connections per client address (0 = unlimited), split across workers. */
  readonly maxConnectionsPerIp: number;
  /** http only: 308 every request to https (see RedirectHttpsConfig). */
  readonly redirectHttps: RedirectHttpsConfig | undefined;
  /** https only. */
  readonly hsts: HstsConfig | undefined;
  /** This listener's access log (replaces the top-level one); absent = the top-level one. */
  readonly accessLog?: AccessLogConfig | undefined;
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

/** A pool's `tls`: TLS to its backends. The primary read the PEM files; workers get their text. */
export interface UpstreamTlsConfig {
  /** CA bundle (PEM text) to verify backends with; undefined = Node's default CA store. */
  readonly ca: string | undefined;
  /** Verify the backend's certificate chain and name (false only when the config says so). */
  readonly verify: boolean;
  /** SNI and the name verified; undefined = the backend address when it is a name, else none. */
  readonly servername: string | undefined;
  /** Client certificate and key (PEM text) presented to backends that ask for one. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
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
  /** http/https listeners: TLS to the backends (undefined = plain TCP). */
  readonly tls: UpstreamTlsConfig | undefined;
  /** http/https listeners: HTTP/2 to the backends (ALPN over TLS, prior knowledge without). */
  readonly http2: boolean;
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
  /** Redis for `scope: global` rate limits; undefined = none configured. */
  readonly rateLimitStore: RateLimitStoreConfig | undefined;
  /** Top-level access log for every listener without its own (re-applied on reload). */
  readonly accessLog?: AccessLogConfig | undefined;
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

// Hand-built model literals and listener plumbing for the HTTP listener tests and benchmark:
// a ListenerState without the config loader, a WorkerEnv, small backends.

import http from 'node:http';
import type net from 'node:net';
import type { TestContext } from 'node:test';
import type {
  BackendConfig,
  HealthCheckConfig,
  ListenerConfig,
  LoadBalancerConfig,
  PoolConfig,
  RouteConfig,
} from '../../src/config/model.ts';
import { DEFAULT_RETRY } from '../../src/config/validate-health.ts';
import { Failures } from '../../src/shared/failure.ts';
import type { ListenerHandle, ListenerState, WorkerEnv } from '../../src/worker/context.ts';
import { createHttpListener } from '../../src/worker/http/listener.ts';
import { PoolRuntime } from '../../src/worker/routing/pool-runtime.ts';
import { TicketKeyRing } from '../../src/worker/tls/ticket-keys.ts';
import { UpstreamPools } from '../../src/worker/upstream/http-pools.ts';
import { freeTcpPort } from './net.ts';
import { inProcessLeases } from './rate-limit.ts';

export const LB = 'lb1';

export function backend(port: number, id = `127.0.0.1:${port}`, address = '127.0.0.1'): BackendConfig {
  return { id, address, port, weight: 1, adminState: 'enabled', maxConnections: 0, maxRequests: 0 };
}

export function poolConfig(
  name: string,
  backends: BackendConfig[],
  algorithm: PoolConfig['algorithm'] = 'round_robin',
): PoolConfig {
  return {
    name,
    algorithm,
    proxyProtocol: undefined,
    healthCheck: undefined,
    maxQueue: 1024,
    queueTimeoutMs: 5000,
    tls: undefined,
    http2: false,
    retry: DEFAULT_RETRY,
    outlierDetection: undefined,
    panicThreshold: 0,
    slowStartMs: 0,
    backends,
  };
}

/** A pool's health check as the validator fills it in (http GET /, 2 s, 1 s, rise 2, fall 3), with `over` on top. */
export function healthCheck(over: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return {
    type: 'http',
    path: '/',
    method: 'GET',
    host: undefined,
    expectStatus: [{ from: 200, to: 399 }],
    bodyContains: undefined,
    intervalMs: 2000,
    timeoutMs: 1000,
    jitterMs: 0,
    rise: 2,
    fall: 3,
    ...over,
  };
}

export function route(pool: string, m: Partial<RouteConfig['match']> = {}): RouteConfig {
  return {
    pool,
    match: { host: undefined, sni: undefined, pathPrefix: undefined, headers: [], methods: [], ...m },
    rateLimits: [],
  };
}

export type ListenerOverrides = Partial<Omit<ListenerConfig, 'timeouts' | 'limits'>> & {
  timeouts?: Partial<ListenerConfig['timeouts']>;
  limits?: Partial<ListenerConfig['limits']>;
};

export function listenerConfig(port: number, o: ListenerOverrides = {}): ListenerConfig {
  const { timeouts, limits, ...rest } = o;
  return {
    name: 'web',
    port,
    protocol: 'http',
    defaultPool: 'web',
    routes: [],
    connectionLimit: 0,
    trustedProxies: [],
    acceptProxyProtocol: false,
    tls: undefined,
    rateLimits: [],
    rateLimitAllow: [],
    connectionRateLimit: undefined,
    maxConnectionsPerIp: 0,
    redirectHttps: undefined,
    hsts: undefined,
    ...rest,
    timeouts: {
      connectMs: 2000,
      idleMs: 60_000,
      clientHeaderMs: 10_000,
      clientBodyMs: 10_000,
      clientIdleMs: 5000,
      upstreamResponseMs: 10_000,
      upstreamBodyMs: 10_000,
      // Off unless a test sets them (these tests exercise streaming bodies).
      clientBodyTotalMs: 0,
      tunnelIdleMs: 60_000,
      ...timeouts,
    },
    limits: {
      maxHeaderBytes: 16_384,
      maxHeaders: 100,
      maxBodyBytes: 0,
      maxSessions: 1000,
      bufferBodyBytes: 0,
      drainBodyBytes: 1024 * 1024,
      minBodyRate: 0,
      ...limits,
    },
  };
}

/** A ListenerState for one listener over `pools` (health: all up unless `down` says so). */
export function listenerState(
  listener: ListenerConfig,
  pools: PoolConfig[],
  down: ReadonlySet<string> = new Set(),
  workerCount = 1,
): ListenerState {
  const lb: LoadBalancerConfig = {
    name: LB,
    org: 'org',
    project: 'proj',
    vip: '127.0.0.1',
    listeners: [listener],
    pools,
  };
  return {
    lb,
    listener,
    pools: new Map(pools.map((p) => [p.name, new PoolRuntime(LB, p, down)])),
    workerCount,
  };
}

export function workerEnv(): WorkerEnv {
  return {
    failures: new Failures(),
    upstreams: new UpstreamPools(),
    rateLimits: inProcessLeases(),
    tickets: new TicketKeyRing(),
  };
}

export interface TestBackend {
  readonly port: number;
  readonly server: http.Server;
  close(): Promise<void>;
}

/** An http backend on 127.0.0.1 with the given handler; close() also cuts open connections. */
export async function startBackend(handler: http.RequestListener): Promise<TestBackend> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export interface RunningHttpListener {
  readonly port: number;
  readonly state: ListenerState;
  readonly handle: ListenerHandle;
  readonly env: WorkerEnv;
}

/**
 * An in-process http listener on a free loopback port over `pools`, closed (with its upstream
 * pools) when the test ends.
 */
export async function startHttpListener(
  t: TestContext,
  o: ListenerOverrides,
  pools: PoolConfig[],
  opts: { down?: Set<string>; workerCount?: number; env?: WorkerEnv } = {},
): Promise<RunningHttpListener> {
  const port = await freeTcpPort();
  const state = listenerState(listenerConfig(port, o), pools, opts.down, opts.workerCount);
  const env = opts.env ?? workerEnv();
  const handle = createHttpListener(state, env);
  await handle.ready;
  t.after(async () => {
    await handle.close(500);
    await env.upstreams.close();
  });
  return { port, state, handle, env };
}

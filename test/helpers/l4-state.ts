// Hand-built ListenerState / WorkerEnv for the tcp and udp listener tests (no config loader).

import type {
  BackendConfig,
  ListenerConfig,
  LoadBalancerConfig,
  PoolConfig,
  Protocol,
} from '../../src/config/model.ts';
import { DEFAULT_RETRY } from '../../src/config/validate-health.ts';
import { Failures } from '../../src/shared/failure.ts';
import type { ListenerState, WorkerEnv } from '../../src/worker/context.ts';
import { PoolRuntime } from '../../src/worker/routing/pool-runtime.ts';
import { TicketKeyRing } from '../../src/worker/tls/ticket-keys.ts';
import { UpstreamPools } from '../../src/worker/upstream/http-pools.ts';
import { HOST } from './net.ts';
import { inProcessLeases } from './rate-limit.ts';

export const L4_LB = 'l4lb';

export function l4Pool(
  name: string,
  ports: readonly number[],
  proxyProtocol: PoolConfig['proxyProtocol'] = undefined,
): PoolConfig {
  const backends: BackendConfig[] = ports.map((port) => ({
    id: `${HOST}:${port}`,
    address: HOST,
    port,
    weight: 1,
    adminState: 'enabled',
    maxConnections: 0,
    maxRequests: 0,
  }));
  return {
    name,
    algorithm: 'round_robin',
    proxyProtocol,
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

export type L4ListenerOverrides = Partial<Omit<ListenerConfig, 'timeouts' | 'limits'>> & {
  timeouts?: Partial<ListenerConfig['timeouts']>;
  limits?: Partial<ListenerConfig['limits']>;
};

export function l4Listener(protocol: Protocol, port: number, o: L4ListenerOverrides = {}): ListenerConfig {
  const { timeouts, limits, ...rest } = o;
  return {
    name: `${protocol}-${port}`,
    port,
    protocol,
    defaultPool: 'main',
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
      connectMs: 1000,
      idleMs: 10_000,
      clientHeaderMs: 1000,
      clientBodyMs: 1000,
      clientIdleMs: 1000,
      upstreamResponseMs: 1000,
      upstreamBodyMs: 1000,
      clientBodyTotalMs: 0,
      tunnelIdleMs: 60_000,
      ...timeouts,
    },
    limits: {
      maxHeaderBytes: 16384,
      maxHeaders: 100,
      maxBodyBytes: 1 << 20,
      maxSessions: 1000,
      bufferBodyBytes: 0,
      drainBodyBytes: 1024 * 1024,
      minBodyRate: 0,
      ...limits,
    },
  };
}

/** A ListenerState whose pools are built fresh (nothing marked down). */
export function l4State(
  listener: ListenerConfig,
  pools: readonly PoolConfig[],
  workerCount = 1,
): ListenerState {
  const lb: LoadBalancerConfig = {
    name: L4_LB,
    org: 'org',
    project: 'proj',
    vip: HOST,
    listeners: [listener],
    pools,
  };
  return {
    lb,
    listener,
    pools: new Map(pools.map((p) => [p.name, new PoolRuntime(L4_LB, p, new Set())])),
    workerCount,
  };
}

export function l4Env(): WorkerEnv {
  return {
    failures: new Failures(),
    upstreams: new UpstreamPools(),
    rateLimits: inProcessLeases(),
    tickets: new TicketKeyRing(),
  };
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

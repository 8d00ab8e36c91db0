// One keep-alive undici Pool per upstream (address, port, connect timeout), shared by every
// http listener of this worker and created on first use, each behind its admission Gate
// (admission.ts): at most UPSTREAM_CONNECTIONS requests in flight, the rest wait in the
// gate's FIFO under their pool's max_queue / queue_timeout. The connect timeout is part of the
// key because undici fixes it per Pool; listeners almost always share one value, so this
// costs nothing in practice and keeps per-listener timeouts exact.
// On reload, retain() closes the pools of backends that left the config once nobody waits at
// their gate; undici's close() lets their in-flight requests finish first.

import { buildConnector, Pool } from 'undici';
import type { BackendTarget } from '../routing/balancer/types.ts';
import type { UpstreamStats } from '../telemetry/stats.ts';
import { Gate } from './admission.ts';

/**
 * Max upstream connections — and so requests in flight — per backend per worker. Further
 * requests wait at the Gate, never inside undici: with pipelining 1 and as many admitted
 * requests as connections, an admitted request always has a connection of its own (at most
 * one event-loop turn in undici's queue while a finished connection frees itself).
 */
export const UPSTREAM_CONNECTIONS = 256;
/** Below the usual 5 s backend keep-alive, so we rarely reuse a socket the backend is closing. */
export const UPSTREAM_KEEPALIVE_MS = 4000;

/** Identity of a backend address for retain(): `${address}:${port}` ("10.0.0.1:80", "::1:80"). */
export function upstreamKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** One backend address as the HTTP exchange uses it: the undici Pool and its gate. */
export class Upstream {
  readonly gate: Gate;
  constructor(
    readonly pool: Pool,
    readonly hostPort: string,
    readonly connectMs: number,
    capacity: number,
  ) {
    this.gate = new Gate(capacity);
  }
}

export interface UpstreamPoolsOptions {
  /** Connections (= admitted requests) per upstream; UPSTREAM_CONNECTIONS unless a test says. */
  readonly connections?: number;
  /** Where connect times go, per backend address (the worker's telemetry). */
  readonly stats?: (address: string) => UpstreamStats;
}

export class UpstreamPools {
  /** `${hostPort}/${connectMs}` → upstream. */
  private readonly pools = new Map<string, Upstream>();
  /** Per-target cache: the hot path does one WeakMap lookup instead of building a key. */
  private readonly byTarget = new WeakMap<BackendTarget, Upstream>();
  private readonly connections: number;
  private readonly stats: ((address: string) => UpstreamStats) | undefined;

  constructor(opts: UpstreamPoolsOptions = {}) {
    this.connections = opts.connections ?? UPSTREAM_CONNECTIONS;
    this.stats = opts.stats;
  }

  get(t: BackendTarget, connectMs: number): Upstream {
    const cached = this.byTarget.get(t);
    if (cached !== undefined && cached.connectMs === connectMs && !cached.pool.closed) return cached;
    const hostPort = upstreamKey(t.address, t.port);
    const key = `${hostPort}/${connectMs}`;
    let e = this.pools.get(key);
    if (e === undefined || e.pool.closed) {
      const host = t.address.includes(':') ? `[${t.address}]` : t.address;
      const pool = new Pool(`http://${host}:${t.port}`, {
        connections: this.connections,
        pipelining: 1,
        keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
        connectTimeout: connectMs,
        ...(this.stats ? { connect: timedConnector(connectMs, this.stats(hostPort)) } : {}),
      });
      e = new Upstream(pool, hostPort, connectMs, this.connections);
      this.pools.set(key, e);
    }
    this.byTarget.set(t, e);
    return e;
  }

  /** Number of open pools (for tests and stats). */
  size(): number {
    return this.pools.size;
  }

  /**
   * Keep only pools whose backend is in `keys` (from upstreamKey); close the others
   * gracefully. Call after listeners were updated, so no new request picks a removed backend.
   */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, e] of this.pools) {
      if (keep.has(e.hostPort)) continue;
      this.pools.delete(key);
      // Requests already waiting at its gate were routed before the reload: let them go first.
      const pool = e.pool;
      e.gate.whenEmpty(() => pool.close().catch(noop));
    }
  }

  /** Close every pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((e) => e.pool.close().catch(noop)));
  }
}

function noop(): void {}

/**
 * undici's own connector (as Pool would build it from connectTimeout), timed: one
 * performance.now() pair per new connection, nothing per request.
 */
function timedConnector(connectMs: number, stats: UpstreamStats): buildConnector.connector {
  const base = buildConnector({ timeout: connectMs });
  return (opts, callback) => {
    const t0 = performance.now();
    return base(opts, (err, socket) => {
      if (err) stats.connectErrors++;
      else {
        stats.connects++;
        stats.connectTime.observe((performance.now() - t0) / 1000);
      }
      // undici's callback type is a union of (err, null) and (null, socket).
      (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
    });
  };
}

// One keep-alive undici Pool per upstream (address, port, connect timeout), shared by every
// http listener of this worker and created on first use. The connect timeout is part of the
// key because undici fixes it per Pool; listeners almost always share one value, so this
// costs nothing in practice and keeps per-listener timeouts exact.
// On reload, retain() closes the pools of backends that left the config; undici's close()
// lets their queued and in-flight requests finish first.

import { Pool } from 'undici';
import type { BackendTarget } from '../routing/balancer/types.ts';

/** Max upstream connections per backend per worker; further requests queue inside undici. */
export const UPSTREAM_CONNECTIONS = 256;
/** Below the usual 5 s backend keep-alive, so we rarely reuse a socket the backend is closing. */
export const UPSTREAM_KEEPALIVE_MS = 4000;

/** Identity of a backend address for retain(): `${address}:${port}` ("10.0.0.1:80", "::1:80"). */
export function upstreamKey(address: string, port: number): string {
  return `${address}:${port}`;
}

interface Entry {
  readonly pool: Pool;
  readonly hostPort: string;
  readonly connectMs: number;
}

export class UpstreamPools {
  /** `${hostPort}/${connectMs}` → entry. */
  private readonly pools = new Map<string, Entry>();
  /** Per-target cache: the hot path does one WeakMap lookup instead of building a key. */
  private readonly byTarget = new WeakMap<BackendTarget, Entry>();

  get(t: BackendTarget, connectMs: number): Pool {
    const cached = this.byTarget.get(t);
    if (cached !== undefined && cached.connectMs === connectMs && !cached.pool.closed) return cached.pool;
    const hostPort = upstreamKey(t.address, t.port);
    const key = `${hostPort}/${connectMs}`;
    let e = this.pools.get(key);
    if (e === undefined || e.pool.closed) {
      const host = t.address.includes(':') ? `[${t.address}]` : t.address;
      const pool = new Pool(`http://${host}:${t.port}`, {
        connections: UPSTREAM_CONNECTIONS,
        pipelining: 1,
        keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
        connectTimeout: connectMs,
      });
      e = { pool, hostPort, connectMs };
      this.pools.set(key, e);
    }
    this.byTarget.set(t, e);
    return e.pool;
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
      e.pool.close().catch(noop);
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

// One keep-alive undici Pool per upstream (address, port, connect timeout), shared by every
// http listener of this worker and created on first use, each behind its admission Gate
// (admission.ts): at most UPSTREAM_CONNECTIONS requests in flight, the rest wait in the
// gate's FIFO under their pool's max_queue / queue_timeout. The connect timeout is part of the
// key because undici fixes it per Pool; listeners almost always share one value, so this
// costs nothing in practice and keeps per-listener timeouts exact.
// On reload, retain() closes the pools of backends that left the config once nobody waits at
// their gate; undici's close() lets their in-flight requests finish first.
// A pool's `tls` / `http2` (transport.ts) are part of the key too: pools that differ there
// never share connections, and a reload that changes them gets fresh connections.
// HTTP/2 upstreams (`http2` pools) multiplex: requests without a stream body share few
// connections, up to 100 streams each (h2-mux.ts, which also says how undici's pitfalls are
// handled); requests with a stream body go to a second Pool with a connection each (undici
// would hold every other request of their connection back). The gate bounds requests in
// flight per backend either way: for h1 that is also the connections, for h2 the streams.

import { buildConnector, Pool } from 'undici';
import type { PoolConfig } from '../../config/model.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import type { UpstreamStats } from '../telemetry/stats.ts';
import { Gate } from './admission.ts';
import { MuxPool } from './h2-mux.ts';
import { PLAIN_TRANSPORT, transportKey, upstreamTransport } from './transport.ts';

/**
 * Max requests in flight — and so upstream connections — per backend per worker. Further
 * requests wait at the Gate, never inside undici: with pipelining 1 and as many admitted
 * requests as connections, an admitted request always has a connection of its own (at most
 * one event-loop turn in undici's queue while a finished connection frees itself). An h2
 * upstream needs fewer connections for as many streams; it is bounded by the same number.
 */
export const UPSTREAM_CONNECTIONS = 256;
/** Below the usual 5 s backend keep-alive, so we rarely reuse a socket the backend is closing. */
export const UPSTREAM_KEEPALIVE_MS = 4000;

/**
 * Identity of a backend address and transport for retain(): `${address}:${port}`
 * ("10.0.0.1:80", "::1:80"), then `/${transportKey(pool)}` for tls / http2 pools.
 */
export function upstreamKey(address: string, port: number, transport = PLAIN_TRANSPORT): string {
  return transport === PLAIN_TRANSPORT ? `${address}:${port}` : `${address}:${port}/${transport}`;
}

/** One backend address as the HTTP exchange uses it: the undici Pool(s) and its gate. */
export class Upstream {
  readonly gate: Gate;
  constructor(
    /** A connection per request in flight: every request, or for h2 those with a stream body. */
    readonly pool: Pool,
    /** http2 pools: the requests without a stream body, multiplexed (h2-mux.ts). */
    readonly mux: MuxPool | undefined,
    /** upstreamKey(): address, port and transport. */
    readonly hostPort: string,
    readonly connectMs: number,
    capacity: number,
    /** transportKey() of the pools it serves. */
    readonly transport: string,
    /** The undici `servername` of every request to it (transport.ts says why). */
    readonly servername: string,
  ) {
    this.gate = new Gate(capacity);
  }

  /** Where a request with this body goes (a Buffer or none; else a stream). */
  dispatcherFor(body: unknown): Pick<Pool, 'dispatch'> {
    const mux = this.mux;
    return mux !== undefined && (body === null || Buffer.isBuffer(body)) ? mux : this.pool;
  }

  get closed(): boolean {
    return this.pool.closed;
  }

  /** Close gracefully: in-flight requests finish first. */
  close(): Promise<void> {
    const p = this.pool.close().catch(noop);
    return this.mux === undefined ? p : Promise.all([p, this.mux.close()]).then(noop);
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

  /** The upstream for target `t` of the pool configured by `cfg` (undefined: plain HTTP/1.1). */
  get(t: BackendTarget, connectMs: number, cfg?: PoolConfig): Upstream {
    const cached = this.byTarget.get(t);
    // transportKey() is '' for plain pools: no lookup added to their hot path.
    const transport = cfg === undefined ? PLAIN_TRANSPORT : transportKey(cfg);
    if (
      cached !== undefined &&
      cached.connectMs === connectMs &&
      cached.transport === transport &&
      !cached.closed
    )
      return cached;
    const hostPort = upstreamKey(t.address, t.port, transport);
    const key = `${hostPort}/${connectMs}`;
    let e = this.pools.get(key);
    if (e === undefined || e.closed) {
      const how = upstreamTransport(t.address, t.port, cfg, connectMs);
      const options: Pool.Options = {
        connections: this.connections,
        pipelining: 1,
        keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
        connectTimeout: connectMs,
        ...how.options,
      };
      // Connect time and errors for /metrics, around the transport's own connector (TLS, h2c).
      if (this.stats) options.connect = timedConnector(connectMs, this.stats(hostPort), how.options.connect);
      const pool = new Pool(how.origin, options);
      const mux = cfg?.http2 === true ? new MuxPool(how.origin, options) : undefined;
      e = new Upstream(pool, mux, hostPort, connectMs, this.connections, transport, how.servername);
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
      const up = e;
      e.gate.whenEmpty(() => void up.close());
    }
  }

  /** Close every pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}

function noop(): void {}

/**
 * undici's own connector (as Pool would build it from connectTimeout), timed: one
 * performance.now() pair per new connection, nothing per request.
 */
function timedConnector(
  connectMs: number,
  stats: UpstreamStats,
  connect: Pool.Options['connect'],
): buildConnector.connector {
  const base = typeof connect === 'function' ? connect : buildConnector({ timeout: connectMs, ...connect });
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

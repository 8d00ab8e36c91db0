// A worker's counters: plain numbers and fixed histograms in objects that live as long as the
// worker, found by the hot path through object-keyed maps (no per-request key strings, no
// per-request allocation) and turned into metric families only when the primary asks.
//
// Series are kept per (listener, route, pool, backend) for HTTP requests, per listener for
// connections and bytes, and per backend address for upstream connects: all bounded by the
// config, never by traffic (no client addresses, no paths).

import { Histogram } from '../../shared/metrics.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import type { RouteTarget } from '../routing/router.ts';

export interface CellLabels {
  /** "lb/listener" */
  readonly listener: string;
  /** The route's index in the listener ("0", "1", ...), "default", or "" when none matched. */
  readonly route: string;
  /** "lb/pool", or "" */
  readonly pool: string;
  /** "lb/pool/backend_id", or "" when no backend was picked. */
  readonly backend: string;
}

/** One HTTP series: every request that ended with this listener, route, pool and backend. */
export class RequestCell {
  requests = 0;
  /** By status class index (shared/metrics STATUS_CLASSES): 0 none, 1 1xx .. 5 5xx. */
  readonly byClass = new Float64Array(6);
  /** Request arrival → response closed (finished or cut). */
  readonly duration = new Histogram();
  /** Request handed to the upstream → response head from it. */
  readonly firstByte = new Histogram();
  /** Request handed to the upstream → response complete from it. */
  readonly upstream = new Histogram();
  requestBodyBytes = 0;
  responseBodyBytes = 0;
  constructor(readonly labels: CellLabels) {}
}

/** Connections and bytes of one listener (any protocol), plus its HTTP request series. */
export class ListenerStats {
  /** Accepted client connections (udp: sessions). */
  connections = 0;
  /** Of those, closed; active = connections - closed. */
  closed = 0;
  /** Bytes read from / written to clients (tcp/http: counted when a connection closes; udp: per datagram). */
  bytesIn = 0;
  bytesOut = 0;
  /** By "route\0pool\0backend": the persistent series. */
  readonly cells = new Map<string, RequestCell>();
  /** RouteTarget (per compiled route table) → BackendTarget → cell: the hot path's lookup. */
  private readonly cache = new WeakMap<object, WeakMap<object, RequestCell>>();

  constructor(
    readonly name: string,
    readonly lb: string,
    readonly protocol: string,
  ) {}

  /** The series for a request's route and backend (either may be missing). */
  cell(route: RouteTarget | undefined, target: BackendTarget | undefined): RequestCell {
    const rk: object = route ?? NO_ROUTE;
    const tk: object = target ?? NO_BACKEND;
    let byTarget = this.cache.get(rk);
    if (byTarget === undefined) {
      byTarget = new WeakMap();
      this.cache.set(rk, byTarget);
    }
    let c = byTarget.get(tk);
    if (c === undefined) {
      c = this.persistent(route, target);
      byTarget.set(tk, c);
    }
    return c;
  }

  private persistent(route: RouteTarget | undefined, target: BackendTarget | undefined): RequestCell {
    const r = route?.route ?? '';
    const pool = route ? `${this.lb}/${route.poolName}` : '';
    const backend = target?.key ?? '';
    const key = `${r}\0${pool}\0${backend}`;
    let c = this.cells.get(key);
    if (c === undefined) {
      c = new RequestCell({ listener: this.name, route: r, pool, backend });
      this.cells.set(key, c);
    }
    return c;
  }
}

const NO_ROUTE = {};
const NO_BACKEND = {};

/** New upstream connections to one backend address (http: undici's connects; tcp: ours). */
export class UpstreamStats {
  connects = 0;
  connectErrors = 0;
  readonly connectTime = new Histogram();
  constructor(readonly address: string) {}
}

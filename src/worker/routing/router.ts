// L7 routing: a listener's routes compiled once per ListenerState into a route table
// (route-table.ts) that looks only at the routes a request's host and path can match, with the
// result of a walk in configured order: first match wins, then default_pool, else no route.
// A request allocates at most its lower-cased host.
//
// Host semantics: compared case-insensitively, without port and trailing dot. A wildcard
// "*.example.com" matches one or more labels below example.com ("a.example.com",
// "a.b.example.com") but not "example.com" itself. Path prefixes are plain string prefixes of
// the raw (undecoded) path, like nginx's `location /api`: "/api" also matches "/apis".
// Header conditions compare the header's value as Node joins duplicates (", "); "*" = present.

import type { IncomingHttpHeaders } from 'node:http';
import type { ListenerConfig } from '../../config/model.ts';
import type { PoolRuntime } from './pool-runtime.ts';
import { RouteTable } from './route-table.ts';

/** Where a request goes. `pool` is undefined when the named pool is not in the snapshot. */
export interface RouteTarget {
  /** For metrics and access logs: the route's index in the listener, or "default". */
  readonly route: string;
  readonly poolName: string;
  readonly pool: PoolRuntime | undefined;
  /** Index of the route in the listener's routes; -1 for default_pool. */
  readonly index: number;
}

export class Router {
  private readonly table: RouteTable<RouteTarget>;
  private readonly fallback: RouteTarget | undefined;

  constructor(
    listener: Pick<ListenerConfig, 'routes' | 'defaultPool'>,
    pools: ReadonlyMap<string, PoolRuntime>,
  ) {
    const target = (route: string, name: string, index: number): RouteTarget => ({
      route,
      poolName: name,
      pool: pools.get(name),
      index,
    });
    this.table = new RouteTable(listener.routes, (r, i) => target(String(i), r.pool, i));
    this.fallback =
      listener.defaultPool === undefined ? undefined : target('default', listener.defaultPool, -1);
  }

  /**
   * The first matching route's target, else default_pool's, else undefined (no route).
   * `path` is the request target as received (query ignored), `host` the Host header as
   * received (port allowed), `headers` Node's header object (already built by Node).
   * Positional, so routing allocates nothing (but the lower-cased host).
   */
  match(
    method: string,
    path: string,
    host: string | undefined,
    headers: IncomingHttpHeaders,
  ): RouteTarget | undefined {
    const t = this.table;
    return t.lookup(method, path, t.usesHost ? normalizeHost(host) : '', headers) ?? this.fallback;
  }
}

/** "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]"; "example.com." → "example.com". */
export function normalizeHost(host: string | undefined): string {
  if (host === undefined || host === '') return '';
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  const h = end === host.length ? host : host.slice(0, end);
  return h.toLowerCase();
}

// L7 routing: a listener's routes compiled once per ListenerState into a flat list of
// matchers, so a request costs a short linear scan (allocating at most a lower-cased host).
// First match wins, then default_pool, else no route.
//
// Host semantics: compared case-insensitively, without port and trailing dot. A wildcard
// "*.example.com" matches one or more labels below example.com ("a.example.com",
// "a.b.example.com") but not "example.com" itself. Path prefixes are plain string prefixes of
// the raw (undecoded) path, like nginx's `location /api`: "/api" also matches "/apis".
// Header conditions compare the header's value as Node joins duplicates (", "); "*" = present.

import type { IncomingHttpHeaders } from 'node:http';
import type { ListenerConfig, RouteConfig } from '../../config/model.ts';
import type { PoolRuntime } from './pool-runtime.ts';

/** Where a request goes. `pool` is undefined when the named pool is not in the snapshot. */
export interface RouteTarget {
  /** For metrics and access logs: the route's index in the listener, or "default". */
  readonly route: string;
  readonly poolName: string;
  readonly pool: PoolRuntime | undefined;
  /** Index of the route in the listener's routes; -1 for default_pool. */
  readonly index: number;
}

interface CompiledRoute {
  /** Exact lower-case host, or undefined. */
  readonly host: string | undefined;
  /** ".example.com" for "*.example.com", or undefined. */
  readonly hostSuffix: string | undefined;
  readonly pathPrefix: string | undefined;
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly methods: ReadonlySet<string> | undefined;
  readonly target: RouteTarget;
}

export class Router {
  private readonly routes: readonly CompiledRoute[];
  private readonly fallback: RouteTarget | undefined;
  private readonly usesHost: boolean;

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
    this.routes = listener.routes.map((r, i) => compileRoute(r, target(String(i), r.pool, i)));
    this.fallback =
      listener.defaultPool === undefined ? undefined : target('default', listener.defaultPool, -1);
    this.usesHost = this.routes.some((r) => r.host !== undefined || r.hostSuffix !== undefined);
  }

  /**
   * The first matching route's target, else default_pool's, else undefined (no route).
   * `path` is the request target as received (query ignored), `host` the Host header as
   * received (port allowed), `headers` Node's header object (already built by Node).
   * Positional, so routing allocates nothing.
   */
  match(
    method: string,
    path: string,
    host: string | undefined,
    headers: IncomingHttpHeaders,
  ): RouteTarget | undefined {
    const routes = this.routes;
    if (routes.length === 0) return this.fallback;
    const h = this.usesHost ? normalizeHost(host) : '';
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.methods !== undefined && !r.methods.has(method)) continue;
      if (r.host !== undefined && r.host !== h) continue;
      if (r.hostSuffix !== undefined && !(h.length > r.hostSuffix.length && h.endsWith(r.hostSuffix)))
        continue;
      // A prefix has no '?', so a prefix match never reaches into the query string.
      if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) continue;
      if (r.headers.length > 0 && !headersMatch(r.headers, headers)) continue;
      return r.target;
    }
    return this.fallback;
  }
}

function compileRoute(r: RouteConfig, target: RouteTarget): CompiledRoute {
  const h = r.match.host?.toLowerCase();
  const wildcard = h?.startsWith('*.') === true;
  return {
    host: h !== undefined && !wildcard ? stripDot(h) : undefined,
    hostSuffix: wildcard ? stripDot(h!.slice(1)) : undefined,
    pathPrefix: r.match.pathPrefix || undefined,
    headers: r.match.headers.map((x) => ({ name: x.name.toLowerCase(), value: x.value })),
    methods: r.match.methods.length > 0 ? new Set(r.match.methods.map((m) => m.toUpperCase())) : undefined,
    target,
  };
}

function headersMatch(
  conds: ReadonlyArray<{ readonly name: string; readonly value: string }>,
  headers: IncomingHttpHeaders,
): boolean {
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const v = headers[c.name];
    if (v === undefined) return false;
    if (c.value === '*') continue;
    if (typeof v === 'string' ? v !== c.value : !v.includes(c.value)) return false;
  }
  return true;
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

function stripDot(h: string): string {
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

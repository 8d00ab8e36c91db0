// Every admin endpoint, once: method, path template, who may call it, and its handler.
// docs/admin-api.yaml (OpenAPI 3) documents exactly these (test/admin-api.test.ts compares).
// /healthz, /status and /reload are the endpoints from before /api/v1, kept as they were.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminState } from '../../config/model.ts';
import type { HealthBody, ReloadOutcome } from '../health.ts';

/** What the routes need from the primary (implemented in admin/api.ts). */
export interface AdminApi {
  health(): { ready: boolean; body: HealthBody };
  /** GET /status (the pre-v1 shape). */
  legacyStatus(): Promise<Record<string, unknown>>;
  reload(): Promise<ReloadOutcome>;
  /** Prometheus text. */
  metrics(): Promise<{ contentType: string; text: string }>;
  status(): Record<string, unknown>;
  config(): unknown;
  listeners(): unknown[];
  pools(): unknown[];
  /** undefined: no such pool. */
  backends(lb: string, pool: string): unknown[] | undefined;
  backendAction(
    lb: string,
    pool: string,
    backend: string,
    action: BackendAction,
    caller: Caller,
  ): Promise<ActionResult>;
  /** Static dashboard files by name ("index.html"); undefined = none. */
  asset(name: string): { contentType: string; text: string } | undefined;
  /** Server-sent events for the dashboard (GET /api/v1/events); writes `res` itself. */
  events(req: IncomingMessage, res: ServerResponse): void;
  /** The per-second ring and recent config changes. */
  history(): unknown;
}

export type BackendAction =
  | { readonly kind: 'admin_state'; readonly adminState: AdminState }
  | { readonly kind: 'weight'; readonly weight: number }
  | { readonly kind: 'reset' };

export type ActionResult =
  | { readonly status: 200 | 503; readonly body: Record<string, unknown> }
  | { readonly status: number; readonly body: { error: string; readonly [k: string]: unknown } };

/**
 * Who called: the admin token (everything), or a tenant token from admin.tenant_tokens
 * (Chainfire only; backend actions on its own org/project's pools, as /v1/backends scopes them).
 */
export type Caller =
  | { readonly kind: 'admin' }
  | { readonly kind: 'tenant'; readonly org: string; readonly project: string };

export const ADMIN_CALLER: Caller = { kind: 'admin' };

export type Reply =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly contentType: string; readonly text: string; readonly cache?: string };

export interface RouteContext {
  readonly api: AdminApi;
  readonly params: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly query: URLSearchParams;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly caller: Caller;
}

export interface Route {
  readonly method: 'GET' | 'POST';
  /** "/api/v1/pools/{lb}/{pool}/backends": `{name}` matches one path segment. */
  readonly path: string;
  /**
   * open: no token; metrics: open only with admin.metrics_open; token: the admin bearer token;
   * scoped: the admin token or a tenant token (the handler checks the tenant's scope).
   */
  readonly auth: 'open' | 'token' | 'metrics' | 'scoped';
  /** undefined when the handler wrote the response itself (SSE). */
  handle(ctx: RouteContext): Reply | undefined | Promise<Reply | undefined>;
}

const ok = (json: unknown): Reply => ({ status: 200, json });
const notFound = (what: string): Reply => ({ status: 404, json: { error: `${what} not found` } });

function action(kind: BackendAction): Route['handle'] {
  return async ({ api, params, caller }) => {
    const r = await api.backendAction(params.lb!, params.pool!, params.backend!, kind, caller);
    return { status: r.status, json: r.body };
  };
}

const BACKEND = '/api/v1/pools/{lb}/{pool}/backends/{backend}';

export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/healthz',
    auth: 'open',
    handle: ({ api }) => {
      const { ready, body } = api.health();
      return { status: ready ? 200 : 503, json: body };
    },
  },
  { method: 'GET', path: '/status', auth: 'token', handle: async ({ api }) => ok(await api.legacyStatus()) },
  {
    method: 'POST',
    path: '/reload',
    auth: 'token',
    handle: async ({ api }) => reloadReply(await api.reload()),
  },
  {
    method: 'GET',
    path: '/metrics',
    auth: 'metrics',
    handle: async ({ api }) => ({ status: 200, ...(await api.metrics()) }),
  },
  { method: 'GET', path: '/api/v1/status', auth: 'token', handle: ({ api }) => ok(api.status()) },
  { method: 'GET', path: '/api/v1/config', auth: 'token', handle: ({ api }) => ok(api.config()) },
  { method: 'GET', path: '/api/v1/listeners', auth: 'token', handle: ({ api }) => ok(api.listeners()) },
  { method: 'GET', path: '/api/v1/pools', auth: 'token', handle: ({ api }) => ok(api.pools()) },
  {
    method: 'GET',
    path: '/api/v1/pools/{lb}/{pool}/backends',
    auth: 'token',
    handle: ({ api, params }) => {
      const b = api.backends(params.lb!, params.pool!);
      return b === undefined ? notFound(`pool ${params.lb}/${params.pool}`) : ok(b);
    },
  },
  {
    method: 'POST',
    path: `${BACKEND}/drain`,
    auth: 'scoped',
    handle: action({ kind: 'admin_state', adminState: 'drain' }),
  },
  {
    method: 'POST',
    path: `${BACKEND}/disable`,
    auth: 'scoped',
    handle: action({ kind: 'admin_state', adminState: 'disabled' }),
  },
  {
    method: 'POST',
    path: `${BACKEND}/enable`,
    auth: 'scoped',
    handle: action({ kind: 'admin_state', adminState: 'enabled' }),
  },
  { method: 'POST', path: `${BACKEND}/reset`, auth: 'scoped', handle: action({ kind: 'reset' }) },
  {
    method: 'POST',
    path: `${BACKEND}/weight`,
    auth: 'scoped',
    handle: async (ctx) => {
      const w = (ctx.body as { weight?: unknown } | undefined)?.weight;
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 1000)
        return { status: 400, json: { error: 'body must be {"weight": N} with N an integer 1-1000' } };
      return action({ kind: 'weight', weight: w })(ctx);
    },
  },
  {
    method: 'POST',
    path: '/api/v1/reload',
    auth: 'token',
    handle: async ({ api }) => reloadReply(await api.reload()),
  },
  { method: 'GET', path: '/api/v1/history', auth: 'token', handle: ({ api }) => ok(api.history()) },
  {
    method: 'GET',
    path: '/api/v1/events',
    auth: 'token',
    handle: ({ api, req, res }) => {
      api.events(req, res);
      return undefined;
    },
  },
  // The dashboard's static files carry no data (every number comes from the token-guarded
  // API), and a browser cannot send a header when it navigates: open.
  { method: 'GET', path: '/dashboard', auth: 'open', handle: ({ api }) => asset(api, 'index.html') },
  {
    method: 'GET',
    path: '/dashboard/{file}',
    auth: 'open',
    handle: ({ api, params }) => asset(api, params.file!),
  },
];

function asset(api: AdminApi, name: string): Reply {
  const a = api.asset(name === '' ? 'index.html' : name);
  return a === undefined ? notFound(name) : { status: 200, ...a, cache: 'no-cache' };
}

// 422: the config was rejected (last good kept). 503: accepted, but not fully served.
function reloadReply(r: ReloadOutcome): Reply {
  return { status: r.ok ? 200 : r.applied ? 503 : 422, json: r };
}

/** The route for a request; 'method' when the path exists with another method. */
export function matchRoute(
  routes: readonly Route[],
  method: string,
  pathname: string,
): { route: Route; params: Record<string, string> } | 'method' | undefined {
  const segs = pathname.split('/');
  let other = false;
  for (const route of routes) {
    const params = matchPath(route.path, segs);
    if (params === undefined) continue;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET' && route.path === '/healthz'))
      return { route, params };
    other = true;
  }
  return other ? 'method' : undefined;
}

function matchPath(template: string, segs: readonly string[]): Record<string, string> | undefined {
  const t = template.split('/');
  if (t.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < t.length; i++) {
    const want = t[i]!;
    const got = segs[i]!;
    if (want.startsWith('{') && want.endsWith('}')) {
      if (got === '') return undefined;
      try {
        params[want.slice(1, -1)] = decodeURIComponent(got);
      } catch {
        return undefined;
      }
    } else if (want !== got) return undefined;
  }
  return params;
}

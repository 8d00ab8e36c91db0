// The admin listener (loopback by default; in production the management network): plumbing
// only — parse the request, match it against the route table (routes.ts), check the bearer
// token where the route needs it, write the answer. A request without the right token is
// refused with 401 before its handler runs, so it cannot change anything.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AdminConfig } from '../../config/model.ts';
import { ADMIN_CALLER, type AdminApi, type Caller, matchRoute, type Reply, ROUTES } from './routes.ts';
import { tokenMatches } from './token.ts';

/** Request bodies the admin API accepts (a weight, an empty action): small. */
const MAX_BODY = 16 * 1024;

/** Routes with their own auth, tried before the table (Chainfire registration: tenant tokens). */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean>;

/** A tenant token's org/project (Chainfire's admin.tenant_tokens), for `scoped` routes. */
export type TenantLookup = (
  authorization: string | undefined,
) => { org: string; project: string } | undefined;

export function startAdminServer(
  cfg: AdminConfig,
  token: string,
  api: AdminApi,
  extra?: ExtraRoutes,
  tenants?: TenantLookup,
): Promise<Server> {
  const server = createServer((req, res) => {
    void handle(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (extra && (await extra(req, res, url.pathname))) return;
    const m = matchRoute(ROUTES, req.method ?? 'GET', url.pathname);
    if (m === 'method') return json(res, 405, { error: `method ${req.method} not allowed` });
    if (m === undefined) return json(res, 404, { error: 'not found' });
    const open = m.route.auth === 'open' || (m.route.auth === 'metrics' && cfg.metricsOpen);
    let caller: Caller = ADMIN_CALLER;
    if (!open && !tokenMatches(token, req.headers.authorization)) {
      const tenant = m.route.auth === 'scoped' ? tenants?.(req.headers.authorization) : undefined;
      if (!tenant) {
        req.resume();
        return json(res, 401, { error: 'missing or wrong bearer token (see admin.token_file)' });
      }
      caller = { kind: 'tenant', org: tenant.org, project: tenant.project };
    }
    const body = req.method === 'POST' || req.method === 'PUT' ? await readBody(req) : undefined;
    if (body === null) return json(res, 413, { error: `request body over ${MAX_BODY} bytes` });
    let parsed: unknown;
    if (body) {
      try {
        parsed = JSON.parse(body);
      } catch {
        return json(res, 400, { error: 'request body is not JSON' });
      }
    }
    const reply = await m.route.handle({
      api,
      params: m.params,
      body: parsed,
      req,
      res,
      query: url.searchParams,
      caller,
    });
    if (reply !== undefined) send(res, reply);
  }
  server.headersTimeout = 5_000;
  // A reload answers once the workers applied it (bounded by APPLY_TIMEOUT_MS).
  server.requestTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.address, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** The body as text, or null when it is larger than MAX_BODY. */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, r: Reply): void {
  if ('json' in r) {
    json(res, r.status, r.json);
    return;
  }
  const headers: Record<string, string | number> = {
    'content-type': r.contentType,
    'content-length': Buffer.byteLength(r.text),
  };
  if (r.cache) headers['cache-control'] = r.cache;
  res.writeHead(r.status, headers);
  res.end(r.text);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

// Admin API endpoints that write backend registrations to Chainfire, for tenants:
//   GET /v1/backends?pool=NAME[&lb=ID]      list
//   POST /v1/backends   {pool, lb?, address, port, weight?, admin_state?}   register (persistent)
//   PATCH /v1/backends  {pool, lb?, address, port, admin_state}             drain / enable
//   DELETE /v1/backends {pool, lb?, address, port}                          remove
// Authorization: Bearer <tenant token>, looked up in admin.tenant_tokens (token → {org,
// project}). Unknown token → 401; a pool of another org/project → 403; nothing is written.
// Ephemeral (lease) registrations need a registrant that keeps the lease alive, so they are
// made with `fiberlb backends add --ttl` directly against the store, not here.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import YAML from 'yaml';
import type { ChainfireSourceConfig, StaticConfig } from '../../config/model.ts';
import { openStore } from '../../config/sources/chainfire/connect.ts';
import {
  findPool,
  listBackends,
  type PoolRef,
  putBackend,
  RegistrationError,
  removeBackend,
  setAdminState,
} from '../../config/sources/chainfire/registration.ts';
import type { Store } from '../../config/sources/chainfire/store.ts';
import { log } from '../../shared/log.ts';
import { tokenMatches } from './token.ts';

export type AdminRoute = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean>;

export interface Tenant {
  readonly org: string;
  readonly project: string;
}

export function readTenantTokens(file: string): Map<string, Tenant> {
  const raw = YAML.parse(readFileSync(file, 'utf8')) as Record<
    string,
    { org?: unknown; project?: unknown }
  > | null;
  const m = new Map<string, Tenant>();
  for (const [token, t] of Object.entries(raw ?? {})) {
    if (typeof t?.org !== 'string' || typeof t?.project !== 'string')
      throw new Error(`${file}: token entries need org and project strings`);
    m.set(token, { org: t.org, project: t.project });
  }
  return m;
}

/** Every token is compared (timing-safe, via tokenMatches), so the time taken says nothing. */
function tenantFor(tokens: ReadonlyMap<string, Tenant>, header: string | undefined): Tenant | undefined {
  let found: Tenant | undefined;
  for (const [token, tenant] of tokens) if (tokenMatches(token, header)) found = tenant;
  return found;
}

const counters = { writes: 0, denied_401: 0, denied_403: 0 };
/** For /metrics: registrations written and requests refused. */
export function registrationStats(): Readonly<Record<string, number>> {
  return { ...counters };
}

/**
 * Who may write which backend keys, and the store they are written to: the tenant tokens, the
 * org/project scope check, and one store client opened on first use. Shared by these
 * endpoints and the /api/v1 backend actions (admin/store-actions.ts), so both scope alike.
 */
export interface TenantAccess {
  readonly source: ChainfireSourceConfig;
  /** The tenant a bearer header belongs to (undefined: not a tenant token). */
  tenant(header: string | undefined): Tenant | undefined;
  /** May `tenant` write the keys of `pool`? Its load balancer's org and project must be the tenant's. */
  allowed(tenant: Tenant, pool: PoolRef): boolean;
  store(): Store;
  close(): Promise<void>;
}

export function tenantAccess(cfg: StaticConfig): TenantAccess | undefined {
  const src = cfg.source;
  if (src.type !== 'chainfire') return undefined;
  const tokens = cfg.admin.tenantTokens
    ? readTenantTokens(cfg.admin.tenantTokens)
    : new Map<string, Tenant>();
  let store: Store | undefined;
  return {
    source: src,
    tenant: (header) => tenantFor(tokens, header),
    allowed: (tenant, pool) => pool.org === tenant.org && pool.project === tenant.project,
    store: () => {
      store ??= openStore(src);
      return store;
    },
    close: async () => store?.close(),
  };
}

/** undefined when the source is not Chainfire (the endpoints then do not exist: 404). */
export function registrationRoute(
  cfg: StaticConfig,
): { route: AdminRoute; close(): Promise<void>; access: TenantAccess } | undefined {
  const access = tenantAccess(cfg);
  if (!access) return undefined;
  const src = access.source;
  const route: AdminRoute = async (req, res, path) => {
    if (path !== '/v1/backends') return false;
    const tenant = access.tenant(req.headers.authorization);
    if (!tenant) {
      counters.denied_401++;
      json(res, 401, { error: 'missing or unknown tenant token (admin.tenant_tokens)' });
      return true;
    }
    try {
      const store = access.store();
      const url = new URL(req.url ?? '/', 'http://admin');
      const input =
        req.method === 'GET'
          ? { pool: url.searchParams.get('pool') ?? undefined, lb: url.searchParams.get('lb') ?? undefined }
          : ((await readJson(req)) as Record<string, unknown>);
      if (typeof input.pool !== 'string') throw new RegistrationError('pool is required', 400);
      const pool = await findPool(
        store,
        src.prefix,
        input.pool,
        typeof input.lb === 'string' ? input.lb : undefined,
      );
      if (!access.allowed(tenant, pool)) {
        counters.denied_403++;
        json(res, 403, { error: `pool '${input.pool}' belongs to another tenant` });
        return true;
      }
      if (req.method === 'GET') {
        json(res, 200, { backends: await listBackends(store, src.prefix, pool) });
        return true;
      }
      const address = input.address;
      const port = input.port;
      if (
        typeof address !== 'string' ||
        typeof port !== 'number' ||
        !Number.isInteger(port) ||
        port < 1 ||
        port > 65535
      )
        throw new RegistrationError('address (string) and port (1-65535) are required', 400);
      if (req.method === 'DELETE') {
        const r = await removeBackend(store, src.prefix, pool, address, port);
        counters.writes++;
        json(res, 200, r);
        return true;
      }
      if (req.method === 'PATCH') {
        const state = input.admin_state;
        if (state !== 'enabled' && state !== 'drain')
          throw new RegistrationError('PATCH sets admin_state: enabled or drain', 400);
        const r = await setAdminState(store, src.prefix, pool, address, port, state);
        counters.writes++;
        json(res, 200, r);
        return true;
      }
      if (req.method !== 'POST') throw new RegistrationError('use GET, POST, PATCH or DELETE', 405);
      const weight = input.weight;
      const state = input.admin_state;
      if (
        weight !== undefined &&
        (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 1000)
      )
        throw new RegistrationError('weight must be an integer 1-1000', 400);
      if (state !== undefined && state !== 'enabled' && state !== 'drain' && state !== 'disabled')
        throw new RegistrationError('admin_state must be enabled, drain or disabled', 400);
      const r = await putBackend(store, src.prefix, pool, {
        address,
        port,
        ...(weight !== undefined ? { weight } : {}),
        ...(state !== undefined ? { admin_state: state } : {}),
      });
      counters.writes++;
      log('info', 'backend registered', { key: r.key, org: tenant.org, project: tenant.project });
      json(res, 200, r);
    } catch (err) {
      const status = err instanceof RegistrationError ? err.status : 502;
      json(res, status, { error: (err as Error).message });
    }
    return true;
  };
  return { route, close: () => access.close(), access };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let body = '';
  for await (const c of req) {
    body += c;
    if (body.length > 64 * 1024) throw new RegistrationError('body too large', 413);
  }
  try {
    return JSON.parse(body || '{}');
  } catch {
    throw new RegistrationError('body is not JSON', 400);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

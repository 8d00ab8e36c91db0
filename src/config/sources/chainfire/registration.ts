// Backend registration in the store, shared by `fiberlb backends ...` and the admin API: find a
// pool by name (and load balancer id when the name is ambiguous), then write, drain, enable,
// remove or list its backend keys. A backend's id is ADDRESS:PORT, so registering the same
// target twice rewrites one key instead of adding a duplicate.

import { type KeyRef, keyOf, parseKey } from './keys.ts';
import type { Store, StoreLease } from './store.ts';

export interface PoolRef {
  readonly poolKey: string;
  readonly poolId: string;
  readonly lbId: string;
  readonly org: string | undefined;
  readonly project: string | undefined;
}

export class RegistrationError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export async function findPool(store: Store, prefix: string, name: string, lbId?: string): Promise<PoolRef> {
  const { kvs } = await store.range(prefix);
  const lbs = new Map<string, Extract<KeyRef, { kind: 'lb' }>>();
  const pools: Array<{ key: string; ref: Extract<KeyRef, { kind: 'pool' }>; name: string }> = [];
  for (const kv of kvs) {
    const ref = parseKey(prefix, kv.key);
    if (ref?.kind === 'lb') lbs.set(ref.lbId, ref);
    if (ref?.kind !== 'pool') continue;
    let n = ref.poolId;
    try {
      const v = JSON.parse(kv.value) as { name?: unknown };
      if (typeof v.name === 'string') n = v.name;
    } catch {
      // a quarantined value: still addressable by its id
    }
    if (n === name || ref.poolId === name) pools.push({ key: kv.key, ref, name: n });
  }
  const matches = pools.filter((p) => lbId === undefined || p.ref.lbId === lbId);
  if (matches.length === 0)
    throw new RegistrationError(
      `no pool '${name}'${lbId ? ` in load balancer '${lbId}'` : ''} under ${prefix}`,
      404,
    );
  if (matches.length > 1)
    throw new RegistrationError(
      `pool name '${name}' is ambiguous (load balancers ${matches.map((m) => m.ref.lbId).join(', ')}): give --lb ID`,
      409,
    );
  const m = matches[0]!;
  const lb = lbs.get(m.ref.lbId);
  return { poolKey: m.key, poolId: m.ref.poolId, lbId: m.ref.lbId, org: lb?.org, project: lb?.project };
}

export interface BackendSpec {
  readonly address: string;
  readonly port: number;
  readonly weight?: number;
  readonly admin_state?: 'enabled' | 'drain' | 'disabled';
}

export function backendId(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function backendKeyFor(prefix: string, pool: PoolRef, id: string): string {
  return keyOf(prefix, { kind: 'backend', poolId: pool.poolId, backendId: id });
}

export async function putBackend(
  store: Store,
  prefix: string,
  pool: PoolRef,
  spec: BackendSpec,
  lease?: StoreLease,
): Promise<{ key: string; revision: number }> {
  const key = backendKeyFor(prefix, pool, backendId(spec.address, spec.port));
  const r = await store.txn([
    { put: key, value: JSON.stringify(spec), ...(lease ? { lease: lease.id } : {}) },
  ]);
  return { key, revision: r.revision };
}

/** Change admin_state of an existing backend, guarded: a concurrent rewrite wins, never lost. */
export async function setAdminState(
  store: Store,
  prefix: string,
  pool: PoolRef,
  address: string,
  port: number,
  state: 'enabled' | 'drain',
): Promise<{ key: string; revision: number }> {
  const key = backendKeyFor(prefix, pool, backendId(address, port));
  const r = await patchBackend(
    store,
    key,
    { admin_state: state },
    `no backend ${backendId(address, port)} in pool '${pool.poolId}'`,
  );
  return { key, revision: r.revision };
}

/** How often a guarded write is tried again after losing to a concurrent change. */
export const PATCH_ATTEMPTS = 5;

/**
 * Set fields of an existing backend key's JSON value, guarded by its mod_revision: when the key
 * changed between the read and the write, the write is refused by the store and tried again on
 * the new value (at most PATCH_ATTEMPTS times, then 409), so a concurrent change is never lost.
 * A key on a lease (an ephemeral registration) stays on that lease. Every failure leaves the
 * key as it was: a refused transaction writes nothing.
 */
export async function patchBackend(
  store: Store,
  key: string,
  patch: { readonly admin_state?: 'enabled' | 'drain' | 'disabled'; readonly weight?: number },
  missing = `no backend key ${key}`,
): Promise<{ key: string; revision: number; value: Record<string, unknown>; attempts: number }> {
  for (let attempt = 1; attempt <= PATCH_ATTEMPTS; attempt++) {
    const { kvs } = await store.range(key);
    const kv = kvs.find((x) => x.key === key);
    if (!kv) throw new RegistrationError(missing, 404);
    let old: unknown;
    try {
      old = JSON.parse(kv.value);
    } catch {
      old = undefined;
    }
    if (old === null || typeof old !== 'object' || Array.isArray(old))
      throw new RegistrationError(`${key} does not hold a JSON object; not changed`, 409);
    const value = { ...(old as Record<string, unknown>), ...patch };
    let r: { ok: boolean; revision: number };
    try {
      r = await store.txn(
        [{ put: key, value: JSON.stringify(value), ...(kv.lease !== '0' ? { lease: kv.lease } : {}) }],
        [{ key, modRevision: kv.modRevision }],
      );
    } catch (err) {
      // The registrant's lease ran out between the read and the write: the key is going.
      if (/lease not found/i.test((err as Error).message))
        throw new RegistrationError(`${missing} (its lease expired)`, 404);
      throw err;
    }
    if (r.ok) return { key, revision: r.revision, value, attempts: attempt };
  }
  throw new RegistrationError(
    `backend ${key} kept changing (${PATCH_ATTEMPTS} guarded writes lost to concurrent changes); nothing written, try again`,
    409,
  );
}

/**
 * The store key of the backend a FiberLB serves as `lbName/poolName/id` (names and id as the
 * assembled config has them: a value's `name`/`id` win over the key's segment), with its pool.
 */
export async function findBackend(
  store: Store,
  prefix: string,
  lbName: string,
  poolName: string,
  id: string,
): Promise<{ pool: PoolRef; key: string }> {
  const { kvs: lbs } = await store.range(`${prefix}loadbalancers/`);
  const lb = lbs
    .map((kv) => ({ kv, ref: parseKey(prefix, kv.key) }))
    .find(({ kv, ref }) => ref?.kind === 'lb' && nameOf(kv.value, 'name', ref.lbId) === lbName);
  if (lb?.ref?.kind !== 'lb')
    throw new RegistrationError(`no load balancer '${lbName}' under ${prefix}loadbalancers/`, 404);
  const pool = await findPool(store, prefix, poolName, lb.ref.lbId);
  const { kvs } = await store.range(`${prefix}backends/${pool.poolId}/`);
  for (const kv of kvs) {
    const ref = parseKey(prefix, kv.key);
    if (ref?.kind === 'backend' && nameOf(kv.value, 'id', ref.backendId) === id) return { pool, key: kv.key };
  }
  throw new RegistrationError(`no key for backend '${id}' under ${prefix}backends/${pool.poolId}/`, 404);
}

/** value[field] when the value is JSON with that string field, else the key's segment. */
function nameOf(value: string, field: string, fallback: string): string {
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    return typeof v?.[field] === 'string' ? (v[field] as string) : fallback;
  } catch {
    return fallback; // a quarantined value: still addressable by its key
  }
}

export async function removeBackend(
  store: Store,
  prefix: string,
  pool: PoolRef,
  address: string,
  port: number,
): Promise<{ key: string; revision: number }> {
  const key = backendKeyFor(prefix, pool, backendId(address, port));
  const r = await store.txn([{ delete: key }]);
  return { key, revision: r.revision };
}

export async function listBackends(
  store: Store,
  prefix: string,
  pool: PoolRef,
): Promise<Array<{ key: string; value: unknown; ephemeral: boolean }>> {
  const { kvs } = await store.range(`${prefix}backends/${pool.poolId}/`);
  return kvs.map((kv) => {
    let value: unknown = kv.value;
    try {
      value = JSON.parse(kv.value);
    } catch {
      // shown raw
    }
    return { key: kv.key, value, ephemeral: kv.lease !== '0' };
  });
}

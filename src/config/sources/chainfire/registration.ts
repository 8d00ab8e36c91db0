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
  for (let attempt = 0; attempt < 5; attempt++) {
    const { kvs } = await store.range(key);
    const kv = kvs.find((x) => x.key === key);
    if (!kv)
      throw new RegistrationError(`no backend ${backendId(address, port)} in pool '${pool.poolId}'`, 404);
    const value = { ...(JSON.parse(kv.value) as object), admin_state: state };
    const r = await store.txn(
      [{ put: key, value: JSON.stringify(value), ...(kv.lease !== '0' ? { lease: kv.lease } : {}) }],
      [{ key, modRevision: kv.modRevision }],
    );
    if (r.ok) return { key, revision: r.revision };
  }
  throw new RegistrationError(`backend ${key} keeps changing; try again`, 409);
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

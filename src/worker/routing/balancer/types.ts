// The balancer contract. A Balancer is built over the *available* backends of one pool (admin
// state enabled and healthy); when availability changes the pool builds a new Balancer, so
// pick() itself never filters by health and stays allocation-free.

import type { Algorithm } from '../../../config/model.ts';

export interface BackendTarget {
  /** backendKey(lb, pool, id): stable across snapshots, used for health. */
  readonly key: string;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  /** In-flight requests/connections from this worker; maintained by the caller via acquire/release. */
  active: number;
}

/**
 * What one pick may ask of its caller (Envoy's LoadBalancerContext, Pingora's select_with).
 * Valid only during the pick() call: a balancer never keeps it, so a caller may reuse one
 * object for every request instead of allocating one per request.
 */
export interface PickContext {
  /**
   * The client identity (client IP) to hash on. Called only by the hashing algorithms
   * (ip_hash, maglev), at most once per pick, so a caller computes it lazily here (splitting
   * X-Forwarded-For, say) and the others never pay for it.
   */
  hashKey(): string;
  /**
   * Backends this pick must not return, e.g. the ones a retry already tried. Compared by
   * identity: PoolRuntime keeps a backend's BackendTarget object across reloads.
   */
  readonly exclude?: ReadonlySet<BackendTarget> | undefined;
}

export interface Balancer {
  /**
   * Choose a backend for one request/connection, never one in `ctx.exclude`. Returns
   * undefined only when the balancer has no targets or every target is excluded.
   */
  pick(ctx: PickContext): BackendTarget | undefined;
}

export type BalancerFactory = (targets: readonly BackendTarget[]) => Balancer;

export type { Algorithm };

/** "address:port" of a backend, IPv6 in brackets. */
export function backendAddress(t: BackendTarget): string {
  return t.address.includes(':') ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
}

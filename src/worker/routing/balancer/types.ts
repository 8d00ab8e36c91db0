// The balancer contract. A Balancer is built over the *available* backends of one pool (admin
// state enabled and healthy); when availability changes the pool builds a new Balancer, so
// pick() itself never filters and stays allocation-free.

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

export interface Balancer {
  /**
   * Choose a backend for one request/connection. `hashKey` is the client identity (client IP)
   * used by ip_hash and maglev; other algorithms ignore it. Returns undefined only when the
   * balancer has no targets.
   */
  pick(hashKey: string): BackendTarget | undefined;
}

export type BalancerFactory = (targets: readonly BackendTarget[]) => Balancer;

export type { Algorithm };

// The algorithm registry: config's `algorithm` name → the balancer built over a pool's
// available backends.

import { ipHash } from './ip-hash.ts';
import { leastConnections } from './least-connections.ts';
import { maglev } from './maglev.ts';
import { p2c } from './p2c.ts';
import { random } from './random.ts';
import { roundRobin } from './round-robin.ts';
import type { Algorithm, BackendTarget, Balancer, BalancerFactory } from './types.ts';
import { weightedRoundRobin } from './weighted-round-robin.ts';

const FACTORIES: Record<Algorithm, BalancerFactory> = {
  round_robin: roundRobin,
  weighted_round_robin: weightedRoundRobin,
  least_connections: leastConnections,
  random,
  p2c,
  ip_hash: ipHash,
  maglev,
};

export function createBalancer(algorithm: Algorithm, targets: readonly BackendTarget[]): Balancer {
  const factory = FACTORIES[algorithm];
  if (factory === undefined) throw new Error(`unknown balancing algorithm: ${String(algorithm)}`);
  return factory(targets);
}

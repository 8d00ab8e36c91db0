// The primary's rate-limit service: the ledger (plus the Redis store for scope: global when
// configured) and its sweep, and the handler WorkerSet calls with each worker's lease batch.

import type { RateLimitStoreConfig } from '../../config/model.ts';
import type { LeaseGrant, LeaseRequest, LeaseReturn } from '../../ipc.ts';
import { Ledger } from './ledger.ts';

const SWEEP_EVERY_MS = 250;

export interface RateLimitService {
  readonly ledger: Ledger;
  readonly handle: (reqs: readonly LeaseRequest[], returns: readonly LeaseReturn[]) => LeaseGrant[];
  stats(): Record<string, number>;
}

export function startRateLimits(_store: RateLimitStoreConfig | undefined): RateLimitService {
  const ledger = new Ledger();
  setInterval(() => ledger.sweep(), SWEEP_EVERY_MS).unref();
  return {
    ledger,
    handle: (reqs, returns) => ledger.handle(reqs, returns),
    stats: () => ({ ...ledger.stats() }),
  };
}

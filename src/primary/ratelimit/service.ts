// The primary's rate-limit service: the ledger (plus the Redis store for scope: global when
// configured) and its sweep, and the handler WorkerSet calls with each worker's lease batch.

import type { RateLimitStoreConfig } from '../../config/model.ts';
import type { LeaseGrant, LeaseRequest, LeaseReturn } from '../../ipc.ts';
import { Ledger } from './ledger.ts';
import { RedisStore } from './redis-store.ts';

const SWEEP_EVERY_MS = 250;

export interface RateLimitService {
  readonly ledger: Ledger;
  readonly handle: (reqs: readonly LeaseRequest[], returns: readonly LeaseReturn[]) => LeaseGrant[];
  /** The ledger's counters and, with a store, the store's (up, redis_fallbacks, ...). */
  stats(): Record<string, number>;
}

export function startRateLimits(storeConfig: RateLimitStoreConfig | undefined): RateLimitService {
  const store = storeConfig ? new RedisStore(storeConfig) : undefined;
  const ledger = new Ledger(store);
  setInterval(() => ledger.sweep(), SWEEP_EVERY_MS).unref();
  return {
    ledger,
    handle: (reqs, returns) => ledger.handle(reqs, returns),
    stats: () => ({ ...ledger.stats(), ...(store ? prefixed(store.stats()) : {}) }),
  };
}

function prefixed(s: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s)) out[k.startsWith('redis_') ? k : `redis_${k}`] = v as number;
  return out;
}

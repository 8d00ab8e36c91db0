// An in-process rate-limit ledger for listener tests: the worker's LeaseClient talks to the
// primary's real Ledger through a direct call instead of IPC (answers come a turn later, as
// over IPC). `asked`, when given, collects every lease request sent (their bucket keys `b`).

import type { LeaseRequest } from '../../src/ipc.ts';
import { Ledger } from '../../src/primary/ratelimit/ledger.ts';
import { LeaseClient } from '../../src/worker/ratelimit/lease-client.ts';

export function inProcessLeases(ledger = new Ledger(), asked?: LeaseRequest[]): LeaseClient {
  const client: LeaseClient = new LeaseClient({
    send(reqs, returns) {
      asked?.push(...reqs);
      const grants = ledger.handle(reqs, returns);
      setImmediate(() => client.onGrants(grants));
    },
  });
  return client;
}

/**
 * A primary that always answers "nothing granted, next token now" (the real Ledger never does):
 * a lease never settles, so a limiter's bounded waiting is what ends the wait.
 */
export function stallingLeases(asked: LeaseRequest[]): LeaseClient {
  const client: LeaseClient = new LeaseClient({
    send(reqs) {
      asked.push(...reqs);
      setImmediate(() => client.onGrants(reqs.map((r) => ({ seq: r.seq, granted: 0, waitMs: 0 }))));
    },
  });
  return client;
}

import type { RateLimitConfig } from '../../src/config/model.ts';

/** A rate_limit entry as the validator would build it. */
export function rateLimit(o: Partial<RateLimitConfig> & { rate: number }): RateLimitConfig {
  const key = o.key ?? 'client_ip';
  return {
    name: o.name ?? (key === 'header' ? `header:${o.header}` : key),
    key,
    header: undefined,
    prefix: 32,
    prefixV6: 64,
    perMs: 1000,
    burst: Math.max(1, o.rate),
    mode: 'enforce',
    scope: 'local',
    ...o,
  };
}

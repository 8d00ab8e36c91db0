// L4 limits, checked once per accepted connection (tcp, tls_passthrough, http, and https —
// which shares the http listener's accept path): `connection_rate_limit`, new connections per
// client address as a token bucket leased from the primary like the request limits (exact for
// the instance), and `max_connections_per_ip`, concurrent connections per client address.
//
// The concurrent count is kept per worker, against the per-worker share of the limit
// (perWorkerLimit: limit / workers rounded down, at least 1), as `connection_limit` is: the
// instance never holds more than the limit (once it is at least the worker count), but a client
// whose connections the kernel puts on one worker may be refused below the limit. Exact
// instance-wide counting would need an IPC round trip per open and per close.
//
// The client address is the socket's, or the PROXY header's source from a trusted peer (the
// caller checks after the header). Over a limit the connection is closed at once and counted:
// `rate_limited` (rate) or `connection_limit` (concurrent).

import { cidrsContain, plainIp } from '../../shared/cidr.ts';
import type { ErrorClass } from '../../shared/errors.ts';
import { type ListenerState, perWorkerLimit } from '../context.ts';
import { maskedIp } from './keys.ts';
import { EMPTY, HAS, type LeaseClient, type LeaseParams, type LeaseWaiter } from './lease-client.ts';

/** Outcome: refused (class and why), or admitted; `held` is the key to release() on close. */
export type ConnectionVerdict = (
  refused: ErrorClass | undefined,
  why: string,
  held: string | undefined,
) => void;

const MAX_ROUNDS = 10;

export class ConnectionLimits {
  /** Open connections per client address, in this worker. */
  private readonly open = new Map<string, number>();

  constructor(private readonly client: LeaseClient) {}

  /** Check a new connection from `ip` under `state`; `done` may be called synchronously. */
  admit(state: ListenerState, ip: string, done: ConnectionVerdict): void {
    const l = state.listener;
    if (l.connectionRateLimit === undefined && l.maxConnectionsPerIp === 0) {
      done(undefined, '', undefined);
      return;
    }
    const addr = plainIp(ip);
    if (l.rateLimitAllow.length > 0 && cidrsContain(l.rateLimitAllow, addr)) {
      done(undefined, '', undefined);
      return;
    }
    new ConnectionCheck(this, state, addr, done).run();
  }

  release(held: string): void {
    const n = (this.open.get(held) ?? 1) - 1;
    if (n <= 0) this.open.delete(held);
    else this.open.set(held, n);
  }

  /** Client addresses with open connections tracked here. */
  tracked(): number {
    return this.open.size;
  }

  openFrom(ip: string): number {
    return this.open.get(ip) ?? 0;
  }

  /** The concurrency check, then hold a slot; undefined = admitted (ip counted). */
  hold(state: ListenerState, ip: string): string | undefined {
    const max = state.listener.maxConnectionsPerIp;
    if (max === 0) return undefined;
    const share = perWorkerLimit(max, state.workerCount);
    const n = this.open.get(ip) ?? 0;
    if (n >= share) return `max_connections_per_ip ${max} (${share} in this worker) reached`;
    this.open.set(ip, n + 1);
    return undefined;
  }

  get leases(): LeaseClient {
    return this.client;
  }
}

class ConnectionCheck implements LeaseWaiter {
  private rounds = 0;
  constructor(
    private readonly owner: ConnectionLimits,
    private readonly state: ListenerState,
    private readonly ip: string,
    private readonly done: ConnectionVerdict,
  ) {}

  run(): void {
    const l = this.state.listener;
    const client = this.owner.leases;
    const rl = l.connectionRateLimit;
    const now = Date.now();
    // Concurrency first: a refused connection must not spend a rate token.
    if (l.maxConnectionsPerIp > 0) {
      const share = perWorkerLimit(l.maxConnectionsPerIp, this.state.workerCount);
      if (this.owner.openFrom(this.ip) >= share) {
        client.counters.limited++;
        this.done(
          'connection_limit',
          `max_connections_per_ip ${l.maxConnectionsPerIp} (${share} in this worker) reached`,
          undefined,
        );
        return;
      }
    }
    if (rl !== undefined) {
      const params: LeaseParams = {
        rate: rl.rate,
        perMs: rl.perMs,
        burst: rl.burst,
        global: rl.scope === 'global',
      };
      const b = `${this.state.lb.name}/${l.name}/~connections\n${maskedIp(this.ip, rl.prefix, rl.prefixV6)}`;
      const lease = client.lease(b, params, now);
      const st = client.state(lease, now);
      if (st !== HAS && st !== EMPTY && this.rounds < MAX_ROUNDS) {
        this.rounds++;
        client.wait(lease, this);
        return;
      }
      if (st === HAS) client.spend(lease, now);
      else if (rl.mode === 'dry_run') client.counters.dry_run_would_limit++;
      else {
        client.counters.limited++;
        this.done('rate_limited', `connection_rate_limit ${rl.rate} per ${rl.perMs} ms reached`, undefined);
        return;
      }
    }
    // Re-checked at the moment of admission (a lease wait may have let others in).
    const refused = this.owner.hold(this.state, this.ip);
    if (refused !== undefined) {
      client.counters.limited++;
      this.done('connection_limit', refused, undefined);
      return;
    }
    client.counters.allowed++;
    this.done(undefined, '', l.maxConnectionsPerIp > 0 ? this.ip : undefined);
  }

  leaseSettled(): void {
    this.run();
  }
}

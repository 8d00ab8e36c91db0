// L7 rate limits of one listener (its own `rate_limit` list plus each route's), compiled once
// per listener state. A request is checked after routing and before the backend is picked:
// every limit that applies must have a token. The check first looks at all of them and spends
// only when all pass, so a request refused by one limit costs the others nothing (their leased
// tokens stay in this worker's lease, or go back to the primary). dry_run limits are checked
// and spent like the others, but an empty one only counts and logs.
//
// Over a limit: 429 `rate_limited` with Retry-After and the IETF draft's structured headers
// (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy: "name";q=RATE;w=SECONDS` and
// `RateLimit: "name";r=0;t=SECONDS`. They are sent on the 429 only: a worker knows its lease,
// not the instance's bucket, so a "remaining" count on every response would be a guess.

import type { IncomingHttpHeaders } from 'node:http';
import type { ListenerConfig, RateLimitConfig } from '../../config/model.ts';
import { cidrsContain } from '../../shared/cidr.ts';
import { log } from '../../shared/log.ts';
import type { ListenerState } from '../context.ts';
import { normalizeHost } from '../routing/router.ts';
import { boundedKey, maskedIp } from './keys.ts';
import {
  EMPTY,
  HAS,
  type Lease,
  type LeaseClient,
  type LeaseParams,
  type LeaseWaiter,
} from './lease-client.ts';

/**
 * What the limiter needs from a request: a plain one (http/exchange.ts HttpExchange) or a
 * WebSocket upgrade (http/upgrade.ts LimitedUpgrade), so both pass the same limits.
 */
export interface LimitedRequest<P> {
  /** The client address (socket peer, or XFF / PROXY from a trusted peer). */
  hashKey(): string;
  /** The request's Host (after rewriting), for `key: host`. */
  readonly host: string | undefined;
  /** The client's own request headers, for `key: header:NAME`. */
  readonly req: { readonly headers: IncomingHttpHeaders };
  /** Passed every limit (called at most once): go on to the backend. */
  proceed(pool: P, expectContinue: boolean): void;
  /** Over a limit (called at most once): answer 429 with these extra headers. */
  refuse(headers: string[], message: string): void;
}

export class CompiledLimit {
  readonly params: LeaseParams;
  readonly enforce: boolean;
  /** RateLimit-Policy item, e.g. `"client_ip";q=100;w=1`. */
  readonly policy: string;
  constructor(
    readonly id: string,
    readonly cfg: RateLimitConfig,
  ) {
    this.params = { rate: cfg.rate, perMs: cfg.perMs, burst: cfg.burst, global: cfg.scope === 'global' };
    this.enforce = cfg.mode === 'enforce';
    // q must be an integer: a fractional rate is stated as 1 request per its interval.
    const whole = Number.isInteger(cfg.rate);
    const q = whole ? cfg.rate : 1;
    const w = Math.max(1, Math.ceil((whole ? cfg.perMs : cfg.perMs / cfg.rate) / 1000));
    this.policy = `"${cfg.name}";q=${q};w=${w}`;
  }
}

/** At most this many rounds of waiting for leases before a request is refused. */
const MAX_ROUNDS = 10;

export class RequestLimits<P> {
  /** Limits per route index; index routes.length is the default pool (listener limits only). */
  private readonly byRoute: Array<CompiledLimit[] | undefined>;
  private readonly allow: ListenerConfig['rateLimitAllow'];
  private dryRunLogAt = 0;
  private dryRunSuppressed = 0;

  constructor(
    state: ListenerState,
    readonly client: LeaseClient,
  ) {
    const l = state.listener;
    const base = `${state.lb.name}/${l.name}`;
    const own = l.rateLimits.map((c) => new CompiledLimit(`${base}/${c.name}`, c));
    this.byRoute = l.routes.map((r, i) => {
      const extra = r.rateLimits.map((c) => new CompiledLimit(`${base}/routes[${i}]/${c.name}`, c));
      const all = [...own, ...extra];
      return all.length > 0 ? all : undefined;
    });
    this.byRoute.push(own.length > 0 ? own : undefined);
    this.allow = l.rateLimitAllow;
  }

  /** Does anything apply to requests of route `index` (-1: the default pool)? */
  limitsFor(index: number): CompiledLimit[] | undefined {
    return this.byRoute[index < 0 ? this.byRoute.length - 1 : index];
  }

  /** Check `ex` against `limits`; calls ex.proceed() or ex.refuse(), now or once leases answer. */
  admit(
    ex: LimitedRequest<P>,
    limits: CompiledLimit[],
    route: number,
    pool: P,
    expectContinue: boolean,
  ): void {
    const now = Date.now();
    let ip: string | undefined;
    if (this.allow.length > 0) {
      ip = ex.hashKey();
      if (cidrsContain(this.allow, ip)) {
        ex.proceed(pool, expectContinue);
        return;
      }
    }
    const leases: Lease[] = new Array(limits.length);
    for (let i = 0; i < limits.length; i++) {
      const lim = limits[i]!;
      const c = lim.cfg;
      let key: string;
      switch (c.key) {
        case 'client_ip':
          ip ??= ex.hashKey();
          key = maskedIp(ip, c.prefix, c.prefixV6);
          break;
        case 'header': {
          const v = ex.req.headers[c.header!];
          // A request without the header shares one bucket: leaving it out buys nothing.
          key = boundedKey(v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v);
          break;
        }
        case 'host':
          key = boundedKey(normalizeHost(ex.host));
          break;
        case 'route':
          key = String(route);
          break;
        default:
          key = '';
      }
      leases[i] = this.client.lease(`${lim.id}\n${key}`, lim.params, now);
    }
    // The common case, without allocating a Check: every bucket holds a token.
    let all = true;
    for (let i = 0; i < leases.length && all; i++) all = this.client.state(leases[i]!, now) === HAS;
    if (all) {
      for (let i = 0; i < leases.length; i++) this.client.spend(leases[i]!, now);
      this.client.counters.allowed++;
      ex.proceed(pool, expectContinue);
      return;
    }
    new Check(this, ex, limits, leases, pool, expectContinue).run(now);
  }

  /** A dry_run limit found its bucket empty: count, and log at most once a second. */
  dryRun(lim: CompiledLimit, ex: LimitedRequest<P>, now: number): void {
    this.client.counters.dry_run_would_limit++;
    if (now - this.dryRunLogAt < 1_000) {
      this.dryRunSuppressed++;
      return;
    }
    this.dryRunLogAt = now;
    log('info', 'rate limit dry run: request would be limited', {
      limit: lim.id,
      client: ex.hashKey(),
      suppressed: this.dryRunSuppressed,
    });
    this.dryRunSuppressed = 0;
  }
}

/** One request's check, kept only while it waits for lease answers. */
class Check<P> implements LeaseWaiter {
  private pending = 0;
  private rounds = 0;
  constructor(
    private readonly owner: RequestLimits<P>,
    private readonly ex: LimitedRequest<P>,
    private readonly limits: CompiledLimit[],
    private readonly leases: Lease[],
    private readonly pool: P,
    private readonly expectContinue: boolean,
  ) {}

  run(now: number): void {
    const client = this.owner.client;
    const { limits, leases } = this;
    let refusing = -1;
    let retryMs = 0;
    let unknown = 0;
    for (let i = 0; i < leases.length; i++) {
      const st = client.state(leases[i]!, now);
      if (st === HAS) continue;
      if (st === EMPTY) {
        if (!limits[i]!.enforce) continue;
        const ms = client.retryAfterMs(leases[i]!, now);
        if (refusing < 0 || ms > retryMs) retryMs = ms;
        if (refusing < 0) refusing = i;
      } else unknown++;
    }
    if (refusing < 0 && unknown > 0 && this.rounds < MAX_ROUNDS) {
      this.rounds++;
      this.pending = unknown;
      for (let i = 0; i < leases.length; i++) {
        const l = leases[i]!;
        if (l.tokens < 1 && l.emptyUntil <= now && l.openUntil <= now) client.wait(l, this);
      }
      return;
    }
    if (refusing < 0 && unknown > 0) {
      refusing = 0;
      retryMs = 1000;
    }
    if (refusing >= 0) {
      client.counters.limited++;
      const lim = limits[refusing]!;
      const secs = Math.max(1, Math.ceil(retryMs / 1000));
      this.ex.refuse(
        [
          'retry-after',
          String(secs),
          'ratelimit-policy',
          lim.policy,
          'ratelimit',
          `"${lim.cfg.name}";r=0;t=${secs}`,
        ],
        `over rate limit ${lim.id}`,
      );
      return;
    }
    for (let i = 0; i < leases.length; i++) {
      const l = leases[i]!;
      if (client.state(l, now) === HAS) client.spend(l, now);
      else this.owner.dryRun(limits[i]!, this.ex, now);
    }
    client.counters.allowed++;
    this.ex.proceed(this.pool, this.expectContinue);
  }

  leaseSettled(): void {
    if (--this.pending > 0) return;
    this.run(Date.now());
  }
}

// A worker's side of the rate-limit ledger: per bucket, the tokens leased from the primary
// (primary/ratelimit/ledger.ts), spent here without IPC. A request finds its bucket in one of
// three states: tokens held (spend one, synchronously), known empty (the primary said so and
// when the next token comes: refuse, synchronously), or unknown (first use, or the lease ran
// dry: ask, and the request waits for that one answer). Asks are batched per event-loop turn
// into one IPC message. Lease sizes follow demand (enough for ~50 ms of this worker's traffic
// on that bucket, at most a share of the burst) and the next lease is asked for before the
// current one runs out, so a busy bucket never waits. Leases idle for a while go back.

import type { LeaseGrant, LeaseRequest, LeaseReturn } from '../../ipc.ts';
import { log } from '../../shared/log.ts';

/** How a worker reaches the ledger: IPC in a cluster worker, a direct call in tests. */
export interface LeaseTransport {
  send(reqs: LeaseRequest[], returns: LeaseReturn[]): void;
}

export interface LeaseParams {
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
  readonly global: boolean;
}

/** Something waiting for a lease answer (a request or a connection being checked). */
export interface LeaseWaiter {
  leaseSettled(): void;
}

export class Lease {
  tokens = 0;
  /** Seq of the ask in flight (0 = none). */
  seq = 0;
  sentAt = 0;
  /** The primary said the bucket is empty until then. */
  emptyUntil = 0;
  /** No answer came in time: requests pass (fail open) until then. */
  openUntil = 0;
  waiters: LeaseWaiter[] | null = null;
  /** Tokens spent since `spentSince`: the demand estimate that sizes the next ask. */
  spent = 0;
  spentSince: number;
  want = 1;
  touched: number;
  constructor(
    readonly b: string,
    public p: LeaseParams,
    now: number,
  ) {
    this.spentSince = now;
    this.touched = now;
  }
}

/** State of a bucket for one request. */
export const HAS = 1;
export const EMPTY = 0;
export const UNKNOWN = -1;

/** Per-worker bound on leases held (see docs/config.md "Memory"). */
export const MAX_LEASES = 50_000;
/** A lease untouched this long is returned and forgotten. */
const IDLE_MS = 2_000;
/** A lease is sized to last this long at the demand seen. */
const LEASE_TARGET_MS = 50;
/** Without an answer from the primary in this time, waiting requests pass (fail open). */
export const LEASE_TIMEOUT_MS = 250;
/** After such a timeout the bucket passes requests this long before asking again. */
const OPEN_AFTER_TIMEOUT_MS = 1_000;
const SWEEP_EVERY_MS = 250;
const SWEEP_STEP = 20_000;

export interface RateLimitCounters {
  /** Requests / connections that passed every limit applying to them. */
  allowed: number;
  /** Refused: 429 or a closed connection. */
  limited: number;
  dry_run_would_limit: number;
  /** Lease answers received (granted or not). */
  leases: number;
  tokens_leased: number;
  lease_timeouts: number;
  /** Leases dropped to stay within MAX_LEASES. */
  evicted: number;
}

export class LeaseClient {
  private readonly leases = new Map<string, Lease>();
  private readonly inflight = new Map<number, Lease>();
  private seq = 0;
  /** Leases whose ask goes out with the next flush (sized then, when its waiters are known). */
  private asks: Lease[] = [];
  private returns: LeaseReturn[] = [];
  private flushQueued = false;
  private sweepIter: Iterator<Lease> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private timeoutLogged = false;
  /** Workers sharing the buckets: caps one worker's lease at a share of the burst. */
  workers = 1;
  readonly counters: RateLimitCounters = {
    allowed: 0,
    limited: 0,
    dry_run_would_limit: 0,
    leases: 0,
    tokens_leased: 0,
    lease_timeouts: 0,
    evicted: 0,
  };

  constructor(
    private readonly transport: LeaseTransport,
    private readonly maxLeases = MAX_LEASES,
  ) {}

  /** The lease of bucket `b` (created empty on first use). */
  lease(b: string, p: LeaseParams, now: number): Lease {
    let l = this.leases.get(b);
    if (l === undefined) {
      if (this.leases.size >= this.maxLeases) this.evictOldest();
      l = new Lease(b, p, now);
      this.leases.set(b, l);
      this.startSweeping();
    } else {
      l.p = p;
      // Keep the map roughly in last-use order (re-inserted at most once a second), so the
      // bound evicts the least recently used.
      if (now - l.touched > 1_000) {
        this.leases.delete(b);
        this.leases.set(b, l);
      }
    }
    l.touched = now;
    return l;
  }

  /** HAS, EMPTY or UNKNOWN (then an ask is in flight: wait() for it). */
  state(l: Lease, now: number): number {
    if (l.tokens >= 1 || l.openUntil > now) return HAS;
    if (l.emptyUntil > now) return EMPTY;
    if (l.seq === 0) this.ask(l, now);
    return UNKNOWN;
  }

  /** Spend one token of a bucket in state HAS. */
  spend(l: Lease, now: number): void {
    if (l.tokens >= 1) l.tokens--;
    l.spent++;
    // Ask for the next lease before this one runs out.
    if (l.seq === 0 && l.tokens <= l.want >> 1 && l.emptyUntil <= now && l.openUntil <= now) this.ask(l, now);
  }

  wait(l: Lease, w: LeaseWaiter): void {
    if (l.waiters === null) l.waiters = [w];
    else l.waiters.push(w);
  }

  /** Answers from the ledger. */
  onGrants(grants: readonly LeaseGrant[]): void {
    const now = Date.now();
    for (const g of grants) {
      const l = this.inflight.get(g.seq);
      if (l === undefined) continue; // timed out meanwhile; its tokens stay spent (conservative)
      this.inflight.delete(g.seq);
      if (l.seq === g.seq) l.seq = 0;
      this.counters.leases++;
      this.counters.tokens_leased += g.granted;
      l.tokens += g.granted;
      if (g.granted === 0) l.emptyUntil = now + g.waitMs;
      this.notify(l);
      // Evicted while its ask was out: what it got goes straight back.
      if (this.leases.get(l.b) !== l) this.queueReturn(l);
    }
  }

  /** Milliseconds until a bucket in state EMPTY has a token. */
  retryAfterMs(l: Lease, now: number): number {
    return Math.max(1, l.emptyUntil - now);
  }

  stats(): RateLimitCounters & { buckets: number } {
    return { ...this.counters, buckets: this.leases.size };
  }

  /** Give every lease back (worker draining) and stop the sweep. */
  close(): void {
    for (const l of this.leases.values()) this.queueReturn(l);
    this.leases.clear();
    this.flush();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private ask(l: Lease, now: number): void {
    const elapsed = Math.max(10, now - l.spentSince);
    l.want = Math.max(1, Math.ceil((l.spent * LEASE_TARGET_MS) / elapsed));
    l.spent = 0;
    l.spentSince = now;
    const seq = ++this.seq;
    l.seq = seq;
    l.sentAt = now;
    this.inflight.set(seq, l);
    this.asks.push(l);
    this.queueFlush();
  }

  private queueReturn(l: Lease): void {
    const n = Math.floor(l.tokens);
    l.tokens = 0;
    if (n < 1) return;
    const p = l.p;
    this.returns.push({ b: l.b, rate: p.rate, perMs: p.perMs, burst: p.burst, n, global: p.global });
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // One message per event-loop turn, however many buckets asked in it.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.asks.length === 0 && this.returns.length === 0) return;
    const reqs: LeaseRequest[] = [];
    for (const l of this.asks) {
      const p = l.p;
      const cap = Math.max(1, Math.floor(p.burst / (2 * Math.max(1, this.workers))));
      // Requests already waiting for this answer need one token each.
      const want = Math.min(cap, Math.max(l.want, l.waiters?.length ?? 0));
      reqs.push({ seq: l.seq, b: l.b, rate: p.rate, perMs: p.perMs, burst: p.burst, want, global: p.global });
    }
    const returns = this.returns;
    this.asks = [];
    this.returns = [];
    this.transport.send(reqs, returns);
  }

  private notify(l: Lease): void {
    const ws = l.waiters;
    if (ws === null) return;
    l.waiters = null;
    for (const w of ws) w.leaseSettled();
  }

  /**
   * Drop the least recently used 1% in one pass: one at a time would restart iteration past
   * the map's deleted slots each time (quadratic under a flood of new keys).
   */
  private evictOldest(): void {
    let n = Math.max(1, this.maxLeases >> 7);
    for (const l of this.leases.values()) {
      if (l.waiters !== null) continue; // requests wait on it: they get its answer
      this.leases.delete(l.b);
      this.queueReturn(l);
      this.counters.evicted++;
      if (--n === 0) break;
    }
  }

  private startSweeping(): void {
    if (this.sweepTimer !== undefined) return;
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  /** Return idle leases, and fail open on asks the primary did not answer in time. */
  sweep(now: number): void {
    if (this.inflight.size > 0) {
      for (const [seq, l] of this.inflight) {
        if (now - l.sentAt < LEASE_TIMEOUT_MS) break; // in send order: the rest are younger
        this.inflight.delete(seq);
        if (l.seq === seq) l.seq = 0;
        l.openUntil = now + OPEN_AFTER_TIMEOUT_MS;
        this.counters.lease_timeouts++;
        if (!this.timeoutLogged) {
          this.timeoutLogged = true;
          log('warn', 'rate limit lease not answered in time; passing requests (fail open)', {
            timeout_ms: LEASE_TIMEOUT_MS,
          });
        }
        this.notify(l);
      }
    }
    this.sweepIter ??= this.leases.values();
    for (let i = 0; i < SWEEP_STEP; i++) {
      const next = this.sweepIter.next();
      if (next.done) {
        this.sweepIter = undefined;
        break;
      }
      const l = next.value;
      if (l.seq !== 0 || l.waiters !== null || now - l.touched < IDLE_MS) continue;
      this.leases.delete(l.b);
      this.queueReturn(l);
    }
    if (this.leases.size === 0 && this.inflight.size === 0 && this.sweepTimer !== undefined) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
  }
}

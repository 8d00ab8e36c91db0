// The real rate-limit buckets of one FiberLB instance, held by the primary. Workers lease
// tokens from here in batches (ipc.ts LeaseRequest) and spend them without IPC, so a limit is
// exact for the whole instance however the kernel spreads connections over workers: a token
// is granted once, to one worker, and unused ones come back (LeaseReturn).
//
// scope: global buckets live in a shared store (Redis, redis-store.ts). The ledger keeps a
// stock of tokens fetched from the store per bucket and answers leases from it at once, so a
// request never waits on the store. When the stock is empty it may grant against the local
// bucket first and record that as debt, paid from the next tokens the store gives; after a
// short answer (the shared bucket is empty) nothing more is granted ahead until the debt is
// paid. When the store is unreachable the local bucket alone decides (fail open to local
// limits).

import type { LeaseGrant, LeaseRequest, LeaseReturn } from '../../ipc.ts';
import {
  type BucketParams,
  giveBack,
  msUntilFull,
  msUntilToken,
  refill,
  take,
} from '../../shared/token-bucket.ts';

/** A store shared across FiberLB instances (Redis). */
export interface GlobalStore {
  /** False while the store is unreachable: global limits fall back to local ones. */
  readonly up: boolean;
  /** Take up to `want` tokens of bucket `b`; rejects on failure or after the store's timeout. */
  take(b: string, p: BucketParams, want: number): Promise<{ granted: number; waitMs: number }>;
  /** Give back `n` unused tokens (best effort). */
  give(b: string, p: BucketParams, n: number): void;
}

/** A bucket and its parameters in one object (the request objects are not kept: memory). */
interface Entry extends BucketParams {
  tokens: number;
  at: number;
  rate: number;
  perMs: number;
  burst: number;
  /** Last lease or return, for the idle sweep. */
  used: number;
  g: GlobalPart | undefined;
}

interface GlobalPart {
  /** Tokens fetched from the store, not yet granted. */
  stock: number;
  /** Tokens granted ahead of the store, to be paid from its next grants. */
  debt: number;
  fetching: boolean;
  fetchSince: number;
  /** The store said empty: no provisional grants before this time. */
  emptyUntil: number;
  /** Tokens granted since the last fetch, and when that was: sizes the next fetch. */
  demand: number;
  demandSince: number;
}

/** Bound on buckets held: the oldest are dropped beyond it (see docs/config.md). */
export const LEDGER_MAX_BUCKETS = 500_000;
/** A fetch from the store aims to last this long at the observed demand. */
const FETCH_TARGET_MS = 100;
/** A fetch out longer than this is overdue: the local bucket decides meanwhile. */
const SLOW_FETCH_MS = 50;
/** Stock unused this long goes back to the store, for other instances. */
const STOCK_IDLE_MS = 1_000;
/** Buckets examined per sweep step (the sweep runs in steps so it never stalls the primary). */
const SWEEP_STEP = 20_000;

export interface LedgerStats {
  buckets: number;
  leases: number;
  tokens_granted: number;
  tokens_returned: number;
  store_fetches: number;
  /** Store calls that failed or timed out. */
  store_errors: number;
  /** Leases of global buckets decided by the local bucket because the store was down. */
  fallback_leases: number;
  evicted: number;
}

export class Ledger {
  private readonly buckets = new Map<string, Entry>();
  private sweepIter: Iterator<[string, Entry]> | undefined;
  private readonly counters = {
    leases: 0,
    tokens_granted: 0,
    tokens_returned: 0,
    store_fetches: 0,
    store_errors: 0,
    fallback_leases: 0,
    evicted: 0,
  };

  constructor(
    private readonly store: GlobalStore | undefined = undefined,
    private readonly maxBuckets = LEDGER_MAX_BUCKETS,
  ) {}

  /** Answer a worker's lease requests (in order) and take its returns. */
  handle(reqs: readonly LeaseRequest[], returns: readonly LeaseReturn[], now = Date.now()): LeaseGrant[] {
    for (const r of returns) {
      const e = this.buckets.get(r.b);
      this.counters.tokens_returned += r.n;
      if (e === undefined) continue; // expired meanwhile: full anyway
      e.used = now;
      setParams(e, r);
      if (e.g !== undefined && this.storeUp()) e.g.stock += r.n;
      else giveBack(e, e, r.n, now);
    }
    const grants: LeaseGrant[] = [];
    for (const r of reqs) {
      const e = this.entry(r, now);
      const granted =
        e.g !== undefined && this.store !== undefined ? this.grantGlobal(r, e, now) : take(e, e, r.want, now);
      this.counters.leases++;
      this.counters.tokens_granted += granted;
      let waitMs = 0;
      if (granted === 0) {
        waitMs = msUntilToken(e, e);
        if (e.g !== undefined && e.g.emptyUntil > now) waitMs = Math.max(waitMs, e.g.emptyUntil - now);
        waitMs = Math.max(1, waitMs);
      }
      grants.push({ seq: r.seq, granted, waitMs });
    }
    return grants;
  }

  /** Drop buckets that are full again (equal to new ones); return idle global stock. */
  sweep(now = Date.now()): void {
    this.sweepIter ??= this.buckets.entries();
    for (let i = 0; i < SWEEP_STEP; i++) {
      const next = this.sweepIter.next();
      if (next.done) {
        this.sweepIter = undefined;
        return;
      }
      const [b, e] = next.value;
      const g = e.g;
      if (g !== undefined) {
        if (g.stock >= 1 && now - e.used >= STOCK_IDLE_MS && !g.fetching) {
          this.store?.give(b, e, Math.floor(g.stock));
          g.stock = 0;
        }
        if (g.stock >= 1 || g.debt > 0 || g.fetching) continue;
      }
      refill(e, e, now);
      if (msUntilFull(e, e) === 0) this.buckets.delete(b);
    }
  }

  stats(): LedgerStats {
    return { buckets: this.buckets.size, ...this.counters };
  }

  private storeUp(): boolean {
    return this.store?.up === true;
  }

  private entry(r: LeaseRequest, now: number): Entry {
    let e = this.buckets.get(r.b);
    if (e === undefined) {
      if (this.buckets.size >= this.maxBuckets) this.evict();
      e = { tokens: r.burst, at: now, rate: r.rate, perMs: r.perMs, burst: r.burst, used: now, g: undefined };
      if (r.global && this.store !== undefined)
        e.g = {
          stock: 0,
          debt: 0,
          fetching: false,
          fetchSince: 0,
          emptyUntil: 0,
          demand: 0,
          demandSince: now,
        };
      this.buckets.set(r.b, e);
    }
    setParams(e, r);
    e.used = now;
    return e;
  }

  /**
   * Beyond the bound the oldest 1% go (in one pass: one at a time is quadratic over the map's
   * deleted slots); their keys start afresh (documented).
   */
  private evict(): void {
    let n = Math.max(1, this.maxBuckets >> 7);
    for (const [b, e] of this.buckets) {
      if (e.g?.fetching) continue;
      this.buckets.delete(b);
      this.counters.evicted++;
      if (--n === 0) break;
    }
    this.sweepIter = undefined;
  }

  private grantGlobal(r: LeaseRequest, e: Entry, now: number): number {
    const g = e.g!;
    if (!this.storeUp()) {
      // Fail open to the local bucket; debt from before the outage is forgiven.
      g.debt = 0;
      g.stock = 0;
      this.counters.fallback_leases++;
      return take(e, e, r.want, now);
    }
    let granted = Math.min(r.want, Math.floor(g.stock));
    g.stock -= granted;
    // Ahead of the store, bounded by the local bucket, paid from the next fetch: while no debt
    // is left, or while a fetch is overdue (a slow or stalled store then costs no refusals until
    // the answer or the timeout), up to a quarter of the burst: what one instance may overshoot.
    const slow = g.fetching && now - g.fetchSince > SLOW_FETCH_MS && g.debt < Math.ceil(e.burst / 4);
    if (granted < r.want && g.emptyUntil <= now && (g.debt === 0 || slow)) {
      const ahead = take(e, e, r.want - granted, now);
      g.debt += ahead;
      granted += ahead;
    } else if (granted > 0) {
      // Keep the local bucket in step, so a fallback starts from what was really spent.
      refill(e, e, now);
      e.tokens = Math.max(0, e.tokens - granted);
    }
    g.demand += granted || 1;
    if (!g.fetching && (g.debt > 0 || g.stock < Math.max(1, r.want)) && g.emptyUntil <= now)
      this.fetch(r.b, e, now);
    return granted;
  }

  private fetch(b: string, e: Entry, now: number): void {
    const g = e.g!;
    const elapsed = Math.max(1, now - g.demandSince);
    const block = Math.max(
      1,
      Math.min(Math.ceil(e.burst), Math.ceil((g.demand * FETCH_TARGET_MS) / elapsed)),
    );
    g.demand = 0;
    g.demandSince = now;
    const want = g.debt + block;
    g.fetching = true;
    g.fetchSince = now;
    this.counters.store_fetches++;
    this.store!.take(b, { rate: e.rate, perMs: e.perMs, burst: e.burst }, want).then(
      ({ granted, waitMs }) => {
        g.fetching = false;
        const pay = Math.min(granted, g.debt);
        g.debt -= pay;
        g.stock += granted - pay;
        if (granted < want) g.emptyUntil = Date.now() + Math.max(1, waitMs);
      },
      () => {
        // The store marks itself down (and logs once); local limits decide until it is back.
        g.fetching = false;
        g.debt = 0;
        this.counters.store_errors++;
      },
    );
  }
}

/** A reload may change a bucket's parameters; the tokens held carry over (capped at the burst). */
function setParams(e: Entry, p: BucketParams): void {
  e.rate = p.rate;
  e.perMs = p.perMs;
  e.burst = p.burst;
}

// A token bucket as two numbers (tokens, last refill time), refilled lazily on use: no timers,
// so a million idle buckets cost memory only. Shared by the primary's ledger (the real
// buckets), a worker's fallback and the connection limits.

/** The parameters of a bucket: `rate` tokens per `perMs`, at most `burst` held. */
export interface BucketParams {
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
}

export interface Bucket {
  tokens: number;
  /** Time (ms) the tokens were last brought up to date. */
  at: number;
}

export function newBucket(p: BucketParams, now: number): Bucket {
  return { tokens: p.burst, at: now };
}

/** Bring `b` up to `now`; a burst lowered by a reload caps what is held. */
export function refill(b: Bucket, p: BucketParams, now: number): void {
  const dt = now - b.at;
  if (dt > 0) {
    b.tokens = Math.min(p.burst, b.tokens + (dt * p.rate) / p.perMs);
    b.at = now;
  } else if (b.tokens > p.burst) b.tokens = p.burst;
}

/** Take up to `want` whole tokens; returns how many were taken (0 when under one is held). */
export function take(b: Bucket, p: BucketParams, want: number, now: number): number {
  refill(b, p, now);
  const n = Math.min(want, Math.floor(b.tokens));
  if (n > 0) b.tokens -= n;
  return n;
}

/** Milliseconds until the bucket holds one whole token (0 if it does now). */
export function msUntilToken(b: Bucket, p: BucketParams): number {
  return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) * p.perMs) / p.rate);
}

/** Milliseconds an untouched bucket needs to be full again: after that it equals a new one. */
export function msUntilFull(b: Bucket, p: BucketParams): number {
  return b.tokens >= p.burst ? 0 : Math.ceil(((p.burst - b.tokens) * p.perMs) / p.rate);
}

/** Give back `n` unused tokens (leases returned), never above the burst. */
export function giveBack(b: Bucket, p: BucketParams, n: number, now: number): void {
  refill(b, p, now);
  b.tokens = Math.min(p.burst, b.tokens + n);
}

// The shared store for `scope: global` limits: one token bucket per key in Redis, taken from in
// blocks by an atomic Lua script (refill by Redis's own clock, so instance clocks never
// matter). Only the primary's ledger calls it, asynchronously: no request waits on Redis.
//
// Failure handling: every call is bounded by `timeout` (ioredis commandTimeout; no offline
// queue, so a call while disconnected fails at once). A failed, timed-out or malformed answer
// marks the store down: global limits fall back to each instance's local bucket (fail open),
// logged once per outage and counted. While down, a PING every second (bounded by the same
// timeout) brings it back when Redis answers properly again; ioredis reconnects by itself.
//
// Client: ioredis (6.0.0, maintained under the redis org, engines node >= 20, no install
// scripts): commandTimeout bounds every call including a stalled server, defineCommand runs the
// script by EVALSHA with an EVAL fallback, and reconnects follow a retryStrategy.

import type * as IoRedis from 'ioredis';
import type { Redis } from 'ioredis';
import { lazyRequire } from '../../shared/lazy-require.ts';

const ioredis = lazyRequire<typeof IoRedis>('ioredis');

import type { RateLimitStoreConfig } from '../../config/model.ts';
import { log } from '../../shared/log.ts';
import type { BucketParams } from '../../shared/token-bucket.ts';
import type { GlobalStore } from './ledger.ts';

// KEYS[1] bucket; ARGV rate, per (ms), burst, want (negative: give back). Returns {granted, waitMs}.
const TAKE = `
local rate = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 't', 'n')
local tokens = burst
if v[1] then
  local dt = now - tonumber(v[1])
  if dt < 0 then dt = 0 end
  tokens = math.min(burst, tonumber(v[2]) + dt * rate / per)
end
local g = 0
if want > 0 then
  g = math.min(want, math.floor(tokens))
  tokens = tokens - g
else
  tokens = math.min(burst, tokens - want)
end
redis.call('HSET', KEYS[1], 't', now, 'n', tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * per / rate) + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * per / rate) end
return {g, wait}
`;

const PROBE_EVERY_MS = 1_000;

type WithTake = Redis & {
  fiberlbTake(key: string, rate: number, perMs: number, burst: number, want: number): Promise<unknown>;
};

export interface RedisStoreStats {
  up: number;
  /** Times the store went down (global limits fell back to local ones). */
  redis_fallbacks: number;
  redis_errors: number;
  redis_calls: number;
}

export class RedisStore implements GlobalStore {
  up = false;
  private readonly redis: WithTake;
  private probe: NodeJS.Timeout | undefined;
  private everUp = false;
  private closed = false;
  readonly counters = { redis_fallbacks: 0, redis_errors: 0, redis_calls: 0 };

  constructor(private readonly cfg: RateLimitStoreConfig) {
    this.redis = new (ioredis().Redis)({
      host: cfg.address,
      port: cfg.port,
      commandTimeout: cfg.timeoutMs,
      connectTimeout: Math.max(1_000, cfg.timeoutMs),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Reconnect forever, at most once a second: Redis coming back must be noticed.
      retryStrategy: (times) => Math.min(1_000, 50 * times),
      lazyConnect: false,
    }) as WithTake;
    this.redis.defineCommand('fiberlbTake', { numberOfKeys: 1, lua: TAKE });
    this.redis.on('ready', () => void this.check());
    this.redis.on('error', (err: Error) => this.down(err.message));
    this.redis.on('close', () => this.down('connection closed'));
    // Until the first answer, global limits are local ones.
    this.startProbe();
  }

  async take(b: string, p: BucketParams, want: number): Promise<{ granted: number; waitMs: number }> {
    this.counters.redis_calls++;
    let reply: unknown;
    try {
      reply = await this.redis.fiberlbTake(this.cfg.keyPrefix + b, p.rate, p.perMs, p.burst, want);
    } catch (err) {
      this.down((err as Error).message);
      throw err;
    }
    const ok =
      Array.isArray(reply) &&
      reply.length === 2 &&
      Number.isInteger(reply[0]) &&
      Number.isInteger(reply[1]) &&
      (reply[0] as number) >= 0 &&
      (reply[0] as number) <= want &&
      (reply[1] as number) >= 0;
    if (!ok) {
      this.down(`unexpected reply ${JSON.stringify(reply)?.slice(0, 80)}`);
      throw new Error('rate limit store: unexpected reply');
    }
    const [granted, waitMs] = reply as [number, number];
    return { granted, waitMs };
  }

  give(b: string, p: BucketParams, n: number): void {
    if (!this.up || n < 1) return;
    this.counters.redis_calls++;
    this.redis.fiberlbTake(this.cfg.keyPrefix + b, p.rate, p.perMs, p.burst, -n).catch(() => {});
  }

  stats(): RedisStoreStats {
    return { up: this.up ? 1 : 0, ...this.counters };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.up = false; // closing is not an outage: nothing to log
    if (this.probe) clearInterval(this.probe);
    this.redis.disconnect();
  }

  private down(reason: string): void {
    if (this.closed) return;
    this.counters.redis_errors++;
    if (!this.up) return;
    this.up = false;
    this.counters.redis_fallbacks++;
    log('warn', 'rate limit store unreachable; global limits fall back to local ones (fail open)', {
      store: `redis://${this.cfg.address}:${this.cfg.port}`,
      reason,
    });
    this.startProbe();
  }

  private startProbe(): void {
    if (this.probe !== undefined || this.closed) return;
    this.probe = setInterval(() => void this.check(), PROBE_EVERY_MS);
    this.probe.unref();
  }

  /** Up again once Redis answers a PING properly within the timeout. */
  private async check(): Promise<void> {
    if (this.up || this.closed || this.redis.status !== 'ready') return;
    let pong: unknown;
    try {
      pong = await this.redis.ping();
    } catch {
      return;
    }
    if (pong !== 'PONG' || this.up) return;
    this.up = true;
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
    log(
      'info',
      this.everUp
        ? 'rate limit store reachable again; global limits are shared again'
        : 'rate limit store connected',
      {
        store: `redis://${this.cfg.address}:${this.cfg.port}`,
      },
    );
    this.everUp = true;
  }
}

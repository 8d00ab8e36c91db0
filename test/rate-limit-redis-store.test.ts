// The Redis store of scope: global limits, against a real redis-server: blocks of tokens from
// one shared bucket (two stores = two FiberLB instances), and bounded failure: a Redis that
// stalls (SIGSTOP) or a server that answers garbage makes calls fail within the timeout and
// the store go down (logged once, counted), and it comes back by itself. The ledger answers
// leases synchronously whatever the store does: no request waits on Redis.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import type { RateLimitStoreConfig } from '../src/config/model.ts';
import { Ledger } from '../src/primary/ratelimit/ledger.ts';
import { RedisStore } from '../src/primary/ratelimit/redis-store.ts';
import { captureLog } from './helpers/capture-log.ts';
import { sleep } from './helpers/net.ts';
import { startRedis } from './helpers/redis.ts';

const P = { rate: 10, perMs: 1000, burst: 5 };

function store(t: { after(fn: () => unknown): void }, port: number, timeoutMs = 100): RedisStore {
  const cfg: RateLimitStoreConfig = { type: 'redis', address: '127.0.0.1', port, keyPrefix: 't:', timeoutMs };
  const s = new RedisStore(cfg);
  t.after(() => s.close());
  return s;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) assert.fail(`${what} not within ${ms} ms`);
    await sleep(10);
  }
  return Date.now() - start;
}

test('two stores share one bucket in Redis, taken in blocks', async (t) => {
  captureLog(t);
  const redis = await startRedis(t);
  const a = store(t, redis.port);
  const b = store(t, redis.port);
  await until(() => a.up && b.up, 3000, 'connected');
  assert.deepEqual(await a.take('k', P, 3), { granted: 3, waitMs: 0 });
  const second = await b.take('k', P, 5);
  assert.ok(second.granted === 2 || second.granted === 3, `b got ${second.granted}`); // + refill
  const third = await a.take('k', { ...P, rate: 0.001 }, 5);
  assert.ok(third.granted <= 1);
  assert.ok(third.granted > 0 || third.waitMs > 0);
});

test('a stalled Redis: calls fail within the timeout, the store goes down once, and comes back', async (t) => {
  const log = captureLog(t);
  const redis = await startRedis(t);
  const s = store(t, redis.port, 100);
  await until(() => s.up, 3000, 'connected');
  redis.pause();
  const started = Date.now();
  await assert.rejects(s.take('k', P, 1));
  const took = Date.now() - started;
  assert.ok(took < 600, `a stalled call took ${took} ms`);
  assert.equal(s.up, false);
  await assert.rejects(s.take('k', P, 1));
  assert.equal(s.stats().redis_fallbacks, 1);
  assert.equal(log.lines.filter((l) => String(l.msg).startsWith('rate limit store unreachable')).length, 1);
  // Leases are answered at once from local buckets meanwhile.
  const ledger = new Ledger(s);
  const t0 = performance.now();
  const [g] = ledger.handle([{ seq: 1, b: 'x', ...P, want: 2, global: true }], []);
  assert.ok(performance.now() - t0 < 5);
  assert.equal(g!.granted, 2);
  assert.ok(ledger.stats().fallback_leases >= 1);
  redis.resume();
  await until(() => s.up, 5000, 'recovered after the stall');
  assert.deepEqual((await s.take('k2', P, 1)).granted, 1);
  assert.ok(
    log.lines.some((l) => l.msg === 'rate limit store reachable again; global limits are shared again'),
  );
});

test('a server answering garbage: bounded failure, never up', async (t) => {
  captureLog(t);
  // A fake: no real Redis answers garbage. It replies +OK to every line it gets.
  const socks = new Set<import('node:net').Socket>();
  const fake = createServer((sock) => {
    socks.add(sock);
    sock.on('error', () => {});
    sock.on('data', (c) => {
      for (const _ of c.toString().split('\r\n').slice(1)) sock.write('+OK\r\n');
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        fake.close(() => r());
        for (const c of socks) c.destroy();
      }),
  );
  const port = (fake.address() as { port: number }).port;
  const s = store(t, port, 100);
  await sleep(300);
  const started = Date.now();
  await assert.rejects(s.take('k', P, 1));
  assert.ok(Date.now() - started < 600);
  await sleep(1200); // a probe ran: PING answered +OK is not PONG
  assert.equal(s.up, false);
});

test('Redis killed: calls fail at once (no offline queue); restarted: back by itself', async (t) => {
  captureLog(t);
  const redis = await startRedis(t);
  const s = store(t, redis.port, 100);
  await until(() => s.up, 3000, 'connected');
  await redis.kill();
  await until(() => !s.up, 2000, 'noticed the kill');
  const started = Date.now();
  await assert.rejects(s.take('k', P, 1));
  assert.ok(Date.now() - started < 200);
  await redis.start();
  const ms = await until(() => s.up, 5000, 'reconnected');
  process.stderr.write(`rate-limit-redis-store: back ${ms} ms after redis-server restarted\n`);
});

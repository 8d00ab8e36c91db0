// L7 rate limits on an in-process http listener whose leases come from a real Ledger (the
// primary's) through a direct call: 429 with Retry-After and the RateLimit headers, nothing
// forwarded; per-route and per-header keys; several limits where a refusal costs the others
// nothing; the allow-list; X-Forwarded-For from an untrusted peer ignored; dry_run.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { captureFileLog } from './helpers/capture-log.ts';
import { request } from './helpers/http-client.ts';
import {
  poolConfig,
  route,
  startBackend,
  startHttpListener,
  backend as target,
} from './helpers/http-fixtures.ts';
import { cidrs } from './helpers/net.ts';
import { rateLimit } from './helpers/rate-limit.ts';

const log = captureFileLog();

async function counting(t: { after(fn: () => Promise<void>): void }) {
  const seen: string[] = [];
  const b = await startBackend((req, res) => {
    seen.push(req.url ?? '');
    res.end('ok');
  });
  t.after(() => b.close());
  return { seen, pools: [poolConfig('web', [target(b.port)])] };
}

describe('http rate limits', () => {
  test('over the limit: 429 rate_limited with Retry-After and RateLimit headers, nothing forwarded', async (t) => {
    const { seen, pools } = await counting(t);
    const lb = await startHttpListener(t, { rateLimits: [rateLimit({ rate: 2, perMs: 10_000 })] }, pools);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await request(lb.port, { path: `/r${i}` }));
    assert.deepEqual(
      got.map((r) => r.status),
      [200, 200, 429, 429],
    );
    const r = got[2]!;
    assert.match(r.body, /rate_limited/);
    // The bucket gains a token every 5 s.
    const secs = Number(r.headers['retry-after']);
    assert.ok(secs >= 1 && secs <= 5, `retry-after ${secs}`);
    assert.equal(r.headers['ratelimit-policy'], '"client_ip";q=2;w=10');
    assert.equal(r.headers.ratelimit, `"client_ip";r=0;t=${secs}`);
    assert.deepEqual(seen, ['/r0', '/r1']);
    assert.equal(log.counted(lb.env.failures, 'rate_limited'), 2);
    const s = lb.env.rateLimits.stats();
    assert.equal(s.allowed, 2);
    assert.equal(s.limited, 2);
    assert.ok(s.leases >= 1 && s.buckets === 1, JSON.stringify(s));
  });

  test('route limits apply to their route only; header keys get a bucket per value', async (t) => {
    const { seen, pools } = await counting(t);
    const login = {
      ...route('web', { pathPrefix: '/login' }),
      rateLimits: [rateLimit({ rate: 1, perMs: 60_000 })],
    };
    const lb = await startHttpListener(
      t,
      {
        routes: [login],
        rateLimits: [rateLimit({ key: 'header', header: 'x-api-key', rate: 2, perMs: 60_000 })],
      },
      pools,
    );
    const st = async (path: string, key: string) =>
      (await request(lb.port, { path, headers: { 'x-api-key': key } })).status;
    assert.equal(await st('/login', 'a'), 200);
    assert.equal(await st('/login', 'b'), 429, 'route bucket (client_ip) is spent');
    assert.equal(await st('/other', 'b'), 200);
    assert.equal(await st('/other', 'a'), 200);
    assert.equal(await st('/other', 'a'), 429, 'key a spent its 2');
    assert.equal(await st('/other', 'b'), 200, 'key b still had one');
    assert.equal(await st('/other', 'c'), 200);
    // Leaving the header out is one more key (''), not a way around the limit.
    assert.equal((await request(lb.port, { path: '/n1' })).status, 200);
    assert.equal((await request(lb.port, { path: '/n2' })).status, 200);
    assert.equal((await request(lb.port, { path: '/n3' })).status, 429);
    assert.equal(seen.length, 7);
    assert.equal(log.counted(lb.env.failures, 'rate_limited'), 3);
  });

  test('several limits: all must pass, and a refusal spends nothing from the others', async (t) => {
    const { pools } = await counting(t);
    const lb = await startHttpListener(
      t,
      {
        rateLimits: [
          rateLimit({ key: 'global', rate: 3, perMs: 60_000 }),
          rateLimit({ key: 'header', header: 'x-user', rate: 1, perMs: 60_000 }),
        ],
      },
      pools,
    );
    const st = async (user: string) => (await request(lb.port, { headers: { 'x-user': user } })).status;
    assert.equal(await st('a'), 200); // global 2 left
    assert.equal(await st('a'), 429); // x-user a is empty: global must keep its 2
    assert.equal(await st('a'), 429);
    assert.equal(await st('b'), 200);
    assert.equal(await st('c'), 200, 'the refused requests took no global token');
    assert.equal(await st('d'), 429, 'global is empty now');
    log.counted(lb.env.failures, 'rate_limited');
  });

  test('rate_limit_allow exempts clients; the first request of a new key waits for its lease, not more', async (t) => {
    const { pools } = await counting(t);
    const lb = await startHttpListener(
      t,
      { rateLimits: [rateLimit({ rate: 1, perMs: 60_000 })], rateLimitAllow: cidrs('127.0.0.0/8') },
      pools,
    );
    for (let i = 0; i < 5; i++) assert.equal((await request(lb.port)).status, 200);
    assert.equal(lb.env.rateLimits.stats().leases, 0, 'allowed clients never touch a bucket');
  });

  test('X-Forwarded-For from an untrusted peer never buys a fresh bucket; from a trusted one it names the client', async (t) => {
    const { pools } = await counting(t);
    const limits = [rateLimit({ rate: 2, perMs: 60_000 })];
    const untrusted = await startHttpListener(t, { rateLimits: limits }, pools);
    const xff = (i: number) => ({ 'x-forwarded-for': `203.0.113.${i}` });
    const a = [];
    for (let i = 0; i < 4; i++) a.push((await request(untrusted.port, { headers: xff(i) })).status);
    assert.deepEqual(a, [200, 200, 429, 429]);

    const trusted = await startHttpListener(
      t,
      { name: 'trusted', rateLimits: limits, trustedProxies: cidrs('127.0.0.1') },
      pools,
      { env: untrusted.env },
    );
    const b = [];
    for (let i = 0; i < 4; i++) b.push((await request(trusted.port, { headers: xff(i) })).status);
    assert.deepEqual(b, [200, 200, 200, 200]);
    const c = [];
    for (let i = 0; i < 3; i++) c.push((await request(trusted.port, { headers: xff(9) })).status);
    assert.deepEqual(c, [200, 200, 429]);
    assert.equal(log.counted(trusted.env.failures, 'rate_limited'), 3);
  });

  test('client_ip prefix groups clients: /24 shares one bucket', async (t) => {
    const { pools } = await counting(t);
    const lb = await startHttpListener(
      t,
      { rateLimits: [rateLimit({ rate: 2, perMs: 60_000, prefix: 24 })], trustedProxies: cidrs('127.0.0.1') },
      pools,
    );
    const st = async (ip: string) => (await request(lb.port, { headers: { 'x-forwarded-for': ip } })).status;
    assert.equal(await st('198.51.100.1'), 200);
    assert.equal(await st('198.51.100.2'), 200);
    assert.equal(await st('198.51.100.3'), 429);
    assert.equal(await st('198.51.101.3'), 200);
    log.counted(lb.env.failures, 'rate_limited');
  });

  test('dry_run counts and logs, never refuses', async (t) => {
    const { seen, pools } = await counting(t);
    const lb = await startHttpListener(
      t,
      { rateLimits: [rateLimit({ rate: 1, perMs: 60_000, mode: 'dry_run' })] },
      pools,
    );
    for (let i = 0; i < 4; i++) assert.equal((await request(lb.port)).status, 200);
    assert.equal(seen.length, 4);
    const s = lb.env.rateLimits.stats();
    assert.equal(s.dry_run_would_limit, 3);
    assert.equal(s.limited, 0);
    assert.equal(log.counted(lb.env.failures, 'rate_limited'), 0);
    const lines = log.lines.filter((l) => l.msg === 'rate limit dry run: request would be limited');
    assert.equal(lines.length, 1, 'one line per second at most');
    assert.equal(lines[0]!.limit, 'lb1/web/client_ip');
  });
});

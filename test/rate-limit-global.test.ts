// test: serial — it measures admitted rates (or memory), so it runs alone.
// scope: global across FiberLB instances: two real FiberLB processes share one limit through a
// real redis-server. The shared limit holds within ±10% across both; Redis killed mid-test →
// each instance falls back to its local bucket (fail open, logged once, counted) and keeps
// answering; Redis restarted → the limit is shared again by itself.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { nameServer, type RunningLb, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { paced } from './helpers/rate-load.ts';
import { startRedis } from './helpers/redis.ts';

const RATE = 50;
const BURST = 50;

interface Instance {
  lb: RunningLb;
  port: number;
  admin: number;
  dir: string;
}

async function instance(
  t: { after(fn: () => unknown): void },
  redisPort: number,
  backend: number,
): Promise<Instance> {
  const port = await freeTcpPort();
  const admin = await freeTcpPort();
  const dir = tempDir();
  const yaml = `
admin: { address: 127.0.0.1, port: ${admin}, token_file: admin.token }
cluster: { workers: 1, drain_timeout: 1s }
rate_limit_store: { type: redis, address: 127.0.0.1, port: ${redisPort}, timeout: 300ms }
load_balancers:
  - name: edge
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - name: api
        port: ${port}
        protocol: http
        default_pool: web
        rate_limit: { key: "header:x-client", rate: ${RATE}, burst: ${BURST}, scope: global }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${backend} }]
`;
  const lb = await startLb(writeConfig(dir, yaml), admin);
  t.after(() => lb.stop());
  return { lb, port, admin, dir };
}

async function workers(i: Instance): Promise<unknown> {
  const token = readFileSync(`${i.dir}/admin.token`, 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${i.admin}/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return ((await res.json()) as { rate_limits: { workers: unknown } }).rate_limits.workers;
}

async function ledger(i: Instance): Promise<Record<string, number>> {
  const token = readFileSync(`${i.dir}/admin.token`, 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${i.admin}/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  try {
    return (JSON.parse(text) as { rate_limits: { ledger: Record<string, number> } }).rate_limits.ledger;
  } catch {
    throw new Error(`/status ${res.status}: ${text.slice(0, 300)}`);
  }
}

/** Both instances at once, `rps` each, one client key. */
async function both(a: Instance, b: Instance, rps: number, seconds: number, client: string) {
  const o = { rps, seconds, connections: 4, headers: { 'x-client': client } };
  const [ra, rb] = await Promise.all([
    paced(`http://127.0.0.1:${a.port}/`, o),
    paced(`http://127.0.0.1:${b.port}/`, o),
  ]);
  assert.deepEqual([...ra.errors, ...rb.errors], []);
  const span = Math.max(ra.spanMs, rb.spanMs) / 1000;
  return { ok: ra.ok + rb.ok, each: [ra.ok, rb.ok], span, ra, rb };
}

function report(what: string, r: { ok: number; each: number[]; span: number }, expected: number): void {
  process.stderr.write(
    `rate-limit-global: ${what}: accepted ${r.ok} (${r.each.join('+')}), expected ${expected.toFixed(0)}, ratio ${(r.ok / expected).toFixed(3)}\n`,
  );
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`${what} not within ${ms} ms`);
    await sleep(100);
  }
}

test('two FiberLB instances share one limit through Redis; Redis killed → local limits; restarted → shared again; stalled → nothing waits', async (t) => {
  const redis = await startRedis(t);
  const backend = await nameServer('b');
  t.after(() => backend.close());
  const a = await instance(t, redis.port, backend.port);
  const b = await instance(t, redis.port, backend.port);
  await until(
    async () => (await ledger(a)).redis_up === 1 && (await ledger(b)).redis_up === 1,
    5000,
    'store up',
  );

  // 3× the limit in total, half through each instance.
  const shared = await both(a, b, (3 * RATE) / 2, 8, 'shared');
  const expected = RATE * shared.span + BURST;
  report('shared, 8 s', shared, expected);
  // (The store's timeout is 300 ms here, not the default 100 ms: on a loaded test machine a
  // slow answer would count as an outage and fail open, which the phases below test.)
  const stats = await Promise.all(
    [a, b].map(async (i) => ({ ledger: await ledger(i), workers: await workers(i) })),
  );
  process.stderr.write(`rate-limit-global: shared phase stats ${JSON.stringify(stats)}\n`);
  for (const i of [a, b]) assert.equal((await ledger(i)).redis_fallbacks, 0, 'Redis stayed up');
  assert.ok(Math.abs(shared.ok / expected - 1) <= 0.1, `shared: ${shared.ok} vs ${expected.toFixed(0)}`);

  await redis.kill();
  await until(
    async () => (await ledger(a)).redis_up === 0 && (await ledger(b)).redis_up === 0,
    3000,
    'store down',
  );
  const local = await both(a, b, (3 * RATE) / 2, 4, 'fallback');
  // Each instance now enforces its own bucket: about twice the shared limit, and never unlimited.
  const eachLocal = RATE * local.span + BURST;
  report('redis down (each local), 4 s', local, 2 * eachLocal);
  for (const n of local.each)
    assert.ok(Math.abs(n / eachLocal - 1) <= 0.15, `local: ${local.each} vs ${eachLocal}`);
  for (const i of [a, b]) {
    const s = await ledger(i);
    assert.ok(s.redis_fallbacks >= 1 && s.fallback_leases >= 1, JSON.stringify(s));
    const lines = i.lb
      .output()
      .split('\n')
      .filter((l) => l.includes('rate limit store unreachable'));
    assert.equal(lines.length, 1, 'logged once per outage');
  }

  await redis.start();
  await until(
    async () => (await ledger(a)).redis_up === 1 && (await ledger(b)).redis_up === 1,
    5000,
    'store back',
  );
  const again = await both(a, b, (3 * RATE) / 2, 5, 'recovered');
  const expectedAgain = RATE * again.span + BURST;
  report('recovered, 5 s', again, expectedAgain);
  assert.ok(
    Math.abs(again.ok / expectedAgain - 1) <= 0.1,
    `recovered: ${again.ok} vs ${expectedAgain.toFixed(0)}`,
  );

  // A Redis that stalls (SIGSTOP: accepts, never answers): requests are still answered at once.
  redis.pause();
  const started = Date.now();
  const stalled = await both(a, b, RATE / 4, 2, 'stalled');
  const took = Date.now() - started;
  redis.resume();
  report('redis stalled, under the limit, 2 s', stalled, stalled.ok);
  assert.equal(stalled.ok, RATE, 'every request under the limit passed');
  assert.ok(took < 3_500, `the stalled run took ${took} ms`);
});

// The worker's lease client against the real Ledger: lease sizes follow demand (a busy bucket
// costs few IPC messages), two workers never get more than the bucket holds between them, and
// a primary that does not answer makes waiting requests pass (fail open) within the timeout.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LeaseRequest } from '../src/ipc.ts';
import { Ledger } from '../src/primary/ratelimit/ledger.ts';
import { HAS, LEASE_TIMEOUT_MS, LeaseClient } from '../src/worker/ratelimit/lease-client.ts';
import { captureLog } from './helpers/capture-log.ts';
import { sleep } from './helpers/net.ts';

const turn = () => new Promise((r) => setImmediate(r));

function wired(ledger: Ledger, asked: LeaseRequest[] = []): LeaseClient {
  const client: LeaseClient = new LeaseClient({
    send(reqs, returns) {
      asked.push(...reqs);
      const g = ledger.handle(reqs, returns);
      setImmediate(() => client.onGrants(g));
    },
  });
  return client;
}

/** Spend from bucket `b` as a request would: one token if held, else wait a turn for the lease. */
async function spend(
  c: LeaseClient,
  b: string,
  p: { rate: number; perMs: number; burst: number },
): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    const now = Date.now();
    const l = c.lease(b, { ...p, global: false }, now);
    const st = c.state(l, now);
    if (st === HAS) {
      c.spend(l, now);
      return true;
    }
    if (st === 0) return false;
    await turn();
    await turn();
  }
  return false;
}

test('lease sizes follow demand: 2,000 requests of one busy bucket take few lease messages', async (t) => {
  const ledger = new Ledger();
  const asked: LeaseRequest[] = [];
  const c = wired(ledger, asked);
  t.after(() => c.close());
  const p = { rate: 100_000, perMs: 1000, burst: 100_000 };
  let ok = 0;
  for (let i = 0; i < 2000; i++) {
    if (await spend(c, 'x\nk', p)) ok++;
    if (i % 50 === 0) await turn();
  }
  assert.equal(ok, 2000);
  assert.ok(asked.length < 60, `${asked.length} asks for 2000 requests`);
  assert.ok(Math.max(...asked.map((r) => r.want)) > 10, 'leases grew');
});

test('two workers on one ledger: never more than the bucket between them', async (t) => {
  const ledger = new Ledger();
  const a = wired(ledger);
  const b = wired(ledger);
  t.after(() => {
    a.close();
    b.close();
  });
  a.workers = 2;
  b.workers = 2;
  const p = { rate: 0.001, perMs: 1000, burst: 40 }; // no refill to speak of during the test
  let ok = 0;
  for (let i = 0; i < 100; i++) if (await spend(i % 2 ? a : b, 'x\nk', p)) ok++;
  assert.ok(ok <= 40, `${ok} admitted of a bucket of 40`);
  assert.ok(ok >= 36, `${ok}: leased tokens idle in one worker starve the other`);
});

test('no answer from the primary: waiting requests pass within the timeout, logged once', async (t) => {
  const log = captureLog(t);
  const c = new LeaseClient({ send() {} }); // a primary that never answers
  // The client's sweep timer is unref'd (a worker's sockets keep it alive): keep this test alive.
  const keep = setInterval(() => {}, 1000);
  t.after(() => {
    clearInterval(keep);
    c.close();
  });
  const now = Date.now();
  const l = c.lease('x\nk', { rate: 1, perMs: 1000, burst: 1, global: false }, now);
  assert.equal(c.state(l, now), -1);
  const settled = new Promise<number>((resolve) => {
    const start = Date.now();
    c.wait(l, { leaseSettled: () => resolve(Date.now() - start) });
  });
  const took = await settled;
  assert.ok(took >= LEASE_TIMEOUT_MS - 10 && took < LEASE_TIMEOUT_MS + 600, `settled after ${took} ms`);
  assert.equal(c.state(l, Date.now()), HAS, 'fail open');
  assert.equal(c.stats().lease_timeouts, 1);
  const l2 = c.lease('x\nk2', { rate: 1, perMs: 1000, burst: 1, global: false }, Date.now());
  c.state(l2, Date.now());
  await sleep(LEASE_TIMEOUT_MS + 400);
  assert.equal(c.stats().lease_timeouts, 2);
  assert.equal(log.lines.filter((x) => String(x.msg).startsWith('rate limit lease not answered')).length, 1);
});

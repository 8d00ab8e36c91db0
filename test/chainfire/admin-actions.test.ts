// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// Admin API backend actions with the Chainfire source write the backend's key in the store
// (guarded by its mod_revision), so every FiberLB watching it applies them: a drain through
// instance A is served by A when A answers, seen by a second instance B (two real dist/cli.js
// processes on one etcd), and survives A's restart; a weight change; an ephemeral (leased)
// registration keeps its lease; tenant tokens are scoped (403, nothing written); an unreachable
// store is a 503 counted under admin_store_unavailable with nothing written.
//
// Both instances read the same listener key, and on one machine only one of them can bind its
// port (in production each node binds the VIP on its own host): A starts first and serves the
// traffic; B's listener fails to open (degraded), which leaves its config view — what the
// test reads from B — unaffected.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import {
  backendKey,
  body,
  type ChainfireLb,
  cuttableProxy,
  etcdClient,
  eventually,
  seed,
  startChainfireLb,
} from '../helpers/chainfire.ts';
import { nameServer, tempDir } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

type NameServer = Awaited<ReturnType<typeof nameServer>>;

interface BackendView {
  id: string;
  weight: number;
  admin_state: string;
}

async function call(
  lb: ChainfireLb,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<{ status: number; body: Record<string, unknown> & { backend?: BackendView } }> {
  const r = await fetch(`http://127.0.0.1:${lb.admin}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${opts.token ?? lb.token}`,
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  return { status: r.status, body: (await r.json()) as never };
}

async function backendsOf(lb: ChainfireLb): Promise<BackendView[]> {
  return (await call(lb, 'GET', '/api/v1/pools/w/web/backends')).body as unknown as BackendView[];
}

async function view(lb: ChainfireLb, id: string): Promise<BackendView | undefined> {
  return (await backendsOf(lb)).find((b) => b.id === id);
}

/** `n` requests on fresh connections (spread over A's workers): which backends answered. */
async function spread(port: number, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await body(port);
    seen[r] = (seen[r] ?? 0) + 1;
  }
  return seen;
}

describe('admin API backend actions write Chainfire', () => {
  let etcd: EtcdCluster;
  let c: Etcd3;
  let a: ChainfireLb;
  let b: ChainfireLb;
  let port: number;
  let dirA: string;
  let tenants: string;
  const be: NameServer[] = [];
  const stops: Array<() => Promise<void>> = [];

  const kv = async (key: string) => (await c.get(key).exec()).kvs[0];
  const value = async (key: string) => JSON.parse((await c.get(key).string())!) as Record<string, unknown>;

  before(async () => {
    etcd = await EtcdCluster.start();
    c = etcdClient(etcd.endpoints);
    for (const n of ['a', 'b']) be.push(await nameServer(n));
    port = await freeTcpPort();
    await seed(c, port, [be[0]!.port, be[1]!.port]); // backends b0 → a, b1 → b
    dirA = tempDir();
    tenants = join(dirA, 'tenants.yaml');
    writeFileSync(tenants, 'tok-a: { org: o, project: p }\ntok-b: { org: o2, project: p2 }\n');
    a = await startChainfireLb(etcd.endpoints, { dir: dirA, adminExtra: `, tenant_tokens: ${tenants}` });
    stops.push(() => a.lb.stop());
    b = await startChainfireLb(etcd.endpoints, { until: 'serving' });
    stops.push(() => b.lb.stop());
  });
  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    c?.close();
    await etcd?.stop();
    await Promise.all(be.map((x) => x.close()));
  });

  test('a drain through A is in the store, served by A when it answers, seen by B, kept over A restarting', async () => {
    const key = backendKey('web', 'b1');
    const before = await spread(port, 8);
    assert.ok((before['200 a'] ?? 0) > 0 && (before['200 b'] ?? 0) > 0, JSON.stringify(before));
    const d = await call(a, 'POST', '/api/v1/pools/w/web/backends/b1/drain');
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.store_key, key);
    const rev = d.body.store_revision as number;
    assert.equal(typeof rev, 'number');
    assert.equal(d.body.revision, rev, 'A answers with the store revision it now serves');
    assert.equal(d.body.backend?.admin_state, 'drain');
    // The key holds the new admin_state and everything else as it was.
    assert.deepEqual(await value(key), { address: '127.0.0.1', port: be[1]!.port, admin_state: 'drain' });
    assert.equal(Number((await kv(key))!.mod_revision), rev);
    // Already served in every worker of A when it answered: no waiting here.
    assert.deepEqual(await spread(port, 8), { '200 a': 8 });
    // B applies it through its own watch.
    await eventually(async () => (await view(b, 'b1'))?.admin_state === 'drain', 10_000, 'B sees the drain');
    assert.ok((await b.health()).revision >= rev);

    // A restarts: the drain is the store's state, not A's memory. Both instances serve the same
    // store config on one machine, so B (whose listener could not bind) could take the port
    // while A is down: B is stopped too and started again after A, so A holds the port.
    await a.lb.stop();
    await b.lb.stop();
    a = await startChainfireLb(etcd.endpoints, { dir: dirA, adminExtra: `, tenant_tokens: ${tenants}` });
    stops.push(() => a.lb.stop());
    b = await startChainfireLb(etcd.endpoints, { until: 'serving' });
    stops.push(() => b.lb.stop());
    assert.equal((await view(b, 'b1'))?.admin_state, 'drain', 'a new B reads the drain from the store');
    assert.equal((await view(a, 'b1'))?.admin_state, 'drain');
    assert.deepEqual(await spread(port, 8), { '200 a': 8 });

    const e = await call(a, 'POST', '/api/v1/pools/w/web/backends/b1/enable');
    assert.equal(e.status, 200, JSON.stringify(e.body));
    assert.equal((await value(key)).admin_state, 'enabled');
    const back = await spread(port, 12);
    assert.ok((back['200 b'] ?? 0) > 0, JSON.stringify(back));
    await eventually(async () => (await view(b, 'b1'))?.admin_state === 'enabled', 10_000, 'B sees enable');
  });

  test('weight: written to the key, served by A, seen by B', async () => {
    const w = await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/weight', { body: { weight: 5 } });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.equal(w.body.backend?.weight, 5);
    assert.deepEqual(await value(backendKey('web', 'b0')), {
      address: '127.0.0.1',
      port: be[0]!.port,
      weight: 5,
    });
    await eventually(async () => (await view(b, 'b0'))?.weight === 5, 10_000, 'B sees weight 5');
    const bad = await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/weight', { body: { weight: 0 } });
    assert.equal(bad.status, 400);
    // reset is an in-memory notion: with the store it is refused, and nothing is written
    const modBefore = (await kv(backendKey('web', 'b0')))!.mod_revision;
    const r = await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/reset');
    assert.equal(r.status, 400);
    assert.match(String(r.body.error), /use enable or weight/);
    assert.equal((await kv(backendKey('web', 'b0')))!.mod_revision, modBefore);
  });

  test('an ephemeral (leased) registration keeps its lease when drained', async () => {
    const key = backendKey('web', 'eph');
    const lease = c.lease(30);
    const id = await lease.grant();
    // Its own address:port: a pool's backends must differ (a duplicate would be quarantined).
    await lease.put(key).value(JSON.stringify({ address: '127.0.0.3', port: be[1]!.port }));
    try {
      await eventually(async () => (await view(a, 'eph')) !== undefined, 10_000, 'A sees eph');
      const d = await call(a, 'POST', '/api/v1/pools/w/web/backends/eph/drain');
      assert.equal(d.status, 200, JSON.stringify(d.body));
      const after = (await kv(key))!;
      assert.equal(String(after.lease), id, 'still on the registrant’s lease');
      assert.equal(JSON.parse(after.value.toString()).admin_state, 'drain');
    } finally {
      await lease.revoke();
    }
    // The lease still owns the key: revoking it removes the backend everywhere.
    assert.equal(await c.get(key).string(), null);
    await eventually(async () => (await view(a, 'eph')) === undefined, 10_000, 'eph gone from A');
    await eventually(async () => (await view(b, 'eph')) === undefined, 10_000, 'eph gone from B');
  });

  test('tenant tokens are scoped like /v1/backends: another tenant 403, nothing written', async () => {
    const key = backendKey('web', 'b0');
    const before = (await kv(key))!;
    const revBefore = (await a.health()).revision;
    const denied = await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/drain', { token: 'tok-b' });
    assert.equal(denied.status, 403);
    assert.match(String(denied.body.error), /another tenant/);
    assert.equal(
      (await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/drain', { token: 'nope' })).status,
      401,
    );
    // a tenant token is for backend actions only
    assert.equal((await call(a, 'GET', '/api/v1/status', { token: 'tok-a' })).status, 401);
    const now = (await kv(key))!;
    assert.equal(now.mod_revision, before.mod_revision, 'nothing written');
    assert.equal(now.value.toString(), before.value.toString());
    assert.equal((await a.health()).revision, revBefore);
    // The owning tenant may.
    const ok = await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/disable', { token: 'tok-a' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal((await value(key)).admin_state, 'disabled');
    assert.equal((await call(a, 'POST', '/api/v1/pools/w/web/backends/b0/enable')).status, 200);
  });

  test('store unreachable: 503 admin_store_unavailable, counted, nothing written', async () => {
    const proxy = await cuttableProxy(etcd.endpoints[0]!);
    const lbC = await startChainfireLb([proxy.url], { until: 'serving' });
    try {
      await eventually(async () => (await view(lbC, 'b0')) !== undefined, 10_000, 'C serves the pool');
      const key = backendKey('web', 'b0');
      const before = (await kv(key))!;
      proxy.cut();
      const t0 = Date.now();
      const r = await call(lbC, 'POST', '/api/v1/pools/w/web/backends/b0/drain');
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error_class, 'admin_store_unavailable');
      assert.match(String(r.body.error), /chainfire not reachable .*nothing written/);
      assert.ok(Date.now() - t0 < 15_000, 'bounded');
      assert.equal((await kv(key))!.mod_revision, before.mod_revision);
      const st = await lbC.status();
      assert.equal((st.errors as Record<string, number>).admin_store_unavailable, 1);
      assert.match(lbC.lb.output(), /"error_class":"admin_store_unavailable"/);
    } finally {
      await lbC.lb.stop();
      await proxy.close();
    }
  });
});

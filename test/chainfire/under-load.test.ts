// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// Changes in Chainfire while autocannon drives traffic through FiberLB (2 workers): backends
// added, modified, removed and routes added and removed, with 0 failed requests.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import autocannon from 'autocannon';
import {
  backendKey,
  etcdClient,
  eventually,
  listenerKey,
  poolKey,
  seed,
  startChainfireLb,
} from '../helpers/chainfire.ts';
import { nameServer } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort, sleep } from '../helpers/net.ts';

test('add/remove/modify backends and routes under load: 0 failed requests', async (t) => {
  const etcd = await EtcdCluster.start();
  t.after(() => etcd.stop());
  const c = etcdClient(etcd.endpoints);
  t.after(() => c.close());
  const be = [await nameServer('a'), await nameServer('b'), await nameServer('c')];
  t.after(() => Promise.all(be.map((b) => b.close())));
  const port = await freeTcpPort();
  await seed(c, port, [be[0]!.port]);
  await c.put(poolKey('w', 'web2')).value('{}');
  await c.put(backendKey('web2', 'c')).value(JSON.stringify({ address: '127.0.0.1', port: be[2]!.port }));
  const f = await startChainfireLb(etcd.endpoints);
  t.after(() => f.lb.stop());
  const before = (await f.status()).source_state.stats as Record<string, number>;

  const load = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 10,
    duration: 6,
    requests: [{ path: '/' }, { path: '/x/y' }],
  });
  const backend = (id: string, p: number, extra = {}) =>
    c.put(backendKey('web', id)).value(JSON.stringify({ address: '127.0.0.1', port: p, ...extra }));
  const listener = (routes: unknown[]) =>
    c
      .put(listenerKey('w', 'api'))
      .value(JSON.stringify({ port, protocol: 'http', default_pool: 'web', routes }));
  const steps = [
    () => backend('b1', be[1]!.port), // add
    () => backend('b1', be[1]!.port, { weight: 5 }), // modify
    () => listener([{ match: { path_prefix: '/x/' }, pool: 'web2' }]), // add a route
    () => backend('b0', be[0]!.port, { admin_state: 'drain' }), // drain
    () => c.delete().key(backendKey('web', 'b0')).exec(), // remove
    () => listener([]), // remove the route
    () => backend('b0', be[0]!.port), // add back
  ];
  for (const step of steps) {
    await sleep(600);
    await step();
  }
  const r = await load;
  assert.equal(r.errors, 0, 'connection errors');
  assert.equal(r.non2xx, 0, 'non-2xx answers');
  assert.ok(r.requests.total > 500, `${r.requests.total} requests`);
  const after = (await f.status()).source_state.stats as Record<string, number>;
  assert.equal(after.events! - before.events!, steps.length);
  await eventually(
    async () =>
      (await f.health()).revision === Number((await c.getAll().prefix('/fiberlb/').exec()).header.revision),
  );
});

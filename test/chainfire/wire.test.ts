// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// source.api: chainfire — the Store over Chainfire's own gRPC names (chainfire.v1), verified
// through the test shim (test/helpers/chainfire-shim.ts) that forwards those names to a real
// etcd. Not verified against a Chainfire server (none can run here).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/config/sources/chainfire/etcd-store.ts';
import { GrpcStore } from '../../src/config/sources/chainfire/grpc-store.ts';
import type { WatchBatch } from '../../src/config/sources/chainfire/store.ts';
import { body, etcdClient, eventually, putBackend, seedAB, startChainfireLb } from '../helpers/chainfire.ts';
import { type Shim, startChainfireShim } from '../helpers/chainfire-shim.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

describe('chainfire wire API (through the shim)', () => {
  let etcd: EtcdCluster;
  let c: Etcd3;
  let shim: Shim;
  let shimPort: number;

  before(async () => {
    etcd = await EtcdCluster.start();
    c = etcdClient(etcd.endpoints);
    shimPort = await freeTcpPort();
    shim = await startChainfireShim(etcd.endpoints[0]!, shimPort);
  });
  after(async () => {
    await shim?.stop();
    c?.close();
    await etcd?.stop();
  });

  test('the shim answers only chainfire.v1 paths: etcd names are UNIMPLEMENTED there', async () => {
    const client = new grpc.Client(shim.url.replace('http://', ''), grpc.credentials.createInsecure());
    const code = await new Promise<number>((resolve) =>
      client.makeUnaryRequest(
        '/etcdserverpb.KV/Range',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (err) => resolve(err?.code ?? 0),
      ),
    );
    client.close();
    assert.equal(code, grpc.status.UNIMPLEMENTED);
    const etcdOverShim = new EtcdStore({ endpoints: [shim.url], callTimeoutMs: 2_000 });
    await assert.rejects(etcdOverShim.range('/fiberlb/'));
    await etcdOverShim.close();
  });

  test('range, guarded txn, watch and lease over chainfire.v1', async () => {
    const s = new GrpcStore({ endpoints: [shim.url] }, 'chainfire');
    try {
      const put = await s.txn([
        { put: '/t/a', value: '1' },
        { put: '/t/b', value: '2' },
      ]);
      assert.equal(put.ok, true);
      const r = await s.range('/t/');
      assert.equal(r.revision, put.revision);
      assert.deepEqual(
        r.kvs.map((kv) => [kv.key, kv.value, kv.modRevision]),
        [
          ['/t/a', '1', put.revision],
          ['/t/b', '2', put.revision],
        ],
      );
      const stale = await s.txn(
        [{ put: '/t/a', value: 'x' }],
        [{ key: '/t/a', modRevision: put.revision - 1 }],
      );
      assert.equal(stale.ok, false);
      assert.equal(await c.get('/t/a').string(), '1');

      const batches: WatchBatch[] = [];
      const w = await s.watch('/t/', (await s.range('/t/')).revision + 1, {
        batch: (b) => batches.push(b),
        lost: () => {},
      });
      const t2 = await s.txn([{ put: '/t/c', value: '3' }, { delete: '/t/a' }]);
      await eventually(async () => batches.length > 0);
      assert.deepEqual(batches[0]!.events, [
        { type: 'put', key: '/t/c', value: '3', modRevision: t2.revision },
        { type: 'delete', key: '/t/a', value: '', modRevision: t2.revision },
      ]);
      await w.cancel();

      const lease = await s.lease(2);
      await s.txn([{ put: '/t/eph', value: 'x', lease: lease.id }]);
      await new Promise((res) => setTimeout(res, 3_000)); // kept alive past its TTL
      assert.equal(await c.get('/t/eph').string(), 'x');
      await lease.revoke();
      assert.equal(await c.get('/t/eph').string(), null);
    } finally {
      await s.close();
    }
  });

  test('a lease whose holder stops expires over chainfire.v1, and its key goes', async () => {
    const s = new GrpcStore({ endpoints: [shim.url] }, 'chainfire');
    const lease = await s.lease(1);
    await s.txn([{ put: '/t/dies', value: 'x', lease: lease.id }]);
    assert.equal(await c.get('/t/dies').string(), 'x');
    await s.close(); // keepalives stop, nothing is revoked
    await eventually(async () => (await c.get('/t/dies').string()) === null, 10_000, 'lease expired');
  });

  test('FiberLB with api: chainfire: loads, follows puts, survives a shim restart and a compaction', async (t) => {
    const { a, b, port } = await seedAB(t, c);
    const f = await startChainfireLb([shim.url], { extra: '  api: chainfire' });
    t.after(() => f.lb.stop());
    assert.equal(await body(port), '200 a');
    assert.equal((await f.status()).source_state.api, 'chainfire');

    await putBackend(c, 'b0', b.port);
    await eventually(async () => (await body(port)) === '200 b');

    // The shim goes away; meanwhile the key changes and etcd compacts past FiberLB's watch.
    await shim.stop();
    await putBackend(c, 'b0', a.port);
    const rev = Number((await c.put('/other/x').value('y').exec()).header.revision);
    await c.kv.compact({ revision: rev, physical: true });
    shim = await startChainfireShim(etcd.endpoints[0]!, shimPort);
    await eventually(() => f.appliedEverywhere(rev), 20_000, 'converged through the new shim');
    assert.equal(await body(port), '200 a');
    assert.match(f.lb.output(), /"msg":"chainfire watch compacted; re-listing"/);
  });

  test('api: chainfire fails over to the next endpoint when the one in use goes away', async (t) => {
    const { b, port } = await seedAB(t, c);
    const second = await startChainfireShim(etcd.endpoints[0]!);
    t.after(() => second.stop());
    const f = await startChainfireLb([shim.url, second.url], { extra: '  api: chainfire' });
    t.after(() => f.lb.stop());
    assert.equal(await body(port), '200 a');
    await shim.stop(); // the first endpoint, which the watch uses
    await putBackend(c, 'b0', b.port);
    await eventually(
      async () => (await body(port)) === '200 b',
      15_000,
      'served through the second endpoint',
    );
    assert.match(f.lb.output(), /"msg":"chainfire watch reconnected"/);
    shim = await startChainfireShim(etcd.endpoints[0]!, shimPort); // for after()
  });
});

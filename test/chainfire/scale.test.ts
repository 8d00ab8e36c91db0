// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// 1,000 backends: loaded at start and applied after one transaction in under 1 s (both workers).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backendKey, body, etcdClient, seed, startChainfireLb } from '../helpers/chainfire.ts';
import { nameServer } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

test('1,000 backends load and apply in < 1 s', async (t) => {
  const etcd = await EtcdCluster.start({ args: ['--max-txn-ops', '2000'] });
  t.after(() => etcd.stop());
  const c = etcdClient(etcd.endpoints);
  t.after(() => c.close());
  const a = await nameServer('a');
  t.after(() => a.close());
  const port = await freeTcpPort();
  await seed(c, port, [a.port]);
  const txn = (n: number, base: number) =>
    c.kv.txn({
      compare: [],
      success: Array.from({ length: n }, (_, i) => ({
        request_put: {
          key: Buffer.from(backendKey('web', `n${base + i}`)),
          value: Buffer.from(
            JSON.stringify({ address: '127.0.0.1', port: 1024 + base + i, admin_state: 'disabled' }),
          ),
        },
      })),
      failure: [],
    });
  await txn(1000, 0);
  const f = await startChainfireLb(etcd.endpoints);
  t.after(() => f.lb.stop());
  assert.equal((await f.status()).source_state.keys, 1004);
  assert.equal(await body(port), '200 a'); // the 1,000 are disabled: only b0 takes traffic

  const t0 = performance.now();
  const res = await txn(1000, 1000);
  const rev = Number(res.header.revision);
  for (;;) {
    const h = await f.health();
    if (h.revision >= rev && h.workers_ready === 2) break;
  }
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < 1000, `1,000 backends applied in ${Math.round(elapsed)} ms`);
  assert.equal((await f.status()).source_state.keys, 2004);
});

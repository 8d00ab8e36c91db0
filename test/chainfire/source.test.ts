// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// source.type: chainfire against a real etcd: initial load at the store revision, changes
// through the watch, a bad key quarantined (with its dependents) while the rest serves, a
// multi-key transaction never half-served, a burst of changes ending at the store revision, and deleting everything applied as an empty state.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import {
  backendKey,
  body,
  type ChainfireLb,
  etcdClient,
  eventually,
  lbKey,
  listenerKey,
  poolKey,
  seed,
  startChainfireLb,
} from '../helpers/chainfire.ts';
import { nameServer } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

type NameServer = Awaited<ReturnType<typeof nameServer>>;

describe('chainfire source', () => {
  let etcd: EtcdCluster;
  let c: Etcd3;
  let f: ChainfireLb;
  let port: number;
  const be: NameServer[] = [];

  before(async () => {
    etcd = await EtcdCluster.start();
    c = etcdClient(etcd.endpoints);
    for (const n of ['one', 'two', 'three']) be.push(await nameServer(n));
    port = await freeTcpPort();
    await seed(c, port, [be[0]!.port]);
    f = await startChainfireLb(etcd.endpoints);
  });
  after(async () => {
    await f?.lb.stop();
    c?.close();
    await etcd?.stop();
    await Promise.all(be.map((b) => b.close()));
  });

  async function storeRevision(): Promise<number> {
    const r = await c.getAll().prefix('/fiberlb/').exec();
    return Number(r.header.revision);
  }

  test('initial load serves the keys; the snapshot revision is the store revision', async () => {
    assert.equal(await body(port), '200 one');
    const h = await f.health();
    assert.equal(h.revision, await storeRevision());
    const s = await f.status();
    assert.equal(s.revision, h.revision);
    assert.equal(s.source_state.serving_from, 'store');
    assert.match(f.lb.output(), new RegExp(`"msg":"config loaded".*"revision":${h.revision}`));
  });

  test('a put is served by every worker; a modify and a delete too', async () => {
    await c.put(backendKey('web', 'b1')).value(JSON.stringify({ address: '127.0.0.1', port: be[1]!.port }));
    await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) seen.add(await body(port));
      return seen.has('200 two') && seen.has('200 one');
    });
    // modify: b0 now points at three
    await c.put(backendKey('web', 'b0')).value(JSON.stringify({ address: '127.0.0.1', port: be[2]!.port }));
    await c.delete().key(backendKey('web', 'b1'));
    const rev = await storeRevision();
    await eventually(() => f.appliedEverywhere(rev));
    for (let i = 0; i < 8; i++) assert.equal(await body(port), '200 three');
  });

  test('a bad key is quarantined with key, field and reason; its dependents too; the rest serves', async () => {
    const port2 = await freeTcpPort();
    await c.put(poolKey('w', 'bad')).value(JSON.stringify({ algorithm: 'fastest' }));
    await c.put(backendKey('bad', 'x')).value(JSON.stringify({ address: '127.0.0.1', port: be[0]!.port }));
    await c
      .put(listenerKey('w', 'uses-bad'))
      .value(JSON.stringify({ port: port2, protocol: 'http', default_pool: 'bad' }));
    await c.put(backendKey('web', 'b9')).value(JSON.stringify({ address: '127.0.0.1', port: 70000 }));
    await c.put('/fiberlb/nonsense').value('{}');
    const rev = await storeRevision();
    await eventually(() => f.appliedEverywhere(rev));
    const q = (await f.status()).source_state.quarantined as Array<Record<string, string>>;
    const by = new Map(q.map((x) => [x.key, x]));
    assert.deepEqual(by.get(poolKey('w', 'bad')), {
      key: poolKey('w', 'bad'),
      field: 'algorithm',
      reason:
        "invalid value 'fastest'; expected one of: round_robin, weighted_round_robin, least_connections, random, p2c, ip_hash, maglev",
    });
    assert.equal(by.get(backendKey('web', 'b9'))?.field, 'port');
    assert.match(by.get(backendKey('web', 'b9'))!.reason, /70000 is out of range 1-65535/);
    assert.equal(by.get(listenerKey('w', 'uses-bad'))?.depends_on, poolKey('w', 'bad'));
    assert.equal(by.get(listenerKey('w', 'uses-bad'))?.field, 'default_pool');
    assert.equal(by.get(backendKey('bad', 'x'))?.depends_on, poolKey('w', 'bad'));
    assert.equal(by.get('/fiberlb/nonsense')?.field, '(key)');
    assert.equal(q.length, 5);
    assert.match(
      f.lb.output(),
      /"msg":"chainfire key quarantined".*"key":"\/fiberlb\/pools\/w\/bad","field":"algorithm"/,
    );
    // Everything else still serves.
    assert.equal(await body(port), '200 three');
    // Fixing the pool brings its dependents back.
    await c.put(poolKey('w', 'bad')).value(JSON.stringify({ algorithm: 'random' }));
    await eventually(async () => (await body(port2)) === '200 one');
    for (const k of [
      poolKey('w', 'bad'),
      backendKey('bad', 'x'),
      listenerKey('w', 'uses-bad'),
      backendKey('web', 'b9'),
      '/fiberlb/nonsense',
    ])
      await c.delete().key(k);
  });

  test('a multi-key transaction is applied whole: no request sees half of it', async () => {
    // Switch the listener from pool web to a new pool green with its backend, in one txn.
    let stop = false;
    const seen = new Map<string, number>();
    const loop = async () => {
      while (!stop) {
        const b = await body(port).catch((e: Error) => `error ${e.message}`);
        seen.set(b, (seen.get(b) ?? 0) + 1);
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await new Promise((r) => setTimeout(r, 200));
    const res = await c.kv.txn({
      compare: [],
      success: [
        { request_put: { key: Buffer.from(poolKey('w', 'green')), value: Buffer.from('{}') } },
        {
          request_put: {
            key: Buffer.from(backendKey('green', 'g1')),
            value: Buffer.from(JSON.stringify({ address: '127.0.0.1', port: be[1]!.port })),
          },
        },
        {
          request_put: {
            key: Buffer.from(listenerKey('w', 'api')),
            value: Buffer.from(JSON.stringify({ port, protocol: 'http', default_pool: 'green' })),
          },
        },
        { request_delete_range: { key: Buffer.from(backendKey('web', 'b0')) } },
        { request_delete_range: { key: Buffer.from(poolKey('w', 'web')) } },
      ],
      failure: [],
    });
    const rev = Number(res.header.revision);
    await eventually(() => f.appliedEverywhere(rev));
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(
      [...seen.keys()].sort(),
      ['200 three', '200 two'],
      `only the old or the new state: ${JSON.stringify([...seen])}`,
    );
    assert.deepEqual((await f.status()).source_state.quarantined, []);
  });

  test('a burst of changes while reloads are in flight: the served revision ends at the store revision', async () => {
    // Puts spaced around the source's debounce, so watch wake-ups arrive while a reload runs.
    for (let i = 0; i < 40; i++) {
      const value = { address: '127.0.0.1', port: be[0]!.port, weight: 1 + (i % 5) };
      await c.put(backendKey('green', 'g1')).value(JSON.stringify(value));
      await new Promise((r) => setTimeout(r, i % 15));
    }
    const rev = await storeRevision();
    await eventually(() => f.appliedEverywhere(rev), 10_000, `revision ${rev} served`);
    await new Promise((r) => setTimeout(r, 300)); // a late, repeated reload would show here
    assert.equal((await f.health()).revision, rev, 'no revision of our own on top of the store');
  });

  test('deleting every key is an explicit empty state, applied', async () => {
    await c.delete().prefix('/fiberlb/');
    const rev = await storeRevision();
    await eventually(() => f.appliedEverywhere(rev));
    const after = await body(port).catch((err: Error) => err);
    assert.ok(after instanceof Error, `the listener is closed: nothing is served (got ${String(after)})`);
    const s = await f.status();
    assert.equal(s.source_state.keys, 0);
    // And back.
    await seed(c, port, [be[0]!.port]);
    await eventually(async () => (await body(port).catch(() => '')) === '200 one');
    assert.ok(lbKey('w'));
  });
});

// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// The guarded write behind the Chainfire admin actions, in-process against a real etcd: a
// concurrent change between read and write is never lost (the write is retried on the new
// value), a key that keeps changing ends in 409 admin_write_conflict after a bounded number of
// tries with the other writer's value intact, and a key that is gone is 404
// admin_backend_gone; each failure counted under its class and nothing written.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import type { StaticConfig } from '../../src/config/model.ts';
import { openStore } from '../../src/config/sources/chainfire/connect.ts';
import {
  PATCH_ATTEMPTS,
  patchBackend,
  RegistrationError,
} from '../../src/config/sources/chainfire/registration.ts';
import type { Store } from '../../src/config/sources/chainfire/store.ts';
import { parseConfigText } from '../../src/config/validate.ts';
import { tenantAccess } from '../../src/primary/admin/registration.ts';
import { ADMIN_CALLER } from '../../src/primary/admin/routes.ts';
import { StoreActions } from '../../src/primary/admin/store-actions.ts';
import type { ReloadOutcome } from '../../src/primary/health.ts';
import { Failures } from '../../src/shared/failure.ts';
import { captureLog } from '../helpers/capture-log.ts';
import { backendKey, etcdClient, seed } from '../helpers/chainfire.ts';
import { EtcdCluster } from '../helpers/etcd.ts';

/** A real store whose every read is followed by a real write of another client (a racing operator). */
function racing(store: Store, race: () => Promise<void>, times: number): Store {
  let left = times;
  return {
    range: async (prefix, revision) => {
      const r = await store.range(prefix, revision);
      if (left > 0 && prefix.includes('/backends/') && r.kvs.length === 1) {
        left--;
        await race();
      }
      return r;
    },
    watch: (p, from, h) => store.watch(p, from, h),
    txn: (ops, guards) => store.txn(ops, guards),
    lease: (ttl) => store.lease(ttl),
    close: () => store.close(),
  };
}

describe('guarded backend writes against a real etcd', () => {
  let etcd: EtcdCluster;
  let c: Etcd3;
  let store: Store;
  let statics: StaticConfig;

  before(async () => {
    etcd = await EtcdCluster.start();
    c = etcdClient(etcd.endpoints);
    await seed(c, 18080, [9001, 9002]);
    const r = parseConfigText(
      `source: { type: chainfire, endpoints: [${etcd.endpoints[0]}] }\nload_balancers: []\n`,
      '/tmp/t.yaml',
    );
    assert.ok(r.ok);
    statics = r.config.static;
    if (statics.source.type !== 'chainfire') throw new Error('unreachable');
    store = openStore(statics.source);
  });
  after(async () => {
    await store?.close();
    c?.close();
    await etcd?.stop();
  });

  test('a concurrent change between read and write is kept; the write is retried on it', async () => {
    const key = backendKey('web', 'b0');
    let n = 0;
    const s = racing(
      store,
      async () => {
        await c.put(key).value(JSON.stringify({ address: '127.0.0.1', port: 9001, weight: 7 + n++ }));
      },
      1,
    );
    const r = await patchBackend(s, key, { admin_state: 'drain' });
    assert.equal(r.attempts, 2);
    assert.deepEqual(JSON.parse((await c.get(key).string())!), {
      address: '127.0.0.1',
      port: 9001,
      weight: 7,
      admin_state: 'drain',
    });
  });

  test('a key that keeps changing: 409 admin_write_conflict after the bounded tries, the other writer wins', async (t) => {
    const logged = captureLog(t);
    const key = backendKey('web', 'b1');
    let n = 0;
    const other = () => JSON.stringify({ address: '127.0.0.1', port: 9002, weight: 100 + n });
    const s = racing(
      store,
      async () => {
        n++;
        await c.put(key).value(other());
      },
      PATCH_ATTEMPTS,
    );
    await assert.rejects(patchBackend(s, key, { admin_state: 'drain' }), (err: unknown) => {
      assert.ok(err instanceof RegistrationError);
      assert.equal(err.status, 409);
      return true;
    });
    assert.equal(n, PATCH_ATTEMPTS);
    assert.equal(await c.get(key).string(), other(), 'nothing of ours written');

    // The same through the admin action: counted under its class.
    const failures = new Failures();
    const access = tenantAccess(statics)!;
    const sm = racing(
      store,
      async () => {
        n++;
        await c.put(key).value(other());
      },
      PATCH_ATTEMPTS,
    );
    // No primary here: the wait for "served" is exercised end-to-end in admin-actions.test.ts.
    const served = async (): Promise<ReloadOutcome> => assert.fail('must not be reached');
    const actions = new StoreActions({ ...access, store: () => sm }, served, failures);
    const w = await actions.write(
      { lb: 'w', pool: 'web', id: 'b1', key: 'w/web/b1' },
      { kind: 'admin_state', adminState: 'drain' },
      ADMIN_CALLER,
    );
    assert.equal(w.ok, false);
    assert.equal(!w.ok && w.status, 409);
    assert.equal(!w.ok && w.errorClass, 'admin_write_conflict');
    assert.equal(failures.counts.get('admin_write_conflict'), 1);
    assert.equal(logged.of('admin_write_conflict').length, 1);
    assert.match(String(logged.of('admin_write_conflict')[0]!.error), /kept changing \(5 guarded writes/);
    assert.equal(await c.get(key).string(), other());
  });

  test('a backend whose key is gone: 404 admin_backend_gone, counted, nothing written', async (t) => {
    const logged = captureLog(t);
    const failures = new Failures();
    const access = tenantAccess(statics)!;
    const served = async (): Promise<ReloadOutcome> => assert.fail('must not be reached');
    const actions = new StoreActions({ ...access, store: () => store }, served, failures);
    const revBefore = Number((await c.get('/fiberlb/').exec()).header.revision);
    const w = await actions.write(
      { lb: 'w', pool: 'web', id: 'gone', key: 'w/web/gone' },
      { kind: 'weight', weight: 3 },
      ADMIN_CALLER,
    );
    assert.equal(w.ok, false);
    assert.equal(!w.ok && w.status, 404);
    assert.equal(!w.ok && w.errorClass, 'admin_backend_gone');
    assert.equal(failures.counts.get('admin_backend_gone'), 1);
    assert.equal(logged.of('admin_backend_gone')[0]!.backend, 'w/web/gone');
    assert.equal(Number((await c.get('/fiberlb/').exec()).header.revision), revBefore, 'no write at all');
    assert.equal(await c.get(backendKey('web', 'gone')).string(), null);
  });
});

// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// The etcd test helper itself: a single member and a 3-member cluster come up healthy on free
// ports, a killed leader is replaced and can rejoin, and stop() leaves no process or data dir.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { EtcdCluster } from '../helpers/etcd.ts';

async function put(url: string, key: string, value: string): Promise<Response> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return fetch(`${url}/v3/kv/put`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(key), value: b64(value) }),
  });
}

test('single member: healthy, writable, stopped and removed', async (t) => {
  const etcd = await EtcdCluster.start();
  t.after(() => etcd.stop());
  assert.equal(etcd.endpoints.length, 1);
  assert.equal((await put(etcd.endpoints[0]!, '/k', 'v')).status, 200);
  const m = etcd.members[0]!;
  await etcd.stop();
  assert.notEqual(m.proc!.exitCode ?? m.proc!.signalCode, null);
  assert.equal(existsSync(m.dataDir), false);
});

test('3 members: leader killed, a new leader is elected, the old one rejoins', async (t) => {
  const etcd = await EtcdCluster.start({ members: 3 });
  t.after(() => etcd.stop());
  const first = await etcd.leader();
  await etcd.kill(first);
  const second = await etcd.leader();
  assert.notEqual(second.name, first.name);
  const alive = etcd.members.find((m) => m !== first)!;
  assert.equal((await put(alive.clientUrl, '/k', 'v')).status, 200);
  await etcd.restart(first);
  assert.equal((await put(first.clientUrl, '/k2', 'v')).status, 200);
});

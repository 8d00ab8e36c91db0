// test: serial — it kills processes under load and waits on timings, so it runs alone.
// The Chainfire source when the store misbehaves, against real etcd: the leader of a 3-member
// cluster killed under traffic, compaction past the watch revision while FiberLB is cut off,
// etcd down at boot (last-good, then converge), a corrupt last-good file, lease expiry, and an
// expired auth token.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import autocannon from 'autocannon';
import {
  backendKey,
  body,
  etcdClient,
  eventually,
  putBackend,
  seedAB,
  seededEtcd,
  startBehindProxy,
  startChainfireLb,
} from '../helpers/chainfire.ts';
import { tempDir } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort, sleep } from '../helpers/net.ts';

type Stats = Record<string, number>;

test('leader killed during traffic: routing unaffected, watch resumes, no event lost or applied twice', async (t) => {
  const { etcd, b, port } = await seededEtcd(t, { members: 3 });
  const f = await startChainfireLb(etcd.endpoints);
  t.after(() => f.lb.stop());
  const before = (await f.status()).source_state.stats as Stats;

  const load = autocannon({ url: `http://127.0.0.1:${port}/`, connections: 8, duration: 5 });
  await sleep(800);
  const leader = await etcd.leader();
  await etcd.kill(leader);
  // Writes go to the survivors (a client that still tries the dead member first stalls ~7 s).
  const survivors = etcdClient(etcd.members.filter((m) => m !== leader).map((m) => m.clientUrl));
  t.after(() => survivors.close());
  for (let i = 1; i <= 20; i++)
    await survivors
      .put(backendKey('web', 'seq'))
      .value(JSON.stringify({ address: '127.0.0.1', port: b.port, weight: i }));
  const rev = Number((await survivors.getAll().prefix('/fiberlb/').exec()).header.revision);
  await eventually(() => f.appliedEverywhere(rev), 15_000, 'store revision served');
  const r = await load;
  assert.equal(r.errors, 0);
  assert.equal(r.non2xx, 0);
  assert.ok(r.requests.total > 100);
  const after = (await f.status()).source_state.stats as Stats;
  assert.equal(after.events! - before.events!, 20, 'every event applied exactly once');
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) seen.add(await body(port));
  assert.ok(seen.has('200 b'));
});

test('compaction past the watch revision while cut off: re-listed, converged', async (t) => {
  const { etcd, c, b, port } = await seededEtcd(t);
  const { proxy, f } = await startBehindProxy(t, etcd.endpoints[0]!);
  assert.equal(await body(port), '200 a');

  proxy.cut();
  await putBackend(c, 'b0', b.port);
  await c.put('/other/noise').value('x');
  const rev = Number((await c.get('/other/noise').exec()).header.revision);
  await c.kv.compact({ revision: rev, physical: true });
  await proxy.restore();
  await eventually(() => f.appliedEverywhere(rev), 20_000, 'converged after compaction').catch((e: Error) => {
    throw new Error(`${e.message}\n${f.lb.output()}`);
  });
  assert.equal(await body(port), '200 b');
  assert.match(f.lb.output(), /"msg":"chainfire watch compacted; re-listing"/);
});

test('etcd down at boot: serves the last-good state, converges when etcd returns', async (t) => {
  const { etcd, c, b, port } = await seededEtcd(t);
  const dir = tempDir();
  const first = await startChainfireLb(etcd.endpoints, { dir });
  const rev = (await first.health()).revision;
  await eventually(
    async () => ((await first.status()).source_state.last_good as { revision: number }).revision === rev,
  );
  await first.lb.stop();

  const m = etcd.members[0]!;
  await etcd.kill(m);
  const second = await startChainfireLb(etcd.endpoints, { dir });
  t.after(() => second.lb.stop());
  assert.equal(await body(port), '200 a');
  assert.equal((await second.health()).revision, rev);
  assert.equal((await second.status()).source_state.serving_from, 'last_good');
  assert.match(
    second.lb.output(),
    /"msg":"chainfire unreachable at start; serving the last-good state until it answers"/,
  );

  await etcd.restart(m);
  await putBackend(c, 'b0', b.port);
  await eventually(async () => (await body(port)) === '200 b', 20_000, 'converged');
  assert.equal((await second.status()).source_state.serving_from, 'store');
});

test('a corrupt last-good file with etcd down is reported, and boot still succeeds', async (t) => {
  const dir = tempDir();
  const deadPort = await freeTcpPort();
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'state'));
  writeFileSync(join(dir, 'state', 'last-good.json'), '{"format":1,"revision":');
  const f = await startChainfireLb([`http://127.0.0.1:${deadPort}`], { dir, until: 'serving' });
  t.after(() => f.lb.stop());
  const s = (await f.status()).source_state;
  assert.equal(s.serving_from, 'empty');
  assert.match((s.last_good as { error: string }).error, /^corrupt: /);
  assert.match(f.lb.output(), /no usable last-good state; serving nothing until it answers/);
});

test('lease expiry removes a backend', async (t) => {
  const { etcd, c, b, port } = await seededEtcd(t);
  const f = await startChainfireLb(etcd.endpoints);
  t.after(() => f.lb.stop());
  const registrant = etcdClient(etcd.endpoints);
  const lease = registrant.lease(1);
  await lease.put(backendKey('web', 'eph')).value(JSON.stringify({ address: '127.0.0.1', port: b.port }));
  await eventually(async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await body(port));
    return seen.has('200 b');
  });
  lease.release(); // the registrant dies: no more keepalives
  registrant.close();
  await eventually(
    async () => (await c.get(backendKey('web', 'eph')).string()) === null,
    10_000,
    'lease expired',
  );
  const rev = Number((await c.getAll().prefix('/fiberlb/').exec()).header.revision);
  await eventually(() => f.appliedEverywhere(rev));
  for (let i = 0; i < 10; i++) assert.equal(await body(port), '200 a');
});

test('an expired auth token is renewed: the watch keeps working after etcd restarts', async (t) => {
  const etcd = await EtcdCluster.start({ args: ['--auth-token', 'simple', '--auth-token-ttl', '1'] });
  t.after(() => etcd.stop());
  const root = etcdClient(etcd.endpoints);
  await root.role('root').create();
  await root.user('root').create('rootpw');
  await root.user('root').addRole('root');
  await root.auth.authEnable({});
  root.close();
  const c = etcdClient(etcd.endpoints, { username: 'root', password: 'rootpw' });
  t.after(() => c.close());
  const { b, port } = await seedAB(t, c);
  const dir = tempDir();
  writeFileSync(join(dir, 'etcd.password'), 'rootpw\n');
  const f = await startChainfireLb(etcd.endpoints, {
    dir,
    extra: `  username: root\n  password_file: ${join(dir, 'etcd.password')}`,
  });
  t.after(() => f.lb.stop());
  assert.equal(await body(port), '200 a');
  await sleep(2_500); // past the token TTL
  await etcd.restart(etcd.members[0]!); // and every token is forgotten
  await putBackend(c, 'b0', b.port);
  await eventually(async () => (await body(port)) === '200 b', 20_000, 'change after re-authentication');
  assert.match(f.lb.output(), /"msg":"chainfire watch disconnected; reconnecting"/);
  assert.match(f.lb.output(), /"msg":"chainfire watch reconnected"/);
  assert.equal((await f.status()).source_state.connected, true);
});

test('an unreadable password_file stops the start with one clear line, no stack trace', async () => {
  const { spawnSync } = await import('node:child_process');
  const { CLI, ROOT, writeConfig } = await import('../helpers/cluster-fiberlb.ts');
  const { chainfireYaml } = await import('../helpers/chainfire.ts');
  const dir = tempDir();
  const admin = await freeTcpPort();
  const file = writeConfig(
    dir,
    chainfireYaml({
      admin,
      endpoints: ['http://127.0.0.1:1'],
      dir,
      extra: `  username: root\n  password_file: ${join(dir, 'missing.password')}`,
    }),
  );
  const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 15_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /: source: ENOENT: no such file or directory, open '.*missing\.password'/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('a watch whose connection goes silent (no FIN, no RST) is detected by keepalive and resumes', async (t) => {
  const { etcd, c, b, port } = await seededEtcd(t);
  const { proxy, f } = await startBehindProxy(t, etcd.endpoints[0]!);
  assert.equal(await body(port), '200 a');
  proxy.freeze();
  await putBackend(c, 'b0', b.port);
  // keepalive 6 s + 3 s timeout, then a reconnect: well within 25 s
  await eventually(async () => (await body(port)) === '200 b', 25_000, 'change after a silent connection');
  assert.match(f.lb.output(), /"msg":"chainfire watch disconnected; reconnecting"/);
});

// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// Backend registration: `fiberlb backends ...` straight to the store (ephemeral on a lease kept
// alive by the command), and the admin API's tenant-scoped writes (401 unknown token, 403 other
// tenant, nothing written in either case).

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { CLI, nameServer, ROOT, tempDir } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

type NameServer = Awaited<ReturnType<typeof nameServer>>;

describe('backend registration', () => {
  let etcd: EtcdCluster;
  let c: Etcd3;
  let f: ChainfireLb;
  let port: number;
  let file: string;
  const be: NameServer[] = [];
  const procs: ChildProcess[] = [];

  before(async () => {
    etcd = await EtcdCluster.start();
    c = etcdClient(etcd.endpoints);
    for (const n of ['a', 'b', 'c']) be.push(await nameServer(n));
    port = await freeTcpPort();
    await seed(c, port, [be[0]!.port]);
    // Another tenant's load balancer, with a pool also called web.
    await c.put(lbKey('x', 'o2', 'p2')).value(JSON.stringify({ vip: '127.0.0.1' }));
    await c.put(poolKey('x', 'xweb')).value(JSON.stringify({ name: 'web' }));
    await c.put(poolKey('x', 'other')).value('{}');
    await c
      .put(listenerKey('x', 'l'))
      .value(JSON.stringify({ port: await freeTcpPort(), protocol: 'http', default_pool: 'other' }));
    const dir = tempDir();
    writeFileSync(
      join(dir, 'tenants.yaml'),
      'tok-a: { org: o, project: p }\ntok-b: { org: o2, project: p2 }\n',
    );
    f = await startChainfireLb(etcd.endpoints, {
      dir,
      adminExtra: `, tenant_tokens: ${join(dir, 'tenants.yaml')}`,
    });
    file = f.lb.configFile;
  });
  after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await f?.lb.stop();
    c?.close();
    await etcd?.stop();
    await Promise.all(be.map((b) => b.close()));
  });

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  const asTenant = (token: string, ...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, FIBERLB_ADMIN_TOKEN: token },
    });
  const api = (method: string, token: string | undefined, payload: unknown) =>
    fetch(`http://127.0.0.1:${f.admin}/v1/backends`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(payload),
    });
  const keys = async () => (await c.getAll().prefix('/fiberlb/backends/').keys()).sort();

  test('admin API: 401 without or with an unknown token, 403 for another tenant, nothing written', async () => {
    const before = await keys();
    const want = { pool: 'other', lb: 'x', address: '127.0.0.1', port: be[1]!.port };
    assert.equal((await api('POST', undefined, want)).status, 401);
    assert.equal((await api('POST', 'nope', want)).status, 401);
    assert.equal((await api('POST', f.token, want)).status, 401, 'the admin token is not a tenant token');
    const r = await api('POST', 'tok-a', want);
    assert.equal(r.status, 403);
    assert.match(((await r.json()) as { error: string }).error, /another tenant/);
    assert.equal((await api('DELETE', 'tok-a', { ...want })).status, 403);
    assert.deepEqual(await keys(), before);
  });

  test('admin API: a tenant registers, lists and removes a backend of its own pool', async () => {
    const r = await api('POST', 'tok-a', {
      pool: 'web',
      lb: 'w',
      address: '127.0.0.1',
      port: be[1]!.port,
      weight: 2,
    });
    assert.equal(r.status, 200);
    const key = backendKey('web', `127.0.0.1:${be[1]!.port}`);
    assert.equal(((await r.json()) as { key: string }).key, key);
    assert.deepEqual(JSON.parse((await c.get(key).string())!), {
      address: '127.0.0.1',
      port: be[1]!.port,
      weight: 2,
    });
    await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) seen.add(await body(port));
      return seen.has('200 b');
    });
    const list = await fetch(`http://127.0.0.1:${f.admin}/v1/backends?pool=web&lb=w`, {
      headers: { authorization: 'Bearer tok-a' },
    });
    assert.equal(list.status, 200);
    assert.equal(((await list.json()) as { backends: unknown[] }).backends.length, 2);
    // pool name 'web' exists in two load balancers: without lb it is ambiguous
    const amb = await api('POST', 'tok-a', { pool: 'web', address: '127.0.0.1', port: 1 });
    assert.equal(amb.status, 409);
    assert.equal(
      (await api('DELETE', 'tok-a', { pool: 'web', lb: 'w', address: '127.0.0.1', port: be[1]!.port }))
        .status,
      200,
    );
    assert.equal(await c.get(key).string(), null);
  });

  test('fiberlb backends add --ttl: on a lease kept alive by the command; gone when it dies', async () => {
    const p = spawn(
      process.execPath,
      [
        CLI,
        'backends',
        'add',
        '--config',
        file,
        '--pool',
        'web',
        '--lb',
        'w',
        '--address',
        '127.0.0.1',
        '--port',
        String(be[2]!.port),
        '--ttl',
        '2s',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    procs.push(p);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d));
    await eventually(async () => out.includes('registered'), 10_000, `registered (${out})`);
    const key = backendKey('web', `127.0.0.1:${be[2]!.port}`);
    assert.match(out, new RegExp(`registered ${key} on lease \\w+ \\(ttl 2s\\)`));
    await new Promise((r) => setTimeout(r, 3_000)); // longer than the TTL: kept alive
    assert.notEqual(await c.get(key).string(), null);
    await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) seen.add(await body(port));
      return seen.has('200 c');
    });
    // A clean stop revokes the lease: the key goes at once, not after the TTL.
    const q = spawn(
      process.execPath,
      [
        CLI,
        'backends',
        'add',
        '--config',
        file,
        '--pool',
        'web',
        '--lb',
        'w',
        '--address',
        '127.0.0.2',
        '--port',
        '9',
        '--ttl',
        '30s',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    procs.push(q);
    let qout = '';
    q.stdout!.on('data', (d: Buffer) => (qout += d));
    await eventually(async () => qout.includes('registered'), 10_000, 'second registration');
    q.kill('SIGTERM');
    // 15 s is still half the 30 s TTL: the key must go by revocation, not by expiry.
    await eventually(async () => qout.includes('unregistered'), 15_000, 'revoked on SIGTERM');
    assert.equal(await c.get(backendKey('web', '127.0.0.2:9')).string(), null);
    p.kill('SIGKILL'); // the registrant dies without a word
    await eventually(async () => (await c.get(key).string()) === null, 10_000, 'lease expired');
    await eventually(async () => {
      for (let i = 0; i < 8; i++) if ((await body(port)) !== '200 a') return false;
      return true;
    });
  });

  test('fiberlb backends add/drain/enable/list/remove (persistent)', async () => {
    const common = [
      '--config',
      file,
      '--pool',
      'web',
      '--lb',
      'w',
      '--address',
      '127.0.0.1',
      '--port',
      String(be[1]!.port),
    ];
    const key = backendKey('web', `127.0.0.1:${be[1]!.port}`);
    let r = cli('backends', 'add', ...common, '--weight', '3');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^registered ${key} \\(revision \\d+\\)`));
    r = cli('backends', 'drain', ...common);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse((await c.get(key).string())!).admin_state, 'drain');
    r = cli('backends', 'list', '--config', file, '--pool', 'web', '--lb', 'w');
    assert.match(r.stdout, new RegExp(`${key} \\{.*"admin_state":"drain"\\}`));
    r = cli('backends', 'enable', ...common);
    assert.equal(JSON.parse((await c.get(key).string())!).admin_state, 'enabled');
    r = cli('backends', 'remove', ...common);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await c.get(key).string(), null);
    r = cli('backends', 'add', '--config', file, '--pool', 'web', '--address', '127.0.0.1', '--port', '1');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /pool name 'web' is ambiguous \(load balancers w, x\): give --lb ID/);
    r = cli('backends', 'frobnicate', '--config', file, '--pool', 'web');
    assert.equal(r.status, 2);
  });

  test('fiberlb backends with FIBERLB_ADMIN_TOKEN goes through the admin API, scoped to the tenant', async () => {
    const common = ['--config', file, '--pool', 'web', '--lb', 'w', '--address', '127.0.0.3', '--port', '7'];
    const key = backendKey('web', '127.0.0.3:7');
    let r = asTenant('tok-a', 'backends', 'add', ...common, '--weight', '4');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^registered ${key} \\(revision \\d+\\)`));
    assert.equal(JSON.parse((await c.get(key).string())!).weight, 4);
    r = asTenant('tok-a', 'backends', 'drain', ...common);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse((await c.get(key).string())!), {
      address: '127.0.0.3',
      port: 7,
      weight: 4,
      admin_state: 'drain',
    });
    r = asTenant('tok-a', 'backends', 'list', '--config', file, '--pool', 'web', '--lb', 'w');
    assert.match(r.stdout, new RegExp(`${key} .*"admin_state":"drain"`));
    // another tenant's token: refused, nothing written
    r = asTenant('tok-b', 'backends', 'remove', ...common);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /admin API \(HTTP 403\): pool 'web' belongs to another tenant/);
    assert.notEqual(await c.get(key).string(), null);
    r = asTenant('wrong', 'backends', 'remove', ...common);
    assert.match(r.stderr, /HTTP 401/);
    r = asTenant('tok-a', 'backends', 'add', ...common, '--ttl', '10s');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--ttl needs the store/);
    r = asTenant('tok-a', 'backends', 'remove', ...common);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await c.get(key).string(), null);
  });
});

// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// fiberlb import FILE (one transaction), export (the reverse), plan (what a YAML file would
// change against Chainfire's current state), and the plan summary a running FiberLB logs on
// each applied change.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import YAML from 'yaml';
import { etcdClient, eventually, startChainfireLb } from '../helpers/chainfire.ts';
import { CLI, ROOT, tempDir, writeConfig } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';
import { freeTcpPort } from '../helpers/net.ts';

function yaml(endpoints: readonly string[], ports: number[], extraBackend = false): string {
  return `
source: { type: chainfire, endpoints: [${endpoints.join(', ')}] }
load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: ${ports[0]}
        protocol: http
        default_pool: web
        routes:
          - { match: { path_prefix: /iam/ }, pool: iam }
    pools:
      - name: web
        algorithm: least_connections
        backends:
          - { address: 127.0.0.1, port: 9001 }
${extraBackend ? '          - { address: 127.0.0.1, port: 9002, weight: 3 }\n' : ''}      - name: iam
        backends: [{ id: iam-1, address: 127.0.0.1, port: 9003 }]
  - name: internal
    org: platform
    project: ops
    vip: 127.0.0.1
    listeners:
      - { name: raw, port: ${ports[1]}, protocol: tcp, default_pool: web }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: 9004 }]
`;
}

test('import writes one transaction; export gives it back; plan diffs against the running FiberLB', async (t) => {
  const etcd = await EtcdCluster.start();
  t.after(() => etcd.stop());
  const c = etcdClient(etcd.endpoints);
  t.after(() => c.close());
  const dir = tempDir();
  const ports = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(dir, yaml(etcd.endpoints, ports), 'import.yaml');
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  const f = await startChainfireLb(etcd.endpoints, { until: 'serving' });
  t.after(() => f.lb.stop());
  const running = f.lb.configFile;
  const applied = async () => {
    const rev = Number((await c.getAll().prefix('/fiberlb/').exec()).header.revision);
    await eventually(() => f.appliedEverywhere(rev));
    return rev;
  };

  // Before the import the running FiberLB serves nothing: the plan is the whole file.
  let r = cli('plan', '--config', running, file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\+ load_balancer internal\n/m);
  assert.match(r.stdout, /plan: 11 added, 0 removed, 0 changed \(against running revision \d+\)\n$/);

  r = cli('import', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^imported 10 keys under \/fiberlb\/ in one transaction \(revision \d+\)/);
  const kvs = await c.getAll().prefix('/fiberlb/').exec();
  assert.equal(kvs.kvs.length, 10);
  assert.equal(new Set(kvs.kvs.map((kv) => kv.mod_revision)).size, 1, 'one revision: one transaction');
  const keys = kvs.kvs.map((kv) => kv.key.toString()).sort();
  assert.ok(keys.includes('/fiberlb/pools/public/public.web'), keys.join('\n')); // 'web' is in two LBs
  assert.ok(keys.includes('/fiberlb/backends/iam/iam-1'));
  const rev = await applied();

  // Against the file it came from, and against Chainfire's state: nothing to do.
  const none = `plan: 0 added, 0 removed, 0 changed (against running revision ${rev})\n`;
  assert.equal(cli('plan', '--config', running, file).stdout, none);
  assert.equal(cli('plan', '--config', running).stdout, none);
  // export → a file whose load balancers plan as identical
  r = cli('export', '--config', running);
  assert.equal(r.status, 0, r.stderr);
  const exported = YAML.parse(r.stdout) as { load_balancers: Array<{ name: string }> };
  assert.deepEqual(exported.load_balancers.map((l) => l.name).sort(), ['internal', 'public']);
  const round = writeConfig(
    dir,
    YAML.stringify({ source: { type: 'chainfire', endpoints: etcd.endpoints }, ...exported }),
    'exported.yaml',
  );
  assert.equal(cli('plan', '--config', running, round).stdout, none);
  // a changed target
  const changed = writeConfig(
    dir,
    yaml(etcd.endpoints, ports, true).replace('least_connections', 'random'),
    'changed.yaml',
  );
  r = cli('plan', '--config', running, changed);
  assert.equal(
    r.stdout,
    `+ backend public/web/127.0.0.1:9002\n~ pool public/web\nplan: 1 added, 0 removed, 1 changed (against running revision ${rev})\n`,
  );

  // The running FiberLB logs the same summary when the change is applied.
  r = cli('import', changed);
  assert.equal(r.status, 0, r.stderr);
  await eventually(async () =>
    /"msg":"chainfire change".*"summary":"1 added, 0 removed, 1 changed"/.test(f.lb.output()),
  );
  assert.match(
    f.lb.output(),
    /"changes":\["\+ backend public\/web\/127\.0\.0\.1:9002","~ pool public\/web"\]/,
  );
  await applied();
  assert.match(
    cli('plan', '--config', running, file).stdout,
    /^- backend public\/web\/127\.0\.0\.1:9002\n~ pool public\/web\n/,
  );
});

test("an import past etcd's 128 operations a transaction goes in batches, the load balancer last", async (t) => {
  const etcd = await EtcdCluster.start(); // etcd's default --max-txn-ops: 128
  t.after(() => etcd.stop());
  const c = etcdClient(etcd.endpoints);
  t.after(() => c.close());
  const dir = tempDir();
  const port = await freeTcpPort();
  const n = 300;
  const backends = Array.from(
    { length: n },
    (_, i) => `          - { address: 127.0.0.1, port: ${10_000 + i} }`,
  ).join('\n');
  const file = writeConfig(
    dir,
    `source: { type: chainfire, endpoints: [${etcd.endpoints.join(', ')}] }
load_balancers:
  - name: big
    org: o
    project: p
    vip: 127.0.0.1
    listeners: [{ name: api, port: ${port}, protocol: http, default_pool: web }]
    pools:
      - name: web
        backends:
${backends}
`,
    'big.yaml',
  );
  const r = spawnSync(process.execPath, [CLI, 'import', file], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^imported 303 keys under \/fiberlb\/ in 3 transactions of at most 128 /);
  const kvs = await c.getAll().prefix('/fiberlb/').exec();
  assert.equal(kvs.kvs.length, n + 3);
  const rev = (suffix: string) =>
    kvs.kvs.filter((kv) => kv.key.toString().includes(suffix)).map((kv) => Number(kv.mod_revision));
  const [lb] = rev('/loadbalancers/');
  const [listener] = rev('/listeners/');
  const [pool] = rev('/pools/');
  assert.ok(
    Math.max(...rev('/backends/')) <= pool! && pool! <= listener! && listener! <= lb!,
    'backends, pool, listener, then the LB',
  );
  const all = kvs.kvs.map((kv) => Number(kv.mod_revision));
  assert.equal(lb, Math.max(...all), 'the load balancer came with the last transaction');
  assert.equal(new Set(all).size, 3, 'three transactions');
});

test('plan works for a file-source FiberLB too: a YAML edit before reloading it', async (t) => {
  const dir = tempDir();
  const admin = await freeTcpPort();
  const port = await freeTcpPort();
  const text = `admin: { address: 127.0.0.1, port: ${admin}, token_file: ${dir}/admin.token }
cluster: { workers: 1, drain_timeout: 1s }
load_balancers:
  - name: w
    org: o
    project: p
    vip: 127.0.0.1
    listeners: [{ name: api, port: ${port}, protocol: http, default_pool: web }]
    pools: [{ name: web, backends: [{ address: 127.0.0.1, port: 9001 }] }]
`;
  const file = writeConfig(dir, text);
  const { startLb } = await import('../helpers/cluster-fiberlb.ts');
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const edited = writeConfig(
    dir,
    text
      .replace('port: 9001 }', 'port: 9001 }, { address: 127.0.0.1, port: 9002 }')
      .replace(
        'default_pool: web }',
        'default_pool: web, routes: [{ match: { path_prefix: /x/ }, pool: web }] }',
      ),
    'edited.yaml',
  );
  const r = spawnSync(process.execPath, [CLI, 'plan', '--config', file, edited], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    '+ route w/api[0]\n+ backend w/web/127.0.0.1:9002\nplan: 2 added, 0 removed, 0 changed (against running revision 1)\n',
  );
  // Without a target there is nothing to compare a file source with.
  const none = spawnSync(process.execPath, [CLI, 'plan', '--config', file], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /source\.type is not chainfire/);
});

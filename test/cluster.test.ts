// End-to-end tests of the process layer: the real `fiberlb` CLI, a primary with real cluster
// workers, real HTTP backends on 127.0.0.1. Covers check, crash/respawn, reload under load,
// listener open/close on reload, and graceful drain on SIGTERM.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import autocannon from 'autocannon';
import {
  CLI,
  childPids,
  getText,
  nameServer,
  ROOT,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

function configYaml(o: {
  adminPort: number;
  httpPort: number;
  workers: number;
  backends: number[];
  extraListener?: string;
  drain?: string;
  tokenFile?: string;
}): string {
  return `
admin: { address: 127.0.0.1, port: ${o.adminPort}${o.tokenFile ? `, token_file: ${o.tokenFile}` : ''} }
cluster: { workers: ${o.workers}, drain_timeout: ${o.drain ?? '5s'} }
load_balancers:
  - name: test
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: ${o.httpPort}
        protocol: http
        default_pool: web
${o.extraListener ?? ''}
    pools:
      - name: web
        algorithm: round_robin
        backends:
${o.backends.map((p) => `          - { address: 127.0.0.1, port: ${p} }`).join('\n')}
`;
}

describe('fiberlb check', () => {
  test('exits 0 on the shipped configs and 1 with file:line:col messages on a bad one', () => {
    for (const f of ['config/fiberlb.yaml', 'config/examples/platform.yaml']) {
      const r = spawnSync(process.execPath, [CLI, 'check', f], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    }
    const dir = tempDir();
    const bad = writeConfig(
      dir,
      'load_balancers:\n  - name: x\n    org: o\n    project: p\n    vip: 10.0.300.100\n    listeners: []\n    pools: []\n',
    );
    const r = spawnSync(process.execPath, [CLI, 'check', bad], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^${bad}:5:10: load_balancers\\[0\\]\\.vip: .*octet 300`, 'm'));
  });

  test('check of the platform example: every configured part is served, so nothing is noted', () => {
    const r = spawnSync(process.execPath, [CLI, 'check', 'config/examples/platform.yaml'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /platform\.yaml: OK/);
    assert.doesNotMatch(r.stdout, /note:|not served yet|not run yet/);
  });

  test('run refuses a chainfire source whose file also lists load balancers (which would not be served)', () => {
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `source: { type: chainfire, endpoints: [http://127.0.0.1:2379] }
load_balancers:
  - { name: a, org: o, project: p, vip: 127.0.0.1, listeners: [], pools: [] }
`,
    );
    const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /load_balancers: must be \[\] with source type chainfire/);
  });

  test('run refuses to start on an invalid config and says why', () => {
    const dir = tempDir();
    const bad = writeConfig(dir, 'load_balancers: 3\n');
    const r = spawnSync(process.execPath, [CLI, 'run', '--config', bad], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /:1:\d+: load_balancers: /);
  });
});

describe('cluster mode', () => {
  const backends: Array<Awaited<ReturnType<typeof nameServer>>> = [];
  let lb: RunningLb | undefined;
  let httpPort = 0;
  let adminPort = 0;
  let dir = '';

  before(async () => {
    backends.push(await nameServer('a'), await nameServer('b'), await nameServer('c'));
    httpPort = await freeTcpPort();
    adminPort = await freeTcpPort();
    dir = tempDir();
  });
  after(async () => {
    await lb?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('serves through 2 workers, round robin across backends', async () => {
    const file = writeConfig(
      dir,
      configYaml({
        adminPort,
        httpPort,
        workers: 2,
        backends: [backends[0]!.port, backends[1]!.port],
        tokenFile: 'admin.token',
      }),
    );
    lb = await startLb(file, adminPort);
    assert.equal((await childPids(lb.pid)).length, 2);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await getText(`http://127.0.0.1:${httpPort}/`)).body);
    assert.deepEqual([...seen].sort(), ['a', 'b']);
    // The token file was created with owner-only permissions and is never printed.
    const token = readFileSync(`${dir}/admin.token`, 'utf8').trim();
    assert.ok(token.length >= 32);
    assert.ok(!lb.output().includes(token), 'token leaked into logs');
  });

  test('concurrent /status calls each get every worker answer promptly', async () => {
    const token = readFileSync(`${dir}/admin.token`, 'utf8').trim();
    const get = () =>
      fetch(`http://127.0.0.1:${adminPort}/status`, { headers: { authorization: `Bearer ${token}` } }).then(
        (r) => r.json() as Promise<{ workers: unknown[]; active: number }>,
      );
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/status`)).status, 401);
    const t0 = Date.now();
    const all = await Promise.all([get(), get(), get()]);
    // A worker that did not answer would cost its 1 s status timeout.
    assert.ok(Date.now() - t0 < 900, `took ${Date.now() - t0} ms`);
    for (const s of all) assert.equal(s.workers.length, 2);
  });

  test('a killed worker is respawned while the other keeps serving', async () => {
    assert.ok(lb);
    const before = await childPids(lb.pid);
    assert.equal(before.length, 2);
    let ok = 0;
    let failed = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        // A fresh connection per request, so the surviving worker gets new connections.
        const r = await getText(`http://127.0.0.1:${httpPort}/`, { headers: { connection: 'close' } }).catch(
          () => null,
        );
        if (r?.status === 200) ok++;
        else failed++;
      }
    })();
    await sleep(300);
    process.kill(before[0]!, 'SIGKILL');
    let after: number[] = [];
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      after = await childPids(lb.pid);
      if (after.length === 2 && !after.includes(before[0]!)) break;
      await sleep(50);
    }
    await sleep(500); // keep traffic going across the respawn
    running = false;
    await load;
    assert.equal(after.length, 2, 'worker not respawned');
    assert.ok(!after.includes(before[0]!));
    assert.ok(after.includes(before[1]!), 'the surviving worker was disturbed');
    // At most the one request in flight on the killed worker may fail.
    assert.ok(failed <= 1, `failed=${failed} ok=${ok}`);
    assert.ok(ok > 20, `ok=${ok}`);
    assert.match(lb.output(), /"error_class":"worker_crash"/);
  });

  test('reload under load: invalid config keeps serving, valid config switches with zero non-2xx', async () => {
    assert.ok(lb);
    const newPort = await freeTcpPort();
    const run = autocannon({ url: `http://127.0.0.1:${httpPort}/`, connections: 10, duration: 4 });
    await sleep(700);
    // 1) An invalid edit: rejected, logged with file:line:col, last good config keeps serving.
    writeConfig(
      dir,
      configYaml({ adminPort, httpPort, workers: 2, backends: [70000], tokenFile: 'admin.token' }),
    );
    process.kill(lb.pid, 'SIGHUP');
    await sleep(700);
    // 2) A valid edit via `fiberlb reload` (admin API + token): new backend set and a new listener.
    writeConfig(
      dir,
      configYaml({
        adminPort,
        httpPort,
        workers: 2,
        backends: [backends[2]!.port],
        tokenFile: 'admin.token',
        extraListener: `      - { name: extra, port: ${newPort}, protocol: http, default_pool: web }`,
      }),
    );
    const r = spawnSync(process.execPath, [CLI, 'reload', '--config', lb.configFile], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /reloaded: revision \d+/);
    const result = await run;
    assert.ok(result.requests.total > 500, `only ${result.requests.total} requests`);
    assert.equal(result.non2xx, 0);
    assert.equal(result.errors, 0);
    assert.match(
      lb.output(),
      /fiberlb\.yaml:\d+:\d+: load_balancers\[0\]\.pools\[0\]\.backends\[0\]\.port: /,
    );
    // After the valid reload only the new backend answers, on both listeners.
    for (let i = 0; i < 4; i++) assert.equal((await getText(`http://127.0.0.1:${httpPort}/`)).body, 'c');
    assert.equal((await getText(`http://127.0.0.1:${newPort}/`)).body, 'c');
    // Removing the listener again closes its port.
    writeConfig(
      dir,
      configYaml({
        adminPort,
        httpPort,
        workers: 2,
        backends: [backends[2]!.port],
        tokenFile: 'admin.token',
      }),
    );
    process.kill(lb.pid, 'SIGHUP');
    const until = Date.now() + 5_000;
    let closed = false;
    while (!closed && Date.now() < until) {
      closed = await getText(`http://127.0.0.1:${newPort}/`, { headers: { connection: 'close' } }).then(
        () => false,
        () => true,
      );
      if (!closed) await sleep(50);
    }
    assert.ok(closed, 'removed listener still accepting');
  });

  test('SIGTERM drains: an in-flight slow request completes, then exit 0', async () => {
    assert.ok(lb);
    const slow = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: httpPort, path: '/slow?ms=1500' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    await sleep(300);
    const t0 = Date.now();
    lb.proc.kill('SIGTERM');
    // New connections are refused while the slow request is still being served.
    await sleep(200);
    await assert.rejects(getText(`http://127.0.0.1:${httpPort}/`, { headers: { connection: 'close' } }));
    const res = await slow;
    assert.deepEqual(res, { status: 200, body: 'c' });
    assert.equal(await lb.exited, 0);
    assert.ok(Date.now() - t0 < 5_000);
  });
});

describe('drain deadline', () => {
  test('in-flight work past drain_timeout is cut and the process still exits 0', async () => {
    const backend = await nameServer('slow');
    const httpPort = await freeTcpPort();
    const adminPort = await freeTcpPort();
    const dir = tempDir();
    const file = writeConfig(
      dir,
      configYaml({ adminPort, httpPort, workers: 1, backends: [backend.port], drain: '1s' }),
    );
    const lb = await startLb(file, adminPort);
    try {
      const slow = getText(`http://127.0.0.1:${httpPort}/slow?ms=8000`).then(
        () => 'completed',
        () => 'cut',
      );
      await sleep(300);
      const t0 = Date.now();
      lb.proc.kill('SIGTERM');
      assert.equal(await lb.exited, 0);
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 4_000, `exit after ${took} ms`);
      assert.equal(await slow, 'cut');
    } finally {
      await lb.stop();
      await backend.close();
    }
  });
});

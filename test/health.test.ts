// Honest health through the real CLI and cluster workers: a listener whose port is taken (at
// start or added by a reload) makes /healthz 503 "degraded" naming it, `fiberlb reload` exits 1
// naming it and POST /reload answers 503; once the port is free, a reload opens it and clears it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  CLI,
  getText,
  nameServer,
  ROOT,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

interface Health {
  status: string;
  revision: number;
  workers: number;
  workers_ready: number;
  listeners_failed: Array<{ listener: string; bind: string; workers: number; error: string }>;
}

function yaml(o: { admin: number; api: number; backend: number; extra?: number; proto?: string }): string {
  return `
admin: { address: 127.0.0.1, port: ${o.admin}, token_file: admin.token }
cluster: { workers: 2, drain_timeout: 2s }
load_balancers:
  - name: hl
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${o.api}, protocol: http, default_pool: web }
${o.extra ? `      - { name: extra, port: ${o.extra}, protocol: ${o.proto ?? 'http'}, default_pool: web }` : ''}
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${o.backend} }]
`;
}

/** Something else holding a port on 127.0.0.1, as another program would. */
async function occupy(port: number): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve());
  });
  return s;
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

async function health(adminPort: number): Promise<{ code: number; body: Health }> {
  const r = await getText(`http://127.0.0.1:${adminPort}/healthz`);
  return { code: r.status, body: JSON.parse(r.body) as Health };
}

function cliReload(configFile: string) {
  return spawnSync(process.execPath, [CLI, 'reload', '--config', configFile], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

/** Lines the primary logged as "listen failed". */
function listenFailedLines(out: string): Array<Record<string, unknown>> {
  return out
    .split('\n')
    .filter((l) => l.includes('"role":"primary"') && l.includes('"msg":"listen failed"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('health tells the truth about listeners', () => {
  let backend: Awaited<ReturnType<typeof nameServer>>;
  let lb: RunningLb | undefined;
  let blocker: Server | undefined;
  const ports = { admin: 0, api: 0, taken: 0, backend: 0 };
  let dir = '';

  before(async () => {
    backend = await nameServer('ok');
    ports.admin = await freeTcpPort();
    ports.api = await freeTcpPort();
    ports.taken = await freeTcpPort();
    ports.backend = backend.port;
    dir = tempDir();
  });
  after(async () => {
    await lb?.stop();
    if (blocker) await close(blocker);
    await backend.close();
  });

  test('a port taken at start: 503 degraded naming the listener, the rest serves', async () => {
    blocker = await occupy(ports.taken);
    const file = writeConfig(dir, yaml({ ...ports, extra: ports.taken }));
    lb = await startLb(file, ports.admin, 15_000, { until: 'serving' });
    // Both workers report on the first revision: wait until both are ready.
    let h = await health(ports.admin);
    for (let i = 0; i < 100 && h.body.workers_ready < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      h = await health(ports.admin);
    }
    assert.equal(h.code, 503);
    assert.equal(h.body.status, 'degraded');
    assert.equal(h.body.workers, 2);
    assert.equal(h.body.workers_ready, 2);
    assert.equal(h.body.listeners_failed.length, 1);
    const f = h.body.listeners_failed[0]!;
    assert.equal(f.listener, 'hl/extra');
    assert.equal(f.bind, `http://127.0.0.1:${ports.taken}`);
    assert.equal(f.workers, 2);
    assert.match(f.error, /EADDRINUSE/);
    // The other listener serves meanwhile.
    assert.equal((await getText(`http://127.0.0.1:${ports.api}/`)).body, 'ok');
    const logged = listenFailedLines(lb.output());
    assert.equal(logged.length, 1, lb.output());
    assert.equal(logged[0]!.error_class, 'listen_failed');
    assert.equal(logged[0]!.listener, 'hl/extra');
  });

  test('reload while still taken: CLI exits 1 naming it, POST /reload answers 503', async () => {
    assert.ok(lb);
    const r = cliReload(lb.configFile);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /^reloaded: /m);
    assert.match(
      r.stderr,
      new RegExp(
        `listener hl/extra \\(http://127\\.0\\.0\\.1:${ports.taken}\\) is not open in 2 of 2 workers: .*EADDRINUSE`,
      ),
    );
    assert.match(r.stderr, /reloaded with failures \(HTTP 503\): revision \d+ is not fully served/);
    const token = readFileSync(`${dir}/admin.token`, 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${ports.admin}/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as Health & { ok: boolean; applied: boolean };
    assert.equal(res.status, 503);
    assert.equal(body.ok, false);
    assert.equal(body.applied, true);
    assert.equal(body.listeners_failed[0]?.listener, 'hl/extra');
  });

  test('the port freed: the next reload opens it, health is ok again and the entry is gone', async () => {
    assert.ok(lb && blocker);
    await close(blocker);
    blocker = undefined;
    const r = cliReload(lb.configFile);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^reloaded: revision \d+$/m);
    const h = await health(ports.admin);
    assert.equal(h.code, 200);
    assert.deepEqual(h.body.listeners_failed, []);
    assert.equal(h.body.status, 'ok');
    assert.equal((await getText(`http://127.0.0.1:${ports.taken}/`)).body, 'ok');
  });

  test('a listener added by a reload on a taken port: reported the same way, then removed', async () => {
    assert.ok(lb);
    const other = await freeTcpPort();
    blocker = await occupy(other);
    writeConfig(dir, yaml({ ...ports, extra: other, proto: 'tcp' }));
    const r = cliReload(lb.configFile);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`listener hl/extra \\(tcp://127\\.0\\.0\\.1:${other}\\) is not open`));
    const h = await health(ports.admin);
    assert.equal(h.code, 503);
    assert.equal(h.body.listeners_failed[0]?.bind, `tcp://127.0.0.1:${other}`);
    // Removing the listener from the config clears it without freeing the port.
    writeConfig(dir, yaml(ports));
    assert.equal(cliReload(lb.configFile).status, 0);
    assert.equal((await health(ports.admin)).code, 200);
  });
});

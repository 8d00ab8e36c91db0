// File descriptors through real FiberLB processes started under util-linux prlimit: primary and
// workers run with soft = hard RLIMIT_NOFILE (Node raises it; FiberLB checks, raises with
// prlimit where it is still lower, warns without prlimit or when low); and out of descriptors,
// connections that Node closes silently are counted and logged as accept_failed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readNofile } from '../src/shared/fd-limit.ts';
import { childPids, type RunningLb, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { admittedByEcho } from './helpers/l4-backends.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

const PRLIMIT = spawnSync('sh', ['-c', 'command -v prlimit'], { encoding: 'utf8' }).stdout.trim();

function yaml(o: { admin: number; tcp: number; backend: number }): string {
  return `
admin: { address: 127.0.0.1, port: ${o.admin}, token_file: admin.token }
cluster: { workers: 1, drain_timeout: 1s }
load_balancers:
  - name: fd
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: raw, port: ${o.tcp}, protocol: tcp, default_pool: echo }
    pools:
      - name: echo
        backends: [{ address: 127.0.0.1, port: ${o.backend} }]
`;
}

async function withLb(
  t: { after(fn: () => Promise<void>): void },
  nofile: string,
): Promise<{ lb: RunningLb; ports: Parameters<typeof yaml>[0]; dir: string }> {
  const echo = createServer((s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const ports = {
    admin: await freeTcpPort(),
    tcp: await freeTcpPort(),
    backend: (echo.address() as { port: number }).port,
  };
  const dir = tempDir();
  const lb = await startLb(writeConfig(dir, yaml(ports)), ports.admin, 15_000, {
    wrap: [PRLIMIT, `--nofile=${nofile}`],
  });
  t.after(async () => {
    await lb.stop();
    echo.close();
  });
  return { lb, ports, dir };
}

describe('file descriptor limits', { skip: PRLIMIT ? false : 'prlimit (util-linux) not installed' }, () => {
  test('a FiberLB started with soft < hard runs with soft = hard, primary and workers, and says so', async (t) => {
    const { lb } = await withLb(t, '256:4096');
    assert.deepEqual(readNofile(lb.pid), { soft: 4096, hard: 4096 });
    const [worker] = await childPids(lb.pid);
    assert.deepEqual(readNofile(worker!), { soft: 4096, hard: 4096 });
    // Node raised it already (PlatformInit), so the primary only reports what is in force.
    assert.match(lb.output(), /"msg":"file descriptor limit","soft":4096,"hard":4096/);
    assert.doesNotMatch(lb.output(), /file descriptor limit is low/);
  });

  test('raiseNofileToHard: raises a lowered soft limit with prlimit; without prlimit, a reason', () => {
    // A child lowers its own soft limit after Node's start-up raise, then asks for it back.
    const script = `
      import { spawnSync } from 'node:child_process';
      import { raiseNofileToHard, readNofile } from ${JSON.stringify(new URL('../src/shared/fd-limit.ts', import.meta.url).pathname)};
      spawnSync(${JSON.stringify(PRLIMIT)}, ['--pid', String(process.pid), '--nofile=256:4096']);
      const lowered = readNofile();
      const missing = raiseNofileToHard('/nonexistent/prlimit');
      const raised = raiseNofileToHard(${JSON.stringify(PRLIMIT)});
      console.log(JSON.stringify({ lowered, missing, raised, after: readNofile(), again: raiseNofileToHard() }));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      lowered: { soft: 256, hard: 4096 },
      missing: {
        raised: false,
        limit: { soft: 256, hard: 4096 },
        reason: 'prlimit not found (install util-linux)',
      },
      raised: { raised: true, from: 256, to: 4096 },
      after: { soft: 4096, hard: 4096 },
      again: { raised: false, limit: { soft: 4096, hard: 4096 } },
    });
  });

  test('a low hard limit is warned about at start', async (t) => {
    const { lb } = await withLb(t, '512:512');
    assert.match(lb.output(), /"msg":"file descriptor limit is low.*"limit":512/);
  });

  test('out of descriptors: refused connections are counted and logged as accept_failed', async (t) => {
    const { lb, ports, dir } = await withLb(t, '128:128');
    const held: Socket[] = [];
    t.after(async () => {
      for (const s of held) s.destroy();
    });
    // Each admitted connection costs the worker two descriptors (client + upstream): 150
    // connections are far more than 128 allows.
    let admitted = 0;
    let refused = 0;
    for (let i = 0; i < 150; i++) {
      const ok = await admittedByEcho(ports.tcp, held, 'x', 2_000);
      if (ok) admitted++;
      else refused++;
    }
    assert.ok(admitted > 10 && refused > 0, `admitted ${admitted}, refused ${refused}`);
    const until = Date.now() + 5_000;
    while (!lb.output().includes('"error_class":"accept_failed"') && Date.now() < until) await sleep(50);
    // Which of two shapes it takes depends on descriptor parity: with none left, libuv accepts
    // and closes silently and the once-a-second probe reports it; with one left, the client is
    // accepted and the upstream connect fails with EMFILE. Both are accept_failed, never blamed
    // on the backend.
    const lines = lb
      .output()
      .split('\n')
      .filter((l) => l.includes('"error_class":"accept_failed"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length >= 1, `no accept_failed line\n${lb.output()}`);
    for (const f of lines) assert.match(String(f.error), /EMFILE/);
    const probe = lines.find(
      (f) => f.msg === 'out of file descriptors: new connections are closed unanswered',
    );
    if (probe) assert.equal(probe.nofile_limit, 128);
    assert.doesNotMatch(lb.output(), /"error_class":"upstream_error"[^\n]*EMFILE/);
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const status = (await (
      await fetch(`http://127.0.0.1:${ports.admin}/status`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as { errors: Record<string, number> };
    assert.ok((status.errors.accept_failed ?? 0) >= 1, JSON.stringify(status));
    // Descriptors back: the listener serves again.
    for (const s of held.splice(0)) s.destroy();
    await sleep(300);
    const back = await new Promise<string>((resolve, reject) => {
      const s = connect(ports.tcp, '127.0.0.1');
      s.on('data', (d: Buffer) => {
        resolve(d.toString());
        s.destroy();
      });
      s.on('error', reject);
      s.write('again');
    });
    assert.equal(back, 'again');
  });
});

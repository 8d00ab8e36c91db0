// Runs the built FiberLB (dist/cli.js) as a real process tree for end-to-end tests, and
// small loopback servers to put behind it. Every process started here is stopped by PID.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freeTcpPort, sleep } from './net.ts';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const CLI = join(ROOT, 'dist/cli.js');

const made: string[] = [];
// Each test file runs in its own process: its temp dirs go when it exits, pass or fail.
process.once('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the OS temp dir, removed when the test process exits. */
export function tempDir(prefix = 'fiberlb-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export interface RunningLb {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly configFile: string;
  readonly adminPort: number;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Wait for /healthz 200 (default), or only until it answers with workers ready (e.g. degraded). */
  readonly until?: 'ok' | 'serving';
  /** A command to run FiberLB under, e.g. ['prlimit', '--nofile=256:256']. */
  readonly wrap?: readonly string[];
}

export async function startLb(
  configFile: string,
  adminPort: number,
  timeoutMs = 15_000,
  opts: StartOptions = {},
): Promise<RunningLb> {
  const argv = [process.execPath, CLI, 'run', '--config', configFile];
  const [cmd, ...args] = [...(opts.wrap ?? []), ...argv];
  const proc = spawn(cmd!, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FIBERLB_LOG_LEVEL: 'info' },
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const lb: RunningLb = {
    proc,
    pid: proc.pid!,
    configFile,
    adminPort,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`fiberlb exited early (${proc.exitCode}):\n${out}`);
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
      if (res.ok) return lb;
      const body = (await res.json()) as { workers_ready?: number };
      if (opts.until === 'serving' && (body.workers_ready ?? 0) > 0) return lb;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  await lb.stop();
  throw new Error(`fiberlb not healthy within ${timeoutMs} ms:\n${out}`);
}

export function writeConfig(dir: string, yaml: string, name = 'fiberlb.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** An HTTP backend that answers `name` (and /slow?ms=N after N ms). */
export async function nameServer(
  name: string,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const slow = /^\/slow\?ms=(\d+)/.exec(req.url ?? '');
    req.resume();
    const reply = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
    if (slow) setTimeout(reply, Number(slow[1]));
    else reply();
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The head of a cluster test's config: the admin API on `admin` (token file admin.token beside
 * the config, then `adminExtra`, e.g. ", metrics_open: true"), `cluster: { <cluster> }`, and LB
 * `lb` (org o, project p, vip 127.0.0.1) up to its `listeners:` key; the listener items
 * (indented 6) follow.
 */
export function lbConfigHead(admin: number, cluster: string, lb: string, adminExtra = ''): string {
  return `admin: { address: 127.0.0.1, port: ${admin}, token_file: admin.token${adminExtra} }
cluster: { ${cluster} }
load_balancers:
  - name: ${lb}
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
`;
}

type NameServer = Awaited<ReturnType<typeof nameServer>>;

export interface PubWebLb {
  readonly lb: RunningLb;
  readonly dir: string;
  readonly file: string;
  readonly adminPort: number;
  readonly httpPort: number;
  /** The admin token FiberLB wrote to its token file. */
  readonly token: string;
  /** Name servers behind the pool: backends `a` and `b`. */
  readonly a: NameServer;
  readonly b: NameServer;
  /** POST /api/v1/pools/pub/web/backends/{id}/{action} with the token: the HTTP status. */
  backendAction(id: string, action: 'enable' | 'disable' | 'drain'): Promise<number>;
}

/**
 * A running FiberLB with `workers` workers: LB `pub`, http listener `web` on `httpPort` → pool
 * `web` of name servers `a` and `b` (ids a and b), admin API on `adminPort` with a token file.
 * Everything is stopped after the test.
 */
export async function startPubWebLb(t: TestContext, workers: number): Promise<PubWebLb> {
  const a = await nameServer('a');
  const b = await nameServer('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const dir = tempDir();
  const [adminPort, httpPort] = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(
    dir,
    `${lbConfigHead(adminPort, `workers: ${workers}`, 'pub')}      - { name: web, port: ${httpPort}, protocol: http, default_pool: web }
    pools:
      - name: web
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port} }
`,
  );
  const lb = await startLb(file, adminPort);
  t.after(() => lb.stop());
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const backendAction = async (id: string, action: string): Promise<number> => {
    const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1/pools/pub/web/backends/${id}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    await r.body?.cancel();
    return r.status;
  };
  return { lb, dir, file, adminPort, httpPort, token, a, b, backendAction };
}

/** Direct children of a PID (the cluster workers of a primary), from /proc. */
export async function childPids(pid: number): Promise<number[]> {
  const { readFile } = await import('node:fs/promises');
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export async function getText(url: string, init?: RequestInit): Promise<{ status: number; body: string }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text() };
}

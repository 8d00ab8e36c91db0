// CPU cost per request of the HTTP listener towards plain, TLS, HTTP/2+TLS and h2c backends
// (pool `tls` / `http2`). The proxy runs alone on core 0; backend and autocannon share core 1.
// CPU is read with process.cpuUsage() inside the proxy (via IPC), as in http-bench.ts.
//
//   taskset -c 1 node --import tsx test/helpers/upstream-tls-bench.ts [seconds=5] [connections=50] [rounds=3]
//   (internal) ... backend <kind> <certDir> | proxy <port> <backendPort> <kind> <certDir>

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import type { PoolConfig } from '../../src/config/model.ts';
import { createHttpListener } from '../../src/worker/http/listener.ts';
import { backend, listenerConfig, listenerState, poolConfig, workerEnv } from './http-fixtures.ts';
import { freeTcpPort } from './net.ts';
import { startTlsBackend } from './tls-backends.ts';
import { upstreamCerts } from './upstream-certs.ts';

const root = path.resolve(import.meta.dirname, '../..');
const self = path.join(root, 'test/helpers/upstream-tls-bench.ts');
type Kind = 'plain' | 'tls' | 'h2-tls' | 'h2c';
const KINDS: Kind[] = (process.env.BENCH_KINDS?.split(',') as Kind[] | undefined) ?? [
  'plain',
  'tls',
  'h2-tls',
  'h2c',
];

const cleanups: Array<() => unknown> = [];
const fakeT = { after: (f: () => unknown) => cleanups.push(f) } as never;

function pem(dir: string, name: string) {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

const hello = (_req: unknown, res: { end(s: string): void }) => res.end('hello world\n');

async function serveBackend(kind: Kind, dir: string): Promise<void> {
  const server = pem(dir, 'server');
  const b =
    kind === 'plain'
      ? await (async () => {
          const http = await import('node:http');
          const s = http.createServer(hello as never);
          s.keepAliveTimeout = 60_000;
          await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
          return { port: (s.address() as { port: number }).port };
        })()
      : await startTlsBackend(
          fakeT,
          { kind: kind === 'tls' ? 'h1' : kind === 'h2c' ? 'h2c' : 'h2', cert: server },
          hello as never,
        );
  process.stdout.write(`listening ${b.port}\n`);
}

async function serveProxy(port: number, backendPort: number, kind: Kind, dir: string): Promise<void> {
  const ca = readFileSync(path.join(dir, 'ca.crt'), 'utf8');
  const tls = {
    ca,
    verify: true,
    servername: undefined,
    cert: undefined,
    key: undefined,
    minVersion: 'TLSv1.2' as const,
  };
  const p: PoolConfig = {
    ...poolConfig('web', [backend(backendPort)]),
    tls: kind === 'tls' || kind === 'h2-tls' ? tls : undefined,
    http2: kind === 'h2-tls' || kind === 'h2c',
  };
  const l = createHttpListener(listenerState(listenerConfig(port), [p]), workerEnv());
  await l.ready;
  process.on('message', () => process.send?.(process.cpuUsage()));
  process.on('SIGINT', () => process.exit(0));
  process.stdout.write(`listening ${port}\n`);
}

function start(cpu: string, args: string[]): ChildProcess {
  // BENCH_PROF=DIR: write a CPU profile of each proxy into DIR.
  const prof =
    process.env.BENCH_PROF && args[0] === 'proxy'
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`]
      : [];
  return spawn('taskset', ['-c', cpu, process.execPath, ...prof, '--import', 'tsx', self, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
}

async function listening(child: ChildProcess): Promise<number> {
  let out = '';
  for await (const d of child.stdout!) {
    out += String(d);
    const m = /listening (\d+)/.exec(out);
    if (m) return Number(m[1]);
  }
  throw new Error('child exited before listening');
}

function cpuOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (u) => {
      const c = u as NodeJS.CpuUsage;
      resolve(c.user + c.system);
    });
    child.send('cpu');
  });
}

async function measure(kind: Kind, dir: string, seconds: number, connections: number) {
  const be = start('1', ['backend', kind, dir]);
  const port = await freeTcpPort();
  let proxy: ChildProcess | undefined;
  try {
    const bport = await listening(be);
    proxy = start('0', ['proxy', String(port), String(bport), kind, dir]);
    await listening(proxy);
    const url = `http://127.0.0.1:${port}/`;
    await autocannon({ url, connections, duration: 2 }); // warm-up: JIT, upstream connections
    const c0 = await cpuOf(proxy);
    const r = await autocannon({ url, connections, duration: seconds });
    const c1 = await cpuOf(proxy);
    const n = r.requests.total;
    return {
      kind,
      rps: Math.round(n / seconds),
      usPerReq: +((c1 - c0) / n).toFixed(2),
      non2xx: r.non2xx,
      errors: r.errors,
    };
  } finally {
    for (const c of [proxy, be]) {
      if (!c) continue;
      // SIGINT lets a --cpu-prof child write its profile.
      c.kill(process.env.BENCH_PROF ? 'SIGINT' : 'SIGTERM');
      await once(c, 'exit');
    }
  }
}

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'backend') await serveBackend(a as Kind, b!);
else if (mode === 'proxy') await serveProxy(Number(a), Number(b), c as Kind, d!);
else {
  const seconds = Number(mode ?? 5);
  const connections = Number(a ?? 50);
  const rounds = Number(b ?? 3);
  const certs = upstreamCerts(fakeT);
  try {
    const all: Record<string, number[]> = {};
    for (let i = 0; i < rounds; i++)
      for (const kind of KINDS) {
        const r = await measure(kind, certs.dir, seconds, connections);
        console.log(JSON.stringify(r));
        all[kind] = [...(all[kind] ?? []), r.usPerReq];
        await sleep(300);
      }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const base = median(all.plain ?? all[KINDS[0]!]!);
    for (const kind of KINDS)
      console.log(
        `${kind}: median ${median(all[kind]!)} µs/req (${(median(all[kind]!) / base).toFixed(2)}× ${all.plain ? 'plain' : KINDS[0]})`,
      );
  } finally {
    for (const f of cleanups) await f();
  }
}

// CPU cost per request of the HTTP listener vs the lead's minimal undici Pool.stream proxy
// (bench/peers/undici-stream.mjs). Each proxy runs alone on core 0; the backend and
// autocannon share core 1. CPU is read with process.cpuUsage() inside the proxy (via IPC).
//
//   node --import tsx test/helpers/http-bench.ts [seconds=10] [connections=50] [rounds=3]
//   node --import tsx test/helpers/http-bench.ts serve <port> <backendPort>   (internal)

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { createHttpListener } from '../../src/worker/http/listener.ts';
import { backend, listenerConfig, listenerState, poolConfig, workerEnv } from './http-fixtures.ts';
import { freeTcpPort } from './net.ts';

const root = path.resolve(import.meta.dirname, '../..');

function reportCpuOnMessage(): void {
  process.on('message', () => process.send?.(process.cpuUsage()));
}

async function serve(port: number, backendPort: number): Promise<void> {
  const state = listenerState(listenerConfig(port), [poolConfig('web', [backend(backendPort)])]);
  const l = createHttpListener(state, workerEnv());
  await l.ready;
  reportCpuOnMessage();
  process.stdout.write(`listening ${port}\n`);
}

function start(cpu: string, args: string[]): ChildProcess {
  return spawn('taskset', ['-c', cpu, process.execPath, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
}

async function listening(child: ChildProcess): Promise<void> {
  let out = '';
  for await (const d of child.stdout!) {
    out += String(d);
    if (out.includes('listening')) return;
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

async function load(port: number, seconds: number, connections: number) {
  const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections, duration: seconds });
  // Latency is in the result, just not in our minimal autocannon typings.
  return { ...r, p99ms: (r as unknown as { latency: { p99: number } }).latency.p99 };
}

/** Start the proxy (args with "{port}"), warm it up, then measure one load run. */
async function measure(name: string, template: readonly string[], seconds: number, connections: number) {
  const port = await freeTcpPort();
  const child = start(
    '0',
    template.map((a) => a.replace('{port}', String(port))),
  );
  try {
    await listening(child);
    await load(port, 2, connections); // warm-up: JIT and upstream connections
    const c0 = await cpuOf(child);
    const r = await load(port, seconds, connections);
    const c1 = await cpuOf(child);
    const n = r.requests.total;
    return {
      name,
      rps: Math.round(n / seconds),
      usPerReq: +((c1 - c0) / n).toFixed(2),
      cpuPct: +((c1 - c0) / (seconds * 1e4)).toFixed(1),
      non2xx: r.non2xx,
      errors: r.errors,
      p99ms: r.p99ms,
    };
  } finally {
    child.kill();
    await once(child, 'exit');
  }
}

if (process.argv[2] === 'serve') {
  await serve(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const seconds = Number(process.argv[2] ?? 10);
  const connections = Number(process.argv[3] ?? 50);
  const rounds = Number(process.argv[4] ?? 3);
  const be = spawn('taskset', ['-c', '1', process.execPath, 'bench/backend.mjs', '0'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    for await (const d of be.stdout!) {
      out += String(d);
      if (/listening (\d+)/.test(out)) break;
    }
    const bport = Number(/listening (\d+)/.exec(out)![1]);
    const self = path.join(root, 'test/helpers/http-bench.ts');
    const preload = `data:text/javascript,process.on('message',()=>process.send(process.cpuUsage()))`;
    for (let i = 0; i < rounds; i++) {
      for (const [name, tpl] of [
        [
          'undici Pool.stream',
          ['--import', preload, 'bench/peers/undici-stream.mjs', '{port}', `http://127.0.0.1:${bport}`],
        ],
        ['fiberlb http listener', ['--import', 'tsx', self, 'serve', '{port}', String(bport)]],
      ] as const) {
        console.log(JSON.stringify(await measure(name, tpl, seconds, connections)));
        await sleep(500);
      }
    }
  } finally {
    be.kill();
  }
}

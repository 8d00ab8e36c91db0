#!/usr/bin/env node
// CPU profile of the L4 bulk path: iperf3 (one stream) through FiberLB's tcp listener and
// through the node:net pipe, each run with --cpu-prof, pinned like the bench (proxy on CPU 0,
// iperf3 client + server on CPU 1). Prints the top self-time functions of each and writes the
// .cpuprofile files (open them in Chrome DevTools / speedscope for the flame graph).
//   node bench/profile-bulk.mjs [seconds=5] [outDir=bench/results/profiles]
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { fiberlbConfig } from './lib/configs.mjs';
import {
  cpuDeltaUs,
  freePort,
  httpGet,
  installCleanupHandlers,
  spawnPinned,
  stop,
  treeCpu,
  waitForOutput,
  waitForPort,
  which,
} from './lib/proc.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.argv[2] ?? 5);
const outDir = path.resolve(process.argv[3] ?? path.join(root, 'bench/results/profiles'));
installCleanupHandlers();
mkdirSync(outDir, { recursive: true });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-prof-'));

/** Self time per function (µs) from a .cpuprofile, top n. */
function top(file, n = 15) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const self = new Map();
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const t = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    t.set(id, (t.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let total = 0;
  for (const [id, us] of t) {
    const node = byId.get(id);
    const f = node.callFrame;
    const key =
      `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + us);
    total += us;
  }
  return {
    total,
    busy: total - (self.get('(idle)') ?? 0),
    rows: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n),
  };
}

async function iperf(port) {
  const c = spawnPinned('iperf3-c', '1', which('iperf3'), [
    '-c',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    String(seconds),
    '-J',
  ]);
  await c.exited;
  const j = JSON.parse(c.out.stdout);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

const ipPort = await freePort();
const server = spawnPinned('iperf3-s', '1', which('iperf3'), ['-s', '-p', String(ipPort)]);
await waitForPort(ipPort, { child: server });

const runs = [
  {
    name: 'fiberlb-tcp',
    async start(profDir) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const conf = fiberlbConfig({ dir: tmp, port, adminPort, backendPort: ipPort, protocol: 'tcp' });
      const child = spawnPinned(
        'fiberlb',
        '0',
        process.execPath,
        // Cluster workers inherit the primary's execArgv, so each writes its own profile.
        ['--cpu-prof', `--cpu-prof-dir=${profDir}`, path.join(root, 'dist/cli.js'), 'run', '--config', conf],
        { cwd: root, env: { NODE_ENV: 'production' } },
      );
      for (let i = 0; i < 100; i++) {
        try {
          if ((await httpGet(adminPort, '/healthz', '127.0.0.1', 500)).status === 200) break;
        } catch {}
        await sleep(100);
      }
      await waitForPort(port, { child });
      await sleep(300);
      return { child, port };
    },
  },
  {
    name: 'node-pipe',
    async start(profDir) {
      const port = await freePort();
      const child = spawnPinned('node-pipe', '0', process.execPath, [
        `--cpu-prof`,
        `--cpu-prof-dir=${profDir}`,
        path.join(root, 'bench/peers/net-pipe.mjs'),
        String(port),
        `http://127.0.0.1:${ipPort}`,
      ]);
      await waitForOutput(child, /listening/);
      return { child, port };
    },
  },
];

try {
  for (const r of runs) {
    const profDir = mkdtempSync(path.join(tmp, `${r.name}-`));
    const { child, port } = await r.start(profDir);
    const c0 = treeCpu(child.pid);
    const gbps = await iperf(port);
    const cpuS = cpuDeltaUs(c0, treeCpu(child.pid)) / 1e6;
    // SIGTERM: FiberLB's primary stops its workers, each writes its profile as it exits.
    await stop(child, 10_000);
    await sleep(500);
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    console.log(`\n== ${r.name}: ${gbps.toFixed(2)} Gbit/s, proxy CPU ${cpuS.toFixed(2)} s in ${seconds} s`);
    // The busiest profile is the data plane (FiberLB: the worker, not the primary).
    const tops = files.map((f) => ({ f, ...top(path.join(profDir, f)) })).sort((a, b) => b.busy - a.busy);
    const best = tops[0];
    if (!best) {
      console.log('  no profile written');
      continue;
    }
    const dest = path.join(outDir, `l4-bulk-${r.name}.cpuprofile`);
    renameSync(path.join(profDir, best.f), dest);
    console.log(`  profile: ${path.relative(root, dest)} (${files.length} file(s), busiest kept)`);
    for (const [k, us] of best.rows)
      console.log(`  ${((100 * us) / best.total).toFixed(1).padStart(5)}%  ${k}`);
  }
} finally {
  await stop(server);
}

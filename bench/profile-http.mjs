#!/usr/bin/env node
// CPU profile of FiberLB's HTTP path: the built FiberLB (1 worker, --cpu-prof) pinned to CPU 0,
// autocannon and the node backend on CPU 1, like the bench. One variant per run, so a feature's
// cost shows up as functions that appear (or grow) against `plain`. Run after `npm run build`:
//   node bench/profile-http.mjs [variant=plain] [seconds=8] [outDir=bench/results/profiles] [--rate R]
// --rate R: the open-loop generator at a fixed R req/s (bench/lib/loadgen.mjs) instead of
// autocannon at full load: where the CPU goes when requests arrive one by one (the fixed-rate
// latency target), not in the batches a saturated event loop works through.
// Variants: plain, ratelimit (a limit never hit), health (fiberlb-health's pool keys), log
// (access log to a file), tcp (a tcp listener: the l4-tcp path). Prints the worker's top
// self-time functions, its CPU share per FiberLB file (a feature's cost = the share of its
// files: timing resolution-free, unlike µs/req on a noisy machine) and µs/req; the
// .cpuprofile is kept (Chrome DevTools or speedscope open it), with its flame graph as SVG
// (bench/lib/flamegraph.mjs).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ownerShares, summarizeProfile } from './lib/cpuprofile-top.mjs';
import { flameGraph } from './lib/flamegraph.mjs';
import { autocannon, fixedRate } from './lib/load.mjs';
import { cpuDeltaUs, installCleanupHandlers, stop, treeCpu } from './lib/proc.mjs';
import { startBackend } from './lib/targets.mjs';
import { startVariant, VARIANTS } from './lib/variants.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { rate: { type: 'string' } },
});
const variant = positionals[0] ?? 'plain';
const seconds = Number(positionals[1] ?? 8);
const outDir = path.resolve(positionals[2] ?? path.join(root, 'bench/results/profiles'));
const rate = opt.rate === undefined ? undefined : Number(opt.rate);
const label = rate ? `${variant}-rate${rate}` : variant;
if (!VARIANTS[variant]) {
  console.error(`unknown variant ${variant}; one of ${Object.keys(VARIANTS).join(', ')}`);
  process.exit(2);
}
installCleanupHandlers();
mkdirSync(outDir, { recursive: true });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-prof-'));

const { port: backendPort, child: backend } = await startBackend('node', { cpu: '1', root, tmp });
const profDir = mkdtempSync(path.join(tmp, 'prof-'));
// Cluster workers inherit the primary's execArgv, so each writes its own profile.
const { child: lb, port } = await startVariant({
  root,
  name: variant,
  dir: tmp,
  backendPort,
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
  // FIBERLB_CLI: profile another build (as for bench/run.mjs targets).
  cli: process.env.FIBERLB_CLI,
});
try {
  const load = (durationS) =>
    rate
      ? fixedRate({ root, cpu: '1', port, connections: 50, durationS, rate, warmupS: 0 }).then((f) => ({
          rps: f.achievedRate,
          total: f.completedTotal,
          errors: f.errors,
          non2xx: f.non2xx,
          p99: f.latencyUs.p99,
        }))
      : autocannon({ root, cpu: '1', port, connections: 50, durationS });
  await load(2); // warm-up
  const c0 = treeCpu(lb.pid);
  const r = await load(seconds);
  const cpuUs = cpuDeltaUs(c0, treeCpu(lb.pid));
  console.log(
    `== ${label}: ${Math.round(r.rps)} req/s, ${(cpuUs / r.total).toFixed(1)} µs/req (primary + worker, profiler on), errors ${r.errors}, non-2xx ${r.non2xx}${r.p99 ? `, p99 ${r.p99} µs` : ''}`,
  );
  // SIGTERM: the primary stops its worker, each writes its profile as it exits.
  await stop(lb, 10_000);
  await sleep(500);
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  // The busiest profile is the data plane (the worker ran under load the whole time).
  const busy = (p) => {
    const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
    return p.samples.filter((id) => !idle.has(id)).length;
  };
  const [worker] = files
    .map((f) => ({ f, p: JSON.parse(readFileSync(path.join(profDir, f), 'utf8')) }))
    .sort((a, b) => busy(b.p) - busy(a.p));
  if (!worker) throw new Error('no profile written');
  process.stdout.write(summarizeProfile(worker.p, 25));
  console.log('\nworker CPU by FiberLB file (innermost dist/ frame; a feature = the sum of its files):');
  for (const { file, percent } of ownerShares(worker.p).slice(0, 30))
    console.log(`${percent.toFixed(2).padStart(7)}%  ${file}`);
  const dest = path.join(outDir, `http-${label}.cpuprofile`);
  renameSync(path.join(profDir, worker.f), dest);
  const svg = dest.replace(/\.cpuprofile$/, '.svg');
  writeFileSync(
    svg,
    flameGraph(
      worker.p,
      `FiberLB worker, variant ${variant}, ${Math.round(r.rps)} req/s${rate ? ' (fixed rate)' : ''} (${new Date().toISOString().slice(0, 10)})`,
    ),
  );
  console.log(`\nprofile: ${path.relative(root, dest)}, flame graph: ${path.relative(root, svg)}`);
} finally {
  await stop(lb, 5_000);
  await stop(backend);
}

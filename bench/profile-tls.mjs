#!/usr/bin/env node
// CPU profiles of new TLS connections, FiberLB's worker against the minimal node:https + undici
// proxy (bench/peers/undici-https.mjs), the way bench/profile-http.mjs profiles HTTP: each
// target in turn under `node --cpu-prof` on CPU 0, bench/lib/handshake-gen.mjs (one TLS 1.3
// connection per request, `full` or `resumed` handshakes) and the backend on CPU 1. Prints, per
// target, its top self-time functions, and for both side by side the self time per area
// (Node module, FiberLB folder, native/program, GC) in µs per connection served — the profile's
// own accounting, which a noisy machine does not blur the way it blurs µs/conn — then
// FiberLB's share per file (ownerShares). Keeps each busiest .cpuprofile with its flame graph:
// OUT/tls-MODE-TARGET.{cpuprofile,svg}. Run after `npm run build`:
//   node bench/profile-tls.mjs [mode=full] [seconds=8] [outDir=bench/results/profiles] [--http2 false]
// FIBERLB_CLI profiles another build's FiberLB.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { areaTimes, ownerShares, summarizeProfile } from './lib/cpuprofile-top.mjs';
import { flameGraph } from './lib/flamegraph.mjs';
import { handshakes } from './lib/load.mjs';
import { cpuDeltaUs, installCleanupHandlers, stop, treeCpu } from './lib/proc.mjs';
import { startBackend } from './lib/targets.mjs';
import { HTTPS_TARGETS } from './lib/tls-targets.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { http2: { type: 'string', default: 'true' }, concurrency: { type: 'string', default: '32' } },
});
const mode = positionals[0] ?? 'full';
const seconds = Number(positionals[1] ?? 8);
const outDir = path.resolve(positionals[2] ?? path.join(root, 'bench/results/profiles'));
if (mode !== 'full' && mode !== 'resumed') {
  console.error('usage: node bench/profile-tls.mjs [full|resumed] [seconds] [outDir] [--http2 false]');
  process.exit(2);
}
installCleanupHandlers();
mkdirSync(outDir, { recursive: true });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-prof-tls-'));
const backend = await startBackend(process.env.BENCH_BACKEND ?? 'auto', { cpu: '1', root, tmp });
const concurrency = Math.max(1, Number(opt.concurrency));
const day = new Date().toISOString().slice(0, 10);

const busy = (p) => {
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  return p.samples.filter((id) => !idle.has(id)).length;
};

const results = [];
try {
  for (const name of ['fiberlb-https', 'undici-https']) {
    const t = HTTPS_TARGETS.find((x) => x.name === name);
    const profDir = mkdtempSync(path.join(tmp, `prof-${name}-`));
    const { port, child } = await t.start({
      root,
      tmp,
      backendPort: backend.port,
      cpu: '0',
      profDir,
      http2: opt.http2 !== 'false',
    });
    const gen = (d) =>
      handshakes({
        root,
        cpu: '1',
        port,
        concurrency,
        durationS: d,
        warmupS: 0.5,
        resume: mode === 'resumed',
      });
    let r;
    let cpuUs;
    let served = 1; // the start's own check (verifyTls)
    try {
      served += (await gen(2)).served; // warm-up: JIT, the backend pool
      const c0 = treeCpu(child.pid);
      r = await gen(seconds);
      cpuUs = cpuDeltaUs(c0, treeCpu(child.pid));
      served += r.served;
    } finally {
      // SIGTERM: FiberLB's primary stops its worker; each process writes its profile as it exits.
      await stop(child, 10_000);
    }
    await sleep(500);
    const files = readdirSync(path.join(profDir, name)).filter((f) => f.endsWith('.cpuprofile'));
    const [top] = files
      .map((f) => ({ f, p: JSON.parse(readFileSync(path.join(profDir, name, f), 'utf8')) }))
      .sort((a, b) => busy(b.p) - busy(a.p));
    if (!top) throw new Error(`${name}: no profile written`);
    // The profile covers the process's whole life: warm-up and measured run, not the start.
    console.log(
      `\n== ${name} (${mode}): ${Math.round(r.rate)} conn/s, ${(cpuUs / r.served).toFixed(0)} µs/conn (process tree, profiler on), errors ${r.errors}, resumed ${Math.round((100 * r.resumed) / Math.max(1, r.total))}%`,
    );
    process.stdout.write(summarizeProfile(top.p, 20));
    const dest = path.join(outDir, `tls-${mode}-${name}.cpuprofile`);
    renameSync(path.join(profDir, name, top.f), dest);
    writeFileSync(
      dest.replace(/\.cpuprofile$/, '.svg'),
      flameGraph(
        top.p,
        `${name}, new TLS connections (${mode} handshakes), ${Math.round(r.rate)} conn/s (${day})`,
      ),
    );
    results.push({ name, profile: top.p, dest, served });
  }
  // The profile covers the process's life: ÷ every connection it served (start check, warm-up,
  // measured run; each generator counts all it had answered), so µs/conn per area compares.
  console.log(
    `\nself time per area, µs per connection (profile's busy time ÷ connections served; ${mode} handshakes):`,
  );
  const per = results.map(({ name, profile, served }) => ({ name, served, ...areaTimes(profile) }));
  const names = [...new Set(per.flatMap((p) => p.areas.map((a) => a.name)))];
  const cell = (us, p) => (us / p.served).toFixed(1).padStart(16);
  console.log(`${'area'.padEnd(40)}${per.map((p) => p.name.padStart(16)).join('')}`);
  for (const n of names.slice(0, 30))
    console.log(
      `${n.padEnd(40)}${per.map((p) => cell(p.areas.find((a) => a.name === n)?.us ?? 0, p)).join('')}`,
    );
  console.log(`${'busy total'.padEnd(40)}${per.map((p) => cell(p.busyUs, p)).join('')}`);
  console.log(`${'connections served'.padEnd(40)}${per.map((p) => String(p.served).padStart(16)).join('')}`);
  const f = results.find((x) => x.name === 'fiberlb-https');
  console.log('\nFiberLB worker CPU by FiberLB file (innermost dist/ frame; the rest is Node and undici):');
  for (const { file, percent } of ownerShares(f.profile).slice(0, 25))
    console.log(`${percent.toFixed(2).padStart(7)}%  ${file}`);
  for (const x of results) console.log(`profile: ${path.relative(root, x.dest)} (+ .svg)`);
} finally {
  await stop(backend.child);
}

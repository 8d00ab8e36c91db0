#!/usr/bin/env node
// A/B cost of one config variant in short alternating slices: two FiberLB instances (1 worker
// each) run side by side on CPU 0, `plain` and VARIANT (bench/lib/variants.mjs); autocannon
// (CPU 1, with the backend) loads A for `slice` seconds, then B, then A… and each slice's
// proxy-tree CPU µs per request is taken from /proc. A slice pair is seconds apart, so the
// slow drift of a shared VM (plain FiberLB moved 44–91 µs/req within one 10-minute run) falls
// out of the per-pair ratio; the median of those ratios is the cost. Run after `npm run build`:
//   node bench/ab.mjs VARIANT [pairs=12] [slice=3]
// VARIANT `undici` runs the minimal undici proxy (bench/peers/undici-stream.mjs) as B: FiberLB's
// cost against the issue-11 reference, pair by pair. AB_CLI_B=path/to/cli.js runs B from
// another build (an experiment's dist/ copy); AB_A=VARIANT makes A that variant instead of plain
// (AB_A=log AB_CLI_B=... node bench/ab.mjs log: one variant, two builds).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { autocannon } from './lib/load.mjs';
import {
  cpuDeltaUs,
  freePort,
  installCleanupHandlers,
  spawnPinned,
  stop,
  treeCpu,
  waitForOutput,
} from './lib/proc.mjs';
import { startVariant, VARIANTS } from './lib/variants.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const variant = process.argv[2];
const pairs = Number(process.argv[3] ?? 12);
const slice = Number(process.argv[4] ?? 3);
const cliB = process.env.AB_CLI_B;
if (variant !== 'undici' && (!VARIANTS[variant] || (variant === (process.env.AB_A ?? 'plain') && !cliB))) {
  console.error(
    `usage: node bench/ab.mjs VARIANT [pairs] [slice]; VARIANT undici or one of ${Object.keys(VARIANTS).join(', ')} (plain only with AB_CLI_B)`,
  );
  process.exit(2);
}
installCleanupHandlers();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-ab-'));
const backendPort = await freePort();
const backend = spawnPinned('backend', '1', process.execPath, [
  path.join(root, 'bench/backend.mjs'),
  String(backendPort),
]);
await waitForOutput(backend, /listening/);

const start = (name, cli) =>
  startVariant({ root, name, dir: mkdtempSync(path.join(tmp, `${name}-`)), backendPort, cli });
const startUndici = async () => {
  const port = await freePort();
  const child = spawnPinned('undici', '0', process.execPath, [
    path.join(root, 'bench/peers/undici-stream.mjs'),
    String(port),
    `http://127.0.0.1:${backendPort}`,
  ]);
  await waitForOutput(child, /listening/);
  return { name: 'undici', child, port };
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const a = await start(process.env.AB_A ?? 'plain');
const b = variant === 'undici' ? await startUndici() : await start(variant, cliB);
// Two FiberLB builds of the same variant: tell them apart in the rows.
if (b.name === a.name) b.name = `${variant}-b`;
const aName = a.name;
const bName = b.name;
try {
  for (const t of [a, b]) await autocannon({ root, cpu: '1', port: t.port, connections: 50, durationS: 2 }); // warm-up
  const rows = [];
  for (let i = 0; i < pairs; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order = i % 2 === 0 ? [a, b] : [b, a];
    const us = {};
    for (const t of order) {
      const c0 = treeCpu(t.child.pid);
      const r = await autocannon({ root, cpu: '1', port: t.port, connections: 50, durationS: slice });
      if (r.errors || r.non2xx) throw new Error(`${t.name}: ${r.errors} errors, ${r.non2xx} non-2xx`);
      us[t.name] = cpuDeltaUs(c0, treeCpu(t.child.pid)) / r.total;
    }
    rows.push({ plain: us[aName], variant: us[bName], ratio: us[bName] / us[aName] });
    console.log(
      `pair ${i + 1}/${pairs}: ${aName} ${us[aName].toFixed(1)} µs/req, ${bName} ${us[bName].toFixed(1)} µs/req, ratio ${(us[bName] / us[aName]).toFixed(3)}`,
    );
  }
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    variant,
    pairs,
    sliceS: slice,
    plainMedianUs: median(rows.map((r) => r.plain)),
    variantMedianUs: median(rows.map((r) => r.variant)),
    medianRatio: median(rows.map((r) => r.ratio)),
    ratios: rows.map((r) => Math.round(r.ratio * 1000) / 1000),
  };
  console.log(
    `\n${variant}: median per-pair ratio ${result.medianRatio.toFixed(3)} (plain ${result.plainMedianUs.toFixed(1)} µs/req, ${variant} ${result.variantMedianUs.toFixed(1)} µs/req; ratios ${[...result.ratios].sort((x, y) => x - y).join(' ')})`,
  );
  if (variant === 'undici')
    console.log(`FiberLB ÷ undici: ${(1 / result.medianRatio).toFixed(3)} (issue 11: ≤ 1.0)`);
  writeFileSync(path.join(tmp, 'ab.json'), JSON.stringify(result, null, 2));
  if (process.env.BENCH_AB_OUT)
    writeFileSync(process.env.BENCH_AB_OUT, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stop(a.child, 5_000);
  await stop(b.child, 5_000);
  await stop(backend);
}

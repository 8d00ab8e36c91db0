#!/usr/bin/env node
// A/B in short alternating slices: A (plain FiberLB, 1 worker) and B run side by side on CPU 0;
// the load generator (CPU 1, with the backend) loads A for `slice` seconds, then B, then A…
// A slice pair is seconds apart, so the slow drift of a shared VM (plain FiberLB moved 44–91
// µs/req within one 10-minute run) falls out of the per-pair ratio; the median of those ratios
// is the answer (the pair loop: bench/lib/paired.mjs, shared with bench/ab-tls.mjs for new TLS
// connections). Run after `npm run build`:
//
//   node bench/ab.mjs B [pairs=12] [slice=3] [--rate R] [--a VARIANT] [--cli-b PATH] [--out FILE]
//
// B is a FiberLB variant (bench/lib/variants.mjs: its cost) or a peer from the bench targets
// (undici, http-proxy-3, haproxy, nginx: FiberLB against it). Without --rate, autocannon at
// full load and the proxy tree's CPU µs/req from /proc; with --rate, the open-loop generator at
// R req/s and the latency percentiles (the fixed-rate target: p99 against HAProxy's), CPU too.
// --a makes A another variant; --cli-b runs a FiberLB B from another build (an experiment's
// dist/ copy: `--a log --cli-b /tmp/exp/dist/cli.js log` is one variant, two builds).
// BENCH_BODY_BYTES sets the response size (16384: the 16 KiB scenario).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { countOf, mergeHistograms, percentileOf } from './lib/histogram.mjs';
import { autocannon, fixedRate } from './lib/load.mjs';
import { median, pairedSlices, pairStats } from './lib/paired.mjs';
import { cpuDeltaUs, installCleanupHandlers, stop, treeCpu } from './lib/proc.mjs';
import { setBody, startBackend, TARGETS } from './lib/targets.mjs';
import { startVariant, VARIANTS } from './lib/variants.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: 'string' },
    a: { type: 'string', default: 'plain' },
    'cli-b': { type: 'string' },
    out: { type: 'string' },
  },
});
const [bName0, pairsArg, sliceArg] = positionals;
const pairs = Number(pairsArg ?? 12);
const slice = Number(sliceArg ?? 3);
const rate = opt.rate === undefined ? undefined : Number(opt.rate);
const cliB = opt['cli-b'] ?? process.env.AB_CLI_B;
const peers = TARGETS.filter((t) => t.isProxy && !t.name.startsWith('fiberlb') && !t.mode?.includes('tcp'));
const peer = peers.find((t) => t.name === bName0);
const sameAsA = bName0 === opt.a && !cliB;
if (!VARIANTS[opt.a] || (!peer && (!VARIANTS[bName0] || sameAsA))) {
  console.error(
    `usage: node bench/ab.mjs B [pairs] [slice] [--rate R] [--a VARIANT] [--cli-b PATH]\n` +
      `  B: a variant (${Object.keys(VARIANTS).join(', ')}; the same as A only with --cli-b) or a peer (${peers.map((t) => t.name).join(', ')})`,
  );
  process.exit(2);
}
const unavailable = peer?.unavailable?.();
if (unavailable) {
  console.error(unavailable);
  process.exit(2);
}
installCleanupHandlers();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-ab-'));
const bodyBytes = Number(process.env.BENCH_BODY_BYTES) || 0;
if (bodyBytes) setBody(bodyBytes); // what the peers' readiness check expects
const { port: backendPort, child: backend } = await startBackend('node', { cpu: '1', root, tmp });

const startFiberlb = (name, cli) =>
  startVariant({ root, name, dir: mkdtempSync(path.join(tmp, `${name}-`)), backendPort, cli });
const startPeer = async (t) => {
  const { port, child } = await t.start({ root, tmp, backendPort, cpu: '0' });
  return { name: t.name, child, port };
};

/** One slice on `t`: CPU µs/req, and with --rate the latency percentiles (µs). */
async function measure(t) {
  const c0 = treeCpu(t.child.pid);
  if (rate === undefined) {
    const r = await autocannon({ root, cpu: '1', port: t.port, connections: 50, durationS: slice });
    if (r.errors || r.non2xx) throw new Error(`${t.name}: ${r.errors} errors, ${r.non2xx} non-2xx`);
    return { us: cpuDeltaUs(c0, treeCpu(t.child.pid)) / r.total };
  }
  const r = await fixedRate({
    root,
    cpu: '1',
    port: t.port,
    connections: 50,
    durationS: slice,
    rate,
    warmupS: 0.5,
  });
  if (r.errors || r.non2xx) throw new Error(`${t.name}: ${r.errors} errors, ${r.non2xx} non-2xx`);
  const l = r.latencyUs;
  return {
    us: cpuDeltaUs(c0, treeCpu(t.child.pid)) / r.completedTotal,
    p50: l.p50,
    p99: l.p99,
    p999: l.p999,
    histogram: r.histogram,
  };
}

const a = await startFiberlb(opt.a);
const b = peer ? await startPeer(peer) : await startFiberlb(bName0, cliB);
if (b.name === a.name) b.name = `${bName0}-b`; // two builds of one variant
const metric = rate === undefined ? 'us' : 'p99';
const unit = rate === undefined ? 'µs/req' : 'µs p99';
try {
  for (const t of [a, b]) await autocannon({ root, cpu: '1', port: t.port, connections: 50, durationS: 2 }); // warm-up
  const show = (x) =>
    rate === undefined
      ? `${x.us.toFixed(1)} µs/req`
      : `p50 ${x.p50} p99 ${x.p99} µs, ${x.us.toFixed(1)} µs/req`;
  const rows = (await pairedSlices({ a, b, pairs, measure, metric, show }))[''];
  for (const r of rows) r.cpuRatio = r.b.us / r.a.us;
  const st = pairStats(rows, metric);
  const pick = (side, k) => median(rows.map((r) => r[side][k]));
  // Every request of a side's slices in one histogram: its percentiles over all of them.
  const pooled = (side) => {
    const h = mergeHistograms(rows.map((r) => r[side].histogram));
    return {
      requests: countOf(h),
      p50: percentileOf(h, 50),
      p99: percentileOf(h, 99),
      p999: percentileOf(h, 99.9),
    };
  };
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    a: a.name,
    b: b.name,
    bodyBytes,
    rate: rate ?? null,
    pairs,
    sliceS: slice,
    metric: unit,
    aMedian: st.aMedian,
    bMedian: st.bMedian,
    medianRatio: st.medianRatio,
    ratios: st.ratios,
    ...(rate !== undefined && {
      aMedianP50: pick('a', 'p50'),
      bMedianP50: pick('b', 'p50'),
      aMedianCpuUs: pick('a', 'us'),
      bMedianCpuUs: pick('b', 'us'),
      medianCpuRatio: median(rows.map((r) => r.cpuRatio)),
      pooled: { a: pooled('a'), b: pooled('b') },
    }),
  };
  console.log(
    `\n${b.name} ÷ ${a.name} (${unit}): median per-pair ratio ${result.medianRatio.toFixed(3)} (${a.name} ${result.aMedian.toFixed(1)}, ${b.name} ${result.bMedian.toFixed(1)}; ratios ${[...result.ratios].sort((x, y) => x - y).join(' ')})`,
  );
  if (peer) console.log(`${a.name} ÷ ${b.name}: ${(1 / result.medianRatio).toFixed(3)}`);
  if (result.pooled) {
    const { a: pa, b: pb } = result.pooled;
    for (const [name, p] of [
      [a.name, pa],
      [b.name, pb],
    ])
      console.log(
        `pooled over ${p.requests} requests, ${name}: p50 ${p.p50} p99 ${p.p99} p99.9 ${p.p999} µs`,
      );
    console.log(
      `pooled p99 ${a.name} ÷ ${b.name}: ${(pa.p99 / pb.p99).toFixed(3)}, p99.9: ${(pa.p999 / pb.p999).toFixed(3)}`,
    );
  }
  writeFileSync(path.join(tmp, 'ab.json'), JSON.stringify(result, null, 2));
  const out = opt.out ?? process.env.BENCH_AB_OUT;
  if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stop(a.child, 5_000);
  await stop(b.child, 5_000);
  await stop(backend);
}

#!/usr/bin/env node
// A/B of new TLS connections in short alternating slices (bench/lib/paired.mjs, as bench/ab.mjs
// does for HTTP): A = FiberLB's https listener (1 worker) and B (default undici-https, the
// minimal node:https + undici proxy) run side by side on CPU 0; bench/lib/handshake-gen.mjs on
// CPU 1 (with the backend) opens one TLS 1.3 connection per request, `GET /` with
// Connection: close, for `slice` seconds on A, then on B, then on A…, per mode: `full` (no
// session offered: every handshake a full one) and `resumed` (each loop offers the ticket of its
// previous connection). The figure is the proxy tree's CPU µs per connection (handshake + one
// proxied request + close): its CPU over the generator's whole life ÷ every connection it had
// answered (`served`: the counted window's edges do not bias it); the answer is the median of
// the per-pair ratios A ÷ B. Run after `npm run build`:
//
//   node bench/ab-tls.mjs [B=undici-https] [pairs=12] [slice=3] [--modes full,resumed]
//        [--concurrency 32] [--cli-a PATH] [--cli-b PATH] [--http2 false] [--http2-b false]
//        [--out FILE.json]
//
// B: undici-https, haproxy-https, nginx-https, or fiberlb-https with --cli-b (two builds: A from
// this checkout's dist/ or --cli-a, B from --cli-b — an optimisation's before/after; a copied
// build needs package.json next to its dist/, and resolves node_modules from where it lies).
// --http2 false: A's listener offers http/1.1 only by ALPN (`tls.http2: false`), as undici-https;
// --http2-b the same for a FiberLB B (`fiberlb-https --http2-b false`: what offering h2 costs).
// Each resumed slice starts without tickets: its first `concurrency` handshakes are full ones,
// on both sides alike (≈ 3% of a slice's connections at 32 loops and ~300 conn/s).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { handshakes } from './lib/load.mjs';
import { median, pairedSlices, pairStats } from './lib/paired.mjs';
import { installCleanupHandlers, stop } from './lib/proc.mjs';
import { startBackend } from './lib/targets.mjs';
import { phase } from './lib/tls-measure.mjs';
import { HTTPS_TARGETS, verifyTls } from './lib/tls-targets.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    modes: { type: 'string', default: 'full,resumed' },
    concurrency: { type: 'string', default: '32' },
    'cli-a': { type: 'string' },
    'cli-b': { type: 'string' },
    http2: { type: 'string', default: 'true' },
    'http2-b': { type: 'string' },
    out: { type: 'string' },
  },
});
const [bName = 'undici-https', pairsArg, sliceArg] = positionals;
const pairs = Number(pairsArg ?? 12);
const slice = Number(sliceArg ?? 3);
const modes = opt.modes.split(',').filter(Boolean);
const concurrency = Math.max(1, Number(opt.concurrency));
const byName = (n) => HTTPS_TARGETS.find((t) => t.name === n);
const A = byName('fiberlb-https');
const B = byName(bName);
const http2 = opt.http2 !== 'false';
const http2B = opt['http2-b'] === undefined ? http2 : opt['http2-b'] !== 'false';
if (
  !B ||
  (B === A && !opt['cli-b'] && http2B === http2) ||
  modes.some((m) => m !== 'full' && m !== 'resumed') ||
  !(pairs > 0)
) {
  console.error(
    'usage: node bench/ab-tls.mjs [B] [pairs] [slice] [--modes full,resumed] [--concurrency N] [--cli-a PATH] [--cli-b PATH] [--http2 false] [--http2-b false] [--out FILE]\n' +
      `  B: ${HTTPS_TARGETS.map((t) => t.name).join(', ')} (fiberlb-https only with --cli-b or --http2-b)`,
  );
  process.exit(2);
}
const unavailable = B.unavailable?.();
if (unavailable) {
  console.error(unavailable);
  process.exit(2);
}
installCleanupHandlers();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-ab-tls-'));
const backend = await startBackend(process.env.BENCH_BACKEND ?? 'auto', { cpu: '1', root, tmp });

async function start(t, cli, name, h2) {
  const { port, child } = await t.start({ root, tmp, backendPort: backend.port, cpu: '0', cli, http2: h2 });
  const negotiated = await verifyTls(port);
  return { name, child, port, negotiated };
}

/** One slice of `mode` on `t`: proxy CPU µs per connection, connections/s, resumed share. */
async function measure(t, mode) {
  const m = await phase({ child: t.child, backendPid: backend.child.pid, proxyCpu: '0' }, () =>
    handshakes({
      root,
      cpu: '1',
      port: t.port,
      concurrency,
      durationS: slice,
      warmupS: 0.5,
      resume: mode === 'resumed',
    }),
  );
  const r = m.r;
  if (r.errors || r.non200)
    throw new Error(`${t.name} ${mode}: ${r.errors} errors (${r.errorSamples}), ${r.non200} non-200`);
  if (!r.served) throw new Error(`${t.name} ${mode}: no connection served`);
  return {
    us: m.proxyUs / r.served,
    rate: r.rate,
    resumed: r.resumed / Math.max(1, r.total),
    busy: m.proxyUs / m.wallUs,
    foreign: m.foreign,
  };
}

let a;
let b;
try {
  a = await start(A, opt['cli-a'], 'fiberlb-https', http2);
  b = await start(B, opt['cli-b'], B === A ? 'fiberlb-https-b' : B.name, http2B);
} catch (e) {
  if (a) await stop(a.child, 5_000);
  await stop(backend.child);
  throw e;
}
const pct = (x) => `${Math.round(x * 100)}%`;
const show = (x) =>
  `${x.us.toFixed(0)} µs/conn (${x.rate.toFixed(0)}/s, busy ${pct(x.busy)}, other ${pct(x.foreign)})`;
try {
  console.log(
    `A ${a.name} ${a.negotiated.protocol}/${a.negotiated.cipher}${http2 ? ', ALPN h2,http/1.1' : ', ALPN http/1.1'}; B ${b.name} ${b.negotiated.protocol}/${b.negotiated.cipher}${B === A ? (http2B ? ', ALPN h2,http/1.1' : ', ALPN http/1.1') : ''}; ${concurrency} loops, ${slice} s slices, backend ${backend.describe}`,
  );
  for (const t of [a, b]) for (const mode of modes) await measure(t, mode); // warm-up
  const rows = await pairedSlices({ a, b, pairs, steps: modes, measure, metric: 'us', show, key: 'inverse' });
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    a: a.name,
    b: b.name,
    cliA: opt['cli-a'] ?? null,
    cliB: opt['cli-b'] ?? null,
    http2,
    ...(B === A && { http2B }),
    concurrency,
    sliceS: slice,
    metric: 'proxy CPU µs per new connection',
    backend: backend.describe,
    modes: {},
  };
  for (const mode of modes) {
    const rs = rows[mode];
    const st = pairStats(rs, 'us', 'inverse'); // FiberLB ÷ B
    result.modes[mode] = {
      ...st,
      aRate: median(rs.map((r) => r.a.rate)),
      bRate: median(rs.map((r) => r.b.rate)),
      aResumed: median(rs.map((r) => r.a.resumed)),
      bResumed: median(rs.map((r) => r.b.resumed)),
      foreign: median(rs.flatMap((r) => [r.a.foreign, r.b.foreign])),
      slices: rs.map((r) => ({ a: r.a, b: r.b })),
    };
    console.log(
      `\n${mode}: ${a.name} ÷ ${b.name} median per-pair ratio ${st.medianRatio.toFixed(3)} (${a.name} ${st.aMedian.toFixed(0)}, ${b.name} ${st.bMedian.toFixed(0)} µs/conn; ${st.pairs} pairs, IQR ${st.q1}–${st.q3}, min–max ${st.min}–${st.max})`,
    );
  }
  const out = opt.out ?? process.env.BENCH_AB_OUT;
  writeFileSync(path.join(tmp, 'ab-tls.json'), JSON.stringify(result, null, 2));
  if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stop(a.child, 5_000);
  await stop(b.child, 5_000);
  await stop(backend.child);
}

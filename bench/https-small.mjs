#!/usr/bin/env node
// HTTPS termination benchmark — now the `https` scenario of bench/run.mjs (bench/lib/https.mjs);
// this script keeps its old command line and runs `node bench/run.mjs --scenario https` with it:
//
//   node bench/https-small.mjs [--rounds 3] [--duration 8] [--warmup 2] [--connections 50]
//     [--hs-duration 4] [--hs-concurrency 32] [--no-handshakes] [--no-resume] [--only a,b]
//     [--backend auto|nginx|node] [--out DIR] [--name NAME] [--quick] [--prof DIR]
// (also `node bench/https-small.mjs ROUNDS DURATION`). --only takes the old target names
// (fiberlb, haproxy, nginx) as well as the scenario's. Results: bench/results/https.json / .md
// and the dated report. See bench/README.md "HTTPS termination".
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    'hs-duration': { type: 'string' },
    'hs-concurrency': { type: 'string' },
    'no-handshakes': { type: 'boolean', default: false },
    'no-resume': { type: 'boolean', default: false },
    only: { type: 'string' },
    backend: { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    quick: { type: 'boolean', default: false },
    prof: { type: 'string' },
    'proxy-cpu': { type: 'string' },
    'load-cpu': { type: 'string' },
  },
});
const OLD = { fiberlb: 'fiberlb-https', haproxy: 'haproxy-https', nginx: 'nginx-https' };
const env = { ...process.env };
const args = [path.join(here, 'run.mjs'), '--scenario', 'https'];
const pass = (flag, v) => v !== undefined && args.push(`--${flag}`, String(v));
if (opt.quick) args.push('--quick');
else {
  pass('rounds', opt.rounds ?? positionals[0] ?? (opt.prof ? 1 : 3));
  pass('duration', opt.duration ?? positionals[1] ?? 8);
  pass('warmup', opt.warmup);
}
pass('connections', opt.connections);
pass('out', opt.out ?? (opt.prof ? os.tmpdir() : undefined));
pass('name', opt.name);
pass('proxy-cpu', opt['proxy-cpu']);
pass('load-cpu', opt['load-cpu']);
const only = opt.prof ? 'fiberlb-https,undici-https' : opt.only;
if (only)
  pass(
    'only',
    only
      .split(',')
      .map((n) => OLD[n.trim()] ?? n.trim())
      .join(','),
  );
if (opt['hs-duration']) env.BENCH_HS_DURATION = opt['hs-duration'];
if (opt['hs-concurrency']) env.BENCH_HS_CONCURRENCY = opt['hs-concurrency'];
if (opt['no-handshakes']) env.BENCH_HANDSHAKES = '0';
if (opt['no-resume']) env.BENCH_RESUME = '0';
if (opt.backend) env.BENCH_BACKEND = opt.backend;
if (opt.prof) env.BENCH_PROF = path.resolve(opt.prof);
const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
process.exit(r.status ?? 1);

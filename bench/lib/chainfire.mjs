// Scenario `chainfire`: runs bench/chainfire-propagation.mjs (a real etcd + FiberLB, 2 workers)
// as a child and reports its numbers. --quick: 20 changes instead of 200.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnPinned } from './proc.mjs';

export async function run({ root, tmp, quick, meta, state, log }) {
  const changes = quick ? 20 : 200;
  const out = path.join(tmp, 'chainfire-propagation.json');
  log(`chainfire: ${changes} changes against a real etcd (bench/chainfire-propagation.mjs)…`);
  // On every core: etcd, FiberLB's 2 workers and the client share the machine, as in production.
  // Named explicitly: run.mjs pins itself to the load core and a child inherits that (which is
  // also why availableParallelism(), which honours the affinity, would say 1 here).
  const child = spawnPinned(
    'chainfire',
    `0-${os.cpus().length - 1}`,
    process.execPath,
    ['--import', 'tsx', 'bench/chainfire-propagation.mjs', String(changes)],
    {
      cwd: root,
      env: { CHAINFIRE_OUT: out },
    },
  );
  const { code, signal } = await child.exited;
  if (code !== 0)
    throw new Error(`chainfire-propagation.mjs exited ${code ?? signal}: ${child.out.stderr.slice(-800)}`);
  const r = JSON.parse(readFileSync(out, 'utf8'));
  meta.changes = changes;
  state.fiberlb = { label: 'FiberLB (2 workers, Chainfire source)', status: 'ok', runs: [r], summary: r };
}

const f1 = (x) => (x == null ? '–' : String(x));

export function markdown({ meta, targets }) {
  const r = targets.fiberlb?.summary;
  const L = [`# ${meta.title}`, ''];
  if (meta.quick) L.push('**--quick run: proves the scenario works; not a result.**', '');
  L.push(`- Date: ${meta.date} · Node ${meta.node} · ${meta.cpuModel} × ${meta.cores} cores`);
  L.push(`- Load average at the start: ${meta.loadAverage.map((x) => x.toFixed(2)).join(' / ')}`);
  L.push(`- ${meta.changes} backend-key puts, alternating between two backends; see bench/README.md`, '');
  if (!r) return `${L.join('\n')}\n(no result)\n`;
  L.push('| measure | p50 ms | p99 ms | max ms |', '|---|---:|---:|---:|');
  L.push(
    `| put → applied in both workers | ${f1(r.applied_all_workers_ms.p50)} | ${f1(r.applied_all_workers_ms.p99)} | ${f1(r.applied_all_workers_ms.max)} |`,
  );
  L.push(
    `| put → first request served by the new backend | ${f1(r.first_request_served_ms.p50)} | ${f1(r.first_request_served_ms.p99)} | ${f1(r.first_request_served_ms.max)} |`,
  );
  L.push('', '| one transaction of N backend keys | → applied in both workers, ms |', '|---:|---:|');
  for (const s of r.scale) L.push(`| ${s.backends.toLocaleString('en-US')} | ${s.txn_to_applied_ms} |`);
  L.push('', '| backends | req/s (autocannon, 5 s, 20 connections) | errors |', '|---:|---:|---:|');
  for (const t of r.throughput)
    L.push(
      `| ${t.backends.toLocaleString('en-US')} | ${t.req_per_s.toLocaleString('en-US')} | ${t.errors + t.non2xx} |`,
    );
  return `${L.join('\n')}\n`;
}

/** For the daily report: bars = p50/p99 of put → served. */
export function headline({ targets }) {
  const r = targets.fiberlb?.summary;
  if (!r) return undefined;
  return {
    metric: 'put → first request served by the new backend (ms, lower is better)',
    bars: [
      { label: 'p50', value: r.first_request_served_ms.p50 },
      { label: 'p99', value: r.first_request_served_ms.p99 },
      { label: 'max', value: r.first_request_served_ms.max },
    ],
  };
}

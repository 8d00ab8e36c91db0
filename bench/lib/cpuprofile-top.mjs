// Text summary of a V8 .cpuprofile (node --cpu-prof): the top-N functions by self time and the
// self time per area (FiberLB's dist/, undici, node internals by module, GC, native/program,
// idle). Usage: node bench/lib/cpuprofile-top.mjs FILE.cpuprofile [N=15]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function area(url, fn) {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.includes('/node_modules/')) return `npm ${url.split('/node_modules/').pop().split('/')[0]}`;
  if (url.includes('/dist/'))
    return `fiberlb ${url.split('/dist/').pop().split('/').slice(0, -1).join('/') || '.'}`;
  if (url.startsWith('node:'))
    return url
      .replace(/^node:internal\//, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  return path.basename(url);
}

/** Returns the summary as text. */
export function summarizeProfile(profile, n = 15) {
  const { nodes, samples, startTime, endTime } = profile;
  const interval = (endTime - startTime) / Math.max(1, samples.length); // µs per sample
  const byId = new Map(nodes.map((x) => [x.id, x]));
  const hits = new Map();
  for (const id of samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const fns = new Map();
  const areas = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, h] of hits) {
    const { callFrame: c } = byId.get(id);
    const fn = c.functionName || '(anonymous)';
    if (fn === '(idle)') idle += h;
    total += h;
    const key = `${fn}  ${c.url ? `${c.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${c.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + h);
    const a = area(c.url, fn);
    areas.set(a, (areas.get(a) ?? 0) + h);
  }
  const busy = total - idle;
  const ms = (h) => ((h * interval) / 1000).toFixed(0).padStart(7);
  const p = (h) => `${((h / busy) * 100).toFixed(1).padStart(5)}%`;
  const out = [
    `${samples.length} samples over ${((endTime - startTime) / 1e6).toFixed(1)} s (${interval.toFixed(0)} µs each); busy ${((busy / total) * 100).toFixed(0)}% (idle excluded from the % below)`,
    '',
    `top ${n} functions by self time:`,
    '    ms   busy%  function  location',
  ];
  for (const [k, h] of [...fns]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n))
    out.push(`${ms(h)} ${p(h)}  ${k}`);
  out.push('', 'self time by area:');
  for (const [k, h] of [...areas]
    .filter(([k]) => k !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20))
    out.push(`${ms(h)} ${p(h)}  ${k}`);
  return `${out.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, n] = process.argv.slice(2);
  process.stdout.write(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), Number(n ?? 15)));
}

/**
 * Busy samples per FiberLB file, each sample given to the innermost frame from dist/: what a
 * module costs itself plus what it calls outside FiberLB (node, undici), not its FiberLB
 * callees. A feature's share of the worker's CPU is the sum over its files.
 */
export function ownerShares(profile) {
  const { nodes, samples } = profile;
  const byId = new Map(nodes.map((x) => [x.id, x]));
  const parent = new Map();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let busy = 0;
  const owners = new Map();
  for (const id of samples) {
    if (byId.get(id).callFrame.functionName === '(idle)') continue;
    busy++;
    let owner = '(outside FiberLB code)';
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur).callFrame.url;
      if (url.includes('/dist/')) {
        owner = url.split('/dist/').pop();
        break;
      }
    }
    owners.set(owner, (owners.get(owner) ?? 0) + 1);
  }
  return [...owners]
    .map(([file, n]) => ({ file, percent: (100 * n) / busy }))
    .sort((a, b) => b.percent - a.percent);
}

/**
 * Self time per area (as in summarizeProfile: FiberLB's dist/ folders, npm packages, Node
 * internals by module, GC, native/program), in µs, idle left out; with the busy total. Two
 * processes under the same load compare area by area (e.g. ÷ connections served: µs each).
 */
export function areaTimes(profile) {
  const { nodes, samples, startTime, endTime } = profile;
  const interval = (endTime - startTime) / Math.max(1, samples.length);
  const byId = new Map(nodes.map((x) => [x.id, x]));
  const areas = new Map();
  let busy = 0;
  for (const id of samples) {
    const c = byId.get(id).callFrame;
    const fn = c.functionName || '(anonymous)';
    if (fn === '(idle)') continue;
    busy++;
    const a = area(c.url, fn);
    areas.set(a, (areas.get(a) ?? 0) + 1);
  }
  return {
    busyUs: busy * interval,
    areas: [...areas].map(([name, n]) => ({ name, us: n * interval })).sort((a, b) => b.us - a.us),
  };
}

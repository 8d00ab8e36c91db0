#!/usr/bin/env node
// Runs every test/**/*.test.ts with node:test through tsx.
// Node 20's `node --test DIR` silently finds no .ts files, so we list them ourselves and
// fail loudly when nothing ran. Usage: node scripts/run-tests.mjs [filter-substring...]
//
// Files run in parallel (FIBERLB_TEST_CONCURRENCY processes, default: the CPU count, at most
// 4), except files whose first lines carry the marker `// test: serial` — the ones that
// measure time or load (acceptance bounds, rates) — which run afterwards, one at a time, on
// a quiet machine.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const node = process.env.FIBERLB_TEST_NODE || process.execPath;
const filters = process.argv.slice(2);
const concurrency = Math.max(
  1,
  Number(process.env.FIBERLB_TEST_CONCURRENCY) || Math.min(4, availableParallelism()),
);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const files = walk(join(root, 'test'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
const isSerial = (f) => readFileSync(join(root, f), 'utf8').slice(0, 600).includes('// test: serial');
const serial = files.filter(isSerial);
const parallel = files.filter((f) => !serial.includes(f));
console.log(
  `run-tests: ${files.length} files (${parallel.length} in parallel ×${concurrency}, ${serial.length} serial) on ${node} (${spawnSync(node, ['-v']).stdout.toString().trim()})`,
);
// FIBERLB_TEST_BAIL=1 stops at the first failing test (mutation testing runs the suites once
// per mutant and needs only the verdict). The child then gets its own process group, so the
// whole run, per-file processes included, can be ended at once.
const bail = process.env.FIBERLB_TEST_BAIL === '1';

/** Runs one node --test pass; resolves with its exit code and how many tests ran. */
function pass(list, n) {
  return new Promise((resolve) => {
    const child = spawn(
      node,
      ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${n}`, ...list],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, FIBERLB_TEST_NODE: node },
        detached: bail,
      },
    );
    let tail = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk).slice(-4096);
      if (bail && tail.includes('✖')) {
        process.kill(-child.pid, 'SIGKILL');
        process.exit(1);
      }
    });
    child.on('exit', (code, signal) => {
      const m = /ℹ tests (\d+)/.exec(tail);
      resolve({ code: code ?? (signal ? 1 : 0), ran: m ? Number(m[1]) : 0 });
    });
  });
}

let ran = 0;
let failed = false;
for (const [list, n] of [
  [parallel, concurrency],
  [serial, 1],
]) {
  if (list.length === 0) continue;
  const r = await pass(list, n);
  ran += r.ran;
  if (r.code !== 0) failed = true;
  if (failed && bail) break;
}
if (ran === 0) {
  console.error('run-tests: 0 tests ran — refusing to pass');
  process.exit(1);
}
console.log(`run-tests: ${ran} tests, ${failed ? 'FAILED' : 'passed'}`);
process.exit(failed ? 1 : 0);

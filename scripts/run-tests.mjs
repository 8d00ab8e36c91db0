#!/usr/bin/env node
// Runs every test/**/*.test.ts with node:test through tsx.
// Node 20's `node --test DIR` silently finds no .ts files, so we list them ourselves and
// fail loudly when nothing ran. Usage: node scripts/run-tests.mjs [filter-substring...]
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const node = process.env.FIBERLB_TEST_NODE || process.execPath;
const filters = process.argv.slice(2);

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
console.log(
  `run-tests: ${files.length} files on ${node} (${spawnSync(node, ['-v']).stdout.toString().trim()})`,
);
// FIBERLB_TEST_BAIL=1 stops at the first failing test (mutation testing runs the suites once
// per mutant and needs only the verdict). The child then gets its own process group, so the
// whole run, per-file processes included, can be ended at once.
const bail = process.env.FIBERLB_TEST_BAIL === '1';
const child = spawn(
  node,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
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
  const ran = m ? Number(m[1]) : 0;
  if (ran === 0) {
    console.error('run-tests: 0 tests ran — refusing to pass');
    process.exit(1);
  }
  process.exit(code ?? (signal ? 1 : 0));
});

// The bench modules are plain .mjs that run as the user runs them: a test runs a snippet that
// imports them in a `node` child, in the repo root, and reads the JSON value it prints last.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from './cluster-fiberlb.ts';

/** Run an ES module snippet with node in the repo root; it prints one JSON value last. */
export function runModule(code: string, timeout = 60_000): unknown {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout,
  });
  assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

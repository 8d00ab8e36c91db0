// cluster.worker_old_space: each worker is forked with V8's --initial-old-space-size (64 MiB by
// default) so that V8 does not settle into a full GC after every scavenge under steady load
// (src/primary/worker-heap.ts). Real processes: the flag is read back from each worker's
// /proc/PID/cmdline; an operator's own flag (node's arguments; Node refuses it in NODE_OPTIONS)
// wins, 0 adds none.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';
import { workerExecArgv } from '../src/primary/worker-heap.ts';
import { childPids, lbConfigHead, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
const heapFlags = (argv: string[]) => argv.filter((a) => a.startsWith('--initial-old-space-size'));

async function workerFlags(cluster: string, nodeArgs = ''): Promise<string[][]> {
  const dir = tempDir();
  const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(
    dir,
    `${lbConfigHead(admin, cluster, 'h')}      - { name: api, port: ${port}, protocol: http, default_pool: web }
    pools: [{ name: web, backends: [{ address: 127.0.0.1, port: 9 }] }]
`,
  );
  // sh puts node's own arguments before cli.js, then execs (the pid stays the primary's).
  const wrap = nodeArgs ? ['sh', '-c', `exec "$0" ${nodeArgs} "$@"`] : undefined;
  const lb = await startLb(file, admin, 20_000, { wrap });
  try {
    const pids = await childPids(lb.pid);
    // The primary runs no data plane: it keeps its own arguments.
    assert.deepEqual(heapFlags(cmdline(lb.pid)), heapFlags(nodeArgs.split(' ')));
    return pids.map((p) => heapFlags(cmdline(p)));
  } finally {
    await lb.stop();
  }
}

describe('worker heap', () => {
  test('workers start with --initial-old-space-size=64 by default, the primary without', async () => {
    const flags = await workerFlags('workers: 2, drain_timeout: 1s');
    assert.deepEqual(flags, [['--initial-old-space-size=64'], ['--initial-old-space-size=64']]);
  });

  test('worker_old_space sets the size (rounded up to MiB); 0 adds no flag', async () => {
    assert.deepEqual(await workerFlags('workers: 1, drain_timeout: 1s, worker_old_space: 104857601'), [
      ['--initial-old-space-size=101'],
    ]);
    assert.deepEqual(await workerFlags('workers: 1, drain_timeout: 1s, worker_old_space: 0'), [[]]);
  });

  test("the operator's own flag (node --initial-old-space-size=N cli.js) wins: no second one", async () => {
    assert.deepEqual(await workerFlags('workers: 1, drain_timeout: 1s', '--initial-old-space-size=32'), [
      ['--initial-old-space-size=32'],
    ]);
  });

  test('workerExecArgv keeps the primary arguments and respects either spelling of the flag', () => {
    assert.deepEqual(workerExecArgv(64, ['--enable-source-maps']), [
      '--enable-source-maps',
      '--initial-old-space-size=64',
    ]);
    assert.deepEqual(workerExecArgv(64, ['--initial_old_space_size=8']), ['--initial_old_space_size=8']);
    assert.deepEqual(workerExecArgv(64, ['--max-old-space-size=512']), [
      '--max-old-space-size=512',
      '--initial-old-space-size=64',
    ]);
    assert.deepEqual(workerExecArgv(0, ['--x']), ['--x']);
  });

  test('worker_old_space: a size 0–16GiB, named in errors with file:line:col', () => {
    const bad = (v: string) => {
      const r = parseConfigText(`cluster: { worker_old_space: ${v} }\nload_balancers: []\n`, 'c.yaml');
      assert.equal(r.ok, false);
      return r.ok ? '' : r.issues.map(formatIssue).join('\n');
    };
    assert.match(
      bad('17GiB'),
      /^c\.yaml:1:30: cluster\.worker_old_space: size 17GiB is out of range 0B-16GiB$/,
    );
    assert.match(bad('lots'), /^c\.yaml:1:30: cluster\.worker_old_space: /);
    const ok = parseConfigText('cluster: { worker_old_space: 256MiB }\nload_balancers: []\n', 'c.yaml');
    assert.ok(ok.ok);
    assert.equal(ok.ok && ok.config.static.cluster.workerOldSpaceMiB, 256);
  });
});

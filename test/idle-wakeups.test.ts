// An idle FiberLB sleeps: its processes' main threads wake a few times a second, not a hundred
// (prom-client's default 10 ms event-loop sampling did that in the primary, ≈ 5 ms of CPU a
// second on this VM). Counted from /proc: a thread's voluntary context switches are the times
// it blocked, i.e. the event loop's waits that ended in a wake-up.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { childPids, lbConfigHead, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

/** Voluntary context switches of a process's main thread (its task id is its pid). */
const waits = (pid: number): number =>
  Number(
    /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))![1],
  );

test('an idle primary and worker wake up fewer than 40 times a second; the lag metrics stay', async () => {
  const dir = tempDir();
  const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(
    dir,
    `${lbConfigHead(admin, 'workers: 1, drain_timeout: 1s', 'idle', ', metrics_open: true')}      - { name: api, port: ${port}, protocol: http, default_pool: web }
    pools: [{ name: web, backends: [{ address: 127.0.0.1, port: 9 }] }]
`,
  );
  const lb = await startLb(file, admin, 20_000);
  try {
    const [worker] = await childPids(lb.pid);
    await sleep(1_000); // start-up work done
    const pids = [lb.pid, worker!];
    const before = pids.map(waits);
    const seconds = 3;
    await sleep(seconds * 1_000);
    const perSecond = pids.map((p, i) => (waits(p) - before[i]!) / seconds);
    assert.ok(perSecond[0]! < 40, `primary woke ${perSecond[0]} times/s`);
    assert.ok(perSecond[1]! < 40, `worker woke ${perSecond[1]} times/s`);
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    assert.match(metrics, /^nodejs_eventloop_lag_p99_seconds \d/m);
  } finally {
    await lb.stop();
  }
});

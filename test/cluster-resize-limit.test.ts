// connection_limit across a resize, through real cluster workers: each worker enforces
// limit / workers with the worker count from its snapshot, so after 2 → 4 the workers that
// kept running re-split their share and the total admitted never exceeds the limit (it used to
// reach 1.5× the limit: the first two kept their fork-time share of limit / 2).

import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  childPids,
  getText,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { admittedByEcho } from './helpers/l4-backends.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

const LIMIT = 4;

function yaml(o: { admin: number; tcp: number; backend: number; workers: number }): string {
  return `
admin: { address: 127.0.0.1, port: ${o.admin} }
cluster: { workers: ${o.workers}, drain_timeout: 1s }
load_balancers:
  - name: rl
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: raw, port: ${o.tcp}, protocol: tcp, default_pool: echo, connection_limit: ${LIMIT} }
    pools:
      - name: echo
        backends: [{ address: 127.0.0.1, port: ${o.backend} }]
`;
}

/** Connect and send a line: admitted if it is echoed back, refused if closed without a byte. */
function attempt(port: number, held: Socket[]): Promise<boolean> {
  return admittedByEcho(port, held, 'ping\n', 3_000);
}

describe('connection_limit after resizing the cluster', () => {
  const echo = createServer((s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  let lb: RunningLb | undefined;
  let ports: Parameters<typeof yaml>[0];
  let dir = '';

  before(async () => {
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const backend = (echo.address() as { port: number }).port;
    ports = { admin: await freeTcpPort(), tcp: await freeTcpPort(), backend, workers: 2 };
    dir = tempDir();
    lb = await startLb(writeConfig(dir, yaml(ports)), ports.admin);
  });
  after(async () => {
    await lb?.stop();
    echo.close();
  });

  test('2 → 4 workers: rounds of 24 concurrent connections never admit more than the limit', async () => {
    assert.ok(lb);
    writeConfig(dir, yaml({ ...ports, workers: 4 }));
    process.kill(lb.pid, 'SIGHUP');
    const until = Date.now() + 15_000;
    for (;;) {
      const h = JSON.parse((await getText(`http://127.0.0.1:${ports.admin}/healthz`)).body) as {
        workers_ready: number;
        revision: number;
      };
      if (h.revision === 2 && h.workers_ready === 4 && (await childPids(lb.pid)).length === 4) break;
      assert.ok(Date.now() < until, `4 workers not ready\n${lb.output()}`);
      await sleep(50);
    }
    // The kernel spreads connections over the 4 accepting workers unevenly; several rounds make
    // it very likely that every worker, old and new, receives some of them.
    let most = 0;
    for (let round = 0; round < 5; round++) {
      const held: Socket[] = [];
      try {
        const admitted = (
          await Promise.all(Array.from({ length: 24 }, () => attempt(ports.tcp, held)))
        ).filter(Boolean).length;
        most = Math.max(most, admitted);
        assert.ok(admitted <= LIMIT, `round ${round}: ${admitted} connections admitted, limit ${LIMIT}`);
      } finally {
        for (const s of held) s.destroy();
      }
      await sleep(200); // let every worker see its connections close
    }
    assert.ok(most >= 1, 'nothing admitted at all');
  });
});

// test: serial — it measures admitted rates (or memory), so it runs alone.
// The acceptance test of instance-wide rate limits: a real FiberLB with 2 workers, a client
// sending 3× its limit for 10 s. Accepted must be within ±10% of rate × T + burst (T: first to
// last request) over 1 connection (all on one worker) and over 50 (spread by the kernel), since
// workers lease their tokens from the primary's one bucket instead of keeping their own.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  lbConfigHead,
  nameServer,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';
import { paced } from './helpers/rate-load.ts';

const RATE = 100;
const BURST = 100;
const SECONDS = 10;

describe('rate limit across 2 cluster workers', () => {
  let lb: RunningLb | undefined;
  let backend: Awaited<ReturnType<typeof nameServer>> | undefined;
  let port = 0;
  let admin = 0;
  let dir = '';

  before(async () => {
    backend = await nameServer('b');
    port = await freeTcpPort();
    admin = await freeTcpPort();
    dir = tempDir();
    const yaml = `
${lbConfigHead(admin, 'workers: 2, drain_timeout: 1s', 'rl')}      - name: api
        port: ${port}
        protocol: http
        default_pool: web
        rate_limit:
          - { name: one, key: "header:x-client", rate: ${RATE}, per: 1s, burst: ${BURST} }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${backend.port} }]
`;
    lb = await startLb(writeConfig(dir, yaml), admin);
  });
  after(async () => {
    await lb?.stop();
    await backend?.close();
  });

  async function workerStats(): Promise<Array<Record<string, number>>> {
    const token = readFileSync(`${dir}/admin.token`, 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${admin}/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { rate_limits: { workers: Array<Record<string, number>> } };
    return body.rate_limits.workers;
  }

  for (const connections of [1, 50]) {
    test(`3× the limit for ${SECONDS} s over ${connections} connection(s): accepted within ±10% of rate × T + burst`, async () => {
      const before = await workerStats();
      // A client of its own per run: a fresh bucket.
      const r = await paced(`http://127.0.0.1:${port}/`, {
        rps: 3 * RATE,
        seconds: SECONDS,
        connections,
        headers: { 'x-client': `c${connections}` },
      });
      assert.deepEqual(r.errors, []);
      const expected = (RATE * r.spanMs) / 1000 + BURST;
      const after = await workerStats();
      const diff = (k: string) => after.map((w, i) => (w[k] ?? 0) - (before[i]?.[k] ?? 0));
      const perWorker = diff('allowed');
      const ratio = r.ok / expected;
      // The numbers for the report (stderr is not captured by the runner's pass line).
      process.stderr.write(
        `rate-limit-cluster: ${connections} conn: accepted ${r.ok}, refused ${r.limited}, expected ${expected.toFixed(0)} (T ${(r.spanMs / 1000).toFixed(2)} s), ratio ${ratio.toFixed(3)}, per worker ${perWorker.join('/')}, lease answers ${diff('leases').join('/')}\n`,
      );
      assert.ok(Math.abs(ratio - 1) <= 0.1, `accepted ${r.ok} vs expected ${expected.toFixed(0)}`);
      assert.equal(r.ok + r.limited, 3 * RATE * SECONDS);
      if (connections === 50)
        assert.ok(
          perWorker.every((n) => n > 0),
          `50 connections should reach both workers: ${perWorker.join('/')}`,
        );
    });
  }
});

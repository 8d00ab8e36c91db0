#!/usr/bin/env node
// Chainfire propagation: put → serving in every worker, against a real etcd (Debian
// etcd-server) and the built FiberLB (2 workers). Run after `npm run build`:
//   node --import tsx bench/chainfire-propagation.mjs [changes=200]
// For each change the pool's backend key is rewritten (alternating between two backends) and
// two times are taken from just before the put: until /healthz shows the put's revision applied
// by both workers (a worker acknowledges after it swapped its routing state, so its next request
// sees the change), and until a request on a fresh connection is answered by the new backend.
// Then 10, 1,000 and 10,000 backends: time from one txn to applied in both workers, and for 10
// and 1,000 real backends (one loopback server each) req/s through FiberLB (autocannon, 5 s,
// 20 connections, round_robin). 10,000 real backends are not measured: their upstream
// keep-alive connections alone (2 workers × 10,000) would exceed this machine's fd limit.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import autocannon from 'autocannon';
import { backendKey, etcdClient, seed, startChainfireLb } from '../test/helpers/chainfire.ts';
import { nameServer } from '../test/helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../test/helpers/etcd.ts';
import { freeTcpPort } from '../test/helpers/net.ts';

const N = Number(process.argv[2] ?? 200);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const ms = (x) => Math.round(x * 10) / 10;

const etcd = await EtcdCluster.start({ args: ['--max-txn-ops', '20000', '--max-request-bytes', '33554432'] });
const c = etcdClient(etcd.endpoints);
const servers = [await nameServer('a'), await nameServer('b')];
let f;
try {
  const port = await freeTcpPort();
  await seed(c, port, [servers[0].port]);
  f = await startChainfireLb(etcd.endpoints, { workers: 2 });
  const health = async () => (await fetch(`http://127.0.0.1:${f.admin}/healthz`)).json();
  const applied = [];
  const served = [];
  for (let i = 1; i <= N; i++) {
    const want = servers[i % 2];
    const t0 = performance.now();
    const res = await c
      .put(backendKey('web', 'b0'))
      .value(JSON.stringify({ address: '127.0.0.1', port: want.port }))
      .exec();
    const rev = Number(res.header.revision);
    let tApplied;
    let tServed;
    while (tApplied === undefined || tServed === undefined) {
      if (tServed === undefined) {
        const r = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
        if ((await r.text()) === (i % 2 ? 'b' : 'a')) tServed = performance.now() - t0;
      }
      if (tApplied === undefined) {
        const h = await health();
        if (h.revision >= rev && h.workers_ready === h.workers) tApplied = performance.now() - t0;
      }
    }
    applied.push(tApplied);
    served.push(tServed);
  }
  const result = {
    changes: N,
    applied_all_workers_ms: {
      p50: ms(pct(applied, 50)),
      p99: ms(pct(applied, 99)),
      max: ms(Math.max(...applied)),
    },
    first_request_served_ms: {
      p50: ms(pct(served, 50)),
      p99: ms(pct(served, 99)),
      max: ms(Math.max(...served)),
    },
    scale: [],
  };
  for (const n of [10, 1000, 10000]) {
    await c.delete().prefix('/fiberlb/backends/');
    const t0 = performance.now();
    const ops = [];
    for (let i = 0; i < n; i++)
      ops.push({
        request_put: {
          key: Buffer.from(backendKey('web', `n${i}`)),
          // All point at the same server on distinct (fake) addresses: only the table size varies.
          value: Buffer.from(
            JSON.stringify({
              address: `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
              port: servers[0].port,
            }),
          ),
        },
      });
    ops[0].request_put.value = Buffer.from(JSON.stringify({ address: '127.0.0.1', port: servers[0].port }));
    const res = await c.kv.txn({ compare: [], success: ops, failure: [] });
    const rev = Number(res.header.revision);
    for (;;) {
      const h = await health();
      if (h.revision >= rev && h.workers_ready === h.workers) break;
    }
    const applyMs = performance.now() - t0;
    result.scale.push({ backends: n, txn_to_applied_ms: ms(applyMs) });
  }
  const many = [];
  for (let i = 0; i < 1000; i++) many.push(await nameServer(`s${i}`));
  servers.push(...many);
  result.throughput = [];
  for (const n of [10, 1000]) {
    await c.delete().prefix('/fiberlb/backends/');
    const ops = many.slice(0, n).map((srv, i) => ({
      request_put: {
        key: Buffer.from(backendKey('web', `r${i}`)),
        value: Buffer.from(JSON.stringify({ address: '127.0.0.1', port: srv.port })),
      },
    }));
    const rev = Number((await c.kv.txn({ compare: [], success: ops, failure: [] })).header.revision);
    for (;;) {
      const h = await health();
      if (h.revision >= rev && h.workers_ready === h.workers) break;
    }
    const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 20, duration: 5 });
    result.throughput.push({
      backends: n,
      req_per_s: Math.round(r.requests.average),
      errors: r.errors,
      non2xx: r.non2xx,
    });
  }
  console.log(JSON.stringify(result, null, 2));
  // CHAINFIRE_OUT: another file (bench/run.mjs --scenario chainfire --quick writes to a temp dir).
  const out = process.env.CHAINFIRE_OUT ?? join('bench/results', 'chainfire-propagation.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, ...result }, null, 2)}\n`,
  );
} finally {
  await f?.lb.stop();
  c.close();
  await etcd.stop();
  await Promise.all(servers.map((s) => s.close()));
}

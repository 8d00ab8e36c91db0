// WebSocket against a real `dist/cli.js run`. The leak check (one worker): 1,000 WebSocket
// clients open a tunnel each (echo proven), then all vanish at once — half with a FIN, half
// with a RST. Afterwards the worker holds exactly the sockets it held before (counted from
// /proc/PID/fd) and the backend has no connection left (server.getConnections()). Then the
// same with a backend that never closes its side on FIN: the worker must still free its
// sockets (http-proxy alone only end()s the upstream socket, which would wait forever).
// And SIGTERM: tunnels keep flowing while draining and are cut at drain_timeout.

import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { childPids, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { waitFor } from './helpers/l4-state.ts';
import { freeTcpPort } from './helpers/net.ts';
import { connections, type WsClient, wsConnect, wsEchoServer } from './helpers/ws.ts';

const CLIENTS = 1000;
const BATCH = 100;

/** Open sockets of a process, from its file descriptor table. */
function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

test(`${CLIENTS} WebSocket clients killed abruptly leave no socket in the worker or the backend`, async (t) => {
  const be = await wsEchoServer();
  t.after(() => be.close());
  const stubborn = await wsEchoServer({ ignoreEnd: true });
  t.after(() => stubborn.close());
  const admin = await freeTcpPort();
  const port = await freeTcpPort();
  const port2 = await freeTcpPort();
  const file = writeConfig(
    tempDir(),
    `admin: { address: 127.0.0.1, port: ${admin} }
cluster: { workers: 1, drain_timeout: 1s }
load_balancers:
  - name: ws
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${port}, protocol: http, default_pool: chat }
      - { name: stubborn, port: ${port2}, protocol: http, default_pool: stubborn }
    pools:
      - { name: chat, backends: [{ address: 127.0.0.1, port: ${be.port} }] }
      - { name: stubborn, backends: [{ address: 127.0.0.1, port: ${stubborn.port} }] }
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const [worker] = await childPids(lb.pid);
  assert.ok(worker, 'one worker');

  // Warm up (the backend's agent exists afterwards), then take the baseline.
  const warm = await wsConnect(port);
  warm.send('warm');
  await warm.next();
  warm.close();
  await warm.closed;
  await waitFor(() => be.sockets.size === 0, 5000, 'warm-up tunnel closed');
  const baseline = socketCount(worker);

  const clients: WsClient[] = [];
  t.after(() => {
    for (const c of clients) c.socket.destroy();
  });
  const started = Date.now();
  for (let i = 0; i < CLIENTS; i += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: BATCH }, async (_, j) => {
        const c = await wsConnect(port, { path: `/c/${i + j}` });
        c.send(`m${i + j}`);
        assert.equal((await c.next()).toString(), `m${i + j}`);
        return c;
      }),
    );
    clients.push(...batch);
  }
  const openMs = Date.now() - started;
  assert.equal(be.sockets.size, CLIENTS);
  const peak = socketCount(worker);
  // Each tunnel is two sockets in the worker: the count really sees them.
  assert.ok(peak >= baseline + 2 * CLIENTS, `worker sockets: baseline ${baseline}, peak ${peak}`);

  // Everyone vanishes at once, without a WebSocket close: FIN for half, RST for the other half.
  clients.forEach((c, i) => {
    if (i % 2 === 0) c.socket.destroy();
    else c.socket.resetAndDestroy();
  });
  const killed = Date.now();
  await waitFor(() => socketCount(worker) <= baseline, 10_000, 'worker sockets back to the baseline');
  await waitFor(() => be.sockets.size === 0, 10_000, 'backend sockets closed');
  assert.equal(await connections(be.server), 0);
  const settleMs = Date.now() - killed;
  assert.equal(socketCount(worker), baseline);
  // The worker is the same process, still serving.
  assert.deepEqual(await childPids(lb.pid), [worker]);
  const after = await wsConnect(port);
  after.send('still here');
  assert.equal((await after.next()).toString(), 'still here');
  after.socket.destroy();
  await waitFor(() => socketCount(worker) <= baseline, 10_000, 'worker sockets back to the baseline');

  // A backend that keeps its half-open sockets: the worker's sockets still all go.
  const held: WsClient[] = [];
  for (let i = 0; i < 200; i++) {
    const c = await wsConnect(port2);
    c.send('s');
    await c.next();
    held.push(c);
  }
  clients.push(...held);
  assert.ok(socketCount(worker) >= baseline + 400);
  for (const c of held) c.socket.destroy();
  await waitFor(
    () => socketCount(worker) <= baseline,
    10_000,
    'worker sockets back despite the stubborn backend',
  );
  t.diagnostic(`opened ${CLIENTS} tunnels in ${openMs} ms; all sockets gone ${settleMs} ms after the kill`);
});

test('SIGTERM: open tunnels keep working until drain_timeout, are then cut, and FiberLB exits 0', async (t) => {
  const be = await wsEchoServer();
  t.after(() => be.close());
  const admin = await freeTcpPort();
  const port = await freeTcpPort();
  const file = writeConfig(
    tempDir(),
    `admin: { address: 127.0.0.1, port: ${admin} }
cluster: { workers: 2, drain_timeout: 1500ms }
load_balancers:
  - name: ws
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${port}, protocol: http, default_pool: chat }
    pools:
      - { name: chat, backends: [{ address: 127.0.0.1, port: ${be.port} }] }
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const clients = await Promise.all(Array.from({ length: 6 }, () => wsConnect(port)));
  t.after(() => {
    for (const c of clients) c.socket.destroy();
  });
  for (const c of clients) {
    c.send('before');
    assert.equal((await c.next()).toString(), 'before');
  }
  const t0 = Date.now();
  lb.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  // Draining: the tunnels still carry traffic.
  for (const c of clients) {
    c.send('during');
    assert.equal((await c.next()).toString(), 'during');
  }
  await Promise.all(clients.map((c) => c.closed));
  const cutAfter = Date.now() - t0;
  assert.ok(cutAfter >= 1300, `tunnels cut after ${cutAfter} ms, before the 1.5 s deadline`);
  assert.equal(await lb.exited, 0);
  await waitFor(() => be.sockets.size === 0, 3000, 'backend sockets closed');
  assert.match(lb.output(), /"error_class":"drain_deadline"/);
});

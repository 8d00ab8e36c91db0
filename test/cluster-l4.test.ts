// TCP and UDP through real cluster workers that share the listening sockets, plus a reload
// that changes the worker count.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { childPids, type RunningLb, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

function yaml(o: {
  admin: number;
  tcp: number;
  udp: number;
  tcpBackend: number;
  udpBackend: number;
  workers: number;
}) {
  return `
admin: { address: 127.0.0.1, port: ${o.admin} }
cluster: { workers: ${o.workers}, drain_timeout: 2s }
load_balancers:
  - name: l4
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: raw, port: ${o.tcp}, protocol: tcp, default_pool: echo }
      - { name: dgram, port: ${o.udp}, protocol: udp, default_pool: uecho }
    pools:
      - name: echo
        backends: [{ address: 127.0.0.1, port: ${o.tcpBackend} }]
      - name: uecho
        backends: [{ address: 127.0.0.1, port: ${o.udpBackend} }]
`;
}

describe('L4 in cluster mode', () => {
  const tcpEcho = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  const udpEcho = createSocket('udp4');
  let lb: RunningLb | undefined;
  let ports: Parameters<typeof yaml>[0];
  let dir = '';

  before(async () => {
    await new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r));
    udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
    await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r));
    ports = {
      admin: await freeTcpPort(),
      tcp: await freeTcpPort(),
      udp: await freeTcpPort(),
      tcpBackend: (tcpEcho.address() as { port: number }).port,
      udpBackend: udpEcho.address().port,
      workers: 2,
    };
    dir = tempDir();
    lb = await startLb(writeConfig(dir, yaml(ports)), ports.admin);
  });
  after(async () => {
    await lb?.stop();
    tcpEcho.close();
    udpEcho.close();
  });

  test('tcp: 20 concurrent connections each get their own bytes back', async () => {
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const s = connect(ports.tcp, '127.0.0.1');
            let got = '';
            s.on('data', (d: Buffer) => (got += d.toString()));
            s.on('end', () => resolve(got));
            s.on('error', reject);
            s.end(`conn-${i}-${'x'.repeat(1000)}`);
          }),
      ),
    );
    assert.deepEqual(
      results,
      results.map((_, i) => `conn-${i}-${'x'.repeat(1000)}`),
    );
  });

  test('udp: two clients each receive only their own replies', async () => {
    const clients = ['alpha', 'beta'].map((tag) => {
      const sock = createSocket('udp4');
      const got: string[] = [];
      sock.on('message', (m) => got.push(m.toString()));
      return { tag, sock, got };
    });
    for (const c of clients) await new Promise<void>((r) => c.sock.bind(0, '127.0.0.1', r));
    for (let i = 0; i < 20; i++)
      for (const c of clients) c.sock.send(`${c.tag}-${i}`, ports.udp, '127.0.0.1');
    const until = Date.now() + 3000;
    while (Date.now() < until && clients.some((c) => c.got.length < 20)) await sleep(20);
    for (const c of clients) {
      c.sock.close();
      assert.equal(c.got.length, 20, `${c.tag} got ${c.got.length}`);
      assert.ok(
        c.got.every((m) => m.startsWith(`${c.tag}-`)),
        `${c.tag} got another client's reply`,
      );
    }
  });

  test('a reload that changes cluster.workers grows and shrinks the worker set', async () => {
    assert.ok(lb);
    // n worker processes, all serving the latest revision.
    const count = async (n: number) => {
      const until = Date.now() + 10_000;
      let pids: number[] = [];
      while (Date.now() < until) {
        pids = await childPids(lb!.pid);
        const health = (await (await fetch(`http://127.0.0.1:${ports.admin}/healthz`)).json()) as {
          workers_ready: number;
        };
        if (pids.length === n && health.workers_ready === n) return pids;
        await sleep(50);
      }
      assert.fail(`expected ${n} workers, have ${pids.length}\n${lb!.output()}`);
    };
    writeConfig(dir, yaml({ ...ports, workers: 3 }));
    process.kill(lb.pid, 'SIGHUP');
    await count(3);
    writeConfig(dir, yaml({ ...ports, workers: 1 }));
    process.kill(lb.pid, 'SIGHUP');
    await count(1);
  });
});

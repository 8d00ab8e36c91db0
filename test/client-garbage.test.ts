// "A client's bytes never crash a worker": random and hostile byte streams against real
// cluster workers (http with and without PROXY accept, tcp with PROXY accept). Afterwards the
// same worker processes must still be there and serving.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  childPids,
  getText,
  nameServer,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

/** Write `payload` (in random-sized slices), then close; resolve when the socket is gone. */
function throwBytes(port: number, payload: Buffer, half: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = () => resolve();
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => {});
    s.setTimeout(2000, () => s.destroy());
    s.on('connect', () => {
      let off = 0;
      while (off < payload.length) {
        const n = 1 + Math.floor(Math.random() * 64);
        s.write(payload.subarray(off, off + n));
        off += n;
      }
      if (half) s.end();
      else setTimeout(() => s.destroy(), 20);
    });
  });
}

const HOSTILE = [
  'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
  `GET /${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET / HTTP/9.9\r\n\r\n',
  'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
  'PROXY TCP4 999.1.1.1 1.1.1.1 70000 1\r\n',
  `PROXY ${'x'.repeat(200)}\r\n`,
  '\r\n\x0d\x0a\x0d\x0aPROXY UNKNOWN\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nX: \x00\x01\x02\r\n\r\n',
];

describe('client bytes never crash a worker', () => {
  let lb: RunningLb | undefined;
  let backend: Awaited<ReturnType<typeof nameServer>> | undefined;
  const ports = { admin: 0, http: 0, httpProxy: 0, tcpProxy: 0 };

  before(async () => {
    backend = await nameServer('ok');
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freeTcpPort();
    const file = writeConfig(
      tempDir(),
      `
admin: { address: 127.0.0.1, port: ${ports.admin} }
cluster: { workers: 2, drain_timeout: 2s }
load_balancers:
  - name: g
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: h, port: ${ports.http}, protocol: http, default_pool: web, timeouts: { client_header: 1s } }
      - name: hp
        port: ${ports.httpProxy}
        protocol: http
        default_pool: web
        trusted_proxies: [127.0.0.1]
        proxy_protocol: { accept: true }
        timeouts: { client_header: 1s }
      - name: tp
        port: ${ports.tcpProxy}
        protocol: tcp
        default_pool: web
        trusted_proxies: [127.0.0.1]
        proxy_protocol: { accept: true }
        timeouts: { client_header: 1s }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${backend.port} }]
`,
    );
    lb = await startLb(file, ports.admin);
  });
  after(async () => {
    await lb?.stop();
    await backend?.close();
  });

  test('400 random and hostile payloads leave the same workers serving', async () => {
    assert.ok(lb);
    const before = (await childPids(lb.pid)).sort();
    assert.equal(before.length, 2);
    const targets = [ports.http, ports.httpProxy, ports.tcpProxy];
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 400; i++) {
      const port = targets[i % targets.length]!;
      const payload =
        i % 3 === 0
          ? Buffer.from(HOSTILE[i % HOSTILE.length]!, 'latin1')
          : i % 3 === 1
            ? Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), randomBytes(1 + (i % 300))])
            : randomBytes(1 + ((i * 37) % 2000));
      jobs.push(throwBytes(port, payload, i % 2 === 0));
      if (jobs.length >= 40) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    await sleep(300);
    assert.deepEqual((await childPids(lb.pid)).sort(), before, 'a worker died');
    assert.doesNotMatch(lb.output(), /worker_crash|uncaught|internal_error/i);
    // The bytes were really parsed and refused, each with its class.
    assert.match(lb.output(), /"error_class":"client_bad_request"/);
    assert.match(lb.output(), /"error_class":"proxy_protocol_invalid"/);
    for (let i = 0; i < 4; i++) assert.equal((await getText(`http://127.0.0.1:${ports.http}/`)).body, 'ok');
  });
});

// The real `fiberlb run` (primary + 2 workers) in front of a gRPC-style HTTP/2 + TLS backend:
// the primary reads the CA file into the snapshot, workers verify the backend with it, send
// the configured SNI, and relay trailers to an HTTP/1.1 client; replacing the CA file and
// reloading takes effect; `verify: false` is a warning at load. A second test speaks HTTP/2
// from the client once https listeners are served.

import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { grpcReply, startTlsBackend } from './helpers/tls-backends.ts';
import { upstreamCerts } from './helpers/upstream-certs.ts';

function grpcCall(port: number): Promise<{ status: number; body: Buffer; trailers: NodeJS.Dict<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/iam.v1.Users/Get',
        headers: { 'content-type': 'application/grpc', te: 'trailers' },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), trailers: res.trailers }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

describe('cluster: TLS + HTTP/2 to a gRPC-style backend', () => {
  it('verifies with the CA file the primary read, sends SNI, relays trailers; a replaced CA file applies on reload', async (t) => {
    const c = upstreamCerts(t);
    const dir = tempDir();
    copyFileSync(c.ca.certFile, join(dir, 'backend-ca.crt'));
    const b = await startTlsBackend(t, { kind: 'h2', cert: c.server }, grpcReply(0, 'OK', Buffer.from('hi')));
    const [adminPort, apiPort, insecurePort] = [
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
    ];
    const file = writeConfig(
      dir,
      `
admin: { address: 127.0.0.1, port: ${adminPort} }
cluster: { workers: 2, drain_timeout: 2s }
load_balancers:
  - name: test
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${apiPort}, protocol: http, default_pool: grpc }
      - { name: insecure, port: ${insecurePort}, protocol: http, default_pool: lax }
    pools:
      - name: grpc
        tls: { ca: backend-ca.crt, servername: backend.test }
        http2: true
        backends:
          - { address: 127.0.0.1, port: ${b.port} }
      - name: lax
        tls: { verify: false }
        backends:
          - { address: 127.0.0.1, port: ${b.port} }
`,
    );
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    assert.match(lb.output(), /backend certificates not verified.*pools\[1\]\.tls\.verify: false/);

    for (let i = 0; i < 6; i++) {
      const r = await grpcCall(apiPort);
      assert.equal(r.status, 200);
      assert.equal(r.trailers['grpc-status'], '0');
      assert.equal(r.trailers['grpc-message'], 'OK');
      assert.equal(r.body.subarray(5).toString(), 'hi');
    }
    assert.ok(b.seen.every((s) => s.httpVersion === '2.0' && s.servername === 'backend.test'));
    assert.ok(b.seen.every((s) => s.headers.te === 'trailers'));
    // Each worker keeps its own connection: at most one per worker for sequential calls.
    assert.ok(b.connections() <= 2, `${b.connections()} backend connections`);

    // Replace the CA file with one that did not sign the backend, then reload.
    copyFileSync(c.otherCa.certFile, join(dir, 'backend-ca.crt'));
    process.kill(lb.pid, 'SIGHUP');
    const until = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < until) {
      status = (await grpcCall(apiPort)).status;
      if (status === 200) await sleep(100);
    }
    assert.equal(status, 502, 'the new CA is in force after the reload');
    assert.match(lb.output(), /"error_class":"upstream_tls"/);
    assert.match(lb.output(), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  // An h2 client over an https listener, end to end to an HTTP/2 backend (gRPC-style).
  it('an HTTP/2 client over an https listener gets gRPC trailers from the HTTP/2 backend', async (t) => {
    const c = upstreamCerts(t);
    const dir = tempDir();
    const b = await startTlsBackend(
      t,
      { kind: 'h2', cert: c.server },
      grpcReply(13, 'boom', Buffer.alloc(0)),
    );
    const [adminPort, port] = [await freeTcpPort(), await freeTcpPort()];
    const file = writeConfig(
      dir,
      `
admin: { address: 127.0.0.1, port: ${adminPort} }
cluster: { workers: 1 }
load_balancers:
  - name: test
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: ${port}
        protocol: https
        default_pool: grpc
        tls:
          certificates:
            - { cert: ${c.server.certFile}, key: ${c.server.keyFile} }
    pools:
      - name: grpc
        tls: { ca: ${c.ca.certFile} }
        http2: true
        backends:
          - { address: 127.0.0.1, port: ${b.port} }
`,
    );
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: c.ca.cert });
    t.after(() => session.close());
    const got = await new Promise<{ status: number; trailers: http2.IncomingHttpHeaders }>(
      (resolve, reject) => {
        const s = session.request({
          ':method': 'POST',
          ':path': '/iam.v1.Users/Get',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('trailers', (tr) => resolve({ status, trailers: tr }));
        s.on('error', reject);
        s.on('end', () => reject(new Error('stream ended without trailers')));
        s.resume();
        s.end(Buffer.from([0, 0, 0, 0, 0]));
      },
    );
    assert.equal(got.status, 200);
    assert.equal(got.trailers['grpc-status'], '13');
    assert.equal(got.trailers['grpc-message'], 'boom');
    assert.equal(b.seen[0]?.headers.te, 'trailers');
  });
});

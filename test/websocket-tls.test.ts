// WebSocket tunnels to backends of a pool with `tls` (wss): an in-process http listener in front
// of a real node:https WebSocket echo server (test/helpers/ws.ts) with openssl-made
// certificates. The tunnel uses the pool's TLS material like its HTTP requests: CA, verify,
// SNI, client certificate, min_version.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import type { PoolConfig, UpstreamTlsConfig } from '../src/config/model.ts';
import type { HttpListener } from '../src/worker/http/listener.ts';
import { captureLog } from './helpers/capture-log.ts';
import { parseHead, raw } from './helpers/http-client.ts';
import { backend, poolConfig, startHttpListener } from './helpers/http-fixtures.ts';
import { waitFor } from './helpers/l4-state.ts';
import { startTlsBackend } from './helpers/tls-backends.ts';
import { upstreamCerts } from './helpers/upstream-certs.ts';
import { type WsServerOptions, wsConnect, wsEchoServer } from './helpers/ws.ts';

function tlsOf(o: Partial<UpstreamTlsConfig> = {}): UpstreamTlsConfig {
  return {
    ca: undefined,
    verify: true,
    servername: undefined,
    cert: undefined,
    key: undefined,
    minVersion: 'TLSv1.2',
    ...o,
  };
}

async function wssServer(t: TestContext, o: WsServerOptions) {
  const s = await wsEchoServer(o);
  t.after(() => s.close());
  return s;
}

async function lb(t: TestContext, port: number, tls: UpstreamTlsConfig, o: Partial<PoolConfig> = {}) {
  const pools = [{ ...poolConfig('web', [backend(port)]), tls, ...o }];
  const p = await startHttpListener(t, {}, pools);
  return { ...p, listener: p.handle as HttpListener };
}

const UPGRADE =
  'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

test('echo over wss: the backend sees the configured SNI and our client certificate', async (t) => {
  const c = upstreamCerts(t);
  const be = await wssServer(t, {
    tls: {
      cert: c.server.cert,
      key: c.server.key,
      requestCert: true,
      rejectUnauthorized: true,
      ca: c.ca.cert,
    },
  });
  const p = await lb(
    t,
    be.port,
    tlsOf({ ca: c.ca.cert, servername: 'backend.test', cert: c.client.cert, key: c.client.key }),
  );
  const ws = await wsConnect(p.port, { path: '/chat', host: 'chat.example' });
  t.after(() => ws.socket.destroy());
  ws.send('hello over tls');
  assert.equal((await ws.next()).toString(), 'hello over tls');
  const bin = randomBytes(200_000);
  ws.send(bin);
  assert.ok((await ws.next()).equals(bin));

  assert.equal(be.requests.length, 1);
  const req = be.requests[0]!;
  const sock = req.socket as TLSSocket;
  assert.equal(sock.encrypted, true, 'the tunnel to the backend is TLS');
  assert.equal(sock.servername, 'backend.test', 'SNI is the configured servername, not the Host');
  assert.equal(sock.getPeerCertificate().subject?.CN, 'fiberlb-client');
  assert.equal(sock.alpnProtocol, 'http/1.1', 'ALPN offers http/1.1 only');
  assert.equal(req.headers.host, 'chat.example', 'the Host header is the client’s');
  ws.close();
  await ws.closed;
  await waitFor(() => p.listener.tunnels.active() === 0 && be.sockets.size === 0, 3000, 'tunnel to close');
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('an IP backend without servername: no SNI, the certificate verified against the IP', async (t) => {
  const c = upstreamCerts(t);
  const be = await wssServer(t, { tls: { cert: c.server.cert, key: c.server.key } });
  const p = await lb(t, be.port, tlsOf({ ca: c.ca.cert }));
  const ws = await wsConnect(p.port);
  t.after(() => ws.socket.destroy());
  ws.send('x');
  assert.equal((await ws.next()).toString(), 'x');
  assert.equal((be.requests[0]!.socket as TLSSocket).servername, false);
});

test('an untrusted backend certificate → 502 upstream_tls at once, nothing reaches the backend', async (t) => {
  const c = upstreamCerts(t);
  const be = await wssServer(t, { tls: { cert: c.untrustedServer.cert, key: c.untrustedServer.key } });
  // upstream_response is long: an answer well before it is the TLS failure, not a timeout.
  const p = await startHttpListener(t, { timeouts: { upstreamResponseMs: 30_000 } }, [
    { ...poolConfig('web', [backend(be.port)]), tls: tlsOf({ ca: c.ca.cert }) },
  ]);
  const log = captureLog(t);
  const started = Date.now();
  const r = await raw(p.port, UPGRADE);
  assert.ok(Date.now() - started < 10_000, 'answered, not left hanging');
  assert.equal(parseHead(r.text).status, 502);
  assert.match(r.text, /upstream failed/);
  assert.equal(r.closed, true);
  assert.equal(be.requests.length, 0, 'no upgrade request reached the backend');
  assert.deepEqual(p.env.failures.toJSON(), { upstream_tls: 1 });
  const [line] = log.of('upstream_tls');
  assert.match(String(line?.error), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
  assert.equal(line?.backend_address, `127.0.0.1:${be.port}`);
  await waitFor(() => (p.handle as HttpListener).tunnels.active() === 0, 3000, 'tunnel to be dropped');
});

test('verify: false reaches the untrusted backend; min_version TLSv1.3 refuses a TLS 1.2-only one', async (t) => {
  const c = upstreamCerts(t);
  const be = await wssServer(t, { tls: { cert: c.untrustedServer.cert, key: c.untrustedServer.key } });
  const p = await lb(t, be.port, tlsOf({ verify: false }));
  const ws = await wsConnect(p.port);
  t.after(() => ws.socket.destroy());
  ws.send('unverified');
  assert.equal((await ws.next()).toString(), 'unverified');

  const old = await wssServer(t, { tls: { cert: c.server.cert, key: c.server.key, maxVersion: 'TLSv1.2' } });
  const p2 = await lb(t, old.port, tlsOf({ ca: c.ca.cert, minVersion: 'TLSv1.3' }));
  const log = captureLog(t);
  const r = await raw(p2.port, UPGRADE);
  assert.equal(parseHead(r.text).status, 502);
  assert.equal(old.requests.length, 0);
  assert.equal(p2.env.failures.toJSON().upstream_tls, 1);
  assert.match(String(log.of('upstream_tls')[0]?.error), /version/i);
});

test('an h2-only backend of an http2 pool refuses the h1 upgrade in the handshake → 502 upstream_tls', async (t) => {
  const c = upstreamCerts(t);
  const be = await startTlsBackend(t, { kind: 'h2', cert: c.server }, (_req, res) => res.end('h2'));
  const p = await lb(t, be.port, tlsOf({ ca: c.ca.cert }), { http2: true });
  const log = captureLog(t);
  const r = await raw(p.port, UPGRADE);
  assert.equal(parseHead(r.text).status, 502);
  assert.equal(be.seen.length, 0);
  assert.equal(p.env.failures.toJSON().upstream_tls, 1);
  assert.match(String(log.of('upstream_tls')[0]?.error), /NO_APPLICATION_PROTOCOL|no application protocol/i);
});

test('a wss backend that requires a client certificate the pool lacks → 502 upstream_tls', async (t) => {
  const c = upstreamCerts(t);
  const be = await wssServer(t, {
    tls: {
      cert: c.server.cert,
      key: c.server.key,
      requestCert: true,
      rejectUnauthorized: true,
      ca: c.ca.cert,
    },
  });
  const p = await lb(t, be.port, tlsOf({ ca: c.ca.cert }));
  const log = captureLog(t);
  const r = await raw(p.port, UPGRADE);
  assert.equal(parseHead(r.text).status, 502);
  assert.equal(be.requests.length, 0);
  assert.deepEqual(p.env.failures.toJSON(), { upstream_tls: 1 });
  assert.match(String(log.of('upstream_tls')[0]?.error), /CERTIFICATE_REQUIRED|certificate required/i);
});

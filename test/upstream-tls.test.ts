// TLS and HTTP/2 to backends, end to end on 127.0.0.1: an http listener in process in front of
// real node:https / node:http2 backends with openssl-made certificates. Verification is on by
// default, a custom CA, SNI, a client certificate, h2 over ALPN and h2c, gRPC-style trailers
// and `te: trailers`, and connection reuse.

import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import type { PoolConfig, UpstreamTlsConfig } from '../src/config/model.ts';
import { classifyUpstreamError } from '../src/shared/errors.ts';
import { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';
import { UpstreamPools, upstreamKey } from '../src/worker/upstream/http-pools.ts';
import { transportKey, stats as transportStats } from '../src/worker/upstream/transport.ts';
import { captureLog } from './helpers/capture-log.ts';
import { raw } from './helpers/http-client.ts';
import { backend, poolConfig, startBackend, startHttpListener } from './helpers/http-fixtures.ts';
import { grpcReply, startTlsBackend } from './helpers/tls-backends.ts';
import { upstreamCerts } from './helpers/upstream-certs.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  trailers: NodeJS.Dict<string>;
}

/** One request through the proxy, on its own connection; trailers collected. */
function call(
  port: number,
  o: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: o.method ?? 'GET',
        path: o.path ?? '/',
        headers: o.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            trailers: res.trailers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

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

function pool(
  port: number,
  o: { tls?: UpstreamTlsConfig; http2?: boolean; address?: string } = {},
): PoolConfig[] {
  const b = backend(port, undefined, o.address);
  return [{ ...poolConfig('web', [b]), tls: o.tls, http2: o.http2 ?? false }];
}

const ok = (_req: unknown, res: http.ServerResponse) => res.end('secure hello');

describe('TLS to backends (pool tls)', () => {
  it('verifies by default: a backend certificate from a CA Node does not trust → 502 upstream_tls', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, ok as never);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf() }));
    const log = captureLog(t);
    const r = await call(p.port);
    assert.equal(r.status, 502);
    assert.match(r.body.toString(), /upstream_tls/);
    assert.equal(b.seen.length, 0, 'no request reached the backend');
    assert.equal(p.env.failures.toJSON().upstream_tls, 1);
    const [line] = log.of('upstream_tls');
    assert.ok(line, 'a failure line was logged');
    assert.equal(line.backend, `lb1/web/127.0.0.1:${b.port}`);
    assert.equal(line.backend_address, `127.0.0.1:${b.port}`);
    assert.match(String(line.error), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('a custom CA is trusted; a backend from another CA is refused with the reason', async (t) => {
    const c = upstreamCerts(t);
    const good = await startTlsBackend(t, { kind: 'h1', cert: c.server }, ok as never);
    const bad = await startTlsBackend(t, { kind: 'h1', cert: c.untrustedServer }, ok as never);
    const p1 = await startHttpListener(t, {}, pool(good.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    const r1 = await call(p1.port);
    assert.equal(r1.status, 200);
    assert.equal(r1.body.toString(), 'secure hello');
    assert.equal(good.seen[0]?.httpVersion, '1.1');

    const log = captureLog(t);
    const p2 = await startHttpListener(t, {}, pool(bad.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    const r2 = await call(p2.port);
    assert.equal(r2.status, 502);
    assert.equal(bad.seen.length, 0);
    assert.match(
      String(log.of('upstream_tls')[0]?.error),
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/,
    );
  });

  it('tls to a plain HTTP backend → 502 upstream_tls (wrong version number), never a plain-text request', async (t) => {
    const b = await startBackend((_req, res) => res.end('plain'));
    t.after(() => b.close());
    let requests = 0;
    b.server.on('request', () => requests++);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf() }));
    const log = captureLog(t);
    assert.equal((await call(p.port)).status, 502);
    assert.equal(requests, 0);
    assert.match(String(log.of('upstream_tls')[0]?.error), /ERR_SSL_WRONG_VERSION_NUMBER/);
  });

  it('classifies TLS errors by code; a plain EPROTO stays generic', () => {
    for (const code of [
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'CERT_HAS_EXPIRED',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'ERR_SSL_WRONG_VERSION_NUMBER',
      'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    ])
      assert.equal(classifyUpstreamError({ code, message: 'x' }), 'upstream_tls', code);
    const alert = { code: 'EPROTO', message: 'write EPROTO 0A000410:SSL routines:ssl3_read_bytes:alert' };
    assert.equal(classifyUpstreamError(alert), 'upstream_tls');
    assert.equal(classifyUpstreamError({ code: 'EPROTO', message: 'read EPROTO' }), 'upstream_error');
    assert.equal(classifyUpstreamError({ code: 'ECONNRESET' }), 'upstream_reset');
  });

  it('verify: false accepts an untrusted certificate', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.untrustedServer }, ok as never);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ verify: false }) }));
    assert.equal((await call(p.port)).status, 200);
  });

  it('a name that is not in the certificate → 502 upstream_tls naming the mismatch', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, ok as never);
    const p = await startHttpListener(
      t,
      {},
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert, servername: 'other.test' }) }),
    );
    const log = captureLog(t);
    assert.equal((await call(p.port)).status, 502);
    assert.match(String(log.of('upstream_tls')[0]?.error), /ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it('SNI: the configured servername for every Host, none for an IP backend, the name of a named backend', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, ok as never);
    const named = await startHttpListener(
      t,
      {},
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert, servername: 'backend.test' }) }),
    );
    // Two different client Host headers: undici would take SNI from each and reconnect.
    for (const host of ['a.example', 'b.example'])
      assert.equal((await call(named.port, { headers: { host } })).status, 200);
    assert.deepEqual(
      b.seen.map((s) => s.servername),
      ['backend.test', 'backend.test'],
    );
    assert.equal(b.connections(), 1, 'one backend connection serves both Hosts');
    assert.equal(b.seen[1]?.headers.host, 'b.example', 'the client Host is forwarded unchanged');

    const ip = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    assert.equal((await call(ip.port, { headers: { host: 'a.example' } })).status, 200);
    assert.equal(b.seen[2]?.servername, false, 'no SNI to an IP backend (RFC 6066)');

    const byName = await startHttpListener(
      t,
      {},
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), address: 'localhost' }),
    );
    assert.equal((await call(byName.port, { headers: { host: 'a.example' } })).status, 200);
    assert.equal(b.seen[3]?.servername, 'localhost');
  });

  it('presents the client certificate to a backend that requires one', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server, clientCa: c.ca.cert }, ok as never);
    const p = await startHttpListener(
      t,
      {},
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert, cert: c.client.cert, key: c.client.key }) }),
    );
    assert.equal((await call(p.port)).status, 200);
    assert.equal(b.seen[0]?.clientCn, 'fiberlb-client');

    // Without one the backend refuses the handshake: a TLS failure, not a generic one. Under
    // TLS 1.3 (the default here) the refusal is an alert after the client finished, in answer
    // to the request; it must not turn into "other side closed" (upstream_reset).
    const log = captureLog(t);
    const bare = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    for (let i = 0; i < 3; i++) {
      const r = await call(bare.port);
      assert.equal(r.status, 502);
      assert.match(r.body.toString(), /upstream_tls/);
    }
    assert.equal(b.seen.length, 1, 'the refused requests never reached the backend application');
    assert.deepEqual(
      bare.env.failures.toJSON(),
      { upstream_tls: 3 },
      JSON.stringify(log.lines.map((l) => [l.error_class, l.error])),
    );
    assert.match(String(log.of('upstream_tls')[0]?.error), /CERTIFICATE_REQUIRED|certificate required/i);
  });

  it('min_version TLSv1.3 refuses a TLS 1.2-only backend; the default accepts it', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server, maxVersion: 'TLSv1.2' }, ok as never);
    const strict = await startHttpListener(
      t,
      {},
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert, minVersion: 'TLSv1.3' }) }),
    );
    const log = captureLog(t);
    assert.equal((await call(strict.port)).status, 502);
    assert.match(String(log.of('upstream_tls')[0]?.error), /PROTOCOL_VERSION|protocol version/i);
    const lax = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    assert.equal((await call(lax.port)).status, 200);
    assert.equal(b.seen.length, 1);
  });

  it('reuses backend connections: 20 requests, one TLS handshake', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, ok as never);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    const before = transportStats();
    for (let i = 0; i < 20; i++) assert.equal((await call(p.port)).status, 200);
    assert.equal(b.seen.length, 20);
    assert.equal(b.connections(), 1);
    assert.equal(transportStats().tlsConnections - before.tlsConnections, 1);
  });

  it('resumes TLS sessions on new backend connections', async (t) => {
    const c = upstreamCerts(t);
    // The backend closes after every response, so each request needs a new connection.
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, (_req, res) => {
      (res as http.ServerResponse).setHeader('connection', 'close');
      res.end('bye');
    });
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    const before = transportStats();
    for (let i = 0; i < 4; i++) assert.equal((await call(p.port)).status, 200);
    const after = transportStats();
    assert.equal(b.connections(), 4);
    assert.equal(after.tlsConnections - before.tlsConnections, 4);
    assert.ok(
      after.tlsResumed - before.tlsResumed >= 3,
      `resumed ${after.tlsResumed - before.tlsResumed} of 4`,
    );
  });
});

describe('HTTP/2 to backends (pool http2) and gRPC-style trailers', () => {
  const payload = Buffer.from('\x0a\x05hello');

  it('h2 over TLS (ALPN): the backend sees HTTP/2, trailers and te: trailers arrive intact', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h2', cert: c.server }, grpcReply(0, 'OK', payload));
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), http2: true }));
    const body = Buffer.from([0, 0, 0, 0, 2, 8, 1]);
    const r = await call(p.port, {
      method: 'POST',
      path: '/pkg.Service/Method',
      headers: { 'content-type': 'application/grpc', te: 'trailers', 'content-length': body.length },
      body,
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/grpc');
    assert.equal(r.headers['transfer-encoding'], 'chunked', 'trailers need a chunked h1 response');
    assert.deepEqual(r.body.subarray(5), payload);
    assert.equal(r.body.readUInt32BE(1), payload.length);
    assert.equal(r.trailers['grpc-status'], '0');
    assert.equal(r.trailers['grpc-message'], 'OK');
    const seen = b.seen[0]!;
    assert.equal(seen.httpVersion, '2.0');
    assert.equal(seen.headers.te, 'trailers');
    assert.equal(seen.headers[':path'], '/pkg.Service/Method');
    assert.equal(seen.headers[':authority'], `127.0.0.1:${p.port}`);
  });

  it('an error status in the trailers (grpc-status 13) reaches the client unchanged', async (t) => {
    const c = upstreamCerts(t);
    const msg = 'internal: db%20down';
    const b = await startTlsBackend(t, { kind: 'h2', cert: c.server }, grpcReply(13, msg, Buffer.alloc(0)));
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), http2: true }));
    const r = await call(p.port, {
      method: 'POST',
      headers: { te: 'trailers', 'content-type': 'application/grpc' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.trailers['grpc-status'], '13');
    assert.equal(r.trailers['grpc-message'], msg);
    assert.equal(p.env.failures.toJSON().upstream_error, undefined, 'a gRPC error is not a proxy failure');
  });

  it('h1 TLS backends relay their chunked trailers too', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h1', cert: c.server }, grpcReply(0, 'fine', payload));
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    const r = await call(p.port, { method: 'POST', headers: { te: 'trailers' } });
    assert.equal(b.seen[0]?.httpVersion, '1.1');
    assert.equal(b.seen[0]?.headers.te, 'trailers');
    assert.equal(r.trailers['grpc-status'], '0');
    assert.equal(r.trailers['grpc-message'], 'fine');
  });

  it('http2 with an HTTP/1.1-capable backend: ALPN picks h2; many requests share one connection', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h2+h1', cert: c.server }, ok as never);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), http2: true }));
    const h2Before = transportStats().h2Connections;
    for (let i = 0; i < 20; i++) assert.equal((await call(p.port)).body.toString(), 'secure hello');
    assert.ok(b.seen.every((s) => s.httpVersion === '2.0'));
    assert.equal(b.connections(), 1);
    assert.equal(transportStats().h2Connections - h2Before, 1);
  });

  it('without http2 the same backend is spoken to in HTTP/1.1', async (t) => {
    const c = upstreamCerts(t);
    const b = await startTlsBackend(t, { kind: 'h2+h1', cert: c.server }, ok as never);
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }) }));
    assert.equal((await call(p.port)).status, 200);
    assert.equal(b.seen[0]?.httpVersion, '1.1');
  });

  it('h2c: http2 without tls speaks HTTP/2 with prior knowledge over plain TCP', async (t) => {
    const b = await startTlsBackend(t, { kind: 'h2c' }, grpcReply(0, 'plain', payload));
    const p = await startHttpListener(t, {}, pool(b.port, { http2: true }));
    for (let i = 0; i < 5; i++) {
      const r = await call(p.port, { method: 'POST', headers: { te: 'trailers' } });
      assert.equal(r.trailers['grpc-status'], '0');
    }
    assert.ok(b.seen.every((s) => s.httpVersion === '2.0'));
    assert.equal(b.connections(), 1);
  });

  it('client headers HTTP/2 forbids or repeats in two spellings are cleaned, never thrown at the worker', async (t) => {
    const b = await startTlsBackend(t, { kind: 'h2c' }, (req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify(req.headers)));
    });
    const p = await startHttpListener(t, {}, pool(b.port, { http2: true }));
    const log = captureLog(t);
    // Node's HTTP/2 client throws on these from a socket callback (an uncaught exception that
    // would end this test process) unless they are removed or merged first.
    const heads = [
      'HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n',
      'Content-Type: a\r\ncontent-type: b\r\n',
      'User-Agent: x\r\nuser-agent: y\r\n',
    ];
    for (const h of heads) {
      const r = await raw(p.port, `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${h}\r\n`);
      assert.match(r.text, /^HTTP\/1\.1 200 /, h);
    }
    assert.equal(b.seen[0]?.headers['http2-settings'], undefined);
    assert.equal(b.seen[1]?.headers['content-type'], 'a, b');
    assert.equal(b.seen.length, 3);
    assert.deepEqual(log.lines, []);
  });

  it('a GET with a body to an HTTP/2 backend → 501 unsupported_request (undici cannot send it)', async (t) => {
    const b = await startTlsBackend(t, { kind: 'h2c' }, ok as never);
    const p = await startHttpListener(
      t,
      { limits: { bufferBodyBytes: 1024 } },
      pool(b.port, { http2: true }),
    );
    const log = captureLog(t);
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    assert.match(r.text, /^HTTP\/1\.1 501 /);
    assert.equal(b.seen.length, 0);
    assert.equal(log.of('unsupported_request').length, 1);
    // Without a body it is an ordinary request.
    assert.equal((await call(p.port)).status, 200);
  });

  it('a client that leaves mid-response resets its HTTP/2 stream; the connection serves on', async (t) => {
    const c = upstreamCerts(t);
    let closed: () => void = () => {};
    const streamClosed = new Promise<void>((r) => (closed = r));
    const b = await startTlsBackend(t, { kind: 'h2', cert: c.server }, (req, res) => {
      if (req.url !== '/stream') {
        res.end('next');
        return;
      }
      res.writeHead(200);
      const tick = setInterval(() => (res as http.ServerResponse).write('tick\n'), 20);
      res.on('close', () => {
        clearInterval(tick);
        closed();
      });
    });
    const p = await startHttpListener(t, {}, pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), http2: true }));
    const log = captureLog(t);
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: p.port, path: '/stream', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      setTimeout(() => reject(new Error('no first chunk')), 5000).unref();
    });
    await streamClosed;
    assert.equal((await call(p.port)).body.toString(), 'next');
    assert.equal(b.connections(), 1, 'the session outlived the reset stream');
    assert.equal(log.of('client_abort').length, 1);
  });

  it('streams a large request body up and a large response down over h2', async (t) => {
    const c = upstreamCerts(t);
    const size = 3 * 1024 * 1024;
    const b = await startTlsBackend(t, { kind: 'h2', cert: c.server }, (req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => {
        res.writeHead(200);
        res.end(Buffer.alloc(n, 7));
      });
    });
    const p = await startHttpListener(
      t,
      { limits: { maxBodyBytes: 0 } },
      pool(b.port, { tls: tlsOf({ ca: c.ca.cert }), http2: true }),
    );
    const r = await call(p.port, {
      method: 'POST',
      body: Buffer.alloc(size, 1),
      headers: { 'content-length': size },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, size);
  });
});

describe('upstream pools per transport', () => {
  it('a pool that turns tls on gets its own upstream; retain() closes the plain one', async () => {
    const plain = pool(9, {})[0]!;
    const secure = pool(9, { tls: tlsOf() })[0]!;
    const ups = new UpstreamPools();
    const target = new PoolRuntime('lb1', plain, new Set()).targets[0]!;
    const a = ups.get(target, 1000, plain);
    assert.equal(ups.get(target, 1000, plain), a, 'cached per target');
    const b = ups.get(target, 1000, secure);
    assert.notEqual(b, a);
    assert.equal(ups.get(target, 1000, { ...secure }), b, 'equal settings share one upstream');
    assert.equal(ups.size(), 2);
    ups.retain([upstreamKey('127.0.0.1', 9, transportKey(secure))]);
    assert.equal(ups.size(), 1);
    assert.equal(ups.get(target, 1000, secure), b);
    await ups.close();
  });
});

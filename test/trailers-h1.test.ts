// Trailers from an HTTP/2 backend that also sends Content-Length, to HTTP/1.x clients
// (src/worker/http/trailers.ts): an HTTP/1.1 client with `te: trailers` (gRPC over h1) gets
// a chunked response with the trailers; without `te: trailers`, or over HTTP/1.0, the
// Content-Length is kept and the trailers are dropped and counted. Real node:http2 backend,
// in-process http listener, node:http and raw-socket clients.

import assert from 'node:assert/strict';
import http from 'node:http';
import { type TestContext, test } from 'node:test';
import { stats } from '../src/worker/http/trailers.ts';
import { raw } from './helpers/http-client.ts';
import { backend, poolConfig, startHttpListener } from './helpers/http-fixtures.ts';
import { startTlsBackend } from './helpers/tls-backends.ts';

const MESSAGE = Buffer.from([0, 0, 0, 0, 2, 104, 105]); // one gRPC frame: "hi"

/** An h2c backend answering with Content-Length and grpc-status / grpc-message trailers. */
async function setup(t: TestContext) {
  const b = await startTlsBackend(t, { kind: 'h2c' }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/grpc', 'content-length': String(MESSAGE.length) });
      res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' });
      res.end(MESSAGE);
    });
  });
  const p = await startHttpListener(t, { limits: { bufferBodyBytes: 64 * 1024 } }, [
    { ...poolConfig('web', [backend(b.port)]), http2: true },
  ]);
  return { b, p };
}

function grpcCall(port: number, headers: http.OutgoingHttpHeaders, method = 'POST') {
  return new Promise<{
    headers: http.IncomingHttpHeaders;
    body: Buffer;
    trailers: NodeJS.Dict<string>;
  }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: '/svc/Get', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }),
        );
      },
    );
    req.on('error', reject);
    req.end(method === 'HEAD' ? undefined : MESSAGE);
  });
}

test('HTTP/1.1 with te: trailers: re-framed as chunked, the trailers arrive', async (t) => {
  const { b, p } = await setup(t);
  const before = stats();
  const r = await grpcCall(p.port, { 'content-type': 'application/grpc', te: 'trailers' });
  assert.equal(b.seen[0]?.httpVersion, '2.0');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['content-length'], undefined);
  assert.ok(r.body.equals(MESSAGE));
  assert.deepEqual(r.trailers, { 'grpc-status': '0', 'grpc-message': 'OK' });
  assert.equal(stats().rechunked - before.rechunked, 1);
  assert.equal(stats().dropped, before.dropped);
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('HTTP/1.1 without te: trailers: Content-Length kept, trailers dropped and counted', async (t) => {
  const { p } = await setup(t);
  const before = stats();
  const r = await grpcCall(p.port, { 'content-type': 'application/grpc' });
  assert.equal(r.headers['content-length'], String(MESSAGE.length));
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.ok(r.body.equals(MESSAGE));
  assert.deepEqual(r.trailers, {});
  assert.equal(stats().dropped - before.dropped, 1);
  assert.equal(stats().rechunked, before.rechunked);
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('HTTP/1.0 with te: trailers cannot take chunked: Content-Length kept, trailers counted as dropped', async (t) => {
  const { p } = await setup(t);
  const before = stats();
  const r = await raw(
    p.port,
    Buffer.concat([
      Buffer.from(
        `POST /svc/Get HTTP/1.0\r\nHost: x\r\nTE: trailers\r\nConnection: TE\r\ncontent-length: ${MESSAGE.length}\r\n\r\n`,
      ),
      MESSAGE,
    ]),
  );
  assert.match(r.text, /^HTTP\/1\.1 200 /);
  assert.match(r.text, new RegExp(`\r\ncontent-length: ${MESSAGE.length}\r\n`, 'i'));
  assert.doesNotMatch(r.text, /transfer-encoding|grpc-status/i);
  assert.equal(stats().dropped - before.dropped, 1);
  assert.equal(stats().rechunked, before.rechunked);
});

test('HEAD keeps its Content-Length even with te: trailers', async (t) => {
  const { p } = await setup(t);
  const before = stats();
  const r = await grpcCall(p.port, { te: 'trailers' }, 'HEAD');
  assert.equal(r.headers['content-length'], String(MESSAGE.length));
  assert.equal(stats().rechunked, before.rechunked);
});

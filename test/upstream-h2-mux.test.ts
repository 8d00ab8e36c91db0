// HTTP/2 multiplexing to backends (upstream/h2-mux.ts): an in-process http listener in front of
// real node:http2 / node:https backends that count their connections and the requests in
// flight on each. Concurrent requests share few connections; a streaming upload and a client
// that stops reading do not hold the other streams back; the peer's concurrent-stream limit
// is honoured; a backend whose ALPN falls back to HTTP/1.1 gets one request per connection.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { PoolConfig, UpstreamTlsConfig } from '../src/config/model.ts';
import { stats as muxStats } from '../src/worker/upstream/h2-mux.ts';
import { captureLog } from './helpers/capture-log.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  route,
  startHttpListener,
} from './helpers/http-fixtures.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { type Handler, startTlsBackend, type TlsBackendOptions } from './helpers/tls-backends.ts';
import { upstreamCerts } from './helpers/upstream-certs.ts';

interface Answer {
  status: number;
  body: string;
}

function call(port: number, o: { method?: string; path?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

function tlsOf(ca: string): UpstreamTlsConfig {
  return { ca, verify: true, servername: undefined, cert: undefined, key: undefined, minVersion: 'TLSv1.2' };
}

/** An answer after `ms`, so concurrent requests overlap at the backend. */
function delayed(ms: number, size = 0): Handler {
  return (req, res) => {
    let got = 0;
    req.on('data', (c: Buffer) => (got += c.length));
    req.on('end', () => {
      setTimeout(() => {
        if (size > 0) res.end(Buffer.alloc(size, 120));
        else res.end(`${req.method} ${req.url} ${got}`);
      }, ms);
    });
  };
}

async function setup(
  t: TestContext,
  kind: TlsBackendOptions['kind'],
  handler: Handler,
  o: { settings?: TlsBackendOptions['settings']; listener?: ListenerOverrides } = {},
) {
  const c = upstreamCerts(t);
  const b = await startTlsBackend(t, { kind, cert: c.server, settings: o.settings }, handler);
  const pools: PoolConfig[] = [
    {
      ...poolConfig('web', [backend(b.port)]),
      tls: kind === 'h2c' ? undefined : tlsOf(c.ca.cert),
      http2: true,
    },
  ];
  // buffer_body at its shipped default (the fixture's is 0): small bodies are read whole, and
  // only a request whose body streams gets a connection of its own.
  const l = o.listener ?? {};
  const p = await startHttpListener(t, { ...l, limits: { bufferBodyBytes: 64 * 1024, ...l.limits } }, pools);
  return { b, p };
}

test('50 concurrent requests (GETs and buffered POSTs) reach an h2 backend over at most 2 connections', async (t) => {
  const { b, p } = await setup(t, 'h2', delayed(150));
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0
        ? call(p.port, { path: `/g${i}` })
        : call(p.port, { method: 'POST', path: `/p${i}`, body: 'abc' }),
    ),
  );
  answers.forEach((a, i) => {
    assert.equal(a.status, 200);
    assert.equal(a.body, i % 2 === 0 ? `GET /g${i} 0` : `POST /p${i} 3`);
  });
  assert.ok(b.connections() <= 2, `${b.connections()} connections for 50 requests`);
  // Multiplexed, not one after another: most of them were streams of one connection at once.
  assert.ok(b.maxInFlightPerConnection() >= 25, `at most ${b.maxInFlightPerConnection()} at once`);
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('h2c (prior knowledge) multiplexes too', async (t) => {
  const { b, p } = await setup(t, 'h2c', delayed(100));
  const answers = await Promise.all(Array.from({ length: 30 }, () => call(p.port)));
  for (const a of answers) assert.equal(a.status, 200);
  assert.ok(b.connections() <= 2, `${b.connections()} connections`);
});

/** A POST whose body (over buffer_body) is sent in two halves: the second on end(). */
function upload(port: number, path: string) {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    agent: false,
    headers: { 'content-length': String(64 * 1024) },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  req.write(Buffer.alloc(32 * 1024, 1));
  return { end: () => req.end(Buffer.alloc(32 * 1024, 2)), answer, destroy: () => req.destroy() };
}

test('streaming uploads in flight hold back neither each other nor the other requests', async (t) => {
  const { b, p } = await setup(t, 'h2', delayed(0), { listener: { limits: { bufferBodyBytes: 1024 } } });
  const arrived = async (path: string) => {
    const started = Date.now();
    while (!b.seen.some((s) => s.headers[':path'] === path)) {
      assert.ok(Date.now() - started < 10_000, `${path} reached the backend while the other is open`);
      await sleep(10);
    }
  };
  // Streamed to the backend while the client is still sending (over buffer_body). undici
  // would hold the second back until the first is done, were they on one connection.
  const a = upload(p.port, '/a');
  t.after(a.destroy);
  await arrived('/a');
  const b2 = upload(p.port, '/b');
  t.after(b2.destroy);
  await arrived('/b');
  const others = await Promise.all(Array.from({ length: 20 }, (_, i) => call(p.port, { path: `/o${i}` })));
  for (const o of others) assert.equal(o.status, 200);
  a.end();
  b2.end();
  for (const u of [await a.answer, await b2.answer]) {
    assert.equal(u.status, 200);
    assert.match(u.body, new RegExp(`^POST /[ab] ${64 * 1024}$`));
  }
  // A connection per upload, one (or two, if the burst raced its handshake) for the rest.
  assert.ok(b.connections() <= 4, `${b.connections()} connections`);
});

test('a client that stops reading a large response does not stall the other streams of its connection', async (t) => {
  const big = 8 * 1024 * 1024;
  const { b, p } = await setup(t, 'h2', (req, res) => {
    req.resume();
    req.on('end', () => (req.url === '/big' ? res.end(Buffer.alloc(big, 7)) : res.end('small')));
  });
  // Warm the connection, so the big response and the others share it.
  assert.equal((await call(p.port)).status, 200);
  let stalled: Socket | undefined;
  const req = http.request({ host: '127.0.0.1', port: p.port, path: '/big', agent: false });
  req.on('response', (res) => {
    stalled = res.socket;
    res.pause();
  });
  req.on('error', () => {});
  req.end();
  t.after(() => req.destroy());
  while (stalled === undefined) await sleep(10);
  await sleep(200);
  const others = await Promise.all(Array.from({ length: 10 }, () => call(p.port)));
  for (const a of others) assert.deepEqual(a, { status: 200, body: 'small' });
  assert.equal(b.connections(), 1, 'all on the one connection');
  // The stalled client leaves: its stream is reset, the connection and the others stay.
  req.destroy();
  assert.deepEqual(await call(p.port), { status: 200, body: 'small' });
  assert.equal(b.connections(), 1);
});

test("the peer's SETTINGS_MAX_CONCURRENT_STREAMS bounds the streams per connection: more connections open", async (t) => {
  const before = muxStats();
  const { b, p } = await setup(t, 'h2', delayed(300), { settings: { maxConcurrentStreams: 5 } });
  // A cold burst lands on the first connection before its SETTINGS arrive (Node queues the
  // streams over the limit): that is what the limit is learned from.
  for (const a of await Promise.all(Array.from({ length: 10 }, () => call(p.port))))
    assert.equal(a.status, 200);
  const answers = await Promise.all(Array.from({ length: 20 }, () => call(p.port)));
  for (const a of answers) assert.equal(a.status, 200);
  assert.ok(b.maxInFlightPerConnection() <= 5);
  // 20 at 5 per connection: at least 4 connections carried the second burst (without the
  // limit learned, all 20 would queue on the first).
  assert.ok(b.connections() >= 4, `${b.connections()} connections`);
  assert.ok(b.connections() <= 6, `${b.connections()} connections for 30 requests`);
  assert.ok(muxStats().peerLimited > before.peerLimited);
});

test('a backend whose ALPN falls back to HTTP/1.1: one request per connection, never pipelined', async (t) => {
  const before = muxStats();
  const { b, p } = await setup(t, 'h1', delayed(300));
  // The first burst goes out before the protocol is known: it waits on the first connection.
  const cold = await Promise.all(Array.from({ length: 5 }, (_, i) => call(p.port, { path: `/c${i}` })));
  for (const a of cold) assert.equal(a.status, 200);
  const coldConcurrency = b.maxInFlight();
  const warm = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      i % 2 ? call(p.port, { path: `/w${i}` }) : call(p.port, { method: 'POST', path: `/w${i}`, body: 'xy' }),
    ),
  );
  warm.forEach((a, i) => {
    assert.equal(a.status, 200);
    assert.equal(a.body, `${i % 2 ? 'GET' : 'POST'} /w${i} ${i % 2 ? 0 : 2}`);
  });
  assert.ok(b.seen.every((s) => s.httpVersion === '1.1'));
  assert.equal(b.maxInFlightPerConnection(), 1, 'HTTP/1.1 is never pipelined');
  // Once known, a connection per request again: the warm burst ran side by side (had they
  // queued on one connection, never more than one would have been in flight).
  assert.ok(b.maxInFlight() >= 3, `at most ${b.maxInFlight()} in flight (cold: ${coldConcurrency})`);
  assert.ok(b.connections() >= 3, `${b.connections()} connections`);
  assert.ok(muxStats().h1Fallbacks > before.h1Fallbacks);
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('connection failures of an http2 pool fail its requests with their class, the worker goes on', async (t) => {
  const c = upstreamCerts(t);
  const untrusted = await startTlsBackend(t, { kind: 'h2', cert: c.untrustedServer }, delayed(0));
  const dead = await freeTcpPort();
  const pools: PoolConfig[] = [
    { ...poolConfig('web', [backend(untrusted.port)]), tls: tlsOf(c.ca.cert), http2: true },
    { ...poolConfig('dead', [backend(dead)]), tls: tlsOf(c.ca.cert), http2: true },
  ];
  const log = captureLog(t);
  const p = await startHttpListener(t, { routes: [route('dead', { pathPrefix: '/dead' })] }, pools);
  // A burst: every request queued on the connection that failed gets the failure.
  const bad = await Promise.all(Array.from({ length: 10 }, () => call(p.port)));
  const refused = await Promise.all(Array.from({ length: 10 }, () => call(p.port, { path: '/dead' })));
  for (const a of bad) assert.equal(a.status, 502);
  for (const a of refused) assert.equal(a.status, 502);
  assert.deepEqual(p.env.failures.toJSON(), { upstream_tls: 10, upstream_connect_refused: 10 });
  assert.equal(untrusted.seen.length, 0);
  assert.match(String(log.of('upstream_tls')[0]?.error), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
  // And again: the failed connections are not reused.
  assert.equal((await call(p.port)).status, 502);
  assert.equal(p.env.failures.toJSON().upstream_tls, 11);
});

test('an h2 backend that requires a client certificate the pool lacks → 502 upstream_tls', async (t) => {
  const c = upstreamCerts(t);
  const b = await startTlsBackend(t, { kind: 'h2', cert: c.server, clientCa: c.ca.cert }, delayed(0));
  const p = await startHttpListener(t, {}, [
    { ...poolConfig('web', [backend(b.port)]), tls: tlsOf(c.ca.cert), http2: true },
  ]);
  for (const a of await Promise.all(Array.from({ length: 5 }, () => call(p.port))))
    assert.equal(a.status, 502);
  assert.deepEqual(p.env.failures.toJSON(), { upstream_tls: 5 });
  assert.equal(b.seen.length, 0);
});

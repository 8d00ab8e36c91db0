// WebSocket through the in-process http listener (src/worker/http/upgrade.ts, http-proxy-3):
// a real RFC 6455 client and echo server (test/helpers/ws.ts) on loopback sockets. Routing,
// header rewriting, refusals with their class, backpressure with bounded proxy memory,
// teardown when either side goes away, idle timeout and the drain deadline.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { HttpListener } from '../src/worker/http/listener.ts';
import { stats } from '../src/worker/http/upgrade.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { parseHead, raw } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  route,
  startHttpListener,
} from './helpers/http-fixtures.ts';
import { blackholeTcpPort } from './helpers/l4-backends.ts';
import { waitFor } from './helpers/l4-state.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { type WsServerOptions, wsConnect, wsEchoServer } from './helpers/ws.ts';

const log = captureFileLog();

async function echoServer(t: TestContext, o: WsServerOptions = {}) {
  const s = await wsEchoServer(o);
  t.after(() => s.close());
  return s;
}

async function lb(t: TestContext, pools: PoolConfig[], o: ListenerOverrides = {}) {
  const p = await startHttpListener(t, o, pools);
  return { ...p, listener: p.handle as HttpListener };
}

async function client(t: TestContext, port: number, o: Parameters<typeof wsConnect>[1] = {}) {
  const c = await wsConnect(port, o);
  t.after(() => c.socket.destroy());
  return c;
}

const UPGRADE = (path: string, upgrade = 'websocket', method = 'GET') =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

test('echo through FiberLB, routed by path; the backend gets our forwarding headers once', async (t) => {
  const chat = await echoServer(t);
  const other = await echoServer(t);
  const p = await lb(
    t,
    [poolConfig('chat', [backend(chat.port)]), poolConfig('web', [backend(other.port)])],
    {
      routes: [route('chat', { pathPrefix: '/chat' })],
    },
  );
  const before = stats();
  const c = await client(t, p.port, {
    path: '/chat/room?x=1',
    host: 'chat.example',
    headers: { 'X-Forwarded-For': '10.9.9.9', 'X-Forwarded-Proto': 'https', Origin: 'http://chat.example' },
  });
  c.send('hello');
  assert.equal((await c.next()).toString(), 'hello');
  const bin = randomBytes(70_000); // 64-bit length frame
  c.send(bin);
  assert.ok((await c.next()).equals(bin));
  assert.equal(chat.requests.length, 1);
  assert.equal(other.requests.length, 0);

  const req = chat.requests[0]!;
  assert.equal(req.url, '/chat/room?x=1');
  const h = req.headers;
  assert.equal(h.host, 'chat.example');
  // Appended once (the peer is not trusted, so its X-Forwarded-Proto is replaced).
  assert.equal(h['x-forwarded-for'], '10.9.9.9, 127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'chat.example');
  assert.match(String(h['x-request-id']), /^[\w-]+-\w+$/);
  assert.equal(h['x-forwarded-port'], undefined, "http-proxy's xfwd is off: no second set");
  assert.equal(h.origin, 'http://chat.example');
  assert.equal(h.upgrade, 'websocket');
  assert.match(String(h.connection), /upgrade/i);
  const xffLines = req.rawHeaders.filter(
    (_, i) => i % 2 === 0 && req.rawHeaders[i]!.toLowerCase() === 'x-forwarded-for',
  );
  assert.equal(xffLines.length, 1);

  assert.equal(p.listener.tunnels.active(), 1);
  assert.equal(p.handle.active(), 1);
  const now = stats();
  assert.equal(now.total - before.total, 1);
  assert.equal(now.upgraded - before.upgraded, 1);
  assert.equal(now.active - before.active, 1);

  // A clean close: the close handshake passes, both sockets close, nothing is a failure.
  c.close();
  await c.closed;
  await waitFor(() => p.listener.tunnels.active() === 0 && chat.sockets.size === 0, 3000, 'tunnel to close');
  assert.equal(stats().active, before.active);
  assert.deepEqual(p.env.failures.toJSON(), {});
  assert.deepEqual(
    p.state.pools.get('chat')!.targets.map((x) => x.active),
    [0],
  );
});

test('refusals: h2c → 501, POST → 400, no route → 404, backend down → 502, backend 403 relayed', async (t) => {
  const ws = await echoServer(t);
  const refusing = await echoServer(t, { refuse: 403 });
  const dead = await freeTcpPort();
  const p = await lb(
    t,
    [
      poolConfig('ws', [backend(ws.port)]),
      poolConfig('no', [backend(refusing.port)]),
      poolConfig('dead', [backend(dead)]),
    ],
    {
      defaultPool: undefined,
      routes: [
        route('ws', { pathPrefix: '/ws' }),
        route('no', { pathPrefix: '/no' }),
        route('dead', { pathPrefix: '/dead' }),
      ],
    },
  );
  const ask = async (payload: string) => {
    const r = await raw(p.port, payload);
    assert.equal(r.closed, true, 'the connection is closed after the answer');
    return parseHead(r.text).status;
  };
  assert.equal(await ask(UPGRADE('/ws', 'h2c')), 501);
  assert.equal(await ask(UPGRADE('/ws', 'websocket', 'POST')), 400);
  assert.equal(await ask(UPGRADE('/elsewhere')), 404);
  assert.equal(await ask(UPGRADE('/dead')), 502);
  assert.equal(await ask(UPGRADE('/no')), 403);
  assert.equal(ws.requests.length, 0, 'nothing refused reached a backend');
  const counts = p.env.failures.toJSON();
  assert.deepEqual(counts, {
    unsupported_request: 1,
    client_bad_request: 1,
    no_route: 1,
    upstream_connect_refused: 1,
  });
  for (const cls of Object.keys(counts)) log.counted(p.env.failures, cls);
  assert.match(
    String(log.lines.find((l) => l.error_class === 'unsupported_request')?.error),
    /upgrade to 'h2c' not supported/,
  );
  await waitFor(() => p.listener.tunnels.active() === 0, 3000, 'tunnels to close');
});

test('32 MiB to a backend that stops reading: the proxy holds a bounded amount, then all arrives intact', async (t) => {
  let backendSocket: Socket | undefined;
  const received = createHash('sha256');
  let got = 0;
  const be = await echoServer(t, {
    onSocket: (s) => {
      backendSocket = s;
      s.pause();
      // Count raw bytes instead of echoing (the echo would need the client to read too).
      s.removeAllListeners('data');
      s.on('data', (d: Buffer) => {
        received.update(d);
        got += d.length;
      });
    },
  });
  const p = await lb(t, [poolConfig('web', [backend(be.port)])]);
  const c = await client(t, p.port);
  await waitFor(() => backendSocket !== undefined, 3000, 'backend socket');
  backendSocket!.pause();
  const sent = createHash('sha256');
  const MSG = randomBytes(1024 * 1024);
  const frames: Buffer[] = [];
  // Write 32 frames of 1 MiB as raw bytes (what the client's socket sends).
  for (let i = 0; i < 32; i++) {
    const { encodeFrame } = await import('./helpers/ws.ts');
    frames.push(encodeFrame(2, MSG, true));
  }
  let total = 0;
  for (const f of frames) {
    sent.update(f);
    total += f.length;
    c.socket.write(f);
  }
  // Let the pipeline fill up: kernel buffers and the proxy's stream buffers, no more.
  await sleep(700);
  const held = p.listener.tunnels.buffered();
  assert.ok(held < 4 * 1024 * 1024, `proxy holds ${held} bytes`);
  assert.ok(
    c.socket.writableLength > 16 * 1024 * 1024,
    `client still holds ${c.socket.writableLength} bytes`,
  );
  backendSocket!.resume();
  await waitFor(() => got === total, 15_000, 'all bytes at the backend');
  assert.equal(received.digest('hex'), sent.digest('hex'));
});

test('backend goes away → the client socket is closed; client goes away → the backend socket is closed', async (t) => {
  const be = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(be.port)])]);

  const c1 = await client(t, p.port);
  c1.send('x');
  await c1.next();
  for (const s of be.sockets) s.destroy(); // the backend crashes
  await c1.closed;
  await waitFor(() => p.listener.tunnels.active() === 0, 3000, 'tunnel gone');

  const c2 = await client(t, p.port);
  c2.send('y');
  await c2.next();
  assert.equal(be.sockets.size, 1);
  c2.socket.destroy(); // the client vanishes without a close frame
  await waitFor(() => be.sockets.size === 0, 3000, 'backend socket closed');
  await waitFor(() => p.listener.tunnels.active() === 0, 3000, 'tunnel gone');
  assert.deepEqual(
    p.state.pools.get('web')!.targets.map((x) => x.active),
    [0],
  );
});

test('client gone, backend that never closes its side: the proxy still destroys its upstream socket', async (t) => {
  // http-proxy alone only end()s the upstream socket, which then waits for this backend's FIN
  // forever: one leaked socket per vanished client.
  const be = await echoServer(t, { ignoreEnd: true });
  const p = await lb(t, [poolConfig('web', [backend(be.port)])]);
  const c = await client(t, p.port);
  c.send('z');
  await c.next();
  c.socket.destroy();
  await waitFor(
    () => p.listener.tunnels.active() === 0,
    3000,
    'tunnel gone although the backend keeps its side open',
  );
  assert.equal(p.handle.active(), 0);
});

test('a client that leaves before the 101 aborts the upstream request', async (t) => {
  let arrived = 0;
  const be = await echoServer(t, {
    onSocket: () => {
      arrived++;
    },
  });
  // Hold the 101 back: accept the upgrade request but answer nothing.
  be.server.removeAllListeners('upgrade');
  const upstream: Socket[] = [];
  let upstreamGone = false;
  be.server.on('upgrade', (_req, s: Socket) => {
    upstream.push(s);
    s.on('error', () => {});
    s.on('close', () => (upstreamGone = true));
    s.on('end', () => {
      upstreamGone = true;
      s.destroy();
    });
    s.resume();
  });
  const p = await lb(t, [poolConfig('web', [backend(be.port)])]);
  const r = raw(p.port, UPGRADE('/'), 300);
  await waitFor(() => upstream.length === 1, 3000, 'upgrade request at the backend');
  await r; // raw() destroys its socket after 300 ms
  await waitFor(() => upstreamGone, 3000, 'upstream request aborted');
  await waitFor(() => p.listener.tunnels.active() === 0, 3000, 'tunnel gone');
  assert.equal(log.counted(p.env.failures, 'client_abort'), 1);
  assert.equal(arrived, 0);
});

test('tunnel_idle closes a silent tunnel; traffic keeps it open past client_header and client_idle', async (t) => {
  const be = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(be.port)])], {
    timeouts: { tunnelIdleMs: 600, clientHeaderMs: 200, clientIdleMs: 200 },
  });
  const busy = await client(t, p.port);
  const start = Date.now();
  while (Date.now() - start < 1500) {
    busy.send('tick');
    assert.equal((await busy.next()).toString(), 'tick');
    await sleep(150);
  }
  busy.socket.destroy();
  const quiet = await client(t, p.port);
  const t0 = Date.now();
  await quiet.closed;
  const waited = Date.now() - t0;
  assert.ok(waited >= 500 && waited < 3000, `idle tunnel closed after ${waited} ms`);
  await waitFor(() => p.listener.tunnels.active() === 0 && be.sockets.size === 0, 3000, 'tunnels gone');
  assert.equal(log.counted(p.env.failures, 'client_timeout'), 1);
  assert.match(
    String(log.lines.find((l) => l.error_class === 'client_timeout')?.error),
    /tunnel idle for 600ms/,
  );
});

test('drain: an open tunnel keeps the listener closing until the deadline, then is cut', async (t) => {
  const be = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(be.port)])]);
  const c = await client(t, p.port);
  c.send('a');
  await c.next();
  const t0 = Date.now();
  await p.handle.close(400);
  const took = Date.now() - t0;
  assert.ok(took >= 350, `closed after ${took} ms`);
  await c.closed;
  await waitFor(() => be.sockets.size === 0 && p.listener.tunnels.active() === 0, 3000, 'tunnel cut');
  assert.equal(log.counted(p.env.failures, 'drain_deadline'), 1);
});

test('upgrade timeouts: connect → 504 upstream_connect_timeout, no 101 → 504 upstream_timeout', async (t) => {
  const hole = await blackholeTcpPort();
  t.after(() => hole.close());
  const silent = await echoServer(t);
  silent.server.removeAllListeners('upgrade');
  const held: Socket[] = [];
  silent.server.on('upgrade', (_req, s: Socket) => {
    held.push(s);
    s.on('error', () => {});
  });
  t.after(() => {
    for (const s of held) s.destroy();
  });
  const p = await lb(
    t,
    [poolConfig('hole', [backend(hole.port)]), poolConfig('silent', [backend(silent.port)])],
    {
      defaultPool: undefined,
      routes: [route('hole', { pathPrefix: '/hole' }), route('silent', { pathPrefix: '/silent' })],
      timeouts: { connectMs: 300, upstreamResponseMs: 300 },
    },
  );
  const t0 = Date.now();
  const r1 = await raw(p.port, UPGRADE('/hole'));
  assert.equal(parseHead(r1.text).status, 504);
  const r2 = await raw(p.port, UPGRADE('/silent'));
  assert.equal(parseHead(r2.text).status, 504);
  assert.ok(Date.now() - t0 >= 550, 'each waited its timeout');
  assert.equal(held.length, 1);
  assert.equal(log.counted(p.env.failures, 'upstream_connect_timeout'), 1);
  assert.equal(log.counted(p.env.failures, 'upstream_timeout'), 1);
  await waitFor(
    () => held[0]!.destroyed || held[0]!.readableEnded || p.listener.tunnels.active() === 0,
    3000,
    'settled',
  );
  assert.equal(p.listener.tunnels.active(), 0);
});

test('connection_limit bounds tunnels: a client over the limit is dropped and counted', async (t) => {
  const be = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(be.port)])], { connectionLimit: 2 });
  const a = await client(t, p.port);
  const b = await client(t, p.port);
  await assert.rejects(wsConnect(p.port));
  assert.equal(log.counted(p.env.failures, 'connection_limit'), 1);
  a.send('a');
  b.send('b');
  assert.equal((await a.next()).toString(), 'a');
  assert.equal((await b.next()).toString(), 'b');
  a.socket.destroy();
  await waitFor(() => p.listener.tunnels.active() === 1, 3000, 'one tunnel left');
  // A freed connection slot admits the next tunnel.
  const c = await client(t, p.port);
  c.send('c');
  assert.equal((await c.next()).toString(), 'c');
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { ListenerHandle, WorkerEnv } from '../src/worker/context.ts';
import { createTcpListener } from '../src/worker/l4/tcp.ts';
import { encodeProxyV2, parseProxyHeader } from '../src/worker/proxy-protocol.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import {
  blackholeTcpPort,
  readBytes,
  readToEnd,
  tcpBackend,
  tcpConnect,
  tcpEcho,
} from './helpers/l4-backends.ts';
import { type L4ListenerOverrides, l4Env, l4Listener, l4Pool, l4State, waitFor } from './helpers/l4-state.ts';
import { cidrs, freeTcpPort, sleep } from './helpers/net.ts';

interface Proxy {
  readonly port: number;
  readonly handle: ListenerHandle;
  readonly env: WorkerEnv;
}

async function startProxy(
  t: TestContext,
  pools: readonly PoolConfig[],
  o: L4ListenerOverrides = {},
  env: WorkerEnv = l4Env(),
  workerCount = 1,
): Promise<Proxy> {
  const port = await freeTcpPort();
  const handle = createTcpListener(l4State(l4Listener('tcp', port, o), pools, workerCount), env);
  await handle.ready;
  t.after(() => handle.close(0));
  return { port, handle, env };
}

/** A client socket that is destroyed when the test ends. */
async function client(t: TestContext, port: number): Promise<Socket> {
  const s = await tcpConnect(port);
  t.after(() => s.destroy());
  return s;
}

async function echo(t: TestContext, tag = '') {
  const be = await tcpEcho(tag);
  t.after(() => be.close());
  return be;
}

// Failure lines are captured, not printed, and each count is checked against the log.
const log = captureFileLog();
const counted = (env: WorkerEnv, cls: string) => log.counted(env.failures, cls);

async function roundTrip(s: Socket, msg: string, expect = msg): Promise<void> {
  s.write(msg);
  assert.equal((await readBytes(s, Buffer.byteLength(expect))).toString(), expect);
}

test('echo through the proxy; both sockets close after a clean shutdown', async (t) => {
  const be = await echo(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t, p.port);
  await roundTrip(c, 'hello');
  assert.equal(p.handle.active(), 1);
  c.end();
  assert.deepEqual(await readToEnd(c), { data: Buffer.alloc(0), closedBy: 'end' });
  await waitFor(() => p.handle.active() === 0, 2000, 'connection to finish');
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('two backends alternate (round robin) and in-flight counts return to 0', async (t) => {
  const ids = ['A', 'B'];
  const backends = await Promise.all(
    ids.map((id) =>
      tcpBackend((s) => {
        s.write(id);
        s.on('end', () => s.end());
      }),
    ),
  );
  t.after(() => Promise.all(backends.map((b) => b.close())));
  const pool = l4Pool(
    'main',
    backends.map((b) => b.port),
  );
  const port = await freeTcpPort();
  const state = l4State(l4Listener('tcp', port), [pool]);
  const handle = createTcpListener(state, l4Env());
  await handle.ready;
  t.after(() => handle.close(0));
  let seen = '';
  for (let i = 0; i < 4; i++) {
    const c = await client(t, port);
    seen += (await readBytes(c, 1)).toString();
    c.end();
    await readToEnd(c);
  }
  assert.match(seen, /^(ABAB|BABA)$/);
  await waitFor(() => handle.active() === 0);
  assert.deepEqual(
    state.pools.get('main')!.targets.map((x) => x.active),
    [0, 0],
  );
});

test('half-close: the client ends its side and still gets the whole reply', async (t) => {
  const reply = randomBytes(1 << 20);
  const be = await tcpBackend((s) => {
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
    });
    // Replies only after seeing the client's FIN.
    s.on('end', () => {
      s.write(`${n}\n`);
      s.end(reply);
    });
  });
  t.after(() => be.close());
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t, p.port);
  c.end(Buffer.alloc(100_000, 7));
  const { data, closedBy } = await readToEnd(c);
  assert.equal(closedBy, 'end');
  assert.equal(data.subarray(0, 7).toString(), '100000\n');
  assert.ok(data.subarray(7).equals(reply));
  await waitFor(() => p.handle.active() === 0);
});

test('64 MiB each way with slow readers: intact, and proxy memory stays bounded', async (t) => {
  const CHUNK = randomBytes(64 * 1024);
  const COUNT = 1024; // 64 MiB
  const expected = createHash('sha256');
  for (let i = 0; i < COUNT; i++) expected.update(CHUNK);
  const want = expected.digest('hex');

  // Writes COUNT chunks honouring backpressure, then ends.
  const send = (s: Socket) => {
    let i = 0;
    const more = () => {
      while (i < COUNT) {
        i++;
        if (!s.write(CHUNK)) {
          s.once('drain', more);
          return;
        }
      }
      s.end();
    };
    more();
  };
  // Hashes everything, pausing 5 ms every 256 KiB so it is slower than the sender.
  const slowRead = (s: Socket) =>
    new Promise<string>((resolve) => {
      const h = createHash('sha256');
      let sincePause = 0;
      s.on('data', (d: Buffer) => {
        h.update(d);
        sincePause += d.length;
        if (sincePause >= 256 * 1024) {
          sincePause = 0;
          s.pause();
          setTimeout(() => s.resume(), 5);
        }
      });
      s.once('end', () => resolve(h.digest('hex')));
    });

  let backendGot: Promise<string> | undefined;
  const be = await tcpBackend((s) => {
    backendGot = slowRead(s);
    send(s);
  });
  t.after(() => be.close());
  const p = await startProxy(t, [l4Pool('main', [be.port])]);

  const mem = () => {
    const m = process.memoryUsage();
    return { buffers: m.heapUsed + m.arrayBuffers, rss: m.rss };
  };
  const base = mem();
  const peak = { ...base };
  const sampler = setInterval(() => {
    const m = mem();
    peak.buffers = Math.max(peak.buffers, m.buffers);
    peak.rss = Math.max(peak.rss, m.rss);
  }, 20);
  t.after(() => clearInterval(sampler));

  const c = await client(t, p.port);
  const clientGot = slowRead(c);
  send(c);
  assert.equal(await clientGot, want);
  await waitFor(() => backendGot !== undefined);
  assert.equal(await backendGot, want);
  clearInterval(sampler);

  const MiB = 1024 * 1024;
  const growth = { buffers: (peak.buffers - base.buffers) / MiB, rss: (peak.rss - base.rss) / MiB };
  t.diagnostic(
    `peak growth: heap+buffers ${growth.buffers.toFixed(1)} MiB, rss ${growth.rss.toFixed(1)} MiB`,
  );
  // This process also holds the client, the backend and not-yet-collected chunks: measured at
  // ~35 MiB with backpressure honoured, ~150 MiB when the proxy writes without waiting for drain.
  assert.ok(growth.buffers < 64, `heap+buffers grew by ${growth.buffers.toFixed(1)} MiB`);
  assert.ok(growth.rss < 96, `rss grew by ${growth.rss.toFixed(1)} MiB`);
  await waitFor(() => p.handle.active() === 0);
});

test('connect refused: client closed, upstream_connect_refused counted, target released', async (t) => {
  const dead = await freeTcpPort();
  const pool = l4Pool('main', [dead]);
  const port = await freeTcpPort();
  const state = l4State(l4Listener('tcp', port), [pool]);
  const env = l4Env();
  const handle = createTcpListener(state, env);
  await handle.ready;
  t.after(() => handle.close(0));
  const c = await client(t, port);
  c.write('lost');
  const r = await readToEnd(c);
  assert.equal(r.data.length, 0);
  assert.equal(counted(env, 'upstream_connect_refused'), 1);
  await waitFor(() => handle.active() === 0);
  assert.equal(state.pools.get('main')!.targets[0]!.active, 0);
});

test('connect timeout against a backend whose accept queue is full', async (t) => {
  const hole = await blackholeTcpPort();
  t.after(() => hole.close());
  const p = await startProxy(t, [l4Pool('main', [hole.port])], { timeouts: { connectMs: 200 } });
  const c = await client(t, p.port);
  const started = Date.now();
  const r = await readToEnd(c);
  const took = Date.now() - started;
  assert.equal(r.data.length, 0);
  assert.equal(counted(p.env, 'upstream_connect_timeout'), 1);
  assert.ok(took >= 150 && took < 2000, `closed after ${took} ms`);
});

test('no pool or no available backend: no_healthy_backend', async (t) => {
  const p = await startProxy(t, [l4Pool('main', [])]);
  const r = await readToEnd(await client(t, p.port));
  assert.equal(r.data.length, 0);
  const q = await startProxy(t, [l4Pool('main', [1])], { defaultPool: 'missing' }, p.env);
  await readToEnd(await client(t, q.port));
  assert.equal(counted(p.env, 'no_healthy_backend'), 2);
});

test('idle timeout: traffic keeps it open, silence closes it', async (t) => {
  const be = await echo(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])], { timeouts: { idleMs: 200 } });
  const c = await client(t, p.port);
  const closed = readToEnd(c);
  for (let i = 0; i < 6; i++) {
    c.write('x');
    await sleep(80);
  }
  assert.equal(c.destroyed, false);
  const quietFrom = Date.now();
  const r = await closed;
  assert.equal(r.data.toString(), 'xxxxxx');
  assert.ok(Date.now() - quietFrom >= 100, 'closed too early');
  assert.equal(counted(p.env, 'client_timeout'), 1);
  await waitFor(() => p.handle.active() === 0);
});

test('connection limit is split across workers; excess is closed and counted', async (t) => {
  const be = await echo(t);
  // 5 across 2 workers → 2 per worker (rounded down: the total never exceeds the limit).
  const p = await startProxy(t, [l4Pool('main', [be.port])], { connectionLimit: 5 }, l4Env(), 2);
  const a = await client(t, p.port);
  const b = await client(t, p.port);
  await roundTrip(a, 'a');
  await roundTrip(b, 'b');
  const extra = await readToEnd(await client(t, p.port));
  assert.equal(extra.data.length, 0);
  assert.equal(counted(p.env, 'connection_limit'), 1);
  assert.equal(p.handle.active(), 2);
  a.destroy();
  await waitFor(() => p.handle.active() === 1);
  await roundTrip(await client(t, p.port), 'c');
});

test('update(): new connections use the new pool, an open one keeps flowing to the old', async (t) => {
  const a = await echo(t, 'A:');
  const b = await echo(t, 'B:');
  const port = await freeTcpPort();
  const listener = l4Listener('tcp', port);
  const handle = createTcpListener(l4State(listener, [l4Pool('main', [a.port])]), l4Env());
  await handle.ready;
  t.after(() => handle.close(0));
  const c1 = await client(t, port);
  await roundTrip(c1, 'x', 'A:x');
  handle.update(l4State(listener, [l4Pool('main', [b.port])]));
  const c2 = await client(t, port);
  await roundTrip(c2, 'y', 'B:y');
  await roundTrip(c1, 'z', 'A:z');
});

test('close(deadline) waits for a live connection, then cuts it at the deadline', async (t) => {
  const be = await echo(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t, p.port);
  await roundTrip(c, 'before');
  const started = Date.now();
  let resolved = false;
  const closing = p.handle.close(400).then(() => {
    resolved = true;
  });
  await assert.rejects(tcpConnect(p.port), { code: 'ECONNREFUSED' });
  await roundTrip(c, 'during');
  await sleep(100);
  assert.equal(resolved, false);
  const ended = readToEnd(c);
  await closing;
  const took = Date.now() - started;
  assert.ok(took >= 380 && took < 1500, `resolved after ${took} ms`);
  await ended;
  assert.equal(p.handle.active(), 0);
  assert.equal(counted(p.env, 'drain_deadline'), 1);
});

test('close(deadline) resolves as soon as the last connection ends', async (t) => {
  const be = await echo(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t, p.port);
  await roundTrip(c, 'x');
  const started = Date.now();
  const closing = p.handle.close(5000);
  setTimeout(() => c.end(), 50);
  await closing;
  assert.ok(Date.now() - started < 1000);
});

/** A backend that records everything it receives until the client's FIN. */
async function recorder(t: TestContext) {
  const got: Buffer[] = [];
  const be = await tcpBackend((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      got.push(Buffer.concat(chunks));
      s.end();
    });
  });
  t.after(() => be.close());
  return { port: be.port, got };
}

const trusted: L4ListenerOverrides = { acceptProxyProtocol: true, trustedProxies: cidrs('127.0.0.0/8') };

test('PROXY: trusted v2 header in, v1 header with the original client out', async (t) => {
  const be = await recorder(t);
  const p = await startProxy(t, [l4Pool('main', [be.port], 'v1')], trusted);
  const c = await client(t, p.port);
  const hdr = encodeProxyV2({
    family: 4,
    sourceAddress: '203.0.113.7',
    sourcePort: 4242,
    destAddress: '198.51.100.1',
    destPort: 443,
  });
  // Split mid-header, with payload in the same segment as the header's tail.
  c.write(hdr.subarray(0, 10));
  await sleep(20);
  c.write(Buffer.concat([hdr.subarray(10), Buffer.from('pay')]));
  c.end('load');
  await readToEnd(c);
  await waitFor(() => be.got.length === 1);
  assert.equal(be.got[0]!.toString(), `PROXY TCP4 203.0.113.7 127.0.0.1 4242 ${p.port}\r\npayload`);
});

test('PROXY: v2 LOCAL from a trusted peer uses the peer address; pool v2 header out', async (t) => {
  const be = await recorder(t);
  const p = await startProxy(t, [l4Pool('main', [be.port], 'v2')], trusted);
  const c = await client(t, p.port);
  const clientPort = c.localPort;
  c.end(Buffer.concat([encodeProxyV2(null), Buffer.from('hi')]));
  await readToEnd(c);
  await waitFor(() => be.got.length === 1);
  const r = parseProxyHeader(be.got[0]!);
  assert.ok(!('error' in r) && r.done);
  assert.deepEqual(r.header, {
    family: 4,
    sourceAddress: '127.0.0.1',
    sourcePort: clientPort,
    destAddress: '127.0.0.1',
    destPort: p.port,
  });
  assert.equal(be.got[0]!.subarray(r.consumed).toString(), 'hi');
});

test('PROXY: an untrusted peer is served as a plain connection, bytes untouched', async (t) => {
  const be = await recorder(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])], {
    acceptProxyProtocol: true,
    trustedProxies: cidrs('10.0.0.0/8'),
  });
  const c = await client(t, p.port);
  const raw = 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello';
  c.end(raw);
  await readToEnd(c);
  await waitFor(() => be.got.length === 1);
  assert.equal(be.got[0]!.toString(), raw);
});

test('PROXY: garbage or a missing header from a trusted peer is proxy_protocol_invalid', async (t) => {
  const be = await recorder(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])], {
    ...trusted,
    timeouts: { clientHeaderMs: 150 },
  });
  const bad = await client(t, p.port);
  bad.write('GET / HTTP/1.1\r\n\r\n');
  assert.equal((await readToEnd(bad)).data.length, 0);
  const silent = await client(t, p.port);
  const started = Date.now();
  await readToEnd(silent);
  assert.ok(Date.now() - started >= 100);
  assert.equal(counted(p.env, 'proxy_protocol_invalid'), 2);
  assert.equal(be.got.length, 0);
  await waitFor(() => p.handle.active() === 0);
});

test('listen failure rejects ready and is counted as listen_failed', async (t) => {
  const p = await startProxy(t, [l4Pool('main', [1])]);
  const env = l4Env();
  const dup = createTcpListener(l4State(l4Listener('tcp', p.port), [l4Pool('main', [1])]), env);
  await assert.rejects(dup.ready, { code: 'EADDRINUSE' });
  assert.equal(counted(env, 'listen_failed'), 1);
  await dup.close(0);
});

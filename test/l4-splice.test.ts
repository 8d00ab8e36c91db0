// Data integrity of the L4 splice (src/worker/l4/splice.ts): unique random bytes both ways
// through a real tcp listener, SHA-256 compared, with slow readers (so writes go async and the
// reused read buffers are held by pending writes), half-close each way, PROXY headers and
// bytes read ahead by the header reader; and a reader that stops, which must stop the proxy.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { ListenerHandle, WorkerEnv } from '../src/worker/context.ts';
import { LARGE_BUFFER, splice, stats, userBufferReads } from '../src/worker/l4/splice.ts';
import { createTcpListener } from '../src/worker/l4/tcp.ts';
import { encodeProxyV2, parseProxyHeader } from '../src/worker/proxy-protocol.ts';
import { listenerStats } from '../src/worker/telemetry/record.ts';
import { WorkerTelemetry } from '../src/worker/telemetry/telemetry.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { tcpBackend, tcpConnect } from './helpers/l4-backends.ts';
import { type L4ListenerOverrides, l4Env, l4Listener, l4Pool, l4State, waitFor } from './helpers/l4-state.ts';
import { cidrs, freeTcpPort, HOST } from './helpers/net.ts';

const log = captureFileLog();
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Proxy {
  readonly port: number;
  readonly handle: ListenerHandle;
  readonly env: WorkerEnv;
  readonly state: ReturnType<typeof l4State>;
}

async function startProxy(
  t: TestContext,
  pools: readonly PoolConfig[],
  o: L4ListenerOverrides = {},
): Promise<Proxy> {
  const port = await freeTcpPort();
  const base = l4Env();
  const env: WorkerEnv = { ...base, telemetry: new WorkerTelemetry(base.failures, '0') };
  const state = l4State(l4Listener('tcp', port, o), pools);
  const handle = createTcpListener(state, env);
  await handle.ready;
  t.after(() => handle.close(0));
  return { port, handle, env, state };
}

/**
 * Write `data` in chunks of varying size (1 byte to 200 KiB, so chunk and read boundaries never
 * line up), honouring backpressure; resolves when all of it is handed to the kernel.
 */
function sendVaried(s: Socket, data: Buffer, seed: number): Promise<void> {
  return new Promise((resolve) => {
    let off = 0;
    let x = seed;
    const more = (): void => {
      while (off < data.length) {
        x = (x * 1103515245 + 12345) >>> 0;
        const n = Math.min(data.length - off, 1 + (x % (200 * 1024)));
        const ok = s.write(data.subarray(off, off + n));
        off += n;
        if (!ok) {
          s.once('drain', more);
          return;
        }
      }
      resolve();
    };
    more();
  });
}

/** Collects what arrives, pausing 3 ms every 128 KiB so it reads slower than the sender. */
function slowCollect(s: Socket): { bytes: () => number; ended: Promise<Buffer> } {
  const chunks: Buffer[] = [];
  let got = 0;
  let since = 0;
  const ended = new Promise<Buffer>((resolve, reject) => {
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      since += d.length;
      if (since >= 128 * 1024) {
        since = 0;
        s.pause();
        setTimeout(() => s.resume(), 3);
      }
    });
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('close', () => reject(new Error(`closed without FIN after ${got} bytes`)));
  });
  return { bytes: () => got, ended };
}

test('splice uses reused buffers on this Node (else the fast path is never tested)', () => {
  assert.equal(userBufferReads, true);
});

for (const first of ['client', 'backend'] as const) {
  test(`6 MiB of random bytes each way, slow readers, ${first} half-closes first: SHA-256 equal`, async (t) => {
    const up = randomBytes(6 * MiB); // client → backend
    const down = randomBytes(6 * MiB); // backend → client
    // The side that closes first sends all, FINs, and waits; the other sends half, waits until
    // the FIN arrived with everything before it, then sends the other half (data still flows the
    // other way after a FIN) and FINs.
    const halfway = (s: Socket, mine: Buffer, theirs: Promise<Buffer>, seed: number) =>
      (async () => {
        const h = mine.length >> 1;
        await sendVaried(s, mine.subarray(0, h), seed);
        const got = await theirs;
        await sendVaried(s, mine.subarray(h), seed + 1);
        s.end();
        return got;
      })();
    const full = async (s: Socket, mine: Buffer, seed: number) => {
      await sendVaried(s, mine, seed);
      s.end();
    };
    let backendGot: Promise<Buffer> | undefined;
    const be = await tcpBackend((s) => {
      const r = slowCollect(s);
      backendGot = r.ended;
      if (first === 'backend') void full(s, down, 7);
      else void halfway(s, down, r.ended, 7);
    });
    t.after(() => be.close());
    const p = await startProxy(t, [l4Pool('main', [be.port])]);
    const before = stats();
    const c = await tcpConnect(p.port);
    t.after(() => c.destroy());
    const r = slowCollect(c);
    if (first === 'client') void full(c, up, 3);
    else void halfway(c, up, r.ended, 3);

    const clientGot = await r.ended;
    await waitFor(() => backendGot !== undefined);
    const gotUp = await backendGot!;
    assert.equal(gotUp.length, up.length);
    assert.equal(sha(gotUp), sha(up), 'client → backend bytes differ');
    assert.equal(clientGot.length, down.length);
    assert.equal(sha(clientGot), sha(down), 'backend → client bytes differ');

    await waitFor(() => p.handle.active() === 0, 5000, 'connection to finish');
    const after = stats();
    assert.equal(after.spliced - before.spliced, 2, 'both directions spliced');
    assert.equal(after.piped, before.piped);
    // The slow readers made writes go async: the held-buffer path was exercised.
    assert.ok(after.blocked > before.blocked, 'no write was ever left pending');
    const ls = listenerStats(p.env, p.state);
    assert.deepEqual([ls.bytesIn, ls.bytesOut], [up.length, down.length]);
    assert.deepEqual(p.env.failures.toJSON(), {});
  });
}

test('PROXY v2 header with 1 MiB read ahead: v1 header out first, then every byte in order', async (t) => {
  const payload = randomBytes(MiB);
  let got: Promise<Buffer> | undefined;
  const be = await tcpBackend((s) => {
    got = slowCollect(s).ended;
    s.on('end', () => s.end());
  });
  t.after(() => be.close());
  const p = await startProxy(t, [l4Pool('main', [be.port], 'v1')], {
    acceptProxyProtocol: true,
    trustedProxies: cidrs('127.0.0.0/8'),
  });
  const before = stats();
  const c = await tcpConnect(p.port);
  t.after(() => c.destroy());
  const hdr = encodeProxyV2({
    family: 4,
    sourceAddress: '203.0.113.9',
    sourcePort: 5151,
    destAddress: '198.51.100.2',
    destPort: 443,
  });
  // Header and payload in one write: the header reader puts the rest back, and reads more
  // ahead while the upstream connects; all of it must reach the backend, in order.
  c.write(Buffer.concat([hdr, payload]));
  await waitFor(() => got !== undefined);
  // Half-close only after the payload is through, so the splice (not the pipe fallback for a
  // FIN already read) carries it.
  await new Promise((r) => setTimeout(r, 100));
  c.end();
  c.resume();
  const all = await got!;
  const r = parseProxyHeader(all);
  assert.ok(!('error' in r) && r.done);
  assert.equal(all.subarray(0, r.consumed).toString(), `PROXY TCP4 203.0.113.9 127.0.0.1 5151 ${p.port}\r\n`);
  assert.equal(sha(all.subarray(r.consumed)), sha(payload));
  await waitFor(() => p.handle.active() === 0, 5000, 'connection to finish');
  assert.equal(stats().spliced - before.spliced, 2);
});

test('a FIN read with the PROXY header: that direction is piped, bytes intact', async (t) => {
  let got: Promise<Buffer> | undefined;
  const be = await tcpBackend((s) => {
    got = slowCollect(s).ended;
    s.on('end', () => s.end());
  });
  t.after(() => be.close());
  const p = await startProxy(t, [l4Pool('main', [be.port])], {
    acceptProxyProtocol: true,
    trustedProxies: cidrs('127.0.0.0/8'),
  });
  const payload = randomBytes(200 * 1024);
  const c = await tcpConnect(p.port);
  t.after(() => c.destroy());
  c.resume();
  c.end(Buffer.concat([encodeProxyV2(null), payload]));
  await waitFor(() => got !== undefined);
  assert.equal(sha(await got!), sha(payload));
  await waitFor(() => p.handle.active() === 0, 5000, 'connection to finish');
});

test('a reader that stops: the proxy stops reading the sender, and holds at most one buffer', async (t) => {
  // splice() itself between an accepted (paused) socket and a connected one, so the test can
  // watch what the proxy side queues. The far end does not read until told to.
  const data = randomBytes(48 * MiB);
  let far: Socket | undefined;
  const sink = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    far = s;
  });
  await new Promise<void>((r) => sink.listen(0, HOST, r));
  t.after(() => sink.close());
  let proxyOut: Socket | undefined;
  const front = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    const out = connect({ host: HOST, port: (sink.address() as AddressInfo).port, allowHalfOpen: true });
    out.once('connect', () => {
      proxyOut = out;
      splice(accepted, out);
    });
    t.after(() => {
      accepted.destroy();
      out.destroy();
    });
  });
  await new Promise<void>((r) => front.listen(0, HOST, r));
  t.after(() => front.close());
  const before = stats();
  const c = await tcpConnect((front.address() as AddressInfo).port);
  t.after(() => c.destroy());
  void sendVaried(c, data, 11).then(() => c.end());
  await waitFor(() => proxyOut !== undefined && far !== undefined);

  // Kernel buffers fill, then the client is held back: its queue stops moving.
  let maxQueued = 0;
  let last = -1;
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 25));
    maxQueued = Math.max(maxQueued, proxyOut!.writableLength);
    const sent = c.bytesWritten - c.writableLength;
    if (sent === last) break;
    last = sent;
  }
  const flushed = c.bytesWritten - c.writableLength;
  assert.ok(flushed < data.length, 'the whole payload left the client: no backpressure');
  assert.ok(stats().blocked > before.blocked, 'the proxy never saw a pending write');
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 10));
    maxQueued = Math.max(maxQueued, proxyOut!.writableLength);
  }
  assert.ok(maxQueued <= LARGE_BUFFER, `proxy queued ${maxQueued} bytes`);

  // The far end reads again: everything arrives, in order.
  const got = slowCollect(far!);
  far!.resume();
  assert.equal(sha(await got.ended), sha(data));
});

test('idle: bytes one way only keep the connection open; silence closes it within 1.25× idle', async (t) => {
  // The backend trickles a byte every 50 ms for 600 ms (3× the idle timeout), the client sends
  // nothing; then both are silent.
  const be = await tcpBackend((s) => {
    let n = 0;
    const timer = setInterval(() => {
      s.write('x');
      if (++n === 12) clearInterval(timer);
    }, 50);
    s.on('close', () => clearInterval(timer));
  });
  t.after(() => be.close());
  const p = await startProxy(t, [l4Pool('main', [be.port])], { timeouts: { idleMs: 200 } });
  const c = await tcpConnect(p.port);
  t.after(() => c.destroy());
  let got = 0;
  let lastByteAt = 0;
  c.on('data', (d: Buffer) => {
    got += d.length;
    lastByteAt = Date.now();
  });
  // The proxy closes its side (FIN; the client is allowHalfOpen, so 'end' is the signal).
  await new Promise<void>((r) => {
    c.once('end', () => r());
    c.once('close', () => r());
  });
  const closedAfter = Date.now() - lastByteAt;
  assert.equal(got, 12, 'closed while bytes were still moving');
  assert.ok(closedAfter >= 190, `closed ${closedAfter} ms after the last byte`);
  // 1.25 × 200 ms plus scheduling slack on a loaded machine.
  assert.ok(closedAfter < 600, `closed ${closedAfter} ms after the last byte`);
  await waitFor(() => p.handle.active() === 0);
  assert.equal(log.counted(p.env.failures, 'client_timeout'), 1);
});

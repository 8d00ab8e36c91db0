// Uploads the backend answers early (before reading all of the body), on one keep-alive
// connection from a raw node:net client through an in-process http listener to a real
// node:http backend. The rest of the body is read and dropped (limits.drain_body) so the next
// request on the connection is answered; past the limit, or when the client stalls, the
// connection is closed after the response. The bodies are made of request heads, so leftover
// bytes ever parsed as requests would show up at the backend as GET /smuggled.

import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { bodyDrainStats } from '../src/worker/http/body-drain.ts';
import { parseHead } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  startBackend,
  startHttpListener,
} from './helpers/http-fixtures.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Body bytes sent before the answer is awaited: past the 200 KiB the 'after-part' backend reads. */
const FIRST = 256 * KiB;

/** `n` bytes of request heads (cut to size). */
function smuggleBody(n: number): Buffer {
  const unit = Buffer.from('GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n');
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += unit.length) unit.copy(b, i);
  return b;
}

function postHead(path: string, length: number): string {
  return `POST ${path} HTTP/1.1\r\nHost: app\r\nContent-Length: ${length}\r\n\r\n`;
}

/** An upload cut in two: what is sent before its answer is awaited, and the rest after it. */
interface Upload {
  readonly first: Buffer;
  readonly rest: Buffer;
}

/** Content-Length `size`; `firstBytes` of the body go with the head. */
function clUpload(path: string, size: number, firstBytes = FIRST): Upload {
  const body = smuggleBody(size);
  return {
    first: Buffer.concat([Buffer.from(postHead(path, size)), body.subarray(0, firstBytes)]),
    rest: body.subarray(firstBytes),
  };
}

/** Chunked, 16 KiB chunks, the first `firstBytes` of the body with the head. */
function chunkedUpload(path: string, size: number, firstBytes = FIRST): Upload {
  const body = smuggleBody(size);
  const chunks = (from: number, to: number) => {
    const parts: Buffer[] = [];
    for (let i = from; i < to; i += 16 * KiB) {
      const c = body.subarray(i, Math.min(to, i + 16 * KiB));
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    return parts;
  };
  return {
    first: Buffer.concat([
      Buffer.from(`POST ${path} HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n`),
      ...chunks(0, firstBytes),
    ]),
    rest: Buffer.concat([...chunks(firstBytes, size), Buffer.from('0\r\n\r\n')]),
  };
}

interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One raw client connection: write bytes, read Content-Length framed responses in order. */
class Conn {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  /** The server sent FIN. */
  ended = false;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    // EPIPE / ECONNRESET once the server closes while we still write: judged by what was read.
    socket.on('error', () => {});
  }

  static async open(t: TestContext, port: number): Promise<Conn> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    t.after(() => s.destroy());
    return new Conn(s);
  }

  /** Queued, never awaited: a server that stops reading must not stall the test here. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  private async until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(timer);
          r();
        };
      });
      this.wake = undefined;
    }
    return true;
  }

  /** The next whole response; 'closed' if the connection ended first, 'timeout' after `ms`. */
  async response(ms: number): Promise<Response | 'closed' | 'timeout'> {
    let res: Response | undefined;
    const got = await this.until(() => {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return this.ended || this.closed;
      const { status, headers } = parseHead(this.buf.subarray(0, end).toString('latin1'));
      assert.equal(headers['transfer-encoding'], undefined, 'test backends answer with Content-Length');
      const len = Number(headers['content-length'] ?? 0);
      if (this.buf.length < end + 4 + len) return this.ended || this.closed;
      res = { status, headers, body: this.buf.subarray(end + 4, end + 4 + len).toString() };
      this.buf = this.buf.subarray(end + 4 + len);
      return true;
    }, ms);
    if (res !== undefined) return res;
    return got ? 'closed' : 'timeout';
  }

  /** Did the server end the connection within `ms`? */
  endedWithin(ms: number): Promise<boolean> {
    return this.until(() => this.ended || this.closed, ms);
  }
}

type Answer = 'at-once' | 'after-part' | 'then-reset';

/** A backend that answers `ok` before reading the whole body, recording each request. */
async function earlyBackend(t: TestContext, answer: Answer) {
  const seen: string[] = [];
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    const ok = () => res.writeHead(200, { 'content-length': 2 }).end('ok');
    if (answer === 'at-once' || req.method === 'GET') ok();
    else if (answer === 'then-reset') {
      // After the proxy read the answer (a reset racing the answer makes undici fail the
      // request on its write error first: 502 upstream_reset, connection closed).
      const socket = req.socket;
      res
        .writeHead(200, { 'content-length': 2 })
        .end('ok', () => setTimeout(() => socket.resetAndDestroy(), 200));
    } else {
      let n = 0;
      const onData = (c: Buffer) => {
        n += c.length;
        if (n < 200 * KiB) return;
        req.off('data', onData);
        req.pause();
        ok();
      };
      req.on('data', onData);
    }
  });
  t.after(() => b.close());
  return { port: b.port, seen };
}

async function setup(t: TestContext, answer: Answer, o: ListenerOverrides = {}) {
  const b = await earlyBackend(t, answer);
  const p = await startHttpListener(t, o, [poolConfig('web', [backend(b.port)])]);
  const failures = () => [...p.env.failures.counts.entries()].filter(([, n]) => n > 0);
  return { b, p, failures };
}

/**
 * Two uploads on one connection, each answered while the client still owes most of its body
 * (the rest is sent only once the answer is in): both must be answered, nothing else forwarded.
 */
async function twoUploads(
  t: TestContext,
  answer: Answer,
  upload: (path: string) => Upload,
  o?: ListenerOverrides,
) {
  const { b, p, failures } = await setup(t, answer, o);
  const before = bodyDrainStats();
  const c = await Conn.open(t, p.port);
  for (const n of [1, 2]) {
    const u = upload(`/upload/${n}`);
    c.write(u.first);
    await expectOk(c, n);
    c.write(u.rest);
  }
  // Read past the last body: the connection still serves a request.
  c.write('GET /after HTTP/1.1\r\nHost: app\r\n\r\n');
  await expectOk(c, 3);
  assert.deepEqual(b.seen, ['POST /upload/1', 'POST /upload/2', 'GET /after']);
  assert.deepEqual(failures(), []);
  const after = bodyDrainStats();
  assert.equal(after.completed, before.completed + 2, 'both bodies were drained to their end');
  assert.equal(after.closedOverLimit + after.closedTimeout, before.closedOverLimit + before.closedTimeout);
}

async function expectOk(c: Conn, n: number): Promise<void> {
  const r = await c.response(5000);
  assert.notEqual(r, 'timeout', `request ${n} was never answered`);
  assert.ok(typeof r === 'object', `the connection closed before request ${n} was answered`);
  assert.equal(r.status, 200, `request ${n}: ${r.body}`);
  assert.equal(r.body, 'ok');
  assert.notEqual(r.headers.connection, 'close', 'keep-alive is not given up');
}

const cl = (size: number) => (path: string) => clUpload(path, size);
const chunked = (size: number) => (path: string) => chunkedUpload(path, size);

describe('upload answered before its body was read (keep-alive goes on)', () => {
  test('1 MiB uploads, backend answers at once: both answered on one connection', (t) =>
    twoUploads(t, 'at-once', cl(MiB)));

  test('1 MiB uploads, backend answers after reading 200 KiB', (t) => twoUploads(t, 'after-part', cl(MiB)));

  test('1 MiB uploads, backend answers then resets its connection', (t) =>
    twoUploads(t, 'then-reset', cl(MiB)));

  test('chunked 1 MiB uploads (streamed from the start, buffer_body 0)', (t) =>
    twoUploads(t, 'at-once', chunked(MiB)));

  test('chunked 1 MiB uploads that outgrow buffer_body 64 KiB', (t) =>
    twoUploads(t, 'at-once', chunked(MiB), { limits: { bufferBodyBytes: 64 * KiB } }));

  test('two whole 1 MiB requests written at once, no waiting', async (t) => {
    const { b, p, failures } = await setup(t, 'at-once');
    const c = await Conn.open(t, p.port);
    for (const n of [1, 2]) {
      const u = clUpload(`/upload/${n}`, MiB);
      c.write(Buffer.concat([u.first, u.rest]));
      await expectOk(c, n);
    }
    assert.deepEqual(b.seen, ['POST /upload/1', 'POST /upload/2']);
    assert.deepEqual(failures(), []);
  });
});

describe('upload answered early, the rest not worth reading: closed after the response', () => {
  /** An upload answered early, then the connection ends; the rest and a GET reach nobody. */
  async function closedAfter(t: TestContext, u: Upload, o?: ListenerOverrides) {
    const { b, p, failures } = await setup(t, 'at-once', o);
    const before = bodyDrainStats();
    const c = await Conn.open(t, p.port);
    c.write(u.first);
    const r = await c.response(5000);
    assert.ok(typeof r === 'object', `the upload got no whole response (${String(r)})`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
    // A client that goes on sending (our FIN may pass it): its bytes are read and dropped.
    c.write(u.rest);
    c.write('GET /after HTTP/1.1\r\nHost: app\r\n\r\n');
    assert.ok(await c.endedWithin(3000), 'the connection was not closed after the response');
    assert.equal(await c.response(100), 'closed', 'nothing after the response');
    // The GET behind the body, and the body's own bytes, reached no backend.
    assert.deepEqual(b.seen, ['POST /upload/1']);
    assert.deepEqual(failures(), []);
    assert.equal(bodyDrainStats().closedOverLimit, before.closedOverLimit + 1);
  }

  test('Content-Length 4 MiB, more than drain_body 1 MiB: closed at once', (t) =>
    closedAfter(t, clUpload('/upload/1', 4 * MiB)));

  test('chunked 4 MiB (with buffer_body 64 KiB): closed once it grows past drain_body', (t) =>
    closedAfter(t, chunkedUpload('/upload/1', 4 * MiB), { limits: { bufferBodyBytes: 64 * KiB } }));

  test('drain_body 0: even a small rest closes the connection', (t) =>
    closedAfter(t, clUpload('/upload/1', 512 * KiB), { limits: { drainBodyBytes: 0 } }));

  test('a client that stalls mid-body is closed after timeouts.client_body', async (t) => {
    const { b, p, failures } = await setup(t, 'at-once', {
      timeouts: { clientBodyMs: 300, clientIdleMs: 30_000 },
    });
    const before = bodyDrainStats();
    const c = await Conn.open(t, p.port);
    c.write(clUpload('/upload/1', MiB).first);
    const r = await c.response(5000);
    assert.ok(typeof r === 'object', `no response (${String(r)})`);
    assert.equal(r.status, 200);
    // client_body (300 ms) since the last chunk, well before client_idle (30 s).
    assert.ok(await c.endedWithin(3000), 'the stalled connection was not closed');
    assert.deepEqual(b.seen, ['POST /upload/1']);
    assert.deepEqual(failures(), []);
    assert.equal(bodyDrainStats().closedTimeout, before.closedTimeout + 1);
  });
});

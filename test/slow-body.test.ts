// Request bodies against slow clients, on an in-process HTTP listener: small bodies are read
// whole before any upstream connection is made (the backend records when connections arrive),
// larger ones stream; client_body_total and min_body_rate answer 408 client_timeout, counted
// and logged once with the failure schema.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { ErrorClass } from '../src/shared/errors.ts';
import type { ListenerState } from '../src/worker/context.ts';
import { captureLog } from './helpers/capture-log.ts';
import { parseHead } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  startBackend,
  startHttpListener,
  type TestBackend,
} from './helpers/http-fixtures.ts';
import { sleep } from './helpers/net.ts';

const KiB = 1024;

interface Proxy {
  port: number;
  state: ListenerState;
  count(cls: ErrorClass): number;
  /** Failures of every class. */
  total(): number;
}

async function startProxy(t: TestContext, o: ListenerOverrides, pools: PoolConfig[]): Promise<Proxy> {
  const { port, state, env } = await startHttpListener(t, o, pools);
  return {
    port,
    state,
    count: (cls) => env.failures.counts.get(cls) ?? 0,
    total: () => [...env.failures.counts.values()].reduce((a, b) => a + b, 0),
  };
}

/**
 * A backend that records when each connection arrived and answers with what it received:
 * body length, sha256 and the framing headers it saw.
 */
async function recordingBackend(
  t: TestContext,
): Promise<TestBackend & { connectedAt: number[]; requestAt: number[] }> {
  const connectedAt: number[] = [];
  const requestAt: number[] = [];
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    requestAt.push(Date.now());
    const hash = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const body = JSON.stringify({
        length: n,
        sha: hash.digest('hex'),
        contentLength: req.headers['content-length'],
        transferEncoding: req.headers['transfer-encoding'],
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  b.server.on('connection', () => connectedAt.push(Date.now()));
  t.after(() => b.close());
  return Object.assign(b, { connectedAt, requestAt });
}

const web = (b: TestBackend) => [poolConfig('web', [backend(b.port)])];

/**
 * Send `head`, then each piece of `pieces` after `gapMs`; resolve with the response text,
 * whether the server closed, and when the last piece was written.
 */
function trickle(
  port: number,
  head: string,
  pieces: Array<string | Buffer>,
  gapMs: number,
  waitMs = 5000,
): Promise<{ text: string; closed: boolean; lastSentAt: number; answeredAt: number }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let lastSentAt = 0;
    let answeredAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      clearTimeout(deadline);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed, lastSentAt, answeredAt });
    };
    const deadline = setTimeout(() => done(false), waitMs);
    s.on('data', (d: Buffer) => {
      if (answeredAt === 0) answeredAt = Date.now();
      chunks.push(d);
      if (/\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1'))) {
        const text = Buffer.concat(chunks).toString('latin1');
        const len = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? -1);
        if (len >= 0 && text.length >= text.indexOf('\r\n\r\n') + 4 + len) {
          // Complete response: stop sending, but wait a moment to see whether it closes.
          clearTimeout(timer);
          setTimeout(() => done(s.destroyed || s.readableEnded), 100);
        }
      }
    });
    s.on('error', () => {});
    s.on('end', () => done(true));
    s.on('close', () => done(true));
    s.on('connect', () => {
      s.write(head);
      let i = 0;
      const next = () => {
        if (i >= pieces.length || s.destroyed) return;
        s.write(pieces[i++]!);
        lastSentAt = Date.now();
        timer = setTimeout(next, gapMs);
      };
      timer = setTimeout(next, gapMs);
    });
  });
}

function bodyOf(text: string): Record<string, unknown> {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
}

function sha(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('small bodies are buffered before an upstream connection is taken', () => {
  it('Content-Length: up to buffer_body the backend sees no connection until the body is complete; over it, it streams', async (t) => {
    const b = await recordingBackend(t);
    const p = await startProxy(t, { limits: { bufferBodyBytes: 8000 } }, web(b));
    const pieces = Array.from({ length: 8 }, (_, i) => Buffer.alloc(1000, 97 + i));
    const t0 = Date.now();
    const r = await trickle(
      p.port,
      'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n',
      pieces,
      80,
    );
    assert.equal(parseHead(r.text).status, 200, r.text);
    const got = bodyOf(r.text);
    assert.equal(got.length, 8000);
    assert.equal(got.sha, sha(Buffer.concat(pieces)));
    assert.equal(got.contentLength, '8000');
    assert.equal(b.connectedAt.length, 1);
    assert.ok(r.lastSentAt - t0 >= 500, 'the body really took a while');
    assert.ok(
      b.connectedAt[0]! >= r.lastSentAt,
      `backend connected ${r.lastSentAt - b.connectedAt[0]!} ms before the last body byte was sent`,
    );

    // One byte over buffer_body: streamed, the request reaches the backend while it trickles.
    const big = [...pieces, Buffer.from('!')];
    const r2 = await trickle(
      p.port,
      'POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 8001\r\n\r\n',
      big,
      80,
    );
    assert.equal(parseHead(r2.text).status, 200, r2.text);
    assert.equal(bodyOf(r2.text).sha, sha(Buffer.concat(big)));
    assert.ok(b.requestAt[1]! < r2.lastSentAt - 300, 'streamed: at the backend long before the body ended');
    assert.equal(p.total(), 0);
  });

  it('chunked: buffered while under buffer_body (sent on with a Content-Length); one that outgrows it streams', async (t) => {
    const b = await recordingBackend(t);
    const p = await startProxy(t, { limits: { bufferBodyBytes: 4 * KiB } }, web(b));
    const small = Array.from({ length: 6 }, (_, i) => 'z'.repeat(500 + i));
    const chunks = (data: string[]) => [
      ...data.map((d) => `${d.length.toString(16)}\r\n${d}\r\n`),
      '0\r\n\r\n',
    ];
    const head = 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    const r = await trickle(p.port, head, chunks(small), 80);
    assert.equal(parseHead(r.text).status, 200, r.text);
    const got = bodyOf(r.text);
    assert.equal(got.sha, sha(small.join('')));
    assert.equal(got.contentLength, String(small.join('').length));
    assert.equal(got.transferEncoding, undefined);
    assert.ok(b.connectedAt[0]! >= r.lastSentAt, 'connected only after the last chunk');

    // 9 KiB in 1.5 KiB chunks: the first 4 KiB are read, then the rest streams behind them.
    const large = Array.from({ length: 6 }, (_, i) => String.fromCharCode(100 + i).repeat(1500));
    const r2 = await trickle(p.port, head, chunks(large), 80);
    assert.equal(parseHead(r2.text).status, 200, r2.text);
    const got2 = bodyOf(r2.text);
    assert.equal(got2.sha, sha(large.join('')), 'intact: the buffered prefix, then the rest');
    assert.equal(got2.transferEncoding, 'chunked');
    assert.ok(b.requestAt[1]! < r2.lastSentAt - 100, 'streamed once it outgrew buffer_body');
    assert.equal(p.total(), 0);
  });

  it('chunked body over max_body_bytes while buffering → 413, no upstream connection', async (t) => {
    const b = await recordingBackend(t);
    const p = await startProxy(t, { limits: { bufferBodyBytes: 64 * KiB, maxBodyBytes: 1000 } }, web(b));
    const log = captureLog(t);
    const chunk = `190\r\n${'y'.repeat(400)}\r\n`;
    const r = await trickle(
      p.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      [chunk, chunk, chunk],
      30,
    );
    assert.equal(parseHead(r.text).status, 413);
    assert.ok(r.closed);
    assert.equal(b.connectedAt.length, 0);
    assert.equal(p.count('body_too_large'), 1);
    assert.equal(log.of('body_too_large').length, 1);
  });
});

describe('client_body_total and min_body_rate → 408 client_timeout', () => {
  for (const mode of ['buffered', 'streamed'] as const) {
    it(`client_body_total cuts a body that keeps trickling (${mode})`, async (t) => {
      const b = await recordingBackend(t);
      const p = await startProxy(
        t,
        {
          timeouts: { clientBodyTotalMs: 700, clientBodyMs: 5000 },
          limits: { bufferBodyBytes: mode === 'buffered' ? 64 * KiB : 0, minBodyRate: 0 },
        },
        web(b),
      );
      const log = captureLog(t);
      const t0 = Date.now();
      // 1 byte every 50 ms: never a gap, but never done either.
      const r = await trickle(
        p.port,
        'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n',
        Array.from({ length: 200 }, () => 'a'),
        50,
      );
      const took = r.answeredAt - t0;
      assert.equal(parseHead(r.text).status, 408, r.text);
      assert.equal(parseHead(r.text).headers.connection, 'close');
      assert.ok(r.closed, 'connection closed after the 408');
      assert.ok(took >= 650 && took < 2500, `answered after ${took} ms`);
      assert.equal(p.count('client_timeout'), 1);
      assert.equal(p.total(), 1, 'counted once, as nothing else');
      const [line] = log.of('client_timeout');
      assert.ok(line, 'failure line logged');
      assert.match(String(line.error), /^client_body_total: body not complete after 700ms/);
      assert.equal(line.listener, 'lb1/web');
      assert.equal(line.client, '127.0.0.1');
      assert.ok(line.request_id);
      if (mode === 'buffered') {
        assert.equal(b.connectedAt.length, 0, 'a buffered body never reached the backend');
        assert.equal(line.backend, undefined);
      } else {
        assert.equal(line.backend, `lb1/web/127.0.0.1:${b.port}`);
        assert.equal(line.backend_address, `127.0.0.1:${b.port}`);
      }
      assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
    });
  }

  it('min_body_rate cuts a trickling body after its 10 s window; a slow start and a pause do not', async (t) => {
    const b = await recordingBackend(t);
    const p = await startProxy(
      t,
      { limits: { bufferBodyBytes: 64 * KiB, minBodyRate: 100 }, timeouts: { clientBodyMs: 5000 } },
      web(b),
    );
    const log = captureLog(t);
    const t0 = Date.now();
    // 20 bytes every 500 ms = 40 B/s < 100 B/s: cut once a full window is seen (~10 s).
    const trickler = trickle(
      p.port,
      'POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n',
      Array.from({ length: 250 }, () => 'b'.repeat(20)),
      500,
      20_000,
    );
    // Healthy but bumpy, and longer than one window: nothing for 2 s (slow start), 250 B
    // every 500 ms, a 3 s pause, then the rest until ~12 s. Every 10 s window judged (at
    // 10, 11 and 12 s) still carries well over 1000 bytes.
    const bumpy = new Promise<Awaited<ReturnType<typeof trickle>>>((resolve) => {
      const pieces = [...Array.from({ length: 14 }, () => 'c'.repeat(250))];
      const s = net.connect(p.port, '127.0.0.1');
      const out: Buffer[] = [];
      s.on('error', () => {});
      s.on('data', (d: Buffer) => out.push(d));
      s.on('close', () =>
        resolve({ text: Buffer.concat(out).toString(), closed: true, lastSentAt: 0, answeredAt: Date.now() }),
      );
      s.on('connect', async () => {
        s.write('POST /bumpy HTTP/1.1\r\nHost: x\r\nContent-Length: 3500\r\nConnection: close\r\n\r\n');
        await sleep(2000);
        for (let i = 0; i < pieces.length; i++) {
          if (i === 7) await sleep(3000);
          s.write(pieces[i]!);
          await sleep(500);
        }
      });
    });
    const [r, ok] = await Promise.all([trickler, bumpy]);
    const took = r.answeredAt - t0;
    assert.equal(parseHead(r.text).status, 408, r.text);
    assert.ok(took >= 9500 && took < 13_000, `trickler cut after ${took} ms`);
    assert.equal(parseHead(ok.text).status, 200, ok.text);
    assert.equal(bodyOf(ok.text).length, 3500);
    assert.ok(ok.answeredAt - t0 > 11_000, 'the bumpy upload outlived the first windows');
    assert.equal(p.count('client_timeout'), 1);
    const [line] = log.of('client_timeout');
    assert.match(String(line?.error), /^min_body_rate: \d+ B\/s over the last 10s, below 100 B\/s$/);
    assert.equal(line?.listener, 'lb1/web');
  });
});

// The HTTP listener end to end on 127.0.0.1: forwarding (curl and node clients), streaming,
// header rewriting, failure statuses with their error classes, client abort, reload, drain and
// the connection limit.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PoolConfig } from '../src/config/model.ts';
import { backendKey } from '../src/config/model.ts';
import type { ErrorClass } from '../src/shared/errors.ts';
import type { ListenerHandle, ListenerState } from '../src/worker/context.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { curl, parseHead, raw, request } from './helpers/http-client.ts';
import {
  backend,
  LB,
  type ListenerOverrides,
  listenerConfig,
  listenerState,
  poolConfig,
  route,
  startBackend,
  startHttpListener,
  type TestBackend,
  type workerEnv,
} from './helpers/http-fixtures.ts';
import { cidrs, freeTcpPort } from './helpers/net.ts';

// Failures are expected here: their lines are captured (not printed), and every count a test
// asserts is checked against the failure lines logged for that class.
const log = captureFileLog();

interface Proxy {
  port: number;
  state: ListenerState;
  handle: ListenerHandle;
  env: ReturnType<typeof workerEnv>;
  count(cls: ErrorClass): number;
}

async function startProxy(
  t: TestContext,
  o: ListenerOverrides,
  pools: PoolConfig[],
  opts: { down?: Set<string>; workerCount?: number } = {},
): Promise<Proxy> {
  const p = await startHttpListener(t, o, pools, opts);
  return { ...p, count: (cls) => log.counted(p.env.failures, cls) };
}

async function withBackend(t: TestContext, handler: http.RequestListener): Promise<TestBackend> {
  const b = await startBackend(handler);
  t.after(() => b.close());
  return b;
}

/** Answers with what it received: method, url, raw headers, body length and sha256. */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const hash = createHash('sha256');
  let n = 0;
  req.on('data', (c: Buffer) => {
    n += c.length;
    hash.update(c);
  });
  req.on('end', () => {
    const body = JSON.stringify({
      method: req.method,
      url: req.url,
      rawHeaders: req.rawHeaders,
      headers: req.headers,
      length: n,
      sha: hash.digest('hex'),
      port: req.socket.localPort,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const web = (b: TestBackend) => [poolConfig('web', [backend(b.port)])];

describe('http listener: forwarding', () => {
  it('proxies GET and POST (curl), keeps the request id on the response', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, {}, web(b));
    const get = await curl(['-i', `http://127.0.0.1:${p.port}/a/b?c=d`]);
    assert.equal(get.code, 0, get.stderr);
    const head = parseHead(get.stdout);
    assert.equal(head.status, 200);
    const body = JSON.parse(get.stdout.split('\r\n\r\n')[1]!);
    assert.equal(body.method, 'GET');
    assert.equal(body.url, '/a/b?c=d');
    assert.ok(head.headers['x-request-id']);
    assert.equal(body.headers['x-request-id'], head.headers['x-request-id']);

    const post = await curl([`http://127.0.0.1:${p.port}/submit`, '--data-binary', 'hello=world']);
    const pb = JSON.parse(post.stdout);
    assert.equal(pb.method, 'POST');
    assert.equal(pb.length, 11);
    assert.equal(pb.headers['content-length'], '11');

    // HEAD and a keep-alive connection reused for two requests.
    const two = await curl([
      '-s',
      '-o',
      '/dev/null',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{num_connects}\n',
      `http://127.0.0.1:${p.port}/1`,
      `http://127.0.0.1:${p.port}/2`,
    ]);
    assert.equal(two.stdout, '200 1\n200 0\n');
    const ids = await Promise.all([request(p.port), request(p.port)]);
    assert.notEqual(ids[0]!.headers['x-request-id'], ids[1]!.headers['x-request-id']);
    assert.equal(p.env.failures.counts.size, 0);
  });

  it('streams a 200 MiB upload and download without buffering them', async (t) => {
    const MiB = 1024 * 1024;
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
    const N = 200;
    const expected = createHash('sha256');
    for (let i = 0; i < N; i++) expected.update(block);
    const sha = expected.digest('hex');

    const b = await withBackend(t, (req, res) => {
      if (req.method === 'PUT') return echo(req, res);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': N * MiB });
      let i = 0;
      const pump = () => {
        while (i < N) {
          i++;
          if (!res.write(block)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const p = await startProxy(t, {}, web(b));
    let peak = 0;
    const base = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss - base);
    }, 20);
    t.after(() => clearInterval(sampler));

    // Download: curl → sha256sum in a shell pipeline (out of this process).
    const down = await new Promise<string>((resolve, reject) => {
      const sh = spawn('sh', ['-c', `curl -sS --max-time 60 http://127.0.0.1:${p.port}/big | sha256sum`]);
      let out = '';
      sh.stdout.on('data', (d) => {
        out += d;
      });
      sh.on('error', reject);
      sh.on('close', () => resolve(out.split(' ')[0]!));
    });
    assert.equal(down, sha);

    // Upload: chunked PUT from curl's stdin, fed with backpressure.
    const up = await new Promise<string>((resolve, reject) => {
      const c = spawn('curl', ['-sS', '--max-time', '60', '-T', '-', `http://127.0.0.1:${p.port}/up`]);
      let out = '';
      c.stdout.on('data', (d) => {
        out += d;
      });
      c.on('error', reject);
      c.on('close', () => resolve(out));
      let i = 0;
      const feed = () => {
        while (i < N) {
          i++;
          if (!c.stdin.write(block)) return void c.stdin.once('drain', feed);
        }
        c.stdin.end();
      };
      feed();
    });
    const got = JSON.parse(up);
    assert.equal(got.length, N * MiB);
    assert.equal(got.sha, sha);
    assert.equal(got.headers['transfer-encoding'], 'chunked');
    clearInterval(sampler);
    // 400 MiB went through; buffering any real fraction of it would show here.
    // Measured ≈ 70 MiB whatever the size (50, 200 or 400 MiB): allocator and GC slack, not
    // buffering. Holding a whole body would add at least its 200 MiB.
    assert.ok(peak < 128 * MiB, `rss grew by ${(peak / MiB).toFixed(1)} MiB`);
    assert.equal(p.env.failures.counts.size, 0);
  });
});

describe('http listener: headers', () => {
  it('removes hop-by-hop and Connection-listed headers both ways, keeps te: trailers and set-cookie', async (t) => {
    let seen: string[] = [];
    const b = await withBackend(t, (req, res) => {
      seen = req.rawHeaders;
      res.writeHead(200, [
        ['Connection', 'x-secret'],
        ['X-Secret', '1'],
        ['Keep-Alive', 'timeout=5'],
        ['Proxy-Authenticate', 'Basic'],
        ['Trailer', 'x-t'],
        ['Upgrade', 'foo'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['X-Kept', 'yes'],
      ] as unknown as http.OutgoingHttpHeaders);
      res.addTrailers({ 'x-t': 'trailer-value' });
      res.end('ok');
    });
    const p = await startProxy(t, {}, web(b));
    const r = await raw(
      p.port,
      'GET /h HTTP/1.1\r\nHost: example.test\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\n' +
        'Keep-Alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers, gzip\r\nTrailer: x-t\r\n' +
        'Upgrade: foo\r\nProxy-Authorization: Basic eA==\r\nX-Other: kept\r\n\r\n',
    );
    const names = seen.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    // undici sets its own connection header for the upstream hop.
    assert.equal(seen[seen.indexOf('connection') + 1], 'keep-alive');
    assert.equal(names.filter((n) => n === 'connection').length, 1);
    for (const h of [
      'x-drop-me',
      'keep-alive',
      'proxy-connection',
      'trailer',
      'upgrade',
      'proxy-authorization',
    ])
      assert.ok(!names.includes(h), `${h} forwarded: ${names}`);
    assert.equal(seen[seen.findIndex((n) => n.toLowerCase() === 'te') + 1], 'trailers');
    assert.equal(seen[seen.indexOf('X-Other') + 1], 'kept');
    assert.equal(seen[seen.findIndex((n) => n.toLowerCase() === 'host') + 1], 'example.test');

    const head = r.text.split('\r\n\r\n')[0]!.toLowerCase();
    for (const h of ['x-secret', 'keep-alive', 'proxy-authenticate', 'trailer', 'upgrade'])
      assert.ok(!head.includes(`\r\n${h}:`), `${h} returned:\n${head}`);
    assert.ok(head.includes('\r\nconnection: close'), 'client asked to close');
    assert.match(head, /set-cookie: a=1\r\nset-cookie: b=2/);
    assert.ok(head.includes('x-kept: yes'));
    // Chunked both sides; the trailer reached the client (it asked for them with TE).
    assert.match(r.text, /\r\n\r\n2\r\nok\r\n0\r\nx-t: trailer-value\r\n\r\n$/);

    // A compliant client lists TE in Connection; te: trailers must survive that.
    await request(p.port, { headers: { connection: 'TE', te: 'trailers' } });
    assert.equal(seen[seen.findIndex((n) => n.toLowerCase() === 'te') + 1], 'trailers');
    // Without "trailers" in TE, TE is dropped.
    await request(p.port, { headers: { te: 'gzip' } });
    assert.ok(!seen.some((n) => n.toLowerCase() === 'te'));
  });

  it('appends X-Forwarded-For and ignores client-asserted headers from untrusted peers', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, {}, [poolConfig('web', [backend(b.port)], 'ip_hash')]);
    const keys: string[] = [];
    const rt = p.state.pools.get('web')!;
    const pick = rt.pick.bind(rt);
    rt.pick = (ctx) => {
      keys.push(ctx.hashKey());
      return pick(ctx);
    };
    const r = await request(p.port, {
      headers: {
        host: 'shop.example:8080',
        'x-forwarded-for': '1.2.3.4',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-request-id': 'client-id',
      },
    });
    const h = JSON.parse(r.body).headers;
    assert.equal(h['x-forwarded-for'], '1.2.3.4, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'shop.example:8080');
    assert.notEqual(h['x-request-id'], 'client-id');
    assert.equal(r.headers['x-request-id'], h['x-request-id']);
    assert.deepEqual(keys, ['127.0.0.1']);
  });

  it('from trusted peers: keeps their headers and hashes on the right-most untrusted XFF hop', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, { trustedProxies: cidrs('127.0.0.0/8', '10.0.0.0/8') }, [
      poolConfig('web', [backend(b.port)], 'ip_hash'),
    ]);
    const keys: string[] = [];
    const rt = p.state.pools.get('web')!;
    const pick = rt.pick.bind(rt);
    rt.pick = (ctx) => {
      keys.push(ctx.hashKey());
      return pick(ctx);
    };
    const r = await request(p.port, {
      headers: [
        ['Host', 'shop.example'],
        ['X-Forwarded-For', '203.0.113.9, 198.51.100.7'],
        ['X-Forwarded-For', '10.1.2.3'],
        ['X-Forwarded-Proto', 'https'],
        ['X-Forwarded-Host', 'public.example'],
        ['X-Request-Id', 'edge-42'],
      ].flat() as unknown as http.OutgoingHttpHeaders,
    });
    const h = JSON.parse(r.body).headers;
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 198.51.100.7, 10.1.2.3, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'public.example');
    assert.equal(h['x-request-id'], 'edge-42');
    assert.equal(r.headers['x-request-id'], 'edge-42');
    // Trusted peer without XFF, and an all-trusted chain (left-most wins).
    await request(p.port);
    await request(p.port, { headers: { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' } });
    assert.deepEqual(keys, ['198.51.100.7', '127.0.0.1', '10.0.0.1']);
  });
});

describe('http listener: failures', () => {
  it('no route → 404 no_route; no healthy backend → 503', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(
      t,
      { defaultPool: undefined, routes: [route('web', { pathPrefix: '/api/' })] },
      web(b),
    );
    const r = await raw(p.port, 'GET /other HTTP/1.1\r\nHost: x\r\n\r\n', 300);
    const head = parseHead(r.text);
    assert.equal(head.status, 404);
    assert.match(r.text, /no_route/);
    assert.ok(head.headers['x-request-id']);
    assert.equal(head.headers.connection, 'keep-alive', 'a local answer keeps the connection');
    assert.ok(!r.closed);
    assert.equal((await request(p.port, { path: '/api/x' })).status, 200);
    assert.equal(p.count('no_route'), 1);

    const down = new Set([backendKey(LB, 'web', `127.0.0.1:${b.port}`)]);
    const q = await startProxy(t, {}, web(b), { down });
    const r2 = await request(q.port);
    assert.equal(r2.status, 503);
    assert.equal(q.count('no_healthy_backend'), 1);
  });

  it('connect refused → 502 upstream_connect_refused, backend released', async (t) => {
    const closed = await freeTcpPort();
    const p = await startProxy(t, {}, [poolConfig('web', [backend(closed)])]);
    const r = await request(p.port);
    assert.equal(r.status, 502);
    assert.match(r.body, /upstream_connect_refused/);
    assert.equal(p.count('upstream_connect_refused'), 1);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
  });

  it('upstream connect timeout → 504 upstream_connect_timeout', async (t) => {
    // A listener whose accept queue is full: further SYNs are dropped and connects hang.
    // (Node always accepts, so the listener is a python3 one-liner.)
    const py = spawn('python3', [
      '-c',
      "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(20)",
    ]);
    t.after(() => py.kill());
    const port = await new Promise<number>((resolve, reject) => {
      py.on('error', reject);
      py.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    }).catch(() => 0);
    if (port === 0) return t.skip('python3 not available');
    const filler = net.connect(port, '127.0.0.1');
    filler.on('error', () => {});
    t.after(() => filler.destroy());
    await new Promise((r) => filler.once('connect', r));
    const p = await startProxy(t, { timeouts: { connectMs: 300 } }, [poolConfig('web', [backend(port)])]);
    const t0 = Date.now();
    const r = await request(p.port);
    assert.equal(r.status, 504);
    assert.match(r.body, /upstream_connect_timeout/);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(p.count('upstream_connect_timeout'), 1);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
  });

  it('upstream response timeout → 504 upstream_timeout', async (t) => {
    const b = await withBackend(t, () => {}); // never answers
    const p = await startProxy(t, { timeouts: { upstreamResponseMs: 200 } }, web(b));
    const t0 = Date.now();
    const r = await request(p.port);
    assert.equal(r.status, 504);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(p.count('upstream_timeout'), 1);
  });

  it('upstream body idle timeout after headers → client connection cut', async (t) => {
    const b = await withBackend(t, (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const p = await startProxy(t, { timeouts: { upstreamBodyMs: 200 } }, web(b));
    await assert.rejects(request(p.port), /aborted|ECONNRESET|socket hang up/);
    await until(() => p.count('upstream_timeout') === 1);
  });

  it('upstream reset mid-body → client socket destroyed, upstream_reset', async (t) => {
    const b = await withBackend(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }); // chunked
      res.write('first part');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const p = await startProxy(t, {}, web(b));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(r.closed, 'client connection closed');
    assert.match(r.text, /^HTTP\/1.1 200/);
    assert.ok(r.text.includes('first part'));
    assert.ok(!r.text.endsWith('0\r\n\r\n'), 'no terminating chunk: the truncation is visible');
    await until(() => p.count('upstream_reset') === 1);
    assert.equal(p.count('client_abort'), 0);
  });

  it('header too large → 431 header_too_large (counted)', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, { limits: { maxHeaderBytes: 1024 } }, web(b));
    const r = await raw(p.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    assert.equal(parseHead(r.text).status, 431);
    assert.ok(r.closed);
    assert.equal(p.count('header_too_large'), 1);
    assert.equal((await request(p.port)).status, 200);
  });

  it('body too large: Content-Length → 413 at once without contacting upstream', async (t) => {
    let hits = 0;
    const b = await withBackend(t, (req, res) => {
      hits++;
      echo(req, res);
    });
    const p = await startProxy(t, { limits: { maxBodyBytes: 1000 } }, web(b));
    const r = await raw(p.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n');
    assert.equal(parseHead(r.text).status, 413);
    assert.equal(parseHead(r.text).headers.connection, 'close');
    assert.ok(r.closed);
    // curl with Expect: 100-continue gets the 413 instead of a 100.
    const c = await curl([
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      'x'.repeat(5000),
      `http://127.0.0.1:${p.port}/`,
    ]);
    assert.equal(c.stdout, '413');
    assert.equal(hits, 0);
    assert.equal(p.count('body_too_large'), 2);
    // Within the limit, with Expect: 100-continue, it goes through.
    const ok = await curl([
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      'x'.repeat(900),
      `http://127.0.0.1:${p.port}/`,
    ]);
    assert.equal(JSON.parse(ok.stdout).length, 900);
  });

  it('body too large: chunked → upstream aborted, 413', async (t) => {
    let upstreamClosed = false;
    const b = await withBackend(t, (req) => {
      req.resume();
      req.on('close', () => {
        upstreamClosed = true;
      });
    });
    const p = await startProxy(t, { limits: { maxBodyBytes: 1000 } }, web(b));
    const chunk = `190\r\n${'y'.repeat(400)}\r\n`;
    const r = await raw(p.port, [
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      chunk,
      chunk,
      chunk,
    ]);
    assert.equal(parseHead(r.text).status, 413);
    assert.ok(r.closed);
    await until(() => upstreamClosed);
    assert.equal(p.count('body_too_large'), 1);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
  });

  it('client body timeout → 408 client_timeout, upstream request closed', async (t) => {
    let upstreamClosed = false;
    const b = await withBackend(t, (req) => {
      req.resume();
      req.on('close', () => {
        upstreamClosed = true;
      });
    });
    const p = await startProxy(t, { timeouts: { clientBodyMs: 300 } }, web(b));
    const t0 = Date.now();
    const r = await raw(p.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    assert.equal(parseHead(r.text).status, 408);
    assert.ok(r.closed);
    assert.ok(Date.now() - t0 < 2500);
    await until(() => upstreamClosed);
    assert.equal(p.count('client_timeout'), 1);
  });

  it('client header timeout → 408 client_timeout', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, { timeouts: { clientHeaderMs: 300 } }, web(b));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n', 3000);
    assert.equal(parseHead(r.text).status, 408);
    assert.ok(r.closed);
    assert.equal(p.count('client_timeout'), 1);
  });

  it('malformed requests → 400 client_bad_request, never a crash', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, {}, web(b));
    for (const bad of [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n',
    ]) {
      const r = await raw(p.port, bad);
      assert.equal(parseHead(r.text).status, 400, bad);
      assert.ok(r.closed);
    }
    // Caught by the listener itself: missing Host, two Hosts, a non origin-form target.
    for (const bad of [
      'GET / HTTP/1.1\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n',
      'GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]) {
      const r = await raw(p.port, bad);
      assert.equal(parseHead(r.text).status, 400, bad);
    }
    assert.equal(p.count('client_bad_request'), 6);
    assert.equal((await request(p.port)).status, 200);
  });

  it('non-WebSocket upgrade requests (h2c) → 501', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, {}, web(b));
    const r = await raw(
      p.port,
      'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
    );
    assert.equal(parseHead(r.text).status, 501);
    assert.ok(r.closed);
  });

  it('client abort → upstream request closed, client_abort counted once, backend released', async (t) => {
    let upstreamReq: http.IncomingMessage | undefined;
    let upstreamClosed = false;
    const b = await withBackend(t, (req, res) => {
      upstreamReq = req;
      res.on('close', () => {
        upstreamClosed = true;
      });
    });
    const p = await startProxy(t, {}, web(b));
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => upstreamReq !== undefined);
    assert.equal(p.handle.active(), 1);
    // A reset: a FIN alone is a half-close, which is answered (http-hardening.test.ts).
    s.resetAndDestroy();
    await until(() => upstreamClosed);
    await until(() => p.handle.active() === 0);
    assert.equal(p.count('client_abort'), 1);
    assert.equal(p.count('upstream_reset'), 0);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
  });

  it('client abort during an upload is client_abort, not upstream_reset', async (t) => {
    let upstreamClosed = false;
    let got = 0;
    const b = await withBackend(t, (req) => {
      req.on('data', (c: Buffer) => {
        got += c.length;
      });
      req.on('close', () => {
        upstreamClosed = true;
      });
    });
    const p = await startProxy(t, {}, web(b));
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => {});
    s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'z'.repeat(1000)}`);
    await until(() => got === 1000);
    s.destroy();
    await until(() => upstreamClosed);
    await until(() => p.handle.active() === 0);
    assert.equal(p.count('client_abort'), 1);
    assert.equal(p.count('upstream_reset'), 0);
  });
});

describe('http listener: lifecycle', () => {
  it('update() while a slow request is in flight: old finishes on the old pool, new uses the new', async (t) => {
    const slow = await withBackend(t, (req, res) => {
      setTimeout(() => res.end('old'), 400);
      req.resume();
    });
    const fast = await withBackend(t, (_req, res) => res.end('new'));
    const p = await startProxy(t, {}, web(slow));
    const inflight = request(p.port);
    await until(() => p.handle.active() === 1);
    const next = listenerState(listenerConfig(p.port), [poolConfig('web', [backend(fast.port)])]);
    p.handle.update(next);
    assert.equal((await request(p.port)).body, 'new');
    assert.equal((await inflight).body, 'old');
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
    // Once nothing uses the old backend, retain() closes its pool.
    assert.equal(p.env.upstreams.size(), 2);
    p.env.upstreams.retain([`127.0.0.1:${fast.port}`]);
    assert.equal(p.env.upstreams.size(), 1);
  });

  it('close(deadline) drains an in-flight request with connection: close, then resolves', async (t) => {
    const b = await withBackend(t, (_req, res) => {
      setTimeout(() => res.end('done'), 300);
    });
    const p = await startProxy(t, {}, web(b));
    const inflight = request(p.port);
    await until(() => p.handle.active() === 1);
    const t0 = Date.now();
    await p.handle.close(5000);
    const took = Date.now() - t0;
    const r = await inflight;
    assert.equal(r.body, 'done');
    assert.equal(r.headers.connection, 'close');
    assert.ok(took >= 200 && took < 2000, `took ${took} ms`);
    await assert.rejects(request(p.port), /ECONNREFUSED/);
  });

  it('close(deadline) cuts what is left at the deadline', async (t) => {
    const b = await withBackend(t, (_req, res) => {
      setTimeout(() => res.end('late'), 5000).unref();
    });
    const p = await startProxy(t, {}, web(b));
    const inflight = request(p.port).then(
      () => 'answered',
      () => 'cut',
    );
    await until(() => p.handle.active() === 1);
    const t0 = Date.now();
    await p.handle.close(200);
    assert.ok(Date.now() - t0 < 1500);
    assert.equal(await inflight, 'cut');
    await until(() => p.handle.active() === 0);
    assert.equal(p.count('drain_deadline'), 1);
    assert.equal(p.count('client_abort'), 0);
  });

  it('closes idle keep-alive client connections after client_idle', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, { timeouts: { clientIdleMs: 300 } }, web(b));
    const t0 = Date.now();
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
    assert.equal(parseHead(r.text).status, 200);
    assert.ok(r.closed);
    const took = Date.now() - t0;
    // Node 24 adds a 1 s keepAliveTimeoutBuffer to the socket timeout.
    assert.ok(took >= 250 && took < 4000, `closed after ${took} ms`);
    assert.equal(p.env.failures.counts.size, 0, 'an idle close is not a failure');
  });

  it('connection limit (split across workers): excess connections closed, counted', async (t) => {
    const b = await withBackend(t, echo);
    const p = await startProxy(t, { connectionLimit: 4 }, web(b), { workerCount: 2 });
    const held = await Promise.all(
      [1, 2].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(p.port, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    await sleep(50);
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 2000);
    assert.ok(r.closed);
    assert.equal(r.text, '');
    assert.equal(p.count('connection_limit'), 1);
    for (const s of held) s.destroy();
    await sleep(50);
    assert.equal((await request(p.port)).status, 200);
  });
});

// HTTP correctness against hostile clients and faulty backends, with raw sockets (node:net)
// against the in-process listener: header count limits both ways, error classes that blame
// the right side, half-closed clients, Transfer-Encoding per RFC 9112. Every failure a test
// provokes is captured from the log (setLogSink) and asserted, not printed.

import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, beforeEach, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PoolConfig } from '../src/config/model.ts';
import { classifyUpstreamError, type ErrorClass } from '../src/shared/errors.ts';
import { setLogSink } from '../src/shared/log.ts';
import type { ListenerHandle } from '../src/worker/context.ts';
import { validAuthority } from '../src/worker/http/headers.ts';
import { parseHead, raw } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  listenerConfig,
  listenerState,
  poolConfig,
  startBackend,
  startHttpListener,
  type TestBackend,
} from './helpers/http-fixtures.ts';

// --- captured failure log lines ---

type Line = Record<string, unknown>;
let lines: Line[] = [];
beforeEach(() => {
  lines = [];
  setLogSink((_level, line) => lines.push(JSON.parse(line) as Line));
});
afterEach(() => setLogSink(undefined));

/** The failure lines logged so far, as [error_class, ...] in order. */
function classesLogged(): string[] {
  return lines.filter((l) => l.error_class !== undefined).map((l) => String(l.error_class));
}

// --- plumbing ---

interface Proxy {
  port: number;
  handle: ListenerHandle;
  count(cls: ErrorClass): number;
  counts(): Record<string, number>;
}

async function startProxy(t: TestContext, pools: PoolConfig[], o: ListenerOverrides = {}): Promise<Proxy> {
  const { port, handle, env } = await startHttpListener(t, o, pools);
  return {
    port,
    handle,
    count: (cls) => env.failures.counts.get(cls) ?? 0,
    counts: () => Object.fromEntries(env.failures.counts),
  };
}

/**
 * A backend that records every request the moment its head arrives (raw headers, then the
 * body) and answers "ok <body length>".
 */
async function recorder(
  t: TestContext,
): Promise<TestBackend & { seen: Array<{ raw: string[]; body: string }> }> {
  const seen: Array<{ raw: string[]; body: string }> = [];
  const b = await startBackend((req, res) => {
    const entry = { raw: req.rawHeaders, body: '' };
    seen.push(entry);
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      entry.body += c;
    });
    req.on('end', () => res.end(`ok ${entry.body.length}`));
  });
  t.after(() => b.close());
  return Object.assign(b, { seen });
}

/** A TCP "backend" that answers every request with exactly `reply` (bytes), then closes. */
async function rawBackend(t: TestContext, reply: string | ((s: net.Socket) => void)): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => (typeof reply === 'string' ? s.end(reply, 'latin1') : reply(s)));
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/** One keep-alive connection: send() writes a request and resolves with one whole response. */
function session(t: TestContext, port: number) {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  t.after(() => s.destroy());
  let buf = '';
  let closed = false;
  let waiter: (() => void) | undefined;
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    buf += d;
    waiter?.();
  });
  s.on('close', () => {
    closed = true;
    waiter?.();
  });
  return {
    get closed() {
      return closed;
    },
    send(payload: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
      s.write(payload, 'latin1');
      return new Promise((resolve, reject) => {
        const check = () => {
          const end = buf.indexOf('\r\n\r\n');
          if (end >= 0) {
            const head = parseHead(buf);
            const len = Number(head.headers['content-length'] ?? 0);
            if (buf.length >= end + 4 + len) {
              const body = buf.slice(end + 4, end + 4 + len);
              buf = buf.slice(end + 4 + len);
              waiter = undefined;
              return resolve({ ...head, body });
            }
          }
          if (closed) reject(new Error(`connection closed; got ${JSON.stringify(buf)}`));
        };
        waiter = check;
        check();
      });
    },
  };
}

/** Header lines "x-i: v" for i in [0, n). */
function manyHeaders(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += `x-h${i}: v\r\n`;
  return out;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const web = (port: number) => [poolConfig('web', [backend(port)])];

// --- 2. header count limits ---

describe('limits.max_headers', () => {
  it('1,100 request headers then Content-Length/Authorization → 431, nothing reaches the backend', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port));
    const r = await raw(
      p.port,
      `POST / HTTP/1.1\r\nHost: x\r\n${manyHeaders(1100)}Content-Length: 5\r\nAuthorization: Bearer s3cret\r\n\r\nhello`,
    );
    assert.equal(parseHead(r.text).status, 431, r.text.slice(0, 200));
    assert.match(r.text, /header_too_large/);
    assert.equal(parseHead(r.text).headers.connection, 'close');
    assert.ok(r.closed, 'the connection is closed: the body framing is not trusted');
    assert.equal(b.seen.length, 0, 'nothing was forwarded');
    assert.deepEqual(classesLogged(), ['header_too_large']);
    assert.equal(lines[0]!.listener, 'lb1/web');
    assert.equal(lines[0]!.client, '127.0.0.1');
    // The default limit is 100 header lines, Host included: 100 pass, 101 do not.
    const at = await raw(p.port, `GET / HTTP/1.1\r\nHost: x\r\n${manyHeaders(98)}Connection: close\r\n\r\n`);
    assert.equal(parseHead(at.text).status, 200);
    const over = await raw(
      p.port,
      `GET / HTTP/1.1\r\nHost: x\r\n${manyHeaders(99)}Connection: close\r\n\r\n`,
    );
    assert.equal(parseHead(over.text).status, 431);
    assert.equal(b.seen.length, 1);
    assert.equal(b.seen[0]!.raw.filter((_, i) => i % 2 === 0 && _.startsWith('x-h')).length, 98);
    assert.equal(p.count('header_too_large'), 2);
  });

  it('a reload that raises the limit applies exactly on an open keep-alive connection', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port), { limits: { maxHeaders: 5 } });
    const s = session(t, p.port);
    assert.equal((await s.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).status, 200);
    p.handle.update(listenerState(listenerConfig(p.port, { limits: { maxHeaders: 10 } }), web(b.port)));
    // 1 + 8 = 9 lines: within the new limit, all of them forwarded.
    assert.equal((await s.send(`GET / HTTP/1.1\r\nHost: x\r\n${manyHeaders(8)}\r\n`)).status, 200);
    assert.equal(b.seen[1]!.raw.filter((h) => h.startsWith('x-h')).length, 8);
    // 1 + 11 = 12 lines: over it, on the same connection that was opened under the old limit.
    const r = await s.send(`GET / HTTP/1.1\r\nHost: x\r\n${manyHeaders(11)}\r\n`);
    assert.equal(r.status, 431);
    assert.equal(b.seen.length, 2);
    assert.deepEqual(classesLogged(), ['header_too_large']);
  });

  it('a backend response with more header lines than the limit → 502 upstream_protocol_error', async (t) => {
    const head = (n: number) => `HTTP/1.1 200 OK\r\n${manyHeaders(n - 1)}Content-Length: 2\r\n\r\nok`;
    const p = await startProxy(t, web(await rawBackend(t, head(11))), { limits: { maxHeaders: 10 } });
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHead(r.text).status, 502);
    assert.match(r.text, /upstream_protocol_error/);
    assert.deepEqual(classesLogged(), ['upstream_protocol_error']);
    assert.match(String(lines[0]!.error), /more than 10 headers/);
    assert.match(String(lines[0]!.backend), /^lb1\/web\//);
    // Exactly at the limit: relayed.
    const q = await startProxy(t, web(await rawBackend(t, head(10))), { limits: { maxHeaders: 10 } });
    const ok = await raw(q.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHead(ok.text).status, 200);
    assert.match(ok.text, /x-h8: v/);
  });

  it('a backend response head over 16 KiB → 502 upstream_protocol_error', async (t) => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\nok`;
    const p = await startProxy(t, web(await rawBackend(t, big)));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHead(r.text).status, 502);
    assert.match(r.text, /upstream_protocol_error/);
    assert.deepEqual(classesLogged(), ['upstream_protocol_error']);
    assert.match(String(lines[0]!.error), /UND_ERR_HEADERS_OVERFLOW/);
  });
});

// --- 3. error classes blame the right side ---

describe('error classes', () => {
  it('a malformed Host is the client: 400 client_bad_request, the backend never contacted', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port));
    const bad = [
      '[',
      '[::1',
      '[::1]x',
      '[::g]',
      '[fe80::1%eth0]',
      'a b',
      'a@b',
      'x:99999',
      'x:8o',
      'ex%4',
      '[]',
      'é',
    ];
    for (const host of bad) {
      const r = await raw(p.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.equal(parseHead(r.text).status, 400, `Host: ${host}`);
      assert.ok(r.closed);
    }
    assert.equal(b.seen.length, 0);
    assert.deepEqual(p.counts(), { client_bad_request: bad.length });
    assert.deepEqual(
      classesLogged(),
      bad.map(() => 'client_bad_request'),
    );
    const good = ['[::1]:80', 'x:', "a.b-c_d~!$&'()*+,;=", '1.2.3.4:65535', 'ex%41mple', '[v1.fe:x]', ''];
    for (const host of good) {
      const r = await raw(p.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.equal(parseHead(r.text).status, 200, `Host: ${host}`);
    }
    assert.equal(b.seen.length, good.length);
  });

  it('validAuthority follows RFC 3986 host [":" port]', () => {
    for (const h of [
      'example.com',
      'EXAMPLE.com:8080',
      '10.0.0.1',
      '999.1.1.1',
      '[2001:db8::1]',
      '[::ffff:1.2.3.4]:0',
      'h:65535',
    ])
      assert.ok(validAuthority(h), h);
    for (const h of [
      'h:65536',
      'h:-1',
      'h: 1',
      '[2001:db8::1',
      '[2001:db8::1]]',
      '[1.2.3.4]',
      'h/p',
      'h?q',
      'h#f',
      'h\\',
    ])
      assert.ok(!validAuthority(h), h);
  });

  it('invalid HTTP from a backend → 502 upstream_protocol_error (not upstream_error)', async (t) => {
    const p = await startProxy(t, web(await rawBackend(t, 'NOT HTTP AT ALL\r\n\r\n')));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHead(r.text).status, 502);
    assert.match(r.text, /upstream_protocol_error/);
    assert.deepEqual(classesLogged(), ['upstream_protocol_error']);
    assert.match(String(lines[0]!.error), /does not match the HTTP\/1.1 protocol/);
  });

  it('a malformed chunk before any body byte → 502 with a body, not an empty close', async (t) => {
    const reply = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n';
    const p = await startProxy(t, web(await rawBackend(t, reply)));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHead(r.text).status, 502, JSON.stringify(r.text));
    assert.match(r.text, /\r\n\r\n502 Bad Gateway: upstream_protocol_error\n$/);
    assert.deepEqual(classesLogged(), ['upstream_protocol_error']);
  });

  it('a malformed chunk after body bytes went out → the client connection is cut', async (t) => {
    const port = await rawBackend(t, (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => s.end('zz\r\n'), 100);
    });
    const p = await startProxy(t, web(port));
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(r.closed);
    assert.match(r.text, /^HTTP\/1.1 200 OK/);
    assert.match(r.text, /hello/);
    assert.ok(!r.text.endsWith('0\r\n\r\n'), 'no terminating chunk: the truncation is visible');
    await until(() => p.count('upstream_protocol_error') === 1);
    assert.deepEqual(classesLogged(), ['upstream_protocol_error']);
  });

  for (const how of ['end', 'destroy', 'reset'] as const) {
    it(`a client that closes mid-body (${how}) is one client_abort, nothing upstream_*`, async (t) => {
      let upstreamClosed = false;
      const b = await startBackend((req) => {
        req.resume();
        req.on('close', () => {
          upstreamClosed = true;
        });
      });
      t.after(() => b.close());
      const p = await startProxy(t, web(b.port));
      for (const te of [false, true]) {
        upstreamClosed = false;
        const s = net.connect(p.port, '127.0.0.1');
        s.on('error', () => {});
        s.write(
          te
            ? 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n'
            : 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc',
        );
        await until(() => p.handle.active() === 1);
        await sleep(50);
        if (how === 'end') s.end();
        else if (how === 'destroy') s.destroy();
        else s.resetAndDestroy();
        await until(() => upstreamClosed);
        await until(() => p.handle.active() === 0);
        s.destroy();
      }
      assert.deepEqual(p.counts(), { client_abort: 2 });
      assert.deepEqual(classesLogged(), ['client_abort', 'client_abort']);
    });
  }

  it('a malformed chunk from the client mid-body → one 400 client_bad_request', async (t) => {
    const b = await startBackend((req) => req.resume());
    t.after(() => b.close());
    const p = await startProxy(t, web(b.port));
    const r = await raw(p.port, [
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n',
      'zz\r\n',
    ]);
    assert.equal(parseHead(r.text).status, 400);
    assert.ok(r.closed);
    await until(() => p.handle.active() === 0);
    assert.deepEqual(p.counts(), { client_bad_request: 1 });
    assert.deepEqual(classesLogged(), ['client_bad_request']);
    assert.match(String(lines[0]!.error), /HPE_INVALID_CHUNK_SIZE/);
  });

  it('classifyUpstreamError: parser errors are protocol errors, assertions are ours', () => {
    // undici 7's HTTPParserError carries no code (its table lookup is reversed).
    const parser = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (x)'), {
      name: 'HTTPParserError',
      code: undefined,
    });
    assert.equal(classifyUpstreamError(parser), 'upstream_protocol_error');
    assert.equal(classifyUpstreamError({ code: 'HPE_INVALID_CHUNK_SIZE' }), 'upstream_protocol_error');
    assert.equal(classifyUpstreamError({ code: 'ERR_ASSERTION' }), 'internal_error');
    assert.equal(classifyUpstreamError({ code: 'UND_ERR_HEADERS_OVERFLOW' }), 'upstream_protocol_error');
    assert.equal(classifyUpstreamError({ code: 'ENOTFOUND' }), 'upstream_error');
  });
});

// --- 4. half-closed clients ---

/** Write `payload`, shut the write side at once, collect everything until the server closes. */
function halfClose(port: number, payload: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, 5000);
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.end(payload, 'latin1');
  });
}

describe('half-closed clients', () => {
  it('a request then shutdown(SHUT_WR) is answered, then the connection closed', async (t) => {
    const b = await recorder(t);
    const slow = await startBackend((req, res) => {
      req.resume();
      setTimeout(() => res.end('late but here'), 300);
    });
    t.after(() => slow.close());
    const p = await startProxy(t, [
      poolConfig('web', [backend(b.port)]),
      poolConfig('slow', [backend(slow.port)]),
    ]);
    const get = await halfClose(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(get.closed, 'the proxy closes after answering');
    assert.equal(parseHead(get.text).status, 200);
    assert.equal(parseHead(get.text).headers.connection, 'close');
    assert.match(get.text, /\r\n\r\nok 0$/);

    const post = await halfClose(
      p.port,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world',
    );
    assert.equal(parseHead(post.text).status, 200);
    assert.match(post.text, /\r\n\r\nok 11$/);
    assert.equal(b.seen[1]!.body, 'hello world');

    const http10 = await halfClose(p.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(http10.text, /^HTTP\/1.1 200 OK\r\n/);
    assert.match(http10.text, /\r\n\r\nok 0$/);

    // Waiting for a slow backend after the FIN: still answered.
    const q = await startProxy(t, web(slow.port));
    const late = await halfClose(q.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(late.text, /\r\n\r\nlate but here$/);
    assert.deepEqual(classesLogged(), []);
    assert.deepEqual(p.counts(), {});
    assert.deepEqual(q.counts(), {});
  });

  it('a real abort (destroy mid-response) still counts client_abort', async (t) => {
    let closedUpstream = false;
    const b = await startBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part');
      // A stream: the proxy learns the client is gone when a write to it fails.
      const tick = setInterval(() => res.write('more'), 20);
      res.on('close', () => {
        clearInterval(tick);
        closedUpstream = true;
      });
    });
    t.after(() => b.close());
    const p = await startProxy(t, web(b.port));
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => {});
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => got.includes('first part'));
    s.destroy();
    await until(() => closedUpstream);
    await until(() => p.handle.active() === 0);
    assert.deepEqual(p.counts(), { client_abort: 1 });
    assert.deepEqual(classesLogged(), ['client_abort']);
  });
});

// --- 5. Transfer-Encoding ---

describe('Transfer-Encoding (RFC 9112 §6.1)', () => {
  it('HTTP/1.0 with Transfer-Encoding → 400 client_bad_request, not forwarded', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port));
    for (const te of ['chunked', 'gzip']) {
      const r = await raw(
        p.port,
        `POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      );
      assert.equal(parseHead(r.text).status, 400, te);
      assert.ok(r.closed);
    }
    await until(() => p.handle.active() === 0);
    assert.equal(b.seen.length, 0);
    assert.deepEqual(p.counts(), { client_bad_request: 2 });
    assert.deepEqual(classesLogged(), ['client_bad_request', 'client_bad_request']);
  });

  it('codings other than one final chunked → 501 unsupported_request, counted once, never forwarded', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port));
    const codings = [
      ['Transfer-Encoding: gzip, chunked'],
      ['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'],
      ['Transfer-Encoding: chunked, gzip'],
      ['Transfer-Encoding: gzip'],
      ['Transfer-Encoding: identity'],
      ['Transfer-Encoding: chunked, chunked'],
    ];
    for (const lines of codings) {
      const r = await raw(
        p.port,
        `POST / HTTP/1.1\r\nHost: x\r\n${lines.join('\r\n')}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      );
      assert.equal(parseHead(r.text).status, 501, lines.join(' + '));
      assert.match(r.text, /unsupported_request/);
      assert.ok(r.closed);
    }
    await until(() => p.handle.active() === 0);
    assert.equal(b.seen.length, 0);
    assert.deepEqual(p.counts(), { unsupported_request: codings.length });
    assert.deepEqual(
      classesLogged(),
      codings.map(() => 'unsupported_request'),
    );
    // One chunked, in any case, is proxied.
    const ok = await raw(
      p.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    );
    assert.equal(parseHead(ok.text).status, 200);
    assert.equal(b.seen[0]!.body, 'hello');
  });

  it('a non-WebSocket upgrade and CONNECT are refused with 501 and counted unsupported_request', async (t) => {
    const b = await recorder(t);
    const p = await startProxy(t, web(b.port));
    for (const req of [
      'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n',
      'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n',
    ]) {
      const r = await raw(p.port, req);
      assert.equal(parseHead(r.text).status, 501);
      assert.ok(r.closed);
    }
    assert.equal(b.seen.length, 0);
    assert.deepEqual(p.counts(), { unsupported_request: 2 });
    assert.deepEqual(classesLogged(), ['unsupported_request', 'unsupported_request']);
  });
});

// https listeners end to end in one process: real curl (--http2 / --http1.1) and openssl
// s_client against certificates made by openssl (helpers/certs.ts).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { TicketKeyRotation } from '../src/primary/ticket-keys.ts';
import { captureLog } from './helpers/capture-log.ts';
import { makeCa } from './helpers/certs.ts';
import { backend, poolConfig, startBackend, startHttpListener } from './helpers/http-fixtures.ts';
import { curl, run, sClient, servedCn, startHttpsListener, tlsConfig } from './helpers/https-fixtures.ts';
import { cidrs, sleep } from './helpers/net.ts';

const ca = makeCa();
const api = ca.leaf(['api.test']);
const wild = ca.leaf(['*.apps.test']);

async function echoBackend(t: import('node:test').TestContext) {
  const b = await startBackend((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive' });
    res.end(JSON.stringify({ url: req.url, headers: req.headers, httpVersion: req.httpVersion }));
  });
  t.after(() => b.close());
  return b;
}

describe('https listener', () => {
  test('serves h2 and http/1.1 on one port through the same exchange', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api, wild]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const h2 = await curl(port, 'api.test', ca.cert, '/v1/x?y=1', ['--http2']);
    assert.equal(h2.code, 0, h2.stderr);
    assert.match(h2.stdout, /^HTTP\/2 200/);
    assert.doesNotMatch(h2.stdout, /^connection:/im);
    const body = JSON.parse(h2.stdout.slice(h2.stdout.indexOf('\r\n\r\n') + 4));
    assert.equal(body.url, '/v1/x?y=1');
    assert.equal(body.headers.host, `api.test:${port}`);
    assert.equal(body.headers['x-forwarded-proto'], 'https');
    assert.equal(body.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(body.httpVersion, '1.1');
    const h1 = await curl(port, 'api.test', ca.cert, '/h1', ['--http1.1']);
    assert.equal(h1.code, 0, h1.stderr);
    assert.match(h1.stdout, /^HTTP\/1.1 200/);
    assert.equal(JSON.parse(h1.stdout.slice(h1.stdout.indexOf('\r\n\r\n') + 4)).url, '/h1');
  });

  test('SNI picks the certificate: exact, wildcard (one label), else the first', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api, wild]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    assert.equal(servedCn((await sClient(port, ['-servername', 'api.test'])).stdout), 'api.test');
    assert.equal(servedCn((await sClient(port, ['-servername', 'x.apps.test'])).stdout), '*.apps.test');
    assert.equal(servedCn((await sClient(port, ['-servername', 'a.b.apps.test'])).stdout), 'api.test');
    assert.equal(servedCn((await sClient(port, ['-servername', 'other.test'])).stdout), 'api.test');
    assert.equal(servedCn((await sClient(port, ['-noservername'])).stdout), 'api.test');
    // curl verifies the wildcard certificate for its name.
    const r = await curl(port, 'x.apps.test', ca.cert, '/', ['--http2']);
    assert.equal(r.code, 0, r.stderr);
  });
});

/** A TCP relay to `port` that sends the client's first `n` bytes one per segment (1 ms apart). */
async function trickleRelay(t: import('node:test').TestContext, port: number, n: number): Promise<number> {
  const server = net.createServer((client) => {
    const up = net.connect(port, '127.0.0.1');
    up.setNoDelay(true);
    let sent = 0;
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      client.pause();
      queue = queue.then(async () => {
        for (let i = 0; i < chunk.length; i++) {
          if (sent >= n) {
            up.write(chunk.subarray(i));
            break;
          }
          up.write(chunk.subarray(i, i + 1));
          sent++;
          await sleep(1);
        }
        client.resume();
      });
    });
    up.pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** Write `bytes`, resolve with what came back once the server closed (or after `ms`). */
function sendRaw(
  port: number,
  bytes: Buffer | string,
  ms = 3000,
): Promise<{ closed: boolean; data: Buffer }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closed: false, data: Buffer.concat(got) });
    }, ms);
    s.on('data', (c) => got.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, data: Buffer.concat(got) });
    });
  });
}

describe('https bad input', () => {
  test('TLS 1.0 and 1.1 are refused by default; 1.2 and 1.3 served; min_version TLSv1.3 refuses 1.2', async (t) => {
    const log = captureLog(t);
    const b = await echoBackend(t);
    const { port, env } = await startHttpsListener(t, { tls: tlsConfig([api]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    // The client side must be allowed to offer old versions (OpenSSL 3's own floor is 1.2).
    for (const v of ['-tls1', '-tls1_1']) {
      const r = await sClient(port, ['-servername', 'api.test', v, '-cipher', 'DEFAULT@SECLEVEL=0']);
      assert.doesNotMatch(r.stdout, /^New, TLS/m, `${v} must not complete`);
      assert.match(
        r.stdout + r.stderr,
        /alert protocol version|unsupported protocol|no protocols available/i,
      );
    }
    assert.ok((env.failures.toJSON().tls_handshake ?? 0) >= 2, JSON.stringify(env.failures.toJSON()));
    assert.ok(log.of('tls_handshake').every((l) => l.listener === 'lb1/web' && l.client === '127.0.0.1'));
    for (const v of ['-tls1_2', '-tls1_3']) {
      const r = await sClient(port, ['-servername', 'api.test', v]);
      assert.match(r.stdout, /^New, TLSv1\.[23]/m, v);
    }
    const { port: p13 } = await startHttpsListener(t, { tls: tlsConfig([api], { minVersion: 'TLSv1.3' }) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    assert.doesNotMatch((await sClient(p13, ['-servername', 'api.test', '-tls1_2'])).stdout, /^New, TLS/m);
    assert.match((await sClient(p13, ['-servername', 'api.test', '-tls1_3'])).stdout, /^New, TLSv1\.3/m);
  });

  test('unknown_sni: refuse fails the handshake for an unknown name; known names and no SNI are served', async (t) => {
    captureLog(t);
    const b = await echoBackend(t);
    const { port, env } = await startHttpsListener(
      t,
      { tls: tlsConfig([api, wild], { unknownSni: 'refuse' }) },
      [poolConfig('web', [backend(b.port)])],
    );
    const bad = await sClient(port, ['-servername', 'other.test']);
    assert.doesNotMatch(bad.stdout, /^New, TLS/m);
    assert.equal(env.failures.toJSON().tls_handshake, 1);
    assert.equal(servedCn((await sClient(port, ['-servername', 'x.apps.test'])).stdout), '*.apps.test');
    assert.equal(servedCn((await sClient(port, ['-noservername'])).stdout), 'api.test');
  });

  test('plain HTTP, random bytes and a ClientHello in 1-byte segments: clean close, counted, others served', async (t) => {
    captureLog(t);
    const b = await echoBackend(t);
    const { port, env } = await startHttpsListener(t, { tls: tlsConfig([api]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const plain = await sendRaw(port, 'GET / HTTP/1.1\r\nHost: api.test\r\n\r\n');
    assert.equal(plain.closed, true);
    assert.doesNotMatch(plain.data.toString('latin1'), /HTTP\/1\.1/, 'no HTTP answer on a TLS port');
    const junk = await sendRaw(port, randomBytes(512));
    assert.equal(junk.closed, true);
    assert.ok((env.failures.toJSON().tls_handshake ?? 0) >= 2, JSON.stringify(env.failures.toJSON()));
    // The whole ClientHello one byte per segment still completes a handshake and a request.
    const relay = await trickleRelay(t, port, 600);
    const slow = await curl(relay, 'api.test', ca.cert, '/slow', ['--http1.1']);
    assert.equal(slow.code, 0, slow.stderr);
    assert.match(slow.stdout, /^HTTP\/1.1 200/);
    const ok = await curl(port, 'api.test', ca.cert, '/after', ['--http2']);
    assert.match(ok.stdout, /^HTTP\/2 200/);
  });

  test('a PROXY header is read before the handshake, also when the ClientHello shares its segment', async (t) => {
    captureLog(t);
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(
      t,
      { tls: tlsConfig([api]), acceptProxyProtocol: true, trustedProxies: cidrs('127.0.0.0/8') },
      [poolConfig('web', [backend(b.port)])],
    );
    // A relay that prepends the header to the client's first bytes in ONE write.
    const server = net.createServer((client) => {
      const up = net.connect(port, '127.0.0.1');
      let first = true;
      client.on('data', (c: Buffer) => {
        up.write(
          first ? Buffer.concat([Buffer.from('PROXY TCP4 198.51.100.7 127.0.0.1 5000 443\r\n'), c]) : c,
        );
        first = false;
      });
      up.pipe(client);
      client.on('close', () => up.destroy());
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const relay = (server.address() as net.AddressInfo).port;
    for (const v of ['--http1.1', '--http2']) {
      const r = await curl(relay, 'api.test', ca.cert, '/pp', [v]);
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4));
      assert.equal(body.headers['x-forwarded-for'], '198.51.100.7', v);
    }
  });
});

describe('session tickets', () => {
  /** A TLS 1.2 session from `port`, and whether a second connection with it was resumed. */
  async function session(port: number): Promise<Buffer> {
    const s = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'api.test',
      ca: ca.certPem,
      maxVersion: 'TLSv1.2',
    });
    const got = await new Promise<Buffer>((resolve, reject) => {
      s.once('session', resolve);
      s.once('error', reject);
    });
    s.destroy();
    return got;
  }
  async function resumes(port: number, sess: Buffer): Promise<boolean> {
    const s = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'api.test',
      ca: ca.certPem,
      session: sess,
      maxVersion: 'TLSv1.2',
    });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    const r = s.isSessionReused();
    s.destroy();
    return r;
  }

  test("listeners holding the same keys resume each other's sessions; the previous key still opens tickets for one rotation", async (t) => {
    const b = await echoBackend(t);
    const pools = [poolConfig('web', [backend(b.port)])];
    const a = await startHttpsListener(t, { tls: tlsConfig([api]) }, pools);
    const c = await startHttpsListener(t, { tls: tlsConfig([api]) }, pools);
    // Two workers without the primary's keys: each seals with its own local key.
    const s0 = await session(a.port);
    assert.equal(await resumes(a.port, s0), true);
    assert.equal(await resumes(c.port, s0), false);
    // The primary's rotation, delivered to both (as IPC would).
    const keys = new TicketKeyRotation((k) => {
      a.env.tickets.set(k);
      c.env.tickets.set(k);
    });
    keys.schedule(3_600_000);
    t.after(() => keys.stop());
    const s1 = await session(a.port);
    assert.equal(await resumes(c.port, s1), true, 'sealed on one, opened on the other');
    keys.rotate();
    assert.equal(await resumes(c.port, s1), true, 'previous key still opens it');
    assert.equal(await resumes(a.port, s1), true);
    keys.rotate();
    assert.equal(await resumes(c.port, s1), false, 'two rotations later it is gone');
    assert.equal(await resumes(a.port, await session(c.port)), true);
  });

  test('session_tickets: false issues no ticket', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api], { sessionTickets: false }) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const s = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'api.test',
      ca: ca.certPem,
      maxVersion: 'TLSv1.2',
    });
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    await sleep(100);
    assert.equal(s.getTLSTicket(), undefined);
    s.destroy();
  });
});

describe('client certificates (mTLS)', () => {
  const alice = ca.client('alice');
  const stranger = makeCa('Other CA').client('mallory');
  const forged = ['-H', 'X-Client-Cert-Subject: CN=root', '-H', 'x-client-cert-fingerprint: 00'];
  const body = (r: { stdout: string }) => JSON.parse(r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4));

  test('required: a certificate from the CA is forwarded as subject and fingerprint; none or a wrong CA fails the handshake', async (t) => {
    const log = captureLog(t);
    const b = await echoBackend(t);
    const { port, env } = await startHttpsListener(
      t,
      { tls: tlsConfig([api], { clientAuth: 'required', clientCa: ca.cert, clientCaPem: ca.certPem }) },
      [poolConfig('web', [backend(b.port)])],
    );
    for (const v of ['--http1.1', '--http2']) {
      const ok = await curl(port, 'api.test', ca.cert, '/m', [
        v,
        '--cert',
        alice.cert,
        '--key',
        alice.key,
        ...forged,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      const h = body(ok).headers;
      assert.equal(h['x-client-cert-subject'], 'CN=alice,O=FiberLB Tests', v);
      assert.equal(h['x-client-cert-fingerprint'], alice.fingerprint256.replace(/:/g, '').toLowerCase());
    }
    const none = await curl(port, 'api.test', ca.cert, '/m', ['--http1.1']);
    assert.notEqual(none.code, 0);
    assert.doesNotMatch(none.stdout, /HTTP\/1.1 200/);
    const wrong = await curl(port, 'api.test', ca.cert, '/m', [
      '--http1.1',
      '--cert',
      stranger.cert,
      '--key',
      stranger.key,
    ]);
    assert.notEqual(wrong.code, 0);
    assert.doesNotMatch(wrong.stdout, /HTTP\/1.1 200/);
    assert.ok((env.failures.toJSON().tls_handshake ?? 0) >= 2, JSON.stringify(log.lines));
  });

  test('optional: no certificate or a wrong CA is served without the headers; forged headers never pass', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(
      t,
      { tls: tlsConfig([api], { clientAuth: 'optional', clientCa: ca.cert, clientCaPem: ca.certPem }) },
      [poolConfig('web', [backend(b.port)])],
    );
    for (const extra of [[], ['--cert', stranger.cert, '--key', stranger.key]]) {
      const r = await curl(port, 'api.test', ca.cert, '/o', ['--http2', ...forged, ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const h = body(r).headers;
      assert.equal(h['x-client-cert-subject'], undefined);
      assert.equal(h['x-client-cert-fingerprint'], undefined);
    }
    const r = await curl(port, 'api.test', ca.cert, '/o', [
      '--http1.1',
      '--cert',
      alice.cert,
      '--key',
      alice.key,
    ]);
    assert.equal(body(r).headers['x-client-cert-subject'], 'CN=alice,O=FiberLB Tests');
  });

  test('off: the configured header names are still stripped from client requests', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(
      t,
      { tls: tlsConfig([api], { clientCertHeaders: { subject: 'x-ssl-subject', fingerprint: 'x-ssl-fp' } }) },
      [poolConfig('web', [backend(b.port)])],
    );
    const r = await curl(port, 'api.test', ca.cert, '/', [
      '--http1.1',
      '-H',
      'X-SSL-Subject: CN=root',
      '-H',
      'x-ssl-fp: 1',
    ]);
    const h = body(r).headers;
    assert.equal(h['x-ssl-subject'], undefined);
    assert.equal(h['x-ssl-fp'], undefined);
  });
});

describe('redirect_https and hsts', () => {
  test('an http listener with redirect_https answers 308 to the same host and path on https', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpListener(t, { redirectHttps: { port: 8443 } }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const r = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-H',
      'Host: api.test:8080',
      `http://127.0.0.1:${port}/a/b?c=1`,
    ]);
    assert.match(r.stdout, /^HTTP\/1.1 308/);
    assert.match(r.stdout, /^location: https:\/\/api\.test:8443\/a\/b\?c=1\r$/im);
    const v6 = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-H',
      'Host: [::1]:80',
      `http://127.0.0.1:${port}/`,
    ]);
    assert.match(v6.stdout, /^location: https:\/\/\[::1\]:8443\/\r$/im);
    const bad = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-H',
      'Host: a b',
      `http://127.0.0.1:${port}/`,
    ]);
    assert.match(bad.stdout, /^HTTP\/1.1 400/);
    const { port: p443 } = await startHttpListener(t, { redirectHttps: { port: 443 } }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const r443 = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-H',
      'Host: api.test',
      `http://127.0.0.1:${p443}/x`,
    ]);
    assert.match(r443.stdout, /^location: https:\/\/api\.test\/x\r$/im);
  });

  test('hsts adds Strict-Transport-Security to proxied https responses (h1 and h2)', async (t) => {
    const b = await echoBackend(t);
    const { port } = await startHttpsListener(
      t,
      { tls: tlsConfig([api]), hsts: { maxAgeS: 600, includeSubdomains: true, preload: false } },
      [poolConfig('web', [backend(b.port)])],
    );
    for (const v of ['--http1.1', '--http2']) {
      const r = await curl(port, 'api.test', ca.cert, '/', [v]);
      assert.match(r.stdout, /^strict-transport-security: max-age=600; includeSubDomains\r$/im, v);
    }
  });
});

describe('h2 request bodies', () => {
  test('an h2 body without content-length, a large streamed one, and cookie crumbs reach the h1 backend intact', async (t) => {
    const b = await startBackend((req, res) => {
      let n = 0;
      const hash = createHash('sha256');
      req.on('data', (c: Buffer) => {
        n += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            n,
            sha: hash.digest('hex'),
            cookie: req.headers.cookie,
            te: req.headers['transfer-encoding'],
          }),
        );
      });
    });
    t.after(() => b.close());
    const { port } = await startHttpsListener(
      t,
      { tls: tlsConfig([api]), limits: { bufferBodyBytes: 65_536 } },
      [poolConfig('web', [backend(b.port)])],
    );
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername: 'api.test' });
    t.after(() => session.close());
    const post = (body: Buffer, extra: Record<string, string> = {}) =>
      new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/up', ...extra });
        let status = 0;
        let text = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (c: Buffer) => (text += c.toString()));
        s.on('end', () => resolve({ status, json: JSON.parse(text) }));
        s.on('error', reject);
        s.end(body);
      });
    const small = randomBytes(1000);
    const r1 = await post(small, { cookie: 'a=1' });
    assert.equal(r1.status, 200);
    assert.equal(r1.json.n, 1000);
    assert.equal(r1.json.sha, createHash('sha256').update(small).digest('hex'));
    const big = randomBytes(300_000);
    const r2 = await post(big);
    assert.equal(r2.json.n, 300_000);
    assert.equal(r2.json.sha, createHash('sha256').update(big).digest('hex'));
    // Two cookie headers (h2 allows crumbs) arrive as one.
    const s = session.request({ ':path': '/c', cookie: ['a=1', 'b=2'] });
    const text = await new Promise<string>((resolve) => {
      let got = '';
      s.on('data', (c: Buffer) => (got += c));
      s.on('end', () => resolve(got));
    });
    assert.equal(JSON.parse(text).cookie, 'a=1; b=2');
  });
});

describe('h2 bad input', () => {
  test('garbage after the h2 preface and streams reset mid-response cost only themselves', async (t) => {
    captureLog(t);
    const b = await startBackend((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('x'.repeat(1024)), 5);
      setTimeout(() => {
        clearInterval(timer);
        res.end('end');
      }, 300);
      res.on('close', () => clearInterval(timer));
    });
    t.after(() => b.close());
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    // The h2 preface, then a frame header no server accepts (16 MiB DATA before SETTINGS).
    const raw = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'api.test',
      ca: ca.certPem,
      ALPNProtocols: ['h2'],
    });
    await new Promise<void>((r) => raw.once('secureConnect', () => r()));
    assert.equal(raw.alpnProtocol, 'h2');
    raw.on('error', () => {});
    const back: Buffer[] = [];
    raw.on('data', (c: Buffer) => back.push(c));
    raw.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.from([0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]),
        randomBytes(256),
      ]),
    );
    await new Promise<void>((r) => {
      raw.once('close', () => r());
      setTimeout(r, 3000);
    });
    assert.equal(
      raw.destroyed,
      true,
      `the server closed the broken session: ${Buffer.concat(back).toString('hex')}`,
    );
    // Streams reset by the client while the response streams.
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.certPem, servername: 'api.test' });
    t.after(() => session.close());
    for (let i = 0; i < 5; i++) {
      const s = session.request({ ':path': `/r${i}` });
      await new Promise<void>((r) => s.once('data', () => r()));
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    const ok = await curl(port, 'api.test', ca.cert, '/after', ['--http2']);
    assert.match(ok.stdout, /^HTTP\/2 200/);
  });
});
